"""Tests of neuroscribe.vocabulary (LLM generation, filtering, sources, artifact, flow and CLI)."""

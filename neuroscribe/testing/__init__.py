"""Tiny deterministic models and image sets for tests, demos and Dask workers (importable anywhere)."""

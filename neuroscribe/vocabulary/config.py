"""The vocabulary stage's single config object and its parts.

    cfg = VocabularyConfig(store="runs/r50", classes="imagenet", sources=("llm", "builtin:colors+textures"))
    cfg = load_config(VocabularyConfig, "vocabulary.yaml", overrides={"store": "s3://bucket/r50"})
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from neuroscribe.config import FrozenModel, StoreConfig
from neuroscribe.errors import NeuroscribeError

CLASS_PLACEHOLDER = "{class_name}"

# The vocabulary a run uses when none is given, all offline; ExplainConfig and the CLI take it from here.
DEFAULT_SOURCES: tuple[str, ...] = ("builtin:imagenet+superclasses+colors+textures+materials",)

DEFAULT_SYSTEM_PROMPT = (
    "You help build a vocabulary of short visual concepts that explain what an image classifier sees. "
    'Answer with a JSON object of the form {"concepts": ["...", "..."]} holding 3 to 10 short, lowercase '
    "noun or adjective phrases of one to three words each. No sentences, no explanations, no numbering."
)


class PromptTemplate(FrozenModel):
    """One question asked once per class; ``text`` holds ``{class_name}`` where the class goes."""

    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    text: str

    @field_validator("text")
    @classmethod
    def _has_placeholder(cls, v: str) -> str:
        if CLASS_PLACEHOLDER not in v:
            raise ValueError(f"prompt template must contain {CLASS_PLACEHOLDER} where the class name goes")
        return v

    def render(self, class_name: str) -> str:
        # str.replace, not str.format: templates may hold literal JSON braces
        return self.text.replace(CLASS_PLACEHOLDER, class_name)


DEFAULT_TEMPLATES: tuple[PromptTemplate, ...] = tuple(
    PromptTemplate(name=name, text=text)
    for name, text in {
        "features": 'List the most distinguishing visual features and parts that let someone recognise a "{class_name}" in a photo.',
        "appearance": 'List the textures, colours and materials typical of a "{class_name}".',
        "context": 'List the things and scenes most commonly seen around a "{class_name}" in photos.',
        "superclasses": 'List the broader categories (superclasses) that a "{class_name}" belongs to.',
    }.items()
)


class LLMSpec(FrozenModel):
    """How to ask an OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server); ``resolve_llm``
    fills unset fields from the environment.  Reasoning models may need ``temperature``, ``max_tokens`` null."""

    model: str | None = Field(default=None, description="model id; default $OPENAI_MODEL, else gpt-4o-mini")
    base_url: str | None = Field(default=None, description="endpoint, e.g. http://127.0.0.1:8000/v1; default $OPENAI_BASE_URL, else OpenAI")
    api_key: SecretStr | None = Field(default=None, description="default $OPENAI_API_KEY (never logged)")
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    templates: tuple[PromptTemplate, ...] = DEFAULT_TEMPLATES
    temperature: float | None = Field(default=0.0, ge=0.0, le=2.0)
    seed: int | None = 0
    max_tokens: int | None = Field(default=512, ge=16)
    response_format: Literal["json_object", "json_schema", "off"] = Field(
        default="json_object", description="structured-output mode sent to the server; 'off' for servers without it"
    )
    concurrency: int = Field(default=8, ge=1, description="requests in flight at once, per task")
    classes_per_task: int = Field(default=50, ge=1, description="classes per flow task (the unit of work)")
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(
        default=5, ge=0, description="the openai client's retries of one request after 429, 5xx, timeouts (its backoff)"
    )
    answer_retries: int = Field(default=2, ge=0, description="re-asks after an answer that is not valid JSON")

    @field_validator("templates")
    @classmethod
    def _unique_names(cls, v: tuple[PromptTemplate, ...]) -> tuple[PromptTemplate, ...]:
        names = [t.name for t in v]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"prompt templates need distinct names, got {names}")
        return v


class FilterSpec(FrozenModel):
    """How candidate concepts are cleaned, filtered and deduplicated.  The dedup threshold is a cosine
    similarity of MiniLM sentence embeddings; measured with the bundled all-MiniLM-L6-v2: 'wood table'/
    'wooden table' 0.97, 'long tail'/'long tails' 0.92, 'metal'/'metallic' 0.88, 'ocean'/'sea' 0.87,
    'light blue'/'dark blue' 0.87, 'wheel'/'wheels' 0.86, 'black fur'/'white fur' 0.81, 'red'/'blue'
    0.73; 0.88 merges spelling and inflection variants while keeping different colours apart."""

    max_words: int = Field(default=4, ge=1, description="drop concepts with more words")
    max_chars: int = Field(default=40, ge=1, description="drop concepts with more characters")
    class_names: Literal["off", "exact", "contains"] = Field(
        default="exact",
        description="drop an LLM concept that restates the class it was asked for: equal to it, or containing it",
    )
    dedup_threshold: float | None = Field(default=0.88, gt=0.0, le=1.0, description="null disables dedup")
    dedup_curated: bool = Field(
        default=False, description="also merge built-in and file concepts into each other (not only LLM ones)"
    )
    embedding_model: str | None = Field(default=None, description="sentence-transformers path; default bundled MiniLM")
    min_count: int = Field(default=1, ge=1, description="keep concepts proposed at least this often")


class VocabularySpec(FrozenModel):
    """Which vocabulary to build (``VocabularyConfig`` adds the run store it goes to; ``ExplainConfig.vocabulary``)."""

    classes: str = Field(default="imagenet", description="imagenet | places365 | FILE with one class per line")
    places365_file: str | None = Field(
        default=None, description="Places365 class list (categories_places365.txt); not shipped offline"
    )
    sources: tuple[str, ...] = Field(
        default=DEFAULT_SOURCES,
        description="union of: llm, builtin:NAME[+NAME...], file:PATH",
    )
    llm: LLMSpec = LLMSpec()
    filter: FilterSpec = FilterSpec()
    name: str = Field(default="vocabulary", pattern=r"^[A-Za-z0-9_.\-]+$", description="artifact stem")
    cache_dir: str | None = Field(
        default=None, description="shared LLM answer cache (local path or s3://), read and written besides the run's own"
    )

    @field_validator("sources", mode="before")
    @classmethod
    def _split_sources(cls, v: Any) -> tuple[str, ...]:
        # imported here so that the CLI reads DEFAULT_SOURCES without fsspec (sources' file reading): --help start time
        from neuroscribe.vocabulary.sources import parse_source

        items = v.split(",") if isinstance(v, str) else list(v)
        specs = tuple(s.strip() for s in items if s and s.strip())
        if not specs:
            raise NeuroscribeError("no concept source given; pass --source llm, builtin:NAME or file:PATH")
        for spec in specs:
            parse_source(spec)
        return specs


class VocabularyConfig(VocabularySpec, StoreConfig):
    """One vocabulary build (the ``vocabulary`` flow); its layout: ``neuroscribe.vocabulary.artifact``."""

"""Vision-language scoring: which concept of a vocabulary best describes a unit's top patches.

    backend = make_backend(OpenClipSpec(checkpoint="vitb32.pt"))   # or ConseSpec()
    concepts = concept_embeddings(backend, vocab.concepts, cache_uri=store, vocab_hash=vocab.content_hash)
    patches = [backend.embed_images(crops) for crops in unit_crops]                 # one [P_u, d] per unit
    results = explain_units("percentile", patches, concepts, vocab.concepts)        # list[UnitScore]

One algorithm per module: ``backend`` (interface, specs), ``factory``, ``open_clip_backend``, ``conse``,
``concepts`` (cached), ``colour``, ``percentile`` (default rule), ``seed_rule``, ``softwpmi``, ``rules``.
"""

from neuroscribe.scoring.backend import (
    BackendSpec,
    ConseSpec,
    ImageTextBackend,
    OpenClipSpec,
)
from neuroscribe.scoring.concepts import concept_cache_key, concept_embeddings
from neuroscribe.scoring.factory import make_backend
from neuroscribe.scoring.percentile import percentile_scores
from neuroscribe.scoring.rules import (
    INACTIVE,
    RULES,
    UNCERTAIN_BELOW,
    RuleSpec,
    UnitScore,
    explain_units,
)
from neuroscribe.scoring.seed_rule import seed_scores
from neuroscribe.scoring.softwpmi import (
    softwpmi_from_activations,
    softwpmi_scores,
    top_image_embeddings,
)

__all__ = [
    "INACTIVE",
    "RULES",
    "UNCERTAIN_BELOW",
    "BackendSpec",
    "ConseSpec",
    "ImageTextBackend",
    "OpenClipSpec",
    "RuleSpec",
    "UnitScore",
    "concept_cache_key",
    "concept_embeddings",
    "explain_units",
    "make_backend",
    "percentile_scores",
    "seed_scores",
    "softwpmi_from_activations",
    "softwpmi_scores",
    "top_image_embeddings",
]

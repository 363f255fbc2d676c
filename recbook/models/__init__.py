"""Models of the course, and the one registry of the recommenders that can be fitted by name.

:data:`MODELS` maps each name that :func:`recbook.pipeline.fit_recommender` and ``python -m recbook train --model``
accept to a :class:`ModelSpec`: its kind (``baseline``, ``sequential`` or ``bert``), its class, the training
objective of a sequential model, and whether it is also evaluated under full ranking. Every other list of
names (:data:`MODEL_NAMES`, :data:`BERT_MODELS`, :data:`SEQUENTIAL_MODELS`, ``recbook.models.baselines.BASELINES``)
is derived from it.

Importing this package is light (standard library only): a spec names its class by import path, and the
class — with torch — is imported only when it is asked for (:meth:`ModelSpec.load_class`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

KINDS = ("baseline", "sequential", "bert")


@dataclass(frozen=True)
class ModelSpec:
    """One recommender the course fits by name."""

    name: str
    kind: str  # one of KINDS
    cls: str  # "module:Class" inside recbook.models
    objective: str | None = None  # sequential models: "causal" (SASRec) or "cloze" (BERT4Rec)
    full_ranking: bool = True  # False: scoring every catalogue item is too slow (one BERT pass per item)
    options: Callable | None = None  # (profile, seed) -> constructor keyword arguments (baselines)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"model {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")

    def load_class(self):
        """The model's class (imports its module, and torch, on first use)."""
        module, _, attr = self.cls.partition(":")
        return getattr(import_module(f"{__name__}.{module}"), attr)

    def protocols(self) -> tuple[str, ...]:
        """The evaluation protocols the model is reported under."""
        return ("sampled", "full") if self.full_ranking else ("sampled",)


def _mf_options(profile, seed: int) -> dict:
    return {"dim": 32, "epochs": profile.mf_epochs, "weight_decay": 1e-4, "seed": seed}


MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("pop", "baseline", "baselines:Popularity"),
    ModelSpec("itemknn", "baseline", "baselines:ItemKNN"),
    ModelSpec("mf", "baseline", "baselines:MatrixFactorization", options=_mf_options),
    ModelSpec("sasrec", "sequential", "sequential:SequentialRecommender", objective="causal"),
    ModelSpec("bert4rec", "sequential", "sequential:SequentialRecommender", objective="cloze"),
    ModelSpec("cross-encoder", "bert", "cross_encoder:CrossEncoder", full_ranking=False),
    ModelSpec("two-tower", "bert", "two_tower:TwoTower"),
)}

MODEL_NAMES: tuple[str, ...] = tuple(MODELS)
BASELINE_MODELS: tuple[str, ...] = tuple(n for n, s in MODELS.items() if s.kind == "baseline")
BERT_MODELS: tuple[str, ...] = tuple(n for n, s in MODELS.items() if s.kind == "bert")
SEQUENTIAL_MODELS: dict[str, str] = {n: s.objective for n, s in MODELS.items() if s.kind == "sequential"}  # name → objective


def model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``; ``ValueError`` naming the choices for an unknown one."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}") from None

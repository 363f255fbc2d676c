"""The course's recommenders, one file each, and the one registry that names them.

Every model answers the contract of :mod:`recbook.models.base` (``fit`` / ``score`` / ``score_all`` /
``save_pretrained`` / ``from_pretrained`` / ``get_config``). :data:`MODELS` maps each name that
``python -m recbook train --model`` and :func:`create` accept to the class that implements it (by import path: importing
this package is light, standard library only; the class — with torch — is imported when asked for). Adding a model
is one file plus one line here.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module


@dataclass(frozen=True)
class ModelSpec:
    """One recommender the course fits by name: its class (``"module:Class"`` inside recbook.models) and a summary."""

    name: str
    cls: str
    summary: str

    def load_class(self) -> type:
        """The model's class (imports its module, and torch, on first use)."""
        module, _, attr = self.cls.partition(":")
        return getattr(import_module(f"{__name__}.{module}"), attr)


MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("pop", "popularity:Popularity", "most-interacted items first, the same list for everyone"),
    ModelSpec("itemknn", "itemknn:ItemKNN", "item-to-item cosine similarity over co-occurrence"),
    ModelSpec("mf", "mf:MatrixFactorization", "matrix factorisation trained with BPR"),
    ModelSpec("ease", "ease:EASE", "closed-form linear item-to-item model (Steck 2019)"),
    ModelSpec("sasrec", "sasrec:SASRec", "causal transformer over the item sequence (next item)"),
    ModelSpec("bert4rec", "sasrec:BERT4Rec", "bidirectional transformer over the item sequence (cloze)"),
    ModelSpec("lmrec", "lmrec:LMRec", "SASRec over items represented by a fine-tuned language model (text) and an ID"),
    ModelSpec("cross-encoder", "cross_encoder:CrossEncoderRecommender", "fine-tuned BERT reading (history, candidate) text pairs"),
    ModelSpec("two-tower", "two_tower:TwoTowerRecommender", "fine-tuned BERT embedding history text and item text apart"),
)}

MODEL_NAMES: tuple[str, ...] = tuple(MODELS)
SEQUENTIAL_MODELS: tuple[str, ...] = ("sasrec", "bert4rec", "lmrec")  # the retrievers a serving bundle accepts (a SASRec network)


def model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``; a :class:`recbook.errors.ConfigError` (field ``model``) naming the choices."""
    try:
        return MODELS[name]
    except KeyError:
        from recbook.errors import ConfigError

        raise ConfigError("model", f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}") from None


def model_class(name: str) -> type:
    """The :class:`recbook.models.base.Recommender` subclass registered as ``name``."""
    return model_spec(name).load_class()


def config_fields(name: str) -> set[str]:
    """The hyperparameters model ``name`` accepts (the fields of its config dataclass)."""
    from dataclasses import fields

    return {f.name for f in fields(model_class(name).config_class)}


def create(name: str, profile=None, **overrides):
    """An unfitted model ``name``: its config as the profile implies (:meth:`ModelConfig.from_profile`), then ``overrides``."""
    from recbook.models.base import build_config

    cls = model_class(name)
    return cls(cls.config_class.from_profile(profile, **overrides) if profile is not None else build_config(cls.config_class, overrides))

"""Profiles: one object that holds every size the notebooks use.

Taught in notebook ``00_setup`` (also re-exported by :mod:`recbook.perf.device`, where it used to live).

A notebook never scatters magic numbers: ``quick`` fits a 2-core laptop CPU (each notebook in a few
minutes), ``full`` reproduces the results tables on a GPU/TPU. Importing this module is light (standard
library only): the command line reads the profile names for its ``--help``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

PROFILE_ENV = "RECBOOK_PROFILE"


@dataclass(frozen=True)
class Profile:
    """Every size a notebook uses. Read it in the notebook's ``parameters`` cell.

    ``quick`` keeps each notebook within a few minutes on a 2-core CPU;
    ``full`` is the size the results tables are produced at (GPU/TPU).
    """

    name: str
    # synthetic catalogue
    n_users: int
    n_items: int
    # how many users of MovieLens-100k a notebook uses (None = all 943)
    movielens_users: int | None
    # text pairs
    n_negatives: int  # sampled negatives per training positive
    eval_negatives: int  # negatives per held-out item under the sampled protocol
    max_length: int  # tokens per (history, candidate) pair
    max_history_items: int
    # training
    batch_size: int
    epochs: int
    learning_rate: float
    # logistic-regression recommender of notebook 01
    logreg_steps: int
    # BERT fine-tuning (notebooks 06–10): optimizer steps (None = all epochs) and test users scored
    # by BERT models (None = all; a cross-encoder needs one BERT pass per candidate)
    bert_max_steps: int | None = None
    bert_eval_users: int | None = None
    mf_epochs: int = 30
    # sequential recommenders (notebook 04): seconds of training per model (early stopping may end sooner)
    seq_time_budget: float | None = 600.0
    # SASRec / BERT4Rec sizes: width, transformer blocks, items of history read
    seq_dim: int = 64
    seq_layers: int = 2
    seq_max_len: int = 50


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        n_users=600,
        n_items=400,
        movielens_users=300,
        n_negatives=2,
        eval_negatives=99,
        max_length=80,
        max_history_items=5,
        batch_size=16,
        epochs=1,
        learning_rate=1e-4,
        logreg_steps=300,
        bert_max_steps=60,
        bert_eval_users=50,
        mf_epochs=30,
        seq_time_budget=600.0,  # a guard only: training stops by patience (a slower machine trains the same model, later)
    ),
    "full": Profile(
        name="full",
        n_users=6000,
        n_items=3000,
        movielens_users=None,
        n_negatives=4,
        eval_negatives=99,
        max_length=256,
        max_history_items=30,
        batch_size=64,
        epochs=3,
        learning_rate=3e-5,
        logreg_steps=1000,
        bert_max_steps=None,
        bert_eval_users=None,
        mf_epochs=50,
        seq_time_budget=None,
        seq_dim=128,
        seq_layers=2,
        seq_max_len=100,
    ),
}


def get_profile(name: str | None = None, **overrides) -> Profile:
    """Return the active :class:`Profile`.

    Order: ``name`` if given, else ``$RECBOOK_PROFILE``, else ``"full"`` on a GPU/TPU
    and ``"quick"`` on a CPU. Keyword ``overrides`` replace single fields
    (``get_profile("quick", epochs=2)``).
    """
    source = "argument"
    if name is None:
        name = os.environ.get(PROFILE_ENV) or None
        source = f"${PROFILE_ENV}"
    if name is None:
        name = "full" if _accelerator_present() else "quick"
    key = str(name).strip().lower()
    if key not in PROFILES:
        raise ValueError(
            f"unknown profile {name!r} (from {source}); choose one of {sorted(PROFILES)}, "
            f"e.g. `export {PROFILE_ENV}=quick`."
        )
    profile = PROFILES[key]
    if overrides:
        fields = {f.name for f in dataclasses.fields(Profile)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ValueError(f"unknown profile field(s) {unknown}; valid fields: {sorted(fields)}")
        profile = dataclasses.replace(profile, **overrides)
    return profile


def _accelerator_present() -> bool:
    try:
        import importlib.util

        import torch

        return torch.cuda.is_available() or importlib.util.find_spec("torch_xla") is not None
    except ImportError:  # pragma: no cover
        return False

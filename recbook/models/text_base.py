"""What the course's fine-tuned BERT recommenders share: a config, the catalogue's texts, histories written as text,
and files (the encoder's ``save_pretrained`` folder beside ``config.json``).

Taught in notebook ``06_finetune_bert``. :class:`recbook.models.cross_encoder.CrossEncoderRecommender` and
:class:`recbook.models.two_tower.TwoTowerRecommender` build on it.

A history is written as its most recent items first, ``"Title (Genre, Genre) ; Title (Genre)"``, within two budgets:
``max_history_items`` items and :func:`recbook.data.text.history_token_budget` tokens (the rest of ``max_length`` is
the candidate's). The texts of the catalogue are kept with the model (``catalogue.json``), so a saved model scores
histories of item ids without the dataset it was trained on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recbook.data.text import HISTORY_FIELD, HISTORY_SEPARATOR, _most_recent_within_budget, _token_counts, history_entries, history_token_budget
from recbook.errors import ConfigError, positive_int
from recbook.models.base import Histories, ModelConfig, Recommender, build_config

PEFT_METHODS = ("lora", "prefix", "ia3")


@dataclass
class TextRecConfig(ModelConfig):
    """A fine-tuned BERT recommender: the backbone, text sizes and the fine-tuning budget."""

    backbone: str | None = None  # a folder, a Hub id, or None = the offline all-MiniLM-L6-v2
    max_length: int = 80  # tokens per (history, candidate) pair
    max_history_items: int = 5
    n_negatives: int = 2  # sampled negatives per training positive (cross-encoder)
    batch_size: int = 16
    epochs: int = 1
    max_steps: int | None = 60  # optimizer steps (None = all epochs)
    lr: float = 1e-4
    peft: str | None = None  # "lora" | "prefix" | "ia3" | None (all weights)
    history_field: str = HISTORY_FIELD
    eval_every: int | None = None  # optimizer steps between validations (with an evaluate_fn); None = each epoch
    patience: int | None = None  # early stopping: validations in a row without improvement

    def __post_init__(self):
        for name in ("max_length", "max_history_items", "batch_size", "epochs"):
            positive_int(getattr(self, name), name)
        positive_int(self.n_negatives, "n_negatives", 0)
        if self.max_steps is not None:
            positive_int(self.max_steps, "max_steps")
        if self.peft is not None and self.peft not in PEFT_METHODS:
            raise ConfigError("peft", f"peft must be one of {', '.join(PEFT_METHODS)} (or None), got {self.peft!r}")
        if not self.lr > 0:
            raise ConfigError("lr", f"lr must be > 0, got {self.lr}")

    @classmethod
    def from_profile(cls, profile, **overrides) -> "TextRecConfig":
        sizes = {"max_length": profile.max_length, "max_history_items": profile.max_history_items, "n_negatives": profile.n_negatives,
                 "batch_size": profile.batch_size, "epochs": profile.epochs, "max_steps": profile.bert_max_steps, "lr": profile.learning_rate}
        return build_config(cls, {**sizes, **overrides})

    def train_config(self, progress: bool = False, device: str | None = None, **overrides):
        """The fine-tuning settings: AdamW, warm-up 10%, clipping 1.0, AMP where the device has it."""
        from recbook.training.loop import TrainConfig

        params = dict(epochs=self.epochs, max_steps=self.max_steps, lr=self.lr, weight_decay=0.01, warmup_ratio=0.1, grad_clip=1.0,
                      amp="auto", seed=self.seed, progress=progress, device=device, log_every=10, eval_every=self.eval_every,
                      patience=self.patience)
        return TrainConfig(**{**params, **overrides})

    def as_profile(self):
        """The fields the course's data helpers read from a profile, as a :class:`recbook.profile.Profile`."""
        import dataclasses

        from recbook.profile import PROFILES

        return dataclasses.replace(PROFILES["quick"], max_length=self.max_length, max_history_items=self.max_history_items,
                                   n_negatives=self.n_negatives, batch_size=self.batch_size, epochs=self.epochs,
                                   bert_max_steps=self.max_steps, learning_rate=self.lr)


class TextRecommender(Recommender):
    """Base of the BERT recommenders: catalogue texts, history texts, the encoder's files."""

    config_class = TextRecConfig
    tokenizer = None

    # -- catalogue and histories ----------------------------------------------------------
    def set_catalogue(self, dataset, tokenizer) -> None:
        """Keep the catalogue's item ids, candidate texts and history entries (and each entry's token cost)."""
        items = dataset.items.set_index("item_id").loc[dataset.item_ids]
        self.item_ids = np.asarray(dataset.item_ids)
        self.item_texts = items["text"].astype(str).tolist()
        self.entries = history_entries(dataset, self.config.history_field) if self.config.history_field == HISTORY_FIELD else \
            items[self.config.history_field].astype(str).tolist()
        self.tokenizer = tokenizer
        self._costs = None

    def entry_costs(self) -> np.ndarray:
        if self._costs is None:
            self._costs = _token_counts(self.entries, self.tokenizer) + _token_counts([HISTORY_SEPARATOR.strip()], self.tokenizer)[0]
        return self._costs

    def history_texts(self, histories: Histories, budget: int | None = None, leave_out=None) -> list[str]:
        """Each history as text, most recent first within the item and token budgets. ``leave_out``: one item id per
        history not to write (a candidate that is itself in the history)."""
        budget = history_token_budget(self.config.max_length) if budget is None else budget
        costs = self.entry_costs()
        out = []
        for r, h in enumerate(histories.items):
            cols = self.item_columns(h)
            cols = cols[cols >= 0]
            if leave_out is not None:
                cols = cols[cols != leave_out[r]]
            chosen = _most_recent_within_budget(cols, costs, self.config.max_history_items, budget)
            out.append(HISTORY_SEPARATOR.join(self.entries[j] for j in chosen))
        return out

    def load_encoder(self):
        """``(encoder, tokenizer)`` of the configured backbone (:func:`recbook.models.backbone.load_backbone`)."""
        from recbook.models.backbone import load_backbone

        return load_backbone(self.config.backbone)

    def fine_tune(self, network, loader, progress: bool, device: str, evaluate_fn=None):
        """Train ``network`` on ``loader`` with the config's budget (through a PEFT adapter when ``peft`` is set; LoRA
        is merged back afterwards). Returns the trained network. ``evaluate_fn(recommender)`` (validation metrics) is
        called with this recommender holding the network being trained."""
        from recbook.training.loop import train_model

        if self.config.peft is not None:
            from recbook.finetune.peft import apply_peft

            network = apply_peft(network, self.config.peft)

        def validate(net):
            self.network = net
            self.forget_cache()
            return evaluate_fn(self)

        self.train_result = train_model(network, loader, self.config.train_config(progress, device), validate if evaluate_fn else None)
        self.forget_cache()
        self.train_seconds = self.train_result.seconds
        if self.config.peft == "lora":
            from recbook.finetune.peft import merge_lora

            network = merge_lora(network)
        return network

    def forget_cache(self) -> None:
        """Drop what was computed with earlier weights (e.g. cached item vectors)."""

    # -- files --------------------------------------------------------------------------
    def save_encoder_files(self, folder: Path, encoder) -> None:
        encoder.save_pretrained(folder / "encoder", safe_serialization=True)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(folder / "encoder")
        (folder / "catalogue.json").write_text(json.dumps({"item_texts": self.item_texts, "entries": self.entries}))

    def load_encoder_files(self, folder: Path):
        """The saved encoder (BERT's pooler left out, as it was saved) and tokenizer; the catalogue texts."""
        from transformers import AutoModel

        from recbook.models.backbone import load_tokenizer

        catalogue = json.loads((Path(folder) / "catalogue.json").read_text())
        self.item_texts, self.entries, self._costs = catalogue["item_texts"], catalogue["entries"], None
        self.tokenizer = load_tokenizer(Path(folder) / "encoder")
        try:
            return AutoModel.from_pretrained(Path(folder) / "encoder", add_pooling_layer=False)
        except TypeError:  # an architecture without that option
            return AutoModel.from_pretrained(Path(folder) / "encoder")

    def device(self) -> str:
        from recbook.perf.device import detect_device

        return detect_device()


def bert_config(profile, seed: int = 0, progress: bool = True, device: str | None = None, **overrides):
    """The fine-tuning settings a profile implies for a BERT network trained outside a recommender (re-rankers,
    distributed training): :meth:`TextRecConfig.train_config`."""
    return TextRecConfig.from_profile(profile, seed=seed).train_config(progress, device, **overrides)


def bert_scorer(model, tokenizer, dataset, history, profile, device: str, amp: str = "auto"):
    """The test-time scorer of a cross-encoder or two-tower *network* (e.g. one being trained or compressed): the
    network names its scorer class (``scorer_class``), so no caller branches on the network's kind."""
    from recbook.training.loop import autocast_dtype

    scorer_class = getattr(model, "scorer_class", None)
    if scorer_class is None:
        raise TypeError(f"{type(model).__name__} names no scorer_class; pass a CrossEncoder or TwoTower network")
    return scorer_class(model, tokenizer, dataset, history, profile.max_length, profile.max_history_items,
                        device=device, amp_dtype=autocast_dtype(amp, device))

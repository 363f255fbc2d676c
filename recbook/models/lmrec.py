"""``lmrec``: the course's fine-tuned language-model recommender.

Taught in notebook ``09_lm_recommender``.

A pretrained sentence encoder (all-MiniLM-L6-v2 by default) is **fine-tuned on what people watch next** and then gives
every catalogue item its vector; a SASRec over the user's history scores items through a table that adds that text
vector (projected) to a learned ID vector (the ``hybrid`` items of :mod:`recbook.models.sequential`). A second softmax
over the text vectors alone, ``text_loss``, makes the text path carry weight of its own — what scores a film nobody has
watched yet; whether it also helps the warm items depends on how much the texts say, so by default (``"auto"``) the fit
tries it on and off on the same fine-tuned vectors and keeps the better on validation. The fine-tuning is the cheap kind
a CPU affords: the lower layers of the encoder are frozen and their outputs cached once per catalogue; only the top ``trainable_layers`` are trained
(:mod:`recbook.models.text_encoder`), with next-item contrastive learning on the training sequences.

Why this shape (measured in notebook 09): on MovieLens a text model alone is far below SASRec, and a cross-encoder that
reads (history, candidate) text pairs costs one BERT pass per candidate per request. Putting the fine-tuned LM into the
*item representation* keeps the per-request cost of a SASRec (one small transformer pass and a matrix product), lets
a brand-new item be recommended from its text alone (cold start), and lets the LM's knowledge of what co-occurs help
items with few interactions (long-tail catalogues). The LM runs when an item enters the catalogue
(:meth:`LMRec.embed_items`), not on every request.

After early stopping on validation, ``refit`` trains afresh on training + validation for the chosen number of epochs, as
the baselines are fitted.

Fused with the ID-only SASRec (:class:`recbook.models.fusion.ScoreFusion`, a product of the two next-item
distributions), lmrec is measured in 09 against the fair control — two ID-only SASRecs fused the same way — so that
what the language model adds is not confused with what any second model adds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from recbook.errors import ConfigError, positive_int
from recbook.models.sasrec import SASRec, SASRecConfig

TEXT_LOSS_CHOICES = (1.0, 0.0)  # what text_loss="auto" tries, in this order (a tie keeps the first)


@dataclass
class LMRecConfig(SASRecConfig):
    item_features: str = "hybrid"
    # How the text path learns to stand alone (what an item never seen in training has): an auxiliary softmax over the
    # text-only item table (text_loss), rather than dropping half the ID vectors at every step (id_dropout, SASRec's
    # hybrid default). On MovieLens-100k (all users, seed 0, validation NDCG@10, before the encoder's length buckets
    # changed its dropout draws): id_dropout 0.5 → 0.1072, 0.25 → 0.1101, 0 → 0.1120, 0 with text_loss 1 → 0.1146; with
    # them, text_loss 1 and 0 tie (0.113390 / 0.113389, notebook 09 prints it). Whether the text loss helps depends on how much the texts say: on the
    # synthetic catalogue it cost validation NDCG@10 (0.2653 against 0.2800 without). So "auto" (the default) fits both
    # (TEXT_LOSS_CHOICES) and keeps the better on validation, at every fit; a number fixes it. Each fit has its own
    # time_budget guard, so "auto" may take up to twice the budget before the refit.
    id_dropout: float = 0.0
    text_loss: float | str = "auto"
    backbone: str | None = None  # the sentence encoder: a folder, a Hub id, or None = the offline all-MiniLM-L6-v2
    trainable_layers: int = 1  # top blocks fine-tuned (0 = the frozen encoder; 6 = every block of MiniLM)
    lm_steps: int = 120  # optimizer steps of the encoder's fine-tuning
    lm_batch_size: int = 128
    lm_lr: float = 1e-4
    lm_temperature: float = 0.05
    lm_context: int = 3  # recent items whose mean vector predicts the next one
    text_max_length: int = 32
    refit: bool = True

    def __post_init__(self):
        if not (self.text_loss == "auto" or (isinstance(self.text_loss, (int, float)) and not isinstance(self.text_loss, bool)
                                             and self.text_loss >= 0)):
            raise ConfigError("text_loss", f"text_loss must be 'auto' (chosen on validation among {TEXT_LOSS_CHOICES}) or a "
                              f"weight >= 0, got {self.text_loss!r}")
        super().__post_init__()
        if self.item_features == "id":
            raise ConfigError("item_features", "lmrec represents items by text: item_features must be 'text' or 'hybrid' "
                              "(use sasrec for ID-only items)", self.item_features)
        positive_int(self.trainable_layers, "trainable_layers", 0)
        positive_int(self.lm_steps, "lm_steps")
        positive_int(self.lm_batch_size, "lm_batch_size", 2)
        positive_int(self.lm_context, "lm_context")
        positive_int(self.text_max_length, "text_max_length", 4)
        if not self.lm_lr > 0 or not self.lm_temperature > 0:
            raise ConfigError("lm_lr", f"lm_lr and lm_temperature must be > 0, got {self.lm_lr}, {self.lm_temperature}")


    def network_config(self, objective: str):
        if self.text_loss == "auto":  # the network of the first choice (fit tries each and keeps the best)
            return replace(self, text_loss=TEXT_LOSS_CHOICES[0]).network_config(objective)
        return super().network_config(objective)


class LMRec(SASRec):
    """SASRec over items represented by a fine-tuned language model (text) plus an ID vector."""

    model_type = "lmrec"
    name = "LM-rec"
    config_class = LMRecConfig
    reference_model = "sasrec"  # the same recipe over IDs alone: what the language model has to add to

    def text_features(self, dataset, split, progress: bool = False) -> np.ndarray:
        """Fine-tune the encoder's top layers on ``split.train`` and return every catalogue item's vector."""
        from recbook.models.backbone import load_backbone
        from recbook.models.text_encoder import finetune_item_encoder

        c = self.config
        encoder, self.tokenizer = load_backbone(c.backbone)
        texts = dataset.items.set_index("item_id").loc[dataset.item_ids, "text"].astype(str).tolist()
        self.encoder_fit = finetune_item_encoder(encoder, self.tokenizer, texts, split.train, dataset.item_ids,
                                                 trainable_layers=c.trainable_layers, steps=c.lm_steps, batch_size=c.lm_batch_size,
                                                 lr=c.lm_lr, temperature=c.lm_temperature, context=c.lm_context,
                                                 max_length=c.text_max_length, seed=c.seed, progress=progress)
        self.top = self.encoder_fit.top
        self.lm_seconds = self.encoder_fit.seconds
        return self.encoder_fit.vectors

    def fit(self, dataset, split, progress: bool = False) -> "LMRec":
        # what was asked for, not what an earlier fit chose: "auto" chooses again on every fit (another data set, another split)
        self.requested_text_loss = getattr(self, "requested_text_loss", self.config.text_loss)
        self.config = replace(self.config, text_loss=self.requested_text_loss)
        super().fit(dataset, split, progress)
        self.train_seconds += self.lm_seconds
        return self

    def select_fit(self, dataset, split, text_features, progress: bool = False):
        """With ``text_loss="auto"`` (hybrid items): fit once per weight of :data:`TEXT_LOSS_CHOICES` on the same
        fine-tuned text vectors, keep the one with the best validation NDCG@10 and set ``config.text_loss`` to its weight
        (what is saved, and what the refit uses). ``text_loss_validation`` maps each weight fitted to its best validation
        NDCG@10. The validation items are the split's (warm items on a cold-item split): the choice is made for the items
        people have watched, and a cold-start deployment may prefer to fix ``text_loss=1``."""
        c = self.config
        if c.text_loss == "auto" and c.item_features != "hybrid":  # text items have no ID path: the weight changes nothing
            self.config = c = replace(c, text_loss=0.0)
        if c.text_loss != "auto":
            fit = self.early_stopped_fit(dataset, split, text_features, progress)
            self.text_loss_validation = {float(c.text_loss): fit.result.best_metric}
            return fit
        fits = {w: self.early_stopped_fit(dataset, split, text_features, progress, replace(c, text_loss=w))
                for w in TEXT_LOSS_CHOICES}
        self.text_loss_validation = {w: f.result.best_metric for w, f in fits.items()}
        chosen = max(fits, key=lambda w: -np.inf if fits[w].result.best_metric is None else fits[w].result.best_metric)  # ties: the first
        self.config = replace(self.config, text_loss=chosen)
        self.train_seconds += sum(f.train_seconds for w, f in fits.items() if w != chosen)
        return fits[chosen]

    def embed_items(self, texts) -> np.ndarray:
        """Vectors of new item texts from the fine-tuned encoder (the frozen lower layers are the backbone's): what a
        catalogue refresh runs for items that arrive after training. They enter the model's item table through its
        learned projection, exactly as the trained items' vectors do."""
        from recbook.models.backbone import load_backbone
        from recbook.models.text_encoder import cache_lower_layers

        encoder, tokenizer = load_backbone(self.config.backbone)
        states, mask = cache_lower_layers(encoder, tokenizer, texts, self.top.frozen_layers, self.config.text_max_length)
        return self.top.embed(states, mask)

    def state(self) -> dict:
        out = super().state()
        out.update({f"lm_top.{k}": v for k, v in self.top.state_dict().items()})
        return out

    def load_state(self, arrays, folder) -> None:
        from recbook.models.backbone import load_backbone
        from recbook.models.text_encoder import TopLayers

        top = {k.removeprefix("lm_top."): torch.from_numpy(v) for k, v in arrays.items() if k.startswith("lm_top.")}
        super().load_state({k: v for k, v in arrays.items() if not k.startswith("lm_top.")}, folder)
        encoder, _ = load_backbone(self.config.backbone)
        self.top = TopLayers(encoder, self.config.trainable_layers)
        self.top.load_state_dict(top)
        self.top.eval()

"""Knowledge distillation: a small student cross-encoder learns from the fine-tuned teacher.

Taught in notebook ``12_distillation``.

The student is the teacher with fewer encoder layers (:func:`make_student` keeps chosen layers, e.g.
the first and the last, so it starts from trained weights rather than from scratch). It is trained
by the course loop (:func:`recbook.training.loop.train_model`) on :class:`Distiller`'s loss::

    loss = α·BCE(z_s, y) + (1 − α)·T²·BCE(z_s / T, σ(z_t / T))  [+ β·MSE(student hidden, teacher hidden)]

The soft term passes on *how sure* the teacher is about each pair — more information per example
than the 0/1 label; the temperature ``T`` softens both sides, ``T²`` keeps the gradient scale.
The optional hidden-state term matches each student layer to the teacher layer it was copied from.
"""

from __future__ import annotations

import copy

import torch

from recbook.compress.prune import drop_layers
from recbook.training.losses import bce_with_logits, distillation_bce


def make_student(teacher: torch.nn.Module, layers) -> torch.nn.Module:
    """A copy of the cross-encoder ``teacher`` keeping only encoder ``layers`` (e.g. ``[0, 5]``), head included."""
    student = copy.deepcopy(teacher)
    student.encoder = drop_layers(student.encoder, layers)
    for p in student.parameters():  # the teacher may be frozen (a Distiller froze it): the student trains
        p.requires_grad_(True)
    return student


class Distiller(torch.nn.Module):
    """Wraps ``student`` and a frozen ``teacher`` so ``train_model`` trains the student on the distillation loss.

    ``layer_map`` (student layer → teacher layer, e.g. ``{0: 0, 1: 5}``) with ``hidden_weight > 0`` adds
    the hidden-state term. Only the student's parameters are trained; the teacher stays in eval mode.
    """

    def __init__(self, student, teacher, temperature: float = 2.0, alpha: float = 0.5, hidden_weight: float = 0.0,
                 layer_map: dict[int, int] | None = None):
        super().__init__()
        if hidden_weight > 0 and not layer_map:
            raise ValueError("hidden_weight > 0 needs layer_map (student layer → teacher layer)")
        self.student, self.teacher = student, teacher
        self.temperature, self.alpha, self.hidden_weight = temperature, alpha, hidden_weight
        self.layer_map = dict(layer_map or {})
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # no dropout in the teacher: its targets must be deterministic
        return self

    @staticmethod
    def _logits_and_hidden(model, batch, hidden: bool):
        return model.logits_and_hidden(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"), hidden)

    def training_loss(self, batch: dict) -> torch.Tensor:
        hidden = self.hidden_weight > 0
        student_logits, student_hidden = self._logits_and_hidden(self.student, batch, hidden)
        if self.alpha == 1.0 and not hidden:  # labels only: the teacher is not needed (a baseline to compare with)
            return bce_with_logits(student_logits, batch["labels"])
        with torch.no_grad():
            teacher_logits, teacher_hidden = self._logits_and_hidden(self.teacher, batch, hidden)
        loss = distillation_bce(student_logits, teacher_logits, batch["labels"], self.temperature, self.alpha)
        if hidden:
            mask = batch["attention_mask"].unsqueeze(-1).float()
            mse = sum(((student_hidden[s + 1].float() - teacher_hidden[t + 1].float()) ** 2 * mask).sum() / (mask.sum() * mask.new_tensor(student_hidden[s + 1].shape[-1]))
                      for s, t in self.layer_map.items())
            loss = loss + self.hidden_weight * mse / len(self.layer_map)
        return loss



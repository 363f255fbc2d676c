"""A smaller user encoder distilled from the trained sequential recommender: what makes each request cheaper.

Taught in the request benchmark (:mod:`recbook.compress.request`, ``python -m recbook bench --target request``).

A request runs the sequential model's user encoder once over the user's last ``max_len`` items, then scores the item
table. The table is the language model's work, done offline; the encoder is what every request pays for. The student
here keeps the teacher's item table (so nothing about the items changes, cold items included) and replaces its encoder
by a cheaper one that reads only the last ``window`` items: a shallower transformer (``layers`` blocks), started from
the teacher's own weights — its last ``layers`` blocks, the position vectors of the last ``window`` positions, the final
norm — or an MLP with no attention at all, started from random weights. Either is trained to match the teacher's next-item distribution over the catalogue (a softened softmax, temperature ``T``; Hinton
et al. 2015) mixed with the true next item (weight ``alpha``), on every prefix of every training sequence. Training stops
on validation NDCG@10 (patience), never on time: a time budget only guards, and the fit says when it fired.

What the student sees: the prefixes of ``split.train`` — not each user's last transition (training → validation item),
which a teacher refitted on training + validation (lmrec's default) has seen. Its validation score is therefore
optimistic (the teacher's soft targets know the validation items) and is used only to stop; the test users, whose
histories the student then reads in full, decide the verdicts.

The production libraries for the same idea on a transformer are TextBrewer and Hugging Face's distillation examples; here
the student is small enough that the loop is the course's own (:func:`recbook.training.loop.train_model`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from recbook.compress.request_variants import STUDENT_WINDOW
from recbook.errors import ConfigError

STUDENT_KINDS = ("transformer", "mlp")


@dataclass(frozen=True)
class StudentConfig:
    kind: str = "transformer"  # "transformer": the teacher's own shape, shallower; "mlp": no attention at all
    layers: int = 1  # transformer: blocks of the student (the teacher's last ``layers`` are its starting point)
    window: int = STUDENT_WINDOW  # the last items of the history the student reads
    hidden: int = 256  # mlp: width of its hidden layer
    temperature: float = 2.0  # softens both distributions in the distillation term
    alpha: float = 0.3  # weight of the true next item's cross-entropy (1 - alpha: the teacher's distribution)
    epochs: int = 40  # at most; patience on validation NDCG@10 usually stops sooner
    patience: int = 4
    lr: float = 1e-3
    batch_size: int = 256
    seed: int = 0
    time_budget: float | None = None  # seconds: a guard, reported when it fires

    def __post_init__(self):
        if self.kind not in STUDENT_KINDS:
            raise ConfigError("kind", f"student kind must be one of {', '.join(STUDENT_KINDS)}, got {self.kind!r}", self.kind)
        for name in ("layers", "window", "hidden", "epochs", "patience", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(name, f"student {name} must be a positive integer, got {value!r}", value)
        for name in ("temperature", "lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(name, f"student {name} must be > 0, got {getattr(self, name)!r}", getattr(self, name))
        if self.time_budget is not None and not self.time_budget > 0:
            raise ConfigError("time_budget", f"student time_budget must be > 0 seconds or None, got {self.time_budget!r}", self.time_budget)
        if not 0 <= self.alpha <= 1:
            raise ConfigError("alpha", f"student alpha must be in [0, 1] (the weight of the true next item), got {self.alpha}", self.alpha)


@dataclass
class StudentFit:
    student: "StudentEncoder"
    config: StudentConfig
    result: object  # recbook.training.loop.TrainResult
    train_seconds: float
    prefixes: int

    @property
    def stop_reason(self) -> str:
        return self.result.stop_reason or "epoch limit"


def prefixes(sequences: dict, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Every proper prefix of every sequence as a left-padded row of its last ``max_len`` items, and the item that
    followed it: ``(inputs (P, max_len), targets (P,))``. A sequence of length ``n`` gives ``n - 1`` prefixes."""
    from recbook.data.windows import _left_pad

    rows, targets = [], []
    for seq in sequences.values():
        seq = np.asarray(seq, dtype=np.int64)
        for t in range(1, len(seq)):
            rows.append(_left_pad(seq[:t], max_len))
            targets.append(seq[t])
    if not rows:
        raise ValueError("no sequence has two or more items: there is no prefix to distil on")
    return np.stack(rows), np.asarray(targets, dtype=np.int64)


def transformer_student(teacher, layers: int, window: int):
    """A :class:`~recbook.models.sequential.SequentialRecommender` that reads the teacher's item table (frozen, as its
    ``text`` features through an identity projection) with ``layers`` blocks over the last ``window`` positions, started
    from the teacher's last ``layers`` blocks, last ``window`` position vectors, final norm and [MASK] vector."""
    from recbook.models.sequential import SequentialRecommender

    if layers > len(teacher.blocks):
        raise ConfigError("layers", f"a student of {layers} blocks cannot start from a teacher of {len(teacher.blocks)}", layers)
    with torch.no_grad():
        table = teacher.item_table().detach().clone()
    n = teacher.n_items
    config = replace(teacher.config, item_features="text", layers=layers, max_len=window, id_dropout=0.0, text_loss=0.0,
                     history_dropout=0.0)
    student = SequentialRecommender(n, config, text_features=table[1 : n + 1].numpy(),
                                    known_items=teacher.known_items[1 : n + 1].cpu().numpy())
    with torch.no_grad():
        student.text_proj.weight.copy_(torch.eye(config.dim))
        student.text_proj.bias.zero_()
        student.pos_emb.weight.copy_(teacher.pos_emb.weight[-window:])
        student.mask_emb.copy_(teacher.mask_emb)
        for mine, theirs in zip(student.blocks, list(teacher.blocks)[-layers:]):
            mine.load_state_dict(theirs.state_dict())
        student.ln_f.load_state_dict(teacher.ln_f.state_dict())
    student.text_proj.requires_grad_(False)  # the item table is the teacher's: only the encoder learns
    return student


class StudentEncoder(torch.nn.Module):
    """A user encoder that scores with the teacher's item table: ``encode_last(seq, x)`` maps the last ``window`` items
    (``seq`` left-padded indices, ``x = item_table()[seq]``) to the user vector, as the teacher's does — so the request
    benchmark exports, quantizes and times it exactly like the teacher.

    ``kind="transformer"``: :func:`transformer_student`. ``kind="mlp"``: no attention — the last ``window`` item vectors
    side by side, one hidden layer, back to the table's width (a Caser-like reading of the recent items); a request then
    costs two matrix–vector products instead of a transformer pass."""

    def __init__(self, teacher, config: StudentConfig):
        super().__init__()
        if config.window > teacher.config.max_len:
            raise ConfigError("window", f"the student reads at most the teacher's {teacher.config.max_len} items, got "
                              f"window={config.window}", config.window)
        with torch.no_grad():
            table = teacher.item_table().detach().clone()
        self.kind, self.n_items, self.window = config.kind, teacher.n_items, config.window
        self.register_buffer("table", table)
        self.register_buffer("known_items", teacher.known_items.clone())
        self.config = replace(teacher.config, max_len=config.window, layers=config.layers)  # what export reads (max_len)
        if config.kind == "transformer":
            self.net = transformer_student(teacher, config.layers, config.window)
        else:
            dim = table.shape[1]
            self.net = torch.nn.Sequential(torch.nn.Linear(config.window * dim, config.hidden), torch.nn.GELU(),
                                           torch.nn.Linear(config.hidden, dim))

    def item_table(self) -> torch.Tensor:
        return self.table

    def encode_last(self, seq: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "transformer":
            return self.net.encode_last(seq, x)
        return self.net(x.reshape(x.shape[0], -1))

    @torch.no_grad()
    def user_vectors(self, histories: list[np.ndarray]) -> torch.Tensor:
        from recbook.data.windows import _left_pad

        seq = torch.from_numpy(np.stack([_left_pad(np.asarray(h, dtype=np.int64), self.window) for h in histories]))
        seq = seq.to(self.table.device)
        return self.encode_last(seq, self.table[seq])

    @torch.no_grad()
    def score_all(self, histories: list[np.ndarray]) -> np.ndarray:
        """``(len(histories), n_items)`` scores of every catalogue item: what
        :class:`~recbook.models.sequential.SequentialScorer` reads."""
        return (self.user_vectors(histories) @ self.table[1 : self.n_items + 1].T).cpu().numpy()


class _Distillation(torch.nn.Module):
    """The student plus what its loss needs: the teacher's table (for both sides' logits) and which items are warm."""

    def __init__(self, student: StudentEncoder, config: StudentConfig):
        super().__init__()
        self.student, self.config = student, config
        self.register_buffer("unknown", ~student.known_items[1 : student.n_items + 1].clone())

    def training_loss(self, batch) -> torch.Tensor:
        c, s = self.config, self.student
        items = s.table[1 : s.n_items + 1]
        user = s.encode_last(batch["input"], s.table[batch["input"]])
        logits = user @ items.T
        teacher = batch["teacher"] @ items.T
        if self.unknown.any():  # an item never trained on is no one's target and no one's negative
            logits = logits.masked_fill(self.unknown, float("-inf"))
            teacher = teacher.masked_fill(self.unknown, float("-inf"))
        t = c.temperature
        soft = F.kl_div(F.log_softmax(logits / t, dim=-1).masked_fill(self.unknown, 0.0),
                        F.log_softmax(teacher / t, dim=-1).masked_fill(self.unknown, 0.0), log_target=True,
                        reduction="batchmean") * t * t
        hard = F.cross_entropy(logits, batch["target"] - 1)
        return c.alpha * hard + (1 - c.alpha) * soft


def distill_user_encoder(teacher, dataset, split, config: StudentConfig | None = None, progress: bool = False) -> StudentFit:
    """Distil ``teacher`` (a trained :class:`~recbook.models.sequential.SequentialRecommender` over ``dataset``'s catalogue)
    into a student encoder (:func:`make_student`) on every prefix of ``split.train``; early stopping on ``split.valid``
    (full-ranking NDCG@10, the user's training items excluded), the best epoch's weights kept."""
    from recbook.data.windows import WindowDataset, user_sequences
    from recbook.evaluation.protocol import evaluate, make_eval_set
    from recbook.models.sequential import SequentialScorer
    from recbook.models.sequential_fit import default_train_config
    from recbook.training.loop import train_model

    config = config or StudentConfig()
    if teacher.config.objective != "causal":
        raise ConfigError("teacher", "students are distilled from causal teachers (sasrec, lmrec): a bert4rec teacher predicts at "
                          "the [MASK] it appends, which these prefixes do not carry", teacher.config.objective)
    if teacher.n_items != dataset.n_items:
        raise ValueError(f"the teacher scores {teacher.n_items} items but the data set has {dataset.n_items}: distil on the "
                         "data the teacher was trained on")
    teacher = teacher.eval().float().cpu()
    item_col = pd.Series(np.arange(dataset.n_items), index=dataset.item_ids)
    inputs, targets = prefixes(user_sequences(split.train, item_col), teacher.config.max_len)
    warm = teacher.known_items[torch.from_numpy(targets)].numpy()
    inputs, targets = inputs[warm], targets[warm]
    with torch.no_grad():
        table = teacher.item_table().detach().clone()
        seq = torch.from_numpy(inputs)
        teacher_users = torch.cat([teacher.encode_last(seq[i : i + 1024], table[seq[i : i + 1024]]) for i in range(0, len(seq), 1024)])
    torch.manual_seed(config.seed)
    student = StudentEncoder(teacher, config)
    rows = WindowDataset({"input": torch.from_numpy(inputs[:, -config.window:]), "target": torch.from_numpy(targets),
                          "teacher": teacher_users})
    loader = torch.utils.data.DataLoader(rows, batch_size=config.batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(config.seed))
    valid_set = make_eval_set(dataset, split, "valid", n_negatives=1, seed=config.seed)

    def validate(module):
        module.student.eval()
        res = evaluate(SequentialScorer(module.student, dataset.item_ids, split.train), valid_set, "full", per_user=True)
        module.student.train()
        return {"NDCG@10": res["NDCG@10"], "HR@10": res["HR@10"]}

    # on the CPU whatever the machine has: the student is small, and it is served on a CPU
    train = default_train_config(seed=config.seed, progress=progress, lr=config.lr, epochs=config.epochs, patience=config.patience,
                                 time_budget=config.time_budget, device="cpu")
    result = train_model(_Distillation(student, config), loader, train, validate)
    student.eval()
    return StudentFit(student, config, result, result.seconds, len(rows))


__all__ = ["STUDENT_KINDS", "StudentConfig", "StudentEncoder", "StudentFit", "distill_user_encoder", "prefixes", "transformer_student"]

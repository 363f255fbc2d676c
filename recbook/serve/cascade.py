"""What the retrieval → re-ranking cascade buys: its cost and its quality against scoring the whole catalogue.

Taught in notebook ``17_serving``.

A cross-encoder reads (history, candidate) text and is the best judge of a pair, but it costs a BERT pass per
pair. Scoring the *whole* unseen catalogue with it for one request is the quality ceiling and the cost ceiling.
The cascade lets a cheap retriever (a SASRec user vector against the item matrix) keep its ``top_n`` and sends
only those to the cross-encoder (:func:`recbook.evaluation.protocol.cascade`). :func:`cascade_vs_full` measures both on the
same users:

- **pairs** the cross-encoder scores per user: the unseen catalogue (full) vs ``top_n`` (cascade);
- **seconds per user**, one request at a time, the two timed *interleaved* on each user (full, cascade for one
  user, cascade, full for the next) so machine noise hits both alike; the cascade's time includes retrieval;
- **quality**: full-ranking NDCG@10 and HR@10 per user (the held-out item among every unseen item, as in
  :func:`recbook.evaluation.protocol.evaluate`), each with a 95% bootstrap CI, and the paired difference cascade − full
  (:func:`recbook.evaluation.stats.paired_comparison`). The cascade can only lose the users whose held-out item the
  retriever does not put in its top ``top_n`` — and can *win* where the cross-encoder, scoring everything, is
  fooled by an item the retriever had rightly kept out.

Any scorers with the course's interface ``score(users, items) -> scores`` work (tests pass cheap fakes);
:func:`real_cascade_scorers` builds the production pair from a dataset: a SASRec retriever and a briefly
fine-tuned cross-encoder exported to ONNX and quantized to int8, run by ONNX Runtime.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recbook.evaluation.protocol import EvalSet, cascade, evaluate, history_for_test
from recbook.evaluation.stats import Comparison, Estimate, mean_ci, paired_comparison, ratio_ci


class _Counting:
    """A scorer that counts the (user, item) pairs it is asked to score."""

    def __init__(self, scorer):
        self.scorer, self.pairs = scorer, 0

    def __call__(self, users, items):
        items = np.asarray(items)
        self.pairs += items.size
        return self.scorer(users, items)


@dataclass
class CascadeReport:
    """The result of :func:`cascade_vs_full`. ``per_user`` has one row per user (index ``user_id``): pairs and
    seconds of each, each metric for each (``NDCG@10_full``, ``NDCG@10_cascade``, …) and the held-out item's rank
    among the unseen items under each (``rank_full``, ``rank_cascade``; tie-averaged)."""

    per_user: pd.DataFrame
    top_n: int
    pairs_ratio: float  # mean pairs per user, full / cascade
    speed_ratio: Estimate  # mean seconds per user, full / cascade, paired bootstrap CI over users
    quality: dict[str, dict[str, Estimate]]  # metric → {"full": …, "cascade": …}
    differences: dict[str, Comparison]  # metric → cascade − full on the same users

    @property
    def n_users(self) -> int:
        return len(self.per_user)

    def table(self, digits: int = 3) -> pd.DataFrame:
        """Rows ``full`` and ``cascade``: pairs and milliseconds per user, and each metric as ``mean [low, high]``."""
        rows = {}
        for name in ("full", "cascade"):
            row = {"pairs per user": round(float(self.per_user[f"pairs_{name}"].mean()), 1),
                   "ms per user": round(1e3 * float(self.per_user[f"seconds_{name}"].mean()), 1)}
            for metric, by_name in self.quality.items():
                e = by_name[name]
                row[metric] = f"{e.mean:.{digits}f} [{e.low:.{digits}f}, {e.high:.{digits}f}]"
            rows[name] = row
        return pd.DataFrame(rows).T

    def summary(self) -> str:
        lines = [f"{self.n_users} users, cascade re-ranks the retriever's top {self.top_n}",
                 f"pairs scored by the cross-encoder: {self.pairs_ratio:.1f}× fewer with the cascade",
                 f"seconds per user: the cascade is {self.speed_ratio} × faster (95% CI)"]
        lines += [f"{metric}: {c}" for metric, c in self.differences.items()]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _check_users(users, heldout: pd.DataFrame) -> np.ndarray:
    users = np.asarray(users)
    if users.ndim != 1 or len(users) == 0:
        raise ValueError("users must be a non-empty 1-d list of user ids")
    if len(np.unique(users)) != len(users):
        raise ValueError("users has duplicate ids; each user is measured once")
    missing = ~np.isin(users, heldout["user_id"].to_numpy())
    if missing.any():
        raise ValueError(f"{int(missing.sum())} of the users (e.g. {users[missing][0]!r}) have no held-out item in the split")
    return users


def cascade_vs_full(dataset, split, retriever_scorer, reranker_scorer, users, top_n: int = 20, k: int = 10, stage: str = "test",
                    seed: int = 0, level: float = 0.95, n_boot: int = 2000, warmup: bool = True, progress: bool = False) -> CascadeReport:
    """Re-rank the retriever's ``top_n`` (the cascade) vs score every unseen item with the re-ranker (full), per user.

    ``retriever_scorer`` and ``reranker_scorer`` are ``score(users, items) -> scores`` functions that read the
    history of ``stage`` (``"test"``: training + validation, as :func:`recbook.runs.recipe.fit_recommender`'s scorers
    do; ``"valid"``: training). Each user is one request: one call for full scoring (the re-ranker on the whole
    unseen catalogue), one for the cascade (the retriever on the catalogue, the re-ranker on its ``top_n`` unseen
    items); their order alternates from user to user. ``warmup`` first runs both scorers once on a few items of the
    first user, untimed (lazy initialisation, first-call allocations). Metrics: full ranking at ``k``.
    """
    if stage not in ("valid", "test"):
        raise ValueError(f"stage must be 'valid' or 'test', got {stage!r}")
    if not isinstance(top_n, (int, np.integer)) or top_n < 1:
        raise ValueError(f"top_n must be a positive integer, got {top_n!r}")
    heldout_all = (split.test if stage == "test" else split.valid)[["user_id", "item_id"]]
    users = _check_users(users, heldout_all)
    history = history_for_test(split) if stage == "test" else split.train
    heldout = heldout_all.set_index("user_id").loc[users].reset_index()
    all_items = np.asarray(dataset.item_ids)
    seen = history.groupby("user_id")["item_id"].agg(lambda s: np.unique(s.to_numpy()))
    counted = _Counting(reranker_scorer)
    two_stage = cascade(retriever_scorer, counted, top_n=int(top_n), exclude=history, seed=seed)

    if warmup:
        u0 = users[:1]
        retriever_scorer(u0, all_items[None, :8])
        reranker_scorer(u0, all_items[None, :8])

    full_rows, cascade_rows, records = {}, {}, []
    iterator = users
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(users, desc="cascade vs full", leave=False)
    for position, user in enumerate(iterator):
        u = np.array([user])
        unseen = all_items[~np.isin(all_items, seen.get(user, []))]
        runs = {}

        def run_full():
            scores = np.full(len(all_items), -np.inf)
            scores[np.isin(all_items, unseen)] = np.asarray(counted(u, unseen[None, :]), dtype=float).ravel()
            return scores

        def run_cascade():
            return np.asarray(two_stage(u, all_items[None, :]), dtype=float).ravel()

        order = (("full", run_full), ("cascade", run_cascade))
        for name, fn in order if position % 2 == 0 else order[::-1]:
            before = counted.pairs
            start = time.perf_counter()
            scores = fn()
            runs[name] = (scores, time.perf_counter() - start, counted.pairs - before)
        full_rows[user], cascade_rows[user] = runs["full"][0], runs["cascade"][0]
        records.append({"user_id": user, "pairs_full": runs["full"][2], "pairs_cascade": runs["cascade"][2],
                        "seconds_full": runs["full"][1], "seconds_cascade": runs["cascade"][1]})

    eval_set = EvalSet(stage, heldout, np.zeros((len(heldout), 0), dtype=all_items.dtype), history, all_items)
    per_user = pd.DataFrame(records).set_index("user_id")
    quality, differences = {}, {}
    metrics = (f"NDCG@{k}", f"HR@{k}")
    for name, rows in (("full", full_rows), ("cascade", cascade_rows)):
        res = evaluate(_lookup(rows), eval_set, "full", k=k, per_user=True)["per_user"]
        for metric in (*metrics, "rank"):
            per_user[f"{metric}_{name}"] = res[metric].reindex(per_user.index)
    for metric in metrics:
        quality[metric] = {name: mean_ci(per_user[f"{metric}_{name}"], level, n_boot, seed) for name in ("full", "cascade")}
        differences[metric] = paired_comparison(per_user[f"{metric}_cascade"], per_user[f"{metric}_full"], ("cascade", "full"),
                                                level, n_boot, seed=seed)
    pairs_ratio = float(per_user["pairs_full"].mean() / max(per_user["pairs_cascade"].mean(), 1e-12))
    speed = ratio_ci(per_user["seconds_full"], per_user["seconds_cascade"], ("full", "cascade"), level, n_boot, seed)
    return CascadeReport(per_user, int(top_n), pairs_ratio, speed, quality, differences)


def _lookup(rows: dict):
    """A scorer that returns precomputed full-catalogue score rows (the catalogue in ``dataset.item_ids`` order)."""

    def score(users, items):
        return np.stack([rows[u] for u in np.asarray(users).tolist()])

    return score


# ------------------------------------------------------------------ the real configuration
@dataclass
class RealCascade:
    """What :func:`real_cascade_scorers` built: the two scorers, the int8 ONNX file, and what building cost."""

    retriever: object  # recbook.models.sequential.SequentialScorer (history = train + valid)
    reranker: object  # recbook.models.cross_encoder.CrossEncoderScorer over an OrtCrossEncoder (int8)
    onnx_path: Path
    seconds: dict  # "retriever", "reranker", "export" training / export times


def real_cascade_scorers(dataset, split, profile, workdir, model_name_or_path=None, retriever_seconds: float = 40.0,
                         rerank_steps: int = 30, top_n: int = 20, seed: int = 0, threads: int | None = None,
                         progress: bool = False) -> RealCascade:
    """The production cascade of notebook 17 from a dataset: SASRec retriever → int8 ONNX cross-encoder.

    1. SASRec (:func:`recbook.models.sequential_fit.fit_sequential`, causal objective) trained for at most
       ``retriever_seconds`` with early stopping on validation;
    2. a cross-encoder fine-tuned for ``rerank_steps`` steps on hard negatives mined from that retriever's top
       ``top_n`` (:func:`recbook.finetune.hard_negatives.hard_negative_pairs`, :func:`recbook.finetune.hard_negatives.fit_reranker`) — the job it
       does in the cascade;
    3. exported to ONNX and quantized to dynamic int8 in ``workdir`` (:mod:`recbook.compress.onnx`), run by ONNX
       Runtime with ``threads`` intra-op threads (default: torch's thread count) inside a
       :class:`recbook.models.cross_encoder.CrossEncoderScorer` (history texts written once per user).

    Both scorers read training + validation as history: pass them to :func:`cascade_vs_full` with ``stage="test"``.
    """
    import torch

    from recbook.compress.onnx import OrtCrossEncoder, export_onnx, quantize_onnx_dynamic
    from recbook.data.text import HISTORY_FIELD
    from recbook.finetune.hard_negatives import fit_reranker, hard_negative_pairs, sequential_history_scorer
    from recbook.models.cross_encoder import CrossEncoderScorer
    from recbook.models.sequential import SequentialConfig
    from recbook.models.sequential_fit import default_train_config, fit_sequential

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    seconds = {}
    sasrec = fit_sequential(dataset, split, SequentialConfig(objective="causal"), default_train_config(seed=seed, progress=progress),
                            max_seconds=retriever_seconds, progress=progress)
    seconds["retriever"] = sasrec.train_seconds
    n_negatives = profile.n_negatives
    n_positives = min(rerank_steps * profile.batch_size // (1 + n_negatives), len(split.train))
    positives = split.train.sample(n=n_positives, random_state=seed)
    pairs = hard_negative_pairs(positives, split.train, sequential_history_scorer(sasrec.model, dataset.item_ids), dataset.item_ids,
                                n_negatives=n_negatives, top_k=max(top_n, n_negatives), seed=seed)
    fitted = fit_reranker(pairs, dataset, split, profile, model_name_or_path, seed=seed, device="cpu", progress=progress,
                          max_steps=rerank_steps, log_every=max(1, rerank_steps // 5))
    seconds["reranker"] = fitted.train_seconds
    start = time.perf_counter()
    fp32 = export_onnx(fitted.model, workdir / "cross-encoder.onnx")
    int8 = quantize_onnx_dynamic(fp32, workdir / "cross-encoder-int8.onnx")
    seconds["export"] = time.perf_counter() - start
    ort_model = OrtCrossEncoder(int8, threads=threads or torch.get_num_threads())
    reranker = CrossEncoderScorer(ort_model, fitted.tokenizer, dataset, history_for_test(split), profile.max_length,
                                  profile.max_history_items, history_field=HISTORY_FIELD)
    return RealCascade(sasrec.scorer, reranker, Path(int8), seconds)

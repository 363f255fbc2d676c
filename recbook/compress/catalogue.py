"""Compress the BERT that embeds the catalogue, and measure what the *recommender* loses — on every user.

Taught in notebooks ``11``–``14``; also ``python -m recbook bench --target catalogue``.

The sequential recommender of notebook ``05`` represents each item by a learned projection of a
**frozen** sentence embedding of its text (title, year, genres) from all-MiniLM-L6-v2. That BERT is
what a production system runs most often — on every new or edited item — and it is what we compress.
A compressed variant re-embeds the whole catalogue (about 1,700 short texts: seconds on a CPU), the
embeddings replace the fp32 ones inside the *unchanged* trained recommender, and quality is that
recommender's:

- **warm**: each user's held-out next item ranked against the whole catalogue (full ranking), NDCG@10 and AUC
  (the share of unseen items ranked below it);
- **cold**: each user's first pick of an item never seen in training, against up to 99 sampled *other new* items,
  AUC — where the text is all the model has to go on. The negatives are new items, not the catalogue: against warm
  items, whose texts the recommender was trained on, a variant that merely scores every new text high would look good.

All are per-user values on all users, so every "quality kept" is a **paired** comparison with the
fp32 encoder on the same users: a bootstrap CI of the difference and of the ratio (:mod:`recbook.evaluation.stats`).
A "keeps ≥ x%" claim is judged on the AUCs (:data:`JUDGED`), whose CIs are narrow enough for it.

:class:`SentenceEncoder` wraps a BERT as ``model(input_ids, attention_mask, token_type_ids) →
L2-normalised mean-pooled embedding`` — the call signature every tool of :mod:`recbook.compress`
and :mod:`recbook.compress.bench` already accepts (pruning, int8, vocabulary trimming, ONNX export, timing).
:func:`distill_sentence_encoder` trains a smaller encoder (fewer layers, or a pruned copy with its
masks attached) to reproduce the teacher's embeddings.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

# (test set, metric) pairs every variant is reported on ...
from recbook.models.item_text import embed_texts, tokenize_texts

CHECKS = (("warm", "NDCG@10"), ("warm", "AUC"), ("cold", "AUC"))
# ... and those a "keeps ≥ x%" claim is judged on: per-user AUC is continuous, so its paired CI is narrow enough for a
# 1% claim; per-user NDCG@10 is 0 for most users (the held-out item outside the top 10), so its CI is reported but is
# usually far too wide to support one.
JUDGED = (("warm", "AUC"), ("cold", "AUC"))
BENCH_FORMAT = 1  # bump when the cached recommender's recipe changes


class SentenceEncoder(torch.nn.Module):
    """A BERT encoder as a sentence embedder: token vectors mean-pooled over real tokens, L2-normalised
    (the sentence-transformers recipe of all-MiniLM-L6-v2). ``.encoder`` is the BERT, as in a cross-encoder; its unused
    ``pooler`` is dropped (no output depends on it: it would only inflate sizes, parameter counts and pruning budgets)."""

    def __init__(self, encoder: torch.nn.Module):
        from recbook.models.cross_encoder import drop_pooler

        super().__init__()
        self.encoder = drop_pooler(encoder)

    def forward(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        from recbook.models.cross_encoder import mean_pool

        kwargs = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        return F.normalize(mean_pool(hidden.float(), attention_mask), dim=-1)


def load_sentence_encoder(name_or_path=None) -> tuple[SentenceEncoder, object]:
    """``(SentenceEncoder, tokenizer)`` of a pretrained BERT (default: the offline all-MiniLM-L6-v2), fp32, eval mode."""
    from recbook.models.backbone import load_backbone

    encoder, tokenizer = load_backbone(name_or_path)
    return SentenceEncoder(encoder.float()).eval(), tokenizer


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean cosine similarity between the rows of two embedding matrices (1.0 = every vector points the same way)."""
    return float(np.mean(np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)))


def catalogue_texts_in_order(dataset) -> list[str]:
    """Each catalogue item's text, in ``dataset.item_ids`` order (the recommender's row order)."""
    if "text" not in dataset.items.columns:
        raise ValueError(f"the items table of {dataset.name!r} has no 'text' column: the catalogue encoder needs item texts")
    return dataset.items.set_index("item_id").loc[dataset.item_ids, "text"].astype(str).tolist()


# ------------------------------------------------------------------------------------------ the bench
@dataclass
class CatalogueBench:
    """A trained text-feature SASRec on a cold-item split, and the users every encoder variant is judged on."""

    dataset: object
    cold: object  # recbook.data.splits.ColdStartSplit
    texts: list
    tokenizer: object
    teacher: SentenceEncoder  # the fp32 encoder the recommender was trained with
    recommender: object  # recbook.models.sequential.SequentialRecommender (item_features="text")
    warm_set: object
    cold_set: object
    reference: np.ndarray  # the fp32 embeddings, catalogue order
    info: dict = field(default_factory=dict)
    max_length: int = 64

    @property
    def warm_items(self) -> np.ndarray:
        """Item ids seen in training (their texts are what a distillation may train on)."""
        return np.setdiff1d(self.dataset.item_ids, self.cold.cold_items)

    def texts_of(self, item_ids) -> list[str]:
        col = pd.Series(np.arange(len(self.texts)), index=self.dataset.item_ids)
        return [self.texts[i] for i in col.reindex(item_ids).to_numpy()]

    def embed(self, model, batch_size: int = 128) -> np.ndarray:
        """The catalogue's embeddings by ``model`` (catalogue order)."""
        return embed_texts(model, self.tokenizer, self.texts, self.max_length, batch_size)

    def recommender_with(self, embeddings: np.ndarray):
        """A copy of the trained recommender whose frozen item-text features are ``embeddings``."""
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.shape != self.reference.shape:
            raise ValueError(f"embeddings must have shape {self.reference.shape} (items × dims), got {emb.shape}")
        if not np.isfinite(emb).all():
            raise ValueError("embeddings contain NaN or inf: the encoder variant is broken")
        model = copy.deepcopy(self.recommender)
        with torch.no_grad():
            model.text_features[1 : model.n_items + 1] = torch.from_numpy(emb)
        return model.eval()

    def deployed(self, embeddings: np.ndarray) -> np.ndarray:
        """What a deployment that switches encoders serves: items known at training time keep their cached fp32
        vectors (``reference``) and only new items get ``embeddings`` — the realistic mix, as opposed to re-embedding the
        whole catalogue with the variant (:meth:`per_user` of ``embeddings`` itself)."""
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.shape != self.reference.shape:
            raise ValueError(f"embeddings must have shape {self.reference.shape} (items × dims), got {emb.shape}")
        new = np.isin(self.dataset.item_ids, self.cold.cold_items)
        return np.where(new[:, None], emb, self.reference).astype(np.float32)

    def per_user(self, embeddings: np.ndarray) -> dict[str, pd.DataFrame]:
        """``{"warm": …, "cold": …}`` per-user metrics of the recommender using ``embeddings``."""
        from recbook.evaluation.protocol import evaluate
        from recbook.models.sequential import SequentialScorer

        model = self.recommender_with(embeddings)
        warm = evaluate(SequentialScorer(model, self.dataset.item_ids, self.warm_set.history), self.warm_set, "full", per_user=True)
        cold = evaluate(SequentialScorer(model, self.dataset.item_ids, self.cold_set.history), self.cold_set, "sampled", per_user=True)
        return {"warm": warm["per_user"], "cold": cold["per_user"]}

    def measure(self, model, batch_size: int = 128) -> dict[str, pd.DataFrame]:
        """Embed the catalogue with ``model`` and score the recommender; ``attrs["embed_seconds"]`` on the warm frame."""
        start = time.perf_counter()
        emb = self.embed(model, batch_size)
        seconds = time.perf_counter() - start
        out = self.per_user(emb)
        out["warm"].attrs["embed_seconds"] = seconds
        out["warm"].attrs["cosine_to_fp32"] = mean_cosine(emb, self.reference)
        return out

    def popularity_per_user(self) -> dict[str, pd.DataFrame]:
        """The popularity baseline on the same users (warm: full ranking; cold: sampled among new items, where it knows
        nothing and sits at chance) — what the teacher must beat."""
        from recbook.evaluation.protocol import evaluate
        from recbook.models.popularity import Popularity

        pop = Popularity().fit_interactions(self.warm_set.history, self.dataset.item_ids)
        return {"warm": evaluate(pop.scorer(self.warm_set.history), self.warm_set, "full", per_user=True)["per_user"],
                "cold": evaluate(pop.scorer(self.warm_set.history), self.cold_set, "sampled", per_user=True)["per_user"]}

    def latency_batches(self, batch_sizes=(64,), seed: int = 0) -> dict[int, dict]:
        """One fixed batch of catalogue texts per size (realistic lengths), for :func:`recbook.compress.bench.time_variants`."""
        rng = np.random.default_rng(seed)
        return {size: tokenize_texts([self.texts[i] for i in rng.choice(len(self.texts), size, replace=size > len(self.texts))],
                                     self.tokenizer, self.max_length) for size in batch_sizes}


def _bench_key(dataset, texts: list[str], cold_fraction: float, seed: int, time_budget, encoder_id: str, config) -> str:
    h = hashlib.sha256(f"{BENCH_FORMAT}|{dataset.name}|{cold_fraction}|{seed}|{time_budget}|{encoder_id}|{config}".encode())
    inter = dataset.interactions[["user_id", "item_id", "timestamp"]].astype(str)
    h.update(pd.util.hash_pandas_object(inter, index=False).values.tobytes())
    h.update("\x00".join(texts).encode())
    return h.hexdigest()[:20]


def catalogue_bench(dataset, cold_fraction: float = 0.1, seed: int = 0, epochs: int = 40, time_budget: float | None = None, n_negatives: int = 99,
                    encoder=None, cache_dir=None, progress: bool = True) -> CatalogueBench:
    """Build the bench for ``dataset`` (any :class:`recbook.data.RecDataset` whose items have texts).

    Splits off the newest ``cold_fraction`` of items (:func:`recbook.data.splits.cold_item_split`), embeds
    the catalogue with the fp32 ``encoder`` (default all-MiniLM-L6-v2), and trains a SASRec with
    ``item_features="text"`` on the warm part for at most ``epochs`` epochs (early stopping on validation, patience 6;
    ``time_budget`` seconds, if given, also stop it — but then the model depends on the machine's speed and load). The trained recommender is cached as safetensors under ``cache_dir`` (default:
    ``$RECBOOK_CACHE/catalogue_bench``), keyed by the data, the split and the settings, written atomically —
    so every notebook measures against the same recommender without training it again.
    """
    from recbook.data import default_cache_dir
    from recbook.data.splits import cold_item_split
    from recbook.evaluation.protocol import make_cold_eval_set, make_eval_set
    from recbook.models.backbone import resolve_model_path
    from recbook.models.item_text import _model_identity
    from recbook.models.sequential import SequentialConfig, SequentialRecommender
    from recbook.models.sequential_fit import default_train_config, fit_sequential

    if not 0 < cold_fraction < 1:
        raise ValueError(f"cold_fraction must be in (0, 1), got {cold_fraction}")
    texts = catalogue_texts_in_order(dataset)
    teacher, tokenizer = load_sentence_encoder(encoder)
    cold = cold_item_split(dataset.interactions, cold_fraction)
    if len(cold.test_cold) == 0:
        raise ValueError(f"no user picked a cold item in {dataset.name!r} with cold_fraction={cold_fraction}; use a larger fraction")
    warm_split = cold.warm()
    warm_set = make_eval_set(dataset, warm_split, "test", n_negatives, seed=seed)
    cold_set = make_cold_eval_set(dataset, cold, n_negatives, seed=seed, negatives_from="cold")  # which new item, among new items
    reference = embed_texts(teacher, tokenizer, texts)
    config = SequentialConfig(item_features="text")
    key = _bench_key(dataset, texts, cold_fraction, seed, (epochs, time_budget), _model_identity(resolve_model_path(encoder)), config)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "catalogue_bench"
    target = folder / key
    info = {"cache": "hit", "cache_folder": str(target)}
    model, damaged = None, False
    if (target / "bench.json").is_file():
        try:
            model, _ = SequentialRecommender.load(target)
            info.update(json.loads((target / "bench.json").read_text()))
        except Exception:  # a damaged cache is retrained (and replaced), never trusted
            model, damaged = None, True
    if model is None:
        fit = fit_sequential(dataset, warm_split, config, default_train_config(seed=seed, progress=progress, epochs=epochs), text_features=reference,
                             max_seconds=time_budget, progress=progress)
        model = fit.model
        info = {"cache": "trained now", "cache_folder": str(target), "train_seconds": round(fit.train_seconds, 1),
                "epochs": len(fit.curve), "stop_reason": fit.result.stop_reason or "epoch limit",
                "best_valid_NDCG@10": round(float(fit.result.best_metric), 4)}
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{key}.{os.getpid()}.partial"
        model.save(tmp, dataset.item_ids)
        (tmp / "bench.json").write_text(json.dumps({k: v for k, v in info.items() if k not in ("cache", "cache_folder")}))
        import shutil

        if target.exists() and not damaged:  # another process finished first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            if damaged:
                shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
    model.text_features[1 : model.n_items + 1] = torch.from_numpy(reference)  # the same fp32 embeddings, recomputed here
    info.update({"data": dataset.name, "items": len(texts), "cold_items": len(cold.cold_items), "warm_users": len(warm_set.heldout),
                 "cold_users": len(cold_set.heldout)})
    return CatalogueBench(dataset, cold, texts, tokenizer, teacher, model.eval(), warm_set, cold_set, reference, info)


# ------------------------------------------------------------------------------------------ tables
def kept_table(per_user: dict[str, dict[str, pd.DataFrame]], reference: str, checks=CHECKS, level: float = 0.95,
               n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """For every variant and check (test set, metric): the mean with its CI, the paired difference to
    ``reference`` with its CI, and the ratio ("kept") with its paired CI. Numeric columns, one row per variant;
    ``kept low`` is what a "keeps ≥ x%" claim must clear."""
    from recbook.evaluation.stats import mean_ci, paired_comparison, ratio_ci

    if reference not in per_user:
        raise KeyError(f"reference {reference!r} is not among the variants {list(per_user)}")
    rows = {}
    for name, frames in per_user.items():
        row = {}
        for part, metric in checks:
            if part not in frames or metric not in frames[part]:
                raise KeyError(f"variant {name!r} has no {part!r} results with a {metric!r} column")
            label = f"{part} {metric}"
            x, ref = frames[part][metric], per_user[reference][part][metric]
            est = mean_ci(x, level, n_boot, seed)
            row.update({label: est.mean, f"{label} low": est.low, f"{label} high": est.high})
            if name == reference:
                row.update({f"{label} Δ": 0.0, f"{label} Δ low": 0.0, f"{label} Δ high": 0.0,
                            f"{label} kept": 1.0, f"{label} kept low": 1.0, f"{label} kept high": 1.0})
                continue
            diff = paired_comparison(x, ref, (name, reference), level, n_boot, n_permutations=1000, seed=seed).diff
            ratio = ratio_ci(x, ref, (name, reference), level, n_boot, seed)
            row.update({f"{label} Δ": diff.mean, f"{label} Δ low": diff.low, f"{label} Δ high": diff.high,
                        f"{label} kept": ratio.mean, f"{label} kept low": ratio.low, f"{label} kept high": ratio.high})
        for part in dict.fromkeys(part for part, _ in checks):
            row[f"{part} users"] = len(frames[part])
        rows[name] = row
    table = pd.DataFrame(rows).T
    for col in table.columns:
        table[col] = table[col].astype(int if col.endswith(" users") else float)
    table.index.name = "variant"
    return table


def kept_text_table(table: pd.DataFrame, checks=CHECKS, digits: int = 3, show=("mean", "delta", "kept")) -> pd.DataFrame:
    """:func:`kept_table` for reading: per check ``mean [low, high]`` (``"mean"``), ``Δ [low, high]`` to the reference
    (``"delta"``) and ``kept [low, high]`` (``"kept"``) — ``show`` picks which, in that order."""
    unknown = set(show) - {"mean", "delta", "kept"}
    if unknown or not show:
        raise ValueError(f"show must name some of 'mean', 'delta', 'kept'; got {show!r}")
    out = pd.DataFrame(index=table.index)
    def ci(c, sign=""):
        return [f"{m:{sign}.{digits}f} [{lo:{sign}.{digits}f}, {hi:{sign}.{digits}f}]"
                for m, lo, hi in zip(table[c], table[f"{c} low"], table[f"{c} high"])]

    for kind in show:
        for part, metric in checks:
            label = f"{part} {metric}"
            if kind == "mean":
                out[label] = ci(label)
            elif kind == "delta":
                out[f"{label} Δ"] = ci(f"{label} Δ", "+")
            else:
                out[f"{label} kept"] = ci(f"{label} kept")
    return out


def refresh_cost(table: pd.DataFrame, items=(1_000_000, 100_000_000), batch: int = 64, price_per_cpu_hour: float | None = None,
                 threads: int | None = None) -> pd.DataFrame:
    """CPU-hours to embed ``items`` catalogue texts with each variant of a :func:`measure_variants` table: items ÷ its
    texts per second at ``batch`` (from the median batch time) × the threads it ran on ÷ 3600 — a whole-catalogue refresh
    at scale, at this machine's median throughput. ``threads`` defaults to ``table.attrs["threads"]`` (what
    :func:`measure_variants` records; an error if neither is there). With ``price_per_cpu_hour``, also the cost."""
    column = f"texts_per_s_b{batch}"
    if column not in table.columns:
        raise KeyError(f"the table has no {column!r} column: measure_variants with batch size {batch} among batch_sizes")
    threads = threads if threads is not None else table.attrs.get("threads")
    if threads is None or int(threads) < 1:
        raise ValueError("how many threads the throughput was measured on is unknown: pass threads= (table.attrs lost it)")
    threads = int(threads)
    rate = table[column].astype(float)
    if (rate <= 0).any() or rate.isna().any():
        raise ValueError(f"{column} must be positive for every variant, got {rate.to_dict()}")
    out = pd.DataFrame(index=table.index)
    out["texts/s"] = rate
    for n in items:
        label = f"{n / 1e6:g} M items"
        out[f"CPU-hours, {label}"] = n / rate * threads / 3600
        if price_per_cpu_hour is not None:
            out[f"cost, {label}"] = out[f"CPU-hours, {label}"] * price_per_cpu_hour
    out.attrs["threads"] = threads
    return out


def min_kept_low(table: pd.DataFrame, checks=JUDGED) -> pd.Series:
    """Per variant, the smallest lower CI bound of "kept" over the checks: the number a "keeps ≥ x%" claim must clear."""
    return table[[f"{part} {metric} kept low" for part, metric in checks]].min(axis=1)


def measure_variants(bench: CatalogueBench, variants, batch_sizes=(1, 64), repeats: int = 5, warmup: int = 1, threads: int | None = None,
                     progress: bool = True, slow_factor: float | None = 2.0, n_boot: int = 2000) -> tuple[pd.DataFrame, dict]:
    """Quality (on every user, paired with ``variants[0]``), file size and latency of encoder variants: ``(table, per_user)``.

    ``variants``: :class:`recbook.compress.bench.Variant` objects whose model embeds texts. Latency is timed first,
    interleaved after warm-up on fixed batches of catalogue texts (:func:`recbook.compress.bench.time_variants`, with its
    slow-path probe: a variant more than ``slow_factor``× slower than the first is timed with 2 repeats only and
    the ``notes`` column says why). Quality needs the whole catalogue re-embedded once per variant — a small,
    fixed amount of work — so it is always measured on all users. The table holds :func:`kept_table`'s columns,
    ``embed_s`` (seconds to embed the catalogue, one untimed-order run), ``cosine`` (mean cosine to the first
    variant's embeddings), ``size_MB``, ``smaller``, ``p50_ms_b{n}``, ``texts_per_s_b{n}``, ``faster_b{n}`` with
    ``faster_b{n} low``/``high`` and ``speed_b{n}`` (the speed-up over the first variant, paired by timing round, its
    95% interval and verdict: :func:`recbook.compress.bench.add_speed_columns`) and ``notes``.
    """
    from recbook.compress.bench import add_speed_columns, check_variants, time_variants

    variants = list(variants)
    names = check_variants(variants, threads)
    timing = time_variants(variants, bench.latency_batches(batch_sizes), repeats, warmup, threads, progress, slow_factor)
    per_user, extra = {}, {}
    iterator = variants
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(variants, desc="re-embed catalogue + score users")
    first = None
    for v in iterator:
        start = time.perf_counter()
        emb = bench.embed(v.model)
        seconds = time.perf_counter() - start
        first = emb if first is None else first
        per_user[v.name] = bench.per_user(emb)
        extra[v.name] = {"embed_s": seconds, "cosine": mean_cosine(emb, first)}
    table = kept_table(per_user, names[0], n_boot=n_boot)
    table["embed_s"] = [extra[n]["embed_s"] for n in table.index]
    table["cosine"] = [extra[n]["cosine"] for n in table.index]
    table["size_MB"] = [v.size_bytes / 1e6 for v in variants]
    table["smaller"] = table["size_MB"].iloc[0] / table["size_MB"]
    for size in batch_sizes:
        part = timing[timing["batch"] == size].set_index("variant").reindex(names)
        table[f"p50_ms_b{size}"] = part["p50_ms"].to_numpy()
        table[f"texts_per_s_b{size}"] = part["pairs_per_s"].to_numpy()
        add_speed_columns(table, timing, size)
    big = max(batch_sizes)
    table["latency_repeats"] = timing[timing["batch"] == big].set_index("variant").reindex(names)["repeats"].to_numpy()
    notes = {v.name: v.notes for v in variants}
    for name, note in timing.attrs["slow_paths"].items():
        notes[name] = (notes[name] + "; " if notes[name] else "") + note
    table["notes"] = [notes[n] for n in table.index]
    table.attrs["slow_paths"] = timing.attrs["slow_paths"]
    table.attrs["round_times"] = timing.attrs["round_times"]  # for recbook.compress.bench.compare_speed between two variants
    table.attrs["threads"] = torch.get_num_threads()
    return table, per_user


# ------------------------------------------------------------------------------------------ distillation
def distill_sentence_encoder(teacher: SentenceEncoder, tokenizer, texts, student: torch.nn.Module | None = None, layers=(0, 5),
                             epochs: int = 20, batch_size: int = 32, lr: float = 1e-4, max_length: int = 64, seed: int = 0,
                             max_seconds: float | None = None, train_embeddings: bool = False,
                             progress: bool = True) -> tuple[torch.nn.Module, list[float]]:
    """Train ``student`` to reproduce ``teacher``'s embeddings of ``texts``: ``(student, loss per epoch)``.

    ``student=None`` makes one from the teacher's encoder ``layers`` (:func:`recbook.compress.distill.make_student`).
    A pruned student (masks attached by ``torch.nn.utils.prune``) keeps its zeros while it trains. The loss is
    ``1 − cos(student(x), teacher(x))`` averaged over texts (both sides L2-normalised: the direction is what the
    recommender uses). ``max_seconds`` stops after the epoch that passes it. The embedding tables stay frozen unless
    ``train_embeddings`` (they hold half of MiniLM's weights: updating them costs most of each step and, trained on a
    few thousand texts, mostly overfits).
    """
    from recbook.compress.distill import make_student

    texts = [str(t) for t in texts]
    if len(texts) < 2:
        raise ValueError(f"distillation needs at least 2 texts, got {len(texts)}")
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"epochs and batch_size must be >= 1 and lr > 0, got epochs={epochs}, batch_size={batch_size}, lr={lr}")
    student = make_student(teacher, list(layers)) if student is None else student
    target = torch.from_numpy(embed_texts(teacher, tokenizer, texts, max_length))
    generator = torch.Generator().manual_seed(seed)
    params = [p for n, p in student.named_parameters() if p.requires_grad and (train_embeddings or ".embeddings." not in f".{n}")]
    if not params:
        raise ValueError("the student has no trainable parameters outside its embeddings (pass train_embeddings=True?)")
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    losses, start = [], time.perf_counter()
    epochs_iter = range(epochs)
    if progress:
        from tqdm.auto import tqdm

        epochs_iter = tqdm(epochs_iter, desc="distil embeddings")
    student.train()
    for _ in epochs_iter:
        order = torch.randperm(len(texts), generator=generator)
        total = 0.0
        for s in range(0, len(texts), batch_size):
            idx = order[s : s + batch_size]
            batch = tokenize_texts([texts[i] for i in idx], tokenizer, max_length)
            out = student(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
            loss = (1 - (out * target[idx]).sum(-1)).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        losses.append(total / len(texts))
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            break
    return student.eval(), losses

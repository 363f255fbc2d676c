"""Measure compressed variants of a cross-encoder against the fp32 baseline, honestly.

Taught in notebooks ``06_pruning`` … ``09_compression_pareto``; also ``python -m recbook bench``.

Rules (COURSE.md, "Honesty rules"): every variant is timed **in one process, interleaved**
(variant A, B, C, A, B, C, …) after warm-up, with the thread count fixed, so machine noise hits all
variants alike; latency is reported as p50/p95 over repeats; the CPU's features (AVX-512 VNNI, AMX …)
are printed beside the table because int8/bf16 speed depends on them. Quality is NDCG@10 and AUC
under the sampled protocol (held-out item vs sampled negatives), computed on the same tokenized
pairs for every variant. Ratios are against the first variant (the baseline).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .metrics import ranking_metrics


@dataclass
class Variant:
    """One model to measure: ``model(input_ids, attention_mask, token_type_ids) → logits``.

    ``size_bytes`` is the serialized file(s) the variant ships as; ``params`` its parameter count
    (``nonzero`` those not pruned away).
    """

    name: str
    model: object
    size_bytes: int
    params: int
    nonzero: int | None = None
    notes: str = ""
    extra: dict = field(default_factory=dict)


@dataclass
class PairSet:
    """Tokenized (history, candidate) pairs for the sampled protocol: ``n_users`` rows × ``n_candidates``,
    the held-out item first in each row."""

    encoded: dict
    n_users: int
    n_candidates: int
    protocol: str


def make_pair_set(eval_set, dataset, tokenizer, max_length: int, max_history_items: int, history_field: str = "title+genres") -> PairSet:
    """Write and tokenize every (user history, candidate) pair of a sampled :class:`recbook.evaluate.EvalSet` once."""
    from .data import build_text_pairs, encode_pairs

    users = eval_set.heldout["user_id"].to_numpy()
    candidates = np.concatenate([eval_set.heldout["item_id"].to_numpy()[:, None], eval_set.negatives], axis=1)
    flat = pd.DataFrame({"user_id": np.repeat(users, candidates.shape[1]), "item_id": candidates.ravel()})
    pairs = build_text_pairs(flat, eval_set.history, dataset, tokenizer, max_history_items, max_length - 32, history_field)
    encoded = encode_pairs(pairs["history_text"], pairs["item_text"], tokenizer, max_length)
    protocol = f"sampled: 1 held-out item vs {candidates.shape[1] - 1} sampled negatives, {len(users)} users ({eval_set.description})"
    return PairSet(encoded, len(users), candidates.shape[1], protocol)


def pair_scores(model, pairs: PairSet, tokenizer, batch_size: int = 64, amp_dtype=None) -> np.ndarray:
    """(users, candidates) logits of ``model`` on ``pairs`` (``amp_dtype``: autocast, e.g. bf16 for quick sweeps)."""
    from .data import PairCollator
    from .models.cross_encoder import predict_pairs

    scores = predict_pairs(model, pairs.encoded, PairCollator(tokenizer), batch_size, amp_dtype=amp_dtype)
    return scores.reshape(pairs.n_users, pairs.n_candidates)


def quality(scores: np.ndarray, k: int = 10) -> dict[str, float]:
    """NDCG@k, HR@k, MRR and AUC of a (users, candidates) score matrix whose first column is the held-out item."""
    y_true = np.zeros(scores.shape)
    y_true[:, 0] = 1.0
    return ranking_metrics(y_true, scores, k)


def latency_batches(pairs: PairSet, tokenizer, batch_sizes=(1, 64), seed: int = 0) -> dict[int, dict]:
    """One fixed batch per size, drawn from ``pairs`` (so lengths are realistic), padded to its longest pair."""
    from .data import PairCollator

    rng = np.random.default_rng(seed)
    n = len(pairs.encoded["input_ids"])
    collate = PairCollator(tokenizer)
    keep = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in pairs.encoded]
    out = {}
    for size in batch_sizes:
        rows = rng.choice(n, size, replace=size > n)
        batch = collate([{k: pairs.encoded[k][i] for k in keep} for i in rows])
        out[size] = {k: batch[k] for k in keep}
    return out


@torch.inference_mode()
def time_variants(variants: list[Variant], batches: dict[int, dict], repeats: int = 10, warmup: int = 2,
                  threads: int | None = None, progress: bool = True) -> pd.DataFrame:
    """Latency p50/p95 (ms) and throughput (pairs/s) per variant and batch size, interleaved."""
    if threads:
        torch.set_num_threads(threads)
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    times = {(v.name, size): [] for v in variants for size in batches}
    rounds = range(warmup + repeats)
    if progress:
        from tqdm.auto import tqdm

        rounds = tqdm(rounds, desc="latency (interleaved)")
    for r in rounds:
        for size, batch in batches.items():
            for v in variants:
                start = time.perf_counter()
                v.model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
                if r >= warmup:
                    times[(v.name, size)].append(time.perf_counter() - start)
    rows = []
    for (name, size), ts in times.items():
        ts = np.array(ts) * 1e3
        rows.append({"variant": name, "batch": size, "p50_ms": np.percentile(ts, 50), "p95_ms": np.percentile(ts, 95),
                     "pairs_per_s": size / np.percentile(ts, 50) * 1e3})
    return pd.DataFrame(rows)


def weights_bytes(model) -> int | None:
    """Bytes the model's weights occupy in memory (parameters, buffers and packed int8 weights); None for ONNX."""
    if not isinstance(model, torch.nn.Module):
        return None
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    for m in model.modules():  # torch.ao dynamic Linear keeps int8 weights outside parameters()
        if hasattr(m, "_packed_params") and hasattr(m, "weight") and callable(m.weight):
            w = m.weight()
            total += w.numel() * w.element_size() + (m.bias().numel() * 4 if m.bias() is not None else 0)
    return total


def run_benchmark(variants: list[Variant], pairs: PairSet, tokenizer, batch_sizes=(1, 64), repeats: int = 10,
                  warmup: int = 2, threads: int | None = None, progress: bool = True, scores_out: dict | None = None) -> pd.DataFrame:
    """Quality, latency, throughput, size and memory of every variant; ratios against ``variants[0]``.

    ``scores_out`` (a dict), when given, receives each variant's (users, candidates) logits.
    """
    from .peft import peak_memory

    if not variants:
        raise ValueError("no variants to benchmark")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must be unique, got {names}")
    if threads:
        torch.set_num_threads(threads)
    rows = {}
    it = variants
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(variants, desc="quality")
    batches = latency_batches(pairs, tokenizer, batch_sizes)
    big = max(batches)
    all_scores = {}
    for v in it:
        scores = all_scores[v.name] = pair_scores(v.model, pairs, tokenizer)
        with torch.inference_mode(), peak_memory() as mem:
            v.model(batches[big]["input_ids"], batches[big]["attention_mask"], batches[big].get("token_type_ids"))
        rows[v.name] = {**quality(scores), "size_MB": v.size_bytes / 1e6, "params_M": v.params / 1e6,
                        "nonzero_M": (v.nonzero if v.nonzero is not None else v.params) / 1e6,
                        "weights_in_memory_MB": (weights_bytes(v.model) or v.size_bytes) / 1e6,
                        f"peak_rss_MB_b{big}": (mem["peak_bytes"] or np.nan) / 1e6, "notes": v.notes}
    timing = time_variants(variants, batches, repeats, warmup, threads, progress)
    table = pd.DataFrame(rows).T
    for col in table.columns:  # a frame built from dicts is object-typed: make the numbers numbers again
        if col != "notes":
            table[col] = table[col].astype(float)
    for size in batch_sizes:
        part = timing[timing["batch"] == size].set_index("variant")
        table[f"p50_ms_b{size}"] = part["p50_ms"]
        table[f"p95_ms_b{size}"] = part["p95_ms"]
        table[f"pairs_per_s_b{size}"] = part["pairs_per_s"]
    base = table.iloc[0]
    table["quality_kept"] = table["NDCG@10"].astype(float) / float(base["NDCG@10"])
    table["smaller"] = float(base["size_MB"]) / table["size_MB"].astype(float)
    for size in batch_sizes:
        table[f"faster_b{size}"] = float(base[f"p50_ms_b{size}"]) / table[f"p50_ms_b{size}"].astype(float)
    table.index.name = "variant"
    table.attrs["protocol"] = pairs.protocol
    table.attrs["threads"] = torch.get_num_threads()
    if scores_out is not None:
        scores_out.update(all_scores)
    return table


def pareto_front(table: pd.DataFrame, quality_col: str = "NDCG@10", cost_col: str = "p50_ms_b64") -> pd.Series:
    """True for variants no other variant beats on both quality (higher) and cost (lower)."""
    q, c = table[quality_col].astype(float).to_numpy(), table[cost_col].astype(float).to_numpy()
    front = []
    for i in range(len(table)):
        dominated = np.any((q >= q[i]) & (c <= c[i]) & ((q > q[i]) | (c < c[i])))
        front.append(not dominated)
    return pd.Series(front, index=table.index, name="pareto")


def best_under(table: pd.DataFrame, min_quality_kept: float, cost_col: str = "p50_ms_b64") -> str | None:
    """The cheapest variant (by ``cost_col``) keeping at least ``min_quality_kept`` of the baseline's NDCG@10."""
    ok = table[table["quality_kept"].astype(float) >= min_quality_kept]
    return None if ok.empty else str(ok[cost_col].astype(float).idxmin())


def plot_pareto(table: pd.DataFrame, path: str | Path | None = None, quality_col: str = "NDCG@10"):
    """Two panels — quality vs latency (batch 64) and quality vs file size — with the Pareto front marked."""
    import matplotlib.pyplot as plt

    cost_cols = [c for c in table.columns if c.startswith("p50_ms_b")]
    latency = max(cost_cols, key=lambda c: int(c.rsplit("b", 1)[1]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, cost, label in ((axes[0], latency, f"latency p50 at batch {latency.rsplit('b', 1)[1]} (ms)"), (axes[1], "size_MB", "file size (MB)")):
        front = pareto_front(table, quality_col, cost)
        x, y = table[cost].astype(float), table[quality_col].astype(float)
        ax.scatter(x[~front], y[~front], color="0.6", label="dominated")
        ax.scatter(x[front], y[front], color="C3", label="Pareto front")
        order = x[front].sort_values().index
        ax.plot(x[order], y[order], color="C3", alpha=0.5)
        for name in table.index:
            ax.annotate(name, (x[name], y[name]), fontsize=8, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(quality_col)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    fig.suptitle(table.attrs.get("protocol", ""), fontsize=9)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def write_results(table: pd.DataFrame, out_dir: str | Path, stem: str = "bench") -> dict[str, Path]:
    """``stem.csv`` and ``stem.md`` (with protocol, threads and CPU features) in ``out_dir``."""
    from .device import cpu_features

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv, md = out_dir / f"{stem}.csv", out_dir / f"{stem}.md"
    table.to_csv(csv)
    flags = ", ".join(k for k, v in cpu_features().items() if v) or "none detected"
    numeric = table.drop(columns=[c for c in ("notes",) if c in table.columns])
    text = (f"Protocol: {table.attrs.get('protocol', '?')}\n\nThreads: {table.attrs.get('threads', '?')}; CPU features: {flags}\n\n"
            + markdown_table(numeric.astype(float).round(4)) + "\n")
    md.write_text(text)
    return {"csv": csv, "md": md}


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table of ``frame`` (index as the first column)."""
    header = [frame.index.name or ""] + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in frame.iterrows():
        lines.append("| " + " | ".join([str(name)] + [f"{v:g}" if isinstance(v, float) else str(v) for v in row]) + " |")
    return "\n".join(lines)

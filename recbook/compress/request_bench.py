"""The request benchmark (``python -m recbook bench --target request``, :func:`run_request_bench`): every variant of
:mod:`recbook.compress.request` judged by what users see — full-ranking NDCG@10 and top-10 overlap with fp32, paired
over users against a margin fixed before measuring — and by CPU milliseconds per request; the table read for the
cheapest non-inferior variant and plotted."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from recbook.compress.request import RequestVariant, _student_key, build_variants, distill_students
from recbook.compress.request_variants import FP32_VARIANTS, VARIANTS

DEFAULT_MARGIN = 0.005
MIN_OVERLAP = 0.8



# ------------------------------------------------------------------ quality and cost
def padded(histories: list[np.ndarray], max_len: int) -> np.ndarray:
    """Left-padded ``(len(histories), max_len)`` int64 rows of 1-based item indices (what the encoder reads)."""
    out = np.zeros((len(histories), max_len), dtype=np.int64)
    for i, h in enumerate(histories):
        h = np.asarray(h, dtype=np.int64)[-max_len:] if max_len else np.zeros(0, dtype=np.int64)
        if len(h):
            out[i, -len(h):] = h
    return out


def top_k_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, the share of ``a``'s top-k ids that are also in ``b``'s (both ``(users, k)``)."""
    return np.array([len(set(x.tolist()) & set(y.tolist())) / a.shape[1] for x, y in zip(a, b)])


def time_requests(variants: list[RequestVariant], requests: np.ndarray, k: int = 10, rounds: int = 5, seed: int = 0) -> dict[str, dict]:
    """Per variant: CPU and wall milliseconds of ``requests`` (one padded history each, batch 1) answered end to end —
    encoder, scores over the catalogue, top-``k`` — over ``rounds`` rounds in a shuffled order, after one warm-up pass."""
    rng = np.random.default_rng(seed)
    cpu = {v.name: [] for v in variants}
    wall = {v.name: [] for v in variants}

    def answer(v, seq):
        scores = v.scores(seq[None])[0]
        return np.argpartition(-scores, k)[:k]

    for v in variants:  # warm-up: first calls allocate and pick kernels
        for seq in requests[: min(5, len(requests))]:
            answer(v, seq)
    for _ in range(rounds):
        for i in rng.permutation(len(variants)):
            v = variants[i]
            for seq in requests:
                c0, w0 = time.thread_time(), time.perf_counter()
                answer(v, seq)
                cpu[v.name].append(time.thread_time() - c0)
                wall[v.name].append(time.perf_counter() - w0)
    return {name: {"cpu_ms": np.asarray(cpu[name]) * 1e3, "wall_ms": np.asarray(wall[name]) * 1e3} for name in cpu}


def verdict(diff_low: float, overlap: float, margin: float = DEFAULT_MARGIN, min_overlap: float = MIN_OVERLAP) -> str:
    """``non-inferior`` when the paired NDCG difference's lower bound is above ``-margin`` and the top-10 overlap
    with fp32 is at least ``min_overlap``; ``inferior`` otherwise."""
    return "non-inferior" if diff_low > -margin and overlap >= min_overlap else "inferior"


def _write_text_atomic(path: Path, text: str) -> None:
    import os

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_json_atomic(path: Path, payload) -> None:
    import json

    _write_text_atomic(path, json.dumps(payload, indent=1))


def run_request_bench(run: str | Path, out: str | Path, names=VARIANTS, margin: float = DEFAULT_MARGIN, rounds: int = 5,
                      n_requests: int = 200, threads: int = 1, seed: int = 0, eval_users: int | None = None) -> list[dict]:
    """Benchmark the request-path variants of a trained sequential run (``recbook train --model sasrec|bert4rec|lmrec``)
    on its own data and split: writes ``OUT/request_bench.json`` (one record per variant) and ``OUT/request_bench.md``,
    and returns the records."""
    import pandas as pd
    import torch

    from recbook.errors import ConfigError
    from recbook.evaluation.metrics import evaluate_full, top_k_lists
    from recbook.evaluation.protocol import history_for_test, make_eval_set
    from recbook.evaluation.stats import mean_ci, paired_comparison
    from recbook.models import SEQUENTIAL_MODELS
    from recbook.models.base import Histories
    from recbook.runs.recipe import checkpoint_folder, load_trained, run_data

    if not 0 <= margin < 1:
        raise ConfigError("margin", f"margin={margin!r} must be in [0, 1): the largest NDCG@10 loss called non-inferior", margin)
    for name, value in (("rounds", rounds), ("n_requests", n_requests), ("threads", threads)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(name, f"{name}={value!r} must be a positive integer", value)
    folder, record = checkpoint_folder(run)
    if record.get("model") not in SEQUENTIAL_MODELS:
        raise ConfigError("model", f"model={str(run)!r} holds a {record.get('model')} model; the request benchmark needs a run of "
                          f"{', '.join(SEQUENTIAL_MODELS)} (the models the service runs per request)", str(run))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    profile, ds, split = run_data(record)
    model = load_trained(folder, record)
    network = model.network.eval().float().cpu()
    students, student_notes = distill_students(network, ds, split, names, seed=seed)  # training: every thread it has
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        variants = build_variants(network, names, out / "models", threads, students)
        eval_set = make_eval_set(ds, split, "test", profile.eval_negatives, n_users=eval_users, seed=seed)
        users = eval_set.heldout["user_id"].to_numpy()
        rows = model.indices(Histories.from_interactions(history_for_test(split), users=users))
        if network.config.objective == "cloze":  # BERT4Rec reads the [MASK] appended after the history, as it does at inference
            keep = network.config.max_len - 1
            rows = [np.r_[r[-keep:] if keep else r[:0], network.mask_token] for r in rows]
        seqs = padded(rows, network.config.max_len)
        user_row = pd.Series(np.arange(len(users)), index=users)
        untrained = ~network.known_items[1 : network.n_items + 1].cpu().numpy()
        floor = network.config.item_features == "id" and untrained.any() and not untrained.all()

        per_user, lists = {}, {}
        for v in variants:
            matrix = np.concatenate([v.scores(seqs[i : i + 256]) for i in range(0, len(seqs), 256)]).astype(np.float64)
            if floor:  # the recommender's rule: an item it never trained on ranks below every trained one
                matrix[:, untrained] = matrix[:, ~untrained].min(axis=1, keepdims=True) - 1.0
            col = pd.Series(np.arange(len(model.item_ids)), index=model.item_ids)

            def score_fn(u, items, matrix=matrix, col=col):
                return matrix[user_row.loc[u].to_numpy()[:, None], col.loc[np.ravel(items)].to_numpy().reshape(np.shape(items))]

            result = evaluate_full(score_fn, eval_set.heldout, eval_set.history, eval_set.all_items, per_user=True)
            per_user[v.name] = result["per_user"]
            lists[v.name] = top_k_lists(score_fn, users, eval_set.history, eval_set.all_items, 10)
        rng = np.random.default_rng(seed)
        sample = seqs[rng.choice(len(seqs), size=min(n_requests, len(seqs)), replace=False)]
        timing = time_requests(variants, sample, rounds=rounds, seed=seed)
    finally:
        torch.set_num_threads(previous_threads)

    base = "fp32"
    fp32_names = [n for n in FP32_VARIANTS if n in timing]
    best_fp32 = min(fp32_names, key=lambda n: np.median(timing[n]["cpu_ms"]))
    best_cpu = float(np.median(timing[best_fp32]["cpu_ms"]))
    reference_size = next((v.size_bytes for v in variants if v.name == base), variants[0].size_bytes)  # "smaller" than fp32
    records = []
    for v in variants:
        ndcg = per_user[v.name]["NDCG@10"]
        estimate = mean_ci(ndcg, seed=seed)
        if v.name == base or base not in per_user:
            diff, low, high, overlap = 0.0, 0.0, 0.0, 1.0
        else:
            c = paired_comparison(ndcg, per_user[base]["NDCG@10"], (v.name, base), seed=seed)
            diff, low, high = c.diff.mean, c.diff.low, c.diff.high
            overlap = float(top_k_overlap(lists[v.name], lists[base]).mean())
        cpu_p50 = float(np.median(timing[v.name]["cpu_ms"]))
        records.append({
            "variant": v.name, "size_mb": round(v.size_bytes / 2**20, 4), "encoder_mb": round(v.extra["encoder_bytes"] / 2**20, 4),
            "table_mb": round(v.extra["table_bytes"] / 2**20, 4),
            "ndcg10": round(estimate.mean, 6), "ci95": [round(estimate.low, 6), round(estimate.high, 6)],
            "hr10": round(float(per_user[v.name]["HR@10"].mean()), 6),
            "ndcg10_diff": round(diff, 6), "ndcg10_diff_ci95": [round(low, 6), round(high, 6)], "top10_overlap": round(overlap, 4),
            "cpu_ms_p50": round(cpu_p50, 4), "p50_ms": round(float(np.median(timing[v.name]["wall_ms"])), 4),
            "p99_ms": round(float(np.percentile(timing[v.name]["wall_ms"], 99)), 4),
            "requests_per_s_per_core": round(1000.0 / cpu_p50, 1) if cpu_p50 > 0 else None,
            "speedup": round(best_cpu / cpu_p50, 3) if cpu_p50 > 0 else None, "baseline": best_fp32,
            "smaller": round(reference_size / v.size_bytes, 3) if v.size_bytes else None,
            "verdict": "reference" if v.name == base else verdict(low, overlap, margin),
            "users": int(len(users)), "margin": margin, "threads": threads, "rounds": rounds, "requests": int(len(sample)),
            "model": record["model"], "data": record["data"], "notes": student_notes.get(_student_key(v.name), "")})
    _write_json_atomic(out / "request_bench.json", records)
    _write_text_atomic(out / "request_bench.md", request_bench_markdown(records))
    return records


def request_bench_markdown(records: list[dict]) -> str:
    """The benchmark as a Markdown table, with the protocol in a sentence above it."""
    if not records:
        return "(no variants)\n"
    r0 = records[0]
    head = (f"Request benchmark of a {r0['model']} run on {r0['data']}: full-ranking NDCG@10 on {r0['users']} test users "
            f"(95% bootstrap CIs; difference paired with fp32), top-10 overlap with fp32, CPU ms per request at batch 1 with "
            f"{r0['threads']} thread(s) over {r0['rounds']} shuffled rounds of {r0['requests']} requests; speed-up against the "
            f"fastest fp32 variant ({r0['baseline']}); non-inferior = difference CI above -{r0['margin']} and overlap >= {MIN_OVERLAP}.\n\n")
    cols = ["variant", "size_mb", "ndcg10", "ci95", "ndcg10_diff", "ndcg10_diff_ci95", "top10_overlap", "cpu_ms_p50", "p99_ms",
            "speedup", "smaller", "verdict"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in records:
        cells = [f"[{r[c][0]:.4f}, {r[c][1]:.4f}]" if isinstance(r[c], list) else (f"{r[c]:g}" if isinstance(r[c], float) else str(r[c]))
                 for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


# ------------------------------------------------------------------ reading the benchmark
def request_targets(records: list[dict], speedup: float = 4.0, smaller: float = 8.0, stretch: float = 10.0) -> dict:
    """Which targets the benchmark meets: among the *non-inferior* variants, the fastest (CPU per request against the best
    fp32 baseline) and the smallest, each with whether it clears ``speedup`` / ``smaller`` (and ``stretch`` for speed);
    ``fastest_any`` is the fastest variant of all, whatever its verdict — what the speed would be if quality were free."""
    ok = [r for r in records if r["verdict"] == "non-inferior"]
    fastest = max(ok, key=lambda r: r["speedup"] or 0.0, default=None)
    smallest = max(ok, key=lambda r: r["smaller"] or 0.0, default=None)
    return {"fastest": fastest, "smallest": smallest, "fastest_any": max(records, key=lambda r: r["speedup"] or 0.0),
            "speed_met": bool(fastest and fastest["speedup"] >= speedup), "size_met": bool(smallest and smallest["smaller"] >= smaller),
            "stretch_met": bool(fastest and fastest["speedup"] >= stretch), "speedup": speedup, "smaller": smaller, "stretch": stretch}


def cost_per_million(records: list[dict], price_per_cpu_hour: float) -> list[dict]:
    """What serving a million requests costs with each variant of a request benchmark, at its median: CPU ms per request
    (p50) × 10⁶ ÷ 3.6 × 10⁶ ms per CPU-hour, times ``price_per_cpu_hour`` (a stated price per vCPU-hour). A total is a
    mean × a count, so a tail of slow requests makes the true cost higher than this. The model's CPU time only: the
    service's own per-request work (HTTP, JSON, validation) comes on top."""
    if not price_per_cpu_hour > 0:
        raise ValueError(f"price_per_cpu_hour must be a positive price, got {price_per_cpu_hour!r}")
    rows = []
    for r in records:
        hours = r["cpu_ms_p50"] * 1e6 / 3.6e6
        rows.append({"variant": r["variant"], "cpu_ms_p50": r["cpu_ms_p50"], "requests_per_s_per_core": r.get("requests_per_s_per_core"),
                     "cpu_hours_per_million": hours, "cost_per_million": hours * price_per_cpu_hour, "verdict": r["verdict"]})
    return rows


def cheapest_non_inferior(records: list[dict], margin: float, min_overlap: float = MIN_OVERLAP, cost: str = "cpu_ms_p50"):
    """The variant with the lowest ``cost`` whose paired NDCG@10 difference has its lower end above ``-margin`` and whose
    top-10 overlap with fp32 is at least ``min_overlap`` (the verdict re-read at another margin); None if none is."""
    ok = [r for r in records if verdict(r["ndcg10_diff_ci95"][0], r["top10_overlap"], margin, min_overlap) == "non-inferior"]
    return min(ok, key=lambda r: r[cost], default=None)


def plot_request_bench(records: list[dict], path=None):
    """Two panels: the paired NDCG@10 difference to fp32 (95% CI bars) against CPU ms per request, and against size;
    the non-inferiority margin dashed, non-inferior variants in colour, the others grey, each labelled with its overlap."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    margin = records[0]["margin"]
    for ax, cost, label in ((axes[0], "cpu_ms_p50", "CPU ms per request (p50, batch 1, 1 thread; log)"),
                            (axes[1], "size_mb", "size on disk: encoder + item table (MB; log)")):
        for r in records:
            good = r["verdict"] in ("non-inferior", "reference")
            low, high = r["ndcg10_diff_ci95"]
            ax.errorbar(r[cost], r["ndcg10_diff"], yerr=[[r["ndcg10_diff"] - low], [high - r["ndcg10_diff"]]], fmt="o",
                        color="C2" if good else "0.55", capsize=3)
            ax.annotate(f"{r['variant']} ({r['top10_overlap']:.2f})", (r[cost], r["ndcg10_diff"]), fontsize=7, xytext=(4, 3),
                        textcoords="offset points", color="black" if good else "0.4")
        ax.axhline(-margin, color="C3", ls="--", lw=1)
        ax.axhline(0, color="0.3", lw=0.6)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(plt.LogLocator(subs=(1.0, 2.0, 5.0)))  # 0.05, 0.1, 0.2, 0.5 …: readable, not crowded
        ax.xaxis.set_major_formatter(plt.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(plt.NullFormatter())  # log minor labels collide at this width
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("NDCG@10 − fp32 (paired 95% CI)")
    axes[0].text(0.01, 0.02, f"dashed: −{margin} (the margin fixed before measuring); in brackets: top-10 overlap with fp32",
                 transform=axes[0].transAxes, fontsize=7, color="C3")
    fig.suptitle(f"Request path of a {records[0]['model']} run on {records[0]['data']}: {records[0]['users']} users; "
                 f"green = non-inferior (CI above −{margin}, overlap ≥ {MIN_OVERLAP})", fontsize=9)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


__all__ = ["DEFAULT_MARGIN", "MIN_OVERLAP", "cheapest_non_inferior", "padded", "plot_request_bench", "request_bench_markdown", "request_targets",
           "run_request_bench", "time_requests", "top_k_overlap", "verdict"]

"""Measure compressed variants of a cross-encoder against the fp32 baseline, honestly.

Taught in notebooks ``11_pruning`` … ``14_compression_pareto``; also ``python -m recbook bench``.

Rules (COURSE.md, "Honesty rules"): every variant is timed **in one process, interleaved**
(variant A, B, C, A, B, C, …) after warm-up, with the thread count fixed, so machine noise hits all
variants alike; latency is reported as p50/p95 over repeats, and each speed-up over the baseline as the
geometric mean of per-round ratios with a paired 95% interval and a verdict (``faster``, ``slower``,
``within noise``); the CPU's features (AVX-512 VNNI, AMX …)
are printed beside the table because int8/bf16 speed depends on them. Quality is NDCG@10 and AUC
under the sampled protocol (held-out item vs sampled negatives), computed on the same tokenized
pairs for every variant. Ratios are against the first variant (the baseline).

Slow paths: a variant can be many times *slower* than fp32 on a CPU without the instructions it needs
(bf16 without AVX-512 BF16 / AMX-BF16, fp16 without AVX512-FP16 / AMX-FP16, torchao int8 in eager mode).
So that a benchmark's run time stays bounded on any CPU, each variant is timed once at the largest batch
after warm-up (the *probe*); one more than ``slow_factor`` times slower than the baseline is measured on
a small fixed amount of work — ``slow_repeats`` timed repeats, quality on the first users only
(``slow_pairs`` pairs), compared with the baseline on the same users — and the table's ``notes`` say so
and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from recbook.evaluation.metrics import ranking_metrics
from recbook.perf.timing import paired_speedup, peak_memory, timed, weights_bytes


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
    """Write and tokenize every (user history, candidate) pair of a sampled :class:`recbook.evaluation.protocol.EvalSet` once."""
    from recbook.data import build_text_pairs, encode_pairs
    from recbook.data.text import history_token_budget

    users = eval_set.heldout["user_id"].to_numpy()
    candidates = np.concatenate([eval_set.heldout["item_id"].to_numpy()[:, None], eval_set.negatives], axis=1)
    flat = pd.DataFrame({"user_id": np.repeat(users, candidates.shape[1]), "item_id": candidates.ravel()})
    pairs = build_text_pairs(flat, eval_set.history, dataset, tokenizer, max_history_items, history_token_budget(max_length), history_field)
    encoded = encode_pairs(pairs["history_text"], pairs["item_text"], tokenizer, max_length)
    protocol = f"sampled: 1 held-out item vs {candidates.shape[1] - 1} sampled negatives, {len(users)} users ({eval_set.description})"
    return PairSet(encoded, len(users), candidates.shape[1], protocol)


def pair_scores(model, pairs: PairSet, tokenizer, batch_size: int = 64, amp_dtype=None, users: int | None = None) -> np.ndarray:
    """(users, candidates) logits of ``model`` on ``pairs`` (``amp_dtype``: autocast, e.g. bf16 for quick sweeps).

    ``users``: score only the first ``users`` users of ``pairs`` (a fixed subset; rows in the same order).
    """
    from recbook.data import PairCollator
    from recbook.models.cross_encoder import predict_pairs

    n_users = pairs.n_users if users is None else int(users)
    if not 1 <= n_users <= pairs.n_users:
        raise ValueError(f"users must be between 1 and {pairs.n_users}, got {users}")
    encoded = pairs.encoded
    if n_users < pairs.n_users:
        n = n_users * pairs.n_candidates  # pairs are stored user by user, n_candidates each
        encoded = encoded.select(range(n)) if hasattr(encoded, "select") else {k: v[:n] for k, v in encoded.items()}
    scores = predict_pairs(model, encoded, PairCollator(tokenizer), batch_size, amp_dtype=amp_dtype)
    return scores.reshape(n_users, pairs.n_candidates)


def quality(scores: np.ndarray, k: int = 10) -> dict[str, float]:
    """NDCG@k, HR@k, MRR and AUC of a (users, candidates) score matrix whose first column is the held-out item."""
    y_true = np.zeros(scores.shape)
    y_true[:, 0] = 1.0
    return ranking_metrics(y_true, scores, k)


def latency_batches(pairs: PairSet, tokenizer, batch_sizes=(1, 64), seed: int = 0) -> dict[int, dict]:
    """One fixed batch per size, drawn from ``pairs`` (so lengths are realistic), padded to its longest pair."""
    from recbook.data import PairCollator

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


def _call(v: Variant, batch: dict):
    return v.model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))


def _cpu_flags() -> set[str]:
    from recbook.perf.device import _read_cpu_flags

    return set(_read_cpu_flags().lower().split())


def _variant_kind(model) -> str | None:
    """What a variant computes in, as far as the CPU is concerned: ``bf16``, ``fp16``, ``torchao-int8-eager``, ``int8`` or None."""
    if not isinstance(model, torch.nn.Module):
        return None
    compiled = type(model).__name__ == "OptimizedModule"  # torch.compile's wrapper
    tensors = list(model.parameters()) + list(model.buffers())
    if any(type(t).__module__.startswith("torchao") for t in tensors):
        return "torchao-int8" if compiled else "torchao-int8-eager"
    dtypes = {t.dtype for t in tensors if t.is_floating_point()}
    if torch.bfloat16 in dtypes:
        return "bf16"
    if torch.float16 in dtypes:
        return "fp16"
    if any(hasattr(m, "_packed_params") for m in model.modules()):
        return "int8"
    return None


# per kind: (CPU flags that give it native instructions, how to name them) — x86 first, then Arm
_NATIVE = {
    "bf16": ({"avx512_bf16", "amx_bf16", "bf16"}, "AVX-512 BF16 / AMX-BF16 (Arm: BF16)"),
    "fp16": ({"avx512_fp16", "amx_fp16", "asimdhp", "fphp"}, "AVX512-FP16 / AMX-FP16 (Arm: FP16 arithmetic)"),
    "int8": ({"avx512_vnni", "avx512vnni", "avx_vnni", "amx_int8", "asimddp"}, "AVX-512 VNNI / AVX-VNNI / AMX-INT8 (Arm: dot product)"),
}


def slow_path_reason(model, flags: set[str] | None = None) -> str:
    """One line on why ``model`` may be slow on this CPU: the missing CPU feature where one applies.

    ``flags``: the CPU's flags (``/proc/cpuinfo`` style); read from this machine by default.
    """
    kind = _variant_kind(model)
    if kind == "torchao-int8-eager":
        return "torchao int8 in eager mode (its fast kernels come with torch.compile)"
    if kind not in _NATIVE:
        return "no missing CPU feature identified"
    flags = _cpu_flags() if flags is None else {f.lower() for f in flags}
    wanted, label = _NATIVE[kind]
    if not flags:
        return f"{kind}: this CPU's features could not be read (fast {kind} needs {label})"
    if flags & wanted:
        return f"{kind} kernels slow here although the CPU has {', '.join(sorted(flags & wanted))}"
    return f"{kind} without {label}"


@torch.inference_mode()
def time_variants(variants: list[Variant], batches: dict[int, dict], repeats: int = 10, warmup: int = 2,
                  threads: int | None = None, progress: bool = True, slow_factor: float | None = 2.0,
                  slow_repeats: int = 2) -> pd.DataFrame:
    """Latency p50/p95 (ms) and throughput (pairs/s) per variant and batch size, interleaved.

    After ``warmup`` interleaved rounds, a *probe* times each variant once at the largest batch (the faster of
    that call and the variant's last warm-up call counts, so one hiccup does not decide). A variant
    more than ``slow_factor`` times slower than ``variants[0]`` there is a slow path on this CPU: it is
    timed in the first ``slow_repeats`` rounds only (still interleaved), so its cost stays bounded. The
    result has a ``repeats`` column (timed calls per row), ``probe_ratio`` (probe time / baseline's) and
    ``notes`` (why a variant was measured with fewer repeats); ``attrs["slow_paths"]`` maps each slow
    variant to its one-line reason. ``slow_factor=None`` turns the probe off. ``attrs["round_times"]``
    keeps every timed call (``{variant: {batch: [seconds per round]}}``) for :func:`compare_speed`.

    Each row also compares the variant with ``variants[0]`` at the same batch size, paired by round
    (:func:`recbook.perf.timing.paired_speedup`): ``speed_up`` (geometric mean of the per-round ratios),
    ``speed_low``/``speed_high`` (95% interval) and ``speed_verdict`` (``faster``, ``slower``, ``within noise``,
    ``too few rounds``; ``baseline`` on the first variant's rows). A slow path is paired on the rounds it ran.
    """
    if threads:
        torch.set_num_threads(threads)
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if slow_repeats < 1:
        raise ValueError(f"slow_repeats must be >= 1, got {slow_repeats}")
    if not variants or not batches:
        raise ValueError("time_variants needs at least one variant and one batch")
    big = max(batches)
    times = {(v.name, size): [] for v in variants for size in batches}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=warmup + (slow_factor is not None) + repeats, desc="latency (interleaved)")
    last_warm = {}  # each variant's last warm-up call at the largest batch, timed
    for _ in range(warmup):
        for size, batch in batches.items():
            for v in variants:
                _, seconds = timed(lambda: _call(v, batch))
                if size == big:
                    last_warm[v.name] = seconds
        bar is not None and bar.update()
    probe, slow = {}, {}
    if slow_factor is not None:
        for v in variants:
            if warmup == 0:  # the first call may be cold: timed, but the faster of the two counts
                last_warm[v.name] = timed(lambda: _call(v, batches[big]))[1]
            # the faster of the probe and the last warm-up call: one hiccup does not make a variant "slow"
            probe[v.name] = min(timed(lambda: _call(v, batches[big]))[1], last_warm[v.name])
        base = variants[0].name
        for v in variants[1:]:
            ratio = probe[v.name] / probe[base]
            if ratio > slow_factor:
                slow[v.name] = (f"slow path on this CPU: {ratio:.1f}x slower than {base} in a probe at batch {big} "
                                f"({slow_path_reason(v.model)}); latency from {min(slow_repeats, repeats)} repeats")
        bar is not None and bar.update()
    n_timed = {v.name: min(slow_repeats, repeats) if v.name in slow else repeats for v in variants}
    for r in range(repeats):
        for size, batch in batches.items():
            for v in variants:
                if r < n_timed[v.name]:
                    times[(v.name, size)].append(timed(lambda: _call(v, batch))[1])
        bar is not None and bar.update()
    if bar is not None:
        bar.close()
    rows = []
    base = variants[0].name
    base_probe = probe.get(base)
    for (name, size), ts in times.items():
        pair = paired_speedup(times[(base, size)], ts)
        if name == base:
            pair.update(speed_up=1.0, low=np.nan, high=np.nan, verdict="baseline")
        ts = np.array(ts) * 1e3
        rows.append({"variant": name, "batch": size, "p50_ms": np.percentile(ts, 50), "p95_ms": np.percentile(ts, 95),
                     "pairs_per_s": size / np.percentile(ts, 50) * 1e3, "repeats": len(ts),
                     "speed_up": pair["speed_up"], "speed_low": pair["low"], "speed_high": pair["high"],
                     "speed_verdict": pair["verdict"],
                     "probe_ratio": probe[name] / base_probe if base_probe else np.nan, "notes": slow.get(name, "")})
    frame = pd.DataFrame(rows)
    frame.attrs["slow_paths"] = slow
    frame.attrs["round_times"] = {v.name: {size: list(times[(v.name, size)]) for size in batches} for v in variants}
    return frame


def check_variants(variants: list[Variant], threads: int | None = None) -> list[str]:
    """The variants' names, after checking there is at least one and that names are unique; fixes ``threads`` if given."""
    if not variants:
        raise ValueError("no variants to benchmark")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must be unique, got {names}")
    if threads:
        torch.set_num_threads(threads)
    return names


def add_speed_columns(table: pd.DataFrame, timing: pd.DataFrame, size: int) -> None:
    """Copy :func:`time_variants`' paired comparison at batch ``size`` into ``table`` (indexed by variant):
    ``faster_b{size}`` (speed-up over the first variant, paired by round), ``faster_b{size} low`` /
    ``faster_b{size} high`` (its 95% interval) and ``speed_b{size}`` (the verdict)."""
    part = timing[timing["batch"] == size].set_index("variant").reindex(table.index)
    table[f"faster_b{size}"] = part["speed_up"].astype(float).to_numpy()
    table[f"faster_b{size} low"] = part["speed_low"].astype(float).to_numpy()
    table[f"faster_b{size} high"] = part["speed_high"].astype(float).to_numpy()
    table[f"speed_b{size}"] = part["speed_verdict"].to_numpy()


def compare_speed(table: pd.DataFrame, base: str, other: str, batch: int = 64, level: float = 0.95) -> dict:
    """How much faster ``other`` ran than ``base`` at ``batch``, paired by timing round, from the call times
    a :func:`time_variants` / :func:`run_benchmark` / ``measure_variants`` result keeps in
    ``attrs["round_times"]`` — for comparing two variants when neither is the table's baseline. Returns
    :func:`recbook.perf.timing.paired_speedup`'s dict (``speed_up``, ``low``, ``high``, ``verdict``, ``rounds``)."""
    times = table.attrs.get("round_times")
    if not times:
        raise ValueError("this table keeps no per-round times (attrs['round_times']); measure it with time_variants, "
                         "run_benchmark or measure_variants")
    for name in (base, other):
        if name not in times:
            raise ValueError(f"no variant {name!r} in the table's timings; it has {sorted(times)}")
        if batch not in times[name]:
            raise ValueError(f"batch {batch} was not timed; timed batches: {sorted(times[name])}")
    return paired_speedup(times[base][batch], times[other][batch], level)


def run_benchmark(variants: list[Variant], pairs: PairSet, tokenizer, batch_sizes=(1, 64), repeats: int = 10,
                  warmup: int = 2, threads: int | None = None, progress: bool = True, scores_out: dict | None = None,
                  slow_factor: float | None = 2.0, slow_repeats: int = 2, slow_pairs: int = 256) -> pd.DataFrame:
    """Quality, latency, throughput, size and memory of every variant; ratios against ``variants[0]``.

    Latency is measured first (:func:`time_variants`, with its probe). A variant the probe finds more than
    ``slow_factor`` times slower than the baseline is a slow path on this CPU: ``slow_repeats`` timed repeats,
    and quality on the first ``max(1, slow_pairs // n_candidates)`` users only. For such a variant the
    absolute quality columns (NDCG@10, AUC, …) are NaN — they would not be comparable with the other rows —
    and ``quality_kept`` is its NDCG@10 over the baseline's **on the same users**; ``quality_users`` says how
    many users each row's quality comes from, and ``notes`` says why. ``attrs["slow_paths"]`` maps each slow
    variant to its note. ``slow_factor=None`` measures every variant in full.

    ``scores_out`` (a dict), when given, receives each variant's (users, candidates) logits (the subset's
    rows only for a slow path).
    """
    check_variants(variants, threads)
    batches = latency_batches(pairs, tokenizer, batch_sizes)
    big = max(batches)
    timing = time_variants(variants, batches, repeats, warmup, threads, progress, slow_factor, slow_repeats)
    slow = timing.attrs["slow_paths"]
    subset = max(1, min(pairs.n_users, slow_pairs // pairs.n_candidates))
    rows = {}
    it = variants
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(variants, desc="quality")
    all_scores, kept = {}, {}
    base = variants[0].name
    for v in it:
        note = v.notes
        if v.name in slow and subset < pairs.n_users:  # a fixed, small subset: the first users, same rows as the baseline's
            scores = pair_scores(v.model, pairs, tokenizer, users=subset)
            base_scores = all_scores[base][:subset]
            ndcg, base_ndcg = quality(scores)["NDCG@10"], quality(base_scores)["NDCG@10"]
            kept[v.name] = ndcg / base_ndcg if base_ndcg > 0 else np.nan
            metrics = {k: np.nan for k in quality(scores)}  # not comparable with the other rows' full-protocol numbers
            r = np.corrcoef(scores.ravel(), base_scores.ravel())[0, 1] if scores.std() > 0 and base_scores.std() > 0 else np.nan
            slow[v.name] += (f"; quality on the first {subset} of {pairs.n_users} users only (NDCG@10, AUC left NaN): "
                             + (f"quality_kept vs {base} on those users" if base_ndcg > 0
                                else f"quality_kept NaN ({base}'s NDCG@10 is 0 on those users)")
                             + f", scores' correlation with {base}'s there {r:.4f}")
            n_users = subset
        else:
            scores = pair_scores(v.model, pairs, tokenizer)
            metrics = quality(scores)
            n_users = pairs.n_users
        all_scores[v.name] = scores
        if v.name in slow:
            note = (note + "; " if note else "") + slow[v.name]
        with torch.inference_mode(), peak_memory() as mem:
            _call(v, batches[big])
        rows[v.name] = {**metrics, "quality_users": n_users, "size_MB": v.size_bytes / 1e6, "params_M": v.params / 1e6,
                        "nonzero_M": (v.nonzero if v.nonzero is not None else v.params) / 1e6,
                        "weights_in_memory_MB": (weights_bytes(v.model) or v.size_bytes) / 1e6,
                        f"peak_rss_MB_b{big}": (mem["peak_bytes"] or np.nan) / 1e6, "notes": note}
    table = pd.DataFrame(rows).T
    for col in table.columns:  # a frame built from dicts is object-typed: make the numbers numbers again
        if col != "notes":
            table[col] = table[col].astype(float)
    table["quality_users"] = table["quality_users"].astype(int)
    for size in batch_sizes:
        part = timing[timing["batch"] == size].set_index("variant")
        table[f"p50_ms_b{size}"] = part["p50_ms"]
        table[f"p95_ms_b{size}"] = part["p95_ms"]
        table[f"pairs_per_s_b{size}"] = part["pairs_per_s"]
    table["latency_repeats"] = timing[timing["batch"] == big].set_index("variant")["repeats"].astype(int)
    base_row = table.iloc[0]
    table["quality_kept"] = [kept.get(name, np.nan) for name in table.index]
    full = table["quality_users"] == pairs.n_users
    table.loc[full, "quality_kept"] = table.loc[full, "NDCG@10"] / float(base_row["NDCG@10"])
    table["smaller"] = float(base_row["size_MB"]) / table["size_MB"].astype(float)
    for size in batch_sizes:
        add_speed_columns(table, timing, size)
    table.index.name = "variant"
    table.attrs["protocol"] = pairs.protocol
    table.attrs["threads"] = torch.get_num_threads()
    table.attrs["slow_paths"] = slow
    table.attrs["round_times"] = timing.attrs["round_times"]
    if scores_out is not None:
        scores_out.update(all_scores)
    return table

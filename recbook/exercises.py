"""Self-checks for the notebooks' exercises: ``check("01.bce", my_bce)`` says whether you got it.

Every checker computes the expected answer itself (with recbook or a reference
library) on fresh random cases, so it cannot be passed by copying a printed number.
``list_exercises()`` shows every exercise with its task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Exercise:
    notebook: str
    task: str
    checker: Callable[[object], tuple[bool, str]]


_REGISTRY: dict[str, Exercise] = {}


def _exercise(key: str, notebook: str, task: str):
    def wrap(fn):
        _REGISTRY[key] = Exercise(notebook, task, fn)
        return fn

    return wrap


def list_exercises(notebook: str | None = None) -> dict[str, str]:
    """``{exercise id: task}``, optionally only those of one notebook (e.g. ``"01_cross_entropy"``)."""
    return {k: e.task for k, e in _REGISTRY.items() if notebook is None or e.notebook == notebook}


def check(key: str, answer) -> bool:
    """Check an answer; print ✅ or ❌ with a hint, and return whether it is right."""
    if key not in _REGISTRY:
        raise KeyError(f"unknown exercise {key!r}; known: {sorted(_REGISTRY)}")
    try:
        ok, message = _REGISTRY[key].checker(answer)
    except Exception as exc:  # a learner's function may raise anything: report it, don't crash
        ok, message = False, f"your answer raised {type(exc).__name__}: {exc}"
    print(("✅ " if ok else "❌ ") + f"{key}: " + message)
    return ok


def _close(a, b, tol=1e-5) -> bool:
    return np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=tol, atol=tol)


# ------------------------------------------------------------------ 00_setup
@_exercise("00.quick_users", "00_setup", "How many synthetic users does the quick profile generate? (an int)")
def _quick_users(answer):
    from .device import get_profile

    expected = get_profile("quick").n_users
    if answer == expected:
        return True, f"the quick profile uses {expected} users."
    return False, "read it from recbook.device.get_profile('quick')."


@_exercise("00.count_interactions", "00_setup", "How many interactions has make_synthetic(seed=1, n_users=50, n_items=40)? (an int)")
def _count_interactions(answer):
    from .data import make_synthetic

    expected = len(make_synthetic(seed=1, n_users=50, n_items=40).interactions)
    if answer == expected:
        return True, "right — and it is the same on every machine, because the generator is seeded."
    return False, "generate it and count the rows of .interactions."


@_exercise("00.has_avx2", "00_setup", "Does this machine's CPU support AVX2? (True/False, from the report)")
def _has_avx2(answer):
    from .device import cpu_features

    expected = cpu_features()["AVX2"]
    if isinstance(answer, bool) and answer == expected:
        return True, f"AVX2 is {'present' if expected else 'absent'} here; int8/bf16 speed-ups depend on such features."
    return False, "look at 'cpu_features' in the environment report (answer True or False)."


# ------------------------------------------------------------ 01_cross_entropy
def _random_probs(rng, n=64):
    p = rng.uniform(0.01, 0.99, size=n)
    y = (rng.random(n) < 0.5).astype(float)
    return p, y


@_exercise("01.bce", "01_cross_entropy", "Write bce(p, y) -> mean BCE from probabilities (NumPy arrays in, float out).")
def _bce(fn):
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(1)
    for _ in range(5):
        p, y = _random_probs(rng)
        expected = F.binary_cross_entropy(torch.tensor(p), torch.tensor(y)).item()
        got = float(fn(p, y))
        if not _close(got, expected):
            return False, f"for a random case you returned {got:.6f}, torch gives {expected:.6f}. Mind the minus sign on BOTH terms."
    return True, "matches torch.nn.functional.binary_cross_entropy on 5 random cases."


@_exercise("01.grad", "01_cross_entropy", "Write grad(z, y) -> dL/dz of the MEAN BCE-with-logits loss (NumPy arrays).")
def _grad(fn):
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(2)
    for _ in range(5):
        z = torch.tensor(rng.normal(0, 3, size=32), requires_grad=True)
        y = torch.tensor((rng.random(32) < 0.5).astype(float))
        F.binary_cross_entropy_with_logits(z, y).backward()
        got = np.asarray(fn(z.detach().numpy(), y.numpy()), dtype=float)
        if got.shape != (32,) or not _close(got, z.grad.numpy()):
            return False, "compare with autograd: the gradient of the mean is (sigmoid(z) - y) / N."
    return True, "matches autograd on 5 random cases: dL/dz = (σ(z) − y)/N."


@_exercise("01.pos_weight", "01_cross_entropy", "Write weighted_bce(z, y, w) -> mean BCE-with-logits where positives weigh w (stable for |z| = 100).")
def _pos_weight(fn):
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(3)
    for w in (1.0, 3.0, 10.0):
        z = np.concatenate([rng.normal(0, 4, size=30), [100.0, -100.0]])
        y = np.concatenate([(rng.random(30) < 0.3).astype(float), [0.0, 1.0]])
        expected = F.binary_cross_entropy_with_logits(torch.tensor(z), torch.tensor(y), pos_weight=torch.tensor(w)).item()
        got = float(fn(z, y, w))
        if not np.isfinite(got):
            return False, f"you returned {got} with logits ±100: use the stable form with log1p(exp(-|z|))."
        if not _close(got, expected):
            return False, f"with w={w} you returned {got:.6f}, torch gives {expected:.6f}."
    return True, "matches torch's pos_weight, and stays finite at ±100."


# ------------------------------------------------------------------- 02_data
def _toy_interactions(seed: int) -> pd.DataFrame:
    from .data import make_synthetic

    return make_synthetic(seed=seed, n_users=40, n_items=60, mean_interactions=8, min_interactions=2).interactions


@_exercise("02.filter_users", "02_data", "Write keep_active(interactions, k) -> the rows of users with at least k interactions.")
def _filter_users(fn):
    inter = _toy_interactions(5)
    for k in (3, 8, 15):
        counts = inter.groupby("user_id")["user_id"].transform("size")
        expected = inter[counts >= k]
        got = fn(inter.copy(), k)
        if not isinstance(got, pd.DataFrame) or len(got) != len(expected) or set(got["user_id"]) != set(expected["user_id"]):
            return False, f"with k={k} expected {len(expected)} rows of {expected['user_id'].nunique()} users."
    return True, "right for k = 3, 8 and 15."


@_exercise("02.last_item", "02_data", "Write last_item(interactions) -> {user_id: item_id of that user's most recent interaction}.")
def _last_item(fn):
    from .data import leave_last_out

    inter = _toy_interactions(6)
    expected = dict(zip(*leave_last_out(inter, drop_short_users=True).test[["user_id", "item_id"]].to_numpy().T))
    got = fn(inter.copy())
    got = {int(k): int(v) for k, v in dict(got).items() if int(k) in expected}
    wrong = [u for u in expected if got.get(int(u)) != int(expected[u])]
    if wrong:
        return False, f"{len(wrong)} user(s) wrong, e.g. user {wrong[0]}: sort by timestamp within each user, then take the last."
    return True, "this is exactly the test item of leave_last_out."


@_exercise("02.popularity_probs", "02_data", "Write pop_probs(interactions, item_ids) -> sampling probabilities ∝ (count + 1), aligned with item_ids.")
def _popularity_probs(fn):
    inter = _toy_interactions(7)
    item_ids = np.arange(1, 61)
    counts = inter["item_id"].value_counts().reindex(item_ids, fill_value=0).to_numpy() + 1.0
    got = np.asarray(fn(inter.copy(), item_ids), dtype=float)
    if got.shape != item_ids.shape:
        return False, f"return one probability per item id: shape {item_ids.shape}, got {got.shape}."
    if not _close(got.sum(), 1.0):
        return False, "probabilities must sum to 1."
    if not _close(got, counts / counts.sum()):
        return False, "count interactions per item (items with none count 0), add 1, divide by the total."
    return True, "these are the weights sample_negatives(strategy='popularity') uses (before removing a user's positives)."


# -------------------------------------------------------------- 03_baselines
@_exercise("03.random_hit_rate", "03_baselines", "Write random_hit_rate(k, n): expected HR@k of random scores with n sampled negatives.")
def _random_hit_rate(fn):
    for k, n in ((10, 99), (1, 99), (5, 9), (20, 9), (10, 1000)):
        expected = min(k, n + 1) / (n + 1)
        got = float(fn(k, n))
        if not _close(got, expected):
            return False, f"for k={k}, n={n} you returned {got:.4f}; there are n + 1 candidates and k slots."
    return True, "k / (n + 1): 10% with 99 negatives — that is the floor every sampled HR@10 sits on."


@_exercise("03.popularity_scores", "03_baselines", "Write popularity_scores(train, users, items) -> interaction counts, shape items.shape.")
def _popularity_scores(fn):
    from .models.popularity import Popularity

    inter = _toy_interactions(8)
    rng = np.random.default_rng(0)
    items = rng.integers(1, 70, size=(5, 12))  # ids above 60 are unknown items
    users = np.arange(1, 6)
    expected = Popularity().fit_interactions(inter, np.arange(1, 70)).scorer(inter)(users, items)
    got = np.asarray(fn(inter.copy(), users, items), dtype=float)
    if got.shape != items.shape:
        return False, f"return one score per candidate: shape {items.shape}, got {got.shape}."
    if not _close(got, expected):
        return False, "count each item's rows in train (value_counts), 0 for items never seen."
    return True, "the same scores as recbook.models.popularity.Popularity."


@_exercise("03.item_cosine", "03_baselines", "Write cosine_item_similarity(X) for a binary user × item matrix.")
def _item_cosine(fn):
    rng = np.random.default_rng(4)
    X = (rng.random((30, 12)) < 0.3).astype(float)
    X[:, 5] = 0  # an item nobody has
    co = X.T @ X
    n = np.sqrt(np.diag(co))
    denom = np.outer(n, n)
    expected = np.divide(co, denom, out=np.zeros_like(co), where=denom > 0)
    np.fill_diagonal(expected, 0)
    got = np.asarray(fn(X.copy()), dtype=float)
    if got.shape != expected.shape:
        return False, f"the result is item × item: shape {expected.shape}, got {got.shape}."
    if not np.isfinite(got).all():
        return False, "an item nobody interacted with must get similarity 0, not NaN."
    if not _close(got, expected):
        return False, "c_ij = (X.T @ X)[i, j]; divide by sqrt(n_i · n_j) and zero the diagonal."
    return True, "this is ItemKNN's similarity with shrink=0 and all neighbours kept."


# ---------------------------------------------------------- 04a_finetune_bert
@_exercise("04.warmup_lr", "04a_finetune_bert", "Write lr_at(step, base_lr, warmup, total): linear warm-up, then linear decay to 0.")
def _warmup_lr(fn):
    import torch

    from .train import warmup_linear_schedule

    for warmup, total, base in ((10, 100, 1e-3), (0, 20, 5e-5), (5, 5, 0.1)):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
        sched = warmup_linear_schedule(opt, warmup, total)
        for step in range(total):
            expected = opt.param_groups[0]["lr"]
            got = float(fn(step, base, warmup, total))
            if not _close(got, expected, 1e-9):
                return False, f"step {step} (warmup={warmup}, total={total}): expected {expected:.3g}, got {got:.3g}."
            opt.step()
            sched.step()
    return True, "the same schedule recbook.train uses: (step+1)/warmup, then (total−step)/(total−warmup)."


@_exercise("04.no_decay", "04a_finetune_bert", "Write no_decay_names(model): names of parameters that must get NO weight decay.")
def _no_decay(fn):
    from transformers import BertConfig, BertModel

    from .train import parameter_groups

    model = BertModel(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16))
    no_decay_ids = {id(p) for p in parameter_groups(model, 0.01)[1]["params"]}
    expected = {n for n, p in model.named_parameters() if id(p) in no_decay_ids}
    got = set(fn(model))
    if got == expected:
        return True, f"{len(expected)} tensors: every bias and every LayerNorm weight."
    missing, extra = sorted(expected - got)[:2], sorted(got - expected)[:2]
    return False, f"missing e.g. {missing}; should decay e.g. {extra}. Rule: biases and LayerNorm weights are not decayed."


@_exercise("04.in_batch_loss", "04a_finetune_bert", "Write in_batch_loss(u, v, temperature): in-batch softmax loss for unit vectors u, v (torch).")
def _in_batch_loss(fn):
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    for t in (0.05, 1.0):
        u = F.normalize(torch.randn(6, 4, generator=g), dim=-1)
        v = F.normalize(torch.randn(6, 4, generator=g), dim=-1)
        expected = F.cross_entropy(u @ v.T / t, torch.arange(6)).item()
        got = float(fn(u, v, t))
        if not _close(got, expected):
            return False, f"temperature {t}: expected {expected:.5f}, got {got:.5f}. Row i's target is column i of u @ v.T / t."
    return True, "each history's own item is the right answer among the batch's items."


# ------------------------------------------------------------------ 05_peft
@_exercise("05.lora_params", "05_peft", "Write lora_params(d_in, d_out, r, n_matrices): trainable parameters LoRA adds.")
def _lora_params(fn):
    for d_in, d_out, r, n in ((384, 384, 8, 12), (768, 3072, 4, 24), (10, 20, 1, 1)):
        expected = n * r * (d_in + d_out)
        got = fn(d_in, d_out, r, n)
        if got != expected:
            return False, f"for d_in={d_in}, d_out={d_out}, r={r}, {n} matrices: expected {expected}, got {got}. A is r×d_in, B is d_out×r."
    return True, "r·(d_in + d_out) per adapted matrix — tiny next to d_in·d_out."


@_exercise("05.merge", "05_peft", "Write merge(W, A, B, alpha, r): the merged weight W + (alpha / r)·B·A (torch tensors).")
def _merge(fn):
    import torch

    g = torch.Generator().manual_seed(0)
    W, A, B = torch.randn(6, 5, generator=g), torch.randn(2, 5, generator=g), torch.randn(6, 2, generator=g)
    x = torch.randn(3, 5, generator=g)
    got = fn(W.clone(), A, B, 16, 2)
    lora_out = x @ W.T + (16 / 2) * (x @ A.T @ B.T)
    if tuple(got.shape) != (6, 5):
        return False, f"the merged weight has W's shape (6, 5), got {tuple(got.shape)}."
    if not _close((x @ got.T).numpy(), lora_out.numpy(), 1e-4):
        return False, "x @ merged.T must equal x @ W.T + (alpha/r)·x @ A.T @ B.T."
    return True, "merged inference is exactly the adapter's output, at the base model's cost."


@_exercise("05.adam_bytes", "05_peft", "Write adam_state_bytes(n_trainable): bytes of AdamW state for fp32 parameters.")
def _adam_bytes(fn):
    for n in (1, 74_113, 22_713_601):
        if fn(n) != 8 * n:
            return False, f"for {n} parameters expected {8 * n}: two fp32 moments (4 bytes each) per trainable parameter."
    return True, "8 bytes per trainable parameter: PEFT shrinks the optimizer state as much as the trainable count."


# ------------------------------------------------------------- 04b_movielens_cli
@_exercise("04b.best_model", "04b_movielens_cli", "Write best_model(results, metric): the name whose metrics dict has the highest `metric`.")
def _best_model(fn):
    rng = np.random.default_rng(5)
    for _ in range(5):
        results = {name: {"NDCG@10": float(rng.random()), "HR@10": float(rng.random())} for name in ("pop", "itemknn", "mf", "two-tower")}
        for metric in ("NDCG@10", "HR@10"):
            expected = max(results, key=lambda n: results[n][metric])
            if fn(results, metric) != expected:
                return False, f"for {metric} the best is {expected!r}; compare results[name][metric] across names."
    return True, "one line with max(..., key=...)."


@_exercise("04b.command", "04b_movielens_cli", "Write command(data, model, out): the argument list for `python -m recbook train` (after 'recbook').")
def _command(fn):
    from .cli import build_parser

    for data, model, out in (("movielens-100k", "two-tower", "runs/tt"), ("synthetic", "pop", "/tmp/p")):
        argv = list(fn(data, model, out))
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:
            return False, f"{argv} is not accepted by the command line; start with 'train', then --data/--model/--out."
        if (args.command, args.data, args.model, args.out) != ("train", data, model, out):
            return False, f"{argv} parses, but not to train --data {data} --model {model} --out {out}."
    return True, "the command line accepts it."


@_exercise("04b.protocol_ratio", "04b_movielens_cli", "Write protocol_ratio(metrics): sampled NDCG@10 / full-ranking NDCG@10 from a metrics.json dict.")
def _protocol_ratio(fn):
    m = {"NDCG@10": 0.32, "full_ranking": {"NDCG@10": 0.05}}
    if not _close(fn(m), 6.4):
        return False, "the full-ranking numbers are under metrics['full_ranking']."
    return True, "that factor is why a metric is meaningless without its protocol."


# ------------------------------------------------------------------ 06_pruning
@_exercise("06.sparsity", "06_pruning", "Write sparsity(tensor): the fraction of entries that are exactly zero.")
def _sparsity(fn):
    import torch

    g = torch.Generator().manual_seed(6)
    for shape, p in (((10, 10), 0.3), ((7, 3, 5), 0.9), ((4,), 0.0)):
        t = torch.randn(shape, generator=g)
        t[torch.rand(shape, generator=g) < p] = 0
        if not _close(fn(t), float((t == 0).float().mean())):
            return False, "count the entries equal to 0 and divide by the number of entries (t.numel())."
    return True, "sparsity_report does this for every layer."


@_exercise("06.global_threshold", "06_pruning", "Write global_threshold(weights, amount): the k-th smallest |w| over all tensors, k = amount × total.")
def _global_threshold(fn):
    import torch

    from .compress.prune import magnitude_prune

    g = torch.Generator().manual_seed(7)
    model = torch.nn.Sequential(torch.nn.Linear(20, 30), torch.nn.Linear(30, 5))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (3.0 if p.shape[0] == 5 else 1.0))
    for amount in (0.2, 0.4, 0.8):  # amount × 750 weights is a whole number: no rounding question
        t = fn([m.weight.detach() for m in model], amount)
        pruned = magnitude_prune(model, amount)
        kept = torch.cat([m.weight.detach().flatten() for m in pruned])
        ref = torch.cat([m.weight.detach().flatten() for m in model])
        if not torch.equal(kept != 0, ref.abs() > float(t)):
            return False, f"for amount={amount} weights with |w| above your threshold are not exactly the ones global pruning keeps."
    return True, "one threshold for all layers: layers with many small weights lose more."


@_exercise("06.packed_bytes", "06_pruning", "Write packed_bytes(n, sparsity, value_bytes): ceil(n/8) mask bytes + value_bytes per non-zero.")
def _packed_bytes(fn):
    import torch

    from .compress.storage import save_compact

    for n, s, b in ((1000, 0.5, 4), (4096, 0.9, 1), (17, 0.0, 2)):
        expected = -(-n // 8) + round(n * (1 - s)) * b
        if int(fn(n, s, b)) != expected:
            return False, f"for n={n}, sparsity={s}, {b}-byte values expected {expected} bytes."
    w = torch.ones(64, 64)
    w[:, :32] = 0
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        size = save_compact({"w": w}, Path(d) / "w.safetensors")
    if size - int(fn(64 * 64, 0.5, 4)) > 1024:  # safetensors header only
        return False, "your formula is far from the real file size."
    return True, "at 50% sparsity fp32 values still cost 16 of every 32 bits, plus 1 bit of mask."


# ------------------------------------------------------------------ 07_distillation
@_exercise("07.soften", "07_distillation", "Write soften(logits, T): sigmoid(logits / T).")
def _soften(fn):
    import torch

    z = torch.linspace(-6, 6, 13)
    for t in (1.0, 2.0, 5.0):
        if not _close(torch.as_tensor(fn(z, t)), torch.sigmoid(z / t)):
            return False, f"for T={t} expected sigmoid(z / T)."
    return True, "larger T pulls every target towards 0.5 and keeps the order."


@_exercise("07.kd_loss", "07_distillation", "Write kd_loss(zs, zt, y, T, alpha): α·BCE(zs, y) + (1−α)·T²·BCE(zs/T, σ(zt/T)).")
def _kd_loss(fn):
    import torch

    from .losses import distillation_bce

    g = torch.Generator().manual_seed(8)
    for t, a in ((1.0, 0.5), (3.0, 0.2), (2.0, 1.0)):
        zs, zt = torch.randn(32, generator=g), torch.randn(32, generator=g) * 3
        y = (torch.rand(32, generator=g) < 0.3).float()
        if not _close(float(fn(zs, zt, y, t, a)), float(distillation_bce(zs, zt, y, t, a)), 1e-4):
            return False, f"for T={t}, alpha={a} your loss differs from recbook.losses.distillation_bce; did you multiply the soft term by T²?"
    return True, "the same loss recbook.compress.distill.Distiller trains on."


@_exercise("07.encoder_share", "07_distillation", "Write encoder_share(n_layers): the fraction of the 6 encoder layers' parameters kept.")
def _encoder_share(fn):
    for n in range(1, 7):
        if not _close(fn(n), n / 6):
            return False, f"{n} of 6 equal layers keep {n}/6 of the encoder-layer parameters."
    return True, "the embeddings are not part of it: that is why students need trimming too."


# ------------------------------------------------------------------ 08_quantization
@_exercise("08.scale_zero_point", "08_quantization", "Write scale_zero_point(lo, hi): asymmetric uint8 (scale, zero_point).")
def _scale_zero_point(fn):
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization.observer import MinMaxObserver

    for lo, hi in ((-1.0, 3.0), (-0.25, 0.5), (-6.0, 0.1)):
        obs = MinMaxObserver(dtype=torch.quint8)
        obs(torch.tensor([lo, hi]))
        s, z = obs.calculate_qparams()
        got = fn(lo, hi)
        if not (_close(got[0], float(s), 1e-6) and int(got[1]) == int(z)):
            return False, f"for [{lo}, {hi}] PyTorch's observer gives scale {float(s):.6f}, zero point {int(z)}."
    return True, "identical to PyTorch's MinMaxObserver."


@_exercise("08.int8_dot", "08_quantization", "Write int8_dot(qa, qb, za, sa, sb): sa·sb·Σ(qa − za)·qb accumulated in int32.")
def _int8_dot(fn):
    import torch

    g = torch.Generator().manual_seed(9)
    for n in (8, 384, 1536):
        qa = torch.randint(0, 256, (n,), generator=g).to(torch.uint8)
        qb = torch.randint(-128, 128, (n,), generator=g).to(torch.int8)
        za, sa, sb = 113, 0.02, 0.003
        expected = sa * sb * float(((qa.long() - za) * qb.long()).sum())
        if not _close(fn(qa, qb, za, sa, sb), expected, 1e-6):
            return False, "convert to int32 before subtracting and multiplying: uint8 arithmetic wraps around."
    return True, "one float multiply at the end; everything else is integer."


@_exercise("08.int8_mb", "08_quantization", "Write int8_model_mb(n_params): MB of int8 weights plus one fp32 scale per 384 weights.")
def _int8_mb(fn):
    for n in (384, 22_713_216, 10**6):
        if not _close(fn(n), (n + 4 * n / 384) / 1e6, 1e-6):
            return False, "1 byte per weight plus 4 bytes per scale, one scale per 384 weights; MB = 10**6 bytes."
    return True, "about 1% overhead for the scales: int8 is ~4× smaller than fp32."


# ------------------------------------------------------------------ 09_compression_pareto
@_exercise("09.dominates", "09_compression_pareto", "Write dominates(a, b) for (quality, cost) tuples.")
def _dominates(fn):
    cases = {((0.3, 10), (0.2, 20)): True, ((0.3, 10), (0.3, 10)): False, ((0.3, 10), (0.3, 11)): True,
             ((0.2, 5), (0.3, 10)): False, ((0.31, 10), (0.3, 10)): True}
    for (a, b), expected in cases.items():
        if bool(fn(a, b)) != expected:
            return False, f"dominates({a}, {b}) should be {expected}: at least as good on both, strictly better on one."
    return True, "the Pareto front is what no point dominates."


@_exercise("09.front", "09_compression_pareto", "Write front(points): the names no other point dominates.")
def _front(fn):
    import pandas as pd

    from .bench import pareto_front

    rng = np.random.default_rng(10)
    for _ in range(5):
        points = {f"v{i}": (round(float(rng.random()), 2), round(float(rng.random()) * 100, 1)) for i in range(8)}
        table = pd.DataFrame({"NDCG@10": [p[0] for p in points.values()], "cost": [p[1] for p in points.values()]}, index=list(points))
        expected = set(table.index[pareto_front(table, "NDCG@10", "cost")])
        if set(fn(points)) != expected:
            return False, f"for {points} the front is {sorted(expected)}."
    return True, "recbook.bench.pareto_front does the same on the benchmark table."


@_exercise("09.combined_ratio", "09_compression_pareto", "Write combined_ratio(ratios): the product of independent size ratios.")
def _combined_ratio(fn):
    for ratios in ([2, 4], [1.5], [3, 2, 1.25], []):
        expected = float(np.prod(ratios)) if ratios else 1.0
        if not _close(fn(ratios), expected):
            return False, f"for {ratios} expected {expected}: ratios applied one after another multiply."
    return True, "which is why distill + trim + int8 can reach ratios no single method gives."


# ------------------------------------------------------------------ 10_distributed
@_exercise("10.per_rank_batch", "10_distributed", "Write per_rank_batch(global_batch, world_size), raising ValueError when it does not split evenly.")
def _per_rank_batch(fn):
    for g, w in ((16, 2), (64, 8), (12, 1)):
        if fn(g, w) != g // w:
            return False, f"per_rank_batch({g}, {w}) should be {g // w}."
    try:
        fn(10, 4)
    except ValueError:
        return True, "the global batch (what the optimizer sees per step) stays the same for any number of ranks."
    return False, "per_rank_batch(10, 4) must raise ValueError: 10 examples do not split over 4 ranks."


@_exercise("10.adamw_bytes", "10_distributed", "Write adamw_bytes_per_rank(n_params, world_size, sharded): fp32 params + grads + 2 AdamW moments per rank.")
def _adamw_bytes(fn):
    for n, w in ((1000, 2), (22_565_760, 8), (7, 1)):
        if not _close(fn(n, w, False), 16 * n) or not _close(fn(n, w, True), 16 * n / w):
            return False, f"for {n} parameters on {w} ranks: DDP {16 * n} bytes (4 copies × 4 bytes), FSDP {16 * n / w}."
    return True, "16 bytes per parameter before activations: why FSDP exists."


@_exercise("10.sharded_lookup", "10_distributed", "Write sharded_lookup(ids, shards): the rows of the concatenated shards for ids.")
def _sharded_lookup(fn):
    import torch

    g = torch.Generator().manual_seed(11)
    for sizes in ((5, 5), (3, 4, 6), (10,)):
        shards = [torch.randn(n, 3, generator=g) for n in sizes]
        full = torch.cat(shards)
        ids = torch.randint(0, len(full), (4, 2), generator=g)
        if not _close(torch.as_tensor(fn(ids, shards)), full[ids]):
            return False, f"for shard sizes {sizes} the result differs from torch.cat(shards)[ids]."
    return True, "each rank contributes its rows and zeros elsewhere; one all-reduce sums them."


# ------------------------------------------------------------------ 11_gpu_tpu
@_exercise("11.bucket", "11_gpu_tpu", "Write bucket(length, buckets): the smallest bucket >= length; ValueError if none.")
def _bucket(fn):
    from .accel import bucket_length

    for length, buckets in ((23, (32, 64)), (64, (32, 64, 128)), (1, (8,)), (65, (128, 32, 64))):
        if fn(length, buckets) != bucket_length(length, tuple(sorted(buckets))):
            return False, f"bucket({length}, {buckets}) should be {bucket_length(length, tuple(sorted(buckets)))}."
    try:
        fn(300, (32, 64))
    except ValueError:
        return True, "a handful of shapes means a handful of XLA compilations."
    return False, "bucket(300, (32, 64)) must raise ValueError."


@_exercise("11.needs_scaler", "11_gpu_tpu", "Write needs_loss_scaling(dtype): True only for torch.float16.")
def _needs_scaler(fn):
    import torch

    expected = {torch.float16: True, torch.bfloat16: False, torch.float32: False}
    for dtype, want in expected.items():
        if bool(fn(dtype)) != want:
            return False, f"{dtype}: {'needs' if want else 'does not need'} loss scaling — compare torch.finfo(dtype).tiny."
    return True, "bf16 has fp32's exponent range; fp16's small gradients underflow without scaling."


@_exercise("11.best_batch", "11_gpu_tpu", "Write best_batch(latency_ms, budget_ms): the largest batch within the latency budget, else None.")
def _best_batch(fn):
    lat = {1: 5.0, 8: 12.0, 32: 40.0, 64: 90.0}
    for budget, want in ((50, 32), (100, 64), (4, None), (12, 8)):
        if fn(lat, budget) != want:
            return False, f"with budget {budget} ms expected {want}."
    return True, "the latency budget caps the batch; where throughput still grows with the batch (check your sweep), the largest batch that fits is the best."


# ------------------------------------------------------------------ 12_serving
@_exercise("12.hpa_replicas", "12_serving",
           "Write desired_replicas(current, utilisation, target, min_replicas, max_replicas): the HPA's ceil(current × utilisation / "
           "target), unchanged within ±10 % of the target, clamped to [min, max].")
def _hpa_replicas(fn):
    from .serve.scaling import desired_replicas

    # (current, utilisation %, target %, min, max): scale up, within tolerance (both sides), scale down, both clamps
    cases = ((2, 150, 60, 2, 10), (3, 64, 60, 1, 10), (4, 55, 60, 1, 10), (4, 30, 60, 1, 10), (4, 10, 60, 2, 10),
             (8, 200, 60, 2, 10), (1, 95, 60, 1, 10), (6, 45, 60, 1, 20))
    for current, utilisation, target, lo, hi in cases:
        want = desired_replicas(current, utilisation, target, tolerance=0.1, min_replicas=lo, max_replicas=hi)
        got = fn(current, utilisation, target, lo, hi)
        if got != want:
            ratio = utilisation / target
            if abs(ratio - 1) <= 0.1:
                hint = f"the ratio {ratio:.3f} is within 1 ± 0.1: the HPA keeps {current} replicas (no flapping on noise)."
            elif not lo <= got <= hi:
                hint = f"the result must stay within [{lo}, {hi}]."
            else:
                hint = f"ceil({current} × {utilisation} / {target}) = ceil({current * ratio:.3f})."
            return False, f"desired_replicas({current}, {utilisation}, {target}, {lo}, {hi}) should be {want}, got {got}: {hint}"
    return True, "the HPA scales in proportion to the load per pod, with a dead band against noise and hard bounds."


@_exercise("12.percentile", "12_serving",
           "Write percentile(latencies_ms, q): NumPy's default (linear) percentile — sorted values, rank (n − 1)·q/100, interpolated.")
def _percentile(fn):
    rng = np.random.default_rng(12)
    for n in (1, 2, 7, 100, 333):
        values = rng.lognormal(3.0, 0.8, size=n)  # latency-like: a long right tail
        for q in (0, 50, 95, 99, 100):
            want = float(np.percentile(values, q))
            got = float(fn(rng.permutation(values).tolist(), q))
            if not np.isclose(got, want, rtol=1e-9, atol=1e-9):
                hint = "sort the values first." if n > 2 else "interpolate between the two values around rank (n − 1)·q/100."
                return False, f"n={n}, q={q}: expected {want:.4f}, got {got:.4f} — {hint}"
    return True, ("with 100 requests, p99 sits between the two slowest; with fewer it is nearly the maximum — "
                  "tail percentiles need many requests to be stable.")


@_exercise("12.token_bucket", "12_serving",
           "Write token_bucket(arrivals, rate, burst): which requests a token bucket (starts full, refills rate/s up to burst) lets through.")
def _token_bucket(fn):
    from .serve.security import TokenBucket

    rng = np.random.default_rng(13)
    cases = [([0.0, 0.1, 0.2, 1.3, 1.4], 1.0, 1.0), ([0.0, 0.01, 0.02, 0.03, 0.6, 0.61], 2.0, 2.0)]
    cases += [(np.cumsum(rng.exponential(1 / 8.0, size=40)).tolist(), 5.0, 3.0) for _ in range(3)]
    for arrivals, rate, burst in cases:
        clock = iter([arrivals[0], *arrivals])  # the bucket is created (full) at the first arrival
        bucket = TokenBucket(rate, burst, clock=lambda: next(clock))
        want = [bucket.take() == 0.0 for _ in arrivals]
        got = [bool(x) for x in fn(list(arrivals), rate, burst)]
        if len(got) != len(want):
            return False, f"{len(arrivals)} arrivals need {len(arrivals)} answers, got {len(got)}."
        if got != want:
            first = next(i for i, (g, w) in enumerate(zip(got, want)) if g != w)
            return False, (f"rate {rate}/s, burst {burst}: request {first} (t = {arrivals[first]:.3f} s) should "
                           f"{'pass' if want[first] else 'be refused'}; refill by (elapsed × rate), never above the burst, "
                           "and take a token only when one is there.")
    return True, "a burst passes at once, then the rate rules: what RECBOOK_RATE_LIMIT gives each key."


def _lacks(answer, keys) -> str | None:
    """The hint for the first key an answer dict misses (None when it has them all)."""
    missing = [k for k in keys if k not in answer]
    return f"the answer dict lacks {missing[0]!r}." if missing else None


def _rescored_comparison(answer, what: str, names: tuple[str, str]):
    """Experiment exercises: re-score the learner's ``answer["scorer"]`` under full ranking, check the NDCG@10 and the
    "does the paired interval exclude zero?" they report. Returns ``(hint, None)`` on a mistake, ``(None, comparison)``."""
    from .evaluate import evaluate
    from .stats import paired_comparison

    hint = _lacks(answer, ("scorer", "ndcg_full", "significant", "eval_set", "reference"))
    if hint:
        return hint, None
    res = evaluate(answer["scorer"], answer["eval_set"], "full", per_user=True)
    if not np.isclose(res["NDCG@10"], answer["ndcg_full"], atol=1e-6):
        return f"re-scoring your {what} gives full-ranking NDCG@10 {res['NDCG@10']:.4f}, not {answer['ndcg_full']:.4f}.", None
    reference = answer["reference"]
    if isinstance(reference, pd.DataFrame):  # a per-user table: compare on NDCG@10
        reference = reference["NDCG@10"]
    c = paired_comparison(res["per_user"]["NDCG@10"], reference, names)
    if bool(answer["significant"]) != c.significant:
        return f"the paired interval is {c.diff}; does it exclude zero?", None
    return None, c


# --------------------------------------------------------------- 04s_sequential
@_exercise("04s.causal_mask", "04s_sequential", "Write causal_allowed(length): bool (length × length), True where position i may attend to j.")
def _causal_mask(fn):
    import torch

    for n in (1, 4, 7):
        got = torch.as_tensor(fn(n))
        want = torch.ones(n, n, dtype=torch.bool).tril()
        if got.shape != want.shape or got.dtype != torch.bool:
            return False, f"length {n}: expected a bool tensor of shape {tuple(want.shape)}, got {got.dtype} {tuple(got.shape)}."
        if not torch.equal(got, want):
            return False, f"length {n}: position i may see positions 0…i (itself and the past), never the future."
    return True, "the lower triangle: every position sees itself and the past — and never an empty row."


@_exercise("04s.paired_ci", "04s_sequential", "Write paired_difference_ci(a, b, n_boot, seed) → (mean, low, high) of a − b, bootstrap over users.")
def _paired_ci(fn):
    from .stats import paired_comparison

    rng = np.random.default_rng(7)
    base = rng.random(400)
    a, b = base + rng.normal(0.03, 0.05, 400), base
    mean, low, high = (float(x) for x in fn(a, b, 2000, 0))
    ref = paired_comparison(a, b, n_boot=4000, seed=1).diff
    if not np.isclose(mean, ref.mean):
        return False, f"the mean difference should be {ref.mean:.4f}, got {mean:.4f}."
    if not (np.isclose(low, ref.low, atol=0.004) and np.isclose(high, ref.high, atol=0.004)):
        return False, (f"expected an interval near [{ref.low:.4f}, {ref.high:.4f}], got [{low:.4f}, {high:.4f}] — resample user indices "
                       "once and apply them to the differences a − b.")
    return True, "pairing removes the variation both models share; the interval of the difference is what decides."


@_exercise("04s.shuffled_history", "04s_sequential", "Re-score SASRec on order-shuffled histories; report full NDCG@10 and whether it differs.")
def _shuffled_history(answer):
    from .models.sequential import SequentialScorer

    if "scorer" in answer and not isinstance(answer["scorer"], SequentialScorer):
        return False, "pass a SequentialScorer built on the shuffled history."
    hint, c = _rescored_comparison(answer, "scorer", ("shuffled", "ordered"))
    if hint:
        return False, hint
    if abs(c.diff.mean) < 1e-12:
        return False, "your scorer gives exactly the ordered history's results: did the order change?"
    return True, f"shuffled − ordered: {c.diff} — {c.verdict}."


# ----------------------------------------------------- 04t_sequential_cold_start
@_exercise("04t.nearest_by_text", "04t_sequential_cold_start", "Write nearest_by_text(vectors, query, k): the k most cosine-similar rows, query excluded.")
def _nearest_by_text(fn):
    rng = np.random.default_rng(3)
    v = rng.normal(size=(30, 8))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    for q, k in ((0, 3), (17, 5)):
        sims = v @ v[q]
        sims[q] = -np.inf
        want = np.argsort(-sims)[:k]
        got = np.asarray(fn(v.copy(), q, k))
        if q in got.tolist():
            return False, "exclude the query item itself (its similarity to itself is 1)."
        if got.tolist() != want.tolist():
            return False, f"query {q}, k={k}: expected rows {want.tolist()}, got {got.tolist()} — best first."
    return True, "for unit vectors the dot product is the cosine similarity."


@_exercise("04t.constant_auc", "04t_sequential_cold_start", "Write constant_score_auc(below, n): AUC of an item scored c against n negatives, `below` of them under c.")
def _constant_auc(fn):
    from .metrics import auc

    rng = np.random.default_rng(5)
    for n in (9, 99):
        neg = rng.normal(size=n)
        neg[np.isclose(neg, 0)] = 0.1
        below = int((neg < 0).sum())
        want = auc(np.r_[1.0, np.zeros(n)], np.r_[0.0, neg])
        if not _close(fn(below, n), want):
            return False, f"with {below} of {n} negatives below, the AUC is {want:.4f}: the share of negatives it beats."
    return True, "the AUC is the share of negatives the constant happens to beat — nothing about the item itself."


@_exercise("04t.id_dropout_off", "04t_sequential_cold_start", "Train the hybrid with id_dropout=0, measure its cold AUC, explain the change.")
def _id_dropout_off(answer):
    from .evaluate import evaluate
    from .models.sequential import SequentialScorer

    hint = _lacks(answer, ("model", "cold_auc", "why", "cold_set", "cold_history", "item_ids"))
    if hint:
        return False, hint
    cfg = answer["model"].config
    if cfg.item_features != "hybrid" or cfg.id_dropout != 0:
        return False, f"train SequentialConfig(item_features='hybrid', id_dropout=0.0); yours is {cfg.item_features!r}, id_dropout={cfg.id_dropout}."
    res = evaluate(SequentialScorer(answer["model"], answer["item_ids"], answer["cold_history"]), answer["cold_set"], "sampled")
    if not np.isclose(res["AUC"], answer["cold_auc"], atol=1e-6):
        return False, f"re-scoring your model on the cold users gives AUC {res['AUC']:.4f}, not {answer['cold_auc']:.4f}."
    if str(answer["why"]).strip().lower() != "a":
        return False, "the text embeddings are frozen and cold items never get an ID vector; think about which path the gradient trains."
    return True, (f"cold AUC {res['AUC']:.3f} without ID dropout. ID dropout exists to force the text path to rank on its own; "
                  "whether that matters on this data is what your paired interval says.")


# ----------------------------------------------------------------- 04c_cascade
@_exercise("04c.hard_negatives", "04c_cascade", "Write hard_negatives(scores, seen, positive, k): the k best-scored columns, not seen and not the positive, best first.")
def _hard_negatives(fn):
    rng = np.random.default_rng(11)
    for n, k in ((30, 5), (12, 3)):
        scores = rng.permutation(n).astype(float)
        seen = rng.choice(n, n // 3, replace=False)
        positive = int(np.setdiff1d(np.arange(n), seen)[0])
        order = np.argsort(-scores)
        want = [int(c) for c in order if c not in set(seen.tolist()) | {positive}][:k]
        got = [int(c) for c in np.asarray(fn(scores.copy(), seen.copy(), positive, k)).ravel()]
        if positive in got:
            return False, "the true next item is a positive: never return it as a negative."
        if set(got) & set(seen.tolist()):
            return False, "leave out the user's training items: they are positives too."
        if got != want:
            return False, f"n={n}, k={k}: expected columns {want} (highest scores first), got {got}."
    return True, "the retriever's favourites that the user did not pick: the confusions a re-ranker has to resolve."


@_exercise("04c.oracle_ndcg", "04c_cascade", "Write oracle_cascade_ndcg(ranks, top_n, k): NDCG@k of a perfect re-ranker of a retriever's top_n.")
def _oracle_ndcg(fn):
    rng = np.random.default_rng(12)
    ranks = rng.integers(1, 60, size=300).astype(float)

    def want(r, top_n, k):
        gain = np.where(r <= k, 1.0 / np.log2(r + 1.0), 0.0)  # outside the top-N the item keeps the retriever's rank
        return float(np.where(r <= top_n, 1.0, gain).mean())

    for top_n, k in ((20, 10), (5, 10), (1, 10), (50, 5)):
        got = float(fn(ranks.copy(), top_n, k))
        if not np.isclose(got, want(ranks, top_n, k)):
            hint = " Items below the top-N keep their rank — they may still count when N < k." if top_n < k else ""
            return False, f"top_n={top_n}, k={k}: expected {want(ranks, top_n, k):.4f}, got {got:.4f}.{hint}"
    return True, "a re-ranker can only reorder what the retriever found: the retriever's recall@N caps the cascade."


@_exercise("04c.rank_fusion", "04c_cascade", "Build a cascade that orders the top-N by retriever rank + re-ranker rank; measure it against the retriever.")
def _rank_fusion(answer):
    hint, c = _rescored_comparison(answer, "cascade", ("rank fusion", "retriever"))
    if hint:
        return False, hint
    return True, f"rank fusion − retriever: {c.diff} — {c.verdict}."


# --------------------------------------------------------- 04d_lm_recommender
@_exercise("04d.untrained_floor", "04d_lm_recommender",
           "Write floor_untrained(scores, trained): a copy of scores (users × items) where every item not trained on scores "
           "1 below the lowest trained item of its row.")
def _untrained_floor(fn):
    rng = np.random.default_rng(14)
    for n_users, n_items in ((3, 8), (5, 30)):
        scores = rng.normal(size=(n_users, n_items)) - 2.0  # mostly below 0: an untrained item left at 0 would rank first
        trained = rng.random(n_items) < 0.7
        trained[0], trained[-1] = True, False
        before = scores.copy()
        got = np.asarray(fn(scores, trained), dtype=float)
        if not np.array_equal(scores, before):
            return False, "return a copy: do not change the scores you were given."
        if got.shape != scores.shape:
            return False, f"expected shape {scores.shape}, got {got.shape}."
        if not np.allclose(got[:, trained], scores[:, trained]):
            return False, "leave the trained items' scores as they are."
        want = scores[:, trained].min(axis=1) - 1.0
        if not np.allclose(got[:, ~trained], want[:, None]):
            return False, "each row's untrained items: the row's lowest *trained* score minus 1 (per row, not over the matrix)."
    return True, ("an item without a trained vector now ranks below every trained one: with a zero vector it scored 0, "
                  "above every trained item whose score is negative.")


@_exercise("04d.content_scores", "04d_lm_recommender",
           "Write content_scores(vectors, history, n_recent): each item's cosine to the mean vector of the user's n_recent "
           "latest history items (vectors are L2-normalised rows; history lists catalogue rows, oldest first).")
def _content_scores(fn):
    rng = np.random.default_rng(15)
    vectors = rng.normal(size=(12, 6))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for history, n in (([0, 3, 5, 7], 2), ([4], 3), ([1, 2, 3, 4, 5], 5)):
        mean = vectors[history[-n:]].mean(axis=0)
        want = vectors @ (mean / np.linalg.norm(mean))
        got = np.asarray(fn(vectors.copy(), list(history), n), dtype=float).ravel()
        if got.shape != want.shape:
            return False, f"one score per catalogue item: expected {want.shape}, got {got.shape}."
        if not np.allclose(got, want, atol=1e-6):
            if np.allclose(got, vectors @ vectors[history].mean(axis=0) / np.linalg.norm(vectors[history].mean(axis=0)), atol=1e-6):
                return False, f"use only the {n} most recent items (the end of the history), not all of them."
            return False, "average the recent items' vectors, normalise the mean, then take dot products (cosines)."
    return True, "the content-only baseline: what text alone knows about a user's next item."


@_exercise("04d.freezing_variant", "04d_lm_recommender",
           "Run the content-only model with the frozen encoder's vectors; give its full-ranking NDCG@10 and whether its "
           "paired interval against the fine-tuned text model excludes zero.")
def _freezing_variant(answer):
    hint, c = _rescored_comparison(answer, "variant", ("variant", "fine-tuned"))
    if hint:
        return False, hint
    return True, f"variant − fine-tuned: {c.diff} — {c.verdict}."


# ------------------------------------------------------------------ 13_continual
@_exercise("13.psi", "13_continual",
           "Write psi(expected_counts, actual_counts): the population stability index Σ (a − e)·ln(a / e) of the two count "
           "vectors turned into shares, each share floored at 1e-4 (then renormalised) so an empty bin does not explode.")
def _psi(fn):
    from .drift import psi

    rng = np.random.default_rng(13)
    cases = [([10, 20, 30], [10, 20, 30]), ([5, 0, 5], [0, 5, 5]), ([100, 1, 1, 1], [1, 1, 1, 100])]
    cases += [(rng.integers(0, 50, size=n), rng.integers(0, 50, size=n)) for n in (5, 40, 300)]
    for expected, actual in cases:
        want, got = psi(expected, actual), float(fn(list(expected), list(actual)))
        if not np.isclose(got, want, rtol=1e-6, atol=1e-9):
            hint = "identical distributions must give 0." if want == 0 else "divide counts by their sum, floor at 1e-4 and renormalise."
            return False, f"expected {want:.6f}, got {got:.6f} for {len(expected)} bins — {hint}"
    return True, ("two samples of one distribution do not give PSI 0: with few events per bin noise alone gives a clear PSI "
                  "— calibrate thresholds on data without drift.")


@_exercise("13.reservoir", "13_continual",
           "Write reservoir(stream, capacity, rng): Algorithm R — keep the first `capacity` items, then replace a random slot "
           "with item n (1-based) with probability capacity / n.")
def _reservoir(fn):
    stream = list(range(400))
    kept = np.zeros(len(stream))
    for seed in range(300):
        out = list(fn(stream, 40, np.random.default_rng(seed)))
        if len(out) != 40 or len(set(out)) != 40 or not set(out) <= set(stream):
            return False, f"the reservoir must hold 40 distinct items of the stream, got {len(out)} ({len(set(out))} distinct)"
        kept[out] += 1
    short = list(fn(list(range(5)), 40, np.random.default_rng(0)))
    if sorted(short) != list(range(5)):
        return False, "a stream shorter than the capacity must be kept whole"
    early, late = kept[:200].mean() / 300, kept[200:].mean() / 300
    if not (abs(early - 0.1) < 0.015 and abs(late - 0.1) < 0.015):
        return False, (f"every item should be kept with probability 40/400 = 0.10; the first half was kept {early:.3f}, "
                       f"the second {late:.3f} of the time — is the replacement probability capacity / n?")
    return True, "old and new items are equally likely to stay: the replay buffer remembers every window, not only the last."


@_exercise("13.update_due", "13_continual",
           "Write update_due(measurements, thresholds, min_signals): True when at least min_signals of the signals in "
           "thresholds are strictly above their threshold.")
def _update_due(fn):
    from .drift import DriftDetector

    rng = np.random.default_rng(131)
    thresholds = {"psi_popularity": 0.5, "psi_genre": 0.03, "new_item_share": 0.03}
    for _ in range(200):
        m = {k: float(v * rng.choice([0.5, 1.0, 1.5])) for k, v in thresholds.items()}
        for min_signals in (1, 2, 3):
            want = DriftDetector(thresholds, min_signals).decide(m)
            got = bool(fn(m, thresholds, min_signals))
            if got != want:
                return False, (f"measurements {m}, min_signals {min_signals}: expected {want}, got {got} "
                               "(a value equal to its threshold is not above it)")
    return True, "requiring two signals to agree is what keeps sampling noise from calling for updates."

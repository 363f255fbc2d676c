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
    from .models.baselines import Popularity

    inter = _toy_interactions(8)
    rng = np.random.default_rng(0)
    items = rng.integers(1, 70, size=(5, 12))  # ids above 60 are unknown items
    users = np.arange(1, 6)
    expected = Popularity().fit(inter, np.arange(1, 70)).score(users, items)
    got = np.asarray(fn(inter.copy(), users, items), dtype=float)
    if got.shape != items.shape:
        return False, f"return one score per candidate: shape {items.shape}, got {got.shape}."
    if not _close(got, expected):
        return False, "count each item's rows in train (value_counts), 0 for items never seen."
    return True, "the same scores as recbook.models.baselines.Popularity."


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

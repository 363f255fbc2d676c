import numpy as np
import pandas as pd
import pytest

from recbook.data import make_synthetic
from recbook.perf.device import cpu_features
from recbook.profile import get_profile
from recbook_course import exercises


def _bce(z, y):
    import torch

    return torch.nn.functional.binary_cross_entropy_with_logits(z, y)


def _dominates(a, b):
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def _per_rank_batch(g, w):
    if g % w:
        raise ValueError("uneven")
    return g // w


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _token_bucket(arrivals, rate, burst):
    tokens, last, out = float(burst), arrivals[0] if arrivals else 0.0, []
    for t in arrivals:
        tokens, last = min(burst, tokens + (t - last) * rate), t
        out.append(tokens >= 1)
        tokens -= tokens >= 1
    return out


def _reservoir(stream, capacity, rng):
    out = []
    for n, item in enumerate(stream, start=1):
        if len(out) < capacity:
            out.append(item)
        else:
            j = int(rng.integers(n))
            if j < capacity:
                out[j] = item
    return out


RIGHT = {
    "00.quick_users": get_profile("quick").n_users,
    "00.count_interactions": len(make_synthetic(seed=1, n_users=50, n_items=40).interactions),
    "00.has_avx2": cpu_features()["AVX2"],
    "01.bce": lambda p, y: float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)))),
    "01.grad": lambda z, y: (sigmoid(z) - y) / len(z),
    "01.pos_weight": lambda z, y, w: float(
        np.mean(w * y * np.logaddexp(0, -z) + (1 - y) * np.logaddexp(0, z))
    ),
    "02.filter_users": lambda df, k: df[df.groupby("user_id")["user_id"].transform("size") >= k],
    "02.last_item": lambda df: df.sort_values(["user_id", "timestamp"], kind="stable").groupby("user_id")["item_id"].last().to_dict(),
    "02.popularity_probs": lambda df, ids: (lambda c: c / c.sum())(df["item_id"].value_counts().reindex(ids, fill_value=0).to_numpy() + 1.0),
    "03.random_hit_rate": lambda k, n: min(k, n + 1) / (n + 1),
    "03.popularity_scores": lambda train, users, items: train["item_id"].value_counts().reindex(np.asarray(items).ravel(), fill_value=0).to_numpy().reshape(np.shape(items)).astype(float),
    "03.item_cosine": lambda X: (lambda co, n: np.fill_diagonal(r := np.divide(co, np.outer(n, n), out=np.zeros_like(co), where=np.outer(n, n) > 0), 0) or r)(X.T @ X, np.sqrt(np.diag(X.T @ X))),
    "06.warmup_lr": lambda step, base, warmup, total: base * ((step + 1) / max(1, warmup) if step < warmup else max(0.0, (total - step) / max(1, total - warmup))),
    "06.no_decay": lambda model: [n for n, p in model.named_parameters() if p.ndim < 2 or "norm" in n.lower()],
    "06.in_batch_loss": lambda u, v, t: __import__("torch").nn.functional.cross_entropy(u @ v.T / t, __import__("torch").arange(len(u))),
    "10.lora_params": lambda d_in, d_out, r, n: n * r * (d_in + d_out),
    "10.merge": lambda W, A, B, alpha, r: W + (alpha / r) * B @ A,
    "10.adam_bytes": lambda n: 8 * n,
    "07.best_model": lambda results, metric: max(results, key=lambda n: results[n][metric]),
    "07.command": lambda data, model, out: ["train", "--data", data, "--model", model, "--out", out],
    "07.protocol_ratio": lambda m: m["NDCG@10"] / m["full_ranking"]["NDCG@10"],
    "11.sparsity": lambda t: float((t == 0).float().mean()),
    "11.global_threshold": lambda ws, a: float((lambda f: f.kthvalue(int(a * f.numel())).values)(__import__("torch").cat([w.abs().flatten() for w in ws]))),
    "11.packed_bytes": lambda n, s, b: -(-n // 8) + round(n * (1 - s)) * b,
    "12.soften": lambda z, t: __import__("torch").sigmoid(z / t),
    "12.kd_loss": lambda zs, zt, y, t, a: a * _bce(zs, y) + (1 - a) * _bce(zs / t, __import__("torch").sigmoid(zt / t)) * t**2,
    "12.encoder_share": lambda n: n / 6,
    "13.scale_zero_point": lambda lo, hi: ((hi - lo) / 255, int(round(-lo / ((hi - lo) / 255)))),
    "13.int8_dot": lambda qa, qb, za, sa, sb: float(sa * sb * ((qa.int() - za) * qb.int()).sum()),
    "13.int8_mb": lambda n: (n + 4 * n / 384) / 1e6,
    "14.dominates": _dominates,
    "14.front": lambda pts: {n for n, p in pts.items() if not any(_dominates(q, p) for m, q in pts.items() if m != n)},
    "14.combined_ratio": lambda rs: float(np.prod(rs)) if len(rs) else 1.0,
    "15.per_rank_batch": _per_rank_batch,
    "15.adamw_bytes": lambda n, w, sharded: 16 * n / w if sharded else 16 * n,
    "15.sharded_lookup": lambda ids, shards: __import__("torch").cat(shards)[ids],
    "16.bucket": lambda n, bs: __import__("recbook.perf.accel", fromlist=["x"]).bucket_length(n, tuple(sorted(bs))),
    "16.needs_scaler": lambda dt: dt == __import__("torch").float16,
    "16.best_batch": lambda lat, b: max([k for k, v in lat.items() if v <= b], default=None),
    "17.hpa_replicas": lambda c, u, t, lo, hi: __import__("recbook.serve.scaling", fromlist=["x"]).desired_replicas(c, u, t, 0.1, lo, hi),
    "17.percentile": lambda values, q: float(np.percentile(values, q)),
    "17.token_bucket": _token_bucket,
    "18.psi": lambda e, a: __import__("recbook.continual.drift", fromlist=["x"]).psi(e, a),
    "18.reservoir": _reservoir,
    "18.update_due": lambda m, t, k: sum(m[s] > t[s] for s in t) >= k,
}

WRONG = {
    "00.quick_users": -1,
    "00.count_interactions": 0,
    "00.has_avx2": "yes",
    "01.bce": lambda p, y: float(np.mean(-y * np.log(p) + (1 - y) * np.log(1 - p))),  # the seed article's sign error
    "01.grad": lambda z, y: sigmoid(z) - y,  # forgot the mean
    "01.pos_weight": lambda z, y, w: float(np.mean(-(w * y * np.log(sigmoid(z)) + (1 - y) * np.log(1 - sigmoid(z))))),  # unstable
    "02.filter_users": lambda df, k: df,
    "02.last_item": lambda df: df.groupby("user_id")["item_id"].first().to_dict(),
    "02.popularity_probs": lambda df, ids: np.full(len(ids), 1 / len(ids)),
    "03.random_hit_rate": lambda k, n: k / n,
    "03.popularity_scores": lambda train, users, items: np.ones(np.shape(items)),
    "03.item_cosine": lambda X: X.T @ X,
    "06.warmup_lr": lambda step, base, warmup, total: base,
    "06.no_decay": lambda model: [n for n, p in model.named_parameters() if "bias" in n],
    "06.in_batch_loss": lambda u, v, t: ((u - v) ** 2).sum(-1).mean(),
    "07.best_model": lambda results, metric: next(iter(results)),
    "07.command": lambda data, model, out: ["--data", data, "--model", model],
    "07.protocol_ratio": lambda m: m["NDCG@10"],
    "10.lora_params": lambda d_in, d_out, r, n: n * d_in * d_out,
    "10.merge": lambda W, A, B, alpha, r: W + B @ A,
    "10.adam_bytes": lambda n: 4 * n,
    "11.sparsity": lambda t: float((t != 0).float().mean()),
    "11.global_threshold": lambda ws, a: float(ws[0].abs().flatten().kthvalue(max(1, int(a * ws[0].numel()))).values),  # per layer
    "11.packed_bytes": lambda n, s, b: round(n * (1 - s)) * b,  # forgot the mask
    "12.soften": lambda z, t: __import__("torch").sigmoid(z) / t,
    "12.kd_loss": lambda zs, zt, y, t, a: a * _bce(zs, y) + (1 - a) * _bce(zs / t, __import__("torch").sigmoid(zt / t)),  # no T²
    "12.encoder_share": lambda n: n / 12,
    "13.scale_zero_point": lambda lo, hi: ((hi - lo) / 256, 0),
    "13.int8_dot": lambda qa, qb, za, sa, sb: float(sa * sb * ((qa - za) * qb).sum()),  # uint8 wraps around
    "13.int8_mb": lambda n: 4 * n / 1e6,
    "14.dominates": lambda a, b: a[0] >= b[0],
    "14.front": lambda pts: set(pts),
    "14.combined_ratio": lambda rs: float(sum(rs)),
    "15.per_rank_batch": lambda g, w: g // w,  # never complains
    "15.adamw_bytes": lambda n, w, sharded: 4 * n / w if sharded else 4 * n,  # parameters only
    "15.sharded_lookup": lambda ids, shards: shards[0][ids.clamp(max=len(shards[0]) - 1)],
    "16.bucket": lambda n, bs: max(bs),
    "16.needs_scaler": lambda dt: True,
    "16.best_batch": lambda lat, b: max(lat),
    "17.hpa_replicas": lambda c, u, t, lo, hi: min(max(-(-c * u // t), lo), hi),  # no ±10 % dead band
    "17.percentile": lambda values, q: float(np.sort(values)[min(len(values) - 1, int(len(values) * q / 100))]),  # nearest rank
    "17.token_bucket": lambda arrivals, rate, burst: [True] * len(arrivals),  # never refuses
    "18.psi": lambda e, a: float(np.sum((np.asarray(a) - np.asarray(e)) * np.log((np.asarray(a) + 1) / (np.asarray(e) + 1)))),  # counts, not shares
    "18.reservoir": lambda stream, capacity, rng: list(stream)[-capacity:],  # keeps only the newest
    "18.update_due": lambda m, t, k: sum(m[s] >= t[s] for s in t) >= k,  # "at or above"
}



def _sequential_answers():
    """Real (tiny, untrained) sequential models for the experiment exercises of 04 and 05: the checkers re-score them."""
    import torch

    from recbook.data import leave_last_out
    from recbook.data.splits import cold_item_split
    from recbook.evaluation.protocol import evaluate, history_for_test, make_cold_eval_set, make_eval_set
    from recbook.evaluation.stats import paired_comparison
    from recbook.models.sequential import SequentialConfig, SequentialRecommender, SequentialScorer

    ds = make_synthetic(seed=2, n_users=60, n_items=40)
    split = leave_last_out(ds.interactions, drop_short_users=True)
    es = make_eval_set(ds, split, "test", 9)
    torch.manual_seed(0)
    model = SequentialRecommender(ds.n_items, SequentialConfig(max_len=8, dim=16, heads=2, layers=1)).eval()
    ordered = history_for_test(split)
    shuffled = ordered.assign(timestamp=ordered.groupby("user_id")["timestamp"].transform(lambda t: t.to_numpy()[::-1]))
    ref = evaluate(SequentialScorer(model, ds.item_ids, ordered), es, "full", per_user=True)["per_user"]["NDCG@10"]
    scorer = SequentialScorer(model, ds.item_ids, shuffled)
    res = evaluate(scorer, es, "full", per_user=True)
    sig = paired_comparison(res["per_user"]["NDCG@10"], ref).significant
    shuffled_right = {"scorer": scorer, "ndcg_full": res["NDCG@10"], "significant": sig, "eval_set": es, "reference": ref}
    shuffled_wrong = {**shuffled_right, "significant": not sig}

    cold = cold_item_split(ds.interactions, 0.2)
    text = np.random.default_rng(0).normal(size=(ds.n_items, 8)).astype(np.float32)
    hybrid = SequentialRecommender(ds.n_items, SequentialConfig(item_features="hybrid", id_dropout=0.0, max_len=8, dim=16, heads=2, layers=1),
                                   text_features=text).eval()
    cold_set = make_cold_eval_set(ds, cold, 9)
    auc = evaluate(SequentialScorer(hybrid, ds.item_ids, cold.cold_history), cold_set, "sampled")["AUC"]
    dropout_right = {"model": hybrid, "cold_auc": auc, "why": "a", "cold_set": cold_set, "cold_history": cold.cold_history, "item_ids": ds.item_ids}
    return shuffled_right, shuffled_wrong, dropout_right, {**dropout_right, "why": "c"}


def _paired_ci(a, b, n_boot=2000, seed=0):
    d = np.asarray(a, float) - np.asarray(b, float)
    means = d[np.random.default_rng(seed).integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    return (d.mean(), *np.quantile(means, [0.025, 0.975]))


def _nearest(v, q, k):
    s = v @ v[q]
    s[q] = -np.inf
    return np.argsort(-s)[:k]


_SHUFFLED_RIGHT, _SHUFFLED_WRONG, _DROPOUT_RIGHT, _DROPOUT_WRONG = _sequential_answers()
RIGHT.update({
    "04.causal_mask": lambda seq: ((seq != 0)[None, :] & __import__("torch").ones(len(seq), len(seq), dtype=__import__("torch").bool).tril())
    | __import__("torch").eye(len(seq), dtype=__import__("torch").bool),
    "04.paired_ci": _paired_ci,
    "04.shuffled_history": _SHUFFLED_RIGHT,
    "05.nearest_by_text": _nearest,
    "05.constant_auc": lambda pos, neg: float(np.mean((np.asarray(neg) < pos) + 0.5 * (np.asarray(neg) == pos))),
    "05.id_dropout_off": _DROPOUT_RIGHT,
})
WRONG.update({
    "04.causal_mask": lambda seq: __import__("torch").ones(len(seq), len(seq), dtype=__import__("torch").bool).tril(),  # padding keys seen
    "04.paired_ci": lambda a, b, n_boot=2000, seed=0: (np.mean(a) - np.mean(b), -1.0, 1.0),
    "04.shuffled_history": _SHUFFLED_WRONG,
    "05.nearest_by_text": lambda v, q, k: np.argsort(-(v @ v[q]))[:k],  # includes the query itself
    "05.constant_auc": lambda pos, neg: float(np.mean(np.asarray(neg) < pos)),  # a tie counted as a loss
    "05.id_dropout_off": _DROPOUT_WRONG,
})

def _cascade_answers():
    """A cheap cascade (item-kNN retriever, popularity re-ranker fused by rank) for the 08 experiment exercise."""
    from scipy.stats import rankdata

    from recbook.data import leave_last_out
    from recbook.evaluation.protocol import cascade, evaluate, make_eval_set
    from recbook.evaluation.stats import paired_comparison
    from recbook.models.itemknn import ItemKNN
    from recbook.models.popularity import Popularity

    ds = make_synthetic(seed=2, n_users=60, n_items=40)
    es = make_eval_set(ds, leave_last_out(ds.interactions, drop_short_users=True), "test", 9)
    knn = ItemKNN(neighbours=10).fit_interactions(es.history, ds.item_ids).scorer(es.history)
    pop = Popularity().fit_interactions(es.history, ds.item_ids).scorer(es.history)
    fused = cascade(knn, lambda u, i: rankdata(knn(u, i), axis=1) + rankdata(pop(u, i), axis=1), 5, exclude=es.history)
    ref = evaluate(knn, es, "full", per_user=True)["per_user"]["NDCG@10"]
    res = evaluate(fused, es, "full", per_user=True)
    sig = paired_comparison(res["per_user"]["NDCG@10"], ref).significant
    right = {"scorer": fused, "ndcg_full": res["NDCG@10"], "significant": sig, "eval_set": es, "reference": ref}
    return right, {**right, "significant": not sig}


def _hard_negatives(scores, seen, positive, k):
    s = np.asarray(scores, dtype=float).copy()
    s[np.asarray(seen, dtype=int)] = -np.inf
    s[positive] = -np.inf
    return np.argsort(-s, kind="stable")[:k]


_FUSION_RIGHT, _FUSION_WRONG = _cascade_answers()
RIGHT.update({
    "08.hard_negatives": _hard_negatives,
    "08.oracle_ndcg": lambda r, n, k=10: float(np.where(r <= n, 1.0, np.where(r <= k, 1 / np.log2(np.asarray(r) + 1.0), 0.0)).mean()),
    "08.rank_fusion": _FUSION_RIGHT,
})
WRONG.update({
    "08.hard_negatives": lambda scores, seen, positive, k: np.argsort(-np.asarray(scores))[:k],  # keeps seen items and the positive
    "08.oracle_ndcg": lambda r, n, k=10: float((np.asarray(r) <= n).mean()),  # forgets items below the top-N that still count
    "08.rank_fusion": _FUSION_WRONG,
})


def _floor_untrained(scores, trained):
    out = np.array(scores, dtype=float)
    out[:, ~np.asarray(trained, bool)] = out[:, np.asarray(trained, bool)].min(axis=1, keepdims=True) - 1.0
    return out


def _content_scores(vectors, history, n):
    mean = np.asarray(vectors)[list(history)[-n:]].mean(axis=0)
    return np.asarray(vectors) @ (mean / np.linalg.norm(mean))


RIGHT.update({
    "09.untrained_floor": _floor_untrained,
    "09.content_scores": _content_scores,
    "09.freezing_variant": _FUSION_RIGHT,  # the checker re-scores whatever experiment is handed in, as for 08.rank_fusion
})
def _window_records():
    def rec(name, cpu, low, overlap):
        return {"variant": name, "cpu_ms_p50": cpu, "ndcg10_diff": low + 0.006, "ndcg10_diff_ci95": [low, low + 0.012],
                "top10_overlap": overlap, "margin": 0.005, "rounds": 10, "requests": 200, "users": 943, "speedup": 0.25 / cpu,
                "baseline": "onnx-fp32", "verdict": "reference" if name == "fp32" else "?"}

    return [rec("fp32", 0.5, 0.0, 1.0), rec("onnx-fp32", 0.25, 0.0, 1.0), rec("mlp-student-last10", 0.056, -0.0066, 0.64),
            rec("mlp-student-last5", 0.049, -0.003, 0.66)]  # CI clears the margin, overlap does not: inferior by the rule


RIGHT["14.student_window"] = {"records": _window_records(), "cheaper": True, "ndcg10_diff_low": -0.003, "verdict": "inferior"}
WRONG["14.student_window"] = {"records": _window_records(), "cheaper": True, "ndcg10_diff_low": -0.003, "verdict": "non-inferior"}


@pytest.mark.parametrize("change,hint", [({"cheaper": False}, "compare cpu_ms_p50"), ({"ndcg10_diff_low": 0.009}, "lower end"),
                                         ({"records": _window_records()[:3]}, "missing"), ({"verdict": "non-inferior"}, "top-10 overlap")])
def test_the_student_window_check_names_what_is_wrong(change, hint, capsys):
    answer = {**RIGHT["14.student_window"], **change}
    assert not exercises.check("14.student_window", answer)
    assert hint in capsys.readouterr().out
    assert exercises.check("14.student_window", RIGHT["14.student_window"]) and "only 66%" in capsys.readouterr().out
WRONG.update({
    "09.untrained_floor": lambda scores, trained: np.where(np.asarray(trained, bool), scores, 0.0),  # the bug itself: 0
    "09.content_scores": lambda v, h, n: np.asarray(v) @ np.asarray(v)[list(h)].mean(axis=0),  # whole history, not normalised
    "09.freezing_variant": _FUSION_WRONG,
})


def _knn_answers():
    """03.knn_neighbours on a small synthetic catalogue: item-kNN with 10 neighbours against 100, re-scored by the check."""
    from recbook.evaluation.protocol import evaluate, make_eval_set
    from recbook.evaluation.stats import paired_comparison
    from recbook.models.itemknn import ItemKNN

    ds = make_synthetic(seed=3, n_users=80, n_items=150)
    es = make_eval_set(ds, stage="test", n_negatives=9)
    reference = evaluate(ItemKNN(neighbours=100, shrink=10.0).fit_interactions(es.history, ds.item_ids).scorer(es.history), es, "full",
                         per_user=True)["per_user"]["NDCG@10"]
    scorer = ItemKNN(neighbours=10, shrink=10.0).fit_interactions(es.history, ds.item_ids).scorer(es.history)
    res = evaluate(scorer, es, "full", per_user=True)
    sig = paired_comparison(res["per_user"]["NDCG@10"], reference).significant
    right = {"scorer": scorer, "ndcg_full": res["NDCG@10"], "significant": sig, "eval_set": es, "reference": reference}
    two_knobs = ItemKNN(neighbours=10, shrink=0.0).fit_interactions(es.history, ds.item_ids).scorer(es.history)
    return right, {**right, "significant": not sig}, {**right, "scorer": two_knobs}


_KNN_RIGHT, _KNN_WRONG_VERDICT, _KNN_TWO_KNOBS = _knn_answers()
RIGHT["03.knn_neighbours"] = _KNN_RIGHT
WRONG["03.knn_neighbours"] = _KNN_WRONG_VERDICT


def test_the_knn_experiment_changes_one_knob_at_a_time(capsys):
    assert exercises.check("03.knn_neighbours", _KNN_TWO_KNOBS) is False
    assert "one knob at a time" in capsys.readouterr().out


def test_every_exercise_has_a_right_and_a_wrong_answer_here():
    assert set(exercises.list_exercises()) == set(RIGHT) == set(WRONG)
    assert len(exercises.list_exercises("01_cross_entropy")) == 4


@pytest.mark.parametrize("key", sorted(RIGHT))
def test_right_answers_pass(key, capsys):
    assert exercises.check(key, RIGHT[key]) is True
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize("key", sorted(WRONG))
def test_wrong_answers_fail_with_a_hint(key, capsys):
    with np.errstate(all="ignore"):
        assert exercises.check(key, WRONG[key]) is False
    out = capsys.readouterr().out
    assert "❌" in out and len(out) > 20


def test_an_answer_that_raises_is_reported_not_crashed(capsys):
    def broken(p, y):
        raise NotImplementedError("todo")

    assert exercises.check("01.bce", broken) is False
    assert "NotImplementedError" in capsys.readouterr().out


def test_unknown_exercise():
    with pytest.raises(KeyError, match="unknown exercise"):
        exercises.check("99.nope", 1)


def _epoch_runs(shift=0.01, seeds=(0, 0)):
    """Two hand-made ContinualResults of finetune (1 and 8 epochs), 8 epochs forgetting ``shift`` more per unit."""
    from recbook.continual.experiment import ContinualResult

    rng = np.random.default_rng(0)
    users = list(range(60))
    runs = {}
    for (epochs, extra), seed in zip(((1, 0.0), (8, shift)), seeds):
        base = 0.1 + 0.02 * rng.random(len(users)) if epochs == 1 else runs[1].retention["finetune"][(1, 1)]["NDCG@10"].to_numpy()
        after = pd.DataFrame({"NDCG@10": base}, index=pd.MultiIndex.from_product([[1], users], names=["window", "user_id"]))
        final = after.copy()
        final["NDCG@10"] = base - 0.005 - extra - 0.002 * np.cos(np.arange(len(users)))
        nxt = pd.DataFrame({"NDCG@10": np.full(len(users), 0.05)}, index=pd.MultiIndex.from_product([[1, 2], users[:30]], names=["window", "user_id"]))
        costs = pd.DataFrame({"strategy": "finetune", "window": [1, 2], "cpu_s": [0.5 * epochs] * 2, "examples": [100 * epochs] * 2,
                              "epochs": [epochs, epochs]})
        runs[epochs] = ContinualResult({"finetune": nxt}, {"finetune": {(1, 1): after, (2, 1): final}}, costs, 2, seed=seed)
    return runs


def _epochs_answer(runs, verdict=None):
    from recbook.evaluation.stats import paired_comparison

    c = paired_comparison(runs[8].forgetting("finetune"), runs[1].forgetting("finetune"))
    auto = "more" if c.diff.low > 0 else "less" if c.diff.high < 0 else "not shown"
    return {"results": runs, "diff_low": c.diff.low, "diff_high": c.diff.high, "verdict": verdict or auto}


RIGHT["18.epochs_forgetting"] = _epochs_answer(_epoch_runs())
WRONG["18.epochs_forgetting"] = _epochs_answer(_epoch_runs(), verdict="not shown")


@pytest.mark.parametrize("answer,hint", [
    (lambda: _epochs_answer(_epoch_runs(shift=0.0), verdict="more"), "holds 0"),
    (lambda: {**_epochs_answer(_epoch_runs()), "diff_low": -0.5, "diff_high": -0.4}, "does not hold the mean"),
    (lambda: _epochs_answer(_epoch_runs(seeds=(0, 1))), "one seed"),
    (lambda: {**_epochs_answer(_epoch_runs()), "results": {1: _epoch_runs()[1]}}, "1 and 8"),
    (lambda: {**_epochs_answer(_epoch_runs()), "results": {1: _epoch_runs()[1], 8: _epoch_runs()[1]}}, "ran [1] epochs"),
])
def test_the_epochs_forgetting_check_names_what_is_wrong(answer, hint, capsys):
    assert not exercises.check("18.epochs_forgetting", answer())
    assert hint in capsys.readouterr().out
    assert exercises.check("18.epochs_forgetting", RIGHT["18.epochs_forgetting"]) and "→ more" in capsys.readouterr().out


def _protocol_answer(shift=0.2, verdict=None):
    from recbook.evaluation.stats import paired_comparison

    users = pd.Index(range(40), name="user_id")
    rng = np.random.default_rng(2)
    popular = pd.Series(rng.uniform(0.3, 0.7, len(users)), index=users)
    uniform = popular + shift + 0.05 * (-1.0) ** np.arange(len(users))  # mean difference exactly `shift`
    c = paired_comparison(uniform, popular)
    auto = "higher" if c.diff.low > 0 else "lower" if c.diff.high < 0 else "not shown"
    negatives = {k: np.arange(len(users) * 9).reshape(len(users), 9) for k in ("uniform", "popularity")}
    return {"negatives": negatives, "per_user_auc": {"uniform": uniform, "popularity": popular}, "diff_low": c.diff.low,
            "diff_high": c.diff.high, "verdict": verdict or auto}


RIGHT["02.negatives_protocol"] = _protocol_answer()
WRONG["02.negatives_protocol"] = _protocol_answer(verdict="not shown")


@pytest.mark.parametrize("answer,hint", [
    (lambda: _protocol_answer(shift=0.0, verdict="higher"), "holds 0"),
    (lambda: {**_protocol_answer(), "diff_low": -0.5, "diff_high": -0.4}, "does not hold the mean"),
    (lambda: {**_protocol_answer(), "per_user_auc": {"uniform": _protocol_answer()["per_user_auc"]["uniform"]}}, "'uniform' and 'popularity'"),
    (lambda: {**_protocol_answer(), "negatives": {"uniform": np.zeros((40, 9)), "popularity": np.zeros((40, 5))}}, "same number of negatives"),
])
def test_the_negatives_protocol_check_names_what_is_wrong(answer, hint, capsys):
    assert not exercises.check("02.negatives_protocol", answer())
    assert hint in capsys.readouterr().out
    assert exercises.check("02.negatives_protocol", RIGHT["02.negatives_protocol"]) and "→ higher" in capsys.readouterr().out


def _threads_answer(verdict=None, first="1 thread"):
    table = pd.DataFrame({"median_ms": [1.0, 0.6, 1.0], "speed_up": [1.0, 1.6, 1.0], "low": [np.nan, 1.4, 0.95],
                          "high": [np.nan, 1.8, 1.05], "verdict": ["baseline", "faster", "within noise"]},
                         index=[first, "2 threads", f"{first} (again)"])
    if first != "1 thread":
        table.loc[first, "verdict"] = "faster"
    return {"table": table, "threads": 2, "verdict": verdict or "faster"}


RIGHT["00.threads"] = _threads_answer()
WRONG["00.threads"] = _threads_answer(verdict="within noise")


@pytest.mark.parametrize("answer,hint", [
    (lambda: _threads_answer(verdict="slower"), "read the verdict"),
    (lambda: {"table": _threads_answer()["table"].iloc[:2], "threads": 2, "verdict": "faster"}, "A/A row"),
    (lambda: _threads_answer(first="2 threads x"), "1-thread run first"),
    (lambda: {"threads": 2}, "pass a dict"),
])
def test_the_threads_check_names_what_is_wrong(answer, hint, capsys):
    assert not exercises.check("00.threads", answer())
    assert hint in capsys.readouterr().out
    assert exercises.check("00.threads", RIGHT["00.threads"]) and "→ faster" in capsys.readouterr().out


def _bucket_answer(verdict=None, length=256, diff=2e-6):
    import torch

    table = pd.DataFrame({"median_ms": [10.0, 25.0, 10.0], "speed_up": [1.0, 0.4, 1.0], "low": [np.nan, 0.35, 0.95],
                          "high": [np.nan, 0.45, 1.05], "verdict": ["baseline", "slower", "within noise"]},
                         index=["unpadded", "padded to 256", "unpadded (again)"])
    padded = {"input_ids": torch.zeros(2, length, dtype=torch.long), "attention_mask": torch.zeros(2, length, dtype=torch.long)}
    return {"table": table, "padded": padded, "max_abs_difference": diff, "verdict": verdict or "slower"}


RIGHT["16.bucket_cost"] = _bucket_answer()
WRONG["16.bucket_cost"] = _bucket_answer(verdict="within noise")


@pytest.mark.parametrize("answer,hint", [
    (lambda: _bucket_answer(verdict="faster"), "read the padded row"),
    (lambda: _bucket_answer(length=128), "pad to the 256 bucket"),
    (lambda: _bucket_answer(diff=0.3), "padding must be invisible"),
    (lambda: {"table": _bucket_answer()["table"]}, "pass a dict"),
])
def test_the_bucket_cost_check_names_what_is_wrong(answer, hint, capsys):
    assert not exercises.check("16.bucket_cost", answer())
    assert hint in capsys.readouterr().out
    assert exercises.check("16.bucket_cost", RIGHT["16.bucket_cost"]) and "→ slower" in capsys.readouterr().out


def _weight_bits_answer(bits_used=None, verdict=None):
    """13.weight_bits on a tiny stand-in: an embedding and two Linear layers whose rows span two decades of range;
    "per-user AUC" is a squashed score of the model's output, paired with the fp32 model's."""
    import copy

    import torch

    from recbook.compress.quantize import choose_qparams, dequantize, quantize
    from recbook.evaluation.stats import paired_comparison

    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Embedding(30, 64), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    tokens = torch.randint(0, 30, (40,))

    def measure(model):
        with torch.no_grad():
            return {"warm": pd.DataFrame({"AUC": torch.sigmoid(model(tokens).sum(dim=1)).numpy()})}

    reference = measure(teacher)
    answer = {"models": {}, "per_user": {}, "reference": reference, "diff_low": {}, "diff_high": {}, "verdict": {}}
    for bits in (8, 4):
        model = copy.deepcopy(teacher)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.Linear):
                    qp = choose_qparams(m.weight, bits=bits_used or bits, per_channel=True, axis=0)
                    m.weight.copy_(dequantize(quantize(m.weight, qp), qp))
        answer["models"][bits], answer["per_user"][bits] = model, measure(model)
        c = paired_comparison(answer["per_user"][bits]["warm"]["AUC"], reference["warm"]["AUC"])
        answer["diff_low"][bits], answer["diff_high"][bits] = c.diff.low, c.diff.high
        answer["verdict"][bits] = verdict or ("lower" if c.diff.high < 0 else "higher" if c.diff.low > 0 else "not shown")
    return answer


RIGHT["13.weight_bits"] = _weight_bits_answer()
WRONG["13.weight_bits"] = _weight_bits_answer(bits_used=8)  # 8 bits for both: a "4-bit" row keeps up to 256 levels


@pytest.mark.parametrize("answer,hint", [
    (lambda: _weight_bits_answer(bits_used=8), "more than 2**4"),
    (lambda: {**_weight_bits_answer(), "verdict": {8: "higher", 4: "higher"}}, "says"),
    (lambda: {**_weight_bits_answer(), "diff_low": {8: -1.0, 4: -1.0}}, "paired_comparison(variant, fp32)"),
    (lambda: {**_weight_bits_answer(), "models": {8: None}}, "keys 8 and 4"),
    (lambda: {"models": {}}, "pass a dict"),
])
def test_the_weight_bits_check_names_what_is_wrong(answer, hint, capsys):
    assert not exercises.check("13.weight_bits", answer())
    assert hint in capsys.readouterr().out
    assert exercises.check("13.weight_bits", RIGHT["13.weight_bits"]) and "17× larger" in capsys.readouterr().out


def _burst_answer(verdict=None, fresh=True):
    from recbook.serve.security import TokenBucket

    rng = np.random.default_rng(0)
    arrivals = np.cumsum(rng.exponential(1 / 3, size=400))
    arrivals = arrivals[arrivals < 60].tolist()
    accepted, sustained = {}, {}
    for burst in (1, 10, 50):
        times = iter([0.0, *arrivals])
        bucket = TokenBucket(1.0, burst, clock=lambda: next(times))
        accepted[burst] = sum(bucket.take() == 0.0 for _ in arrivals)
        sustained[burst] = (accepted[burst] - burst) / 60
    auto = "yes" if sustained[50] - sustained[1] > 0.1 else "no"
    return {"arrivals": arrivals, "accepted": accepted, "sustained": sustained, "verdict": verdict or auto}


RIGHT["17.burst_sustained"] = _burst_answer()
WRONG["17.burst_sustained"] = _burst_answer(verdict="no")


@pytest.mark.parametrize("answer,hint", [
    (lambda: {**_burst_answer(), "sustained": {b: a / 60 for b, a in _burst_answer()["accepted"].items()}}, "(accepted − burst) / 60"),
    (lambda: {**_burst_answer(), "arrivals": np.arange(0, 60, 0.1).tolist()}, "rng.exponential(1 / 3)"),
    (lambda: {**_burst_answer(), "arrivals": [3.0, 2.0]}, "increasing times"),
    (lambda: {**_burst_answer(), "accepted": {1: 60, 10: 70}}, "keys 1, 10 and 50"),
    (lambda: _burst_answer(verdict="no"), "so the verdict is 'yes'"),
    (lambda: {**_burst_answer(), "accepted": {1: 47, 10: 69, 50: 109}, "sustained": {1: 46 / 60, 10: 59 / 60, 50: 59 / 60}},
     "make a new bucket for each burst"),
])
def test_the_burst_check_names_what_is_wrong(answer, hint, capsys):
    assert not exercises.check("17.burst_sustained", answer())
    assert hint in capsys.readouterr().out
    assert exercises.check("17.burst_sustained", RIGHT["17.burst_sustained"]) and "sustained only 0.75/s" in capsys.readouterr().out


def _distill_epochs_answer(shift=-0.02, verdict=None, n_layers=2, n_epochs=2):
    """12.distill_epochs with stand-ins: a student shaped like a sentence encoder, per-user warm AUCs 0.02 lower."""
    from types import SimpleNamespace

    from recbook.evaluation.stats import paired_comparison

    rng = np.random.default_rng(3)
    full = pd.Series(rng.uniform(0.6, 0.95, 60))
    short = full + shift + 0.01 * (-1.0) ** np.arange(60)
    c = paired_comparison(short, full)
    auto = "lower" if c.diff.high < 0 else "higher" if c.diff.low > 0 else "not shown"
    model = SimpleNamespace(encoder=SimpleNamespace(encoder=SimpleNamespace(layer=list(range(n_layers)))))
    return {"model": model, "losses": [0.3, 0.2, 0.15][:n_epochs], "per_user": {"warm": pd.DataFrame({"AUC": short})},
            "reference": {"warm": pd.DataFrame({"AUC": full})}, "diff_low": c.diff.low, "diff_high": c.diff.high, "verdict": verdict or auto}


RIGHT["12.distill_epochs"] = _distill_epochs_answer()
WRONG["12.distill_epochs"] = _distill_epochs_answer(verdict="not shown")


@pytest.mark.parametrize("answer,hint", [
    (lambda: _distill_epochs_answer(n_epochs=3), "epochs=2"),
    (lambda: _distill_epochs_answer(n_layers=6), "6 encoder layers"),
    (lambda: {**_distill_epochs_answer(), "model": [0.1, 0.2]}, "not its losses"),
    (lambda: {**_distill_epochs_answer(), "diff_low": 0.5}, "the short student first"),
    (lambda: _distill_epochs_answer(shift=0.0, verdict="lower"), "says 'not shown'"),
])
def test_the_distill_epochs_check_names_what_is_wrong(answer, hint, capsys):
    assert not exercises.check("12.distill_epochs", answer())
    assert hint in capsys.readouterr().out
    assert exercises.check("12.distill_epochs", RIGHT["12.distill_epochs"]) and "bought warm AUC" in capsys.readouterr().out


def _seed_loss_answer(shift=-0.4, verdict=None, losses=(-0.2, -3.0, -9.0)):
    """01.seed_loss with stand-ins: 12 weights, a falling (negative) loss, per-user AUCs ``shift`` below the correct model's."""
    from recbook.evaluation.stats import paired_comparison

    rng = np.random.default_rng(1)
    correct = pd.DataFrame({"AUC": rng.uniform(0.7, 0.99, 80)})
    seed = pd.DataFrame({"AUC": (correct["AUC"] + shift + 0.01 * (-1.0) ** np.arange(80)).clip(0, 1)})
    c = paired_comparison(seed["AUC"], correct["AUC"])
    auto = "lower" if c.diff.high < 0 else "higher" if c.diff.low > 0 else "not shown"
    return {"weights": rng.normal(size=12), "losses": list(losses), "per_user": seed, "reference": correct,
            "diff_low": c.diff.low, "diff_high": c.diff.high, "verdict": verdict or auto}


RIGHT["01.seed_loss"] = _seed_loss_answer()
WRONG["01.seed_loss"] = _seed_loss_answer(verdict="not shown")


@pytest.mark.parametrize("answer,hint", [
    (lambda: _seed_loss_answer(losses=(0.69, 0.5, 0.4)), "that is the correct BCE"),
    (lambda: _seed_loss_answer(losses=(0.1,)), "at every step"),
    (lambda: {**_seed_loss_answer(), "weights": np.full(12, np.nan)}, "one finite vector"),
    (lambda: {**_seed_loss_answer(), "per_user": {"AUC": [0.5]}}, "a DataFrame with an AUC column"),
    (lambda: {**_seed_loss_answer(), "diff_low": 0.1, "diff_high": 0.2}, "the seed loss first"),
    (lambda: _seed_loss_answer(shift=0.0, verdict="lower"), "says 'not shown'"),
    (lambda: [1, 2], "pass a dict"),
])
def test_the_seed_loss_check_names_what_is_wrong(answer, hint, capsys):
    assert not exercises.check("01.seed_loss", answer())
    assert hint in capsys.readouterr().out
    assert exercises.check("01.seed_loss", RIGHT["01.seed_loss"]) and "below chance" in capsys.readouterr().out


def _temperature_answer(temperature=1.0, shift=-0.05, verdict=None, name="two-tower"):
    """06.temperature with stand-ins: a Fitted-shaped object and per-user NDCG@10 ``shift`` below the reference."""
    from types import SimpleNamespace

    from recbook.evaluation.stats import paired_comparison

    rng = np.random.default_rng(2)
    reference = pd.DataFrame({"NDCG@10": rng.uniform(0.1, 0.9, 60)})
    ours = pd.DataFrame({"NDCG@10": (reference["NDCG@10"] + shift + 0.01 * (-1.0) ** np.arange(60)).clip(0, 1)})
    c = paired_comparison(ours["NDCG@10"], reference["NDCG@10"])
    auto = "lower" if c.diff.high < 0 else "higher" if c.diff.low > 0 else "not shown"
    fitted = SimpleNamespace(name=name, model=SimpleNamespace(config=SimpleNamespace(temperature=temperature)))
    return {"fitted": fitted, "per_user": ours, "reference": reference, "diff_low": c.diff.low, "diff_high": c.diff.high,
            "verdict": verdict or auto}


RIGHT["06.temperature"] = _temperature_answer()
WRONG["06.temperature"] = _temperature_answer(verdict="higher")


@pytest.mark.parametrize("answer,hint", [
    (lambda: _temperature_answer(temperature=0.05), "pass temperature=1.0"),
    (lambda: _temperature_answer(name="cross-encoder"), "fit_recommender(\"two-tower\""),
    (lambda: {**_temperature_answer(), "per_user": [0.1]}, "with an NDCG@10 column"),
    (lambda: {**_temperature_answer(), "diff_low": 0.0}, "the T = 1 model first"),
    (lambda: _temperature_answer(shift=0.0, verdict="lower"), "says 'not shown'"),
    (lambda: None, "pass a dict"),
])
def test_the_temperature_check_names_what_is_wrong(answer, hint, capsys):
    assert not exercises.check("06.temperature", answer())
    assert hint in capsys.readouterr().out
    assert exercises.check("06.temperature", RIGHT["06.temperature"]) and "by up to 40" in capsys.readouterr().out


def _second_seed_answer(seed=1, shift=0.0, verdict=None, full=True, n_ref=70):
    """07.second_seed with stand-ins: a metrics.json-shaped dict and per-user NDCG@10 of two seeds."""
    from recbook.evaluation.stats import paired_comparison

    rng = np.random.default_rng(3)
    seed0 = pd.DataFrame({"NDCG@10": rng.uniform(0.0, 0.6, 70)})
    seed1 = pd.DataFrame({"NDCG@10": (seed0["NDCG@10"] + shift + 0.02 * (-1.0) ** np.arange(70)).clip(0, 1)})
    c = paired_comparison(seed1["NDCG@10"], seed0["NDCG@10"])
    auto = "lower" if c.diff.high < 0 else "higher" if c.diff.low > 0 else "not shown"
    metrics = {"model": "mf", "config": {"seed": seed}, **({"full_ranking": {"NDCG@10": float(seed1["NDCG@10"].mean())}} if full else {})}
    return {"metrics": metrics, "per_user": seed1, "reference": seed0.iloc[:n_ref], "diff_low": c.diff.low, "diff_high": c.diff.high,
            "verdict": verdict or auto}


RIGHT["07.second_seed"] = _second_seed_answer()
WRONG["07.second_seed"] = _second_seed_answer(verdict="lower")


@pytest.mark.parametrize("answer,hint", [
    (lambda: _second_seed_answer(seed=0), "this run has seed 0"),
    (lambda: _second_seed_answer(full=False), "--all-users"),
    (lambda: {**_second_seed_answer(), "metrics": {"model": "itemknn"}}, "the metrics.json dict of the new MF run"),
    (lambda: _second_seed_answer(n_ref=50), "score the same users"),
    (lambda: {**_second_seed_answer(), "diff_low": -0.5}, "the new seed first"),
    (lambda: _second_seed_answer(shift=-0.1, verdict="not shown"), "says 'lower'"),
    (lambda: "mf", "pass a dict"),
])
def test_the_second_seed_check_names_what_is_wrong(answer, hint, capsys):
    assert not exercises.check("07.second_seed", answer())
    assert hint in capsys.readouterr().out
    assert exercises.check("07.second_seed", RIGHT["07.second_seed"]) and "reseed" in capsys.readouterr().out


def test_the_second_seed_check_accepts_data_absent_only_where_movielens_is_absent(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("RECBOOK_MOVIELENS_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("RECBOOK_CACHE", str(tmp_path / "cache"))
    assert exercises.check("07.second_seed", {"data_absent": True}) and "skipped" in capsys.readouterr().out
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    for name in ("u.data", "u.item", "u.user"):
        (folder / name).write_text("")
    monkeypatch.setenv("RECBOOK_MOVIELENS_DIR", str(folder))
    assert not exercises.check("07.second_seed", {"data_absent": True}) and "run the experiment" in capsys.readouterr().out


def _lora_lr_answer(lr=1e-4, shift=-0.06, verdict=None, trained=True, rank=4):
    """10.lora_lr with stand-ins: a small Linear wrapped in LoRA (peft), per-user AUCs ``shift`` below the reference."""
    import peft
    import torch

    from recbook.evaluation.stats import paired_comparison

    torch.manual_seed(0)
    model = peft.get_peft_model(torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.Linear(256, 2)),
                                peft.LoraConfig(r=rank, target_modules=["0"]))
    if trained:
        for n, p in model.named_parameters():
            if "lora_B" in n:
                torch.nn.init.normal_(p, std=0.01)
    rng = np.random.default_rng(5)
    own = pd.DataFrame({"AUC": rng.uniform(0.6, 0.95, 40)})
    low = pd.DataFrame({"AUC": (own["AUC"] + shift + 0.01 * (-1.0) ** np.arange(40)).clip(0, 1)})
    c = paired_comparison(low["AUC"], own["AUC"])
    auto = "lower" if c.diff.high < 0 else "higher" if c.diff.low > 0 else "not shown"
    return {"model": model, "lr": lr, "per_user": low, "reference": own, "diff_low": c.diff.low, "diff_high": c.diff.high,
            "verdict": verdict or auto}


RIGHT["10.lora_lr"] = _lora_lr_answer()
WRONG["10.lora_lr"] = _lora_lr_answer(verdict="not shown")


@pytest.mark.parametrize("answer,hint", [
    (lambda: _lora_lr_answer(lr=1e-3), "use full fine-tuning's learning rate"),
    (lambda: _lora_lr_answer(trained=False), "still zero"),
    (lambda: _lora_lr_answer(rank=64), "build it with build"),
    (lambda: {**_lora_lr_answer(), "model": "lora"}, "the LoRA cross-encoder you trained"),
    (lambda: {**_lora_lr_answer(), "diff_high": 0.3}, "the low learning rate first"),
    (lambda: _lora_lr_answer(shift=0.0, verdict="lower"), "says 'not shown'"),
])
def test_the_lora_lr_check_names_what_is_wrong(answer, hint, capsys):
    assert not exercises.check("10.lora_lr", answer())
    assert hint in capsys.readouterr().out
    assert exercises.check("10.lora_lr", RIGHT["10.lora_lr"]) and "B starts at zero" in capsys.readouterr().out


def _random_control_answer(amount=0.5, verdict=None, shift=-0.03):
    """11.random_control with stand-ins: two Linear layers pruned at random by ``amount`` each, per-user warm AUCs."""
    import torch
    from torch.nn.utils import prune

    from recbook.evaluation.stats import paired_comparison

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 10), torch.nn.Linear(10, 4))
    for module in model:
        prune.random_unstructured(module, "weight", amount=0.5)
        prune.remove(module, "weight")
    rng = np.random.default_rng(4)
    magnitude = pd.Series(rng.uniform(0.6, 0.95, 60))
    random_ = magnitude + shift + 0.01 * (-1.0) ** np.arange(60)
    c = paired_comparison(random_, magnitude)
    auto = "lower" if c.diff.high < 0 else "higher" if c.diff.low > 0 else "not shown"
    return {"model": model, "amount": amount, "per_user": {"warm": pd.DataFrame({"AUC": random_})},
            "reference": {"warm": pd.DataFrame({"AUC": magnitude})}, "diff_low": c.diff.low, "diff_high": c.diff.high,
            "verdict": verdict or auto}


RIGHT["11.random_control"] = _random_control_answer()
WRONG["11.random_control"] = _random_control_answer(verdict="not shown")


@pytest.mark.parametrize("answer,hint", [
    (lambda: _random_control_answer(amount=0.3), "prune every prunable layer by the same amount"),
    (lambda: {**_random_control_answer(), "diff_high": 0.5}, "random first"),
    (lambda: _random_control_answer(shift=0.0, verdict="lower"), "says 'not shown'"),
    (lambda: {"model": None}, "pass a dict"),
])
def test_the_random_control_check_names_what_is_wrong(answer, hint, capsys):
    assert not exercises.check("11.random_control", answer())
    assert hint in capsys.readouterr().out
    assert exercises.check("11.random_control", RIGHT["11.random_control"]) and "which weights go matters" in capsys.readouterr().out


RIGHT["15.uneven_shards"] = {"max_diff": {(4, 4): 3e-8, (2, 6): 0.4}, "verdict": {(4, 4): "same", (2, 6): "differs"}}
WRONG["15.uneven_shards"] = {"max_diff": {(4, 4): 3e-8, (2, 6): 0.4}, "verdict": {(4, 4): "same", (2, 6): "same"}}


@pytest.mark.parametrize("answer,hint", [
    ({"max_diff": {(4, 4): 0.2, (2, 6): 0.4}, "verdict": {(4, 4): "differs", (2, 6): "differs"}}, "equal shards must give"),
    ({"max_diff": {(4, 4): 0.0}, "verdict": {(4, 4): "same"}}, "keys (4, 4) and (2, 6)"),
    ({"max_diff": {(4, 4): -1.0, (2, 6): 0.4}, "verdict": {(4, 4): "same", (2, 6): "differs"}}, "(≥ 0)"),
    ({"max_diff": {(4, 4): 3e-8, (2, 6): 0.4}, "verdict": {(4, 4): "same", (2, 6): "same"}}, "'differs' by the 1e-5 line"),
    ({"max_diff": {(4, 4): 3e-8, (2, 6): 2e-8}, "verdict": {(4, 4): "same", (2, 6): "same"}}, "average the two shards' gradients plainly"),
])
def test_the_uneven_shards_check_names_what_is_wrong(answer, hint, capsys):
    assert not exercises.check("15.uneven_shards", answer)
    assert hint in capsys.readouterr().out
    assert exercises.check("15.uneven_shards", RIGHT["15.uneven_shards"]) and "DistributedSampler" in capsys.readouterr().out

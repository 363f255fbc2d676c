"""Checkers of notebook 07_movielens_cli."""

from __future__ import annotations

import numpy as np

from recbook_course.exercises.core import _close, _exercise


@_exercise("07.best_model", "07_movielens_cli", "Write best_model(results, metric): the name whose metrics dict has the highest `metric`.")
def _best_model(fn):
    rng = np.random.default_rng(5)
    for _ in range(5):
        results = {name: {"NDCG@10": float(rng.random()), "HR@10": float(rng.random())} for name in ("pop", "itemknn", "mf", "two-tower")}
        for metric in ("NDCG@10", "HR@10"):
            expected = max(results, key=lambda n: results[n][metric])
            if fn(results, metric) != expected:
                return False, f"for {metric} the best is {expected!r}; compare results[name][metric] across names."
    return True, "one line with max(..., key=...)."


@_exercise("07.command", "07_movielens_cli", "Write command(data, model, out): the argument list for `python -m recbook train` (after 'recbook').")
def _command(fn):
    from recbook.cli import build_parser

    for data, model, out in (("movielens-100k", "two-tower", "runs/tt"), ("synthetic", "pop", "/tmp/p")):
        argv = list(fn(data, model, out))
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:
            return False, f"{argv} is not accepted by the command line; start with 'train', then --data/--model/--out."
        if (args.command, args.data, args.model, args.out) != ("train", data, model, out):
            return False, f"{argv} parses, but not to train --data {data} --model {model} --out {out}."
    return True, "the command line accepts it."


@_exercise("07.protocol_ratio", "07_movielens_cli", "Write protocol_ratio(metrics): sampled NDCG@10 / full-ranking NDCG@10 from a metrics.json dict.")
def _protocol_ratio(fn):
    m = {"NDCG@10": 0.32, "full_ranking": {"NDCG@10": 0.05}}
    if not _close(fn(m), 6.4):
        return False, "the full-ranking numbers are under metrics['full_ranking']."
    return True, "that factor is why a metric is meaningless without its protocol."


@_exercise("07.second_seed", "07_movielens_cli",
           "Train MF again from the command line with --seed 1 on all users, score its checkpoint under full ranking on the same "
           "users and compare its per-user NDCG@10 with the seed-0 MF's (paired, seed 1 first); give the verdict.")
def _second_seed(answer):
    from recbook.data import find_movielens_100k
    from recbook_course.exercises.common import _dict_with, _paired_interval, _per_user_tables

    if isinstance(answer, dict) and answer.get("data_absent") is True:
        found = find_movielens_100k()
        if found is not None:
            return False, f"MovieLens-100k is here ({found}): run the experiment instead of handing in data_absent."
        return True, "skipped: MovieLens-100k is absent here (and so are the runs this experiment compares with)."
    hint = _dict_with(answer, ("metrics", "per_user", "reference", "diff_low", "diff_high", "verdict"))
    if hint:
        return False, hint
    m = answer["metrics"]
    if not isinstance(m, dict) or m.get("model") != "mf" or "config" not in m:
        return False, "metrics must be the metrics.json dict of the new MF run (train(\"mf\", …) returns it)."
    if m["config"].get("seed") == 0:
        return False, "this run has seed 0, like the first: add \"--seed\", \"1\" to the command (the last --seed wins)."
    if "full_ranking" not in m:
        return False, "this run has no full-ranking block: train it on all users (\"--all-users\"), as section 1 did."
    hint = _per_user_tables(answer, "NDCG@10", "evaluate(..., per_user=True)['per_user']")
    if hint:
        return False, hint
    if len(answer["per_user"]) != len(answer["reference"]):
        return False, f"per_user has {len(answer['per_user'])} users, the reference {len(answer['reference'])}: score the same users (es_all)."
    hint, c = _paired_interval(answer["per_user"]["NDCG@10"], answer["reference"]["NDCG@10"], answer["diff_low"], answer["diff_high"],
                               answer["verdict"], "NDCG@10, seed 1 − seed 0", "paired_comparison(seed1, seed0), the new seed first")
    if hint:
        return False, hint
    said = {"not shown": "these users cannot tell the two seeds apart (which is not the same as showing they are equal)",
            "lower": "the seeds differ by more than these users' noise: the training seed alone moved this model",
            "higher": "the seeds differ by more than these users' noise: the training seed alone moved this model"}
    return True, (f"seed 1 − seed 0: NDCG@10 {c.diff.mean:+.4f} [{c.diff.low:+.4f}, {c.diff.high:+.4f}] (full ranking, "
                  f"{len(answer['per_user'])} users) — {said[answer['verdict']]}. This is one reseed: its difference is one draw "
                  "of the training noise, and its interval covers the users, not the seeds. A difference between two models "
                  "from one run each carries both noises; compare its size with this one before you report it (section 2's "
                  "rows), and train several seeds when it matters.")

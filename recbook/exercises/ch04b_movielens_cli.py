"""Checkers of notebook 04b_movielens_cli."""

from __future__ import annotations

import numpy as np

from .core import _close, _exercise


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
    from ..cli import build_parser

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

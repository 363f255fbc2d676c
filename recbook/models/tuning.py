"""Choose a model's hyperparameters on validation, never on the test users — the rule every model of the course follows.

Taught in notebook ``09_lm_recommender`` (the baselines there are tuned with it).

:func:`tune` fits each setting of a small grid on :meth:`recbook.data.Split.for_tuning` — the visible interactions
(training + validation) split again one step earlier, so the items it is judged on are the original split's
*validation* items and the test items are never looked at — scores each by full-ranking NDCG@10, and returns the
best setting and the whole table. Refit the winner with ``create(name, profile, **best).fit(dataset, split)`` (add
``seed=tuned.model_seed`` when it was tuned with one).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pandas as pd


@dataclass
class Tuned:
    """What :func:`tune` found: the best setting, its validation score, and every setting's score."""

    name: str
    best: dict
    score: float
    table: pd.DataFrame  # one row per setting: its parameters and the metric
    model_seed: int | None = None  # the seed every setting was fitted with (None: the model's default)


def tune(name: str, dataset, split, grid: dict, profile=None, metric: str = "NDCG@10", n_users: int | None = None,
         seed: int = 0, model_seed: int | None = None, **fixed) -> Tuned:
    """Every combination of ``grid`` (``{field: [values]}``) for model ``name``, with ``fixed`` fields, fitted on
    ``split.for_tuning()`` and scored by full-ranking ``metric`` on its held-out (= validation) items.

    ``seed`` draws the evaluation users (when ``n_users`` is set); ``model_seed`` is every fitted model's seed (None:
    the model's default), so a model tuned here can be refitted at the seed it was tuned with."""
    from recbook.evaluation.protocol import evaluate, make_eval_set
    from recbook.models import create

    if model_seed is not None and "seed" in grid:  # (``seed`` is this function's own argument, so never in ``fixed``)
        raise ValueError("pass the seed either as model_seed or in the grid, not both")
    if not grid or not all(isinstance(v, (list, tuple)) and v for v in grid.values()):
        raise ValueError("grid must map each field to a non-empty list of values, e.g. {'l2': [100, 500]}")
    tuning = split.for_tuning()
    eval_set = make_eval_set(dataset, tuning, "test", 1, n_users=n_users, seed=seed)
    settings, rows = [], []
    seeded = {} if model_seed is None else {"seed": model_seed}
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values))
        model = create(name, profile, **seeded, **fixed, **params).fit(dataset, tuning)
        settings.append(params)
        rows.append({**params, metric: evaluate(model.scorer(eval_set.history), eval_set, "full")[metric]})
    table = pd.DataFrame(rows)
    best = int(table[metric].to_numpy().argmax())  # the first of equal bests, in grid order
    return Tuned(name, settings[best], float(table[metric].iloc[best]), table, model_seed)

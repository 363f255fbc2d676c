"""The whole continual-learning experiment (notebook ``18_continual``): every strategy of
:mod:`recbook.continual.strategies` run window after window against retraining, over several seeds, with the
update settings chosen on validation events (:func:`tune_updates`); next-window quality, forgetting and cost."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recbook.continual.strategies import STRATEGIES, UpdateConfig, fit_base, start_state, update, validation_score
from recbook.continual.stream import Stream, next_item_metrics, per_user, window_events
from recbook.data.splits import TemporalWindows
from recbook.models.sequential import SequentialConfig, SequentialRecommender


# ------------------------------------------------------------------ the whole experiment
@dataclass
class ContinualResult:
    """Everything :func:`run_strategies` measured (one model seed)."""

    next_window: dict  # strategy -> per-user next-window metrics, index (window, user_id)
    retention: dict  # strategy -> {(after_update, window): per-user metrics on the window's held-out test events}
    costs: pd.DataFrame  # one row per strategy × update: cpu_s, wall_s, examples, epochs, best_epoch, valid_ndcg
    n_windows: int
    seed: int = 0
    base_cost: dict = field(default_factory=dict)

    def served_after_update(self, strategy: str, from_window: int = 2) -> pd.DataFrame:
        """Next-window metrics of ``strategy`` on windows ``from_window`` … (default 2: window 1 is served by the base
        model for every strategy, so it only dilutes their differences)."""
        values = self.next_window[strategy]
        return values[values.index.get_level_values("window") >= from_window]

    def table(self, metric: str = "NDCG@10", reference: str = "retrain", n_boot: int = 2000, seed: int = 0,
              from_window: int = 2) -> pd.DataFrame:
        """One row per strategy: next-window quality with CI (windows ``from_window`` … pooled, one unit per user and
        window), its ratio to ``reference`` (paired, CI), forgetting on held-out events with CI, CPU seconds and
        training targets (``examples``) over all updates."""
        return seeds_table([self], metric, reference, n_boot, seed, from_window)

    def forgetting(self, strategy: str, metric: str = "NDCG@10") -> pd.Series:
        """Per (window, user): quality on window ``j``'s held-out test events right after learning the window minus
        after the last update (positive = forgotten)."""
        retention = self.retention.get(strategy, {})
        last = self.n_windows
        parts = []
        for j in range(1, last):
            after, final = retention.get((j, j)), retention.get((last, j))
            if after is None or final is None:
                continue
            joined = after[metric].to_frame("after").join(final[metric].to_frame("final"), how="inner")
            parts.append(joined["after"] - joined["final"])
        return pd.concat(parts) if parts else pd.Series(dtype=float)

    def by_window(self, metric: str = "NDCG@10") -> pd.DataFrame:
        """Mean next-window quality per strategy and window (for the plot)."""
        return pd.DataFrame({name: v[metric].groupby(level="window").mean() for name, v in self.next_window.items()})


def _over_seeds(series: list[pd.Series]) -> pd.Series:
    """Per-unit means over seeds (units present in every seed): the unit of the pooled intervals."""
    return pd.concat(series, axis=1, join="inner").mean(axis=1)


def pooled_next_window(results: list[ContinualResult], strategy: str, metric: str = "NDCG@10", from_window: int = 2) -> pd.Series:
    """``strategy``'s next-window ``metric`` per unit (user × window, windows ``from_window`` …), averaged over the
    seeds: what :func:`seeds_table` and paired comparisons over seeds resample."""
    return _over_seeds([r.served_after_update(strategy, from_window)[metric] for r in results])


def pooled_forgetting(results: list[ContinualResult], strategy: str, metric: str = "NDCG@10") -> pd.Series:
    """``strategy``'s forgetting per unit (user × window, on held-out test events), averaged over the seeds."""
    return _over_seeds([r.forgetting(strategy, metric) for r in results])


def seeds_table(results: list[ContinualResult], metric: str = "NDCG@10", reference: str = "retrain", n_boot: int = 2000,
                seed: int = 0, from_window: int = 2) -> pd.DataFrame:
    """One row per strategy over one or more seeds' results: next-window ``metric`` (each unit — a user in a window —
    averaged over the seeds) with its CI, the seeds' spread (``seed_sd``, ``seed_min``, ``seed_max`` of the per-seed
    means), the paired ratio to ``reference`` with CI, forgetting on held-out events (CI and seed spread), and the
    mean CPU seconds and training targets of one seed's updates."""
    from recbook.evaluation.stats import mean_ci, ratio_ci

    if not results:
        raise ValueError("seeds_table needs at least one ContinualResult")
    rows = []
    for name in results[0].next_window:
        per_seed = [r.served_after_update(name, from_window)[metric] for r in results]
        if any(v.empty for v in per_seed):
            raise ValueError(f"no window >= from_window={from_window} was served; there are {results[0].n_windows} windows")
        values = _over_seeds(per_seed)
        est = mean_ci(values, n_boot=n_boot, seed=seed)
        means = np.array([v.mean() for v in per_seed])
        row = {"strategy": name, metric: est.mean, "ci_low": est.low, "ci_high": est.high, "units": est.n, "seeds": len(results),
               "seed_sd": float(means.std(ddof=1)) if len(means) > 1 else 0.0, "seed_min": float(means.min()),
               "seed_max": float(means.max())}
        if reference in results[0].next_window and name != reference:
            ref = pooled_next_window(results, reference, metric, from_window)
            ratio = ratio_ci(values, ref, (name, reference), n_boot=n_boot, seed=seed)
            row.update({f"÷ {reference}": ratio.mean, "ratio_low": ratio.low, "ratio_high": ratio.high})
        forgetting = [r.forgetting(name, metric) for r in results]
        if all(len(f) for f in forgetting):
            f = mean_ci(_over_seeds(forgetting), n_boot=n_boot, seed=seed)
            f_means = np.array([x.mean() for x in forgetting])
            row.update(forgetting=f.mean, forgetting_low=f.low, forgetting_high=f.high,
                       forgetting_seed_sd=float(f_means.std(ddof=1)) if len(f_means) > 1 else 0.0)
        costs = [r.costs[r.costs["strategy"] == name] for r in results]
        row.update(cpu_s=float(np.mean([c["cpu_s"].sum() for c in costs])),
                   examples=int(np.mean([c["examples"].sum() for c in costs])))
        rows.append(row)
    return pd.DataFrame(rows).set_index("strategy")


def run_strategies(stream: Stream, windows: TemporalWindows, base: SequentialRecommender, strategies=STRATEGIES,
                   config: UpdateConfig | None = None, max_per_user: int | None = None, progress: bool = True) -> ContinualResult:
    """Run every strategy through all update windows from the same ``base`` model (trained before window 1).

    At step ``w``: evaluate on window ``w`` (next-window quality), update with window ``w``, then score the held-out
    test events of windows ``1 … w`` (retention, for forgetting). ``stream`` must hold test events
    (:meth:`Stream.hold_out`)."""
    from tqdm.auto import tqdm

    config = config or UpdateConfig()
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; choose from {STRATEGIES}")
    if not stream.test:
        raise ValueError("the stream holds no held-out test events, so forgetting would be measured on training targets; "
                         "pass stream.hold_out(valid=..., test=...)")
    bounds = [int(b) for b in windows.bounds]
    events = {w: window_events(stream, windows, w, max_per_user) for w in range(1, windows.n_windows + 1)}
    tests = {w: stream.held_out("test", bounds[w], bounds[w + 1], max_per_user) for w in range(1, windows.n_windows + 1)}
    next_window, retention, costs = {}, {}, []
    first = per_user(next_item_metrics(base, stream, events[1]), key=1)  # window 1: the same base model for every strategy
    bar = tqdm(total=len(strategies) * windows.n_windows, desc=f"updates (seed {config.seed})", disable=not progress)
    for name in strategies:
        state = start_state(name, base, stream, bounds[1], config)
        parts, kept = [], {}
        for w in range(1, windows.n_windows + 1):
            parts.append(first if w == 1 else per_user(next_item_metrics(state.model, stream, events[w]), key=w))
            cost = update(name, state, stream, bounds[w], bounds[w + 1], config)
            costs.append({"strategy": name, "window": w, **cost})
            for j in range(1, w + 1):
                if j == w or w == windows.n_windows:
                    kept[(w, j)] = per_user(next_item_metrics(state.model, stream, tests[j]), key=j)
            bar.update()
        next_window[name] = pd.concat(parts)
        retention[name] = kept
    bar.close()
    return ContinualResult(next_window, retention, pd.DataFrame(costs), windows.n_windows, seed=config.seed)


def fit_base_for(stream: Stream, windows: TemporalWindows, n_items: int, model_config: SequentialConfig | None = None,
                 config: UpdateConfig | None = None, text_features=None) -> tuple[SequentialRecommender, dict]:
    """The base model of an experiment: :func:`fit_base` on the base period, stopped early on its validation events."""
    config = config or UpdateConfig()
    bounds = [int(b) for b in windows.bounds]
    valid = stream.held_out("valid", bounds[0], bounds[1], config.valid_per_user)
    return fit_base(stream, bounds[1], n_items, model_config, config, text_features, valid_events=valid)


def run_seeds(stream: Stream, windows: TemporalWindows, n_items: int, seeds, strategies=STRATEGIES,
              config: UpdateConfig | None = None, model_config: SequentialConfig | None = None, max_per_user: int | None = None,
              progress: bool = True, bases: dict | None = None) -> list[ContinualResult]:
    """The whole experiment once per seed: a base model of that seed (:func:`fit_base_for`; or ``bases[seed]``, a
    ``(model, cost)`` pair already fitted that way), then :func:`run_strategies` with ``config.seed`` set to it. The
    data, its windows and its held-out events are the same for every seed; only the models' initialisation, batch
    order and samples change."""
    config = config or UpdateConfig()
    seeds = list(seeds)
    if not seeds:
        raise ValueError("run_seeds needs at least one seed")
    results = []
    for s in seeds:
        cfg = dataclasses.replace(config, seed=int(s))
        if bases and int(s) in bases:
            base, base_cost = bases[int(s)]
        else:
            base, base_cost = fit_base_for(stream, windows, n_items, model_config, cfg)
        result = run_strategies(stream, windows, base, strategies, cfg, max_per_user, progress)
        result.base_cost = base_cost
        results.append(result)
    return results


# ------------------------------------------------------------------ settings chosen on validation
TUNING_GRID = {
    "finetune": ("epochs", (1, 2, 4, 8)),  # chosen first: every strategy that trains on the new window uses it
    "replay": ("replay_size", (2000, 10000, 50000)),
    "ewc": ("ewc_lambda", (1.0, 10.0, 100.0)),  # the Fisher is scaled to mean 1, so λ is chosen, not derived
    "lora": ("lora_rank", (2, 8)),
}


def tune_updates(stream: Stream, windows: TemporalWindows, base: SequentialRecommender, config: UpdateConfig | None = None,
                 grid: dict | None = None, metric: str = "NDCG@10") -> tuple[UpdateConfig, pd.DataFrame]:
    """Choose each strategy's setting on **validation** events, never on the windows a table reports.

    Every candidate updates ``base`` with window 1 and is scored on the validation events of the base period (what
    it should keep) and of window 1 (what it should learn); the score is their mean — the "average accuracy" over
    the periods seen, on held-out data. ``grid`` maps a strategy to ``(UpdateConfig field, values)``
    (default :data:`TUNING_GRID`), tuned in the grid's order, each with the values chosen before it (the default grid
    chooses the update epochs on ``finetune`` first); ``lora_continue`` shares ``lora``'s rank (its first window is
    the same update). Returns the config with every chosen value and one row per candidate."""
    config = config or UpdateConfig()
    grid = TUNING_GRID if grid is None else grid
    if not stream.valid:
        raise ValueError("the stream holds no validation events; pass stream.hold_out(valid=..., test=...)")
    if windows.n_windows < 1:
        raise ValueError("tuning needs at least one update window")
    bounds = [int(b) for b in windows.bounds]
    old = stream.held_out("valid", bounds[0], bounds[1], config.valid_per_user)
    new = stream.held_out("valid", bounds[1], bounds[2], config.valid_per_user)
    if not old or not new:
        raise ValueError("the base period or window 1 holds no validation events; raise hold_out's valid share")
    params = [param for param, _ in grid.values()]
    if len(set(params)) != len(params):
        raise ValueError(f"grid: each UpdateConfig field may be tuned by one strategy only, got {params}")
    rows, chosen = [], {}
    for strategy, (param, values) in grid.items():
        if strategy not in STRATEGIES:
            raise ValueError(f"grid: unknown strategy {strategy!r}; choose from {STRATEGIES}")
        if not hasattr(config, param):
            raise ValueError(f"grid[{strategy!r}]: UpdateConfig has no field {param!r}")
        best = None
        for value in values:
            cfg = dataclasses.replace(config, **{**chosen, param: value})
            state = start_state(strategy, base, stream, bounds[1], cfg)
            cost = update(strategy, state, stream, bounds[1], bounds[2], cfg)
            kept, learned = validation_score(state.model, stream, old, metric), validation_score(state.model, stream, new, metric)
            score = (kept + learned) / 2
            rows.append({"strategy": strategy, "setting": param, "value": value, f"{metric} base period": kept,
                         f"{metric} window 1": learned, "score": score, "cpu_s": cost["cpu_s"]})
            if best is None or score > best[0]:
                best = (score, value)
        chosen[param] = best[1]
    table = pd.DataFrame(rows)
    table["chosen"] = [chosen.get(s) == v for s, v in zip(table["setting"], table["value"])]
    return dataclasses.replace(config, **chosen), table

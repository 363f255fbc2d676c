"""recbook.continual.strategies (issue 13): the reservoir, targets-only training windows, next-item metrics cross-checked with
the course's evaluation, every update strategy, the experiment's table, and `python -m recbook update`."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from recbook import cli
from recbook.continual.experiment import fit_base_for, pooled_forgetting, pooled_next_window, run_seeds, run_strategies, seeds_table, tune_updates
from recbook.continual.retention import ReservoirBuffer, ewc_penalty, fisher_diagonal
from recbook.continual.strategies import STRATEGIES, UpdateConfig, fit_base, start_state, update, validation_score
from recbook.continual.stream import Stream, next_item_metrics, per_user, target_windows, window_events
from recbook.data import leave_last_out, make_drift_stream, temporal_windows
from recbook.data.windows import user_sequences
from recbook.evaluation.protocol import evaluate, history_for_test, make_eval_set
from recbook.models.sequential import SequentialConfig, SequentialScorer
from recbook.usage import UsageError

TINY = SequentialConfig(dim=16, layers=1, heads=1, max_len=8, dropout=0.0)


@pytest.fixture(scope="module")
def stream_setup():
    ds = make_drift_stream(seed=1, n_users=40, n_items=200, n_windows=4, events_per_window=300, change_window=2)
    windows = temporal_windows(ds.interactions, bounds=ds.info["drift"]["window_bounds"][1:])
    stream = Stream.from_interactions(windows.interactions, ds.item_ids).hold_out(valid=0.15, test=0.15, seed=0)
    config = UpdateConfig(epochs=1, retrain_epochs=2, batch_size=32, replay_size=200, ewc_batches=3, lora_rank=2)
    base, cost = fit_base(stream, int(windows.bounds[1]), ds.n_items, TINY, config)
    return ds, windows, stream, config, base, cost


# ------------------------------------------------------------------ reservoir
def test_reservoir_keeps_capacity_and_samples_uniformly():
    buffer = ReservoirBuffer(10, seed=0)
    buffer.add(range(5))
    assert sorted(buffer.items) == [0, 1, 2, 3, 4]  # under capacity: everything kept
    buffer.add(range(5, 1000))
    assert len(buffer) == 10 and buffer.seen == 1000 and len(set(buffer.items)) == 10
    # every position of the stream has the same chance 100/1000 of being kept, the oldest as the newest
    counts = np.zeros(1000)
    for seed in range(400):
        b = ReservoirBuffer(100, seed=seed)
        b.add(range(1000))
        counts[b.items] += 1
    first, last = counts[:500].mean() / 400, counts[500:].mean() / 400
    assert first == pytest.approx(0.1, abs=0.01) and last == pytest.approx(0.1, abs=0.01)
    assert len(buffer.sample(3)) == 3 and sorted(buffer.sample(50)) == sorted(buffer.items)


@pytest.mark.parametrize("capacity", [-1, 2.5, True])
def test_reservoir_rejects_bad_capacity(capacity):
    with pytest.raises(ValueError, match="capacity"):
        ReservoirBuffer(capacity)


# ------------------------------------------------------------------ streams and windows
def test_stream_matches_user_sequences_and_cuts_by_time(stream_setup):
    ds, windows, stream, *_ = stream_setup
    reference = user_sequences(windows.interactions, pd.Series(np.arange(ds.n_items), index=ds.item_ids))
    assert set(reference) == set(stream.rows)
    for u, seq in reference.items():
        np.testing.assert_array_equal(stream.rows[u], seq)
        assert np.all(np.diff(stream.times[u]) >= 0)
    cut = int(windows.bounds[2])
    before = stream.upto(cut)
    assert sum(len(r) for r in before.values()) == len(windows.known(2))
    events = stream.events(int(windows.bounds[2]), int(windows.bounds[3]))
    assert len(events) == len(windows.window(2))


def test_temporal_windows_protocol(stream_setup):
    ds, windows, *_ = stream_setup
    assert windows.n_windows == 3
    sizes = [len(windows.window(w)) for w in range(4)]
    assert sum(sizes) == len(ds.interactions) and min(sizes) > 0
    assert windows.known(1)["timestamp"].max() < windows.window(1)["timestamp"].min()
    new = set(ds.info["drift"]["new_item_ids"])
    # the released items arrive at the change: none before it, and in its window they are cold
    assert not new & set(windows.known(2)["item_id"])
    arrived = new & set(windows.window(2)["item_id"])
    assert arrived and arrived <= set(windows.cold_items(2))
    table = windows.describe()
    assert list(table.index) == ["base", 1, 2, 3] and table.loc[1, "interactions"] == sizes[1]
    with pytest.raises(ValueError, match="window"):
        windows.window(4)
    with pytest.raises(ValueError, match="window"):
        windows.known(0)


def test_temporal_windows_by_quantiles_and_errors():
    df = pd.DataFrame({"user_id": np.repeat(np.arange(10), 10), "item_id": np.tile(np.arange(10), 10), "rating": 1.0,
                       "timestamp": np.arange(100)})
    windows = temporal_windows(df, n_windows=5, base_fraction=0.5)
    assert len(windows.window(0)) == 50 and [len(windows.window(w)) for w in range(1, 6)] == [10] * 5
    with pytest.raises(ValueError, match="base_fraction"):
        temporal_windows(df, base_fraction=1.0)
    with pytest.raises(ValueError, match="n_windows"):
        temporal_windows(df, n_windows=0)
    from recbook.data import DataError

    with pytest.raises(DataError, match="timestamp"):
        temporal_windows(df.drop(columns="timestamp"))
    with pytest.raises(DataError, match="not strictly increasing"):
        temporal_windows(df, bounds=[50, 40])
    dated = temporal_windows(df.assign(timestamp=df["timestamp"] * 86400), bounds=["1970-02-01", "1970-03-01"])
    assert dated.n_windows == 1 and len(dated.window(1)) == 28


def test_target_windows_hold_exactly_the_events_as_targets(stream_setup):
    _, windows, stream, *_ = stream_setup
    events = [(u, p) for u, p in stream.events(int(windows.bounds[2]), int(windows.bounds[3])) if p >= 1]
    out = target_windows(stream, events, max_len=8)
    assert int((out["target"] > 0).sum()) == len(events)
    assert sorted(out["target"][out["target"] > 0].tolist()) == sorted(int(stream.rows[u][p]) for u, p in events)
    # inputs are the items just before each target (context from before the window included)
    row = 0
    t, i = out["target"][row], out["input"][row]
    real = t > 0
    assert torch.all(i[real] > 0)
    with pytest.raises(ValueError, match="nothing to train on"):
        target_windows(stream, [(next(iter(stream.rows)), 0)], max_len=8)


# ------------------------------------------------------------------ evaluation
def test_next_item_metrics_match_the_course_full_ranking(stream_setup):
    ds, _, stream, _, base, _ = stream_setup
    counts = ds.interactions["user_id"].value_counts()
    room = ds.interactions[ds.interactions["user_id"].isin(counts[counts < ds.n_items - 1].index)]  # a negative left to draw
    split = leave_last_out(room, drop_short_users=True)
    reference = evaluate(SequentialScorer(base, ds.item_ids, history_for_test(split)), make_eval_set(ds, split, "test", n_negatives=1), "full",
                         per_user=True)["per_user"]
    last = [(u, len(stream.rows[u]) - 1) for u in split.test["user_id"]]
    ours = per_user(next_item_metrics(base, stream, last))
    joined = ours.join(reference.add_suffix("_ref"))
    np.testing.assert_allclose(joined["NDCG@10"], joined["NDCG@10_ref"], atol=1e-5)
    np.testing.assert_allclose(joined["HR@10"], joined["HR@10_ref"], atol=1e-6)
    keyed = per_user(next_item_metrics(base, stream, last), key=3)
    assert keyed.index.names == ["window", "user_id"]


def test_next_item_metrics_keep_a_repeated_target_rankable(stream_setup):
    ds, _, _, _, base, _ = stream_setup
    repeat = pd.DataFrame({"user_id": [1, 1, 1], "item_id": ds.item_ids[[0, 1, 0]], "rating": 1.0, "timestamp": [1, 2, 3]})
    stream = Stream.from_interactions(repeat, ds.item_ids)
    row = next_item_metrics(base, stream, [(1, 2)]).iloc[0]  # item 0 again, after (0, 1): excluded items must not hide it
    scores = base.score_all([stream.rows[1][:2]])[0]
    others = np.delete(scores, [0, 1])
    rank = int((others > scores[0]).sum())
    assert row["HR@10"] == float(rank < 10)


def test_window_events_cap_per_user(stream_setup):
    _, windows, stream, *_ = stream_setup
    capped = window_events(stream, windows, 2, max_per_user=1)
    users = [u for u, _ in capped]
    assert len(users) == len(set(users)) and all(p >= 1 for _, p in capped)
    assert len(window_events(stream, windows, 2)) >= len(capped)


# ------------------------------------------------------------------ strategies
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_updates_and_reports_its_cost(stream_setup, strategy):
    _, windows, stream, config, base, _ = stream_setup
    before = {k: v.clone() for k, v in base.state_dict().items()}
    state = start_state(strategy, base, stream, int(windows.bounds[1]), config)
    cost = update(strategy, state, stream, int(windows.bounds[1]), int(windows.bounds[2]), config)
    assert {"cpu_s", "wall_s", "examples"} <= set(cost)
    for k, v in base.state_dict().items():  # the base model itself is never modified
        torch.testing.assert_close(v, before[k])
    changed = any(not torch.equal(v, state.model.state_dict()[k]) for k, v in before.items() if k in state.model.state_dict())
    if strategy == "frozen":
        assert cost["examples"] == 0 and not changed
    else:
        assert cost["examples"] > 0 and cost["cpu_s"] > 0 and changed
    assert type(state.model).__name__ == "SequentialRecommender"  # lora comes back merged, servable as any other
    if strategy in ("finetune", "replay", "ewc"):  # the new window's items become known
        new_rows = stream.upto(int(windows.bounds[2]))
        seen = {int(r) for rows in new_rows.values() for r in rows}
        assert all(bool(state.model.known_items[r]) for r in seen)
    if strategy == "replay":
        assert len(state.buffer) == min(config.replay_size, state.buffer.seen)


def test_ewc_penalty_and_fisher(stream_setup):
    _, windows, stream, config, base, _ = stream_setup
    events = [(u, p) for u, rows in stream.upto(int(windows.bounds[1])).items() for p in range(1, len(rows))]
    fisher = fisher_diagonal(base, target_windows(stream, events, 8), batches=2, batch_size=16)
    total = sum(f.sum() for f in fisher.values()) / sum(f.numel() for f in fisher.values())
    assert float(total) == pytest.approx(1.0, rel=1e-4) and all(torch.all(f >= 0) for f in fisher.values())
    anchor = {n: p.detach().clone() for n, p in base.named_parameters()}
    penalty = ewc_penalty(anchor, fisher, strength=2.0)
    assert float(penalty(base).detach()) == 0.0
    moved = fit_base.__globals__["copy"].deepcopy(base)
    with torch.no_grad():
        for p in moved.parameters():
            p.add_(0.1)
    expected = 0.5 * 2.0 * sum(float((fisher[n] * 0.01).sum()) for n in fisher)
    assert float(penalty(moved).detach()) == pytest.approx(expected, rel=1e-4)


def test_update_config_and_strategy_errors(stream_setup):
    with pytest.raises(ValueError, match="epochs"):
        UpdateConfig(epochs=0)
    with pytest.raises(ValueError, match="lr"):
        UpdateConfig(lr=0)
    with pytest.raises(ValueError, match="replay_size"):
        UpdateConfig(replay_size=-1)
    _, windows, stream, config, base, _ = stream_setup
    with pytest.raises(ValueError, match="strategy"):
        start_state("distill", base, stream, int(windows.bounds[1]), config)
    with pytest.raises(ValueError, match="causal"):
        fit_base(stream, int(windows.bounds[1]), base.n_items, SequentialConfig(objective="cloze", dim=16, heads=1), config)


def test_run_strategies_table(stream_setup):
    _, windows, stream, config, base, _ = stream_setup
    result = run_strategies(stream, windows, base, ("frozen", "finetune", "retrain"), config, max_per_user=2, progress=False)
    table = result.table(n_boot=200)
    assert table.loc["frozen", "units"] == len(result.served_after_update("frozen"))  # windows 2… (window 1: the same base for all)
    assert table.loc["frozen", "units"] < len(result.next_window["frozen"])
    with pytest.raises(ValueError, match="from_window"):
        result.table(from_window=9)
    assert list(table.index) == ["frozen", "finetune", "retrain"]
    for name in table.index:
        row = table.loc[name]
        assert row["ci_low"] <= row["NDCG@10"] <= row["ci_high"]
    assert table.loc["frozen", "cpu_s"] == 0 and table.loc["frozen", "examples"] == 0
    # a frozen model never changes, so it cannot forget
    assert table.loc["frozen", "forgetting"] == 0
    assert np.isnan(table.loc["retrain", "÷ retrain"]) if "÷ retrain" in table else True
    assert table.loc["frozen", "ratio_low"] <= table.loc["frozen", "÷ retrain"] <= table.loc["frozen", "ratio_high"]
    by_window = result.by_window()
    assert list(by_window.index) == [1, 2, 3]
    # every strategy starts from the same base: window 1 is scored by the same model for all
    assert by_window.loc[1].nunique() == 1
    with pytest.raises(ValueError, match="unknown strategies"):
        run_strategies(stream, windows, base, ("frozen", "magic"), config, progress=False)


# ------------------------------------------------------------------ held-out events (issue 22, item 6)
def test_hold_out_draws_disjoint_shares_the_same_way_every_time(stream_setup):
    ds, windows, *_ = stream_setup
    plain = Stream.from_interactions(windows.interactions, ds.item_ids)
    assert not plain.valid and not plain.test and len(plain.trainable([(u, 1) for u in plain.rows])) == len(plain.rows)
    held = plain.hold_out(valid=0.2, test=0.1, seed=3)
    eligible = sum(len(r) - 1 for r in plain.rows.values())
    assert not held.valid & held.test
    assert len(held.valid) / eligible == pytest.approx(0.2, abs=0.03) and len(held.test) / eligible == pytest.approx(0.1, abs=0.03)
    assert all(p >= 1 for _, p in held.valid | held.test)  # a first interaction has no history: never held out
    assert held.hold_out(0.2, 0.1, seed=3).valid == held.valid  # the same draw, whatever was held out before
    assert plain.hold_out(0.2, 0.1, seed=4).valid != held.valid
    every = [(u, p) for u, r in plain.rows.items() for p in range(len(r))]
    assert set(held.trainable(every)) == {e for e in every if e[1] >= 1} - held.valid - held.test
    cut = int(windows.bounds[2])
    assert set(held.trainable_upto(cut)) == set(held.trainable((u, p) for u, r in held.upto(cut).items() for p in range(len(r))))
    start, end = int(windows.bounds[1]), int(windows.bounds[2])
    latest = held.held_out("test", start, end, per_user=1)
    assert {e for e in latest} <= held.test and len({u for u, _ in latest}) == len(latest)
    assert set(held.held_out("test", start, end)) == held.test & set(held.events(start, end))
    with pytest.raises(ValueError, match="valid"):
        plain.hold_out(valid=1.2)
    with pytest.raises(ValueError, match="nothing to train on"):
        plain.hold_out(valid=0.6, test=0.5)
    with pytest.raises(ValueError, match="role"):
        held.held_out("train", start, end)


@pytest.mark.parametrize("strategy", [s for s in STRATEGIES if s != "frozen"])
def test_held_out_events_are_never_training_targets(stream_setup, strategy, monkeypatch):
    """Forgetting scored on events a strategy trained on rewards re-fitting them: no strategy may train on them."""
    import recbook.continual.strategies as continual

    _, windows, stream, config, base, _ = stream_setup
    trained = []
    real = continual.target_windows

    def spy(stream_, events, max_len):
        events = list(events)
        trained.extend(events)
        return real(stream_, events, max_len)

    monkeypatch.setattr(continual, "target_windows", spy)
    state = start_state(strategy, base, stream, int(windows.bounds[1]), config)
    update(strategy, state, stream, int(windows.bounds[1]), int(windows.bounds[2]), config)
    if strategy == "replay":
        trained.extend(state.buffer.items)
    assert trained and not set(trained) & (stream.valid | stream.test)


def test_a_fresh_model_stops_early_on_validation_and_keeps_its_best_epoch(stream_setup, monkeypatch):
    import copy

    import recbook.continual.strategies as continual

    ds, windows, stream, _, _, _ = stream_setup
    config = UpdateConfig(retrain_epochs=6, patience=2, batch_size=32, lr=3e-2)
    model, cost = fit_base_for(stream, windows, ds.n_items, TINY, config)
    valid = stream.held_out("valid", int(windows.bounds[0]), int(windows.bounds[1]), config.valid_per_user)
    assert valid and 1 <= cost["best_epoch"] <= cost["epochs"] <= 6
    assert validation_score(model, stream, valid) == pytest.approx(cost["valid_ndcg"], abs=1e-6)  # the best weights kept
    # a scripted validation curve: best at epoch 2, then two epochs without improvement -> stop after epoch 4
    scripted, snapshots = iter([0.1, 0.3, 0.2, 0.25, 0.5, 0.6]), []

    def score(m, s, events):
        snapshots.append(copy.deepcopy(m.state_dict()))
        return next(scripted)

    monkeypatch.setattr(continual, "validation_score", score)
    model, cost = fit_base_for(stream, windows, ds.n_items, TINY, config)
    assert (cost["epochs"], cost["best_epoch"], cost["valid_ndcg"]) == (4, 2, 0.3) and len(snapshots) == 4
    for name, value in model.state_dict().items():  # the weights of epoch 2 are the ones kept
        torch.testing.assert_close(value, snapshots[1][name])
    monkeypatch.undo()
    fixed, fixed_cost = fit_base(stream, int(windows.bounds[1]), ds.n_items, TINY, dataclasses.replace(config, retrain_epochs=2))
    assert fixed_cost["epochs"] == fixed_cost["best_epoch"] == 2 and np.isnan(fixed_cost["valid_ndcg"])  # no validation: fixed epochs
    with pytest.raises(ValueError, match="stream"):
        continual.train_on(fixed, continual.target_windows(stream, stream.trainable(stream.events(0, int(windows.bounds[1]))), 8), 1,
                           config, valid_events=valid)


def test_lora_continue_keeps_one_adapter_and_lora_starts_afresh(stream_setup):
    _, windows, stream, config, base, _ = stream_setup
    b = [int(x) for x in windows.bounds]
    states = {name: start_state(name, base, stream, b[1], config) for name in ("lora", "lora_continue")}
    first = {}
    for name, state in states.items():
        update(name, state, stream, b[1], b[2], config)
        first[name] = state.adapter
        update(name, state, stream, b[2], b[3], config)
    assert states["lora_continue"].adapter is first["lora_continue"]
    assert states["lora"].adapter is not first["lora"]
    # a fresh adapter per window forgets the first window's adapter; the continued one carries it
    fresh, continued = states["lora"].model.state_dict(), states["lora_continue"].model.state_dict()
    assert any(not torch.equal(fresh[k], continued[k]) for k in fresh)
    assert type(states["lora_continue"].model).__name__ == "SequentialRecommender"


def test_run_strategies_scores_forgetting_on_held_out_test_events(stream_setup):
    ds, windows, stream, config, base, _ = stream_setup
    result = run_strategies(stream, windows, base, ("frozen", "finetune"), config, max_per_user=2, progress=False)
    b = [int(x) for x in windows.bounds]
    for (_after, j), kept in result.retention["frozen"].items():
        expected = per_user(next_item_metrics(base, stream, stream.held_out("test", b[j], b[j + 1], 2)), key=j)
        pd.testing.assert_frame_equal(kept, expected)
    plain = Stream.from_interactions(windows.interactions, ds.item_ids)
    with pytest.raises(ValueError, match="hold_out"):
        run_strategies(plain, windows, base, ("frozen",), config, progress=False)


def test_run_seeds_and_the_seed_table(stream_setup):
    ds, windows, stream, config, _, _ = stream_setup
    results = run_seeds(stream, windows, ds.n_items, [0, 1], ("frozen", "finetune", "retrain"), config, TINY, max_per_user=2,
                        progress=False)
    assert [r.seed for r in results] == [0, 1] and all(r.base_cost["epochs"] >= 1 for r in results)
    table = seeds_table(results, n_boot=200)
    for name in table.index:
        per_seed = [r.served_after_update(name)["NDCG@10"].mean() for r in results]
        row = table.loc[name]
        assert row["seeds"] == 2 and row["NDCG@10"] == pytest.approx(np.mean(per_seed))  # same units in every seed
        assert row["seed_min"] == pytest.approx(min(per_seed)) and row["seed_max"] == pytest.approx(max(per_seed))
        assert row["seed_sd"] == pytest.approx(np.std(per_seed, ddof=1))
        assert row["ci_low"] <= row["NDCG@10"] <= row["ci_high"]
    # each seed fits its own base model: even the never-updated model scores differently
    assert not np.array_equal(results[0].next_window["frozen"]["NDCG@10"].values, results[1].next_window["frozen"]["NDCG@10"].values)
    assert table.loc["frozen", "forgetting"] == 0 and table.loc["frozen", "forgetting_seed_sd"] == 0
    pooled = pooled_next_window(results, "finetune")
    by_hand = (results[0].served_after_update("finetune")["NDCG@10"] + results[1].served_after_update("finetune")["NDCG@10"]) / 2
    pd.testing.assert_series_equal(pooled, by_hand, check_names=False)
    forgot = pooled_forgetting(results, "finetune")
    pd.testing.assert_series_equal(forgot, (results[0].forgetting("finetune") + results[1].forgetting("finetune")) / 2, check_names=False)
    fitted, _ = fit_base(stream, int(windows.bounds[1]), ds.n_items, TINY, config)
    given = run_seeds(stream, windows, ds.n_items, [5], ("frozen",), config, TINY, max_per_user=2, progress=False,
                      bases={5: (fitted, {"epochs": 7})})
    assert given[0].base_cost == {"epochs": 7} and given[0].seed == 5  # a base fitted before is used, not fitted again
    expected = per_user(next_item_metrics(fitted, stream, window_events(stream, windows, 1, 2)), key=1)
    pd.testing.assert_frame_equal(given[0].next_window["frozen"].loc[[1]], expected)
    with pytest.raises(ValueError, match="at least one"):
        seeds_table([])
    with pytest.raises(ValueError, match="seed"):
        run_seeds(stream, windows, ds.n_items, [], ("frozen",), config, TINY, progress=False)


def test_tune_updates_chooses_on_validation_in_the_grids_order(stream_setup):
    ds, windows, stream, config, base, _ = stream_setup
    grid = {"finetune": ("epochs", (1, 2)), "ewc": ("ewc_lambda", (0.0, 100.0))}
    tuned, table = tune_updates(stream, windows, base, config, grid)
    assert len(table) == 4 and set(table["strategy"]) == {"finetune", "ewc"}
    for setting, rows in table.groupby("setting"):
        best = rows.loc[rows["score"].idxmax()]
        assert getattr(tuned, setting) == best["value"] and rows["chosen"].sum() == 1 and best["chosen"]
        assert np.allclose(rows["score"], (rows["NDCG@10 base period"] + rows["NDCG@10 window 1"]) / 2)
    # the score is the validation NDCG of the model each candidate produced
    b = [int(x) for x in windows.bounds]
    cfg = dataclasses.replace(config, epochs=tuned.epochs, ewc_lambda=100.0)
    state = start_state("ewc", base, stream, b[1], cfg)
    update("ewc", state, stream, b[1], b[2], cfg)
    new = stream.held_out("valid", b[1], b[2], config.valid_per_user)
    row = table[(table["strategy"] == "ewc") & (table["value"] == 100.0)].iloc[0]
    assert row["NDCG@10 window 1"] == pytest.approx(validation_score(state.model, stream, new), abs=1e-6)
    plain = Stream.from_interactions(windows.interactions, ds.item_ids)
    with pytest.raises(ValueError, match="validation"):
        tune_updates(plain, windows, base, config, grid)
    with pytest.raises(ValueError, match="unknown strategy"):
        tune_updates(stream, windows, base, config, {"magic": ("epochs", (1,))})
    with pytest.raises(ValueError, match="no field"):
        tune_updates(stream, windows, base, config, {"ewc": ("strength", (1,))})
    with pytest.raises(ValueError, match="one strategy only"):
        tune_updates(stream, windows, base, config, {"lora": ("lora_rank", (2,)), "lora_continue": ("lora_rank", (4,))})


# ------------------------------------------------------------------ the command
def test_parse_time():
    from recbook.cli.update import parse_time

    assert parse_time("1998-03-01", "--until") == 888710400
    assert parse_time("888710400", "--until") == 888710400 and parse_time(5, "--since") == 5
    with pytest.raises(UsageError, match="--until 'soon'"):
        parse_time("soon", "--until")


@pytest.mark.slow
def test_update_command_writes_a_version_that_evaluate_and_the_service_load(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECBOOK_PROFILE", "quick")
    base = tmp_path / "base"
    assert cli.main(["train", "--data", "synthetic-drift", "--model", "sasrec", "--time-budget", "2", "--out", str(base), "--quiet"]) == 0
    bounds = make_drift_stream().info["drift"]["window_bounds"]
    v2 = tmp_path / "v2"
    capsys.readouterr()
    assert cli.main(["update", "--model", str(base), "--data", "synthetic-drift", "--since", str(bounds[3]), "--until", str(bounds[4]),
                     "--strategy", "replay", "--epochs", "1", "--replay-size", "500", "--out", str(v2)]) == 0
    summary = json.loads(capsys.readouterr().out)
    run = json.loads((v2 / "checkpoint" / "run.json").read_text())
    assert run["strategy"] == "replay" and run["data_until"] == bounds[4] and run["data_window"]["since"] == bounds[3]
    assert run["parent"]["folder"].endswith("checkpoint") and summary["examples"] > 0 and summary["version"] == run["version"]
    assert run["parent"]["version"].startswith("train-")  # a train run has no version: named by its weights' hash
    # evaluate reads it as it reads a train run
    assert cli.main(["evaluate", "--checkpoint", str(v2)]) == 0
    # the service loads the bundle (verified against its manifest), which names its parent and data window
    from recbook.serve.bundle import load_bundle, read_manifest

    manifest = read_manifest(v2 / "bundle")
    assert manifest["version"] == run["version"] and manifest["source"]["data_window"]["until"] == bounds[4]
    from recbook.continual.drift_export import read_drift_json

    drift = read_drift_json(v2 / "bundle")  # the new data's drift, exported by the service as gauges
    assert drift == summary["drift"] and drift["update_due"] in (0, 1) and drift["item_popularity"] >= 0
    bundle = load_bundle(v2 / "bundle")
    assert bundle.version == run["version"] and len(bundle.histories) > 0
    # the next update continues where this one stopped (no --since) and records this version as its parent
    v3 = tmp_path / "v3"
    assert cli.main(["update", "--model", str(v2), "--data", "synthetic-drift", "--until", str(bounds[5]), "--strategy", "finetune",
                     "--epochs", "1", "--out", str(v3)]) == 0
    run3 = json.loads((v3 / "checkpoint" / "run.json").read_text())
    assert run3["parent"]["version"] == run["version"] and run3["data_window"]["since"] == bounds[4]
    assert read_manifest(v3 / "bundle")["parent"] == run["version"]


def test_update_command_errors(tmp_path, capsys):
    from tests.helpers import exit_2_one_line

    missing = tmp_path / "nothing"
    exit_2_one_line(["update", "--model", str(missing), "--data", "synthetic-drift", "--until", "2021-01-01", "--strategy", "replay",
                     "--out", str(tmp_path / "o")], capsys, "no run.json")
    with pytest.raises(SystemExit) as exc:  # argparse refuses an unknown strategy itself
        cli.main(["update", "--model", str(missing), "--data", "synthetic-drift", "--until", "2021-01-01", "--strategy", "magic",
                  "--out", str(tmp_path / "o")])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err
    from recbook.cli.update import update_run

    with pytest.raises(UsageError, match="lora_continue needs the previous update's adapter"):  # the library refuses it too
        update_run(str(missing), "synthetic-drift", "2021-01-01", "lora_continue", str(tmp_path / "o"))


# ------------------------------------------------------------------ the synthetic drift stream
def test_drift_stream_truth_and_determinism():
    a = make_drift_stream(seed=3, n_users=50, n_items=80, n_windows=4, events_per_window=200, change_window=2)
    b = make_drift_stream(seed=3, n_users=50, n_items=80, n_windows=4, events_per_window=200, change_window=2)
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    truth = a.info["drift"]
    assert not truth["stationary"] and truth["change_window"] == 2 and len(truth["window_bounds"]) == 5
    change = truth["change_time"]
    released = a.interactions["item_id"].isin(truth["new_item_ids"])
    assert (a.interactions.loc[released, "timestamp"] >= change).all() and released.any()
    assert a.interactions.groupby("user_id").size().max() <= 40  # nobody beyond half the catalogue
    assert not a.interactions.duplicated(["user_id", "item_id"]).any()  # no repeats
    calm = make_drift_stream(seed=3, n_users=50, n_items=80, n_windows=4, events_per_window=200, change_window=None)
    assert calm.info["drift"]["stationary"] and calm.info["drift"]["new_item_ids"] == [] and calm.name == "synthetic-stationary"


@pytest.mark.parametrize("kwargs, match", [
    ({"change_window": 0}, "change_window"), ({"change_window": 6}, "change_window"), ({"taste_shift": 1.0}, "taste_shift"),
    ({"new_items": -0.1}, "new_items"), ({"genre_boost": -1}, "genre_boost"), ({"n_genres": 1}, "n_genres"),
    ({"events_per_window": 0}, "events_per_window"),
])
def test_drift_stream_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_drift_stream(**kwargs)

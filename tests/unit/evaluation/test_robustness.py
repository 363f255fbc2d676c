"""Robustness (recbook.evaluation.robustness): history/catalogue perturbations, ranking stability, the table, and history dropout."""

import numpy as np
import pandas as pd
import pytest
import torch

from recbook.data import build_item_text, leave_last_out, make_synthetic
from recbook.evaluation.protocol import evaluate, history_for_test, make_eval_set
from recbook.evaluation.robustness import (
    PERTURBATIONS,
    insert_random_item,
    ranking_stability,
    robustness_table,
    truncate_history,
    typo_titles,
    with_text_features,
)
from recbook.models.sequential import SequentialConfig, SequentialRecommender, SequentialScorer


@pytest.fixture(scope="module")
def data():
    ds = make_synthetic(n_users=60, n_items=40)
    return ds, leave_last_out(ds.interactions, drop_short_users=True)


def _model(n_items=40, features="id", text_dim=8, seed=0, **cfg):
    torch.manual_seed(seed)
    text = np.random.default_rng(seed).normal(size=(n_items, text_dim)).astype(np.float32) if features != "id" else None
    config = SequentialConfig(item_features=features, dim=16, layers=1, heads=1, max_len=10, **cfg)
    return SequentialRecommender(n_items, config, text)


class _Stub:
    """A model whose scores are fixed per history length: 1 item -> ranks items 1..6 in that order, otherwise reversed
    except item 2 stays second-best."""

    n_items = 6

    def score_all(self, histories):
        first = np.array([6.0, 5, 4, 3, 2, 1])
        other = np.array([1.0, 5, 2, 3, 4, 6])
        return np.stack([first if len(h) == 1 else other for h in histories])


# ------------------------------------------------------------- insert / truncate
def test_insert_random_item_adds_one_new_item_and_keeps_the_order():
    history = np.array([5, 3, 9, 1])
    for seed in range(20):
        out = insert_random_item(history, 12, np.random.default_rng(seed), exclude=[7])
        assert len(out) == len(history) + 1 and out.dtype == np.int64
        pos = next(i for i in range(len(out)) if i == len(history) or out[i] != history[i])
        assert np.array_equal(np.delete(out, pos), history)  # every original item, in order
        assert out[pos] not in history and out[pos] != 7 and 1 <= out[pos] <= 12
    again = [insert_random_item(history, 12, np.random.default_rng(3)) for _ in range(2)]
    assert np.array_equal(*again)  # deterministic given the generator
    assert insert_random_item(history, 12, np.random.default_rng(0), within_last=1)[:-1].tolist() == history.tolist()  # appended
    tail = [np.flatnonzero(~np.isin(insert_random_item(history, 12, np.random.default_rng(s), within_last=2), history))[0] for s in range(20)]
    assert set(tail) <= {3, 4}  # the new item lands among the last two
    assert insert_random_item(np.array([], dtype=np.int64), 3, np.random.default_rng(0)).shape == (1,)


def test_insert_random_item_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="no item left"):
        insert_random_item(np.array([1, 2]), 3, rng, exclude=[3])
    with pytest.raises(ValueError, match="n_items"):
        insert_random_item(np.array([1]), 0, rng)
    with pytest.raises(ValueError, match="history"):
        insert_random_item(np.array([0, 2]), 5, rng)  # 0 is padding, not an item
    with pytest.raises(ValueError, match="history"):
        insert_random_item(np.array([6]), 5, rng)
    with pytest.raises(ValueError, match="history"):
        insert_random_item(np.array([[1, 2]]), 5, rng)
    with pytest.raises(ValueError, match="rng"):
        insert_random_item(np.array([1]), 5, 0)
    with pytest.raises(ValueError, match="within_last"):
        insert_random_item(np.array([1]), 5, rng, within_last=0)


def test_truncate_history_keeps_the_most_recent_items():
    h = np.array([4, 8, 15, 16, 23, 42])
    assert truncate_history(h, 2).tolist() == [23, 42]
    assert truncate_history(h, 10).tolist() == h.tolist()
    out = truncate_history(h, 3)
    out[0] = 99
    assert h[3] == 16  # a copy, not a view
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="keep"):
            truncate_history(h, bad)
    with pytest.raises(ValueError, match="history"):
        truncate_history(np.array([1.5, 2.0]), 1)


# ------------------------------------------------------------------- typos
def test_typo_titles_is_deterministic_and_rebuilds_the_text(data):
    ds, _ = data
    a = typo_titles(ds.items, 0.3, np.random.default_rng(1))
    b = typo_titles(ds.items, 0.3, np.random.default_rng(1))
    pd.testing.assert_frame_equal(a, b)
    assert not a["title"].equals(typo_titles(ds.items, 0.3, np.random.default_rng(2))["title"])
    changed = a["title"] != ds.items["title"]
    assert 0 < changed.mean() < 1
    for (_, row), title in zip(ds.items[changed].iterrows(), a.loc[changed, "title"]):
        assert title.split(" ") != row["title"].split(" ") and len(title.split(" ")) == len(row["title"].split(" "))
        assert a.loc[row.name, "text"] == build_item_text(title, row["year"], row["genres"], row["description"])
    pd.testing.assert_frame_equal(a.drop(columns=["title", "text"]), ds.items.drop(columns=["title", "text"]))
    assert ds.items["text"].iloc[0].startswith(ds.items["title"].iloc[0])  # input untouched
    all_words = typo_titles(ds.items, 1.0, np.random.default_rng(0))
    assert (all_words["title"] != ds.items["title"]).all()


def test_typo_titles_rate_zero_is_an_identical_copy(data):
    ds, _ = data
    out = typo_titles(ds.items, 0.0, np.random.default_rng(0))
    pd.testing.assert_frame_equal(out, ds.items)
    assert out is not ds.items


def test_typo_titles_movielens_style_and_custom_texts():
    items = pd.DataFrame({"item_id": [1, 2, 3], "title": ["GoldenEye", "Seven (Se7en)", "Toy Story"],
                          "genres": ["Action", "", "Animation|Comedy"], "year": pd.array([1995, pd.NA, 1995], dtype="Int64")})
    items["text"] = [build_item_text(t, None if pd.isna(y) else int(y), g) for t, y, g in zip(items["title"], items["year"], items["genres"])]
    out = typo_titles(items, 1.0, np.random.default_rng(0))
    for t, y, g, text in zip(out["title"], items["year"], items["genres"], out["text"]):
        assert text == build_item_text(t, None if pd.isna(y) else int(y), g)  # no description column, missing year
    custom = items.assign(text=items["title"] + ". director: Someone.")  # not build_item_text's shape: the title prefix is replaced
    out = typo_titles(custom, 1.0, np.random.default_rng(0))
    assert (out["text"] == out["title"] + ". director: Someone.").all()
    with pytest.raises(ValueError, match="does not start with its title"):
        typo_titles(items.assign(text="something else"), 1.0, np.random.default_rng(0))


def test_typo_titles_errors(data):
    ds, _ = data
    for bad in (-0.1, 1.5, "0.2", None):
        with pytest.raises(ValueError, match="rate"):
            typo_titles(ds.items, bad, np.random.default_rng(0))
    with pytest.raises(ValueError, match="items_df"):
        typo_titles(ds.items.drop(columns=["title"]), 0.1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="rng"):
        typo_titles(ds.items, 0.1, 42)


# ----------------------------------------------------------- text features
def test_with_text_features_replaces_only_the_frozen_buffer():
    model = _model(features="hybrid")
    before = model.text_features.clone()
    new = np.random.default_rng(5).normal(size=(40, 8)).astype(np.float32)
    copy = with_text_features(model, new)
    assert torch.equal(model.text_features, before)  # the original is untouched
    assert torch.allclose(copy.text_features[1:41], torch.from_numpy(new))
    assert copy.text_features[0].abs().sum() == 0 and copy.text_features[41].abs().sum() == 0  # padding / [MASK] rows stay
    for (name, p), (_, q) in zip(model.named_parameters(), copy.named_parameters()):
        assert torch.equal(p, q), name
    h = [np.array([1, 2, 3])]
    assert not np.allclose(model.score_all(h), copy.score_all(h))
    same = with_text_features(model, before[1:41].numpy())
    assert np.allclose(model.score_all(h), same.score_all(h))


def test_with_text_features_errors():
    with pytest.raises(ValueError, match="ID-only"):
        with_text_features(_model(features="id"), np.zeros((40, 8)))
    with pytest.raises(ValueError, match="shape"):
        with_text_features(_model(features="text"), np.zeros((40, 4)))
    with pytest.raises(ValueError, match="shape"):
        with_text_features(_model(features="text"), np.zeros((39, 8)))
    with pytest.raises(ValueError, match="NaN"):
        with_text_features(_model(features="text"), np.full((40, 8), np.nan))
    with pytest.raises(ValueError, match="SequentialRecommender"):
        with_text_features(object(), np.zeros((40, 8)))


# ------------------------------------------------------------------ stability
def test_unperturbed_history_is_perfectly_stable_and_matches_full_evaluation(data):
    ds, split = data
    model = _model()
    item_col = pd.Series(np.arange(ds.n_items), index=ds.item_ids)
    from recbook.data.windows import user_sequences

    seqs = user_sequences(history_for_test(split), item_col)
    users = split.test["user_id"].to_numpy()
    histories = [seqs[u] for u in users]
    held = item_col.loc[split.test["item_id"]].to_numpy() + 1
    res = ranking_stability(model, histories, [h.copy() for h in histories], held, users=users, n_boot=200)
    assert (res.per_user["overlap"] == 1.0).all() and res.overlap.mean == 1.0
    assert res.change.diff.mean == 0 and not res.change.significant
    assert res.verdict().startswith("unchanged")
    full = evaluate(SequentialScorer(model, ds.item_ids, history_for_test(split)), make_eval_set(ds, split, "test", n_negatives=5), "full", per_user=True)
    assert np.allclose(res.per_user["ndcg_before"].to_numpy(), full["per_user"]["NDCG@10"].reindex(users).to_numpy())
    row = res.as_row()
    assert row["top-10 overlap"] == 1.0 and row["users"] == len(users)


def test_ranking_stability_counts_overlap_on_the_same_candidates():
    # before: history [1] -> scores rank 1,2,3,4,5,6; item 1 is seen: top-2 = {2, 3}
    # after: history [1, 6] (inserted 6, now seen too) -> ranks 6,2,5,4,3,1; top-2 without 1 and 6 = {2, 5}
    # the before ranking also excludes 6 (same candidates): still {2, 3} -> overlap 1/2
    res = ranking_stability(_Stub(), [np.array([1])], [np.array([1, 6])], np.array([3]), k=2, n_boot=100)
    assert res.per_user["overlap"].tolist() == [0.5]
    assert res.per_user["ndcg_before"].iloc[0] == pytest.approx(1 / np.log2(3))  # held-out 3 second
    assert res.per_user["ndcg_after"].iloc[0] == 0.0  # now 4th of {2, 5, 4, 3}
    stub = _Stub()
    res = ranking_stability(stub, [np.array([1])], None, np.array([3]), k=2, perturbed_model=stub, n_boot=100)
    assert res.per_user["overlap"].tolist() == [1.0]


def test_ranking_stability_errors():
    stub, h = _Stub(), [np.array([1])]
    with pytest.raises(ValueError, match="one history per user"):
        ranking_stability(stub, h, [np.array([1]), np.array([2])], np.array([3]), k=2)
    with pytest.raises(ValueError, match="heldout"):
        ranking_stability(stub, h, h, np.array([3, 4]), k=2)
    with pytest.raises(ValueError, match="heldout"):
        ranking_stability(stub, h, h, np.array([7]), k=2)
    with pytest.raises(ValueError, match="k=7"):
        ranking_stability(stub, h, h, np.array([3]), k=7)
    with pytest.raises(ValueError, match="k must"):
        ranking_stability(stub, h, h, np.array([3]), k=0)
    with pytest.raises(ValueError, match="list of 1-D histories"):
        ranking_stability(stub, np.array([1, 2]), h, np.array([3]), k=2)
    with pytest.raises(ValueError, match="perturbed_histories, perturbed_model"):
        ranking_stability(stub, h, None, np.array([3]), k=2)
    with pytest.raises(ValueError, match="empty"):
        ranking_stability(stub, [], [], np.array([], dtype=int), k=2)
    with pytest.raises(ValueError, match="histories\\[0\\]"):
        ranking_stability(stub, [np.array([9])], h, np.array([3]), k=2)
    with pytest.raises(ValueError, match="score_all"):
        ranking_stability(object(), h, h, np.array([3]), k=2)
    with pytest.raises(ValueError, match="users"):
        ranking_stability(stub, h, h, np.array([3]), k=2, users=[1, 2])


# --------------------------------------------------------------------- table
def test_robustness_table_rows_columns_and_the_id_model_under_typos(data):
    ds, split = data
    models = {"id": _model(), "hybrid": _model(features="hybrid", seed=1)}
    calls = []

    def features(typo_ds):
        calls.append(typo_ds)
        return np.random.default_rng(9).normal(size=(ds.n_items, 8)).astype(np.float32)

    table = robustness_table(models, ds, split, n_users=30, truncate_to=3, typo_rate=0.5, typo_features=features, n_boot=200)
    assert len(table) == 2 * len(PERTURBATIONS) and table["users"].eq(30).all()
    for col in ("model", "perturbation", "top-10 overlap", "overlap low", "overlap high", "NDCG@10 before", "NDCG@10 after",
                "change", "change low", "change high", "p", "verdict"):
        assert col in table.columns, col
    assert len(calls) == 1 and (calls[0].items["title"] != ds.items["title"]).any()  # one typo'd catalogue for all models
    typo = table[table["perturbation"].str.startswith("title typos")].set_index("model")
    assert typo.loc["id", "top-10 overlap"] == 1.0 and typo.loc["id", "change"] == 0 and "by construction" in typo.loc["id", "verdict"]
    assert typo.loc["hybrid", "top-10 overlap"] < 1.0  # new text features move the hybrid's ranking
    assert ((table["overlap low"] <= table["top-10 overlap"]) & (table["top-10 overlap"] <= table["overlap high"])).all()
    again = robustness_table(models, ds, split, n_users=30, truncate_to=3, typo_rate=0.5, typo_features=features, n_boot=200)
    pd.testing.assert_frame_equal(table, again)  # seeded
    only = robustness_table({"hybrid": models["hybrid"]}, ds, split, n_users=10, perturbations=("truncate",), n_boot=200)
    assert len(only) == 1 and len(calls) == 2  # no text needed without the typo perturbation


def test_robustness_table_errors(data):
    ds, split = data
    with pytest.raises(ValueError, match="models"):
        robustness_table({}, ds, split)
    with pytest.raises(ValueError, match="perturbations"):
        robustness_table({"id": _model()}, ds, split, perturbations=("shuffle",))
    with pytest.raises(ValueError, match="models\\['small'\\]"):
        robustness_table({"small": _model(n_items=10)}, ds, split)
    with pytest.raises(ValueError, match="truncate_to"):
        robustness_table({"id": _model()}, ds, split, truncate_to=0)
    with pytest.raises(ValueError, match="n_users"):
        robustness_table({"id": _model()}, ds, split, n_users=0)


# ------------------------------------------------------------- history dropout
def _batch(objective="causal"):
    g = torch.Generator().manual_seed(0)
    seq = torch.randint(1, 41, (8, 11), generator=g)
    seq[:3, :4] = 0  # left padding
    seq[3, :9] = 0  # a short window
    if objective == "causal":
        return {"input": seq[:, :-1], "target": seq[:, 1:]}
    return {"input": seq[:, 1:]}


def test_history_dropout_is_validated():
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="history_dropout"):
            SequentialConfig(history_dropout=bad)
    assert SequentialConfig().history_dropout == 0.0


@pytest.mark.parametrize("objective", ["causal", "cloze"])
def test_history_dropout_zero_is_the_old_loss_and_positive_changes_it_in_training_only(objective):
    batch = _batch(objective)
    base = _model(objective=objective, dropout=0.1)
    off = _model(objective=objective, dropout=0.1, history_dropout=0.0)
    on = _model(objective=objective, dropout=0.1, history_dropout=0.5)
    on.load_state_dict(base.state_dict())
    losses = []
    for m in (base, off, on):
        m.train()
        torch.manual_seed(3)
        losses.append(m.training_loss(batch))
    assert torch.equal(losses[0], losses[1])  # 0 = exactly the previous behaviour (same random draws)
    assert not torch.isclose(losses[0], losses[2])
    base.eval(), on.eval()
    torch.manual_seed(3)
    a = base.training_loss(batch)
    torch.manual_seed(3)
    assert torch.equal(a, on.training_loss(batch))  # no dropout of the history in eval mode


def test_history_dropout_blanks_inputs_keeps_targets_and_the_last_item():
    batch = _batch("causal")
    model = _model(history_dropout=0.9).train()
    seen = {}
    encode = model.encode

    def spy(seq, table=None):
        seen["inputs"] = seq.clone()
        return encode(seq, table)

    model.encode = spy
    torch.manual_seed(0)
    loss = model.training_loss(batch)
    assert torch.isfinite(loss)
    inputs, original = seen["inputs"], batch["input"]
    assert ((inputs == original) | (inputs == 0)).all()  # items are only blanked, never changed
    assert (inputs == 0).sum() > (original == 0).sum()  # some were blanked
    assert (inputs[:, -1] == original[:, -1]).all()  # each window keeps its most recent item
    assert ((inputs != 0).sum(dim=1) >= 1).all()

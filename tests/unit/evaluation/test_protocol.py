import numpy as np
import pandas as pd
import pytest

from recbook.data import leave_last_out
from recbook.evaluation import protocol as evaluate
from recbook.models.itemknn import ItemKNN
from recbook.models.popularity import Popularity


@pytest.fixture(scope="module")
def es(synthetic):
    return evaluate.make_eval_set(synthetic, stage="test", n_negatives=30, seed=0)


def test_eval_set_contents(synthetic, es):
    assert es.negatives.shape == (synthetic.n_users, 30)
    pos = synthetic.interactions.groupby("user_id")["item_id"].agg(set)
    assert all(not set(row) & pos[u] for u, row in zip(es.heldout.user_id, es.negatives))
    sp = leave_last_out(synthetic.interactions)
    assert len(es.history) == len(sp.train) + len(sp.valid)
    valid = evaluate.make_eval_set(synthetic, sp, stage="valid", n_negatives=5, n_users=10, seed=1)
    assert len(valid.heldout) == 10 and len(valid.history) == len(sp.train)
    assert "valid item of 10 users" in valid.description
    with pytest.raises(ValueError, match="stage"):
        evaluate.make_eval_set(synthetic, stage="train")


def test_eval_user_subsets_nest_with_the_same_negatives(synthetic, es):
    sp = leave_last_out(synthetic.interactions)
    small = evaluate.make_eval_set(synthetic, sp, "test", 30, n_users=50, seed=0)
    large = evaluate.make_eval_set(synthetic, sp, "test", 30, n_users=100, seed=0)
    rows = pd.Index(large.heldout.user_id).get_indexer(small.heldout.user_id)
    assert len(small.heldout) == 50 and (rows >= 0).all()  # the 50 users are among the 100
    np.testing.assert_array_equal(small.negatives, large.negatives[rows])
    everyone = pd.Index(es.heldout.user_id).get_indexer(small.heldout.user_id)  # and the same as with all users
    np.testing.assert_array_equal(small.negatives, es.negatives[everyone])


def test_evaluate_protocols(synthetic, es):
    pop = Popularity().fit_interactions(es.history, es.all_items).scorer(es.history)
    sampled = evaluate.evaluate(pop, es, "sampled")
    full = evaluate.evaluate(pop, es, "full")
    assert "sampled" in sampled["protocol"] and "leave-last-out" in sampled["protocol"]
    assert sampled["HR@10"] > full["HR@10"]
    with pytest.raises(ValueError, match="protocol"):
        evaluate.evaluate(pop, es, "approximate")


def test_cascade_with_perfect_reranker_and_counts_calls(synthetic, es):
    knn = ItemKNN().fit_interactions(es.history, es.all_items).scorer(es.history)
    target = dict(zip(es.heldout.user_id, es.heldout.item_id))
    calls = []

    def oracle(users, items):
        calls.append(items.shape)
        return (items == np.array([target[u] for u in users])[:, None]).astype(float)

    retriever_only = evaluate.evaluate(knn, es, "full")
    both = evaluate.evaluate(evaluate.cascade(knn, oracle, top_n=20, exclude=es.history), es, "full")
    assert all(shape[1] == 20 for shape in calls)  # the reranker only sees the top-20
    # a perfect reranker turns "in the retriever's top-20" into "rank 1"
    assert both["HR@10"] == pytest.approx(evaluate.evaluate(knn, es, "full", k=20)["HR@20"])
    assert both["NDCG@10"] > retriever_only["NDCG@10"]


def test_cascade_with_constant_reranker_keeps_no_position_bonus(es):
    flat = evaluate.cascade(lambda u, i: np.zeros(i.shape), lambda u, i: np.zeros(i.shape), top_n=10)
    res = evaluate.evaluate(flat, es, "sampled")
    assert res["HR@10"] == pytest.approx(10 / 31, abs=0.08)
    with pytest.raises(ValueError, match="top_n"):
        evaluate.cascade(flat, flat, top_n=0)


def test_user_subset_is_seeded_nested_and_keeps_order():
    import pandas as pd

    heldout = pd.DataFrame({"user_id": np.arange(50), "item_id": np.arange(50) + 100})
    small, large = evaluate.user_subset(heldout, 10, seed=3), evaluate.user_subset(heldout, 30, seed=3)
    assert len(small) == 10 and small["user_id"].is_monotonic_increasing  # original order kept
    assert set(small["user_id"]) <= set(large["user_id"])  # smaller subsets nest in larger ones
    assert small.equals(evaluate.user_subset(heldout, 10, seed=3)) and not small.equals(evaluate.user_subset(heldout, 10, seed=4))
    assert evaluate.user_subset(heldout, None) is heldout and evaluate.user_subset(heldout, 50) is heldout

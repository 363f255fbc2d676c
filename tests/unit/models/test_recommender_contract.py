"""Every registered model answers the one contract of recbook.models.base: fit → score → score_all → save_pretrained →
from_pretrained → the same scores (to 1e-6) — and a new model is one file plus one registry line."""

import json
from dataclasses import dataclass

import numpy as np
import pytest

from recbook.data import leave_last_out, make_synthetic
from recbook.data.splits import history_for_test
from recbook.evaluation.protocol import evaluate, make_eval_set
from recbook.models import MODEL_NAMES, create, model_class
from recbook.models.base import Histories, HistoryScorer, ModelConfig, Recommender


@pytest.fixture(scope="module")
def data():
    ds = make_synthetic(seed=0, n_users=80, n_items=50)
    return ds, leave_last_out(ds.interactions, drop_short_users=True)


def _small(name, tiny_backbone) -> dict:
    if name in ("sasrec", "bert4rec"):
        return {"epochs": 2, "dim": 16, "layers": 1, "heads": 1, "patience": None}
    if name == "lmrec":
        return {"epochs": 2, "dim": 16, "layers": 1, "heads": 1, "patience": None, "backbone": str(tiny_backbone), "lm_steps": 2,
                "lm_batch_size": 8, "refit": False}
    if name == "mf":
        return {"epochs": 2, "dim": 8}
    if name in ("cross-encoder", "two-tower"):
        return {"backbone": str(tiny_backbone), "max_steps": 2, "batch_size": 8, "max_length": 48}
    return {}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_registered_model_answers_the_contract(name, data, tiny_backbone, tmp_path):
    ds, split = data
    model = create(name, **_small(name, tiny_backbone))
    assert isinstance(model, Recommender) and model.model_type == name
    assert model.fit(ds, split) is model
    histories = Histories.from_interactions(history_for_test(split)).subset(np.arange(4))
    items = np.tile(ds.item_ids[:6], (4, 1))
    scores = model.score(histories, items)
    assert scores.shape == (4, 6) and np.isfinite(scores).all()
    full = model.score_all(histories.subset([0]))
    assert full.shape == (1, ds.n_items)
    np.testing.assert_allclose(full[0, model.item_columns(items[0])], scores[0], atol=1e-5)
    config = model.get_config()
    json.dumps(config)  # plain JSON values only
    folder = model.save_pretrained(tmp_path / name)
    assert json.loads((folder / "config.json").read_text())["model"] == name
    assert not list(folder.rglob("*.pkl")) and not list(folder.rglob("*.bin"))  # safetensors, never pickle
    again = Recommender.from_pretrained(folder)
    assert type(again) is type(model) and again.get_config() == config
    np.testing.assert_allclose(again.score(histories, items), scores, atol=1e-6)
    assert model_class(name).from_pretrained(folder).model_type == name


def test_one_scorer_for_every_model_caches_rows(data):
    ds, split = data
    model = create("itemknn").fit(ds, split)
    scorer = model.scorer(history_for_test(split))
    assert isinstance(scorer, HistoryScorer)
    es = make_eval_set(ds, split, "test", 9, n_users=10)
    res = evaluate(scorer, es, "full")
    assert 0 <= res["NDCG@10"] <= 1 and len(scorer._cache) == 10


def test_from_pretrained_errors(data, tmp_path):
    ds, split = data
    with pytest.raises(FileNotFoundError, match="save_pretrained"):
        Recommender.from_pretrained(tmp_path / "nothing")
    folder = create("pop").fit(ds, split).save_pretrained(tmp_path / "pop")
    with pytest.raises(ValueError, match="holds a 'pop' model, not 'ease'"):
        model_class("ease").from_pretrained(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        Recommender.from_pretrained(folder)


# ------------------------------------------------------------------ the README's example: a new model in ~30 lines
@dataclass
class RecentConfig(ModelConfig):
    decay: float = 0.5  # weight of an item k steps back: decay ** k


class RecentCoOccurrence(Recommender):
    """Items that co-occur with the user's most recent items, the latest counting most."""

    model_type = "recent"
    name = "recent co-occurrence"
    config_class = RecentConfig

    def fit(self, dataset, split, progress=False):
        from recbook.models.base import history_matrix

        self.item_ids = np.asarray(dataset.item_ids)
        X = history_matrix(self, Histories.from_interactions(history_for_test(split)))
        self.co = (X.T @ X).toarray()
        np.fill_diagonal(self.co, 0)
        return self

    def score_all(self, histories):
        out = np.zeros((len(histories), self.n_items))
        for r, items in enumerate(histories.items):
            cols = self.item_columns(items[::-1])
            for k, c in enumerate(cols[cols >= 0]):
                out[r] += self.config.decay ** k * self.co[c]
        return out

    def state(self):
        return {"co": self.co}

    def load_state(self, arrays, folder):
        self.co = arrays["co"]


def test_a_new_model_is_one_class_and_one_registry_line(data, tmp_path, monkeypatch):
    from recbook import models

    monkeypatch.setitem(models.MODELS, "recent", models.ModelSpec("recent", "x:y", "example"))
    monkeypatch.setattr(models.ModelSpec, "load_class", lambda self: RecentCoOccurrence if self.name == "recent" else
                        getattr(__import__(f"recbook.models.{self.cls.split(':')[0]}", fromlist=["x"]), self.cls.split(":")[1]))
    ds, split = data
    model = create("recent", decay=0.3).fit(ds, split)
    es = make_eval_set(ds, split, "test", 9)
    res = evaluate(model.scorer(es.history), es, "full")
    pop = evaluate(create("pop").fit(ds, split).scorer(es.history), es, "full")
    assert res["NDCG@10"] > pop["NDCG@10"] * 0.5  # a sensible model, scored by the same evaluation as every other
    again = Recommender.from_pretrained(model.save_pretrained(tmp_path / "recent"))
    h = Histories.from_interactions(es.history).subset([0, 1])
    np.testing.assert_allclose(again.score_all(h), model.score_all(h))


def test_validation_during_fine_tuning_gets_the_recommender(data, tiny_backbone):
    """evaluate_fn is called with the recommender holding the network being trained (so it can use .scorer), and the
    two-tower's cached item vectors are recomputed for every validation."""
    ds, split = data
    seen = []

    def evaluate_fn(model):
        seen.append((type(model).__name__, model.item_vectors().copy()))
        return {"NDCG@10": float(len(seen))}

    model = create("two-tower", backbone=str(tiny_backbone), max_steps=3, batch_size=8, max_length=48, eval_every=1, lr=1e-2)
    model.fit(ds, split, evaluate_fn=evaluate_fn)
    assert [name for name, _ in seen] == ["TwoTowerRecommender"] * 3
    assert not np.allclose(seen[0][1], seen[-1][1])  # not a stale cache from the first validation


def test_history_scorer_counts_the_pairs_a_reranking_model_scores(data, tiny_backbone):
    ds, split = data
    model = create("cross-encoder", backbone=str(tiny_backbone), max_steps=1, batch_size=8, max_length=48).fit(ds, split)
    scorer = model.scorer(history_for_test(split))
    users = split.test["user_id"].to_numpy()[:3]
    scorer(users, np.tile(ds.item_ids[:5], (3, 1)))
    assert scorer.pairs_scored == 15

"""The content-keyed cache of trained models (recbook.runs.cache): the same model on the same data is fitted once and loaded
after; anything that matters changes the key; a damaged entry is refitted; a cached run is what the commands read."""

import dataclasses
import json

import numpy as np
import pytest

from recbook.models.mf import MatrixFactorization
from recbook.runs.cache import cached_fit, cached_run, data_fingerprint, model_key


@pytest.fixture
def data(tiny_profile):
    from recbook.runs.recipe import prepare_data

    return prepare_data("synthetic", tiny_profile, 0)


def _count_fits(monkeypatch):
    calls = []
    original = MatrixFactorization.fit

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MatrixFactorization, "fit", counting)
    return calls


def test_the_second_call_loads_what_the_first_fitted(data, tiny_profile, tmp_path, monkeypatch):
    ds, split = data
    calls = _count_fits(monkeypatch)
    first, info1 = cached_fit("mf", ds, split, tiny_profile, cache_dir=tmp_path, seed=0)
    second, info2 = cached_fit("mf", ds, split, tiny_profile, cache_dir=tmp_path, seed=0)
    assert len(calls) == 1 and info1["cache"] == "trained now" and info2["cache"] == "hit" and info1["folder"] == info2["folder"]
    assert info2["train_seconds"] == info1["train_seconds"]
    from recbook.models.base import Histories

    histories = Histories.from_interactions(split.train, users=split.test["user_id"].to_numpy()[:5])
    np.testing.assert_allclose(second.score_all(histories), first.score_all(histories), rtol=1e-6)
    # another seed, another setting: another key and another fit
    cached_fit("mf", ds, split, tiny_profile, cache_dir=tmp_path, seed=1)
    cached_fit("mf", ds, split, tiny_profile, cache_dir=tmp_path, seed=0, weight_decay=0.5)
    assert len(calls) == 3
    # reuse=False fits again (a chapter that teaches the fit) and leaves its model for the next caller
    _, again = cached_fit("mf", ds, split, tiny_profile, cache_dir=tmp_path, seed=0, reuse=False)
    _, after = cached_fit("mf", ds, split, tiny_profile, cache_dir=tmp_path, seed=0)
    assert len(calls) == 4 and again["cache"] == "trained now" and after["cache"] == "hit" and after["fit_id"] == again["fit_id"]
    assert again["fit_id"] != info1["fit_id"]  # the entry now holds the new fit, not the first one


def test_the_key_follows_the_data_and_the_split(data, tiny_profile):
    from recbook.models import create

    ds, split = data
    config = create("mf", tiny_profile).config
    key = model_key("mf", config, ds, split)
    assert key.startswith("mf-") and key == model_key("mf", config, ds, split)
    assert model_key("mf", {"dim": 1}, ds, split) != key and model_key("itemknn", config, ds, split) != key
    changed = ds.interactions.copy()
    changed.loc[changed.index[0], "timestamp"] += 1
    assert data_fingerprint(dataclasses.replace(ds, interactions=changed), split) != data_fingerprint(ds, split)
    items = ds.items.copy()
    items.loc[items.index[0], "text"] += " (director's cut)"
    assert data_fingerprint(dataclasses.replace(ds, items=items), split) != data_fingerprint(ds, split)
    moved = type(split)(split.train.iloc[1:], split.valid, split.test)
    assert data_fingerprint(ds, moved) != data_fingerprint(ds, split)


def test_a_damaged_entry_is_refitted(data, tiny_profile, tmp_path, monkeypatch):
    ds, split = data
    calls = _count_fits(monkeypatch)
    _, info = cached_fit("mf", ds, split, tiny_profile, cache_dir=tmp_path)
    from pathlib import Path

    (Path(info["folder"]) / "model.safetensors").write_bytes(b"not a model")
    model, again = cached_fit("mf", ds, split, tiny_profile, cache_dir=tmp_path)
    assert again["cache"] == "trained now" and len(calls) == 2 and model.item_ids is not None


def test_a_cached_run_is_a_run_the_commands_read(tiny_profile, tmp_path, monkeypatch):
    from recbook.runs.recipe import checkpoint_folder, load_trained, prepare_data

    calls = _count_fits(monkeypatch)
    run, info = cached_run("synthetic", "mf", tiny_profile, seed=0, cache_dir=tmp_path)
    again, info2 = cached_run("synthetic", "mf", tiny_profile, seed=0, cache_dir=tmp_path)
    assert run == again and len(calls) == 1 and info2["cache"] == "hit"
    # a refit of the same model (e.g. the chapter that teaches it, reuse=False) rebuilds the run from the new fit
    cached_fit("mf", *prepare_data("synthetic", tiny_profile, 0), tiny_profile, cache_dir=tmp_path, seed=0, reuse=False)
    rebuilt, info3 = cached_run("synthetic", "mf", tiny_profile, seed=0, cache_dir=tmp_path)
    assert rebuilt == run and info3["fit_id"] != info["fit_id"] and len(calls) == 2
    folder, record = checkpoint_folder(run)
    assert record["cache_fit_id"] == info3["fit_id"]
    assert record["model"] == "mf" and record["data"] == "synthetic" and record["split"] == "leave-last-out"
    assert load_trained(folder, record).model_type == "mf"
    assert json.loads((folder / "run.json").read_text())["seed"] == 0

"""Small public helpers the bigger tests only reach indirectly, each checked on its own: the values, the edges and the
errors a caller would meet."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from recbook.errors import ConfigError


def test_history_token_budget_keeps_the_candidates_share_and_at_least_one_token():
    from recbook.data.text import CANDIDATE_RESERVE, history_token_budget

    assert history_token_budget(80) == 80 - CANDIDATE_RESERVE
    assert history_token_budget(CANDIDATE_RESERVE) == 1 and history_token_budget(1) == 1  # never zero or negative
    assert history_token_budget(np.int64(96)) == 96 - CANDIDATE_RESERVE


def test_positive_int_accepts_integers_and_names_the_field_otherwise():
    from recbook.errors import positive_int

    assert positive_int(3, "epochs") == 3 and isinstance(positive_int(np.int32(3), "epochs"), int)
    assert positive_int(0, "negatives", minimum=0) == 0
    for bad in (0, -1, 2.0, "3", True, None):
        with pytest.raises(ConfigError, match="epochs must be a positive integer") as info:
            positive_int(bad, "epochs")
        assert info.value.field == "epochs"
    with pytest.raises(ConfigError, match="max_len must be an integer >= 2, got 1"):
        positive_int(1, "max_len", minimum=2)


def test_build_config_merges_overrides_and_refuses_unknown_fields():
    from recbook.models.base import build_config
    from recbook.models.mf import MFConfig

    assert build_config(MFConfig) == MFConfig()
    assert build_config(MFConfig, {"dim": 8}, epochs=3) == MFConfig(dim=8, epochs=3)
    base = MFConfig(dim=8)
    assert build_config(MFConfig, base) is base and build_config(MFConfig, base, lr=0.1) == MFConfig(dim=8, lr=0.1)
    with pytest.raises(ConfigError, match="MFConfig has no field 'dims'") as info:
        build_config(MFConfig, {"dims": 8})
    assert info.value.field == "dims"
    with pytest.raises(ConfigError, match="expected a MFConfig or a dict, got list"):
        build_config(MFConfig, [8])


def test_config_fields_lists_a_models_hyperparameters():
    from recbook.models import config_fields

    assert {"dim", "epochs", "lr", "weight_decay", "seed"} <= config_fields("mf")
    assert "neighbours" in config_fields("itemknn") and "l2" in config_fields("ease")


def test_gather_scores_picks_columns_and_puts_unknown_items_below_every_known_one():
    from recbook.models.base import gather_scores

    full = np.array([[0.5, -2.0, 3.0], [1.0, 2.0, 0.0]])
    cols = np.array([[2, 0], [1, -1]])
    out = gather_scores(full, cols)
    np.testing.assert_array_equal(out[0], [3.0, 0.5])
    assert out[1, 0] == 2.0 and out[1, 1] == -1.0  # row minimum 0 − 1
    negative = gather_scores(np.array([[-5.0, -3.0]]), np.array([[-1, 1]]))
    assert negative[0, 0] == -6.0 < negative[0, 1]  # below the lowest known score, never a 0 above them


def test_check_interactions_names_the_missing_columns_and_refuses_an_empty_table():
    from recbook.models.popularity import check_interactions

    ok = pd.DataFrame({"user_id": [1], "item_id": [2]})
    assert check_interactions(ok) is ok
    with pytest.raises(ValueError, match=r"missing \['item_id'\]"):
        check_interactions(pd.DataFrame({"user_id": [1]}))
    with pytest.raises(ValueError, match="interactions are empty"):
        check_interactions(ok.iloc[:0])


def test_ranking_metrics_agree_with_the_single_metrics():
    from recbook.evaluation.metrics import hit_rate_at_k, mean_auc, mrr, ndcg_at_k, ranking_metrics

    rng = np.random.default_rng(0)
    y_true = np.zeros((20, 30))
    y_true[np.arange(20), rng.integers(0, 30, 20)] = 1
    y_score = rng.normal(size=(20, 30))
    got = ranking_metrics(y_true, y_score, k=5)
    assert set(got) == {"HR@5", "NDCG@5", "MRR", "AUC"}
    assert got["HR@5"] == hit_rate_at_k(y_true, y_score, 5) and got["NDCG@5"] == ndcg_at_k(y_true, y_score, 5)
    assert got["MRR"] == mrr(y_true, y_score) and got["AUC"] == mean_auc(y_true, y_score)


def test_catalogue_fingerprint_and_check_catalogue_refuse_another_catalogue(synthetic):
    from recbook.runs.recipe import catalogue_fingerprint, check_catalogue

    ds = synthetic
    fp = catalogue_fingerprint(ds)
    assert fp["n_items"] == ds.n_items and len(fp["item_ids_sha256"]) == 64
    check_catalogue({"data": "synthetic", "catalogue": fp}, ds, "synthetic")  # the same catalogue: no error
    check_catalogue({"data": "synthetic"}, ds, "synthetic")  # an old run.json without a catalogue: accepted
    other = {"n_items": fp["n_items"], "item_ids_sha256": "0" * 64}
    with pytest.raises(ConfigError, match="different catalogue") as info:
        check_catalogue({"data": "synthetic", "catalogue": other}, ds, "elsewhere")
    assert info.value.field == "data"


def test_checkpoint_folder_finds_run_json_in_the_folder_or_its_checkpoint(tmp_path):
    from recbook.runs.recipe import checkpoint_folder

    (tmp_path / "run" / "checkpoint").mkdir(parents=True)
    (tmp_path / "run" / "checkpoint" / "run.json").write_text(json.dumps({"model": "pop"}))
    for given in (tmp_path / "run", tmp_path / "run" / "checkpoint"):
        folder, run = checkpoint_folder(given)
        assert folder == tmp_path / "run" / "checkpoint" and run == {"model": "pop"}
    with pytest.raises(ConfigError, match="no run.json found") as info:
        checkpoint_folder(tmp_path / "empty")
    assert info.value.field == "checkpoint"


def test_read_model_config_names_the_folder_that_is_not_a_model(tmp_path):
    from recbook.models import create
    from recbook.models.base import read_model_config

    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path))):
        read_model_config(tmp_path)
    model = create("pop").fit_interactions(pd.DataFrame({"user_id": [1, 1, 2], "item_id": [5, 6, 5]}), [5, 6, 7])
    folder = model.save_pretrained(tmp_path / "pop")
    meta = read_model_config(folder)
    assert meta["model"] == "pop" and meta["item_ids"] == [5, 6, 7]


def test_subsample_is_seeded_and_keeps_groups_together():
    from recbook.models.cross_encoder import subsample

    frame = pd.DataFrame({"group": np.repeat(np.arange(10), 3), "row": np.arange(30)})
    assert subsample(frame, None, 0) is frame and subsample(frame, 30, 0) is frame
    part = subsample(frame, 9, seed=1, group_size=3)
    assert len(part) == 9 and part.equals(subsample(frame, 9, seed=1, group_size=3))
    assert (part.groupby("group").size() == 3).all()  # whole groups, never a group cut in two
    assert list(part.index) == list(range(9))


def test_examples_needed_is_steps_times_batch_or_none():
    from recbook.models.cross_encoder import examples_needed
    from recbook.profile import PROFILES

    quick = PROFILES["quick"]
    assert examples_needed(quick) == quick.bert_max_steps * quick.batch_size
    assert examples_needed(PROFILES["full"]) is None  # no step budget: every example


def test_key_id_is_short_stable_and_does_not_contain_the_key():
    import hashlib

    from recbook.serve.security import key_id

    key = "abcdef0123456789abcdef"  # hex-looking, so a key leaking into the id would show
    a = key_id(key)
    assert a == hashlib.sha256(key.encode()).hexdigest()[:10] and a == key_id(key) and len(a) == 10 and key[:10] not in a
    assert a != key_id(key[:-1] + "0")


def test_mean_cosine_is_one_for_the_same_directions_and_zero_for_orthogonal_rows():
    from recbook.compress.catalogue import mean_cosine

    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert mean_cosine(a, 3 * a) == pytest.approx(1.0)
    assert mean_cosine(a, a[::-1]) == pytest.approx(0.0)
    assert mean_cosine(a, -a) == pytest.approx(-1.0)


def test_flag_error_speaks_in_the_command_lines_flags():
    from recbook.cli.flags import flag_error

    with_value = flag_error(ConfigError("data", "data='x': expected synthetic", "x"))
    assert str(with_value) == "--data 'x': expected synthetic"
    named = flag_error(ConfigError("cold_fraction", "cold_fraction must be in (0, 1)"))
    assert str(named).startswith("--cold-fraction") and "must be in (0, 1)" in str(named)
    custom = flag_error(ConfigError("model", "unknown model"), {"model": "--retriever"})
    assert str(custom) == "--retriever: unknown model"


def test_model_overrides_set_only_what_the_model_has_and_refuse_what_it_cannot_take():
    from recbook.runs.recipe import model_overrides

    assert model_overrides("sasrec", seed=3) == {"seed": 3}
    assert model_overrides("sasrec", seed=0, item_features="hybrid")["item_features"] == "hybrid"
    assert model_overrides("pop", seed=0, model_name_or_path="some/backbone") == {"seed": 0}  # ignored: pop reads no text
    with pytest.raises(ConfigError, match="applies to") as info:
        model_overrides("sasrec", seed=0, peft="lora")
    assert info.value.value == "lora"


def test_stored_profile_name_reads_a_resolved_profile_or_an_old_name():
    from recbook.runs.recipe import stored_profile_name

    assert stored_profile_name({"profile": {"name": "quick", "n_users": 300}}) == "quick"
    assert stored_profile_name({"profile": "full"}) == "full"
    assert stored_profile_name({}) is None


def test_notebook_name_from_a_name_a_file_or_a_path():
    from recbook_course.release import notebook_name

    for given in ("09_lm_recommender", "09_lm_recommender.ipynb", "notebooks/09_lm_recommender.ipynb",
                  r"C:\course\notebooks\09_lm_recommender.ipynb"):
        assert notebook_name(given) == "09_lm_recommender"


def test_request_bench_markdown_states_the_protocol_and_one_row_per_variant():
    from recbook.compress.request_bench import request_bench_markdown

    assert request_bench_markdown([]) == "(no variants)\n"
    row = {"model": "lmrec", "data": "synthetic", "users": 50, "threads": 1, "rounds": 3, "requests": 20, "baseline": "onnx-fp32",
           "margin": 0.005, "variant": "onnx-int8", "size_mb": 0.5, "ndcg10": 0.1, "ci95": [0.08, 0.12], "ndcg10_diff": -0.001,
           "ndcg10_diff_ci95": [-0.003, 0.001], "top10_overlap": 0.95, "cpu_ms_p50": 0.4, "p99_ms": 0.7, "speedup": 1.1,
           "smaller": 1.4, "verdict": "non-inferior"}
    text = request_bench_markdown([row, {**row, "variant": "fp32", "verdict": "reference"}])
    assert "a lmrec run on synthetic" in text and "fastest fp32 variant (onnx-fp32)" in text and "above -0.005" in text
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(table) == 3 and "| onnx-int8 |" in table[1] and "[0.0800, 0.1200]" in table[1] and "non-inferior" in table[1]

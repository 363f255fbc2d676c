import json

import numpy as np
import pytest

from recbook import cli
from recbook.data import leave_last_out, make_synthetic
from recbook.evaluation.protocol import evaluate, make_eval_set
from recbook.runs.recipe import MODEL_NAMES, fit_recommender


@pytest.fixture(scope="module")
def data(tiny_profile):
    ds = make_synthetic(seed=0, n_users=tiny_profile.n_users, n_items=tiny_profile.n_items)
    return ds, leave_last_out(ds.interactions)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fit_recommender_every_model(name, data, tiny_profile, tiny_backbone):
    ds, sp = data
    fitted = fit_recommender(name, ds, sp, tiny_profile, model_name_or_path=str(tiny_backbone), progress=False, device="cpu")
    es = make_eval_set(ds, sp, "test", 9, n_users=6)
    res = evaluate(fitted.scorer, es, "sampled")
    assert 0 <= res["NDCG@10"] <= 1 and res["users"] == 6
    if name in ("cross-encoder", "two-tower"):
        assert fitted.train_result.steps == tiny_profile.bert_max_steps
        assert any("loss" in h for h in fitted.history)


def test_unknown_model_and_peft_on_a_baseline(data, tiny_profile):
    with pytest.raises(ValueError, match="unknown model"):
        fit_recommender("gpt", *data, tiny_profile)
    with pytest.raises(ValueError, match="applies to cross-encoder or two-tower, not pop"):
        fit_recommender("pop", *data, tiny_profile, peft="lora")


def test_fit_with_lora_merges(data, tiny_profile, tiny_backbone):
    fitted = fit_recommender("two-tower", *data, tiny_profile, model_name_or_path=str(tiny_backbone), progress=False, device="cpu", peft="lora")
    assert not any("lora" in n for n, _ in fitted.model.network.named_parameters())


def test_cli_train_and_evaluate(tmp_path, monkeypatch, tiny_backbone, capsys):
    monkeypatch.setenv("RECBOOK_PROFILE", "quick")
    out = tmp_path / "run"
    assert cli.main(["train", "--data", "synthetic", "--model", "pop", "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("protocol", "HR@10", "NDCG@10", "MRR", "AUC", "train_seconds", "full_ranking", "environment"):
        assert key in metrics
    assert metrics["train_loss"] is None  # popularity has no training loop
    assert (out / "checkpoint" / "model.safetensors").is_file() and (out / "checkpoint" / "config.json").is_file()
    capsys.readouterr()
    assert cli.main(["evaluate", "--checkpoint", str(out)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["NDCG@10"] == pytest.approx(metrics["NDCG@10"])


def test_cli_evaluate_rebuilds_the_stored_profile(tmp_path, monkeypatch, capsys):
    import dataclasses

    from recbook import profile as profiles

    trained = profiles.get_profile("quick", n_users=60, n_items=50, eval_negatives=20)
    monkeypatch.setitem(profiles.PROFILES, "quick", trained)
    monkeypatch.setenv("RECBOOK_PROFILE", "quick")
    out = tmp_path / "pop"
    assert cli.main(["train", "--data", "synthetic", "--model", "pop", "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    run = json.loads((out / "checkpoint" / "run.json").read_text())
    assert run["profile"] == dataclasses.asdict(trained)  # the resolved profile, not a name (or None)
    assert run["catalogue"]["n_items"] == 50 and len(run["catalogue"]["item_ids_sha256"]) == 64
    # another machine: a different default profile, and "quick" means other sizes there
    monkeypatch.setitem(profiles.PROFILES, "quick", profiles.get_profile("quick", n_users=90, n_items=70, eval_negatives=40))
    monkeypatch.setenv("RECBOOK_PROFILE", "full")
    capsys.readouterr()
    assert cli.main(["evaluate", "--checkpoint", str(out)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["NDCG@10"] == pytest.approx(metrics["NDCG@10"]) and again["users"] == metrics["users"] == 60
    assert again["full_ranking"]["NDCG@10"] == pytest.approx(metrics["full_ranking"]["NDCG@10"])
    # an explicit --profile overrides the stored one, with a one-line notice
    monkeypatch.setitem(profiles.PROFILES, "full", dataclasses.replace(trained, name="full", eval_negatives=10))
    assert cli.main(["evaluate", "--checkpoint", str(out), "--profile", "full"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["profile"] == "full" and "10 sampled negatives" in json.loads(captured.out)["protocol"]
    assert captured.err.count("\n") == 1 and "--profile full overrides" in captured.err and "(quick" in captured.err


def test_cli_evaluate_refuses_another_catalogue(tmp_path, capsys, monkeypatch):
    from recbook import profile as profiles

    monkeypatch.setitem(profiles.PROFILES, "quick", profiles.get_profile("quick", eval_negatives=5))

    def shop(name, n_items, shift=0):
        folder = tmp_path / name
        folder.mkdir()
        ds = make_synthetic(seed=1, n_users=15, n_items=n_items)
        ds.interactions.assign(item_id=ds.interactions.item_id + shift)[["user_id", "item_id", "timestamp"]].to_csv(
            folder / "interactions.csv", index=False)
        ds.items.assign(item_id=ds.items.item_id + shift)[["item_id", "title", "genres"]].to_csv(folder / "items.csv", index=False)
        return str(folder)

    trained_on, bigger, renumbered = shop("a", 25), shop("b", 30), shop("c", 25, shift=1000)
    out = tmp_path / "pop"
    assert cli.main(["train", "--data", trained_on, "--model", "pop", "--profile", "quick", "--out", str(out), "--quiet"]) == 0
    assert cli.main(["evaluate", "--checkpoint", str(out), "--data", trained_on]) == 0  # the same catalogue is fine
    for other, n in ((bigger, 30), (renumbered, 25)):  # more items; as many items with other ids
        capsys.readouterr()
        assert cli.main(["evaluate", "--checkpoint", str(out), "--data", other]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "different catalogue" in err
        assert f"{other!r} has a different catalogue ({n} items" in err and f"{trained_on!r}: 25 items" in err


def test_cli_evaluate_reads_an_older_run_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECBOOK_PROFILE", "quick")
    out = tmp_path / "pop"
    assert cli.main(["train", "--data", "synthetic", "--model", "pop", "--out", str(out), "--quiet"]) == 0
    run_json = out / "checkpoint" / "run.json"
    run = json.loads(run_json.read_text())
    run_json.write_text(json.dumps({**{k: v for k, v in run.items() if k != "catalogue"}, "profile": None}))  # as written before
    capsys.readouterr()
    assert cli.main(["evaluate", "--checkpoint", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["profile"] == "quick"


def test_cli_bert_model_on_a_folder(tmp_path, tiny_backbone, capsys, monkeypatch):
    from recbook import profile as profiles

    monkeypatch.setitem(profiles.PROFILES, "quick", profiles.get_profile("quick", batch_size=8, max_length=48, bert_max_steps=2, bert_eval_users=4, eval_negatives=5))
    shop = tmp_path / "shop"
    shop.mkdir()
    ds = make_synthetic(seed=1, n_users=15, n_items=25)
    ds.interactions[["user_id", "item_id", "timestamp"]].to_csv(shop / "interactions.csv", index=False)
    ds.items[["item_id", "title", "genres"]].to_csv(shop / "items.csv", index=False)
    out = tmp_path / "ce"
    rc = cli.main(["train", "--data", str(shop), "--model", "cross-encoder", "--peft", "lora", "--profile", "quick", "--out", str(out),
                   "--backbone", str(tiny_backbone), "--quiet", "--max-steps", "3"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["users"] == 4 and "full_ranking" not in metrics and metrics["peft"] == "lora"
    assert metrics["steps"] == 3  # --max-steps overrides the profile's budget of 2
    assert metrics["train_loss"]["first"] > 0 and metrics["train_loss"]["last"] > 0  # the loop's logged losses
    from recbook.models.base import Recommender

    assert not any("lora" in n for n, _ in Recommender.from_pretrained(out / "checkpoint").network.named_parameters())  # LoRA was merged
    capsys.readouterr()
    assert cli.main(["evaluate", "--checkpoint", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["NDCG@10"] == pytest.approx(metrics["NDCG@10"], abs=1e-6)


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--data", "nowhere", "--model", "pop", "--out", "x"],
        ["train", "--data", "synthetic", "--model", "bert", "--out", "x"],
        ["train", "--data", "synthetic", "--model", "pop"],
        ["train", "--data", "synthetic", "--model", "pop", "--out", "x", "--profile", "huge"],
        ["evaluate", "--checkpoint", "/no/such/run"],
        ["fit"],
        ["train", "--data", "synthetic", "--model", "pop", "--out", "x", "--eval-users", "0"],
        ["train", "--data", "synthetic", "--model", "pop", "--peft", "lora", "--out", "x"],
        ["train", "--data", "synthetic", "--model", "cross-encoder", "--peft", "adapters", "--out", "x"],
        ["train", "--data", "synthetic", "--model", "cross-encoder", "--max-steps", "0", "--out", "x"],
    ],
)
def test_cli_bad_arguments_exit_2(argv, capsys):
    try:
        rc = cli.main(argv)
    except SystemExit as exc:  # argparse's own errors
        rc = exc.code
    assert rc == 2
    assert "error" in capsys.readouterr().err


def test_cli_train_on_data_too_small_for_the_protocol_exits_2_with_the_reason(tmp_path, capsys, monkeypatch):
    """A catalogue of 60 items cannot give 99 evaluation negatives to a user who has seen 20 of them: one line, exit 2."""
    from helpers import exit_2_one_line

    monkeypatch.setenv("RECBOOK_PROFILE", "quick")
    syn = make_synthetic(seed=0, n_users=40, n_items=60)
    syn.interactions[["user_id", "item_id", "timestamp"]].to_csv(tmp_path / "interactions.csv", index=False)
    syn.items[["item_id", "title"]].to_csv(tmp_path / "items.csv", index=False)
    exit_2_one_line(["train", "--data", str(tmp_path), "--model", "pop", "--out", str(tmp_path / "run")], capsys,
                    "cannot sample 99", "user_id")


def test_bert_scorer_picks_the_scorer_for_the_model(data, tiny_profile, tiny_backbone):
    from transformers import AutoModel

    from recbook.evaluation.protocol import history_for_test
    from recbook.models.backbone import load_tokenizer
    from recbook.models.cross_encoder import CrossEncoder, CrossEncoderScorer
    from recbook.models.text_base import bert_scorer
    from recbook.models.two_tower import TwoTower, TwoTowerScorer

    ds, sp = data
    tok = load_tokenizer(tiny_backbone)
    for cls, scorer_cls in ((CrossEncoder, CrossEncoderScorer), (TwoTower, TwoTowerScorer)):
        scorer = bert_scorer(cls(AutoModel.from_pretrained(tiny_backbone)), tok, ds, history_for_test(sp), tiny_profile, "cpu", "off")
        assert isinstance(scorer, scorer_cls) and scorer.max_length == tiny_profile.max_length
        assert scorer(np.array([1]), np.array([[1, 2]])).shape == (1, 2)


def test_paired_metrics_pair_the_users_both_models_were_scored_on():
    import pandas as pd

    from recbook.runs.recipe import paired_metrics

    users = pd.Index([1, 2, 3, 4, 5, 6], name="user_id")
    a = {("test", "sampled"): pd.DataFrame({"NDCG@10": [1.0, 1, 1, 1, 1, 1], "HR@10": [1.0] * 6}, index=users)}
    b = {("test", "sampled"): pd.DataFrame({"NDCG@10": [0.0, 0, 0], "HR@10": [0.0] * 3}, index=users[:3]),  # a subset
         ("test", "full"): pd.DataFrame({"NDCG@10": [0.0] * 6}, index=users)}  # a protocol the model was not scored with
    out = paired_metrics(a, b, ("m", "ref"))
    assert list(out["test"]) == ["sampled"]
    cell = out["test"]["sampled"]["NDCG@10"]
    assert cell["users"] == 3 and cell["diff"] == 1.0 and cell["verdict"] == "better"


def test_the_reference_is_fitted_by_the_same_recipe_but_its_item_features():
    """issue 20: lmrec refits on train + valid by default and SASRec does not; a paired difference between the two
    defaults would credit the text with the refit. same_recipe passes every shared field but the item representation."""
    from recbook.cli.train import same_recipe
    from recbook.models import create

    lm = create("lmrec", dim=32, max_len=20, patience=3, refit=True)
    shared = same_recipe(lm, "sasrec")
    assert shared["refit"] is True and shared["dim"] == 32 and shared["max_len"] == 20 and shared["patience"] == 3
    assert "item_features" not in shared and "seed" not in shared and "text_encoder" not in shared
    assert create("sasrec", **shared).config.refit is True  # what _compare fits
    assert same_recipe(lm, "ease") == {} and same_recipe(create("sasrec"), "lmrec") == {}  # unrelated recipes pass nothing
    assert "text_loss" not in shared  # "auto" before fitting: lmrec chooses it on validation; a fitted lmrec passes its choice
    assert same_recipe(create("lmrec", text_loss=0.0), "sasrec")["text_loss"] == 0.0


@pytest.mark.slow
def test_train_lmrec_writes_its_paired_difference_to_sasrec(tmp_path, tiny_backbone):
    """issue 20: metrics.json of an lmrec run carries SASRec (IDs, same recipe, same split and seed) and the per-user
    paired difference, under every protocol both were scored with."""
    out = tmp_path / "lm"
    assert cli.main(["train", "--data", "synthetic", "--model", "lmrec", "--backbone", str(tiny_backbone), "--out", str(out),
                     "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    ref = metrics["compared_to"]
    assert ref["model"] == "sasrec" and ref["stop_reason"] is not None
    assert metrics["item_features"] == "hybrid" and ref["config"]["item_features"] == "id"  # what each model really used
    tried = metrics["text_loss_validation"]  # text_loss="auto": both weights fitted, the better on validation kept
    assert set(tried) == {"1", "0"} and metrics["config"]["text_loss"] == float(max(tried, key=tried.get))
    assert ref["config"]["text_loss"] == metrics["config"]["text_loss"]  # the reference follows the chosen recipe
    assert ref["config"]["refit"] is metrics["config"]["refit"] is True  # the same recipe: both refitted on train + valid
    cell = ref["paired"]["test"]["full"]["NDCG@10"]
    assert cell["lmrec"] == pytest.approx(metrics["full_ranking"]["NDCG@10"], abs=1e-6)
    assert cell["sasrec"] == pytest.approx(ref["metrics"]["full_ranking"]["NDCG@10"], abs=1e-6)
    assert cell["ci95"][0] <= cell["diff"] <= cell["ci95"][1] and cell["users"] == metrics["full_ranking"]["users"]
    assert cell["verdict"] in ("better", "worse", "inconclusive")
    assert cli.main(["train", "--data", "synthetic", "--model", "pop", "--out", str(tmp_path / "pop"), "--quiet"]) == 0
    assert "compared_to" not in json.loads((tmp_path / "pop" / "metrics.json").read_text())  # no reference, no comparison

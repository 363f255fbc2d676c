"""`python -m recbook train/evaluate` with the sequential models, the cold-items split and CIs in metrics.json."""

import json

import pytest

from recbook import cli


@pytest.fixture()
def quick(monkeypatch):
    monkeypatch.setenv("RECBOOK_PROFILE", "quick")


@pytest.mark.slow
def test_sasrec_cold_items_train_then_evaluate(tmp_path, quick, monkeypatch):
    # a tiny text encoder keeps this fast: the hybrid embeds the catalogue with it (cached under RECBOOK_CACHE)
    monkeypatch.setenv("RECBOOK_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert cli.main(["train", "--data", "synthetic", "--model", "sasrec", "--item-features", "hybrid", "--split", "cold-items",
                     "--time-budget", "3", "--out", str(out), "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["model"] == "sasrec" and m["item_features"] == "hybrid" and m["split"] == "cold-items"
    for side in ("warm", "cold"):
        for block in (m[side], m[side]["full_ranking"]):
            low, high = block["ci95"]["NDCG@10"]
            assert low <= block["NDCG@10"] <= high and 0 <= low
    assert m["cold"]["users"] > 0 and m["cold"]["cold_items"] == 40 and "cold items" in m["cold"]["protocol"]
    assert (tmp_path / "cache" / "item_embeddings").is_dir()
    run = json.loads((out / "checkpoint" / "run.json").read_text())
    assert run["split"] == "cold-items" and run["item_features"] == "hybrid"
    assert cli.main(["evaluate", "--checkpoint", str(out)]) == 0
    ev = cli.cmd_evaluate(cli.build_parser().parse_args(["evaluate", "--checkpoint", str(out)]))
    for side in ("warm", "cold"):
        assert ev[side]["NDCG@10"] == pytest.approx(m[side]["NDCG@10"], abs=1e-9)
        assert ev[side]["full_ranking"]["NDCG@10"] == pytest.approx(m[side]["full_ranking"]["NDCG@10"], abs=1e-9)


def test_leave_last_out_metrics_carry_cis(tmp_path, quick):
    out = tmp_path / "pop"
    assert cli.main(["train", "--data", "synthetic", "--model", "pop", "--out", str(out), "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["ci95"]) == {"HR@10", "NDCG@10", "MRR", "AUC"} and "ci95" in m["full_ranking"] and "warm" not in m


@pytest.mark.parametrize("argv, message", [
    (["--model", "pop", "--item-features", "text"], "--item-features 'text' applies to"),
    (["--model", "sasrec", "--time-budget", "0"], "--time-budget must be positive"),
    (["--model", "pop", "--split", "cold-items", "--cold-fraction", "1.5"], "--cold-fraction must be between 0 and 1"),
])
def test_bad_arguments_exit_2_with_one_line(argv, message, tmp_path, quick, capsys):
    assert cli.main(["train", "--data", "synthetic", "--out", str(tmp_path / "x"), "--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1

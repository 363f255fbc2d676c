import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import ndcg_score, roc_auc_score
from transformers import AutoModel

from recbook import cli
from recbook.compress.bench import (
    Variant,
    compare_speed,
    latency_batches,
    make_pair_set,
    pair_scores,
    quality,
    run_benchmark,
    slow_path_reason,
    time_variants,
    weights_bytes,
)
from recbook.compress.report import best_under, markdown_table, pareto_front, plot_pareto, write_results
from recbook.compress.storage import load_compact
from recbook.compress.variants import VARIANT_KINDS, catalogue_token_ids, compression_setup, load_or_train_teacher, make_variant
from recbook.data import leave_last_out
from recbook.evaluation.protocol import make_eval_set
from recbook.models.cross_encoder import CrossEncoder


@pytest.fixture(scope="module")
def model(tiny_backbone):
    torch.manual_seed(0)
    return CrossEncoder(AutoModel.from_pretrained(tiny_backbone)).eval()


@pytest.fixture(scope="module")
def pairs(synthetic, tokenizer):
    split = leave_last_out(synthetic.interactions)
    eval_set = make_eval_set(synthetic, split, "test", 9, n_users=5, seed=0)
    return make_pair_set(eval_set, synthetic, tokenizer, max_length=48, max_history_items=3)


def test_pair_set_and_quality(pairs, model, tokenizer):
    assert pairs.n_users == 5 and pairs.n_candidates == 10
    assert len(pairs.encoded["input_ids"]) == 50 and "9 sampled negatives" in pairs.protocol
    scores = pair_scores(model, pairs, tokenizer, batch_size=16)
    assert scores.shape == (5, 10)
    assert len(np.unique(scores)) == scores.size  # no ties, so the ranks below are exact
    # independent of recbook.evaluation.metrics: scikit-learn's AUC and NDCG, and ranks counted by hand (column 0 is the held-out item)
    y = np.zeros((5, 10))
    y[:, 0] = 1
    rank = 1 + (scores[:, 1:] > scores[:, :1]).sum(axis=1)
    got = quality(scores, k=3)
    assert set(got) == {"NDCG@3", "HR@3", "MRR", "AUC"}
    assert got["AUC"] == pytest.approx(np.mean([roc_auc_score(t, s) for t, s in zip(y, scores)]))
    assert got["NDCG@3"] == pytest.approx(ndcg_score(y, scores, k=3))
    assert got["HR@3"] == pytest.approx(np.mean(rank <= 3))
    assert got["MRR"] == pytest.approx(np.mean(1 / rank))
    assert quality(scores)["NDCG@10"] == pytest.approx(ndcg_score(y, scores, k=10))
    batches = latency_batches(pairs, tokenizer, (1, 8))
    assert batches[1]["input_ids"].shape[0] == 1 and batches[8]["input_ids"].shape[0] == 8


def test_quality_on_hand_computed_scores():
    scores = np.array([
        [0.9, 0.1, 0.5, 0.3],  # held-out item ranked 1st
        [0.4, 0.8, 0.1, 0.6],  # 3rd
        [0.5, 0.7, 0.2, 0.0],  # 2nd
        [0.5, 0.5, 0.1, 0.9],  # tied with one other below 0.9: 2nd or 3rd, each with probability 1/2
    ])  # fmt: skip
    got = quality(scores, k=2)
    dcg2 = 1 / np.log2(3)  # the gain of rank 2
    assert got["HR@2"] == pytest.approx((1 + 0 + 1 + 0.5) / 4)
    assert got["NDCG@2"] == pytest.approx((1 + 0 + dcg2 + 0.5 * dcg2) / 4)
    assert got["MRR"] == pytest.approx((1 + 1 / 3 + 1 / 2 + (1 / 2 + 1 / 3) / 2) / 4)
    assert got["AUC"] == pytest.approx((1 + 1 / 3 + 2 / 3 + 1.5 / 3) / 4)  # a tie counts one half


@pytest.mark.parametrize("kind", VARIANT_KINDS)
def test_make_variant_each_kind(kind, model, tmp_path, synthetic, tokenizer, pairs):
    v = make_variant(kind, model, tmp_path, dataset=synthetic, tokenizer=tokenizer)
    assert v.name == kind and v.size_bytes > 0 and v.params > 0
    assert any(tmp_path.iterdir())
    batch = latency_batches(pairs, tokenizer, (6,))[6]
    with torch.no_grad():
        ref = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        out = torch.as_tensor(v.model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])).float()
    tolerance = 0.3 if kind == "prune50-int8" else 0.05  # pruning half the weights changes a random tiny model more
    assert (out - ref).abs().max() < tolerance + tolerance * ref.abs().max(), kind


def test_variant_sizes_are_ordered(model, tmp_path, synthetic, tokenizer):
    size = {k: make_variant(k, model, tmp_path, dataset=synthetic, tokenizer=tokenizer).size_bytes for k in ("fp32", "bf16", "int8", "prune50-int8", "trim-int8")}
    assert 1.9 < size["fp32"] / size["bf16"] < 2.1
    assert size["fp32"] / size["int8"] > 3.0  # int8 matrices + a scale per row
    assert size["prune50-int8"] < 0.75 * size["int8"]  # bit mask + half the values
    assert size["trim-int8"] < 0.3 * size["int8"]  # the tiny model is mostly its 30k-token embedding table (the id map stays)
    assert len(catalogue_token_ids(synthetic, tokenizer)) < 1000


def test_int8_file_rebuilds_the_variant(model, tmp_path, tokenizer, pairs):
    from recbook.compress.quantize import dynamic_quantize, quantize_embeddings

    v = make_variant("int8", model, tmp_path)
    rebuilt = CrossEncoder(AutoModel.from_config(model.encoder.config)).eval()
    rebuilt.load_state_dict(load_compact(tmp_path / "int8.safetensors"))
    rebuilt = dynamic_quantize(quantize_embeddings(rebuilt))
    batch = latency_batches(pairs, tokenizer, (6,))[6]
    with torch.no_grad():
        a = v.model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        b = rebuilt(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    assert (a - b).abs().max() < 0.02  # the file holds everything the int8 model needs


def test_trim_keeps_only_the_tokens_of_the_items_it_is_given(model, tmp_path, synthetic, tokenizer):
    from recbook.compress.quantize import used_token_ids
    from recbook.data import catalogue_texts

    items = synthetic.items.sort_values("item_id")
    known = items["item_id"].to_numpy()[: len(items) // 2]
    keep = catalogue_token_ids(synthetic, tokenizer, known)
    known_titles = items.set_index("item_id").loc[known, "title"].astype(str).tolist()
    new_titles = items.set_index("item_id").drop(known)["title"].astype(str).tolist()
    title_tokens = set(used_token_ids(known_titles, tokenizer).tolist())
    assert title_tokens <= set(keep.tolist())  # the known items' texts and history entries
    separator = tokenizer(";", add_special_tokens=False)["input_ids"]
    assert set(separator) <= set(keep.tolist())  # a history's separator, although no item text holds it
    every = set(catalogue_token_ids(synthetic, tokenizer).tolist())
    only_new = set(used_token_ids(new_titles, tokenizer).tolist()) - set(used_token_ids(
        catalogue_texts(synthetic, items=known), tokenizer).tolist())
    assert set(keep.tolist()) <= every and not only_new & set(keep.tolist())  # a word only new items use is left out
    v = make_variant("trim-int8", model, tmp_path, dataset=synthetic, tokenizer=tokenizer, vocabulary_items=known)
    assert v.model.encoder.embeddings.word_embeddings.table.num_embeddings == len(keep)
    assert f"from {len(known):,} training-time items" in v.notes
    with pytest.raises(ValueError, match="not in the items table"):
        catalogue_token_ids(synthetic, tokenizer, [10**9])
    with pytest.raises(ValueError, match="items is empty"):
        catalogue_token_ids(synthetic, tokenizer, [])


def test_make_variant_errors(model, tmp_path):
    with pytest.raises(ValueError, match="unknown variant"):
        make_variant("int4", model, tmp_path)
    with pytest.raises(ValueError, match="trim-int8 needs"):
        make_variant("trim-int8", model, tmp_path)


def test_run_benchmark_table(model, tmp_path, tokenizer, pairs):
    variants = [make_variant("fp32", model, tmp_path), make_variant("int8", model, tmp_path)]
    table = run_benchmark(variants, pairs, tokenizer, batch_sizes=(1, 4), repeats=2, warmup=1, progress=False)
    assert list(table.index) == ["fp32", "int8"]
    for col in ("NDCG@10", "AUC", "size_MB", "p50_ms_b1", "p95_ms_b4", "pairs_per_s_b4", "quality_kept", "smaller", "faster_b4",
                "faster_b4 low", "faster_b4 high", "speed_b4", "weights_in_memory_MB"):
        assert col in table.columns, col
    assert table.loc["fp32", "faster_b4"] == 1.0 and table.loc["fp32", "speed_b4"] == "baseline"
    assert table.loc["fp32", "quality_kept"] == 1.0 and table.loc["fp32", "smaller"] == 1.0
    assert table.loc["int8", "smaller"] > 2
    assert table.attrs["protocol"] == pairs.protocol
    files = write_results(table, tmp_path / "out")
    assert files["csv"].is_file() and "Protocol" in files["md"].read_text()
    plot_pareto(table, tmp_path / "out" / "p.png")
    assert (tmp_path / "out" / "p.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="unique"):
        run_benchmark([variants[0], variants[0]], pairs, tokenizer, progress=False)
    with pytest.raises(ValueError, match="no variants"):
        run_benchmark([], pairs, tokenizer, progress=False)


def test_time_variants_interleaves_every_variant(model, tokenizer, pairs):
    calls = []

    class Spy:
        def __init__(self, name):
            self.name = name

        def __call__(self, *args):
            calls.append(self.name)

    variants = [Variant("a", Spy("a"), 1, 1), Variant("b", Spy("b"), 1, 1)]
    timing = time_variants(variants, latency_batches(pairs, tokenizer, (2,)), repeats=3, warmup=1, progress=False, slow_factor=None)
    assert calls == ["a", "b"] * 4  # a, b, a, b …: noise hits both alike
    assert len(timing) == 2 and (timing["p50_ms"] > 0).all() and (timing["p95_ms"] >= timing["p50_ms"]).all()
    assert timing["speed_verdict"].tolist()[0] == "baseline" and timing["speed_up"].tolist()[0] == 1.0
    b = timing.iloc[1]  # b against a, paired by round: 3 rounds give an interval around the speed-up
    assert b["speed_verdict"] in ("faster", "slower", "within noise") and b["speed_low"] <= b["speed_up"] <= b["speed_high"]
    assert timing["repeats"].tolist() == [3, 3] and timing.attrs["slow_paths"] == {}
    times = timing.attrs["round_times"]
    assert set(times) == {"a", "b"} and len(times["a"][2]) == 3
    pair = compare_speed(timing, "b", "a", batch=2)  # a over b: the inverse of b over a, same rounds
    assert pair["speed_up"] == pytest.approx(1 / b["speed_up"]) and pair["rounds"] == 3
    with pytest.raises(ValueError, match="no variant 'c'"):
        compare_speed(timing, "a", "c", batch=2)
    with pytest.raises(ValueError, match="batch 64 was not timed"):
        compare_speed(timing, "a", "b")
    with pytest.raises(ValueError, match="round_times"):
        compare_speed(pd.DataFrame(), "a", "b")
    calls.clear()
    time_variants(variants, latency_batches(pairs, tokenizer, (2,)), repeats=3, warmup=1, progress=False)
    assert calls == ["a", "b"] * 5  # warm-up, probe, 3 timed rounds
    with pytest.raises(ValueError, match="repeats"):
        time_variants(variants, {}, repeats=0, progress=False)
    with pytest.raises(ValueError, match="slow_repeats"):
        time_variants(variants, {}, slow_repeats=0, progress=False)


class Sleepy(torch.nn.Module):
    """A variant that is obviously slow on any machine: the wrapped model's logits, after a sleep."""

    def __init__(self, model, seconds):
        super().__init__()
        self.inner, self.seconds, self.calls = model, seconds, 0

    def forward(self, *args):
        import time

        self.calls += 1
        time.sleep(self.seconds)
        return self.inner(*args)


def test_time_variants_measures_a_slow_path_with_few_repeats(model, tokenizer, pairs):
    calls = []

    class Spy:
        def __init__(self, name, seconds):
            self.name, self.seconds = name, seconds

        def __call__(self, *args):
            import time

            calls.append(self.name)
            time.sleep(self.seconds)

    variants = [Variant("base", Spy("base", 0.001), 1, 1), Variant("slow", Spy("slow", 0.1), 1, 1)]
    timing = time_variants(variants, latency_batches(pairs, tokenizer, (1, 2)), repeats=5, warmup=1, progress=False, slow_repeats=2)
    # warm-up (2 sizes), probe (largest batch), then the slow one only in the first 2 of 5 timed rounds
    assert calls == ["base", "slow"] * 2 + ["base", "slow"] + ["base", "slow"] * 4 + ["base"] * 6
    per = timing.set_index(["variant", "batch"])
    assert per.loc[("base", 2), "repeats"] == 5 and per.loc[("slow", 2), "repeats"] == 2 and per.loc[("slow", 1), "repeats"] == 2
    assert per.loc[("slow", 2), "probe_ratio"] > 3 and per.loc[("base", 2), "probe_ratio"] == 1
    assert list(timing.attrs["slow_paths"]) == ["slow"]
    note = per.loc[("slow", 2), "notes"]
    assert note.startswith("slow path on this CPU:") and "than base in a probe at batch 2" in note and "latency from 2 repeats" in note
    assert "no missing CPU feature identified" in note  # a plain callable: nothing to blame on the CPU
    assert per.loc[("base", 2), "notes"] == ""
    # the slow path is paired with the baseline's first 2 rounds: a speed-up far below 1, too few rounds for an interval
    assert per.loc[("slow", 2), "speed_up"] < 0.2 and per.loc[("slow", 2), "speed_verdict"] == "too few rounds"


@pytest.mark.slow
def test_run_benchmark_scores_a_slow_path_on_a_subset(model, tmp_path, tokenizer, pairs):
    slow = Sleepy(model, 0.5)  # ≥ 0.5 s per call against a few ms for the tiny model: far beyond slow_factor anywhere
    variants = [Variant("fp32", model, 100, 10), Variant("slow", slow, 50, 10, notes="a fake")]
    scores = {}
    table = run_benchmark(variants, pairs, tokenizer, batch_sizes=(1, 4), repeats=4, warmup=1, progress=False,
                          scores_out=scores, slow_repeats=2, slow_pairs=20)  # 20 pairs = the first 2 users of 10 candidates
    assert table.loc["fp32", "quality_users"] == 5 and table.loc["slow", "quality_users"] == 2
    assert table.loc["fp32", "latency_repeats"] == 4 and table.loc["slow", "latency_repeats"] == 2
    assert scores["slow"].shape == (2, 10) and scores["fp32"].shape == (5, 10)
    np.testing.assert_allclose(scores["slow"], scores["fp32"][:2], atol=1e-5)  # the same pairs, the same model
    assert np.isnan(table.loc["slow", "NDCG@10"]) and np.isnan(table.loc["slow", "AUC"])  # not comparable with a full row
    base_ndcg = quality(scores["fp32"][:2])["NDCG@10"]  # quality_kept compares like with like: fp32 on the same 2 users
    if base_ndcg > 0:
        assert table.loc["slow", "quality_kept"] == pytest.approx(quality(scores["slow"])["NDCG@10"] / base_ndcg)
    else:
        assert np.isnan(table.loc["slow", "quality_kept"])
    assert table.loc["fp32", "quality_kept"] == 1.0 and table.loc["slow", "smaller"] == 2.0
    note = table.loc["slow", "notes"]
    assert note.startswith("a fake; slow path on this CPU:") and "quality on the first 2 of 5 users" in note
    assert "scores' correlation with fp32's there 1.0000" in note  # the same model underneath
    assert table.attrs["slow_paths"]["slow"] in note and list(table.attrs["slow_paths"]) == ["slow"]
    assert table.loc["fp32", "notes"] == ""
    # bounded work: warm-up 2 + probe 1 + timed 2 rounds × 2 sizes + 1 quality batch (20 pairs) + 1 memory call
    assert slow.calls == 2 + 1 + 4 + 1 + 1
    assert not pareto_front(table, cost_col="p50_ms_b4")["slow"]  # no quality on the full protocol: not placed on the front
    files = write_results(table, tmp_path / "out")
    assert "slow path on this CPU" in files["md"].read_text()
    plot_pareto(table, tmp_path / "out" / "p.png")
    full = run_benchmark(variants, pairs, tokenizer, batch_sizes=(4,), repeats=2, warmup=1, progress=False, slow_factor=None)
    assert full.loc["slow", "quality_users"] == 5 and full.loc["slow", "latency_repeats"] == 2 and full.attrs["slow_paths"] == {}
    assert full.loc["slow", "NDCG@10"] == pytest.approx(full.loc["fp32", "NDCG@10"])


def test_pair_scores_on_the_first_users(model, tokenizer, pairs):
    full = pair_scores(model, pairs, tokenizer, batch_size=16)
    part = pair_scores(model, pairs, tokenizer, batch_size=16, users=2)
    assert part.shape == (2, 10)
    np.testing.assert_allclose(part, full[:2], atol=1e-5)
    for bad in (0, 6):
        with pytest.raises(ValueError, match="users"):
            pair_scores(model, pairs, tokenizer, users=bad)


def test_slow_path_reason_names_the_missing_feature():
    from recbook.compress.quantize import dynamic_quantize

    linear = torch.nn.Sequential(torch.nn.Linear(8, 8)).eval()
    avx2 = {"sse2", "avx2", "fma"}
    assert slow_path_reason(linear.to(torch.bfloat16), avx2) == "bf16 without AVX-512 BF16 / AMX-BF16 (Arm: BF16)"
    assert "although the CPU has avx512_bf16" in slow_path_reason(linear.to(torch.bfloat16), avx2 | {"avx512_bf16"})
    assert slow_path_reason(linear.to(torch.float16), avx2 | {"avx512_bf16"}).startswith("fp16 without AVX512-FP16 / AMX-FP16")
    linear = linear.float()
    assert slow_path_reason(dynamic_quantize(linear), avx2).startswith("int8 without AVX-512 VNNI")
    assert slow_path_reason(dynamic_quantize(linear, "torchao"), avx2).startswith("torchao int8 in eager mode")
    assert slow_path_reason(linear, avx2) == "no missing CPU feature identified"
    assert slow_path_reason(object(), avx2) == "no missing CPU feature identified"
    assert "could not be read" in slow_path_reason(linear.to(torch.bfloat16), set())


def test_pareto_front_and_best_under():
    table = pd.DataFrame({"NDCG@10": [0.30, 0.29, 0.25, 0.20], "p50_ms_b64": [100.0, 40.0, 50.0, 10.0]}, index=["fp32", "int8", "bad", "tiny"])
    table["quality_kept"] = table["NDCG@10"] / 0.30
    assert pareto_front(table).to_dict() == {"fp32": True, "int8": True, "bad": False, "tiny": True}
    assert best_under(table, 0.95) == "int8"
    assert best_under(table, 0.5) == "tiny"
    assert best_under(table, 1.01) is None
    assert "| fp32 |" in markdown_table(table)


def test_weights_bytes(model, tmp_path):
    fp32 = weights_bytes(model)
    assert fp32 == sum(p.numel() * 4 for p in model.parameters()) + sum(b.numel() * b.element_size() for b in model.buffers())
    int8 = weights_bytes(make_variant("int8", model, tmp_path).model)
    assert int8 < fp32 / 2
    assert weights_bytes(object()) is None


def test_teacher_is_trained_once_and_cached(tmp_path, tiny_profile, tiny_backbone):
    first, folder, trained = load_or_train_teacher("synthetic", tiny_profile, backbone=str(tiny_backbone), cache_dir=tmp_path, progress=False)
    assert trained and (folder / "run.json").is_file() and (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    second, folder2, trained2 = load_or_train_teacher("synthetic", tiny_profile, backbone=str(tiny_backbone), cache_dir=tmp_path, progress=False)
    assert not trained2 and folder2 == folder
    for (k, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        torch.testing.assert_close(a, b, msg=k)
    assert not [p for p in folder.parent.iterdir() if p != folder]  # no temporary folders left behind
    setup = compression_setup("synthetic", tiny_profile, backbone=str(tiny_backbone), cache_dir=tmp_path, eval_users=3, progress=False)
    assert setup.pairs.n_users == 3 and setup.pairs.n_candidates == tiny_profile.eval_negatives + 1
    assert setup.checkpoint == folder


def test_cli_bench(tmp_path, tiny_backbone, capsys, monkeypatch):
    from recbook import profile as profiles

    monkeypatch.setitem(profiles.PROFILES, "quick", profiles.get_profile("quick", n_users=40, n_items=50, batch_size=8, max_length=48,
                                                                     bert_max_steps=2, bert_eval_users=3, eval_negatives=5))
    run = tmp_path / "ce"
    assert cli.main(["train", "--data", "synthetic", "--model", "cross-encoder", "--profile", "quick", "--out", str(run),
                     "--backbone", str(tiny_backbone), "--quiet"]) == 0
    capsys.readouterr()
    out = tmp_path / "bench"
    assert cli.main(["bench", "--checkpoint", str(run), "--variants", "int8,onnx-int8", "--out", str(out), "--repeats", "2", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert list(result["table"]) == ["fp32", "int8", "onnx-int8"]  # fp32 is always the baseline
    assert result["table"]["fp32"]["speed_b64"] == "baseline"  # verdicts are text in the JSON, speed-ups numbers
    assert result["table"]["int8"]["speed_b64"] == "too few rounds" and result["table"]["int8"]["faster_b64 low"] is None
    assert (out / "bench.csv").is_file() and (out / "bench_pareto.png").is_file() and (out / "variants").is_dir()
    assert "sampled" in result["protocol"]
    assert isinstance(result["slow_paths"], dict) and set(result["slow_paths"]) <= {"int8", "onnx-int8"}  # named, with a reason, if any
    for argv in (["bench", "--checkpoint", str(run), "--variants", "int3", "--out", str(out)],
                 ["bench", "--checkpoint", str(tmp_path / "none"), "--out", str(out)],
                 ["bench", "--checkpoint", str(run), "--out", str(out), "--threads", "0"]):
        assert cli.main(argv) == 2
        assert "error" in capsys.readouterr().err
    pop = tmp_path / "pop"
    assert cli.main(["train", "--data", "synthetic", "--model", "pop", "--out", str(pop), "--quiet"]) == 0
    assert cli.main(["bench", "--checkpoint", str(pop), "--out", str(out)]) == 2
    assert "cross-encoder" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_bench_catalogue(tmp_path, tiny_backbone, capsys, monkeypatch):
    monkeypatch.setenv("RECBOOK_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "bench-cat"
    argv = ["bench", "--target", "catalogue", "--data", "synthetic", "--backbone", str(tiny_backbone), "--epochs", "1",
            "--variants", "int8", "--out", str(out), "--repeats", "1", "--quiet"]
    assert cli.main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert list(result["table"]) == ["fp32", "int8"]
    row = result["table"]["int8"]
    assert row["smaller"] > 3 and 0 < row["cold AUC kept low"] <= row["cold AUC kept"] <= row["cold AUC kept high"]
    assert row["quality_kept"] == min(row["warm AUC kept low"], row["cold AUC kept low"])
    assert row["speed_b64"] == "too few rounds" and result["table"]["fp32"]["speed_b64"] == "baseline"  # 1 repeat
    assert "cold AUC" in result["protocol"] and (out / "bench.csv").is_file() and (out / "bench_pareto.png").is_file()
    assert cli.main(argv[:-7] + ["--epochs", "0", "--out", str(out)]) == 2
    assert "--epochs" in capsys.readouterr().err
    assert cli.main(["bench", "--out", str(out)]) == 2  # --target checkpoint (the default) needs --checkpoint
    assert "--checkpoint" in capsys.readouterr().err

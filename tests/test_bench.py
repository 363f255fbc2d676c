import json

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModel

from recbook import cli
from recbook.bench import (
    Variant,
    best_under,
    latency_batches,
    make_pair_set,
    markdown_table,
    pair_scores,
    pareto_front,
    plot_pareto,
    quality,
    run_benchmark,
    time_variants,
    weights_bytes,
    write_results,
)
from recbook.compress.storage import load_compact
from recbook.compress.variants import VARIANT_KINDS, catalogue_token_ids, compression_setup, load_or_train_teacher, make_variant
from recbook.data import leave_last_out
from recbook.evaluate import make_eval_set
from recbook.metrics import ranking_metrics
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
    y = np.zeros((5, 10))
    y[:, 0] = 1
    assert quality(scores) == ranking_metrics(y, scores, 10)
    batches = latency_batches(pairs, tokenizer, (1, 8))
    assert batches[1]["input_ids"].shape[0] == 1 and batches[8]["input_ids"].shape[0] == 8


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


def test_make_variant_errors(model, tmp_path):
    with pytest.raises(ValueError, match="unknown variant"):
        make_variant("int4", model, tmp_path)
    with pytest.raises(ValueError, match="trim-int8 needs"):
        make_variant("trim-int8", model, tmp_path)


def test_run_benchmark_table(model, tmp_path, tokenizer, pairs):
    variants = [make_variant("fp32", model, tmp_path), make_variant("int8", model, tmp_path)]
    table = run_benchmark(variants, pairs, tokenizer, batch_sizes=(1, 4), repeats=2, warmup=1, progress=False)
    assert list(table.index) == ["fp32", "int8"]
    for col in ("NDCG@10", "AUC", "size_MB", "p50_ms_b1", "p95_ms_b4", "pairs_per_s_b4", "quality_kept", "smaller", "faster_b4", "weights_in_memory_MB"):
        assert col in table.columns, col
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
    timing = time_variants(variants, latency_batches(pairs, tokenizer, (2,)), repeats=3, warmup=1, progress=False)
    assert calls == ["a", "b"] * 4  # a, b, a, b …: noise hits both alike
    assert len(timing) == 2 and (timing["p50_ms"] > 0).all() and (timing["p95_ms"] >= timing["p50_ms"]).all()
    with pytest.raises(ValueError, match="repeats"):
        time_variants(variants, {}, repeats=0, progress=False)


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
    assert trained and (folder / "run.json").is_file() and (folder / "head.safetensors").is_file()
    second, folder2, trained2 = load_or_train_teacher("synthetic", tiny_profile, backbone=str(tiny_backbone), cache_dir=tmp_path, progress=False)
    assert not trained2 and folder2 == folder
    for (k, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        torch.testing.assert_close(a, b, msg=k)
    assert not [p for p in folder.parent.iterdir() if p != folder]  # no temporary folders left behind
    setup = compression_setup("synthetic", tiny_profile, backbone=str(tiny_backbone), cache_dir=tmp_path, eval_users=3, progress=False)
    assert setup.pairs.n_users == 3 and setup.pairs.n_candidates == tiny_profile.eval_negatives + 1
    assert setup.checkpoint == folder


def test_cli_bench(tmp_path, tiny_backbone, capsys, monkeypatch):
    from recbook import device

    monkeypatch.setitem(device.PROFILES, "quick", device.get_profile("quick", n_users=40, n_items=50, batch_size=8, max_length=48,
                                                                     bert_max_steps=2, bert_eval_users=3, eval_negatives=5))
    run = tmp_path / "ce"
    assert cli.main(["train", "--data", "synthetic", "--model", "cross-encoder", "--profile", "quick", "--out", str(run),
                     "--backbone", str(tiny_backbone), "--quiet"]) == 0
    capsys.readouterr()
    out = tmp_path / "bench"
    assert cli.main(["bench", "--checkpoint", str(run), "--variants", "int8,onnx-int8", "--out", str(out), "--repeats", "2", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert list(result["table"]) == ["fp32", "int8", "onnx-int8"]  # fp32 is always the baseline
    assert (out / "bench.csv").is_file() and (out / "bench_pareto.png").is_file() and (out / "variants").is_dir()
    assert "sampled" in result["protocol"]
    for argv in (["bench", "--checkpoint", str(run), "--variants", "int3", "--out", str(out)],
                 ["bench", "--checkpoint", str(tmp_path / "none"), "--out", str(out)],
                 ["bench", "--checkpoint", str(run), "--out", str(out), "--threads", "0"]):
        assert cli.main(argv) == 2
        assert "error" in capsys.readouterr().err
    pop = tmp_path / "pop"
    assert cli.main(["train", "--data", "synthetic", "--model", "pop", "--out", str(pop), "--quiet"]) == 0
    assert cli.main(["bench", "--checkpoint", str(pop), "--out", str(out)]) == 2
    assert "cross-encoder" in capsys.readouterr().err

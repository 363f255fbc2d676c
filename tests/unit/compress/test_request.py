"""What runs per request, compressed (recbook.compress.request, ``recbook bench --target request``): the exported user
encoder computes what the network computes, the quantized tables keep their error bounds, and the benchmark writes
one record per variant with the fields the issue names."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import exit_2_one_line
from recbook.compress.request import build_variants, quantize_table, table_bytes
from recbook.compress.request_bench import padded, top_k_overlap, verdict
from recbook.compress.request_variants import parse_variant
from recbook.models.sequential import SequentialConfig, SequentialRecommender


def _network(objective="causal", features="id", n_items=30, max_len=8):
    torch.manual_seed(0)
    text = np.random.default_rng(0).normal(size=(n_items, 12)).astype(np.float32)
    config = SequentialConfig(objective=objective, item_features=features, max_len=max_len, dim=16, layers=2, heads=2, dropout=0.0)
    return SequentialRecommender(n_items, config, text if features != "id" else None).eval()


def test_quantized_tables_keep_their_error_bound_and_zero_rows():
    table = np.random.default_rng(0).normal(size=(50, 16)).astype(np.float32)
    table[3] = 0.0
    for bits, levels in ((8, 127), (4, 7)):
        codes, scales = quantize_table(table, bits)
        assert codes.dtype == np.int8 and np.abs(codes).max() <= levels
        err = np.abs(codes * scales - table)
        assert (err <= scales / 2 + 1e-7).all()  # rounding: at most half a step per value
        assert (codes[3] == 0).all() and (codes * scales)[3].sum() == 0
    assert table_bytes(50, 16, 32) == 3200 and table_bytes(50, 16, 8) == 800 + 200 and table_bytes(50, 16, 4) == 400 + 200
    with pytest.raises(ValueError, match="bits must be 4 or 8"):
        quantize_table(table, 2)
    with pytest.raises(ValueError, match="2-D"):
        quantize_table(table[0], 8)


def test_variant_names_parse_and_errors_name_the_part():
    assert parse_variant("fp32") == ("fp32", None, 32)
    assert parse_variant("table-int4") == ("fp32", None, 4)
    assert parse_variant("onnx-int8-last20+table-int8") == ("onnx-int8", 20, 8)
    for bad, part in (("onnx-int3", "unknown encoder 'onnx-int3'"), ("fp32+table-int2", "unknown table"),
                      ("fp32-last0", "positive whole number"), ("a+b+c", "ENCODER")):
        with pytest.raises(ValueError, match=part):
            parse_variant(bad)


@pytest.mark.parametrize("objective,features", [("causal", "id"), ("causal", "hybrid"), ("cloze", "id")])
def test_the_exported_encoder_computes_what_the_network_computes(tmp_path, objective, features):
    network = _network(objective, features)
    histories = [np.array([1, 2, 3]), np.arange(1, 20), np.array([5]), np.array([], dtype=np.int64)]
    if objective == "cloze":  # what the network appends at inference: the [MASK] to predict
        histories = [np.r_[h[-(network.config.max_len - 1):], network.mask_token] for h in histories]
    seqs = padded(histories, network.config.max_len)
    want = network.encode(torch.from_numpy(seqs))[:, -1].detach().numpy()
    variants = {v.name: v for v in build_variants(network, ["fp32", "onnx-fp32", "onnx-int8", "onnx-int4w"], tmp_path)}
    for name in ("fp32", "onnx-fp32"):
        got = variants[name].encode(seqs, variants[name].full_table[seqs])
        np.testing.assert_allclose(got, want, atol=1e-4, err_msg=name)
    for name in ("onnx-int8", "onnx-int4w"):  # close, not equal: the point of the benchmark is to measure how close
        got = variants[name].encode(seqs, variants[name].full_table[seqs])
        assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.9, name
    # a window at least as long as the model's reads the same positions; a shorter one reads fewer
    long = build_variants(network, [f"onnx-fp32-last{network.config.max_len}"], tmp_path / "w")[0]
    np.testing.assert_allclose(long.scores(seqs), variants["onnx-fp32"].scores(seqs), atol=1e-4)
    short = build_variants(network, ["onnx-fp32-last2"], tmp_path / "w2")[0]
    assert short.window == 2 and not np.allclose(short.scores(seqs[1:2]), variants["onnx-fp32"].scores(seqs[1:2]), atol=1e-4)


def test_padding_overlap_and_verdict():
    assert padded([np.array([1, 2, 3, 4]), np.array([7])], 3).tolist() == [[2, 3, 4], [0, 0, 7]]
    assert top_k_overlap(np.array([[1, 2, 3, 4]]), np.array([[4, 3, 9, 8]])).tolist() == [0.5]
    assert verdict(-0.004, 0.9) == "non-inferior" and verdict(-0.006, 0.9) == "inferior" and verdict(0.0, 0.7) == "inferior"


def _run(tmp_path_factory, tiny_profile, name):
    from recbook.models import create
    from recbook.runs.recipe import Fitted, prepare_data, run_record, save_fitted, split_metrics

    folder = tmp_path_factory.mktemp(f"request-run-{name}")
    ds, split = prepare_data("synthetic", tiny_profile, 0)
    model = create(name, tiny_profile, epochs=2, dim=16, layers=1, heads=1, patience=None, refit=False).fit(ds, split)
    save_fitted(Fitted(name, model, None, 0.0), folder / "checkpoint", run_record("synthetic", name, tiny_profile, 0, ds))
    return folder, split_metrics(model, ds, split, tiny_profile, 0)["full_ranking"]["NDCG@10"]


@pytest.fixture(scope="module")
def sasrec_run(tmp_path_factory, tiny_profile):
    return _run(tmp_path_factory, tiny_profile, "sasrec")[0]


@pytest.mark.parametrize("name", ["sasrec", "bert4rec"])
def test_the_fp32_variant_scores_what_the_recommender_scores(tmp_path_factory, tiny_profile, tmp_path, name):
    """The benchmark's reference is the model as it is served and evaluated (BERT4Rec reads the [MASK] it appends)."""
    from recbook.compress.request_bench import run_request_bench

    folder, ndcg = _run(tmp_path_factory, tiny_profile, name)
    records = run_request_bench(folder, tmp_path, ["fp32", "onnx-fp32"], rounds=1, n_requests=5)
    assert records[0]["ndcg10"] == pytest.approx(ndcg, abs=1e-6) and records[1]["ndcg10"] == pytest.approx(ndcg, abs=1e-6)


def test_bench_request_writes_one_record_per_variant(sasrec_run, tmp_path, capsys):
    from recbook import cli

    out = tmp_path / "bench"
    assert cli.main(["bench", "--target", "request", "--model", str(sasrec_run), "--out", str(out), "--repeats", "1",
                     "--requests", "10", "--variants", "onnx-fp32,onnx-int8+table-int8,table-int4"]) == 0
    records = json.loads((out / "request_bench.json").read_text())
    assert [r["variant"] for r in records] == ["fp32", "onnx-fp32", "onnx-int8+table-int8", "table-int4"]  # fp32 added: the reference
    for r in records:
        for key in ("variant", "size_mb", "ndcg10", "ci95", "ndcg10_diff", "ndcg10_diff_ci95", "top10_overlap", "cpu_ms_p50",
                    "p99_ms", "speedup", "verdict"):
            assert key in r, key
        assert r["ci95"][0] <= r["ndcg10"] <= r["ci95"][1] and r["ndcg10_diff_ci95"][0] <= r["ndcg10_diff"] <= r["ndcg10_diff_ci95"][1]
        assert r["cpu_ms_p50"] > 0 and 0 <= r["top10_overlap"] <= 1 and r["baseline"] in ("fp32", "onnx-fp32")
    fp32, onnx = records[0], records[1]
    assert fp32["verdict"] == "reference" and onnx["ndcg10"] == pytest.approx(fp32["ndcg10"], abs=1e-6) and onnx["top10_overlap"] == 1.0
    # dim 16 per row: int8 16 + 4 bytes (its scale), int4 8 + 4, fp32 64. (A tiny ONNX encoder is mostly graph, not
    # weights: its file can outweigh the fp32 weights, which is why size_mb counts the file.)
    assert records[2]["table_mb"] < fp32["table_mb"] / 3 and records[3]["table_mb"] < fp32["table_mb"] / 5
    assert "| onnx-int8+table-int8 |" in (out / "request_bench.md").read_text()
    assert "onnx-int8+table-int8" in capsys.readouterr().out


def test_bench_request_errors(sasrec_run, tmp_path, capsys):
    out = str(tmp_path / "o")
    exit_2_one_line(["bench", "--target", "request", "--out", out], capsys, "needs --model")
    exit_2_one_line(["bench", "--target", "request", "--model", str(sasrec_run), "--out", out, "--variants", "onnx-int3"], capsys,
                    "--variants", "unknown encoder")
    exit_2_one_line(["bench", "--target", "request", "--model", str(sasrec_run), "--out", out, "--margin", "2"], capsys, "--margin")


# ------------------------------------------------------------------ what runs per request, computed for the last position only
@pytest.mark.parametrize("objective", ["causal", "cloze"])
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_encode_last_is_the_last_row_of_the_full_encoder(objective, layers):
    torch.manual_seed(layers)
    config = SequentialConfig(objective=objective, max_len=12, dim=16, layers=layers, heads=2, dropout=0.0)
    network = SequentialRecommender(30, config).eval()
    seq = torch.randint(0, 31, (6, 12))
    seq[0, :9] = 0
    seq[1] = 0  # an empty history (its only allowed key is its own position)
    seq[1, -1] = 3
    table = network.item_table()
    with torch.no_grad():
        want = network.encode_vectors(seq, table[seq])[:, -1]
        got = network.encode_last(seq, table[seq])
    assert got.shape == (6, 16)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ students distilled from the recommender
def test_prefixes_are_every_proper_prefix_left_padded():
    from recbook.compress.student import prefixes

    inputs, targets = prefixes({"a": np.array([4, 5, 6]), "b": np.array([7]), "c": np.array([1, 2])}, 2)
    assert inputs.tolist() == [[0, 4], [4, 5], [0, 1]] and targets.tolist() == [5, 6, 2]
    with pytest.raises(ValueError, match="two or more items"):
        prefixes({"a": np.array([1])}, 3)


def test_a_full_size_transformer_student_starts_as_the_teacher():
    """Copied from the teacher (every block, every position), the student computes exactly the teacher's user vectors —
    so its distillation loss at alpha 0 is zero; a shallower student differs."""
    from recbook.compress.student import StudentConfig, StudentEncoder, _Distillation

    teacher = _network(features="hybrid")
    seqs = torch.from_numpy(padded([np.array([1, 2, 3]), np.arange(1, 20), np.array([5])], teacher.config.max_len))
    with torch.no_grad():
        table = teacher.item_table()
        want = teacher.encode_last(seqs, table[seqs])
        full = StudentEncoder(teacher, StudentConfig(layers=2, window=teacher.config.max_len)).eval()
        torch.testing.assert_close(full.encode_last(seqs, full.item_table()[seqs]), want)
        batch = {"input": seqs, "target": torch.tensor([4, 20, 6]), "teacher": want}
        loss = _Distillation(full, StudentConfig(layers=2, window=teacher.config.max_len, alpha=0.0)).training_loss(batch)
        assert abs(float(loss)) < 1e-5
        shallow = StudentEncoder(teacher, StudentConfig(layers=1, window=4)).eval()
        assert not torch.allclose(shallow.encode_last(seqs[:, -4:], table[seqs[:, -4:]]), want, atol=1e-3)
    assert [n for n, p in full.named_parameters() if p.requires_grad and "text_proj" in n] == []  # the table stays the teacher's


def test_student_config_errors_name_the_field():
    from recbook.compress.student import StudentConfig, StudentEncoder
    from recbook.errors import ConfigError

    for bad, field in (({"kind": "gru"}, "kind"), ({"window": 0}, "window"), ({"alpha": 1.5}, "alpha"), ({"temperature": 0}, "temperature")):
        with pytest.raises(ConfigError, match=field):
            StudentConfig(**bad)
    with pytest.raises(ConfigError, match="at most the teacher's 8 items"):
        StudentEncoder(_network(), StudentConfig(window=9))
    with pytest.raises(ConfigError, match="cannot start from a teacher of 2"):
        StudentEncoder(_network(), StudentConfig(layers=3, window=4))


def test_student_variants_parse_and_need_their_student(tmp_path):
    assert parse_variant("student") == ("student", 20, 32)
    assert parse_variant("mlp-student-int8-last10+table-int4") == ("mlp-student-int8", 10, 4)
    with pytest.raises(ValueError, match="needs a mlp student distilled for window 4"):
        build_variants(_network(), ["mlp-student-last4"], tmp_path)


@pytest.mark.parametrize("kind", ["transformer", "mlp"])
def test_students_export_and_run_in_onnx_runtime(tmp_path, kind):
    from recbook.compress.student import StudentConfig, StudentEncoder

    teacher = _network()
    student = StudentEncoder(teacher, StudentConfig(kind=kind, window=4)).eval()
    prefix = "student" if kind == "transformer" else "mlp-student"
    variants = {v.name: v for v in build_variants(teacher, [f"{prefix}-last4", f"{prefix}-int8-last4+table-int8"], tmp_path,
                                                   students={(kind, 4): student})}
    seqs = padded([np.array([1, 2, 3]), np.arange(1, 20), np.array([5])], teacher.config.max_len)
    with torch.no_grad():
        want = (student.user_vectors([np.array([1, 2, 3]), np.arange(1, 20), np.array([5])]) @ student.table[1:-1].T).numpy()
    np.testing.assert_allclose(variants[f"{prefix}-last4"].scores(seqs), want, atol=1e-4)
    quantized = variants[f"{prefix}-int8-last4+table-int8"]
    assert quantized.window == 4 and np.corrcoef(quantized.scores(seqs).ravel(), want.ravel())[0, 1] > 0.9
    if kind == "mlp":  # its weights are most of its file: int8 shrinks it (a tiny transformer's file is mostly graph)
        assert quantized.extra["encoder_bytes"] < variants[f"{prefix}-last4"].extra["encoder_bytes"] / 2


def test_the_distillation_loss_leaves_items_never_trained_on_out():
    """With some items unknown to the teacher (never trained on), the loss and its gradients are finite and equal the
    loss computed on the known sub-catalogue alone: an unknown item is nobody's target and nobody's negative."""
    import torch.nn.functional as F

    from recbook.compress.student import StudentConfig, StudentEncoder, _Distillation

    torch.manual_seed(0)
    known = np.ones(30, dtype=bool)
    known[[4, 9, 17]] = False
    config = SequentialConfig(max_len=8, dim=16, layers=2, heads=2, dropout=0.0)
    teacher = SequentialRecommender(30, config, known_items=known).eval()
    cfg = StudentConfig(layers=1, window=4, alpha=0.4, temperature=2.0)
    student = StudentEncoder(teacher, cfg)
    seqs = torch.from_numpy(padded([np.array([1, 2, 3]), np.arange(1, 9), np.array([6, 7])], 8))[:, -4:]
    with torch.no_grad():
        teacher_users = teacher.encode_last(seqs, teacher.item_table()[seqs])
    batch = {"input": seqs, "target": torch.tensor([4, 11, 21]), "teacher": teacher_users}  # targets are known items (1-based)
    loss = _Distillation(student, cfg).training_loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in student.parameters() if p.grad is not None)
    keep = torch.from_numpy(known)
    items = student.table[1:31][keep]
    s_logits = (student.encode_last(seqs, student.table[seqs]) @ items.T).detach()
    t_logits = teacher_users @ items.T
    cols = torch.cumsum(keep.long(), 0) - 1  # the target's column among the known items
    hard = F.cross_entropy(s_logits, cols[batch["target"] - 1])
    soft = F.kl_div(F.log_softmax(s_logits / 2, -1), F.log_softmax(t_logits / 2, -1), log_target=True, reduction="batchmean") * 4
    assert float(loss) == pytest.approx(float(0.4 * hard + 0.6 * soft), rel=1e-5)


def test_distillation_learns_the_teacher_on_data(tiny_profile):
    """On the synthetic data, a 1-block student distilled from a trained SASRec ends closer to its teacher (more of the
    teacher's top-10) than the same student before training, and its fit stops by patience or the epoch cap."""
    from recbook.compress.student import StudentConfig, StudentEncoder, distill_user_encoder
    from recbook.errors import ConfigError
    from recbook.models import create
    from recbook.runs.recipe import prepare_data

    ds, split = prepare_data("synthetic", tiny_profile, 0)
    teacher = create("sasrec", tiny_profile, epochs=4, dim=16, layers=2, heads=1, patience=None, refit=False).fit(ds, split).network
    config = StudentConfig(window=5, epochs=6, patience=2)
    histories = [np.arange(1, 9), np.array([3, 7, 11]), np.array([2, 4, 6, 8, 10, 12])]

    def overlap(student):
        with torch.no_grad():
            s = (student.user_vectors(histories) @ student.table[1:-1].T).numpy()
            t = teacher.score_all(histories)
        return top_k_overlap(np.argsort(-s, axis=1)[:, :10], np.argsort(-t, axis=1)[:, :10]).mean()

    before = overlap(StudentEncoder(teacher, config).eval())
    fit = distill_user_encoder(teacher, ds, split, config)
    assert fit.prefixes > 0 and fit.stop_reason in ("patience", "epoch limit") and fit.result.best_metric is not None
    assert overlap(fit.student) >= before
    from recbook.compress.student import _Distillation, prefixes
    from recbook.data.windows import user_sequences

    rows, targets = prefixes(user_sequences(split.train, pd.Series(np.arange(ds.n_items), index=ds.item_ids)),
                             teacher.config.max_len)
    rows, targets = torch.from_numpy(rows[:200]), torch.from_numpy(targets[:200])
    with torch.no_grad():
        batch = {"input": rows[:, -config.window:], "target": targets, "teacher": teacher.encode_last(rows, teacher.item_table()[rows])}
        start = _Distillation(StudentEncoder(teacher, config).eval(), config).training_loss(batch)
        end = _Distillation(fit.student.eval(), config).training_loss(batch)
    assert end < start  # it learned the teacher's distribution on training prefixes, not nothing
    with pytest.raises(ConfigError, match="causal teachers"):
        cloze = create("bert4rec", tiny_profile, epochs=1, dim=16, layers=1, heads=1, patience=None, refit=False).fit(ds, split)
        distill_user_encoder(cloze.network, ds, split, config)


def _record(name, diff, low, overlap, speedup, smaller, verdict_=None):
    from recbook.compress.request_bench import DEFAULT_MARGIN

    v = verdict_ or ("reference" if name == "fp32" else verdict(low, overlap))
    return {"variant": name, "ndcg10_diff": diff, "ndcg10_diff_ci95": [low, diff + 0.01], "top10_overlap": overlap, "speedup": speedup,
            "smaller": smaller, "cpu_ms_p50": 1.0 / speedup, "size_mb": 1.0 / smaller, "verdict": v, "margin": DEFAULT_MARGIN,
            "model": "lmrec", "data": "d", "users": 10, "baseline": "onnx-fp32"}


def test_targets_and_the_cheapest_variant_follow_the_rule(tmp_path):
    from recbook.compress.request_bench import cheapest_non_inferior, plot_request_bench, request_targets

    records = [_record("fp32", 0, 0, 1.0, 0.5, 1.0), _record("onnx-fp32", 0, 0, 1.0, 1.0, 0.97),
               _record("a", -0.001, -0.003, 0.95, 1.2, 9.0), _record("b", 0.003, -0.007, 0.64, 4.9, 2.8),
               _record("c", 0.0, -0.004, 0.85, 4.2, 3.0)]
    goals = request_targets(records)
    assert goals["fastest"]["variant"] == "c" and goals["speed_met"] and not goals["stretch_met"]
    assert goals["smallest"]["variant"] == "a" and goals["size_met"] and goals["fastest_any"]["variant"] == "b"
    assert request_targets(records, speedup=5.0)["speed_met"] is False
    assert cheapest_non_inferior(records, 0.005)["variant"] == "c"
    assert cheapest_non_inferior(records, 0.008, min_overlap=0.6)["variant"] == "b"  # a looser rule lets b through
    assert cheapest_non_inferior(records, 0.001)["variant"] == "onnx-fp32"  # a stricter one: only the exact fp32 graphs
    assert cheapest_non_inferior(records, 0.005, min_overlap=1.01) is None
    assert request_targets([records[0], records[3]])["fastest"] is None
    fig = plot_request_bench(records, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0 and len(fig.axes) == 2


def test_cost_per_million_is_cpu_ms_times_a_million_over_an_hour_of_ms():
    from recbook.compress.request_bench import cost_per_million

    records = [{"variant": "onnx-fp32", "cpu_ms_p50": 0.36, "requests_per_s_per_core": 2777.8, "verdict": "reference"},
               {"variant": "student", "cpu_ms_p50": 0.09, "requests_per_s_per_core": 11111.1, "verdict": "inferior"}]
    rows = cost_per_million(records, price_per_cpu_hour=0.05)
    assert rows[0]["cpu_hours_per_million"] == pytest.approx(0.36 * 1e6 / 1000 / 3600)  # 0.1 CPU-hours
    assert rows[0]["cost_per_million"] == pytest.approx(0.1 * 0.05)
    assert rows[1]["cost_per_million"] == pytest.approx(rows[0]["cost_per_million"] / 4)
    assert [r["verdict"] for r in rows] == ["reference", "inferior"]
    with pytest.raises(ValueError, match="price_per_cpu_hour"):
        cost_per_million(records, 0)

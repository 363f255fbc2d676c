import numpy as np
import pytest
import torch
from transformers import AutoModel

from helpers import tiny_cross_encoder_from, token_inputs as inputs
from recbook.compress.distill import Distiller, make_student
from recbook.compress.onnx import OrtCrossEncoder, export_onnx, quantize_onnx_dynamic, quantize_onnx_static
from recbook.compress.prune import (
    count_nonzero,
    drop_layers,
    head_importance,
    iterative_prune,
    magnitude_prune,
    make_permanent,
    prunable_weights,
    prune_ffn_neurons,
    prune_heads,
    sparsity_report,
)
from recbook.models.cross_encoder import CrossEncoder
from recbook.training.loop import TrainConfig, train_model
from recbook.training.losses import distillation_bce


@pytest.fixture
def model(tiny_backbone):
    return tiny_cross_encoder_from(tiny_backbone)


def batches(n=4, seed=0):
    ids, mask, tt = inputs(seed, 4, 12)
    return [{"input_ids": ids, "attention_mask": mask, "token_type_ids": tt, "labels": torch.tensor([1.0, 0.0, 1.0, 0.0])} for _ in range(n)]


# ----------------------------------------------------------------------------- pruning
def test_global_magnitude_prune_matches_a_manual_threshold(model):
    pruned = magnitude_prune(model, 0.5)
    weights = torch.cat([m.weight.detach().abs().flatten() for _, m in prunable_weights(model)])
    threshold = weights.kthvalue(int(0.5 * weights.numel())).values
    for (name, before), (_, after) in zip(prunable_weights(model), prunable_weights(pruned)):
        expected = before.weight.detach().abs() > threshold
        assert torch.equal(after.weight != 0, expected), name
    report = sparsity_report(pruned, include_embeddings=False)
    assert report.loc["total", "sparsity"] == pytest.approx(0.5, abs=1e-4)
    assert sparsity_report(model, include_embeddings=False).loc["total", "sparsity"] == 0  # original untouched
    assert not any(n.endswith("_orig") for n, _ in pruned.named_parameters())  # masks folded in


def test_layer_scope_prunes_each_layer_equally(model):
    pruned = magnitude_prune(model, 0.3, scope="layer", include_embeddings=True)
    report = sparsity_report(pruned)
    assert "encoder.embeddings.word_embeddings" in report.index
    layers = report.drop(index="total")
    assert np.allclose(layers["sparsity"], 0.3, atol=1e-3)
    assert "head" not in report.index  # the 1-output head is never pruned
    nonzero, total = count_nonzero(pruned)
    assert nonzero < total


def test_prune_rejects_bad_arguments(model):
    with pytest.raises(ValueError, match="amount"):
        magnitude_prune(model, 1.0)
    with pytest.raises(ValueError, match="scope"):
        magnitude_prune(model, 0.1, scope="row")
    with pytest.raises(ValueError, match="no Linear"):
        prunable_weights(torch.nn.ReLU())


def test_iterative_prune_keeps_zeros_through_fine_tuning(model):
    def fine_tune(m):
        train_model(m, batches(2), TrainConfig(max_steps=2, lr=1e-2, progress=False, device="cpu", amp="off"))

    pruned, history = iterative_prune(model, [0.2, 0.4], fine_tune, evaluate=lambda m: 1.0)
    assert [h["sparsity"] for h in history] == [0.2, 0.4]
    assert history[0]["metric"] == 1.0
    assert sparsity_report(pruned, include_embeddings=False).loc["total", "sparsity"] == pytest.approx(0.4, abs=1e-3)
    changed = any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), pruned.state_dict().values()))
    assert changed
    with pytest.raises(ValueError, match="increasing"):
        iterative_prune(model, [0.5, 0.2])


def test_masks_can_stay_attached(model):
    pruned = magnitude_prune(model, 0.5, permanent=False)
    assert any(n.endswith("weight_orig") for n, _ in pruned.named_parameters())
    make_permanent(pruned)
    assert not any(n.endswith("weight_orig") for n, _ in pruned.named_parameters())


def test_prune_heads_equals_zeroing_those_heads(model):
    scores = head_importance(model)
    assert scores.shape == (2, 2)
    pruned = prune_heads(model, 0.5)  # 2 of 4 heads; every layer keeps one
    removed = []
    for i, layer in enumerate(pruned.encoder.encoder.layer):
        att = layer.attention.self
        assert att.query.out_features == att.num_attention_heads * att.attention_head_size == 16
        removed.append(int(scores[i].argmin()))
    # the same model with the removed heads' output columns zeroed gives the same logits
    zeroed = CrossEncoder(AutoModel.from_pretrained(model.encoder.name_or_path)).eval()
    zeroed.load_state_dict(model.state_dict())
    for i, h in enumerate(removed):
        d = zeroed.encoder.encoder.layer[i].attention.self.attention_head_size
        zeroed.encoder.encoder.layer[i].attention.output.dense.weight.data[:, h * d : (h + 1) * d] = 0
    ids, mask, tt = inputs()
    with torch.no_grad():
        torch.testing.assert_close(pruned(ids, mask, tt), zeroed(ids, mask, tt), atol=1e-5, rtol=1e-5)
    assert count_nonzero(pruned)[1] < count_nonzero(model)[1]
    with pytest.raises(ValueError, match="fraction"):
        prune_heads(model, 1.0)


def test_prune_ffn_neurons_shrinks_and_zero_fraction_is_identity(model):
    ids, mask, tt = inputs()
    same = prune_ffn_neurons(model, 0.0)
    half = prune_ffn_neurons(model, 0.5)
    with torch.no_grad():
        torch.testing.assert_close(same(ids, mask, tt), model(ids, mask, tt))
        assert torch.isfinite(half(ids, mask, tt)).all()
    layer = half.encoder.encoder.layer[0]
    assert layer.intermediate.dense.out_features == layer.output.dense.in_features == 32


def test_drop_layers(model):
    ids, mask, tt = inputs()
    one = drop_layers(model.encoder, [1])
    assert len(one.encoder.layer) == 1 and one.config.num_hidden_layers == 1
    assert model.encoder.config.num_hidden_layers == 2  # original untouched
    same = drop_layers(model, [0, 1])
    with torch.no_grad():
        torch.testing.assert_close(same(ids, mask, tt), model(ids, mask, tt))
    with pytest.raises(ValueError, match="increasing"):
        drop_layers(model, [1, 0])
    with pytest.raises(ValueError, match="increasing"):
        drop_layers(model, [5])


# ----------------------------------------------------------------------------- distillation
def test_make_student_keeps_chosen_teacher_layers(model):
    for p in model.parameters():
        p.requires_grad_(False)  # e.g. frozen by an earlier Distiller
    student = make_student(model, [1])
    assert all(p.requires_grad for p in student.parameters())
    assert len(student.encoder.encoder.layer) == 1
    torch.testing.assert_close(student.encoder.encoder.layer[0].output.dense.weight, model.encoder.encoder.layer[1].output.dense.weight)
    torch.testing.assert_close(student.head.weight, model.head.weight)


def test_distiller_loss_and_training_moves_only_the_student(model):
    student = make_student(model, [0])
    distiller = Distiller(student, model, temperature=2.0, alpha=0.3)
    batch = batches(1)[0]
    distiller.train()
    assert not distiller.teacher.training  # the teacher never uses dropout
    student.dropout.p = 0.0
    for m in student.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    with torch.no_grad():
        t_logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        s_logits = student(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        expected = distillation_bce(s_logits, t_logits, batch["labels"], 2.0, 0.3)
        torch.testing.assert_close(distiller.training_loss(batch), expected)
    teacher_before = {k: v.clone() for k, v in model.state_dict().items()}
    student_before = {k: v.clone() for k, v in student.state_dict().items()}
    result = train_model(distiller, batches(4), TrainConfig(max_steps=4, lr=1e-3, progress=False, device="cpu", amp="off", log_every=1))
    assert result.steps == 4
    for k, v in model.state_dict().items():
        assert torch.equal(v, teacher_before[k]), k
    assert any(not torch.equal(v, student_before[k]) for k, v in student.state_dict().items())


def test_distiller_hidden_state_term(model):
    student = make_student(model, [1])
    with pytest.raises(ValueError, match="layer_map"):
        Distiller(student, model, hidden_weight=1.0)
    plain = Distiller(student, model, alpha=0.5).eval()
    hidden = Distiller(student, model, alpha=0.5, hidden_weight=1.0, layer_map={0: 1}).eval()
    batch = batches(1)[0]
    with torch.no_grad():
        # the student *is* teacher layer 1 applied to the embeddings: layer outputs differ (input to layer differs)
        extra = hidden.training_loss(batch) - plain.training_loss(batch)
    assert extra > 0


# ----------------------------------------------------------------------------- ONNX
@pytest.mark.parametrize("dynamo", [False, True])
def test_onnx_export_matches_pytorch_on_new_shapes(model, tmp_path, dynamo):
    path = export_onnx(model, tmp_path / "m.onnx", dynamo=dynamo)
    session = OrtCrossEncoder(path, threads=1)
    for seed, batch, length in ((0, 3, 10), (1, 5, 17)):
        ids, mask, tt = inputs(seed, batch, length)
        with torch.no_grad():
            torch.testing.assert_close(session(ids, mask, tt), model(ids, mask, tt), atol=1e-4, rtol=1e-4)
    assert not model.training and session.eval() is session and session.to("cpu") is session
    config = session.session.get_session_options()  # idle ORT threads must not spin (they slow the next timed variant)
    assert config.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_onnx_int8_dynamic_and_static(model, tmp_path):
    path = export_onnx(model, tmp_path / "m.onnx")
    ids, mask, tt = inputs(0, 6, 12)
    with torch.no_grad():
        ref = model(ids, mask, tt)
    dyn = OrtCrossEncoder(quantize_onnx_dynamic(path, tmp_path / "dyn.onnx"))
    calib = [{"input_ids": ids, "attention_mask": mask, "token_type_ids": tt}]
    stat = OrtCrossEncoder(quantize_onnx_static(path, tmp_path / "static.onnx", calib))
    for q in (dyn, stat):
        out = q(ids, mask, tt)
        assert (out - ref).abs().max() < 0.05 + 0.1 * ref.abs().max()
    with pytest.raises(ValueError, match="calibration"):
        quantize_onnx_static(path, tmp_path / "s2.onnx", [])
    with pytest.raises(FileNotFoundError, match="export_onnx"):
        quantize_onnx_dynamic(tmp_path / "missing.onnx", tmp_path / "x.onnx")
    with pytest.raises(FileNotFoundError, match="export_onnx"):
        OrtCrossEncoder(tmp_path / "missing.onnx")

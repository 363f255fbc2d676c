import warnings

import pytest
import torch

from helpers import tiny_cross_encoder_from, token_inputs as inputs
from recbook.compress.quantize import (
    FakeQuantLinear,
    Int8Embedding,
    cast,
    choose_qparams,
    dequantize,
    dynamic_quantize,
    int8_linear,
    prepare_qat,
    qrange,
    quantization_error,
    quantize,
    quantize_embeddings,
    trim_vocabulary,
    unprepare_qat,
    used_token_ids,
)
from recbook.compress.storage import file_size, linear_weight_names, load_compact, save_compact

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from torch.ao.quantization.observer import MinMaxObserver, PerChannelMinMaxObserver


@pytest.fixture
def model(tiny_backbone):
    return tiny_cross_encoder_from(tiny_backbone)


def test_qrange():
    assert qrange(8, True) == (-128, 127)
    assert qrange(8, False) == (0, 255)
    assert qrange(4, True) == (-8, 7)
    with pytest.raises(ValueError, match="bits"):
        qrange(1)


@pytest.mark.parametrize("symmetric,signed,dtype,qscheme", [
    (False, False, torch.quint8, torch.per_tensor_affine),
    (True, True, torch.qint8, torch.per_tensor_symmetric),
    (False, True, torch.qint8, torch.per_tensor_affine),
])
def test_choose_qparams_matches_pytorch_observer(symmetric, signed, dtype, qscheme):
    x = torch.randn(50, 20) * 3 + 0.7
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs = MinMaxObserver(dtype=dtype, qscheme=qscheme)
        obs(x)
        scale, zp = obs.calculate_qparams()
    qp = choose_qparams(x, symmetric=symmetric, signed=signed)
    torch.testing.assert_close(qp.scale.reshape(1), scale.reshape(1))
    assert int(qp.zero_point) == int(zp)
    # and quantize() gives PyTorch's integers for those parameters
    ref = torch.quantize_per_tensor(x, float(scale), int(zp), dtype).int_repr()
    assert torch.equal(quantize(x, qp), ref)


def test_per_channel_matches_pytorch():
    w = torch.randn(16, 40) * torch.linspace(0.1, 5, 16)[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
        obs(w)
        scale, zp = obs.calculate_qparams()
    qp = choose_qparams(w, per_channel=True, axis=0)
    torch.testing.assert_close(qp.scale, scale.float())
    ref = torch.quantize_per_channel(w, scale, zp, 0, torch.qint8).int_repr()
    assert torch.equal(quantize(w, qp), ref)
    # per-channel follows each row's range: far smaller error than one scale for all rows
    per_tensor = quantization_error(w, choose_qparams(w))
    per_channel = quantization_error(w, qp)
    assert per_channel["snr_db"] > per_tensor["snr_db"] + 3


def test_round_trip_error_is_at_most_half_a_step():
    x = torch.randn(1000)
    qp = choose_qparams(x, symmetric=False, signed=False)
    err = (dequantize(quantize(x, qp), qp) - x).abs().max()
    assert err <= qp.scale / 2 + 1e-6
    assert 0.0 in dequantize(quantize(torch.tensor([0.0]), qp), qp)  # zero is exact
    assert quantization_error(x, qp)["snr_db"] > 30  # 8 bits ≈ 6 dB per bit, less for Gaussians


def test_choose_qparams_rejects_bad_input():
    with pytest.raises(TypeError, match="floating-point"):
        choose_qparams(torch.arange(5))
    with pytest.raises(ValueError, match="empty"):
        choose_qparams(torch.tensor([]))
    with pytest.raises(ValueError, match="axis"):
        choose_qparams(torch.randn(3, 4), per_channel=True, axis=2)


def test_int8_linear_accumulates_in_int32_and_matches_float():
    torch.manual_seed(0)
    x, w, b = torch.randn(5, 7, 64), torch.randn(32, 64) * 0.1, torch.randn(32)
    y = int8_linear(x, w, b)
    exact = torch.nn.functional.linear(x, w, b)
    assert y.shape == exact.shape
    assert (y - exact).abs().max() < 0.05 * exact.abs().max()
    # the same arithmetic in float64 from the integers: identical up to float32 rescaling
    aq, wq = choose_qparams(x, symmetric=False, signed=False), choose_qparams(w, per_channel=True, axis=0)
    qx = quantize(x, aq).double() - aq.zero_point.double()
    ref = (qx @ quantize(w, wq).double().T) * aq.scale.double() * wq.scale.double() + b.double()
    torch.testing.assert_close(y.double(), ref, atol=1e-4, rtol=1e-5)


def test_int8_linear_agrees_with_pytorch_dynamic_int8_linear():
    torch.manual_seed(1)
    lin = torch.nn.Linear(64, 32)
    x = torch.randn(8, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        ref = quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear: per_channel_dynamic_qconfig})(x)
    ours = int8_linear(x, lin.weight, lin.bias)
    # both approximate the float result; PyTorch uses 7-bit activations on x86 (reduce_range), so allow its error
    exact = lin(x)
    assert (ours - exact).abs().max() < (ref - exact).abs().max() * 2 + 1e-3
    assert torch.corrcoef(torch.stack([ours.flatten(), ref.flatten()]))[0, 1] > 0.999


def test_int8_linear_checks_shapes_and_symmetry():
    with pytest.raises(ValueError, match="features"):
        int8_linear(torch.randn(2, 3), torch.randn(4, 5))
    w = torch.randn(4, 3)
    asym = choose_qparams(w + 5, symmetric=False, per_channel=True, axis=0)
    with pytest.raises(ValueError, match="symmetrically"):
        int8_linear(torch.randn(2, 3), w, weight_qparams=asym)


@pytest.mark.parametrize("backend", ["torch.ao", "torchao"])
def test_dynamic_quantize_keeps_outputs_and_original(model, backend):
    ids, mask, tt = inputs()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    q = dynamic_quantize(model, backend)
    with torch.no_grad():
        ref, out = model(ids, mask, tt), q(ids, mask, tt)
    assert (out - ref).abs().max() < 0.05 + 0.05 * ref.abs().max()
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert any("Linear" in type(m).__name__ and type(m) is not torch.nn.Linear for m in q.modules()) or backend == "torchao"
    with pytest.raises(ValueError, match="backend"):
        dynamic_quantize(model, "tensorrt")


def test_cast_bf16_close(model):
    ids, mask, tt = inputs()
    with torch.no_grad():
        ref, out = model(ids, mask, tt), cast(model, torch.bfloat16)(ids, mask, tt)
    assert out.dtype == torch.float32  # the cross-encoder returns float logits
    assert (out - ref).abs().max() < 0.1
    with pytest.raises(ValueError, match="dtype"):
        cast(model, torch.int8)


def test_fake_quant_linear_trains_through_rounding():
    torch.manual_seed(0)
    lin = torch.nn.Linear(16, 4)
    fq = FakeQuantLinear.from_linear(lin).train()
    x = torch.randn(32, 16)
    out = fq(x)
    assert (out - lin(x)).abs().max() < 0.05  # close to float
    out.sum().backward()
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0  # straight-through gradients
    assert bool(fq.initialized) and fq.act_min < 0 < fq.act_max


def test_prepare_and_unprepare_qat(model):
    ids, mask, tt = inputs()
    with torch.no_grad():
        ref = model(ids, mask, tt)
    prepare_qat(model)
    fq = [m for m in model.modules() if isinstance(m, FakeQuantLinear)]
    assert len(fq) == len(linear_weight_names(model))
    assert type(model.head) is torch.nn.Linear  # the head is skipped
    model.train()
    loss = model.training_loss({"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([1.0, 0.0, 1.0])})
    loss.backward()
    model.eval()
    with torch.no_grad():
        assert (model(ids, mask, tt) - ref).abs().max() < 0.1
    unprepare_qat(model)
    assert not any(isinstance(m, FakeQuantLinear) for m in model.modules())
    with torch.no_grad():
        torch.testing.assert_close(model(ids, mask, tt), ref)
    with pytest.raises(ValueError, match="no nn.Linear"):
        prepare_qat(torch.nn.ReLU())


def test_int8_embedding(model):
    emb = model.encoder.embeddings.word_embeddings
    q = Int8Embedding.from_embedding(emb)
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    assert q.weight_int8.dtype == torch.int8
    assert (q(ids) - emb(ids)).abs().max() <= q.scales.max() / 2 + 1e-6
    qm = quantize_embeddings(model)
    ids, mask, tt = inputs()
    with torch.no_grad():
        assert (qm(ids, mask, tt) - model(ids, mask, tt)).abs().max() < 0.05
    assert isinstance(model.encoder.embeddings.word_embeddings, torch.nn.Embedding)  # original untouched


def test_unknown_token_rate_counts_the_tokens_a_trimmed_vocabulary_reads_as_unk(tokenizer):
    from recbook.compress.quantize import unknown_token_rate

    known, new = ["Toy Story (1995) | Animation", "Heat (1995) | Action"], ["Zebra Heat (2031) | Action", "Toy Story (1995) | Animation"]
    keep = used_token_ids(known, tokenizer)
    assert unknown_token_rate(known, tokenizer, keep) == 0.0  # measured on the trimming texts themselves it hides the cost
    counts = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in new]
    unseen = len(tokenizer("Zebra", add_special_tokens=False)["input_ids"]) + len(tokenizer("2031", add_special_tokens=False)["input_ids"])
    assert unknown_token_rate(new, tokenizer, keep) == pytest.approx(unseen / sum(counts))  # only "Zebra" and "2031" are new
    with pytest.raises(ValueError, match="no tokens"):
        unknown_token_rate([""], tokenizer, keep)


def test_trim_vocabulary_is_exact_on_kept_tokens(model, tokenizer):
    texts = ["Toy Story (1995) | Animation", "Heat (1995) | Action, Crime"]
    keep = used_token_ids(texts, tokenizer)
    assert set(tokenizer.all_special_ids) <= set(keep.tolist())
    trimmed = trim_vocabulary(model, keep, tokenizer.unk_token_id)
    enc = tokenizer(texts[:1], texts[1:], return_tensors="pt")
    with torch.no_grad():
        ref = model(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
        out = trimmed(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    assert torch.equal(out, ref)
    table = trimmed.encoder.embeddings.word_embeddings.table
    assert table.num_embeddings == len(keep) < tokenizer.vocab_size
    # an unseen token behaves like [UNK]
    other = tokenizer("zebra", add_special_tokens=False)["input_ids"][0]
    assert other not in keep
    emb = trimmed.encoder.embeddings.word_embeddings
    torch.testing.assert_close(emb(torch.tensor([other])), emb(torch.tensor([tokenizer.unk_token_id])))
    # trimming then int8 quantizing the kept rows
    both = quantize_embeddings(trimmed)
    assert isinstance(both.encoder.embeddings.word_embeddings.table, Int8Embedding)
    with pytest.raises(ValueError, match="unk_id"):
        trim_vocabulary(model, [5, 6], tokenizer.unk_token_id)
    with pytest.raises(ValueError, match="token ids"):
        trim_vocabulary(model, [10**7], tokenizer.unk_token_id)
    with pytest.raises(ValueError, match="already"):
        trim_vocabulary(trimmed, keep, tokenizer.unk_token_id)


# ----------------------------------------------------------------------------- compact storage
def test_compact_round_trip_dense_sparse_int8(tmp_path):
    torch.manual_seed(0)
    dense = torch.randn(20, 30)
    sparse = torch.randn(40, 50)
    sparse[torch.rand_like(sparse) < 0.7] = 0
    state = {"dense": dense, "sparse": sparse, "bias": torch.randn(30), "ids": torch.arange(5), "q": torch.randn(8, 16), "sq": sparse.clone()}
    size = save_compact(state, tmp_path / "m.safetensors", int8=["q", "sq"])
    assert size == file_size(tmp_path / "m.safetensors") == file_size(tmp_path)
    back = load_compact(tmp_path / "m.safetensors")
    for k in ("dense", "sparse", "bias", "ids"):
        assert torch.equal(back[k], state[k]), k
    qp = choose_qparams(state["q"], per_channel=True, axis=0)
    assert (back["q"] - state["q"]).abs().max() <= qp.scale.max() / 2 + 1e-6
    assert (back["sq"][sparse == 0] == 0).all()  # pruned entries stay exactly zero (tiny ones may round to 0 too)
    assert (back["sq"] - sparse).abs().max() < 0.05
    assert not list(tmp_path.glob("*.tmp"))  # written atomically


def test_compact_sparse_file_is_smaller(tmp_path):
    from safetensors.torch import save_file

    w = torch.randn(256, 256)
    w[torch.rand_like(w) < 0.5] = 0
    save_file({"w": w}, str(tmp_path / "dense.safetensors"))
    fp32 = save_compact({"w": w}, tmp_path / "sparse.safetensors")
    int8 = save_compact({"w": w}, tmp_path / "sparse8.safetensors", int8=["w"])
    dense = file_size(tmp_path / "dense.safetensors")
    assert dense / fp32 > 1.8  # 1 bit mask + half the values
    assert dense / int8 > 5  # 1 bit mask + half the values in 1 byte


def test_compact_errors(tmp_path):
    with pytest.raises(KeyError, match="int8 names"):
        save_compact({"a": torch.randn(2, 2)}, tmp_path / "x", int8=["b"])
    with pytest.raises(ValueError, match="float matrices"):
        save_compact({"a": torch.randn(4)}, tmp_path / "x", int8=["a"])
    with pytest.raises(FileNotFoundError):
        load_compact(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="not a recbook compact"):
        load_compact(tmp_path / "plain.safetensors")


def test_linear_weight_names(model):
    names = linear_weight_names(model)
    assert "head.weight" not in names and all(n.endswith(".weight") for n in names)
    assert len(names) == 2 * 6  # 2 layers × (q, k, v, attention output, intermediate, output); no pooler

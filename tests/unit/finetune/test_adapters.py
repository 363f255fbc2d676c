import pytest
import torch

from recbook.finetune.adapters import AdaptedOutput, BottleneckAdapter, adapter_parameter_count, add_adapters
from recbook.finetune.peft import apply_peft, count_parameters, time_train_steps

HIDDEN, LAYERS = 32, 2  # the tiny BERT of conftest.tiny_backbone


@pytest.fixture
def model(tiny_cross_encoder):
    return tiny_cross_encoder


def batches(n=4, with_types=True):
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        b = {"input_ids": torch.randint(1000, 2000, (4, 12), generator=g), "attention_mask": torch.ones(4, 12, dtype=torch.long),
             "labels": torch.tensor([1.0, 0.0, 1.0, 0.0])}
        if with_types:
            b["token_type_ids"] = torch.cat([torch.zeros(4, 6, dtype=torch.long), torch.ones(4, 6, dtype=torch.long)], 1)
        out.append(b)
    return out


def test_adapter_starts_as_the_identity():
    adapter = BottleneckAdapter(8, 3)
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(adapter(x), x)
    assert adapter.down.weight.abs().sum() > 0  # only the up-projection starts at zero
    assert adapter.up.weight.abs().sum() == 0 and adapter.up.bias.abs().sum() == 0


def test_adapted_model_equals_the_frozen_model_at_init(model):
    model.eval()
    b = batches(1)[0]
    before = model(b["input_ids"], b["attention_mask"], b["token_type_ids"])
    add_adapters(model, bottleneck=4)
    model.eval()
    torch.testing.assert_close(model(b["input_ids"], b["attention_mask"], b["token_type_ids"]), before)
    outputs = [m for m in model.modules() if isinstance(m, AdaptedOutput)]
    assert len(outputs) == 2 * LAYERS  # after attention and after the feed-forward block of every layer


def test_only_adapters_layer_norms_and_head_train(model):
    names_before = {n for n, _ in model.named_parameters()}
    add_adapters(model, bottleneck=4)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable, "something must train"
    for n in trainable:
        assert ".adapter." in n or "LayerNorm" in n or n.startswith("head."), n
    assert any(".attention.output.adapter." in n for n in trainable) and any(".output.adapter." in n for n in trainable)
    # the pretrained weights keep their names (a BERT checkpoint still loads into them) and are frozen
    assert names_before <= {n for n, _ in model.named_parameters()}
    assert not any(p.requires_grad for n, p in model.named_parameters() if n.endswith("dense.weight") and ".adapter." not in n)


@pytest.mark.parametrize("bottleneck, layer_norms", [(4, True), (7, False)])
def test_parameter_count_matches_the_formula(model, bottleneck, layer_norms):
    add_adapters(model, bottleneck=bottleneck, train_layer_norms=layer_norms)
    head = HIDDEN + 1
    expected = adapter_parameter_count(HIDDEN, bottleneck, LAYERS, None if layer_norms else 0)
    assert count_parameters(model).trainable == expected + head
    # by hand: 2 adapters per layer of 2·d·m + d + m, and 2·layers + 1 LayerNorms of 2·d
    assert adapter_parameter_count(HIDDEN, 4, LAYERS) == 2 * 2 * (2 * 32 * 4 + 32 + 4) + 5 * 2 * 32


def test_training_moves_only_the_trainable_parameters(model):
    apply_peft(model, "adapter", bottleneck=4)  # the same, through the common entry point
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    ups = {n: p.detach().clone() for n, p in model.named_parameters() if ".adapter.up." in n}
    time_train_steps(model, batches(), steps=3, lr=1e-2)
    for n, p in model.named_parameters():
        if n in frozen:
            torch.testing.assert_close(p, frozen[n])
    assert any(not torch.equal(p, ups[n]) for n, p in model.named_parameters() if n in ups)  # the adapters learned


def test_errors(model):
    with pytest.raises(ValueError, match="positive"):
        BottleneckAdapter(8, 0)
    with pytest.raises(ValueError, match="unknown activation"):
        BottleneckAdapter(8, 2, activation="swish")
    with pytest.raises(TypeError, match="encoder"):
        add_adapters(torch.nn.Linear(2, 2))
    not_bert = torch.nn.Module()
    not_bert.encoder = torch.nn.Linear(2, 2)
    with pytest.raises(TypeError, match="BERT-style"):
        add_adapters(not_bert)
    add_adapters(model, bottleneck=2)
    with pytest.raises(ValueError, match="already has adapters"):
        add_adapters(model, bottleneck=2)

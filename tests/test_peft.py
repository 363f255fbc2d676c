import pytest
import torch
from transformers import AutoModel

from recbook.models.cross_encoder import CrossEncoder
from recbook.peft import METHODS, apply_peft, count_parameters, merge_lora, peak_memory, peft_config, time_train_steps


@pytest.fixture
def model(tiny_backbone):
    torch.manual_seed(0)
    return CrossEncoder(AutoModel.from_pretrained(tiny_backbone))


def batches(n=4):
    g = torch.Generator().manual_seed(0)
    return [{"input_ids": torch.randint(1000, 2000, (4, 12), generator=g), "attention_mask": torch.ones(4, 12, dtype=torch.long),
             "labels": torch.tensor([1.0, 0.0, 1.0, 0.0])} for _ in range(n)]


@pytest.mark.parametrize("method", METHODS)
def test_apply_peft_freezes_the_encoder_and_trains(model, method):
    before = count_parameters(model)
    assert before.trainable == before.total
    apply_peft(model, method)
    after = count_parameters(model)
    assert 0 < after.trainable < 0.1 * before.total
    assert all(p.requires_grad for p in model.head.parameters())
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    result = time_train_steps(model, batches(), steps=3, lr=1e-2)
    assert result["step_seconds"] > 0
    for n, p in model.named_parameters():
        if n in frozen:
            torch.testing.assert_close(p, frozen[n])  # the pretrained weights never move


def test_lora_counts_match_the_formula(model):
    hidden, layers, r = 32, 2, 4
    head = hidden + 1
    apply_peft(model, "lora", r=r, target_modules=["query", "value"])
    assert count_parameters(model).trainable == layers * 2 * (2 * hidden * r) + head
    assert count_parameters(model).optimizer_state_bytes() == 2 * 4 * count_parameters(model).trainable


def test_merge_lora_gives_the_same_outputs(model):
    apply_peft(model, "lora", r=4)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)  # as if trained: B starts at zero
    model.eval()
    b = batches(1)[0]
    before = model(b["input_ids"], b["attention_mask"])
    merge_lora(model)
    assert not any("lora" in n for n, _ in model.named_parameters())
    torch.testing.assert_close(model(b["input_ids"], b["attention_mask"]), before, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="no PEFT adapter"):
        merge_lora(model)


def test_errors(model):
    with pytest.raises(ValueError, match="unknown PEFT method"):
        peft_config("adapters")
    with pytest.raises(TypeError, match="encoder"):
        apply_peft(torch.nn.Linear(2, 2))
    apply_peft(model, "ia3")
    with pytest.raises(ValueError, match="only LoRA"):
        merge_lora(model)


def test_peak_memory_sees_a_large_allocation():
    with peak_memory("cpu") as small:
        torch.ones(10)
    with peak_memory("cpu") as big:
        x = torch.ones(64 * 2**20 // 4)  # 64 MiB
        x += 1
    if big["peak_bytes"] is None:
        pytest.skip("peak RSS is not readable on this platform")
    assert big["peak_bytes"] - small["peak_bytes"] > 32 * 2**20

import os

import pytest
import torch

from recbook.finetune.peft import (
    METHODS,
    adalora_orthogonality_penalty,
    adalora_ranks,
    adalora_training,
    apply_peft,
    count_parameters,
    measure_in_fresh_process,
    merge_lora,
    peak_memory,
    peft_config,
    time_train_steps,
    token_types_reaching_bert,
)
from recbook.models.text_base import bert_config
from recbook.training.loop import train_model

KWARGS = {"adalora": {"total_step": 20}, "adapter": {"bottleneck": 4}}  # AdaLoRA must know its number of steps


@pytest.fixture
def model(tiny_cross_encoder):
    return tiny_cross_encoder


def batches(n=4, with_types=False):
    g = torch.Generator().manual_seed(0)
    out = [{"input_ids": torch.randint(1000, 2000, (4, 12), generator=g), "attention_mask": torch.ones(4, 12, dtype=torch.long),
            "labels": torch.tensor([1.0, 0.0, 1.0, 0.0])} for _ in range(n)]
    if with_types:  # history = segment 0, candidate = segment 1, as the tokenizer writes a pair
        for b in out:
            b["token_type_ids"] = torch.cat([torch.zeros(4, 6, dtype=torch.long), torch.ones(4, 6, dtype=torch.long)], 1)
    return out


@pytest.mark.parametrize("method", METHODS)
def test_apply_peft_freezes_the_encoder_and_trains(model, method):
    before = count_parameters(model)
    assert before.trainable == before.total
    apply_peft(model, method, **KWARGS.get(method, {}))
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
    with pytest.raises(ValueError, match="hand-written"):
        peft_config("adapter")  # not a peft-library method
    with pytest.raises(ValueError, match="total_step"):
        peft_config("adalora")
    with pytest.raises(ValueError, match="total_step"):
        apply_peft(model, "adalora", total_step=2.5)
    with pytest.raises(ValueError, match="tinit < total_step - tfinal"):
        peft_config("adalora", total_step=10, tinit=5, tfinal=5)
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


def test_adalora_config_is_built():
    config = peft_config("adalora", total_step=50)
    assert config.peft_type.value == "ADALORA"
    assert (config.total_step, config.init_r, config.target_r, config.tinit, config.tfinal) == (50, 12, 8, 5, 10)
    assert set(config.target_modules) == {"query", "value"}
    config = peft_config("adalora", total_step=30, init_r=6, target_r=2, tinit=0, tfinal=3, target_modules=["query"])
    assert (config.init_r, config.target_r, config.tinit, config.tfinal, set(config.target_modules)) == (6, 2, 0, 3, {"query"})


def test_adalora_training_prunes_ranks_to_the_target_budget(model):
    steps, init_r, target_r = 12, 6, 2
    apply_peft(model, "adalora", total_step=steps, init_r=init_r, target_r=target_r, tinit=1, tfinal=3, dropout=0.0)
    ranks = adalora_ranks(model)
    assert len(ranks) == 2 * 2  # query and value of 2 layers
    penalty = adalora_orthogonality_penalty(model)
    assert penalty.item() > 0 and penalty.requires_grad
    config = bert_config(__import__("recbook.perf.device", fromlist=["get_profile"]).get_profile("quick"), progress=False, device="cpu",
                         max_steps=steps, epochs=steps, lr=1e-2, amp="off")
    with adalora_training(model) as state:
        assert "training_loss" in model.__dict__  # the penalised loss is in place during training
        result = train_model(model, batches(4), config)
    assert result.steps == steps and state["steps"] == steps  # one rank allocation after each optimizer step
    assert "training_loss" not in model.__dict__  # the class's loss is back
    final = adalora_ranks(model)
    assert sum(final.values()) == target_r * len(final) < init_r * len(final)  # the budget reached its target ...
    assert all(0 <= r <= init_r for r in final.values())
    # ... and the hook is gone: another optimizer stepping this model no longer triggers allocation
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0).step()
    assert state["steps"] == steps


def test_adalora_helpers_need_an_adalora_model(model):
    apply_peft(model, "lora")
    for helper in (adalora_ranks, adalora_orthogonality_penalty):
        with pytest.raises(ValueError, match="no AdaLoRA adapter"):
            helper(model)
    with pytest.raises(ValueError, match="no AdaLoRA adapter"):
        with adalora_training(model):
            pass


@pytest.mark.parametrize("method, types_kept", [("lora", True), ("ia3", True), ("adapter", True), ("prefix", False)])
def test_which_methods_pass_token_type_ids_to_bert(model, method, types_kept):
    b = batches(1, with_types=True)[0]
    assert torch.equal(token_types_reaching_bert(model, b), b["token_type_ids"])  # the plain model uses them
    apply_peft(model, method, **KWARGS.get(method, {}))
    seen = token_types_reaching_bert(model, b)
    if types_kept:
        assert torch.equal(seen, b["token_type_ids"])
    else:  # peft's prompt learning drops them: BERT falls back to all zeros
        assert seen is None or not seen.any()


def test_token_types_reaching_bert_needs_bert():
    with pytest.raises(TypeError, match="token_type_embeddings"):
        token_types_reaching_bert(torch.nn.Linear(2, 2), {})


@pytest.mark.slow
def test_measure_in_fresh_process(tiny_backbone):
    out = measure_in_fresh_process("lora", {"r": 4}, model_name_or_path=tiny_backbone, steps=1, batch_size=2, seq_len=8, threads=1)
    assert out["method"] == "lora" and out["pid"] != os.getpid()  # measured in another process
    assert out["trainable"] == 2 * 2 * (2 * 32 * 4) + 33  # LoRA on query/value of the tiny BERT, plus the head
    assert out["step_seconds"] > 0 and (out["batch_size"], out["seq_len"]) == (2, 8)
    if out["peak_bytes"] is not None and out["rss_loaded_bytes"] is not None:
        assert out["peak_bytes"] >= out["rss_loaded_bytes"] > 10 * 2**20  # a Python process with torch loaded
        assert out["training_bytes"] == out["peak_bytes"] - out["rss_loaded_bytes"]


@pytest.mark.slow
def test_measure_in_fresh_process_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown method"):
        measure_in_fresh_process("qlora")
    with pytest.raises(ValueError, match="steps"):
        measure_in_fresh_process("lora", steps=0)
    with pytest.raises(RuntimeError, match="'lora' in a fresh process failed"):
        measure_in_fresh_process("lora", model_name_or_path=tmp_path / "no-such-model", steps=1)
    with pytest.raises(RuntimeError, match="did not finish within"):
        measure_in_fresh_process("full", steps=1, timeout=0.5)

import pytest
import torch

from recbook.train import (
    TrainConfig,
    autocast_dtype,
    load_checkpoint,
    parameter_groups,
    save_checkpoint,
    train_model,
    warmup_linear_schedule,
)


class Tiny(torch.nn.Module):
    """Logistic regression with a LayerNorm, enough to exercise every part of the loop."""

    def __init__(self, d=6):
        super().__init__()
        self.norm = torch.nn.LayerNorm(d)
        self.linear = torch.nn.Linear(d, 1)
        self.drop = torch.nn.Dropout(0.2)

    def training_loss(self, batch):
        logits = self.linear(self.drop(self.norm(batch["x"]))).squeeze(-1)
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, batch["y"])


def make_batches(n=12, bs=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(6, generator=g)
    out = []
    for _ in range(n):
        x = torch.randn(bs, 6, generator=g)
        out.append({"x": x, "y": (x @ w > 0).float()})
    return out


def accuracy(model, batches):
    model.eval()
    with torch.no_grad():
        correct = sum(((model.linear(model.norm(b["x"])).squeeze(-1) > 0).float() == b["y"]).sum().item() for b in batches)
    return correct / sum(len(b["y"]) for b in batches)


def test_loop_learns_and_logs():
    batches = make_batches()
    model = Tiny()
    res = train_model(model, batches, TrainConfig(epochs=5, lr=0.05, log_every=4, progress=False, device="cpu"))
    losses = [h["loss"] for h in res.history if "loss" in h]
    assert res.steps == 60 and losses[-1] < losses[0] and accuracy(model, batches) > 0.75
    assert res.examples == 60 * 16 and res.seconds > 0


def test_no_weight_decay_on_bias_and_norm():
    m = Tiny()
    groups = parameter_groups(m, 0.1)
    # expected by hand: only the Linear's weight matrix decays; LayerNorm weight and both biases do not
    assert [({id(p) for p in g["params"]}, g["weight_decay"]) for g in groups] == [
        ({id(m.linear.weight)}, 0.1), ({id(m.norm.weight), id(m.norm.bias), id(m.linear.bias)}, 0.0)]
    everything = parameter_groups(m, 0.1, decay_norm_and_bias=True)
    assert [({id(p) for p in g["params"]}, g["weight_decay"]) for g in everything] == [({id(p) for p in m.parameters()}, 0.1)]
    m.head = torch.nn.Linear(6, 2)  # a new output layer gets its own learning rate, decay rule unchanged
    with_head = parameter_groups(m, 0.1, head_lr=1e-2)
    assert [({id(p) for p in g["params"]}, g["weight_decay"], g.get("lr")) for g in with_head] == [
        ({id(m.linear.weight)}, 0.1, None), ({id(m.norm.weight), id(m.norm.bias), id(m.linear.bias)}, 0.0, None),
        ({id(m.head.weight)}, 0.1, 1e-2), ({id(m.head.bias)}, 0.0, 1e-2)]


def test_schedule_warmup_then_linear_decay():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_linear_schedule(opt, warmup_steps=4, total_steps=10)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4:] == pytest.approx([1.0, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])


def test_gradient_accumulation_equals_large_batch():
    small = make_batches(n=4, bs=8)
    big = [{"x": torch.cat([a["x"], b["x"]]), "y": torch.cat([a["y"], b["y"]])} for a, b in zip(small[::2], small[1::2])]
    cfg = dict(epochs=1, lr=0.1, warmup_ratio=0.0, grad_clip=None, progress=False, device="cpu", amp="off")
    m1, m2 = Tiny(), Tiny()
    m2.load_state_dict(m1.state_dict())
    m1.drop.p = m2.drop.p = 0.0
    train_model(m1, small, TrainConfig(grad_accum=2, **cfg))
    train_model(m2, big, TrainConfig(**cfg))
    for a, b in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_clipping_bounds_the_update():
    batches = [{"x": torch.randn(8, 6) * 1e4, "y": torch.ones(8)}]
    m = Tiny()
    before = m.linear.weight.detach().clone()
    train_model(m, batches, TrainConfig(lr=1.0, warmup_ratio=0.0, grad_clip=1e-3, weight_decay=0.0, progress=False, device="cpu"))
    assert (m.linear.weight - before).abs().max() <= 1.0 + 1e-4  # Adam's first step is ±lr at most


def test_early_stopping_and_best_weights():
    batches = make_batches()
    scores = iter([0.5, 0.7, 0.6, 0.55, 0.9])
    snapshots = []

    def evaluate_fn(model):
        snapshots.append(model.linear.weight.detach().clone())
        return {"NDCG@10": next(scores)}

    m = Tiny()
    res = train_model(m, batches, TrainConfig(epochs=5, eval_every=6, patience=2, progress=False, device="cpu"), evaluate_fn)
    assert res.stopped_early and res.best_metric == 0.7 and res.best_step == 12 and res.steps == 24
    torch.testing.assert_close(m.linear.weight, snapshots[1])  # the best weights are restored


def test_evaluate_fn_must_return_the_metric():
    with pytest.raises(KeyError, match="NDCG@10"):
        train_model(Tiny(), make_batches(n=2), TrainConfig(progress=False, device="cpu"), lambda m: {"AUC": 0.5})


def test_checkpoint_resume_is_identical(tmp_path):
    batches = make_batches(n=10)
    cfg = dict(epochs=3, lr=0.05, progress=False, device="cpu", seed=3, amp="off")
    full = Tiny()
    init = {k: v.clone() for k, v in full.state_dict().items()}
    train_model(full, batches, TrainConfig(**cfg))

    class PowerCut:
        """The same batches, but the machine dies in the middle of the second epoch."""

        def __len__(self):
            return len(batches)

        def __iter__(self):
            self.calls = getattr(self, "calls", 0) + 1
            for i, b in enumerate(batches):
                if self.calls == 2 and i == 4:
                    raise RuntimeError("power cut")
                yield b

    # the same run, interrupted (a checkpoint is written at every epoch end) ...
    first = Tiny()
    first.load_state_dict(init)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(RuntimeError, match="power cut"):
        train_model(first, PowerCut(), TrainConfig(checkpoint_dir=str(ckpt), **cfg))
    assert (ckpt / "model.safetensors").is_file() and (ckpt / "optimizer.safetensors").is_file()
    assert not list(tmp_path.glob("*.tmp"))
    # ... and resumed from it in a fresh model
    resumed = Tiny()
    res = train_model(resumed, batches, TrainConfig(**cfg), resume_from=ckpt)
    assert res.steps == 30
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_checkpoint_round_trip_and_errors(tmp_path):
    m = Tiny()
    save_checkpoint(tmp_path / "c", m, state={"step": 7})
    m2 = Tiny()
    assert load_checkpoint(tmp_path / "c", m2) == {"step": 7}
    torch.testing.assert_close(m.linear.weight, m2.linear.weight)
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_checkpoint(tmp_path / "nope", m2)


def test_config_and_model_errors():
    for bad in ({"epochs": 0}, {"grad_accum": 0}, {"amp": "int8"}, {"warmup_ratio": 1.0}, {"max_steps": 0}):
        with pytest.raises(ValueError):
            TrainConfig(**bad)
    with pytest.raises(TypeError, match="training_loss"):
        train_model(torch.nn.Linear(2, 1), make_batches(n=1), TrainConfig(progress=False))
    with pytest.raises(ValueError, match="empty"):
        train_model(Tiny(), [], TrainConfig(progress=False, device="cpu"))


def test_autocast_choice(monkeypatch):
    import recbook.device

    assert autocast_dtype("off", "cuda") is None
    assert autocast_dtype("bf16", "cpu") == torch.bfloat16
    assert autocast_dtype("fp16", "cuda") == torch.float16
    assert autocast_dtype("auto", "mps") is None
    no_bf16 = {"AMX-BF16": False, "AVX-512 BF16": False}
    for features, expected in ((no_bf16, None), ({**no_bf16, "AMX-BF16": True}, torch.bfloat16),
                               ({**no_bf16, "AVX-512 BF16": True}, torch.bfloat16)):
        monkeypatch.setattr(recbook.device, "cpu_features", lambda features=features: features)
        assert autocast_dtype("auto", "cpu") == expected, features  # bf16 only with native bf16 instructions
    for supported, expected in ((True, torch.bfloat16), (False, torch.float16)):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda supported=supported: supported)
        assert autocast_dtype("auto", "cuda:1") == expected  # GPUs without bf16 get fp16 (with a GradScaler)


def test_replacing_a_checkpoint_never_leaves_none(tmp_path, monkeypatch):
    from pathlib import Path

    first, second = Tiny(), Tiny()
    with torch.no_grad():
        second.linear.weight.add_(1.0)
    save_checkpoint(tmp_path / "c", first, state={"step": 1})
    real_rename, calls = Path.rename, []

    def crash_on_second_rename(self, target):  # a crash after the old checkpoint moved aside, before the new one moved in
        calls.append(self.name)
        if len(calls) == 2:
            raise OSError("simulated crash")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", crash_on_second_rename)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(tmp_path / "c", second, state={"step": 2})
    monkeypatch.undo()
    loaded = Tiny()
    assert load_checkpoint(tmp_path / "c", loaded) == {"step": 1}  # the whole previous checkpoint, not nothing
    torch.testing.assert_close(loaded.linear.weight, first.linear.weight)
    save_checkpoint(tmp_path / "c", second, state={"step": 2})  # the next save recovers and cleans up
    assert load_checkpoint(tmp_path / "c", loaded) == {"step": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_last_partial_accumulation_group_is_a_mean_over_its_own_batches():
    batches = make_batches(n=5, bs=4)  # grad_accum 4: one group of 4 micro-batches, then a group of 1
    model = Tiny()
    model.drop.p = 0.0
    seen = []  # (gradient handed to the optimizer, the weights it was computed at)
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    hook = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: seen.append((model.linear.weight.grad.detach().clone(),
                                               {k: v.detach().clone() for k, v in model.state_dict().items()})))
    try:
        train_model(model, batches, TrainConfig(epochs=1, lr=1e-3, grad_accum=4, warmup_ratio=0.0, grad_clip=None, amp="off",
                                                progress=False, device="cpu"))
    finally:
        hook.remove()
    assert len(seen) == 2
    reference = Tiny().eval()  # no dropout, as in the run above
    for (grad, weights), group in zip(seen, (batches[:4], batches[4:])):
        reference.load_state_dict(weights)
        expected = torch.autograd.grad(sum(reference.training_loss(b) for b in group) / len(group), reference.linear.weight)[0]
        torch.testing.assert_close(grad, expected)  # the partial group: its own mean, not a quarter of it


def test_patience_counts_evaluations_in_a_row_without_improvement():
    def run(scores, patience):
        it = iter(scores)
        return train_model(Tiny(), make_batches(n=2), TrainConfig(epochs=len(scores), patience=patience, progress=False, device="cpu"),
                           lambda m: {"NDCG@10": next(it)})

    res = run([0.5, 0.7, 0.6, 0.65, 0.9, 0.9], patience=2)  # after the best (0.7): 0.6, 0.65 — two without improvement
    assert res.stop_reason == "patience" and res.best_step == 4 and len([h for h in res.history if "NDCG@10" in h]) == 4
    res = run([0.5, 0.4, 0.6, 0.55, 0.5, 0.9], patience=2)  # a new best (0.6) starts the count again
    assert res.stop_reason == "patience" and res.best_step == 6 and len([h for h in res.history if "NDCG@10" in h]) == 5
    res = run([0.5, 0.4, 0.6, 0.55, 0.7, 0.6], patience=2)  # never two in a row: runs all its epochs
    assert res.stop_reason is None and not res.stopped_early and res.steps == 12
    assert run([0.5, 0.4, 0.9], patience=1).steps == 4  # patience 1: the first evaluation without improvement stops
    with pytest.raises(ValueError, match="patience"):
        TrainConfig(patience=0)

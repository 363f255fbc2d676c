import pytest
import torch

from recbook.training.checkpoint import load_checkpoint, save_checkpoint
from recbook.training.loop import TrainConfig, autocast_dtype, parameter_groups, train_model, warmup_linear_schedule


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
    import recbook.perf.device

    assert autocast_dtype("off", "cuda") is None
    assert autocast_dtype("bf16", "cpu") == torch.bfloat16
    assert autocast_dtype("fp16", "cuda") == torch.float16
    assert autocast_dtype("auto", "mps") is None
    no_bf16 = {"AMX-BF16": False, "AVX-512 BF16": False}
    for features, expected in ((no_bf16, None), ({**no_bf16, "AMX-BF16": True}, torch.bfloat16),
                               ({**no_bf16, "AVX-512 BF16": True}, torch.bfloat16)):
        monkeypatch.setattr(recbook.perf.device, "cpu_features", lambda features=features: features)
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


def test_evaluations_and_checkpoints_say_where_they_happened(tmp_path):
    batches = make_batches(n=10)  # 10 micro-batches = 10 steps per epoch
    common = dict(epochs=3, progress=False, device="cpu", amp="off", log_every=100)

    def where(res):
        return [(h["step"], h["epoch"], h["micro"]) for h in res.history if "NDCG@10" in h]

    # every 5 steps; stopped by patience mid-epoch, at step 15 = 1 epoch + 5 micro-batches
    scores = iter([0.9, 0.5, 0.4])
    res = train_model(Tiny(), batches, TrainConfig(eval_every=5, patience=2, checkpoint_dir=str(tmp_path / "c"), **common),
                      lambda m: {"NDCG@10": next(scores)})
    assert where(res) == [(5, 0, 5), (10, 1, 0), (15, 1, 5)] and res.stop_reason == "patience"  # step 10 ends epoch 0
    state = load_checkpoint(tmp_path / "c", Tiny())
    assert (state["step"], state["epoch"], state["micro_in_epoch"], state["stop_reason"]) == (15, 1, 5, "patience")
    again = train_model(Tiny(), batches, TrainConfig(eval_every=5, patience=2, **common), lambda m: {"NDCG@10": 0.0},
                        resume_from=tmp_path / "c")
    assert again.steps == 15 and again.history == res.history and again.stop_reason == "patience"  # it had ended: no more training
    # evaluating at each epoch's end gives the same labels; a last evaluation at max_steps mid-epoch is not an epoch's end
    res = train_model(Tiny(), batches, TrainConfig(max_steps=25, **common), lambda m: {"NDCG@10": 0.5})
    assert where(res) == [(10, 1, 0), (20, 2, 0), (25, 2, 5)]
    assert [(h["step"], h["epoch"], h["micro"]) for h in res.history if "loss" in h] == [(25, 2, 5)]


class Noisy(Tiny):
    """Tiny whose loss also draws from NumPy's and Python's RNGs (as a negative sampler would), and that can die."""

    def __init__(self, crash_at=None):
        super().__init__()
        self.calls, self.crash_at = 0, crash_at

    def training_loss(self, batch):
        import random

        import numpy as np

        self.calls += 1
        if self.calls == self.crash_at:
            raise RuntimeError("power cut")
        return super().training_loss(batch) * (1 + 0.5 * np.random.rand() + 0.5 * random.random())


class Scripted:
    """evaluate_fn: scripted NDCG@10 per evaluation (starting at evaluation ``done``), plus a fingerprint of the weights."""

    def __init__(self, scores, done=0):
        self.scores, self.calls = scores, done

    def __call__(self, model):
        self.calls += 1
        return {"NDCG@10": self.scores[self.calls - 1], "weights": float(model.linear.weight.double().sum())}


def shuffled(own_generator: bool):
    samples = [{"x": b["x"][i], "y": b["y"][i]} for b in make_batches(n=12, bs=8, seed=1) for i in range(8)]  # 96 samples
    generator = torch.Generator().manual_seed(5) if own_generator else None
    return torch.utils.data.DataLoader(samples, batch_size=8, shuffle=True, generator=generator)  # 12 micro-batches


RESUME_CASES = {
    # evaluations every 4 steps (6 per epoch, grad_accum 2): best at step 8, then 12, 16, 20 fail → patience 3 stops at 20
    "mid-epoch checkpoint, best weights from before it": (
        True, dict(eval_every=4, checkpoint_every=3, patience=3, grad_accum=2), [0.5, 0.9, 0.6, 0.7, 0.8, 0.95], dict(crash_at=32)),
    "epoch-end checkpoint": (
        True, dict(eval_every=4, checkpoint_every=3, patience=3, grad_accum=2), [0.5, 0.9, 0.6, 0.7, 0.8, 0.95], dict(crash_at=37)),
    # an evaluation each epoch (12 steps): best after epoch 2 (step 24), then 36 and 48 fail → patience 2 stops at 48;
    # the run leaves (stop_after) mid-epoch, order drawn from the global RNG
    "left mid-epoch, evaluation per epoch, global-RNG shuffle": (
        False, dict(patience=2, epochs=6), [0.5, 0.8, 0.7, 0.75, 0.9, 0.9], dict(stop_after=30)),
}


@pytest.mark.parametrize("case", RESUME_CASES)
def test_resume_with_early_stopping_is_the_run_that_never_stopped(tmp_path, case):
    own_generator, settings, scores, interruption = RESUME_CASES[case]
    cfg = {**dict(epochs=4, lr=0.05, log_every=5, progress=False, device="cpu", seed=3, amp="off", keep_best=True), **settings}
    torch.manual_seed(0)
    init = Noisy().state_dict()

    def fresh(**kw):
        model = Noisy(**kw)
        model.load_state_dict(init)
        return model

    straight = fresh()
    full = train_model(straight, shuffled(own_generator), TrainConfig(checkpoint_dir=str(tmp_path / "straight"), **cfg), Scripted(scores))
    assert full.stop_reason == "patience" and full.best_step < full.steps

    ckpt = tmp_path / "interrupted"
    interrupted_cfg = TrainConfig(checkpoint_dir=str(ckpt), **{**cfg, "stop_after": interruption.get("stop_after")})
    if "crash_at" in interruption:
        with pytest.raises(RuntimeError, match="power cut"):
            train_model(fresh(crash_at=interruption["crash_at"]), shuffled(own_generator), interrupted_cfg, Scripted(scores))
    else:
        train_model(fresh(), shuffled(own_generator), interrupted_cfg, Scripted(scores))
    saved = load_checkpoint(ckpt, Noisy())
    assert full.best_step <= saved["step"] < full.steps and "best_weights" in saved  # the best came before the interruption
    assert (saved["micro_in_epoch"] == 0) == (case == "epoch-end checkpoint")

    resumed = Noisy()
    done = len([h for h in saved["history"] if "NDCG@10" in h])
    res = train_model(resumed, shuffled(own_generator), TrainConfig(checkpoint_dir=str(ckpt), **cfg), Scripted(scores, done),
                      resume_from=ckpt)
    assert (res.steps, res.best_metric, res.best_step, res.stop_reason, res.stopped_early) == (
        full.steps, full.best_metric, full.best_step, full.stop_reason, full.stopped_early)
    assert res.history == full.history  # losses, learning rates, metrics and weight fingerprints, step by step
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0)  # the best weights, restored at the end
    from safetensors.torch import load_file

    last_straight, last_resumed = load_file(str(tmp_path / "straight" / "model.safetensors")), load_file(str(ckpt / "model.safetensors"))
    for k in last_straight:
        torch.testing.assert_close(last_straight[k], last_resumed[k], atol=0, rtol=0)  # the weights at the stop


def test_resume_restores_the_grad_scaler(tmp_path, monkeypatch):
    """fp16 autocast uses a GradScaler (on CUDA); on a CPU the same path runs with torch's CPU GradScaler."""
    real, scalers = torch.amp.GradScaler, []

    def cpu_scaler(device="cuda", **kw):
        scalers.append(real("cpu", init_scale=2.0**10, growth_interval=2))
        return scalers[-1]

    monkeypatch.setattr(torch.amp, "GradScaler", cpu_scaler)
    batches = make_batches(n=10)
    cfg = dict(epochs=2, lr=0.05, amp="fp16", progress=False, device="cpu", seed=1, checkpoint_every=3)
    straight = Tiny()
    init = {k: v.clone() for k, v in straight.state_dict().items()}
    train_model(straight, batches, TrainConfig(**cfg))
    first = Tiny()
    first.load_state_dict(init)
    train_model(first, batches, TrainConfig(checkpoint_dir=str(tmp_path / "c"), stop_after=7, **cfg))
    assert scalers[-1].state_dict() != real("cpu", init_scale=2.0**10, growth_interval=2).state_dict()  # it moved
    resumed = Tiny()
    train_model(resumed, batches, TrainConfig(**cfg), resume_from=tmp_path / "c")
    assert scalers[-1].state_dict() == scalers[0].state_dict()  # scale and growth tracker as in the straight run
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_base_rate_loss_is_the_log_loss_of_predicting_the_share_of_positives():
    from sklearn.metrics import log_loss

    from recbook.training.loop import base_rate_loss

    y = [1] + [0] * 2  # one positive per two negatives, as 07's quick profile trains the cross-encoder
    assert base_rate_loss(1 / 3) == pytest.approx(log_loss(y, [1 / 3] * 3), rel=1e-9)
    with pytest.raises(ValueError, match="positive_share"):
        base_rate_loss(0.0)


def test_loss_progress_separates_a_model_that_learned_from_one_that_did_not():
    """07's cause line: the cross-encoder's 0.688 → 0.636 against a floor of 0.637 has not learned; the two-tower's
    3.455 → 3.165 (8 % lower, no floor) has not either; a loss that halves has."""
    from recbook.training.loop import base_rate_loss, loss_progress

    cross = loss_progress(0.688, 0.636, 60, floor=base_rate_loss(1 / 3))
    assert not cross.learned and "0.637 for knowing nothing" in cross.text and cross.text.endswith("it has barely learned")
    tower = loss_progress(3.455, 3.165, 60)
    assert not tower.learned and "(8% lower)" in tower.text
    assert loss_progress(3.4, 1.7, 600).learned and loss_progress(0.69, 0.40, 600, floor=0.637).learned

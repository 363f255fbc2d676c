import pytest
import torch

from helpers import tiny_cross_encoder_from
from recbook.perf import accel


@pytest.fixture
def model(tiny_backbone):
    return tiny_cross_encoder_from(tiny_backbone)


def batch(n=4, length=10):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 3000, (n, length), generator=g)
    mask = torch.ones_like(ids)
    mask[0, length // 2 :] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids), "labels": torch.tensor([1.0, 0.0] * (n // 2))}


def test_time_call_counts_and_rejects_bad_repeats():
    calls = []
    t = accel.time_call(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and t["min_s"] <= t["median_s"]
    with pytest.raises(ValueError, match="repeats"):
        accel.time_call(lambda: None, repeats=0)


def test_precision_report(model):
    table = accel.precision_report(model, batch(), "cpu", repeats=1)
    assert list(table.index) == ["fp32", "bf16", "fp16", "fp32 (again)"]  # the A/A row shows the timing noise
    assert float(table.loc["fp32", "max_abs_logit_error"]) == 0.0 and float(table.loc["fp32 (again)", "max_abs_logit_error"]) == 0.0
    assert float(table.loc["bf16", "max_abs_logit_error"]) < 0.1  # bf16 keeps ~3 significant digits
    assert float(table.loc["fp32", "speed-up vs fp32"]) == 1.0


def compile_unavailable() -> str | None:
    """Why torch.compile cannot run on this machine (e.g. no C++ compiler for inductor), or None if it can."""
    try:
        torch.compile(lambda x: x * 2 + 1, dynamic=False)(torch.ones(3))
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
    return None


@pytest.mark.slow
def test_compile_report_matches_eager(model):
    out = accel.compile_report(model, batch(), "cpu", repeats=1)
    if out["status"] != "ok":  # reported, not raised; acceptable only where torch.compile cannot work at all
        assert out["status"].startswith("skipped: torch.compile failed here"), out
        reason = compile_unavailable()
        if reason is None:
            pytest.fail(f"compile_report gave {out['status']!r} although torch.compile works on this machine")
        pytest.skip(f"torch.compile cannot run here ({reason})")
    assert out["mode"] == "default" and out["eager_ms"] > 0 and out["compiled_ms"] > 0
    assert out["max_abs_logit_difference"] < 1e-4 and out["first_call_s"] > 0 and out["speed_up"] > 0
    assert out["verdict"] == "too few rounds"  # one round: no interval


def test_compile_report_reports_a_failed_compile(model, monkeypatch):
    class Broken(torch.nn.Module):
        def forward(self, *args):
            raise RuntimeError("no C++ compiler found\nsecond line")

    monkeypatch.setattr(torch, "compile", lambda module, **kwargs: Broken())
    out = accel.compile_report(model, batch(), "cpu", repeats=1)
    assert out == {"status": "skipped: torch.compile failed here (RuntimeError: no C++ compiler found)"}


def test_attention_report_same_outputs(tiny_backbone):
    table = accel.attention_report(str(tiny_backbone), batch(), "cpu", repeats=1)
    assert list(table.index) == ["eager", "sdpa", "eager (again)"]
    assert float(table.loc["sdpa", "max_abs_difference"]) < 1e-5 and set(table["verdict"]) == {"baseline", "too few rounds"}


def test_batch_size_sweep_and_dataloader_sweep(model):
    sizes = accel.batch_size_sweep(model, lambda n: batch(n), sizes=(2, 4), repeats=1)
    assert list(sizes.index) == [2, 4] and (sizes["pairs_per_s"] > 0).all()
    data = [{"x": torch.tensor([i])} for i in range(40)]
    loading = accel.dataloader_sweep(data, None, batch_size=4, workers=(0,), batches=5)
    assert int(loading.loc[0, "batches"]) == 5 and float(loading.loc[0, "batches_per_s"]) > 0


def test_profile_step_lists_matmuls(model):
    ops = accel.profile_step(model, batch(), "cpu", top=15)
    assert {"operator", "calls", "self_ms", "share"} <= set(ops.columns)
    assert any("mm" in name for name in ops["operator"])  # the Linear layers' matrix multiplications
    forward_only = accel.profile_step(model, batch(), "cpu", top=5, train=False)
    assert len(forward_only) == 5


def test_gpu_and_tpu_paths_skip_cleanly_on_cpu(model):
    assert accel.fp16_grad_scaler_steps(model, [batch()], "cpu")["status"].startswith("skipped")
    if not accel.xla_available():
        assert accel.xla_train_steps(model, [batch()])["status"].startswith("skipped")


def test_buckets():
    assert accel.bucket_length(1) == 32 and accel.bucket_length(33) == 64 and accel.bucket_length(256) == 256
    with pytest.raises(ValueError, match="bucket"):
        accel.bucket_length(257)
    b = accel.pad_to_bucket(batch(2, 40))
    assert b["input_ids"].shape == (2, 64) and b["attention_mask"][:, 40:].sum() == 0 and b["labels"].shape == (2,)


def test_gpu_check_skips_without_cuda():
    import json
    import subprocess
    import sys
    from pathlib import Path

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: run tools/gpu_check.py by hand")
    done = subprocess.run([sys.executable, "tools/gpu_check.py"], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[3])
    assert done.returncode == 0 and json.loads(done.stdout)["status"] == "skipped"


def test_self_time_reads_device_time_on_gpu_and_cpu_time_otherwise():
    from types import SimpleNamespace

    new = SimpleNamespace(self_device_time_total=7.0, self_cpu_time_total=2.0)  # torch >= 2.4
    old = SimpleNamespace(self_cuda_time_total=5.0, self_cpu_time_total=2.0)  # older torch
    assert accel.self_time_us(new, "cuda") == 7.0 and accel.self_time_us(old, "cuda:0") == 5.0
    assert accel.self_time_us(new, "cpu") == 2.0
    with pytest.raises(AttributeError, match="self_device_time_total"):
        accel.self_time_us(SimpleNamespace(self_cpu_time_total=1.0), "cuda")

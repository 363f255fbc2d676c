import random

import numpy as np
import pytest
import torch

from recbook import profile as profiles
from recbook.perf import device


def test_detect_device_on_this_machine():
    found = device.available_devices()
    assert found[-1] == "cpu" and len(set(found)) == len(found)
    assert device.detect_device() == found[0]  # available_devices lists the best device first
    assert device.detect_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="not available"):
        device.detect_device("tpu-v9")


@pytest.mark.parametrize("available, best", [
    (["cpu"], "cpu"),
    (["mps", "cpu"], "mps"),
    (["cpu", "mps", "xla"], "xla"),
    (["cpu", "xla", "mps", "cuda"], "cuda"),
])
def test_detect_device_prefers_cuda_then_xla_then_mps_then_cpu(monkeypatch, available, best):
    monkeypatch.setattr(device, "available_devices", lambda: available)
    assert device.detect_device() == best
    assert device.detect_device("cpu") == "cpu"


def test_available_devices_lists_the_best_first(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(device, "_has_torch_xla", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert device.available_devices() == ["cuda", "xla", "mps", "cpu"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert device.available_devices() == ["xla", "cpu"]


def test_seed_everything_reproduces_all_generators():
    device.seed_everything(7)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    device.seed_everything(7)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a
    with pytest.raises(ValueError):
        device.seed_everything(-1)


def test_cpu_features_from_flag_strings():
    f = device.cpu_features("fpu sse avx2 fma avx512f avx512_vnni amx_int8")
    assert f["AVX2"] and f["AVX-512F"] and f["AVX-512 VNNI"] and f["AMX-INT8"] and not f["AMX-BF16"]
    assert not any(device.cpu_features("").values())
    assert set(device.cpu_features()) == set(f)  # this machine's flags parse into the same keys


def test_environment_report_and_format():
    report = device.environment_report()
    for key in ("python", "torch", "device", "cpu_features", "torch_threads", "profile", "recbook"):
        assert key in report
    assert report["torch"] == torch.__version__
    text = device.format_report(report)
    assert "torch" in text and text.count("\n") == len(report) - 1
    assert device.torch_cpu_capability()


def test_profiles(monkeypatch):
    monkeypatch.delenv("RECBOOK_PROFILE", raising=False)
    expected = "full" if torch.cuda.is_available() else "quick"
    assert profiles.get_profile().name == expected
    monkeypatch.setenv("RECBOOK_PROFILE", "full")
    assert profiles.get_profile().name == "full"
    assert profiles.get_profile("quick").name == "quick"
    assert profiles.get_profile("quick", epochs=5).epochs == 5
    quick, full = profiles.PROFILES["quick"], profiles.PROFILES["full"]
    assert quick.n_users < full.n_users and quick.max_length <= full.max_length
    monkeypatch.setenv("RECBOOK_PROFILE", "huge")
    with pytest.raises(ValueError, match="RECBOOK_PROFILE"):
        profiles.get_profile()
    with pytest.raises(ValueError, match="unknown profile field"):
        profiles.get_profile("quick", n_userz=3)


def test_torch_threads_restores_the_count():
    import torch

    from recbook.perf.device import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="positive integer"):
        with torch_threads(0):
            pass

"""recbook.timing: the one module the benchmarks time and measure memory with."""

import sys

import pytest
import torch

from recbook import accel, bench, timing


def test_timed_returns_the_result_and_seconds():
    out, seconds = timing.timed(lambda: sum(range(1000)))
    assert out == 499500 and seconds >= 0


def test_time_call_makes_exactly_warmup_plus_repeats_calls():
    calls = []
    t = timing.time_call(lambda: calls.append(1), repeats=4, warmup=3)
    assert len(calls) == 7 and 0 <= t["min_s"] <= t["median_s"]
    with pytest.raises(ValueError, match="repeats"):
        timing.time_call(lambda: None, repeats=0)


def test_peak_memory_sees_an_allocation_on_linux():
    with timing.peak_memory() as mem:
        block = bytearray(64 * 2**20)
        block[:: 4096] = b"x" * len(block[:: 4096])  # touch every page, so it is resident
    if not sys.platform.startswith("linux"):
        assert mem["peak_bytes"] is None
        return
    assert mem["peak_bytes"] >= 64 * 2**20 and "VmHWM" in mem["how"]
    assert timing.read_memory_status("VmRSS") > 0 and timing.read_memory_status("NoSuchField") is None


def test_weights_bytes_counts_parameters_and_buffers_once():
    lin = torch.nn.Linear(4, 3)
    lin.register_buffer("scale", torch.ones(2))
    assert timing.weights_bytes(lin) == (12 + 3 + 2) * 4
    assert timing.weights_bytes(object()) is None


def test_old_names_are_the_timing_modules():
    assert accel.time_call is timing.time_call and accel.synchronize is timing.synchronize
    assert bench.weights_bytes is timing.weights_bytes and bench.peak_memory is timing.peak_memory

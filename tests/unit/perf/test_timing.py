"""recbook.perf.timing: the one module the benchmarks time and measure memory with."""

import sys

import pytest
import torch

from recbook.compress import bench
from recbook.perf import accel, timing


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


@pytest.mark.skipif(not (sys.platform.startswith("linux") and timing.trim_freed_memory()),
                    reason="VmHWM and glibc's malloc_trim are Linux/glibc's")
def test_a_block_after_a_bigger_one_is_not_measured_smaller():
    """Regression: 09 measured the freezing choices one after another; the allocator kept the pages a bigger step had
    freed, the next block reused them, and its added peak read 29 MB where it was 1,296 MB alone. peak_memory returns
    freed memory to the system first (trim_freed_memory), so a block's added peak does not depend on what ran before."""
    import torch

    def added():
        with timing.peak_memory() as mem:
            pieces = [torch.ones(2**18) for _ in range(150)]  # 150 MiB in 1 MiB pieces
            del pieces
        return mem["peak_bytes"] - mem["start_bytes"]

    alone, kept = added(), []
    for _ in range(3):
        big = [torch.ones(2**18) for _ in range(400)]
        kept.append(big[1::2])  # every other piece stays: the freed ones are holes the allocator keeps for reuse
        del big
        after = added()
        assert alone >= 120 * 2**20 and after >= 0.8 * alone, (alone / 2**20, after / 2**20)
    assert timing.trim_freed_memory() is True


def test_weights_bytes_counts_parameters_and_buffers_once():
    lin = torch.nn.Linear(4, 3)
    lin.register_buffer("scale", torch.ones(2))
    assert timing.weights_bytes(lin) == (12 + 3 + 2) * 4
    assert timing.weights_bytes(object()) is None


def test_old_names_are_the_timing_modules():
    assert accel.time_call is timing.time_call and accel.synchronize is timing.synchronize
    assert bench.weights_bytes is timing.weights_bytes and bench.peak_memory is timing.peak_memory


def test_interleaved_ratios_pairs_rounds_and_shows_noise(monkeypatch):
    """A fake clock: 'slow' takes 10 ms, 'fast' 5 ms, each with the same per-round machine hiccup; the A/A row
    (slow against itself) must come out at 1, within noise, and every callable runs exactly (warmup + rounds) times."""
    clock, calls, hiccup = [0.0], {"slow": 0, "fast": 0}, iter([0.0, 0.004, -0.001, 0.002, 0.0, 0.003] * 50)
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])
    round_noise = {}

    def make(name, seconds):
        def fn():
            calls[name] += 1
            n = calls[name] if name == "fast" else (calls[name] + 1) // 2  # slow also runs as its own A/A twin
            noise = round_noise.setdefault(n, next(hiccup))
            clock[0] += seconds * (1 + 10 * noise)
        return fn

    table = timing.interleaved_ratios({"slow": make("slow", 0.010), "fast": make("fast", 0.005)}, rounds=6, warmup=1)
    assert list(table.index) == ["slow", "fast", "slow (again)"]
    assert calls == {"slow": 14, "fast": 7}
    assert table.loc["fast", "speed_up"] == pytest.approx(2.0) and table.loc["fast", "verdict"] == "faster"
    assert table.loc["fast", "low"] == pytest.approx(2.0) and table.loc["fast", "high"] == pytest.approx(2.0)
    assert table.loc["slow", "verdict"] == "baseline" and table.loc["slow", "speed_up"] == 1.0
    assert table.loc["slow (again)", "verdict"] in ("within noise", "faster", "slower")
    assert table.loc["fast", "median_ms"] == pytest.approx(5.0 * (1 + 10 * 0.0015), rel=0.2)
    def tick():
        clock[0] += 0.001

    few = timing.interleaved_ratios({"a": tick, "b": tick}, rounds=2, warmup=0)
    assert set(few["verdict"]) == {"baseline", "too few rounds"} and few["low"].isna().all()
    with pytest.raises(ValueError, match="rounds"):
        timing.interleaved_ratios({"a": lambda: None}, rounds=0)
    with pytest.raises(ValueError, match="A/A"):
        timing.interleaved_ratios({"a": lambda: None, "a (again)": lambda: None})


def test_interleaved_ratios_detects_a_real_slowdown_and_noise(monkeypatch):
    rng = __import__("numpy").random.default_rng(0)
    clock = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])

    def take(seconds, spread):
        def fn():
            clock[0] += seconds * float(rng.lognormal(0.0, spread))
        return fn

    table = timing.interleaved_ratios({"base": take(0.01, 0.05), "worse": take(0.03, 0.05), "same": take(0.01, 0.05)}, rounds=9)
    assert table.loc["worse", "verdict"] == "slower" and table.loc["worse", "high"] < 1
    assert table.loc["same", "verdict"] == "within noise" and table.loc["same", "low"] < 1 < table.loc["same", "high"]


def test_paired_speedup_pairs_by_round_and_checks_its_input():
    """Rounds share their noise: a variant exactly twice as fast in every round is 2x with a zero-width interval, although
    its medians alone would be swamped by the round-to-round spread; the interval is a t-interval on the log ratios
    (checked against scipy's), and only the rounds both sides ran are paired."""
    import numpy as np
    from scipy import stats

    base = np.array([0.010, 0.030, 0.012, 0.050, 0.011])  # a noisy machine: round times differ by 5x
    row = timing.paired_speedup(base, base / 2)
    assert row["speed_up"] == pytest.approx(2.0) and row["low"] == pytest.approx(2.0) and row["high"] == pytest.approx(2.0)
    assert row["verdict"] == "faster" and row["rounds"] == 5
    other = base * np.array([1.1, 0.95, 1.02, 0.9, 1.05])
    row = timing.paired_speedup(base, other, level=0.9)
    logs = np.log(base / other)
    lo, hi = stats.t.interval(0.9, len(logs) - 1, loc=logs.mean(), scale=stats.sem(logs))
    assert row["low"] == pytest.approx(np.exp(lo)) and row["high"] == pytest.approx(np.exp(hi))
    assert row["speed_up"] == pytest.approx(np.exp(logs.mean())) and row["verdict"] == "within noise"
    assert timing.paired_speedup(base, base * 3)["verdict"] == "slower"
    short = timing.paired_speedup(base, [0.02, 0.06])  # a slow path timed in the first 2 rounds only
    assert short["rounds"] == 2 and short["speed_up"] == pytest.approx(0.5) and short["verdict"] == "too few rounds"
    assert np.isnan(short["low"]) and np.isnan(short["high"])
    with pytest.raises(ValueError, match="at least one"):
        timing.paired_speedup([], [0.1])
    with pytest.raises(ValueError, match="positive"):
        timing.paired_speedup([0.1, 0.0], [0.1, 0.1])


def test_format_speedup_shows_the_interval_only_when_there_is_one():
    assert timing.format_speedup(3.954, 3.8, 4.1, "faster") == "3.95× [3.80, 4.10] (faster)"
    assert timing.format_speedup(0.2351, float("nan"), float("nan"), "too few rounds", digits=3) == "0.235× (too few rounds)"
    row = timing.paired_speedup([0.01, 0.02, 0.01], [0.005, 0.01, 0.005])
    assert timing.format_speedup(row["speed_up"], row["low"], row["high"], row["verdict"]) == "2.00× [2.00, 2.00] (faster)"

"""MicroBatcher (issue 12): order kept, concurrent requests merged, max_wait bounds the wait, errors reach every caller,
close drains. Plus the security building blocks (keys, token bucket, id masking) as units."""

import asyncio
import threading
import time

import numpy as np
import pytest

from recbook.serve.batching import BatcherClosed, MicroBatcher


def run(coro):
    return asyncio.run(coro)


def test_results_come_back_to_their_callers_in_order():
    calls = []

    def double(items):
        calls.append(list(items))
        return [2 * x for x in items]

    async def main():
        batcher = MicroBatcher(double, max_batch_size=4, max_wait_ms=20)
        results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
        await batcher.close()
        return results

    assert run(main()) == [2 * i for i in range(10)]
    assert [x for call in calls for x in call] == list(range(10))  # FIFO: submission order
    assert max(len(c) for c in calls) <= 4 and len(calls) == 3  # 10 concurrent items, batches of at most 4


def test_concurrent_requests_share_calls_and_sizes_are_reported():
    sizes = []
    in_thread = []

    def fn(items):
        in_thread.append(threading.current_thread() is not threading.main_thread())
        time.sleep(0.02)  # a model call: while it runs, the next batch fills
        return items

    async def main():
        batcher = MicroBatcher(fn, max_batch_size=64, max_wait_ms=5, on_batch=sizes.append)

        async def client(i):
            await asyncio.sleep(0.001 * (i % 5))
            return await batcher.submit(i)

        out = await asyncio.gather(*(client(i) for i in range(40)))
        await batcher.close()
        return out, batcher

    out, batcher = run(main())
    assert out == list(range(40))
    assert sum(sizes) == 40 and batcher.items == 40 and batcher.batches == len(sizes) < 10
    assert all(in_thread)  # fn ran in a worker thread, never blocking the event loop


def test_a_lone_request_waits_at_most_max_wait():
    async def main(wait_ms):
        batcher = MicroBatcher(lambda items: items, max_batch_size=32, max_wait_ms=wait_ms)
        start = time.perf_counter()
        await batcher.submit("x")
        elapsed = time.perf_counter() - start
        await batcher.close()
        return elapsed

    assert run(main(0)) < 0.5
    waited = run(main(150))
    assert 0.14 <= waited < 1.0  # the batch stayed open for company, then ran alone


def test_full_batch_runs_without_waiting():
    async def main():
        batcher = MicroBatcher(lambda items: items, max_batch_size=3, max_wait_ms=5_000)
        start = time.perf_counter()
        await asyncio.gather(*(batcher.submit(i) for i in range(3)))
        await batcher.close()
        return time.perf_counter() - start

    assert run(main()) < 1.0


def test_an_exception_reaches_every_caller_of_its_batch_and_the_batcher_keeps_serving():
    def fn(items):
        if "bad" in items:
            raise ValueError("model failed on this batch")
        return items

    async def main():
        batcher = MicroBatcher(fn, max_batch_size=8, max_wait_ms=20)
        first = await asyncio.gather(batcher.submit("a"), batcher.submit("bad"), batcher.submit("c"), return_exceptions=True)
        after = await batcher.submit("d")
        await batcher.close()
        return first, after

    first, after = run(main())
    assert all(isinstance(r, ValueError) and "model failed" in str(r) for r in first)
    assert after == "d"


def test_wrong_result_count_is_an_error_for_the_callers():
    async def main():
        batcher = MicroBatcher(lambda items: items[:1], max_batch_size=8, max_wait_ms=20)
        out = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
        await batcher.close()
        return out

    assert all(isinstance(r, RuntimeError) and "one per item" in str(r) for r in run(main()))


def test_close_drains_queued_items_then_refuses_new_ones():
    done = []

    def slow(items):
        time.sleep(0.05)
        done.extend(items)
        return items

    async def main():
        batcher = MicroBatcher(slow, max_batch_size=2, max_wait_ms=1)
        pending = [asyncio.ensure_future(batcher.submit(i)) for i in range(6)]
        await asyncio.sleep(0)  # let them queue
        await batcher.close()
        results = await asyncio.gather(*pending)
        with pytest.raises(BatcherClosed):
            await batcher.submit(99)
        return results

    assert run(main()) == list(range(6)) and sorted(done) == list(range(6))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="max_batch_size"):
        MicroBatcher(lambda x: x, max_batch_size=0)
    with pytest.raises(ValueError, match="max_wait_ms"):
        MicroBatcher(lambda x: x, max_wait_ms=-1)


# ------------------------------------------------------------------ security units
def test_keys_rate_limits_and_masking():
    from recbook.serve.security import IdMasker, RateLimiter, SecurityConfigError, TokenBucket, match_key, parse_keys, parse_rate_limit

    keys = parse_keys(" alpha-0123456789abcdef , ,beta-0123456789abcdef ")
    assert keys == ("alpha-0123456789abcdef", "beta-0123456789abcdef")
    with pytest.raises(SecurityConfigError, match="key number 2 is shorter than 16"):
        parse_keys("alpha-0123456789abcdef,short")
    assert match_key("beta-0123456789abcdef", keys) is not None and match_key("beta-0123456789abcdeX", keys) is None
    assert match_key("", keys) is None and match_key(None, keys) is None
    assert match_key("alpha-0123456789abcdef", keys) != match_key("beta-0123456789abcdef", keys)
    assert parse_rate_limit(None) is None and parse_rate_limit("0") is None and parse_rate_limit("2.5") == 2.5
    with pytest.raises(SecurityConfigError, match="RECBOOK_RATE_LIMIT='fast' is not a number"):
        parse_rate_limit("fast")

    now = [0.0]
    bucket = TokenBucket(rate=2, burst=2, clock=lambda: now[0])
    assert [bucket.take() for _ in range(2)] == [0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)  # empty: the next token in 1/rate s
    now[0] += 0.5
    assert bucket.take() == 0.0
    limiter = RateLimiter(rate=1, burst=1, clock=lambda: now[0])
    assert limiter.check("a") == 0.0 and limiter.check("a") > 0 and limiter.check("b") == 0.0  # per key
    assert RateLimiter(None).check("a") == 0.0

    mask = IdMasker("salt-1")
    assert mask(731000001) == mask("731000001") != IdMasker("salt-2")(731000001)
    assert "731000001" not in mask(731000001) and len(mask(1)) == 16


def test_call_cost_fit_recovers_a_known_line_and_matches_scipy():
    from scipy import stats as scipy_stats

    from recbook.serve.batching import call_cost_fit

    rng = np.random.default_rng(0)
    sizes = np.repeat([1, 2, 4, 8, 16, 32], 8)
    seconds = 0.002 + 0.0027 * sizes + rng.normal(0, 0.0003, len(sizes))
    fit = call_cost_fit(sizes, seconds, n_boot=500)
    reference = scipy_stats.linregress(sizes, seconds)  # the same least-squares line
    assert fit["fixed"].mean == pytest.approx(reference.intercept) and fit["per_item"].mean == pytest.approx(reference.slope)
    # the bootstrap intervals are about as wide as the textbook OLS ones (±1.96 standard errors)
    assert fit["fixed"].half_width == pytest.approx(1.96 * reference.intercept_stderr, rel=0.35)
    assert fit["per_item"].half_width == pytest.approx(1.96 * reference.stderr, rel=0.35)
    assert fit["fixed"].n == len(sizes)


@pytest.mark.parametrize("sizes, seconds, match", [
    ([4, 4, 4], [0.1, 0.1, 0.1], "two different call sizes"),
    ([1, 2], [0.1], "same length"),
    ([1, 2], [0.1, float("nan")], "finite"),
])
def test_call_cost_fit_errors(sizes, seconds, match):
    from recbook.serve.batching import call_cost_fit

    with pytest.raises(ValueError, match=match):
        call_cost_fit(sizes, seconds)


def test_merge_gain_bound():
    from recbook.serve.batching import merge_gain_bound

    assert merge_gain_bound(0.002, 0.0027, 20) == pytest.approx((0.002 + 0.054) / 0.054)
    assert merge_gain_bound(0.010, 0.001, 1) == pytest.approx(11.0)  # tiny requests: the fixed cost dominates
    assert merge_gain_bound(-0.001, 0.001, 1) == 1.0  # a fitted negative fixed cost means nothing to share
    with pytest.raises(ValueError, match="per_item"):
        merge_gain_bound(0.001, 0.0, 1)

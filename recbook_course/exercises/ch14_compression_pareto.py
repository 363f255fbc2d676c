"""Checkers of notebook 14_compression_pareto."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recbook_course.exercises.core import _close, _exercise


@_exercise("14.dominates", "14_compression_pareto", "Write dominates(a, b) for (quality, cost) tuples.")
def _dominates(fn):
    cases = {((0.3, 10), (0.2, 20)): True, ((0.3, 10), (0.3, 10)): False, ((0.3, 10), (0.3, 11)): True,
             ((0.2, 5), (0.3, 10)): False, ((0.31, 10), (0.3, 10)): True}
    for (a, b), expected in cases.items():
        if bool(fn(a, b)) != expected:
            return False, f"dominates({a}, {b}) should be {expected}: at least as good on both, strictly better on one."
    return True, "the Pareto front is what no point dominates."


@_exercise("14.front", "14_compression_pareto", "Write front(points): the names no other point dominates.")
def _front(fn):
    from recbook.compress.report import pareto_front

    rng = np.random.default_rng(10)
    for _ in range(5):
        points = {f"v{i}": (round(float(rng.random()), 2), round(float(rng.random()) * 100, 1)) for i in range(8)}
        table = pd.DataFrame({"NDCG@10": [p[0] for p in points.values()], "cost": [p[1] for p in points.values()]}, index=list(points))
        expected = set(table.index[pareto_front(table, "NDCG@10", "cost")])
        if set(fn(points)) != expected:
            return False, f"for {points} the front is {sorted(expected)}."
    return True, "recbook.compress.report.pareto_front does the same on the benchmark table."


@_exercise("14.combined_ratio", "14_compression_pareto", "Write combined_ratio(ratios): the product of independent size ratios.")
def _combined_ratio(fn):
    for ratios in ([2, 4], [1.5], [3, 2, 1.25], []):
        expected = float(np.prod(ratios)) if ratios else 1.0
        if not _close(fn(ratios), expected):
            return False, f"for {ratios} expected {expected}: ratios applied one after another multiply."
    return True, "which is why distill + trim + int8 can reach ratios no single method gives."


@_exercise("14.student_window", "14_compression_pareto",
           "Benchmark an MLP student that reads the last 5 items next to the one that reads 10 (same run, same rounds); "
           "say whether it is cheaper per request, give the lower end of its paired NDCG@10 interval against fp32, and its "
           "verdict by the rule of section 4.")
def _student_window(answer):
    from recbook.compress.request_bench import MIN_OVERLAP, verdict
    from recbook_course.exercises.common import _dict_with

    hint = _dict_with(answer, ("records", "cheaper", "ndcg10_diff_low", "verdict"), "records, cheaper, ndcg10_diff_low and verdict")
    if hint:
        return False, hint
    by_name = {r.get("variant"): r for r in answer["records"] if isinstance(r, dict)}
    missing = [n for n in ("fp32", "mlp-student-last10", "mlp-student-last5") if n not in by_name]
    if missing:
        return False, f"benchmark fp32, mlp-student-last10 and mlp-student-last5 in one run: {missing} missing from your records."
    five, ten = by_name["mlp-student-last5"], by_name["mlp-student-last10"]
    if five.get("rounds") != ten.get("rounds") or five.get("requests") != ten.get("requests"):
        return False, "time both students in the same benchmark run (the same interleaved rounds), or their costs do not compare."
    if bool(answer["cheaper"]) != (five["cpu_ms_p50"] < ten["cpu_ms_p50"]):
        return False, (f"compare cpu_ms_p50: {five['cpu_ms_p50']:.4f} ms (last 5) against {ten['cpu_ms_p50']:.4f} ms (last 10) in "
                       "your records.")
    low = five["ndcg10_diff_ci95"][0]
    if not _close(answer["ndcg10_diff_low"], low, tol=1e-6):
        return False, "the lower end of the paired interval is ndcg10_diff_ci95[0] of the last-5 record (a difference to fp32)."
    want = verdict(low, five["top10_overlap"], five["margin"])
    if answer["verdict"] != want:
        return False, (f"by the rule, the lower end must be above −{five['margin']} AND the top-10 overlap at least {MIN_OVERLAP}: "
                       f"here {low:+.4f} and {five['top10_overlap']:.2f}, so {want!r}.")
    ci = five["ndcg10_diff_ci95"]
    reasons = []
    if ci[0] <= -five["margin"]:
        reasons.append("its interval does not clear the margin" + (" though it also reaches above 0: not shown to be within the "
                                                                    "margin, which is not the same as worse" if ci[1] > 0 else ""))
    if five["top10_overlap"] < MIN_OVERLAP:
        reasons.append(f"its top 10 shares only {five['top10_overlap']:.0%} of fp32's films: it recommends different ones, "
                       "whether or not they are as good")
    meaning = "; ".join(reasons) if reasons else "it ranks about as well and recommends mostly the same films"
    return True, f"last 5: {five['speedup']:.2f}× vs {five['baseline']}, NDCG@10 − fp32 [{ci[0]:+.4f}, {ci[1]:+.4f}] → {want}: {meaning}."

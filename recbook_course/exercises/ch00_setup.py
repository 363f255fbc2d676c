"""Checkers of notebook 00_setup."""

from __future__ import annotations

from recbook_course.exercises.core import _exercise


@_exercise("00.quick_users", "00_setup", "How many synthetic users does the quick profile generate? (an int)")
def _quick_users(answer):
    from recbook.profile import get_profile

    expected = get_profile("quick").n_users
    if answer == expected:
        return True, f"the quick profile uses {expected} users."
    return False, "read it from recbook.perf.device.get_profile('quick')."


@_exercise("00.count_interactions", "00_setup", "How many interactions has make_synthetic(seed=1, n_users=50, n_items=40)? (an int)")
def _count_interactions(answer):
    from recbook.data import make_synthetic

    expected = len(make_synthetic(seed=1, n_users=50, n_items=40).interactions)
    if answer == expected:
        return True, "right — and it is the same on every machine, because the generator is seeded."
    return False, "generate it and count the rows of .interactions."


@_exercise("00.has_avx2", "00_setup", "Does this machine's CPU support AVX2? (True/False, from the report)")
def _has_avx2(answer):
    from recbook.perf.device import cpu_features

    expected = cpu_features()["AVX2"]
    if isinstance(answer, bool) and answer == expected:
        return True, f"AVX2 is {'present' if expected else 'absent'} here; int8/bf16 speed-ups depend on such features."
    return False, "look at 'cpu_features' in the environment report (answer True or False)."


@_exercise("00.threads", "00_setup",
           "Time the 512×512 fp32 matmul of section 1 with 1 thread against the default thread count, interleaved "
           "(interleaved_ratios, 1 thread first), and give the verdict of the default's row: 'faster', 'slower' or 'within noise'.")
def _threads(answer):
    from recbook_course.exercises.common import _dict_with, _ratios_table

    hint = _dict_with(answer, ("table", "threads", "verdict"),
                      "table (what interleaved_ratios returned), threads (the default count) and verdict")
    hint = hint or _ratios_table(answer["table"], "1 thread, then the default", "put the 1-thread run first")
    if hint:
        return False, hint
    table = answer["table"]
    other = table.index[1]
    if answer["verdict"] != table.loc[other, "verdict"]:
        return False, (f"read the verdict of the {other!r} row: {table.loc[other, 'verdict']!r} (its interval "
                       f"[{table.loc[other, 'low']:.2f}, {table.loc[other, 'high']:.2f}] against 1).")
    row = table.loc[other]
    meaning = {"faster": f"the second thread pays for its synchronisation on a matmul this size ({row['speed_up']:.2f}×)",
               "slower": f"the threads cost more than they bring here ({row['speed_up']:.2f}×) — small calls are why a server "
                         "runs one thread per request",
               "within noise": "no difference is shown: compare the A/A row, which is noise alone"}.get(answer["verdict"], "")
    if int(answer["threads"]) == 1:
        meaning = "this machine's default is 1 thread, so both runs are the same setting: the verdict can only be noise"
    return True, f"{answer['threads']} threads against 1: {row['speed_up']:.2f}× [{row['low']:.2f}, {row['high']:.2f}] → {answer['verdict']}: {meaning}."

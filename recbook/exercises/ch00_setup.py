"""Checkers of notebook 00_setup."""

from __future__ import annotations

from .core import _exercise


@_exercise("00.quick_users", "00_setup", "How many synthetic users does the quick profile generate? (an int)")
def _quick_users(answer):
    from ..device import get_profile

    expected = get_profile("quick").n_users
    if answer == expected:
        return True, f"the quick profile uses {expected} users."
    return False, "read it from recbook.device.get_profile('quick')."


@_exercise("00.count_interactions", "00_setup", "How many interactions has make_synthetic(seed=1, n_users=50, n_items=40)? (an int)")
def _count_interactions(answer):
    from ..data import make_synthetic

    expected = len(make_synthetic(seed=1, n_users=50, n_items=40).interactions)
    if answer == expected:
        return True, "right — and it is the same on every machine, because the generator is seeded."
    return False, "generate it and count the rows of .interactions."


@_exercise("00.has_avx2", "00_setup", "Does this machine's CPU support AVX2? (True/False, from the report)")
def _has_avx2(answer):
    from ..device import cpu_features

    expected = cpu_features()["AVX2"]
    if isinstance(answer, bool) and answer == expected:
        return True, f"AVX2 is {'present' if expected else 'absent'} here; int8/bf16 speed-ups depend on such features."
    return False, "look at 'cpu_features' in the environment report (answer True or False)."

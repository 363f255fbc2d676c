"""Hidden tests for notebooks/00_setup.ipynb — instructor side, never in a release.

Each section runs in the learner's kernel right after the exercise's visible self-check, inside a function (its
names stay local). Header: ``# %% <exercise id> | <points> point(s)``; the comment under it says what it catches.
"""
# Each section is a separate snippet using the notebook's names (answer, the learner's functions):
# ruff: noqa: E402, F811, F821

# %% 00.quick_users | 1 point
# Catches: a number that only compares equal (600.0, numpy float) where the task asks for an int.
import numbers

from recbook.profile import get_profile

assert isinstance(answer, numbers.Integral) and not isinstance(answer, bool), f"answer with an int, not {type(answer).__name__}"
assert answer == get_profile("quick").n_users

# %% 00.count_interactions | 1 point
# Catches: a count that only compares equal (a float); the self-check accepts anything == the count.
import numbers

from recbook.data import make_synthetic

assert isinstance(answer, numbers.Integral) and not isinstance(answer, bool), f"answer with an int, not {type(answer).__name__}"
assert answer == make_synthetic(seed=1, n_users=50, n_items=40).interactions.shape[0]

# %% 00.has_avx2 | 1 point
# The self-check is already exact; this re-reads the CPU flags itself (Linux) and insists on a plain bool.
from pathlib import Path

assert type(answer) is bool, f"answer True or False, not {type(answer).__name__}"
cpuinfo = Path("/proc/cpuinfo")
if cpuinfo.is_file():
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.read_text(errors="replace").splitlines()
                  if line.startswith(("flags", "Features"))), [])
    assert answer == ("avx2" in flags), "the CPU flags in /proc/cpuinfo say otherwise"

# %% 00.threads | 2 points
# Catches: the thread count left at 1 after the experiment (every later cell of the notebook, and of the session, then
# runs single-threaded), and a table that does not compare 1 thread with the default.
import torch

left = torch.get_num_threads()
torch.set_num_threads(int(answer["threads"]))  # put it back whatever happened, then judge
assert left == int(answer["threads"]), f"torch runs {left} thread(s) after your experiment; restore the default ({answer['threads']})"
assert list(answer["table"].index[:2]) == ["1 thread", f"{answer['threads']} threads"], list(answer["table"].index)

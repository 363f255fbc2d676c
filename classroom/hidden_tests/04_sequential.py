"""Hidden tests for notebooks/04_sequential.ipynb — instructor side, never in a release.

Each section runs in the learner's kernel right after the exercise's visible self-check, inside a function (its
names stay local). Header: ``# %% <exercise id> | <points> point(s)``; the comment under it says what it catches.
"""
# Each section is a separate snippet using the notebook's names (answer, the learner's functions):
# ruff: noqa: E402, F811, F821

# %% 04.causal_mask | 1 point
# Catches: an empty row for a padding position (no diagonal: NaN through attention); padding keys left visible; other
# lengths and paddings than the self-check's; agreement with the model's own mask and with attention itself.
import torch
import torch.nn.functional as F

from recbook.models.sequential import attention_allowed

gen = torch.Generator().manual_seed(46)
for n, pad in ((2, 1), (9, 4), (33, 30), (6, 0)):
    seq = torch.cat([torch.zeros(pad, dtype=torch.long), torch.randint(1, 50, (n - pad,), generator=gen)])
    got = torch.as_tensor(causal_allowed(seq.clone()))
    want = attention_allowed(seq[None], "causal")[0]
    assert got.dtype == torch.bool and tuple(got.shape) == (n, n), f"length {n}: a bool ({n}, {n}) tensor, got {got.dtype} {tuple(got.shape)}"
    assert torch.equal(got, want), f"{seq.tolist()}: differs from recbook.models.sequential.attention_allowed"
seq = torch.tensor([0, 0, 0, 4, 7, 2, 9, 1, 3])
q = torch.randn(1, 2, 9, 4, generator=gen)
out = F.scaled_dot_product_attention(q, q, q, attn_mask=torch.as_tensor(causal_allowed(seq)))
assert torch.isfinite(out).all(), "a padding position with no key makes attention NaN"
assert torch.allclose(out[..., 3, :], q[..., 3, :], atol=1e-6), "the first real item can only attend to itself"

# %% 04.paired_ci | 1 point
# Catches: ignoring `seed` (an unseeded generator: another interval on every call); resampling a and b separately
# (an unpaired, far too wide interval); degenerate inputs.
import numpy as np

from recbook.evaluation.stats import paired_comparison

rng = np.random.default_rng(47)
a = rng.random(300)
first = [float(x) for x in paired_difference_ci(a, a - 0.02, 500, 3)]
assert np.allclose(first, [0.02, 0.02, 0.02]), f"every difference is 0.02, so mean and interval are 0.02; got {first}"
b = np.clip(a + rng.normal(-0.01, 0.08, 300), 0, 1)
one = [float(x) for x in paired_difference_ci(a, b, 1000, 5)]
two = [float(x) for x in paired_difference_ci(a, b, 1000, 5)]
assert one == two, "the same seed must give the same interval: draw from np.random.default_rng(seed)"
mean, low, high = one
assert low <= mean <= high
ref = paired_comparison(a, b, n_boot=4000, seed=11).diff
assert np.isclose(mean, ref.mean) and abs(low - ref.low) < 0.006 and abs(high - ref.high) < 0.006, (
    f"expected about [{ref.low:.4f}, {ref.high:.4f}], got [{low:.4f}, {high:.4f}]: resample users, keeping each user's pair")

# %% 04.shuffled_history | 2 points
# Catches: shuffling across users (e.g. permuting the whole item column), which changes *what* users saw, not
# only the order; dropping or duplicating history; another model than the trained SASRec.
import numpy as np

from recbook.data.windows import user_sequences
from recbook.evaluation.protocol import history_for_test

scorer = answer["scorer"]
assert scorer.model is sasrec.model, "re-score the trained SASRec (sasrec.model): only the order of the history changes"
ordered = user_sequences(history_for_test(split), scorer.item_col)
shuffled = scorer.sequences
assert set(shuffled) == set(ordered), "the shuffled history must have the same users"
kept = [u for u in ordered if sorted(shuffled[u].tolist()) == sorted(ordered[u].tolist())]
assert len(kept) == len(ordered), (f"{len(ordered) - len(kept)} user(s) got other items: shuffle the order within each user's "
                                   "history, keep its items")
longer = [u for u in ordered if len(set(ordered[u].tolist())) > 2]
moved = sum(not np.array_equal(shuffled[u], ordered[u]) for u in longer)
assert moved >= 0.5 * len(longer), f"only {moved} of {len(longer)} histories changed order"

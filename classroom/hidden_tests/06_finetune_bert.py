"""Hidden tests for notebooks/06_finetune_bert.ipynb — instructor side, never in a release.

Each section runs in the learner's kernel right after the exercise's visible self-check, inside a function (its
names stay local). Header: ``# %% <exercise id> | <points> point(s)``; the comment under it says what it catches.
"""
# Each section is a separate snippet using the notebook's names (answer, the learner's functions):
# ruff: noqa: E402, F811, F821

# %% 06.warmup_lr | 1 point
# Catches: schedules tuned to the self-check's three settings; a one-step warm-up; warm-up as long as training.
import numpy as np
import torch

from recbook.training.loop import warmup_linear_schedule

for warmup, total, base in ((3, 11, 0.02), (1, 2, 1.0), (7, 30, 3e-4), (4, 4, 0.5)):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
    sched = warmup_linear_schedule(opt, warmup, total)
    for step in range(total):
        want = opt.param_groups[0]["lr"]
        got = float(lr_at(step, base, warmup, total))
        assert np.isclose(got, want, rtol=1e-9, atol=1e-15), f"step {step} (warmup={warmup}, total={total}, base={base}): expected {want:.4g}, got {got:.4g}"
        opt.step()
        sched.step()

# %% 06.no_decay | 1 point
# Catches: rules written for BERT's parameter names (e.g. matching "LayerNorm" or "bias" in the name) that miss
# another model's norm layer; the rule is biases and normalisation weights, whatever they are called.
import torch

from recbook.training.loop import parameter_groups


class Tower(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 6)
        self.proj = torch.nn.Linear(6, 4)
        self.norm = torch.nn.LayerNorm(4)
        self.out = torch.nn.Linear(4, 1, bias=False)


model = Tower()
no_decay = {id(p) for g in parameter_groups(model, 0.01) if g["weight_decay"] == 0 for p in g["params"]}
want = {n for n, p in model.named_parameters() if id(p) in no_decay}
got = set(no_decay_names(model))
assert got == want, f"for a small model with an nn.LayerNorm named 'norm': expected {sorted(want)}, got {sorted(got)}"

# %% 06.in_batch_loss | 1 point
# Catches: a Python float (.item()) where training needs a tensor to backpropagate; a batch size written in
# (torch.arange(6)); other temperatures.
import numpy as np
import torch
import torch.nn.functional as F

g = torch.Generator().manual_seed(41)
for batch, dim, t in ((1, 3, 0.5), (9, 5, 0.1), (4, 8, 2.0)):
    u = F.normalize(torch.randn(batch, dim, generator=g), dim=-1)
    v = F.normalize(torch.randn(batch, dim, generator=g), dim=-1)
    want = F.cross_entropy(u @ v.T / t, torch.arange(batch)).item()
    got = float(in_batch_loss(u, v, t))
    assert np.isclose(got, want, rtol=1e-5, atol=1e-7), f"batch {batch}, temperature {t}: expected {want:.5f}, got {got:.5f}"
u = F.normalize(torch.randn(5, 4, generator=g), dim=-1).requires_grad_(True)
loss = in_batch_loss(u, F.normalize(torch.randn(5, 4, generator=g), dim=-1), 0.1)
assert torch.is_tensor(loss) and loss.requires_grad, "return the loss as a tensor that training can backpropagate through (no .item())"
loss.backward()
assert u.grad is not None and torch.isfinite(u.grad).all()

# %% 06.temperature | 2 points
# Catches: a run that differs from section 3's in more than the temperature (no validation or patience, the
# cross-encoder's step budget, another seed); scores that are not the handed-in model's on the test users; a
# reference other than the T = 0.05 two-tower (e.g. the cross-encoder or item-kNN).
import dataclasses

import numpy as np

name = next(iter(datasets))
ours, theirs = dataclasses.asdict(fitted[(name, "two-tower")].model.config), dataclasses.asdict(answer["fitted"].model.config)
changed = sorted(k for k in ours if ours[k] != theirs.get(k))
assert changed == ["temperature"], f"only the temperature may change; these differ from section 3's two-tower: {changed}"
assert answer["fitted"].train_result.best_step is not None, "train with section 3's validation (evaluate_fn=validation_fn(name))"
rescored = evaluate(answer["fitted"].scorer, eval_sets[name], "sampled", per_user=True)["per_user"]["NDCG@10"].to_numpy()
assert np.allclose(np.asarray(answer["per_user"]["NDCG@10"], dtype=float), rescored), \
    "per_user must be the T = 1 model's scores on eval_sets[name], the test users of section 4"
assert np.allclose(np.asarray(answer["reference"]["NDCG@10"], dtype=float), per_user[name]["two-tower"]["NDCG@10"].to_numpy()), \
    "compare with the T = 0.05 two-tower of section 4: per_user[name]['two-tower']"

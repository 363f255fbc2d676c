"""Checkers of notebook 06_finetune_bert."""

from __future__ import annotations

from recbook_course.exercises.core import _close, _exercise


@_exercise("06.warmup_lr", "06_finetune_bert", "Write lr_at(step, base_lr, warmup, total): linear warm-up, then linear decay to 0.")
def _warmup_lr(fn):
    import torch

    from recbook.training.loop import warmup_linear_schedule

    for warmup, total, base in ((10, 100, 1e-3), (0, 20, 5e-5), (5, 5, 0.1)):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
        sched = warmup_linear_schedule(opt, warmup, total)
        for step in range(total):
            expected = opt.param_groups[0]["lr"]
            got = float(fn(step, base, warmup, total))
            if not _close(got, expected, 1e-9):
                return False, f"step {step} (warmup={warmup}, total={total}): expected {expected:.3g}, got {got:.3g}."
            opt.step()
            sched.step()
    return True, "the same schedule recbook.training.loop uses: (step+1)/warmup, then (total−step)/(total−warmup)."


@_exercise("06.no_decay", "06_finetune_bert", "Write no_decay_names(model): names of parameters that must get NO weight decay.")
def _no_decay(fn):
    from transformers import BertConfig, BertModel

    from recbook.training.loop import parameter_groups

    model = BertModel(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16))
    no_decay_ids = {id(p) for p in parameter_groups(model, 0.01)[1]["params"]}
    expected = {n for n, p in model.named_parameters() if id(p) in no_decay_ids}
    got = set(fn(model))
    if got == expected:
        return True, f"{len(expected)} tensors: every bias and every LayerNorm weight."
    missing, extra = sorted(expected - got)[:2], sorted(got - expected)[:2]
    return False, f"missing e.g. {missing}; should decay e.g. {extra}. Rule: biases and LayerNorm weights are not decayed."


@_exercise("06.in_batch_loss", "06_finetune_bert", "Write in_batch_loss(u, v, temperature): in-batch softmax loss for unit vectors u, v (torch).")
def _in_batch_loss(fn):
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    for t in (0.05, 1.0):
        u = F.normalize(torch.randn(6, 4, generator=g), dim=-1)
        v = F.normalize(torch.randn(6, 4, generator=g), dim=-1)
        expected = F.cross_entropy(u @ v.T / t, torch.arange(6)).item()
        got = float(fn(u, v, t))
        if not _close(got, expected):
            return False, f"temperature {t}: expected {expected:.5f}, got {got:.5f}. Row i's target is column i of u @ v.T / t."
    return True, "each history's own item is the right answer among the batch's items."


@_exercise("06.temperature", "06_finetune_bert",
           "Train the two-tower model again at temperature 1.0 (everything else as in section 3), score the same test users and "
           "compare its per-user NDCG@10 with the T = 0.05 model's (paired, T = 1 first); give the verdict.")
def _temperature(answer):
    from recbook_course.exercises.common import _dict_with, _paired_interval, _per_user_tables

    hint = _dict_with(answer, ("fitted", "per_user", "reference", "diff_low", "diff_high", "verdict"))
    if hint:
        return False, hint
    config = getattr(getattr(answer["fitted"], "model", None), "config", None)
    if getattr(answer["fitted"], "name", None) != "two-tower" or config is None:
        return False, "fitted must be what fit_recommender(\"two-tower\", …) returns."
    if not _close(float(config.temperature), 1.0, 1e-12):
        return False, f"the model was trained at temperature {config.temperature}: pass temperature=1.0 to fit_recommender."
    hint = _per_user_tables(answer, "NDCG@10", "evaluate(..., per_user=True)['per_user']")
    if hint:
        return False, hint
    hint, c = _paired_interval(answer["per_user"]["NDCG@10"], answer["reference"]["NDCG@10"], answer["diff_low"], answer["diff_high"],
                               answer["verdict"], "NDCG@10, T = 1 − T = 0.05", "paired_comparison(t1, t005), the T = 1 model first")
    if hint:
        return False, hint
    said = {"lower": "the sharper softmax bought ranking quality the interval can see",
            "higher": "the softer softmax came out ahead on these users — check it on more users before you believe it",
            "not shown": "these users cannot tell the two temperatures apart: with this few users, say so rather than pick one"}
    return True, (f"T = 1 against T = 0.05: NDCG@10 {c.diff.mean:+.3f} [{c.diff.low:+.3f}, {c.diff.high:+.3f}] over "
                  f"{len(answer['per_user'])} users — {said[answer['verdict']]}. Dot products of unit vectors lie in [−1, 1]: "
                  "divided by T = 1 the scores the in-batch softmax compares differ by at most 2 (before the logQ "
                  "correction), divided by T = 0.05 by up to 40, so the low temperature lets the softmax concentrate on "
                  "the true item and the high one cannot. Compare the two runs' loss curves and stopping steps too: the "
                  "temperature changes what the loss can reach, not only the ranking.")

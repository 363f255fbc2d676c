"""Checkers of notebook 04a_finetune_bert."""

from __future__ import annotations

from .core import _close, _exercise


@_exercise("04.warmup_lr", "04a_finetune_bert", "Write lr_at(step, base_lr, warmup, total): linear warm-up, then linear decay to 0.")
def _warmup_lr(fn):
    import torch

    from ..train import warmup_linear_schedule

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
    return True, "the same schedule recbook.train uses: (step+1)/warmup, then (total−step)/(total−warmup)."


@_exercise("04.no_decay", "04a_finetune_bert", "Write no_decay_names(model): names of parameters that must get NO weight decay.")
def _no_decay(fn):
    from transformers import BertConfig, BertModel

    from ..train import parameter_groups

    model = BertModel(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16))
    no_decay_ids = {id(p) for p in parameter_groups(model, 0.01)[1]["params"]}
    expected = {n for n, p in model.named_parameters() if id(p) in no_decay_ids}
    got = set(fn(model))
    if got == expected:
        return True, f"{len(expected)} tensors: every bias and every LayerNorm weight."
    missing, extra = sorted(expected - got)[:2], sorted(got - expected)[:2]
    return False, f"missing e.g. {missing}; should decay e.g. {extra}. Rule: biases and LayerNorm weights are not decayed."


@_exercise("04.in_batch_loss", "04a_finetune_bert", "Write in_batch_loss(u, v, temperature): in-batch softmax loss for unit vectors u, v (torch).")
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

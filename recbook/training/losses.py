"""Binary cross-entropy, written out, and the distillation loss.

Taught in notebook ``01_cross_entropy`` (distillation in ``12_distillation``).

Conventions follow :mod:`torch.nn.functional`: arguments are ``(input, target)``,
``reduction`` is ``"mean"`` (default), ``"sum"`` or ``"none"``.

For one example with label ``y ∈ {0, 1}`` and predicted probability ``p``::

    ℓ(p, y) = -[ y·log p + (1 − y)·log(1 − p) ]

The minus sign applies to *both* terms (the seed article drops it from the second
term, which rewards confident wrong answers). With ``p = σ(z)`` for a logit ``z``::

    ℓ(z, y) = max(z, 0) − z·y + log(1 + e^{−|z|})      (finite for any z)
    ∂ℓ/∂z   = σ(z) − y
"""

from __future__ import annotations

import torch

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _as_float_tensors(input, target, names=("input", "target")):
    input = torch.as_tensor(input)
    target = torch.as_tensor(target)
    if not torch.is_floating_point(input):
        input = input.float()
    target = target.to(input.dtype)
    if input.shape != target.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, got {tuple(input.shape)} and "
            f"{tuple(target.shape)}; reshape the labels (e.g. labels.view_as(logits))."
        )
    return input, target


def binary_cross_entropy(input: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """BCE from probabilities: ``-[y·log p + (1−y)·log(1−p)]``.

    ``input`` holds probabilities in [0, 1]. Each log is clamped at −100, as PyTorch
    does, so ``p = 0`` or ``1`` gives a large finite loss (100) instead of ``inf``. Prefer
    :func:`bce_with_logits` whenever you have logits: it never rounds ``σ(z)`` to 0 or 1.
    """
    p, y = _as_float_tensors(input, target)
    if torch.any((p < 0) | (p > 1)):
        raise ValueError("binary_cross_entropy expects probabilities in [0, 1]; for raw scores use bce_with_logits")
    loss = -(y * torch.log(p).clamp(min=-100) + (1 - y) * torch.log1p(-p).clamp(min=-100))
    return _reduce(loss, reduction)


def bce_with_logits(
    input: torch.Tensor, target: torch.Tensor, reduction: str = "mean", pos_weight: torch.Tensor | float | None = None
) -> torch.Tensor:
    """Numerically stable BCE from logits: ``y·log(1+e^{−z}) + (1−y)·log(1+e^{z})``.

    Each term is computed with ``logaddexp(0, ·)``; the sum equals
    ``max(z,0) − z·y + log1p(exp(−|z|))`` and ``binary_cross_entropy(sigmoid(z), y)`` in exact
    arithmetic, but is finite for any logit (no ``exp`` of a large positive number is ever taken). ``pos_weight``
    multiplies the positive term, as in :func:`torch.nn.functional.binary_cross_entropy_with_logits`.
    """
    z, y = _as_float_tensors(input, target)
    # −log σ(z) = log(1 + e^{−z}) and −log(1 − σ(z)) = log(1 + e^{z}), each as logaddexp(0, ·),
    # which never exponentiates a large positive number. (Writing max(z,0) + log1p(exp(−|z|)) is
    # the same value, but autograd then gets the gradient at exactly z = 0 wrong: the kinks of
    # max and |·| give 1 − y there instead of ½ − y — and z = 0 is where a zero-initialised model starts.)
    zero = torch.zeros((), dtype=z.dtype)
    neg_log_sig = torch.logaddexp(zero, -z)
    neg_log_one_minus_sig = torch.logaddexp(zero, z)
    if pos_weight is None:
        loss = y * neg_log_sig + (1 - y) * neg_log_one_minus_sig
    else:
        pw = torch.as_tensor(pos_weight, dtype=z.dtype)
        loss = pw * y * neg_log_sig + (1 - y) * neg_log_one_minus_sig
    return _reduce(loss, reduction)


def naive_bce_with_logits(input: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """The *unstable* textbook form ``-[y·log σ(z) + (1−y)·log(1−σ(z))]``, for teaching only.

    In float32, ``σ(z)`` rounds to exactly 1.0 for ``z ≳ 17`` and ``exp(-z)`` overflows for
    ``z ≲ -89``, so this returns ``inf``/``nan`` where :func:`bce_with_logits` stays exact.
    """
    z, y = _as_float_tensors(input, target)
    p = 1.0 / (1.0 + torch.exp(-z))
    loss = -(y * torch.log(p) + (1 - y) * torch.log(1 - p))
    return _reduce(loss, reduction)


def bce_grad_logits(input: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Closed-form gradient of :func:`bce_with_logits` w.r.t. the logits: ``σ(z) − y``.

    With ``reduction="mean"`` it is divided by the number of elements (as autograd
    would give for the mean loss); ``"sum"`` and ``"none"`` give ``σ(z) − y`` itself.
    """
    z, y = _as_float_tensors(input, target)
    grad = torch.sigmoid(z) - y
    if reduction == "mean":
        return grad / max(grad.numel(), 1)
    if reduction in ("sum", "none"):
        return grad
    raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def distillation_bce(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    target: torch.Tensor | None = None,
    temperature: float = 2.0,
    alpha: float = 0.5,
    reduction: str = "mean",
) -> torch.Tensor:
    """Knowledge distillation for a binary scorer (a cross-encoder's logit).

    ``loss = α·BCE(z_s, y) + (1 − α)·T²·BCE(z_s / T, σ(z_t / T))``

    The teacher's probabilities are *softened* by the temperature ``T`` (``T > 1`` moves
    them towards 0.5, exposing how sure the teacher is); the ``T²`` factor keeps the
    soft term's gradient on the same scale as the hard term's as ``T`` changes.
    With ``target=None`` only the soft term is used (``α`` is ignored).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    zs, zt = _as_float_tensors(student_logits, teacher_logits, ("student_logits", "teacher_logits"))
    soft_targets = torch.sigmoid(zt.detach() / temperature)
    soft = bce_with_logits(zs / temperature, soft_targets, reduction=reduction) * temperature**2
    if target is None:
        return soft
    _, y = _as_float_tensors(zs, target, ("student_logits", "target"))
    hard = bce_with_logits(zs, y, reduction=reduction)
    return alpha * hard + (1 - alpha) * soft

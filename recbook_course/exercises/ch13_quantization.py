"""Checkers of notebook 13_quantization."""

from __future__ import annotations

from recbook_course.exercises.core import _close, _exercise


@_exercise("13.scale_zero_point", "13_quantization", "Write scale_zero_point(lo, hi): asymmetric uint8 (scale, zero_point).")
def _scale_zero_point(fn):
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization.observer import MinMaxObserver

    for lo, hi in ((-1.0, 3.0), (-0.25, 0.5), (-6.0, 0.1)):
        obs = MinMaxObserver(dtype=torch.quint8)
        obs(torch.tensor([lo, hi]))
        s, z = obs.calculate_qparams()
        got = fn(lo, hi)
        if not (_close(got[0], float(s), 1e-6) and int(got[1]) == int(z)):
            return False, f"for [{lo}, {hi}] PyTorch's observer gives scale {float(s):.6f}, zero point {int(z)}."
    return True, "identical to PyTorch's MinMaxObserver."


@_exercise("13.int8_dot", "13_quantization", "Write int8_dot(qa, qb, za, sa, sb): sa·sb·Σ(qa − za)·qb accumulated in int32.")
def _int8_dot(fn):
    import torch

    g = torch.Generator().manual_seed(9)
    for n in (8, 384, 1536):
        qa = torch.randint(0, 256, (n,), generator=g).to(torch.uint8)
        qb = torch.randint(-128, 128, (n,), generator=g).to(torch.int8)
        za, sa, sb = 113, 0.02, 0.003
        expected = sa * sb * float(((qa.long() - za) * qb.long()).sum())
        if not _close(fn(qa, qb, za, sa, sb), expected, 1e-6):
            return False, "convert to int32 before subtracting and multiplying: uint8 arithmetic wraps around."
    return True, "one float multiply at the end; everything else is integer."


@_exercise("13.int8_mb", "13_quantization", "Write int8_model_mb(n_params): MB of int8 weights plus one fp32 scale per 384 weights.")
def _int8_mb(fn):
    for n in (384, 22_713_216, 10**6):
        if not _close(fn(n), (n + 4 * n / 384) / 1e6, 1e-6):
            return False, "1 byte per weight plus 4 bytes per scale, one scale per 384 weights; MB = 10**6 bytes."
    return True, "about 1% overhead for the scales: int8 is ~4× smaller than fp32."


@_exercise("13.weight_bits", "13_quantization",
           "Fake-quantize every Linear weight of the catalogue encoder per channel to 8 and to 4 bits, re-embed the catalogue "
           "with each, compare warm AUC with fp32 per user (paired, variant first) and give each a verdict.")
def _weight_bits(answer):
    import torch

    from recbook_course.exercises.common import _dict_with, _warm_auc_interval

    keys = ("models", "per_user", "reference", "diff_low", "diff_high", "verdict")
    hint = _dict_with(answer, keys)
    if hint:
        return False, hint
    for key in ("models", "per_user", "diff_low", "diff_high", "verdict"):
        if not isinstance(answer[key], dict) or set(answer[key]) != {8, 4}:
            return False, f"answer[{key!r}] must be a dict with keys 8 and 4 (the bits), got {sorted(answer[key]) if isinstance(answer[key], dict) else answer[key]!r}."
    for bits in (8, 4):
        linears = [m for m in answer["models"][bits].modules() if isinstance(m, torch.nn.Linear)]
        if not linears:
            return False, f"the {bits}-bit model has no nn.Linear: quantize a copy of the encoder (copy.deepcopy(teacher))."
        for m in linears:
            w = m.weight.detach()
            levels = max(len(torch.unique(row)) for row in w)
            if levels > 2 ** bits:
                return False, (f"a row of a {bits}-bit weight {tuple(w.shape)} holds {levels} distinct values, more than 2**{bits}: "
                               f"quantize then dequantize it with choose_qparams(w, bits={bits}, per_channel=True, axis=0).")
        hint, _ = _warm_auc_interval(answer["per_user"][bits], answer["reference"], answer["diff_low"][bits], answer["diff_high"][bits],
                                     answer["verdict"][bits], "variant − fp32", "paired_comparison(variant, fp32)", prefix=f"{bits} bits: ")
        if hint:
            return False, hint
    said = {"lower": "loses warm AUC", "higher": "gains warm AUC (read it as noise unless it repeats)",
            "not shown": "shows no change this interval can detect"}
    v8, v4 = answer["verdict"][8], answer["verdict"][4]
    text = (f"8 bits {said[v8]} [{answer['diff_low'][8]:+.4f}, {answer['diff_high'][8]:+.4f}]; 4 bits {said[v4]} "
            f"[{answer['diff_low'][4]:+.4f}, {answer['diff_high'][4]:+.4f}]. A row keeps 16 codes at 4 bits instead of 256, and its "
            "step is 255 / 15 = 17× larger, so the rounding error is about 17× larger too (about 25 dB less signal-to-noise)")
    if v4 == "lower" and v8 != "lower":
        text += (": 8-bit weights cost nothing measurable here, 4-bit ones do — what per-group scales and GPTQ/AWQ-style "
                 "calibration exist to repair")
    return True, text + "."

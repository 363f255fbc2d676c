"""The Kubernetes HorizontalPodAutoscaler's rule, to reason about elastic scaling with numbers.

The HPA (``deploy/k8s/hpa.yaml``) periodically compares a metric averaged over the pods — CPU utilisation here —
with its target and asks for

    desired = ceil(current × metric / target)

replicas, unless the ratio ``metric / target`` is within a tolerance of 1 (0.1 by default: no change between
90 % and 110 % of the target, so that noise does not make it flap), and always within ``[min, max]``. Scaling
down is further delayed by a *stabilisation window*: the HPA uses the highest recommendation of the last window
(300 s by default), so one quiet minute does not remove replicas that the next busy minute needs.

Reference: https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/#algorithm-details
"""

from __future__ import annotations

import math

_EPS = 1e-9  # 5 × 70/50 is 7.000000000000001 in floating point; it must give 7 replicas, not 8


def _ratio(metric: float, target: float) -> float:
    if not (target > 0 and math.isfinite(target)):
        raise ValueError(f"target must be a positive number, got {target!r}")
    if not (metric >= 0 and math.isfinite(metric)):
        raise ValueError(f"metric must be a non-negative number, got {metric!r}")
    return metric / target


def desired_replicas(
    current: int,
    metric: float,
    target: float,
    tolerance: float = 0.1,
    min_replicas: int = 1,
    max_replicas: int | None = None,
) -> int:
    """The replica count the HPA asks for: ``ceil(current × metric / target)``, clamped to ``[min, max]``.

    ``metric`` is the current per-pod average (e.g. 90 for 90 % CPU utilisation) and ``target`` the HPA's target
    (e.g. 60). When ``|metric / target − 1| ≤ tolerance`` the count stays ``current`` (still clamped). As in the
    HPA, ``current == 0`` means scaling was turned off by hand and 0 is returned."""
    if not isinstance(current, int) or current < 0:
        raise ValueError(f"current must be a non-negative integer, got {current!r}")
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance!r}")
    if min_replicas < 1:
        raise ValueError(f"min_replicas must be >= 1, got {min_replicas!r}")
    if max_replicas is not None and max_replicas < min_replicas:
        raise ValueError(f"max_replicas ({max_replicas}) is below min_replicas ({min_replicas})")
    ratio = _ratio(metric, target)
    if current == 0:
        return 0
    if abs(ratio - 1.0) <= tolerance:
        desired = current
    else:
        desired = math.ceil(current * ratio - _EPS)
    desired = max(desired, min_replicas)
    if max_replicas is not None:
        desired = min(desired, max_replicas)
    return desired


def explain_replicas(current: int, metric: float, target: float, tolerance: float = 0.1, min_replicas: int = 1, max_replicas: int | None = None) -> str:
    """One line that shows the arithmetic of :func:`desired_replicas`, e.g. for a notebook."""
    desired = desired_replicas(current, metric, target, tolerance, min_replicas, max_replicas)
    ratio = _ratio(metric, target)
    bounds = f"[{min_replicas}, {'∞' if max_replicas is None else max_replicas}]"
    if current == 0:
        return "current = 0: scaling is off (the deployment was scaled to zero by hand)"
    if abs(ratio - 1.0) <= tolerance:
        return f"ratio {metric:g}/{target:g} = {ratio:.3f} is within 1 ± {tolerance:g}: keep {current} → {desired} within {bounds}"
    raw = math.ceil(current * ratio - _EPS)
    return f"ceil({current} × {metric:g} / {target:g}) = ceil({current * ratio:.3f}) = {raw} → {desired} within {bounds}"



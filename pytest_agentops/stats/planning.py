"""Planning and sequential looks: how many trials would decide at an observed rate, and the look schedule with
its Bonferroni split of alpha."""

from __future__ import annotations

import operator

from ._checks import check_confidence, check_kn
from .binomial import clopper_pearson_lower, clopper_pearson_upper

_DIRECTIONS = (">=", "<=")


# ----------------------------------------------------------------- planning and sequential


def trials_to_decide(
    k: int,
    n: int,
    threshold: float,
    direction: str,
    confidence: float = 0.95,
    max_n: int = 1_000_000,
) -> int | None:
    """Total trials N >= n at which the observed rate k/n would give a decisive verdict; None if max_n won't.

    Projects successes round(k/n * N) at N trials and asks whether the one-sided
    Clopper-Pearson bound then clears the threshold either way (direction ">=": lower >=
    threshold passes, upper < threshold fails; "<=": upper <= threshold passes, lower >
    threshold fails). Doubling search, then bisection, so the answer N decides and N - 1
    does not (or N == n). Rounding the projected successes makes "decides" slightly
    non-monotone in N, so an isolated smaller N may also decide (up to ~30% smaller for
    n <= 10, under ~10% for n in the hundreds): a planning figure, not a guarantee. None
    when n == 0 (no estimate to project) or nothing up to max_n decides, e.g. when k/n
    equals the threshold.
    """
    k, n = check_kn(k, n)
    confidence = check_confidence(confidence)
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold={threshold} must be in [0, 1]")
    max_n = operator.index(max_n)
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction={direction!r} must be one of {_DIRECTIONS}")
    if n == 0:
        return None

    def decides(total: int) -> bool:
        successes = (2 * k * total + n) // (2 * n)  # round(k/n * total), halves up, exact
        if direction == ">=":
            return (
                clopper_pearson_lower(successes, total, confidence) >= threshold
                or clopper_pearson_upper(successes, total, confidence) < threshold
            )
        return (
            clopper_pearson_upper(successes, total, confidence) <= threshold
            or clopper_pearson_lower(successes, total, confidence) > threshold
        )

    if decides(n):
        return n
    lo, hi = n, n
    while True:
        if hi >= max_n:
            return None
        lo, hi = hi, min(2 * hi, max_n)
        if decides(hi):
            break
    while hi - lo > 1:  # invariant: decides(hi) and not decides(lo)
        mid = (lo + hi) // 2
        if decides(mid):
            hi = mid
        else:
            lo = mid
    return hi


def look_schedule(max_trials: int, first: int = 25) -> tuple[int, ...]:
    """Interim looks first, 2*first, 4*first, ... below max_trials, then max_trials, for early stopping."""
    max_trials, first = operator.index(max_trials), operator.index(first)
    if max_trials < 1:
        raise ValueError(f"max_trials={max_trials} must be >= 1")
    if first < 1:
        raise ValueError(f"first={first} must be >= 1")
    looks = []
    point = first
    while point < max_trials:
        looks.append(point)
        point *= 2
    looks.append(max_trials)
    return tuple(looks)


def per_look_alpha(alpha: float, looks: int) -> float:
    """Bonferroni per-look alpha / looks: by the union bound P(any false verdict over all looks) <= alpha."""
    alpha = float(alpha)
    looks = operator.index(looks)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha={alpha} must be in (0, 1)")
    if looks < 1:
        raise ValueError(f"looks={looks} must be >= 1")
    return alpha / looks

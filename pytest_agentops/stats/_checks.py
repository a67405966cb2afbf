"""Argument checks shared by the statistics modules (a bad argument is a programming error: ValueError)."""

from __future__ import annotations

import operator

from ..errors import hide_own_frames

__tracebackhide__ = hide_own_frames


def check_n(n: int) -> int:
    """Validate a trial count as a non-negative integer, because counts below zero are bugs."""
    n = operator.index(n)
    if n < 0:
        raise ValueError(f"n={n} must be >= 0")
    return n


def check_kn(k: int, n: int) -> tuple[int, int]:
    """Validate a (successes, trials) pair, because k outside [0, n] has no binomial meaning."""
    n = check_n(n)
    k = operator.index(k)
    if not 0 <= k <= n:
        raise ValueError(f"k={k} must be in [0, n={n}]")
    return k, n


def check_confidence(confidence: float) -> float:
    """Validate a confidence level, because 0 and 1 make every bound trivial or infinite."""
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence} must be in (0, 1)")
    return confidence


def check_q(q: float) -> float:
    """Validate a quantile level, because q=0 and q=1 are the unbounded min and max."""
    q = float(q)
    if not 0.0 < q < 1.0:
        raise ValueError(f"q={q} must be in (0, 1)")
    return q


def check_p(p: float) -> float:
    """Validate a success probability, because binomial tails need p in [0, 1]."""
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p={p} must be in [0, 1]")
    return p

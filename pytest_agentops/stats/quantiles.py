"""Quantiles and their distribution-free order-statistic bounds (exceedance counts), never the bootstrap."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from ..errors import hide_own_frames
from ._checks import check_confidence, check_q
from .binomial import binom_cdf, binom_sf

__tracebackhide__ = hide_own_frames

# ------------------------------------------------------------------------------ quantiles


def _sorted_samples(samples: Iterable[float]) -> np.ndarray:
    """Samples as a sorted 1-D float array, rejecting NaN because it has no rank."""
    arr = np.asarray(list(samples) if not isinstance(samples, np.ndarray) else samples, dtype=np.float64)
    arr = arr.ravel()
    if np.isnan(arr).any():
        raise ValueError("samples must not contain NaN")
    return np.sort(arr)


def quantile(samples: Iterable[float], q: float) -> float:
    """Empirical q-quantile as an observed value (numpy "inverted_cdf"), so reports show real data."""
    q = check_q(q)
    arr = _sorted_samples(samples)
    if arr.size == 0:
        raise ValueError("quantile of empty samples is undefined")
    return float(np.quantile(arr, q, method="inverted_cdf"))


def quantile_upper_rank(n: int, q: float, confidence: float) -> int | None:
    """Smallest 1-based rank r with P(Binom(n, q) <= r-1) >= confidence, None when r would exceed n: the order
    statistic X_(r) of n i.i.d. values is at or above the true q-quantile (the smallest x with F(x) >= q) with
    probability >= confidence whatever the distribution and its ties (X_(r) is below it only when r values are,
    each with probability <= q)."""
    if n == 0 or binom_cdf(n - 1, n, q) < confidence:
        return None
    lo, hi = -1, n - 1  # binom_cdf(lo) < confidence (vacuous at -1) <= binom_cdf(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if binom_cdf(mid, n, q) >= confidence:
            hi = mid
        else:
            lo = mid
    return hi + 1


def _lower_rank(n: int, q: float, confidence: float) -> int | None:
    """Largest 1-based rank r with P(Binom(n, q) >= r) >= confidence, None when even r=1 fails."""
    if n == 0 or binom_sf(0, n, q) < confidence:
        return None
    lo, hi = 1, n + 1  # P(X >= lo) >= confidence > P(X >= hi) (vacuous at n+1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if binom_sf(mid - 1, n, q) >= confidence:
            lo = mid
        else:
            hi = mid
    return lo


def quantile_upper_bound(samples: Iterable[float], q: float, confidence: float = 0.95) -> float | None:
    """Distribution-free one-sided upper bound on the q-quantile (an order statistic); None if n too small."""
    q, confidence = check_q(q), check_confidence(confidence)
    arr = _sorted_samples(samples)
    rank = quantile_upper_rank(arr.size, q, confidence)
    return None if rank is None else float(arr[rank - 1])


def quantile_lower_bound(samples: Iterable[float], q: float, confidence: float = 0.95) -> float | None:
    """Distribution-free one-sided lower bound on the q-quantile (an order statistic); None if n too small."""
    q, confidence = check_q(q), check_confidence(confidence)
    arr = _sorted_samples(samples)
    rank = _lower_rank(arr.size, q, confidence)
    return None if rank is None else float(arr[rank - 1])


def sorted_quantile_and_bound(arr: np.ndarray, q: float, confidence: float, *, upper: bool
                              ) -> tuple[float | None, float | None]:
    """(the q-quantile, its one-sided bound at ``confidence``: upper or lower) of an array sorted already:
    the same order statistics as ``quantile`` and ``quantile_upper_bound``/``quantile_lower_bound`` with one
    sort instead of three (a live progress display recomputes them as the campaign goes)."""
    if arr.size == 0:
        return None, None
    estimate = float(np.quantile(arr, q, method="inverted_cdf"))
    rank = (quantile_upper_rank if upper else _lower_rank)(arr.size, q, confidence)
    return estimate, (None if rank is None else float(arr[rank - 1]))


def min_trials_for_quantile_bound(q: float, confidence: float = 0.95) -> int:
    """Fewest samples for which quantile_upper_bound exists (59 for a 95% bound on p95), to tell users."""
    q, confidence = check_q(q), check_confidence(confidence)
    # The bound exists iff the sample maximum qualifies: 1 - q**n >= confidence.
    n = max(1, math.ceil(math.log1p(-confidence) / math.log(q)))
    # Settle float rounding with the exact predicate used by quantile_upper_bound.
    while n > 1 and binom_cdf(n - 2, n - 1, q) >= confidence:
        n -= 1
    while binom_cdf(n - 1, n, q) < confidence:
        n += 1
    return n

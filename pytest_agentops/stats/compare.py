"""Two samples: the one-sided Fisher exact test of a regression against a baseline."""

from __future__ import annotations

import math

from ..errors import hide_own_frames
from ._checks import check_kn

__tracebackhide__ = hide_own_frames

# --------------------------------------------------------------------------- two samples


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_less_pvalue(k_new: int, n_new: int, k_base: int, n_base: int) -> float:
    """One-sided Fisher exact p-value that the new rate is lower than the baseline's (a regression).

    Conditional on the total successes, the new sample's successes are hypergeometric; the p-value is
    ``P(X <= k_new)``. Exact at any sample size, so a gate on it keeps its stated error rate.
    """
    check_kn(k_new, n_new)
    check_kn(k_base, n_base)
    total, successes = n_new + n_base, k_new + k_base
    if n_new == 0 or n_base == 0:
        return 1.0
    lo = max(0, successes - n_base)
    log_denominator = _log_comb(total, n_new)
    terms = [_log_comb(successes, x) + _log_comb(total - successes, n_new - x) - log_denominator
             for x in range(lo, k_new + 1)]
    if not terms:
        return 0.0
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


# ------------------------------------------------------ anytime-valid bounds for reports that stopped early


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def mixture_rate_bounds(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Anytime-valid one-sided bounds (lower, upper) on a Bernoulli rate after k of n, each at ``confidence``.

    The set of rates p whose beta-binomial mixture martingale (uniform prior; Robbins 1970)
    ``B(k + 1, n - k + 1) / (p^k (1 - p)^(n - k))`` stays below 1 / (1 - confidence) covers the true rate at
    every n at once (Ville's inequality), so the bounds hold at a data-dependent stop, e.g. a campaign that
    stopped early. The sublevel set is an interval (the log martingale is convex in p) that misses the true
    rate with probability <= 1 - confidence at any time: each end is a one-sided bound at ``confidence``, and
    together they are a two-sided interval at the same level.
    """
    check_kn(k, n)
    if n == 0:
        return 0.0, 1.0
    limit = math.log(1.0 / (1.0 - confidence))
    log_b = _log_beta(k + 1, n - k + 1)

    def log_m(p: float) -> float:
        with_k = k * math.log(p) if k else 0.0
        with_rest = (n - k) * math.log1p(-p) if n - k else 0.0
        return log_b - with_k - with_rest

    center = k / n

    def edge(lo: float, hi: float, inside_is_hi: bool) -> float:
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            if (log_m(mid) < limit) == inside_is_hi:
                hi = mid
            else:
                lo = mid
        return lo if not inside_is_hi else hi

    lower = 0.0 if k == 0 or log_m(1e-300 if k else 0.5) < limit else edge(1e-300, center, True)
    upper = 1.0 if k == n or log_m(1 - 1e-16) < limit else edge(center, 1 - 1e-16, False)
    return lower, upper


def exceedance_upper(n: int, rank: int, confidence: float = 0.95) -> float:
    """Upper confidence bound on P(X > X_(rank)), the chance that a new value exceeds the rank-th smallest of n
    i.i.d. values: that chance is Beta(n - rank + 1, rank) distributed whatever the distribution (smaller with
    ties), and its ``confidence`` quantile is the Clopper-Pearson upper bound of n - rank of n."""
    from .binomial import clopper_pearson_upper

    if not 1 <= rank <= n:
        raise ValueError(f"rank={rank} must be in [1, n={n}]")
    return clopper_pearson_upper(n - rank, n, confidence)

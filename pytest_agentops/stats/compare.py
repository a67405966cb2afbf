"""Two samples: the one-sided Fisher exact test of a regression against a baseline."""

from __future__ import annotations

import math

from ._checks import check_kn

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

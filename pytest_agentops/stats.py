"""Exact, distribution-free statistics behind pytest-agentops verdicts.

Pure functions on counts and samples; numpy and the standard library only (scipy is a
test-only reference). Conventions, see DESIGN.md "Statistics we stand behind":

* Rates are decided with ONE-SIDED exact Clopper-Pearson bounds at ``confidence``; the
  Wilson score bounds are computed for display beside them, never for a gate (near p=0.99
  the one-sided Wilson lower bound under-covers).
* ``lower`` and ``upper`` are each a one-sided bound at ``confidence``: ``P(p >= lower)``
  holds with probability >= confidence. Taken together ``[lower, upper]`` is a two-sided
  interval at ``2 * confidence - 1``.
* Quantile gates use order statistics (exceedance counts), never the bootstrap.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

__all__ = [
    "RateBounds",
    "binom_cdf",
    "binom_sf",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "fisher_less_pvalue",
    "look_schedule",
    "min_trials_for_quantile_bound",
    "per_look_alpha",
    "quantile",
    "quantile_lower_bound",
    "quantile_upper_bound",
    "rate_bounds",
    "trials_to_decide",
    "wilson_lower",
    "wilson_upper",
    "zero_violation_upper",
]

_DIRECTIONS = (">=", "<=")


# --------------------------------------------------------------------------- validation


def _check_n(n: int) -> int:
    """Validate a trial count as a non-negative integer, because counts below zero are bugs."""
    n = operator.index(n)
    if n < 0:
        raise ValueError(f"n={n} must be >= 0")
    return n


def _check_kn(k: int, n: int) -> tuple[int, int]:
    """Validate a (successes, trials) pair, because k outside [0, n] has no binomial meaning."""
    n = _check_n(n)
    k = operator.index(k)
    if not 0 <= k <= n:
        raise ValueError(f"k={k} must be in [0, n={n}]")
    return k, n


def _check_confidence(confidence: float) -> float:
    """Validate a confidence level, because 0 and 1 make every bound trivial or infinite."""
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence} must be in (0, 1)")
    return confidence


def _check_q(q: float) -> float:
    """Validate a quantile level, because q=0 and q=1 are the unbounded min and max."""
    q = float(q)
    if not 0.0 < q < 1.0:
        raise ValueError(f"q={q} must be in (0, 1)")
    return q


def _check_p(p: float) -> float:
    """Validate a success probability, because binomial tails need p in [0, 1]."""
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p={p} must be in [0, 1]")
    return p


# ------------------------------------------------------------------- binomial tails (log)


_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

# (p, 1 - p, log p, log(1 - p)), each computed without cancellation; see _prob().
_Prob = tuple[float, float, float, float]


def _prob(p: float) -> _Prob:
    """p, q = 1 - p and their logs to full relative precision, so tiny p or q survive the tails."""
    q = 1.0 - p  # exact for p >= 0.5 (Sterbenz); for p < 0.5 only q's last bit rounds
    log_p = math.log(p) if p <= 0.5 else math.log1p(-q)
    log_q = math.log1p(-p) if p <= 0.5 else math.log(q)
    return p, q, log_p, log_q


def _swap(prob: _Prob) -> _Prob:
    """Parameters of n - X, which is Binom(n, 1 - p), for computing upper tails as lower tails."""
    p, q, log_p, log_q = prob
    return q, p, log_q, log_p


def _stirlerr(n: int) -> float:
    """log(n!) - log(sqrt(2 pi n) (n/e)**n), Loader's Stirling remainder, accurate for large n."""
    if n <= 15:
        return math.lgamma(n + 1.0) - (n + 0.5) * math.log(n) + n - _LOG_SQRT_2PI
    nn = float(n) * n
    s0, s1, s2, s3, s4 = 1 / 12, 1 / 360, 1 / 1260, 1 / 1680, 1 / 1188
    if n > 500:
        return (s0 - s1 / nn) / n
    if n > 80:
        return (s0 - (s1 - s2 / nn) / nn) / n
    if n > 35:
        return (s0 - (s1 - (s2 - s3 / nn) / nn) / nn) / n
    return (s0 - (s1 - (s2 - (s3 - s4 / nn) / nn) / nn) / nn) / n


def _bd0(x: float, mean: float) -> float:
    """x log(x/mean) + mean - x (Loader's deviance term), by a series when x is close to mean."""
    if abs(x - mean) < 0.1 * (x + mean):
        v = (x - mean) / (x + mean)
        total = (x - mean) * v
        term = 2.0 * x * v
        v2 = v * v
        j = 1
        while True:
            term *= v2
            updated = total + term / (2 * j + 1)
            if updated == total:
                return updated
            total = updated
            j += 1
    return x * math.log(x / mean) + mean - x


def _log_pmf(k: int, n: int, prob: _Prob) -> float:
    """Log binomial pmf by Loader's saddle-point form, avoiding the cancellation of lgamma(n) terms.

    Plain lgamma differences lose about eps * n log n (1e-9 relative at n = 1e6); this form
    keeps the pmf to ~1e-14 relative for any n.
    """
    p, q, log_p, log_q = prob
    if k == 0:
        return n * log_q
    if k == n:
        return n * log_p
    return (
        _stirlerr(n)
        - _stirlerr(k)
        - _stirlerr(n - k)
        - _bd0(k, n * p)
        - _bd0(n - k, n * q)
        + 0.5 * math.log(n / (k * (n - k)))
        - _LOG_SQRT_2PI
    )


def _log_cdf_direct(k: int, n: int, prob: _Prob) -> float:
    """Log P(X <= k) by summing pmf terms downward from k; valid (and stable) when k <= n*p.

    For k <= n*p the pmf increases up to k, so the term at k is the largest and serves as the
    log-sum-exp anchor; the rest follow from the pmf ratio by a cumulative sum (no lgamma per
    term). The log pmf is concave with second difference <= -4/(n+2), so terms more than
    20*sqrt(n+2) below the anchor are smaller by a factor e^-800 and are dropped.
    """
    anchor = _log_pmf(k, n, prob)
    width = math.ceil(20.0 * math.sqrt(n + 2.0)) + 1
    lo = max(0, k - width)
    if k == lo:
        return anchor
    i = np.arange(k, lo, -1, dtype=np.float64)  # k, k-1, ..., lo+1
    # log pmf(i-1) - log pmf(i) = log(i / (n-i+1)) + log((1-p)/p), <= 0 for i <= k <= n*p.
    steps = np.log(i) - np.log(n - i + 1.0) + (prob[3] - prob[2])
    offsets = np.cumsum(steps)
    return anchor + math.log1p(float(np.exp(offsets).sum()))


def _log1mexp(log_x: float) -> float:
    """log(1 - exp(log_x)) for log_x <= 0, -inf when the complement rounds to zero."""
    x = math.exp(log_x)
    return -math.inf if x >= 1.0 else math.log1p(-x)


def _log_cdf(k: int, n: int, p: float) -> float:
    """Log P(X <= k) for X ~ Binom(n, p), computing whichever tail is small directly."""
    if k < 0:
        return -math.inf
    if k >= n or p == 0.0:
        return 0.0
    if p == 1.0:
        return -math.inf
    prob = _prob(p)
    if k <= n * p:
        return _log_cdf_direct(k, n, prob)
    # Complement: P(X >= k+1) = P(n - X <= n-k-1), and n - X ~ Binom(n, 1-p).
    return _log1mexp(_log_cdf_direct(n - k - 1, n, _swap(prob)))


def _log_sf(k: int, n: int, p: float) -> float:
    """Log P(X > k) for X ~ Binom(n, p), computing whichever tail is small directly."""
    if k < 0 or p == 1.0:
        return 0.0 if k < n else -math.inf
    if k >= n or p == 0.0:
        return -math.inf
    prob = _prob(p)
    if k + 1 >= n * p:
        return _log_cdf_direct(n - k - 1, n, _swap(prob))
    return _log1mexp(_log_cdf_direct(k, n, prob))


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(Binom(n, p) <= k), exact in log space so tails stay accurate for n up to millions."""
    k, n = _check_kn(k, n)
    return math.exp(_log_cdf(k, n, _check_p(p)))


def binom_sf(k: int, n: int, p: float) -> float:
    """P(Binom(n, p) > k), computed directly (not as 1 - cdf) so small upper tails keep precision."""
    k, n = _check_kn(k, n)
    return math.exp(_log_sf(k, n, _check_p(p)))


# ------------------------------------------------------------------ Clopper-Pearson bounds


def _solve_increasing(func, lo: float, hi: float, guess: float) -> float:
    """Root of increasing func(p) -> (value, slope) on (lo, hi): Newton steps inside a bisection bracket."""
    x = guess if lo < guess < hi else 0.5 * (lo + hi)
    for _ in range(400):
        value, slope = func(x)
        if value == 0.0:
            return x
        if value < 0.0:
            lo = x
        else:
            hi = x
        if hi - lo <= 1e-15 * hi:
            return 0.5 * (lo + hi)
        candidate = x - value / slope if slope > 0.0 and math.isfinite(slope) else math.nan
        if not lo < candidate < hi:  # also catches nan: fall back to bisection
            candidate = 0.5 * (lo + hi)
        if abs(candidate - x) <= 1e-15 * x:  # Newton converged (quadratically) from one side
            return candidate
        x = candidate
    return x


def clopper_pearson_lower(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided exact lower bound on a binomial rate (the gate for ">=" expectations); 0 when k == 0."""
    k, n = _check_kn(k, n)
    alpha = 1.0 - _check_confidence(confidence)
    if k == 0:
        return 0.0
    if k == n:
        return alpha ** (1.0 / n)  # P(X >= n) = p**n = alpha
    log_alpha = math.log(alpha)

    def tail(p: float) -> tuple[float, float]:
        # log P(X >= k; p) - log alpha, increasing in p; d/dp P(X >= k) = n * pmf(k-1; n-1, p).
        log_tail = _log_sf(k - 1, n, p)
        log_slope = math.log(n) + _log_pmf(k - 1, n - 1, _prob(p)) - log_tail
        return log_tail - log_alpha, math.exp(min(log_slope, 700.0))

    guess = wilson_lower(k, n, 1.0 - alpha)
    return _solve_increasing(tail, 0.0, 1.0, guess)


def clopper_pearson_upper(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided exact upper bound on a binomial rate (the gate for "<=" expectations); 1 when k == n."""
    k, n = _check_kn(k, n)
    alpha = 1.0 - _check_confidence(confidence)
    if k == n:
        return 1.0
    if k == 0:
        return zero_violation_upper(n, 1.0 - alpha)
    log_alpha = math.log(alpha)

    def tail(p: float) -> tuple[float, float]:
        # log alpha - log P(X <= k; p), increasing in p; d/dp P(X <= k) = -n * pmf(k; n-1, p).
        log_tail = _log_cdf(k, n, p)
        log_slope = math.log(n) + _log_pmf(k, n - 1, _prob(p)) - log_tail
        return log_alpha - log_tail, math.exp(min(log_slope, 700.0))

    guess = wilson_upper(k, n, 1.0 - alpha)
    return _solve_increasing(tail, 0.0, 1.0, guess)


def zero_violation_upper(n: int, confidence: float = 0.95) -> float:
    """Exact one-sided upper bound 1 - alpha**(1/n) on a rate with 0 of n violations (about 3/n)."""
    n = _check_n(n)
    alpha = 1.0 - _check_confidence(confidence)
    if n == 0:
        return 1.0
    # -expm1(log(alpha)/n) == 1 - alpha**(1/n) without cancellation for large n.
    return -math.expm1(math.log(alpha) / n)


# --------------------------------------------------------------------------- Wilson bounds


def _z(confidence: float) -> float:
    """One-sided standard normal quantile, because Wilson's one-sided bound uses z_{confidence}."""
    return NormalDist().inv_cdf(confidence)


def _wilson(k: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score bounds (each one-sided at confidence), clipped to [0, 1], 0/1 at k = 0/n."""
    if n == 0:
        return 0.0, 1.0
    z = _z(confidence)
    z2 = z * z
    denom = n + z2
    center = (k + z2 / 2.0) / denom
    half = z * math.sqrt(k * (n - k) / n + z2 / 4.0) / denom
    lower = 0.0 if k == 0 else min(max(center - half, 0.0), 1.0)
    upper = 1.0 if k == n else min(max(center + half, 0.0), 1.0)
    return lower, upper


def wilson_lower(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Wilson score lower bound, shown beside Clopper-Pearson for familiarity, not gating."""
    k, n = _check_kn(k, n)
    return _wilson(k, n, _check_confidence(confidence))[0]


def wilson_upper(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Wilson score upper bound, shown beside Clopper-Pearson for familiarity, not gating."""
    k, n = _check_kn(k, n)
    return _wilson(k, n, _check_confidence(confidence))[1]


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
    q = _check_q(q)
    arr = _sorted_samples(samples)
    if arr.size == 0:
        raise ValueError("quantile of empty samples is undefined")
    return float(np.quantile(arr, q, method="inverted_cdf"))


def _upper_rank(n: int, q: float, confidence: float) -> int | None:
    """Smallest 1-based rank r with P(Binom(n, q) <= r-1) >= confidence, None when r would exceed n."""
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
    q, confidence = _check_q(q), _check_confidence(confidence)
    arr = _sorted_samples(samples)
    rank = _upper_rank(arr.size, q, confidence)
    return None if rank is None else float(arr[rank - 1])


def quantile_lower_bound(samples: Iterable[float], q: float, confidence: float = 0.95) -> float | None:
    """Distribution-free one-sided lower bound on the q-quantile (an order statistic); None if n too small."""
    q, confidence = _check_q(q), _check_confidence(confidence)
    arr = _sorted_samples(samples)
    rank = _lower_rank(arr.size, q, confidence)
    return None if rank is None else float(arr[rank - 1])


def min_trials_for_quantile_bound(q: float, confidence: float = 0.95) -> int:
    """Fewest samples for which quantile_upper_bound exists (59 for a 95% bound on p95), to tell users."""
    q, confidence = _check_q(q), _check_confidence(confidence)
    # The bound exists iff the sample maximum qualifies: 1 - q**n >= confidence.
    n = max(1, math.ceil(math.log1p(-confidence) / math.log(q)))
    # Settle float rounding with the exact predicate used by quantile_upper_bound.
    while n > 1 and binom_cdf(n - 2, n - 1, q) >= confidence:
        n -= 1
    while binom_cdf(n - 1, n, q) < confidence:
        n += 1
    return n


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
    k, n = _check_kn(k, n)
    confidence = _check_confidence(confidence)
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


# ------------------------------------------------------------------------------ summaries


@dataclass(frozen=True, slots=True)
class RateBounds:
    """A rate k/n with its one-sided exact (gating) and Wilson (display) bounds at one confidence."""

    k: int
    n: int
    estimate: float
    lower: float
    upper: float
    wilson_lower: float
    wilson_upper: float
    confidence: float

    def __repr__(self) -> str:
        """Compact repr with floats to 6 significant digits, so reports and logs stay readable."""
        return (
            f"RateBounds(k={self.k}, n={self.n}, estimate={self.estimate:.6g}, "
            f"lower={self.lower:.6g}, upper={self.upper:.6g}, "
            f"wilson_lower={self.wilson_lower:.6g}, wilson_upper={self.wilson_upper:.6g}, "
            f"confidence={self.confidence:.6g})"
        )


def rate_bounds(k: int, n: int, confidence: float = 0.95) -> RateBounds:
    """All bounds for k of n at once (estimate nan, bounds 0 and 1 when n == 0), for verdicts and reports."""
    k, n = _check_kn(k, n)
    confidence = _check_confidence(confidence)
    w_lower, w_upper = _wilson(k, n, confidence)
    return RateBounds(
        k=k,
        n=n,
        estimate=k / n if n else math.nan,
        lower=clopper_pearson_lower(k, n, confidence),
        upper=clopper_pearson_upper(k, n, confidence),
        wilson_lower=w_lower,
        wilson_upper=w_upper,
        confidence=confidence,
    )


# --------------------------------------------------------------------------- two samples


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_less_pvalue(k_new: int, n_new: int, k_base: int, n_base: int) -> float:
    """One-sided Fisher exact p-value that the new rate is lower than the baseline's (a regression).

    Conditional on the total successes, the new sample's successes are hypergeometric; the p-value is
    ``P(X <= k_new)``. Exact at any sample size, so a gate on it keeps its stated error rate.
    """
    _check_kn(k_new, n_new)
    _check_kn(k_base, n_base)
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

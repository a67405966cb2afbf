"""Binomial tails computed in log space, the one-sided exact Clopper-Pearson bounds that decide rates, the
zero-violation bound, and the Wilson bounds shown beside them (never used for a gate)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from ..errors import hide_own_frames
from ._checks import check_confidence, check_kn, check_n, check_p

__tracebackhide__ = hide_own_frames

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
    k, n = check_kn(k, n)
    return math.exp(_log_cdf(k, n, check_p(p)))


def binom_sf(k: int, n: int, p: float) -> float:
    """P(Binom(n, p) > k), computed directly (not as 1 - cdf) so small upper tails keep precision."""
    k, n = check_kn(k, n)
    return math.exp(_log_sf(k, n, check_p(p)))


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


def _remembered(bound: Callable[[int, int, float], float]) -> Callable[..., float]:
    """``bound`` remembered for int counts and a float confidence (a campaign's summaries and verdicts ask
    for the same bounds of the same counts; its reruns too)."""
    cached = functools.lru_cache(maxsize=4096)(bound)

    @functools.wraps(bound)
    def remembered(k: int, n: int, confidence: float = 0.95) -> float:
        if type(k) is int and type(n) is int and type(confidence) is float:
            return cached(k, n, confidence)
        return bound(k, n, confidence)

    return remembered


@_remembered
def clopper_pearson_lower(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided exact lower bound on a binomial rate (the gate for ">=" expectations); 0 when k == 0."""
    k, n = check_kn(k, n)
    alpha = 1.0 - check_confidence(confidence)
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


@_remembered
def clopper_pearson_upper(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided exact upper bound on a binomial rate (the gate for "<=" expectations); 1 when k == n."""
    k, n = check_kn(k, n)
    alpha = 1.0 - check_confidence(confidence)
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
    n = check_n(n)
    alpha = 1.0 - check_confidence(confidence)
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
    k, n = check_kn(k, n)
    return _wilson(k, n, check_confidence(confidence))[0]


def wilson_upper(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Wilson score upper bound, shown beside Clopper-Pearson for familiarity, not gating."""
    k, n = check_kn(k, n)
    return _wilson(k, n, check_confidence(confidence))[1]


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
    k, n = check_kn(k, n)
    confidence = check_confidence(confidence)
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

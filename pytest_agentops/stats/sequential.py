"""Sequential decisions on a rate, checked after every unit (trial, or group of trials) in launch order.

A rule is two boundaries on the number of successes ``k`` after ``n`` units: it passes when ``k >= pass_at[n]``,
fails when ``k <= fail_at[n]``, and otherwise goes on (inconclusive at the last unit ``max_n``). Everything is
stated as ``rate >= threshold`` on a success indicator: a ``<=`` expectation counts the non-events, a quantile
the values on the right side of its threshold.

Two families, both calibrated *exactly* by dynamic programming over the units (``outcome``), so that the error
rates they state hold at the truncation ``max_n`` with no approximation (a continuation region that is an
interval in ``k`` makes P(pass) increase and P(fail) decrease in the true rate, so the worst cases are the
boundary rates checked here):

* **With an indifference zone** (``fail_level`` f < threshold t): Wald's sequential probability ratio test of
  t against f (Wald 1945), truncated at ``max_n``. A fail is wrong (the rate is >= t) with probability
  <= ``alpha``; a pass is wrong (the rate is <= f) with probability <= ``beta`` = 1 - power. The two constants
  are tightened from Wald's ``log((1-beta)/alpha)`` and ``log(beta/(1-alpha))`` until the exact errors meet
  their bounds, and at ``max_n`` the remaining error budget decides as many counts as it allows.
* **Without one** (the default): two one-sided mixture likelihood-ratio tests at the threshold itself (Robbins
  1970; a mixture of SPRTs is a test martingale, so Ville's inequality bounds its crossing probability by
  1/c, and the constant c is then tightened to the exact truncated error). The mixture weighs alternatives
  evenly in the log of the trials an SPRT would need to reach them, from 10 trials to ``max_n``: the rule
  adapts to whatever the true rate is. A pass is wrong (rate < t) and a fail is wrong (rate >= t) each with
  probability <= ``alpha``; close to the threshold the verdict at ``max_n`` is inconclusive.

``fixed`` rules look once, at ``max_n``: the one-sided exact (Clopper-Pearson) test at the same error rates.
Rules are cached: a campaign's expectations build theirs once.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import hide_own_frames
from ._checks import check_n
from .binomial import binom_cdf, binom_sf

__tracebackhide__ = hide_own_frames

#: Beyond this many units the constants are Ville's (1/alpha), valid but not tightened by the exact computation
#: (which gains little there: a few percent of the trials, for seconds of computation).
EXACT_LIMIT = 1000
#: The mixture of the default rule covers alternatives an SPRT reaches in this many trials up to ``max_n``.
MIXTURE_FROM = 10
MIXTURE_POINTS = 12
#: Calibration: constants tried per round (rounds narrow the bracket); a coarser grid only errs on the safe side.
GRID, ROUNDS = 16, 2
#: Up to this many units the boundaries come from the whole table of log likelihood ratios (else by bisection).
TABLE_LIMIT = 1000
#: Beyond this many units a rule's boundaries are computed a chunk at a time, when a campaign reaches them.
LAZY_LIMIT = 100_000
CHUNK = 4096


class Bounds(Sequence):
    """A boundary of a long rule, computed ``CHUNK`` units at a time when first read: a campaign allowed
    10,000,000 trials that decides after 25 costs what 25 trials need, not its maximum (read-only)."""

    __slots__ = ("_chunks", "_make", "_size")

    def __init__(self, make: Callable[[int, int], np.ndarray], size: int):
        self._make, self._size, self._chunks = make, size, {}

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, n):
        if isinstance(n, slice):
            return [self[i] for i in range(*n.indices(self._size))]
        if n < 0:
            n += self._size
        if not 0 <= n < self._size:
            raise IndexError(n)
        c, at = divmod(n, CHUNK)
        chunk = self._chunks.get(c)
        if chunk is None:
            chunk = self._chunks[c] = self._make(c * CHUNK, min((c + 1) * CHUNK, self._size))
        return int(chunk[at])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = np.concatenate([self._make(lo, min(lo + CHUNK, self._size)) for lo in range(0, self._size, CHUNK)])
        return whole if dtype is None else whole.astype(dtype)

    def __repr__(self) -> str:
        return f"Bounds({self._size} units, {len(self._chunks)} chunk(s) computed)"


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """The exact probabilities of a rule's verdicts at one true rate, and how many units it uses."""

    rate: float
    passed: float
    failed: float
    inconclusive: float
    stop: tuple[float, ...]  # stop[n]: P(the rule stops after exactly n units), n = 0..max_n

    @property
    def expected_n(self) -> float:
        return float(sum(n * p for n, p in enumerate(self.stop)))

    def n_quantile(self, q: float) -> int:
        """The smallest n by which the rule has stopped with probability >= q."""
        total = 0.0
        for n, p in enumerate(self.stop):
            total += p
            if total >= q - 1e-12:
                return n
        return len(self.stop) - 1

    @property
    def decided(self) -> float:
        return self.passed + self.failed


@dataclass(frozen=True, slots=True)
class RateRule:
    """``rate >= threshold``, decided after every unit: pass when ``k >= pass_at[n]``, fail when ``k <= fail_at[n]``."""

    threshold: float
    fail_level: float | None
    alpha: float  # bound on P(fail) at rates >= threshold (and on P(pass) at rates < threshold without a zone)
    beta: float  # bound on P(pass) at rates <= fail_level (== alpha without a zone)
    max_n: int
    sequential: bool
    pass_at: Sequence[int] = ()  # a tuple, or ``Bounds`` beyond LAZY_LIMIT units
    fail_at: Sequence[int] = ()
    exact: bool = True  # constants tightened by the exact computation (else Ville's, still valid)

    @property
    def method(self) -> str:
        if not self.sequential:
            return "clopper-pearson"
        return "sprt" if self.fail_level is not None else "mixture-sprt"

    @property
    def base_pass(self) -> float:
        """The rate at which a pass is an error (the fail level, or the threshold without a zone)."""
        return self.threshold if self.fail_level is None else self.fail_level

    def decide(self, k: int, n: int) -> str | None:
        """``"pass"``, ``"fail"`` or None (go on) after ``k`` successes in the first ``n`` units."""
        if n <= 0 or n > self.max_n:
            return None
        if k >= self.pass_at[n]:
            return "pass"
        if k <= self.fail_at[n]:
            return "fail"
        return None

    def first_pass(self) -> int | None:
        """The fewest units after which the rule can pass (all of them successes); None if it never can."""
        return next((n for n in range(1, self.max_n + 1) if self.pass_at[n] <= n), None)

    def first_fail(self) -> int | None:
        """The fewest units after which the rule can fail (all of them failures); None if it never can."""
        return next((n for n in range(1, self.max_n + 1) if self.fail_at[n] >= 0), None)

    def outcome(self, rate: float) -> RuleOutcome:
        """Exact verdict probabilities and stopping distribution when each unit succeeds with ``rate``."""
        return _outcome(np.asarray(self.pass_at), np.asarray(self.fail_at), float(rate), self.max_n)

    def error_rates(self) -> tuple[float, float]:
        """(P(pass) at the rate where a pass is wrong, P(fail) at the threshold): exact by the dynamic programme,
        or beyond ``LAZY_LIMIT`` units the bounds Ville's constants guarantee (beta, alpha)."""
        if not 0.0 < self.threshold < 1.0:
            return 0.0, 0.0
        if self.max_n > LAZY_LIMIT:
            return self.beta, self.alpha
        return self.outcome(self.base_pass).passed, self.outcome(self.threshold).failed

    def decides_with(self, rate: float, probability: float, verdict: str = "decide") -> bool:
        """Whether the rule passes (``"pass"``), fails (``"fail"``) or decides either way with probability >=
        ``probability`` at ``rate``: the dynamic programme, stopped as soon as the answer is known."""
        return _outcome(np.asarray(self.pass_at), np.asarray(self.fail_at), float(rate), self.max_n,
                        want=(probability, verdict)).inconclusive == -1.0

    def describe(self) -> str:
        if not self.sequential:
            return f"one look at {self.max_n}, exact binomial"
        if self.fail_level is None:
            return (f"checked after every unit up to {self.max_n} (mixture SPRT at the threshold: false pass and "
                    f"false fail <= {self.alpha:.3g})")
        return (f"checked after every unit up to {self.max_n} (SPRT {self.threshold:g} vs {self.fail_level:g}: "
                f"false fail <= {self.alpha:.3g} at >= {self.threshold:g}, false pass <= {self.beta:.3g} at "
                f"<= {self.fail_level:g})")


# ----------------------------------------------------------------------------------------- exact outcomes


def _outcome(pass_at: np.ndarray, fail_at: np.ndarray, p: float, max_n: int,
             want: tuple[float, str] | None = None) -> RuleOutcome:
    """Dynamic programme over the units: the mass of each success count among the runs still going. With
    ``want=(probability, verdict)`` it stops as soon as it knows whether that verdict ("decide": either) reaches
    the probability, and says so by the sign of ``inconclusive`` (-1: it does, -2: it does not).

    The counts still going are a window ``buf[lo:hi]`` of one buffer, updated in place (the same floating-point
    operations, in the same order, as a new array per unit: the figures are the same to the bit)."""
    q = 1.0 - p
    buf = np.zeros(max_n + 2)
    buf[0] = 1.0
    lo, hi = 0, 1  # buf[k] is the mass of k successes, for lo <= k < hi; buf[hi:] is zero
    passed = failed = 0.0
    stop = np.zeros(max_n + 1)
    pass_list, fail_list = np.asarray(pass_at).tolist(), np.asarray(fail_at).tolist()
    total = np.add.reduce
    target, verdict = want if want is not None else (0.0, "")
    for n in range(1, max_n + 1):
        window = buf[lo:hi + 1]
        moved = window[:-1] * p
        window *= q
        window[1:] += moved
        hi += 1
        size = hi - lo
        a, b = int(pass_list[n]), int(fail_list[n])
        cut_hi = min(max(a - lo, 0), size)  # counts >= lo + cut_hi pass
        cut_lo = min(max(b - lo + 1, 0), size)  # counts < lo + cut_lo fail
        gone_p = float(total(buf[lo + cut_hi:hi])) if cut_hi < size else 0.0
        gone_f = float(total(buf[lo:lo + cut_lo])) if cut_lo > 0 else 0.0
        passed += gone_p
        failed += gone_f
        stop[n] = gone_p + gone_f
        new_hi = lo + max(cut_hi, cut_lo)
        buf[new_hi:hi] = 0.0
        lo, hi = lo + cut_lo, new_hi
        if want is not None:
            got = passed if verdict == "pass" else failed if verdict == "fail" else passed + failed
            if got >= target:
                return RuleOutcome(p, passed, failed, -1.0, ())
            # (whether the rest can still reach it, at every unit: in floating point ``got`` + rest does not only
            # shrink, so checking less often could give another answer at a probability within a few ulps of 1)
            if got + float(total(buf[lo:hi])) < target:
                return RuleOutcome(p, passed, failed, -2.0, ())
        if hi <= lo:
            break
    rest = float(total(buf[lo:hi])) if hi > lo else 0.0
    if want is not None:
        got = passed if verdict == "pass" else failed if verdict == "fail" else passed + failed
        return RuleOutcome(p, passed, failed, -1.0 if got >= target else -2.0, ())
    stop[max_n] += rest
    return RuleOutcome(p, passed, failed, rest, tuple(float(x) for x in stop))


def _crossing(bounds: np.ndarray, other: np.ndarray, p: float, max_n: int, side: int) -> np.ndarray:
    """For each candidate boundary row (``bounds[c, n]``), the probability that the rule with that boundary on
    ``side`` (+1 pass, -1 fail) and the fixed ``other`` boundary on the other side ends on ``side``.

    A boundary that moves at most one count a unit towards the other side (a pass boundary never falls, a fail
    boundary rises by one at most: every boundary ``_boundary`` makes) is crossed at one count a unit at most, so
    the crossing mass is that one cell, read and cleared directly: the same numbers as ``_crossing_by_masks``,
    bit for bit (a sum of one value and zeros is that value), with half the array operations a unit. Other
    boundaries take the general route."""
    other = np.asarray(other)
    if not (_one_cell_crossings(bounds, max_n, side) and other.dtype.kind == "i"):
        return _crossing_by_masks(bounds, other, p, max_n, side)
    rows = bounds.shape[0]
    q = 1.0 - p
    # (counts 0..max_n + 1 at most: ``hi`` never passes max_n + 1, so the last column stays empty, and a fail
    # boundary of -1 reads it)
    mass = np.zeros((rows, max_n + 3))
    mass[:, 0] = 1.0
    hit = np.zeros(rows)
    at = np.ascontiguousarray(bounds.T)  # (at[n]: every row's boundary at n, one contiguous row)
    row = np.arange(rows)
    fence = [int(x) for x in other]
    # the columns that may hold mass: none at or beyond every row's pass boundary, at or below every fail boundary
    edge = [int(x) for x in (at.max(axis=1) if side > 0 else at.min(axis=1))]
    lo, hi = 0, 0
    for n in range(1, max_n + 1):
        hi = min(hi + 1, max_n + 1)
        seg = mass[:, lo:hi + 1]
        up = seg[:, :-1] * p
        seg *= q
        seg[:, 1:] += up
        cell = at[n]
        hit += mass[row, cell]
        mass[row, cell] = 0.0
        f = fence[n]  # (outside the columns lo..hi every row is empty: only those are cleared)
        if side > 0:  # absorbed by the fail boundary: the counts at or below it
            if f >= lo:
                mass[:, lo:min(f, hi) + 1] = 0.0
            lo, hi = max(lo, f + 1), min(hi, edge[n] - 1)
        else:  # absorbed by the pass boundary: the counts at or above it
            if f <= hi:
                mass[:, max(f, lo):hi + 1] = 0.0
            lo, hi = max(lo, edge[n] + 1), min(hi, f - 1)
        if lo > hi:
            break
    return hit


def _one_cell_crossings(bounds: np.ndarray, max_n: int, side: int) -> bool:
    """Whether every row of ``bounds`` (signed integers) is crossed at one count a unit at most (``_crossing``):
    from n = 1 on, a pass boundary at least 1 and never falling, a fail boundary at most 0 at n = 1 and rising by
    one at most; and within the counts the mass can reach (checked first, in int64: no difference overflows)."""
    if bounds.ndim != 2 or bounds.dtype.kind != "i" or bounds.shape[0] < 1 or bounds.shape[1] < max_n + 1 \
            or max_n < 1:
        return False
    b = bounds[:, 1:max_n + 1].astype(np.int64)
    if b.min() < -1 or b.max() > max_n + 1:
        return False
    if side > 0:
        return bool((b[:, 0] >= 1).all() and (np.diff(b, axis=1) >= 0).all())
    return bool((b[:, 0] <= 0).all() and (np.diff(b, axis=1) <= 1).all())


def _crossing_by_masks(bounds: np.ndarray, other: np.ndarray, p: float, max_n: int, side: int) -> np.ndarray:
    """``_crossing`` for any boundary rows: every count at or beyond a row's boundary is crossed (masks)."""
    rows = bounds.shape[0]
    q = 1.0 - p
    mass = np.zeros((rows, max_n + 2))
    mass[:, 0] = 1.0
    hit = np.zeros(rows)
    k = np.arange(max_n + 2)
    lo, hi = 0, 0  # columns that may hold mass
    for n in range(1, max_n + 1):
        hi = min(hi + 1, max_n + 1)
        seg = mass[:, lo:hi + 1]
        new = seg * q
        new[:, 1:] += seg[:, :-1] * p
        mass[:, lo:hi + 1] = new
        ks = k[lo:hi + 1]
        if side > 0:
            cross = ks[None, :] >= bounds[:, n:n + 1]
            absorb = ks <= other[n]
        else:
            cross = ks[None, :] <= bounds[:, n:n + 1]
            absorb = ks >= other[n]
        window = mass[:, lo:hi + 1]
        hit += np.where(cross, window, 0.0).sum(axis=1)
        window[cross] = 0.0
        window[:, absorb] = 0.0
        # shrink the window to the columns still holding mass in any row
        alive = np.nonzero(window.any(axis=0))[0]
        if alive.size == 0:
            break
        lo, hi = lo + int(alive[0]), lo + int(alive[-1])
    return hit


# ------------------------------------------------------------------------------------- the boundaries


def _kl(a: float, b: float) -> float:
    """Kullback-Leibler divergence of Bernoulli(a) from Bernoulli(b)."""
    out = 0.0
    if a > 0:
        out += a * math.log(a / b)
    if a < 1:
        out += (1 - a) * math.log((1 - a) / (1 - b))
    return out


def _alternative(trials: float, base: float, target: float, side: int) -> float:
    """The rate q on ``side`` of ``base`` with KL(q || base) = target (clipped at the edge of [0, 1])."""
    lo, hi = (base, 1.0) if side > 0 else (0.0, base)
    if _kl(hi if side > 0 else lo, base) <= target:
        return hi if side > 0 else lo
    for _ in range(200):  # (a step that changes neither end is the fixed point: every later one repeats it)
        mid = 0.5 * (lo + hi)
        inside = _kl(mid, base) < target
        if inside == (side > 0):
            if lo == mid:
                break
            lo = mid
        else:
            if hi == mid:
                break
            hi = mid
    return 0.5 * (lo + hi)


def _components(base: float, alternatives: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Per alternative q: the log-likelihood-ratio steps against ``base`` for a success and for a failure (q is
    kept 1e-12 inside (0, 1), a change of the ratio by a factor (1 - 1e-12)^n, so every step is finite)."""
    q = np.clip(np.asarray(alternatives, dtype=float), 1e-12, 1 - 1e-12)
    return np.log(q) - math.log(base), np.log1p(-q) - math.log1p(-base)


def _log_lr(up: np.ndarray, down: np.ndarray, log_w: np.ndarray, n, k) -> np.ndarray:
    """log sum_j w_j exp(k up_j + (n - k) down_j) for each (n, k)."""
    k = np.asarray(k, dtype=float)[..., None]
    n = np.asarray(n, dtype=float)[..., None]
    terms = log_w + k * (up - down) + n * down
    if terms.shape[-1] == 1:
        return terms[..., 0]
    top = terms.max(axis=-1)
    return top + np.log(np.exp(terms - top[..., None]).sum(axis=-1))


@functools.lru_cache(maxsize=8)
def _table(up: bytes, down: bytes, log_w: bytes, max_n: int) -> np.ndarray:
    """log LR for every n (rows) and k (columns) <= max_n (k > n: meaningless, left as computed)."""
    ns = np.arange(max_n + 1)
    return _log_lr(np.frombuffer(up), np.frombuffer(down), np.frombuffer(log_w), ns[:, None], ns[None, :])


def _boundary(up: np.ndarray, down: np.ndarray, log_w: np.ndarray, constants: np.ndarray, max_n: int,
              side: int, start: int = 0) -> np.ndarray:
    """For each constant c (rows): pass_at[n] = min k with log LR >= c (side +1; n + 1 if none), or
    fail_at[n] = max k with log LR >= c (side -1; -1 if none), for n = 0..max_n. The log LR is monotone in k
    (increasing for alternatives above the base, decreasing below), so a bisection runs over every n at once."""
    rows = constants.size
    if max_n <= TABLE_LIMIT and rows > 1 and not start:  # calibrating, small enough for the table: search per n
        table = _table(up.tobytes(), down.tobytes(), log_w.tobytes(), max_n)
        out = np.empty((rows, max_n + 1), dtype=np.int64)
        out[:, 0] = 1 if side > 0 else -1
        for n in range(1, max_n + 1):
            row = table[n, :n + 1]
            if side > 0:  # increasing in k: the first k at or above c
                out[:, n] = np.searchsorted(row, constants, side="left")
            else:  # decreasing in k: the last k at or above c
                out[:, n] = n - np.searchsorted(row[::-1], constants, side="left")
        return out
    n = np.broadcast_to(np.arange(start, max_n + 1), (rows, max_n + 1 - start))
    c = constants[:, None]
    if side > 0:
        lo, hi = np.zeros_like(n), n + 1  # invariant: the answer is in [lo, hi]; hi = n + 1 means none
        while True:
            active = lo < hi
            if not active.any():
                break
            mid = np.where(active, (lo + hi) // 2, 0)
            ok = _log_lr(up, down, log_w, n, mid) >= c
            hi = np.where(active & ok, mid, hi)
            lo = np.where(active & ~ok, mid + 1, lo)
        out = hi
        if not start:
            out[:, 0] = 1
    else:
        lo, hi = np.full_like(n, -1), n.copy()  # the answer is in [lo, hi]; lo = -1 means none
        while True:
            active = lo < hi
            if not active.any():
                break
            mid = np.where(active, (lo + hi + 1) // 2, 0)
            ok = _log_lr(up, down, log_w, n, mid) >= c
            lo = np.where(active & ok, mid, lo)
            hi = np.where(active & ~ok, mid - 1, hi)
        out = lo
        if not start:
            out[:, 0] = -1
    return out.astype(np.int64)


def _calibrate(up, down, log_w, base: float, error: float, other: np.ndarray, max_n: int, side: int,
               ceiling: float) -> tuple[np.ndarray, float]:
    """The boundary on ``side`` with the smallest constant (<= ceiling, Ville's or Wald's) whose exact error at
    ``base`` (with the ``other`` boundary in place) is <= ``error``."""
    lo, hi = 0.0, ceiling
    for _ in range(ROUNDS):  # a coarse grid, then a fine one inside the bracket
        grid = np.linspace(lo, hi, GRID)
        bounds = _boundary(up, down, log_w, grid, max_n, side)
        errors = _crossing(bounds, other, base, max_n, side)
        ok = np.nonzero(errors <= error)[0]
        first = int(ok[0]) if ok.size else grid.size - 1
        lo, hi = (grid[first - 1] if first > 0 else grid[0]), grid[first]
    return _boundary(up, down, log_w, np.array([hi]), max_n, side)[0], hi


def _finish(pass_at: np.ndarray, fail_at: np.ndarray, rule_pass_base: float, pass_error: float,
            fail_base: float, fail_error: float, max_n: int) -> None:
    """Spend what is left of each error budget at the last unit: decide as many counts as it allows (the
    counts nearest the boundaries first, as the constants' ceilings already had them)."""
    at_pass = _outcome(pass_at, fail_at, rule_pass_base, max_n)
    at_fail = _outcome(pass_at, fail_at, fail_base, max_n)
    alive_p = _alive_at_end(pass_at, fail_at, rule_pass_base, max_n)
    alive_f = _alive_at_end(pass_at, fail_at, fail_base, max_n)
    a, b = int(pass_at[max_n]), int(fail_at[max_n])
    budget = pass_error - at_pass.passed
    while a - 1 > b and alive_p[a - 1] <= budget * (1 - 1e-9):
        budget -= alive_p[a - 1]
        a -= 1
    budget = fail_error - at_fail.failed
    while b + 1 < a and alive_f[b + 1] <= budget * (1 - 1e-9):
        budget -= alive_f[b + 1]
        b += 1
    pass_at[max_n], fail_at[max_n] = a, b


def _alive_at_end(pass_at: np.ndarray, fail_at: np.ndarray, p: float, max_n: int) -> np.ndarray:
    """P(k successes after max_n units and the rule still going just before its last look), k = 0..max_n."""
    q = 1.0 - p
    mass = np.zeros(max_n + 1)
    mass[0] = 1.0
    for n in range(1, max_n + 1):
        new = mass * q
        new[1:] += mass[:-1] * p
        mass = new
        if n < max_n:
            mass[max(int(pass_at[n]), 0):] = 0.0
            if fail_at[n] >= 0:
                mass[:int(fail_at[n]) + 1] = 0.0
    return mass


def _first(lo: int, hi: int, ok) -> int:
    """The smallest integer x in [lo, hi] with ok(x) (ok is monotone: False then True); hi + 1 if none."""
    if not ok(hi):
        return hi + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def fixed_boundaries(threshold: float, fail_level: float | None, alpha: float, beta: float, n: int,
                     strict: bool = False) -> tuple[int, int]:
    """One look at n units, the one-sided exact tests: pass when ``P(X >= k | base) <= beta`` (base: the fail
    level, or the threshold), fail when ``P(X <= k | threshold) < alpha``; ``strict`` (``>``) moves the ties.
    Returns (pass when k >= a, fail when k <= b); inside a zone where both hold, the middle of the zone splits."""

    def passes(k: int) -> bool:
        tail = 1.0 if k == 0 else binom_sf(k - 1, n, base)
        return tail < beta or (tail == beta and not strict)

    def not_fails(k: int) -> bool:
        tail = binom_cdf(k, n, threshold)
        return not (tail < alpha or (tail == alpha and strict))

    base = threshold if fail_level is None else fail_level
    a = _first(0, n, passes)
    b = _first(0, n, not_fails) - 1
    if b >= a:  # inside the zone both hold: split at the middle of the zone
        cut = min(max(math.ceil(n * (threshold + base) / 2), a), b + 1)
        a, b = cut, cut - 1
    return a, b


@functools.lru_cache(maxsize=512)
def rate_rule(threshold: float, *, max_n: int, alpha: float = 0.05, fail_level: float | None = None,
              beta: float | None = None, sequential: bool = True, strict: bool = False,
              calibrate: bool = True) -> RateRule:
    """The rule deciding ``rate >= threshold`` (``>`` when ``strict``) within ``max_n`` units.

    ``alpha`` bounds false fails (and false passes without a zone), ``beta`` (default ``alpha``) false passes
    at ``fail_level``. ``calibrate=False`` keeps Ville's constants (valid, a little wider: for quick planning
    searches, whose answer then errs on the safe side). Cached: the same arguments give the same rule object.
    """
    max_n = check_n(max_n)
    if max_n < 1:
        raise ValueError(f"max_n={max_n} must be >= 1")
    threshold = float(threshold)
    beta = alpha if beta is None else float(beta)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold={threshold} must be in [0, 1]")
    if fail_level is not None and not 0.0 < fail_level < threshold:
        raise ValueError(f"fail_level={fail_level} must be in (0, threshold={threshold})")
    for name, value in (("alpha", alpha), ("beta", beta)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name}={value} must be in (0, 1)")
    common = {"threshold": threshold, "fail_level": fail_level, "alpha": alpha, "beta": beta, "max_n": max_n,
              "sequential": sequential}
    if threshold <= 0.0 or threshold >= 1.0:  # nothing to estimate: decided by what is seen
        def trivial_pass(lo: int, hi: int) -> np.ndarray:
            n = np.arange(lo, hi)
            # >= 0 always holds, > 0 once a success is seen; >= 1 fails at the first failure and never passes
            out = np.where(n > 0, 1 if strict else 0, 1) if threshold <= 0.0 else n + 1
            return out if sequential else np.where(n < max_n, n + 1, out)

        def trivial_fail(lo: int, hi: int) -> np.ndarray:
            n = np.arange(lo, hi)
            out = np.full(n.size, -1) if threshold <= 0.0 else np.where(n > 0, n if strict else n - 1, -1)
            return out if sequential else np.where(n < max_n, -1, out)

        return RateRule(**common, pass_at=_bounds(trivial_pass, max_n), fail_at=_bounds(trivial_fail, max_n))
    if not sequential:
        last_pass, last_fail = fixed_boundaries(threshold, fail_level, alpha, beta, max_n, strict)

        def fixed_pass(lo: int, hi: int) -> np.ndarray:  # one look, at max_n
            n = np.arange(lo, hi)
            return np.where(n < max_n, n + 1, last_pass)

        def fixed_fail(lo: int, hi: int) -> np.ndarray:
            n = np.arange(lo, hi)
            return np.where(n < max_n, -1, last_fail)

        return RateRule(**common, pass_at=_bounds(fixed_pass, max_n), fail_at=_bounds(fixed_fail, max_n))
    if fail_level is None:
        trials = np.geomspace(MIXTURE_FROM, max(max_n, MIXTURE_FROM + 1), MIXTURE_POINTS)
        target = math.log(1.0 / alpha)
        ups = [_alternative(m, threshold, target / m, +1) for m in trials]
        downs = [_alternative(m, threshold, target / m, -1) for m in trials]
        p_up, p_down = _components(threshold, ups)
        f_up, f_down = _components(threshold, downs)
        w = np.full(MIXTURE_POINTS, -math.log(MIXTURE_POINTS))
        pass_base, fail_base = threshold, threshold
        pass_ceiling, fail_ceiling = math.log(1.0 / beta), math.log(1.0 / alpha)
    else:
        p_up, p_down = _components(fail_level, [threshold])  # pass: LR of t against f
        f_up, f_down = _components(threshold, [fail_level])  # fail: LR of f against t
        w = np.zeros(1)
        pass_base, fail_base = fail_level, threshold
        pass_ceiling, fail_ceiling = math.log(1.0 / beta), math.log(1.0 / alpha)
    exact = calibrate and max_n <= EXACT_LIMIT
    if exact:
        n_index = np.arange(max_n + 1)
        fail_at, _ = _calibrate(f_up, f_down, w, fail_base, alpha, n_index + 1, max_n, -1, fail_ceiling)
        pass_at, _ = _calibrate(p_up, p_down, w, pass_base, beta, fail_at, max_n, +1, pass_ceiling)
        fail_at, _ = _calibrate(f_up, f_down, w, fail_base, alpha, pass_at, max_n, -1, fail_ceiling)
        _finish(pass_at, fail_at, pass_base, beta, fail_base, alpha, max_n)
        return RateRule(**common, pass_at=tuple(int(x) for x in pass_at), fail_at=tuple(int(x) for x in fail_at))

    def ville_pass(lo: int, hi: int) -> np.ndarray:  # Ville's constants: each n's bound on its own
        return _boundary(p_up, p_down, w, np.array([pass_ceiling]), hi - 1, +1, start=lo)[0]

    def ville_fail(lo: int, hi: int) -> np.ndarray:
        return _boundary(f_up, f_down, w, np.array([fail_ceiling]), hi - 1, -1, start=lo)[0]

    return RateRule(**common, pass_at=_bounds(ville_pass, max_n), fail_at=_bounds(ville_fail, max_n), exact=False)


def _bounds(make: Callable[[int, int], np.ndarray], max_n: int) -> tuple[int, ...] | Bounds:
    """A boundary for n = 0..max_n: a tuple, or computed chunk by chunk beyond ``LAZY_LIMIT`` units."""
    if max_n <= LAZY_LIMIT:
        return tuple(int(x) for x in make(0, max_n + 1))
    return Bounds(make, max_n + 1)


def sprt_outcome(threshold: float, fail_level: float, rate: float, alpha: float = 0.05, beta: float = 0.05,
                 horizon: int = 20_000) -> RuleOutcome:
    """Wald's SPRT of ``threshold`` against ``fail_level`` with Wald's constants, untruncated (run to ``horizon``,
    by which its remaining mass is negligible): the reference the sequential rule is measured against."""
    up, down = _components(fail_level, [threshold])
    log_a, log_b = math.log((1 - alpha) / beta), math.log(beta / (1 - alpha))  # pass at >= log_a, fail <= log_b
    slope_s, slope_f = float(up[0]), float(down[0])
    n = np.arange(horizon + 1)
    # LLR(k, n) = k up + (n - k) down >= log_a  <=>  k >= (log_a - n down) / (up - down)
    pass_at = np.ceil((log_a - n * slope_f) / (slope_s - slope_f) - 1e-12).astype(np.int64)
    fail_at = np.floor((log_b - n * slope_f) / (slope_s - slope_f) + 1e-12).astype(np.int64)
    pass_at, fail_at = np.maximum(pass_at, 0), np.minimum(fail_at, n)
    pass_at[0], fail_at[0] = 1, -1
    return _outcome(pass_at, fail_at, float(rate), horizon)


def fixed_first_pass(threshold: float, fail_level: float | None, alpha: float, beta: float) -> int:
    """The fewest units with which one look can pass (all of them successes): base**n <= beta, e.g. 59 for a
    95% bound on a p95 (base 0.95, beta 0.05)."""
    base = threshold if fail_level is None else fail_level
    if base <= 0.0:
        return 1
    if base >= 1.0:
        raise ValueError("a share of 1 can never be shown by a finite number of units")
    n = max(1, math.ceil(math.log(beta) / math.log(base)) - 1)
    while base ** n > beta:
        n += 1
    return n

"""Anytime-valid tests and confidence sequences for the mean of bounded per-trial values, by betting.

For values in [0, 1] and a candidate mean m, the wealth of a bettor who stakes a predictable fraction lambda_i
of it on each value exceeding m, ``K_n = prod (1 + lambda_i (x_i - m))``, is a nonnegative supermartingale when
the true mean is <= m; by Ville's inequality it ever reaches 1/alpha with probability <= alpha (Waudby-Smith and
Ramdas 2023, "Estimating means of bounded random variables by betting", JRSS-B). So "pass when the wealth
against mean <= m reaches 1/alpha" keeps its error rate at every trial, whatever the distribution and however
correlated the events inside a trial are (a trial is one value). The stakes follow the aGRAPA rule with the
predictable mean and variance estimates of that paper, capped at half the largest admissible stake.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ..errors import hide_own_frames

__tracebackhide__ = hide_own_frames

#: The share of the largest stake a bettor ever places (keeps the wealth away from zero after a bad value).
STAKE_CAP = 0.5


def _stake(mean: float, var: float, m: float, side: int) -> float:
    """aGRAPA stake on the mean being above m (side +1) or below it (side -1), capped."""
    gap = (mean - m) * side
    if gap <= 0.0:
        return 0.0
    room = m if side > 0 else 1.0 - m  # 1 + lambda (x - m) >= 0 for x in [0, 1] needs lambda <= 1/room
    if room <= 0.0:
        return 0.0
    return min(gap / (var + gap * gap), STAKE_CAP / room)


@dataclass(slots=True)
class BettingTest:
    """Two one-sided betting tests on values in [0, 1], fed one trial at a time.

    ``log_up`` is the log-wealth against "mean <= low" (it reaching log(1/err) rejects that: the mean is above
    ``low``); ``log_down`` the log-wealth against "mean >= high" (the mean is below ``high``).
    """

    low: float
    high: float
    n: int = 0
    total: float = 0.0
    sq: float = 0.0  # running sum of squared deviations from the predictable means (WSR's variance estimate)
    log_up: float = 0.0
    log_down: float = 0.0
    max_up: float = field(default=0.0)
    max_down: float = field(default=0.0)

    def add(self, x: float) -> None:
        x = min(max(float(x), 0.0), 1.0)
        mean = (0.5 + self.total) / (self.n + 1)
        var = (0.25 + self.sq) / (self.n + 1)
        up = _stake(mean, var, self.low, +1)
        down = _stake(mean, var, self.high, -1)
        self.log_up += math.log1p(up * (x - self.low))
        self.log_down += math.log1p(-down * (x - self.high))
        self.max_up, self.max_down = max(self.max_up, self.log_up), max(self.max_down, self.log_down)
        self.total += x
        self.n += 1
        self.sq += (x - (0.5 + self.total) / (self.n + 1)) ** 2

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan


def betting_bounds(values: Iterable[float], confidence: float = 0.95, grid: int = 401) -> tuple[float, float]:
    """One-sided anytime-valid bounds (lower, upper) on the mean of values in [0, 1] after all of them: the
    smallest / largest candidate mean whose betting test has not rejected at 1 - confidence by then.

    Each bound is valid at every n simultaneously (a confidence sequence), so it may be read after a
    sequential stop.
    """
    bets = _Bets.of(values, confidence, grid)
    return bets if isinstance(bets, tuple) else (bets.lower(), bets.upper())


def betting_lower(values: Iterable[float], confidence: float = 0.95, grid: int = 401) -> float:
    """``betting_bounds(values, confidence, grid)[0]`` without the work of the upper bound."""
    bets = _Bets.of(values, confidence, grid)
    return bets[0] if isinstance(bets, tuple) else bets.lower()


def betting_upper(values: Iterable[float], confidence: float = 0.95, grid: int = 401) -> float:
    """``betting_bounds(values, confidence, grid)[1]`` without the work of the lower bound."""
    bets = _Bets.of(values, confidence, grid)
    return bets[1] if isinstance(bets, tuple) else bets.upper()


#: Candidates advanced together past the first rows (the others wait their turn: only the first candidate never
#: rejected is wanted, and the candidates near it take every value to decide).
_WIDTH = 16
#: ... and fewer from this many values on (a candidate past the bound there costs a long way for nothing).
_NARROW, _NARROW_FROM = 4, 1024
#: The values of the first step, which every candidate takes (most are rejected within them).
_FIRST_ROWS = 32
#: The most (value, candidate) pairs one step computes at once.
_STEP_CELLS = 1 << 17


class _Bets:
    """The bettors of ``betting_bounds``, followed candidate by candidate only as far as a bound needs.

    Each (value, candidate) pair gets the floating-point operations the loop over the values
    (``_bounds_loop``) gives it, and each candidate's wealth is summed in the same order, so the bounds are
    bit-identical to the loop's. The work saved: a candidate is rejected once its running maximum wealth
    reaches the threshold (that maximum never decreases), and the lower bound is fixed by the first candidate
    in increasing order that is never rejected (the upper one: in decreasing order); the candidates before it
    are followed only until they are rejected, those after it not at all, and a candidate beyond every running
    mean is never staked against (never rejected) without computing anything. The running means and variances
    of the values do not depend on the candidate: computed once, as whole arrays.
    """

    __slots__ = ("cap_down", "cap_up", "mean", "ms", "threshold", "var", "xs")

    @classmethod
    def of(cls, values: Iterable[float], confidence: float, grid: int) -> _Bets | tuple[float, float]:
        """The bettors, or the bounds at once (no value; inputs the loop handles its own way)."""
        xs = np.clip(np.asarray(list(values), dtype=float), 0.0, 1.0)
        if xs.size == 0:
            return 0.0, 1.0
        threshold = math.log(1.0 / (1.0 - confidence))
        if not threshold > 0 or grid < 2 or np.isnan(xs).any():  # (NaN: a rejection can be undone)
            return _bounds_loop(xs, threshold, grid)
        bets = cls()
        bets.xs, bets.threshold = xs, threshold
        bets.ms = ms = np.linspace(0.0, 1.0, grid)
        n = xs.size
        totals = np.cumsum(xs)  # the running sums, each added in the loop's order
        steps = np.arange(1, n + 2, dtype=float)
        before = np.zeros(n)
        before[1:] = totals[:-1]
        bets.mean = (0.5 + before) / steps[:-1]
        deviations = xs - (0.5 + totals) / steps[1:]
        # each square as the loop's numpy scalar ``** 2`` makes it: the C library's pow, which is not always the
        # product d * d that the array power gives
        squares = np.fromiter((d ** 2 for d in deviations), dtype=float, count=n)
        sq = np.zeros(n)
        np.cumsum(squares[:-1], out=sq[1:])
        bets.var = (0.25 + sq) / steps[:-1]
        with np.errstate(divide="ignore", invalid="ignore"):
            bets.cap_up = np.where(ms > 0, STAKE_CAP / ms, 0.0)
            bets.cap_down = np.where(ms < 1, STAKE_CAP / (1 - ms), 0.0)
        return bets

    def lower(self) -> float:
        ms = self.ms
        # from ``stop`` on, no running mean is above the candidate: nothing is staked, it is never rejected; nor is a
        # candidate no value is above (each term ``log1p(stake * (x - m))`` is then <= 0: the wealth never rises).
        # (``stop`` < grid: the values and the running means are at most 1, the last candidate)
        stop = max(1, int(np.searchsorted(ms, min(self.mean.max(), self.xs.max()), side="left")))
        first = self._first_kept(np.arange(1, stop), up=True)
        return float(ms[(stop if first is None else first) - 1])

    def upper(self) -> float:
        ms = self.ms
        grid = ms.size
        # up to ``start``, no running mean is below the candidate (nothing staked), or no value is (each term is
        # <= 0): never rejected (the first of the candidates from the top, ``grid - 2``, at most). (``start`` >= 0:
        # the values and the running means are at least 0, the first candidate)
        start = min(int(np.searchsorted(ms, max(self.mean.min(), self.xs.min()), side="right")) - 1, grid - 2)
        first = self._first_kept(np.arange(grid - 2, start, -1), up=False)
        return float(ms[(start if first is None else first) + 1])

    def _first_kept(self, candidates: np.ndarray, *, up: bool) -> int | None:
        """The first of ``candidates`` (in their order) whose test is never rejected over all the values.

        The candidates go in groups that share a row (the values done): the first step takes every candidate
        over ``_FIRST_ROWS`` values; then the first ``_WIDTH`` alive candidates go on, doubling the rows of each
        step, while the others wait on a stack. The stack's top holds the earliest waiting candidates, and every
        candidate before them is rejected when it is reached.
        """
        n = self.xs.size
        threshold = self.threshold
        zeros = np.zeros(candidates.size)
        stack = [(candidates, 0, zeros, zeros)]
        while stack:
            cols, row, log, top = stack.pop()
            while cols.size:
                width = _WIDTH if row < _NARROW_FROM else _NARROW
                if row and cols.size > width:  # the rest wait, where they are
                    stack.append((cols[width:], row, log[width:], top[width:]))
                    cols, log, top = cols[:width], log[:width], top[:width]
                rows = max(row, _FIRST_ROWS, 1)
                rows = max(1, min(rows, _STEP_CELLS // cols.size))
                end = min(n, row + rows)
                log, top = self._advance(cols, row, end, log, top, up)
                row = end
                alive = top < threshold
                if not alive.all():
                    cols, log, top = cols[alive], log[alive], top[alive]
                if row >= n:
                    if cols.size:
                        return int(cols[0])
                    break
        return None

    def _advance(self, cols: np.ndarray, row: int, end: int, log: np.ndarray, top: np.ndarray, up: bool
                 ) -> tuple[np.ndarray, np.ndarray]:
        """The wealth (log) and its running maximum (top) of candidates ``cols`` after the values up to ``end``:
        one row per candidate, one column per value."""
        m = self.ms[cols][:, None]
        x = self.xs[row:end]
        if up:
            gap = self.mean[row:end] - m
            cap = self.cap_up[cols][:, None]
        else:
            gap = m - self.mean[row:end]
            cap = self.cap_down[cols][:, None]
        np.maximum(gap, 0.0, out=gap)
        scale = gap ** 2
        scale += self.var[row:end]
        np.divide(gap, scale, out=gap)
        stake = np.minimum(gap, cap, out=gap)
        if not up:
            np.negative(stake, out=stake)
        stake *= x - m
        terms = np.log1p(stake)  # (a new array, as the loop's: the same vectorised log1p)
        terms[:, 0] += log  # the wealth so far, then each value's term in turn: the loop's sums
        np.cumsum(terms, axis=1, out=terms)
        return terms[:, -1].copy(), np.maximum(top, terms.max(axis=1))


def _bounds_loop(xs: np.ndarray, threshold: float, grid: int) -> tuple[float, float]:
    """``betting_bounds`` value by value over the whole grid: for the inputs ``_Bets`` leaves to it (and the
    reference it is checked against)."""
    ms = np.linspace(0.0, 1.0, grid)
    log_up = np.zeros(grid)
    log_down = np.zeros(grid)
    max_up = np.zeros(grid)
    max_down = np.zeros(grid)
    total = sq = 0.0
    for i, x in enumerate(xs):
        mean = (0.5 + total) / (i + 1)
        var = (0.25 + sq) / (i + 1)
        gap_up = np.maximum(mean - ms, 0.0)
        gap_down = np.maximum(ms - mean, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            up = np.minimum(gap_up / (var + gap_up ** 2), np.where(ms > 0, STAKE_CAP / ms, 0.0))
            down = np.minimum(gap_down / (var + gap_down ** 2), np.where(ms < 1, STAKE_CAP / (1 - ms), 0.0))
        log_up += np.log1p(up * (x - ms))
        log_down += np.log1p(-down * (x - ms))
        np.maximum(max_up, log_up, out=max_up)
        np.maximum(max_down, log_down, out=max_down)
        total += x
        sq += (x - (0.5 + total) / (i + 2)) ** 2
    rejected_low = max_up >= threshold  # "mean <= m" rejected: the mean is above m
    rejected_high = max_down >= threshold
    rejected_low[0] = rejected_high[-1] = True  # the mean is in [0, 1] for sure
    # the bounds of the candidates never rejected, rounded outward to the grid
    kept_low = np.nonzero(~rejected_low)[0]
    kept_high = np.nonzero(~rejected_high)[0]
    lower = float(ms[kept_low[0] - 1]) if kept_low.size and kept_low[0] > 0 else (0.0 if kept_low.size else 1.0)
    upper = float(ms[kept_high[-1] + 1]) if kept_high.size and kept_high[-1] < grid - 1 else (
        1.0 if kept_high.size else 0.0)
    return lower, upper

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
    xs = np.clip(np.asarray(list(values), dtype=float), 0.0, 1.0)
    if xs.size == 0:
        return 0.0, 1.0
    threshold = math.log(1.0 / (1.0 - confidence))
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

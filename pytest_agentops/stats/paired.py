"""Paired comparisons on common seeds, checked after every pair: anytime-valid p-values from test martingales.

Two agents run on the same trial seeds (same faults, same tasks, same random draws) give one pair of outcomes
per seed. For each question a test martingale (a nonnegative process of mean <= 1 under the null) is kept;
``p = min(1, 1 / max M)`` is then a p-value valid at any data-dependent stopping time (Ville's inequality),
so several of them can be combined by Holm's step-down procedure when the comparison stops.

* Completion, regression: exact McNemar made sequential. Among discordant pairs (one agent completed, the
  other not) the share in the candidate's favour is 1/2 or more unless the candidate is worse; the mixture
  likelihood ratio of ``stats.sequential`` (alternatives below 1/2) on those pairs is the martingale.
* Completion, non-inferiority within a margin d: the mean of c - b in {-1, 0, 1} is above -d; a betting
  martingale on (c - b + 1) / 2 (``stats.betting``).
* Tokens or cost per task: sign tests on the pairs that differ, likewise: regression when the candidate spends
  more on more than half of them, non-inferiority when it spends more than (1 + growth) x on less than half.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import hide_own_frames
from .betting import STAKE_CAP
from .sequential import MIXTURE_FROM, MIXTURE_POINTS, _alternative, _components, _log_lr

__tracebackhide__ = hide_own_frames


@dataclass(slots=True)
class MixtureTest:
    """The mixture likelihood-ratio martingale against "share >= 1/2" (``below=True``) or "share <= 1/2", over
    alternatives an SPRT reaches in 10 .. ``horizon`` units; fed one unit at a time."""

    below: bool
    horizon: int
    k: int = 0
    n: int = 0
    log_max: float = 0.0
    _up: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    _down: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    _w: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        trials = np.geomspace(MIXTURE_FROM, max(self.horizon, MIXTURE_FROM + 1), MIXTURE_POINTS)
        target = math.log(20.0)
        alternatives = [_alternative(m, 0.5, target / m, -1 if self.below else +1) for m in trials]
        self._up, self._down = _components(0.5, alternatives)
        self._w = np.full(MIXTURE_POINTS, -math.log(MIXTURE_POINTS))

    def add(self, success: bool) -> None:
        self.n += 1
        self.k += bool(success)
        value = float(_log_lr(self._up, self._down, self._w, self.n, self.k))
        self.log_max = max(self.log_max, value)

    @property
    def p_value(self) -> float:
        return min(1.0, math.exp(-self.log_max))


@dataclass(slots=True)
class BettingMartingale:
    """The betting martingale against "mean of x in [0, 1] <= m", fed one value at a time (aGRAPA stakes)."""

    m: float
    n: int = 0
    total: float = 0.0
    sq: float = 0.0
    log_wealth: float = 0.0
    log_max: float = 0.0

    def add(self, x: float) -> None:
        mean = (0.5 + self.total) / (self.n + 1)
        var = (0.25 + self.sq) / (self.n + 1)
        gap = mean - self.m
        stake = 0.0 if gap <= 0 or self.m <= 0 else min(gap / (var + gap * gap), STAKE_CAP / self.m)
        self.log_wealth += math.log1p(stake * (x - self.m))
        self.log_max = max(self.log_max, self.log_wealth)
        self.total += x
        self.n += 1
        self.sq += (x - (0.5 + self.total) / (self.n + 1)) ** 2

    @property
    def p_value(self) -> float:
        return min(1.0, math.exp(-self.log_max))


def holm(p_values: list[float], alpha: float) -> list[bool]:
    """Holm's step-down rejections at family-wise error ``alpha`` (Holm 1979)."""
    order = sorted(range(len(p_values)), key=p_values.__getitem__)
    rejected = [False] * len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] <= alpha / (len(p_values) - rank):
            rejected[i] = True
        else:
            break
    return rejected

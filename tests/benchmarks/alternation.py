"""The order in which a side-by-side benchmark runs its arms: every arm once a round, the order reversed every
other round (A B, B A, A B, ...).

A shared machine drifts within one run (it slows down or speeds up over minutes as other work comes and goes).
Run in the same order every round, the arm run second is measured one slot later than the first each time, and
the drift of that slot is charged to it, round after round (progress display: +8% in a run where its own code
took 0.9% of the time, the later arms slower in every round). Reversed every other round, that slot's drift
falls on each arm alike: over an even number of rounds a steady drift cancels out of each arm's sum, and the
paired differences (and ratios) taken round by round lean as often one way as the other, so their median does
not carry it (``tests/test_bench_alternation.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def alternate(rounds: int, arms: Sequence[T]) -> Iterator[T]:
    """Each of ``arms``, once in each of ``rounds`` rounds: in the given order in even rounds (0, 2, ...), in the
    reverse order in odd ones."""
    arms = list(arms)
    for r in range(rounds):
        yield from (arms if r % 2 == 0 else reversed(arms))

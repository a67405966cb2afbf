"""The scheduler's spend predicate: whether a capped campaign may launch another trial, and where it stops.

The cap itself is enforced per model call by the spend layer (``harness.spend``); this is the launch rule
on top: never launch a trial that could cross the cap. What one trial can cost is learnt from the trials
that ended (the costliest so far), so the first trial runs alone; after that a trial is launched while the
spend so far, the trials in flight (each as costly as the costliest, or what it spent already if more) and
one more fit under the cap. The campaign stops when nothing is in flight and the next trial does not fit,
or when a call of some trial did not fit (that trial was cut): the judged trials are then the launch-order
prefix before the first cut trial. Trials running past the stop finish (their calls fit the cap, and what they
spend is metered: cutting them short would lose the usage of calls the upstream answers anyway), unjudged.

A campaign the cap stopped is judged like an interrupted one: the judges are valid after every trial of the
launch-order prefix (``pytest_agentops.judge``), so the verdicts reached keep their stated error rates, and
the undecided ones are inconclusive.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import hide_own_frames
from ..harness.spend import Ledger, ledger_of

__tracebackhide__ = hide_own_frames


class SpendGate:
    """The launch rule of a campaign with a spend cap (every method is a no-op without one)."""

    def __init__(self, ledger: Ledger | None):
        self.ledger = ledger
        self.stopped = False  # the cap stopped the campaign before its planned trials

    @classmethod
    def of(cls, layer_parts: Any) -> SpendGate:
        """The gate of the campaign whose layers' campaign parts are ``layer_parts``."""
        return cls(ledger_of(layer_parts))

    @property
    def active(self) -> bool:
        return self.ledger is not None

    def may_launch(self, in_flight: Iterable[int]) -> bool:
        """Whether one more trial may start beside the trials ``in_flight`` (their indices)."""
        ledger = self.ledger
        if ledger is None:
            return True
        if ledger.cut:
            return False
        flying = list(in_flight)
        most = ledger.most_per_trial()
        if most is None:  # nothing known of what a trial costs: the first one runs alone
            return not flying
        usd, tokens = ledger.usd, ledger.tokens
        for index in flying:  # what each trial in flight may still spend
            spent_usd, spent_tokens = ledger.trial_spend(index)
            usd += max(0.0, most[0] - spent_usd)
            tokens += max(0, most[1] - spent_tokens)
        return ledger.cap.fits(usd + most[0], tokens + most[1])

    def restart(self, index: int) -> None:
        """Trial ``index`` runs again from the start: its own spend starts afresh (``Ledger.restart``)."""
        if self.ledger is not None:
            self.ledger.restart(index)

    def halt(self, launched: int, in_flight: Iterable[int], first: int = 0) -> int | None:
        """The number of launch-order trials to judge when the cap ends the campaign now, else None (``in_flight``:
        the indices of the trials running; ``first``: the index of the first trial of this run, a comparison's
        block: its trials are positions ``index - first``)."""
        ledger = self.ledger
        if ledger is None:
            return None
        flying = list(in_flight)
        if ledger.cut:
            self.stopped = True
            here = [index - first for index in ledger.cut if index >= first]  # (one cut in an earlier block: none)
            return min(min(here), launched) if here else 0
        if not flying and not self.may_launch(()):
            self.stopped = True
            return launched
        return None

    def summary(self) -> dict[str, Any] | None:
        """The campaign's spend for its result and report (None without a cap)."""
        ledger = self.ledger
        if ledger is None:
            return None
        cap = ledger.cap
        return {"usd": round(ledger.usd, 10), "tokens": ledger.tokens, "max_usd": cap.max_usd,
                "max_tokens": cap.max_tokens, "stopped_by_cap": self.stopped, "trials_cut": len(ledger.cut),
                "calls_refused": ledger.refused_calls}


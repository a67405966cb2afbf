"""The spend layer: a campaign's spend cap (``RunSettings.spend``), enforced on every model call.

Every metered call of every trial goes into one ``Ledger`` per campaign. A model call through the model
boundary first *reserves* its prompt plus its output limit (the request's own ``max_tokens``, else
``SpendCap.reserve_output_tokens``), priced as the model it names; the reservation becomes the call's real
usage once it is metered. A call that does not fit under the cap with everything already spent and reserved
never starts: its trial is *cut* (ended ``budget_exceeded``, a campaign decision, not the agent's), and the
campaign stops launching (``engine.spend.SpendGate``). Calls in flight together therefore never cross the cap.
A call whose usage never came back (its trial ended mid-call) counts as its whole reservation.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from ..errors import TrialAborted, hide_own_frames
from ..settings.prices import price_for
from .layer import LayerTrial, TrialPort

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    from ..scenario import Scenario
    from ..settings.run import RunSettings
    from ..settings.spend import SpendCap
    from .meter import TokenMeter, Usage


class Ledger:
    """A campaign's spend: committed (metered) and reserved (calls in flight), per trial and in total."""

    def __init__(self, cap: SpendCap):
        self.cap = cap
        self._lock = threading.Lock()
        self.usd = 0.0  # committed
        self.tokens = 0
        self.reserved_usd = 0.0  # reserved by calls in flight
        self.reserved_tokens = 0
        self.per_trial: dict[int, list[float]] = {}  # trial index -> [usd, tokens] committed
        self.finished: set[int] = set()  # trials over (their spend is final)
        self.cut: set[int] = set()  # trials the cap ended
        self.refused_calls = 0

    def reserve(self, usd: float, tokens: int) -> bool:
        """Reserve a call's most it can cost, if it fits under the cap with everything spent and reserved."""
        with self._lock:
            if not self.cap.fits(self.usd + self.reserved_usd + usd, self.tokens + self.reserved_tokens + tokens):
                self.refused_calls += 1
                return False
            self.reserved_usd += usd
            self.reserved_tokens += tokens
            return True

    def release(self, usd: float, tokens: int) -> None:
        with self._lock:
            self.reserved_usd = max(0.0, self.reserved_usd - usd)
            self.reserved_tokens = max(0, self.reserved_tokens - tokens)

    def commit(self, index: int, usd: float, tokens: int) -> None:
        with self._lock:
            self.usd += usd
            self.tokens += tokens
            entry = self.per_trial.setdefault(index, [0.0, 0])
            entry[0] += usd
            entry[1] += tokens

    def finish(self, index: int, cut: bool) -> None:
        with self._lock:
            self.finished.add(index)
            if cut:
                self.cut.add(index)

    def restart(self, index: int) -> None:
        """Trial ``index`` runs again from the start (its event loop was retired): what its earlier run spent stays
        in the campaign's total, which it was, but not in the trial's own figure, and the trial is not over (a
        cut by the cap stays: the cap was reached)."""
        with self._lock:
            self.per_trial.pop(index, None)
            self.finished.discard(index)

    def trial_spend(self, index: int) -> tuple[float, int]:
        with self._lock:
            usd, tokens = self.per_trial.get(index, (0.0, 0))
            return float(usd), int(tokens)

    def most_per_trial(self) -> tuple[float, int] | None:
        """The costliest finished trial's dollars and tokens (each its own maximum); None before any ended."""
        with self._lock:
            done = [self.per_trial.get(i, (0.0, 0)) for i in self.finished if i not in self.cut]
        if not done:
            return None
        return max(float(d[0]) for d in done), max(int(d[1]) for d in done)


class _SpendTrial(LayerTrial):
    __slots__ = ("_bound", "_lock", "cut", "index", "ledger", "reservations", "trial")

    def __init__(self, trial: TrialPort, ledger: Ledger):
        self.trial = trial
        self.index = trial.index
        self.ledger = ledger
        self.reservations: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()
        self._bound = threading.local()  # the output limit of the request about to be reserved
        self.cut = False
        trial.provide("spend", self)

    def expect_output(self, tokens: int | None) -> None:
        """The output limit of the next request this thread sends (None: the cap's default)."""
        self._bound.tokens = tokens

    def on_model_request(self, tokens: int, model: str) -> None:
        out = getattr(self._bound, "tokens", None) or self.ledger.cap.reserve_output_tokens
        self._bound.tokens = None
        meter: TokenMeter = self.trial.meter
        usd = price_for(meter.prices, model).cost(tokens, out)
        if self.ledger.reserve(usd, tokens + out):
            with self._lock:
                self.reservations.append((usd, tokens + out))
            return
        self.cut = True
        reason = (f"campaign spend cap ({self.ledger.cap.describe()}) reached: a model call of {tokens} prompt "
                  f"tokens and up to {out} output tokens does not fit")
        self.trial.trace.add("budget", "campaign", "spend_cap", reason=reason)
        self.trial.abort("budget_exceeded", reason)
        raise TrialAborted("budget_exceeded", reason)

    def on_usage(self, usage: Usage, meter: TokenMeter) -> None:
        with self._lock:
            reserved = self.reservations.popleft() if self.reservations else None
        if reserved is not None:
            self.ledger.release(*reserved)
        self.ledger.commit(self.index, usage.cost_usd, usage.input_tokens + usage.output_tokens)

    def close(self) -> None:
        """The trial is over: a call still reserved never reported its usage (its trial was abandoned or
        ended mid-call, and a live upstream may have answered it): it counts as its whole reservation."""
        with self._lock:
            left, self.reservations = list(self.reservations), deque()
        for usd, tokens in left:
            self.ledger.release(usd, tokens)
            self.ledger.commit(self.index, usd, tokens)
        self.ledger.finish(self.index, self.cut)


class _Campaign:
    """The campaign's part: its ledger."""

    __slots__ = ("ledger",)
    name = "spend"

    def __init__(self, cap: SpendCap):
        self.ledger = Ledger(cap)

    def attach(self, trial: TrialPort) -> LayerTrial:
        return _SpendTrial(trial, self.ledger)


class SpendLayer:
    """On when the run has a spend cap (``max_campaign_usd`` / ``max_campaign_tokens``)."""

    name = "spend"

    def for_campaign(self, scenario: Scenario, run: RunSettings) -> _Campaign | None:
        return None if run.spend is None else _Campaign(run.spend)


def ledger_of(parts: Any) -> Ledger | None:
    """The campaign's ledger among its layers' campaign parts (``CampaignLayers.parts``), or None."""
    for name, part in parts:
        if name == "spend" and isinstance(part, _Campaign):
            return part.ledger
    return None


LAYER = SpendLayer()

"""The network layer: a campaign is hermetic by default. While a trial runs, an HTTP request of its agent or
tools to a host that is neither its model boundary's nor declared (``Scenario(allow_hosts=...)``, the hosts
of its HTTP faults) fails with a connection error naming the host and the trial; the
trial's record lists the hosts it tried (``NetworkRecord``), and so does the report.
``Scenario(network="allow")`` opts out. The guard itself is ``process.network_guard``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ..errors import hide_own_frames
from ..process.http_hub import HTTP_PATCH
from ..process.network_guard import GUARD
from ..settings.network import NetworkRecord
from .layer import LayerTrial, TrialPort

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    from ..scenario import Scenario
    from ..settings.run import RunSettings


class _NetworkTrial(LayerTrial):
    __slots__ = ("_lock", "blocked", "clock", "trial")

    def __init__(self, trial: TrialPort, allowed: frozenset[str]):
        self.trial = trial
        self.blocked: list[str] = []
        self._lock = threading.Lock()
        self.clock = trial.clock
        GUARD.add(trial.clock, allowed, f"{trial.scenario}[trial-{trial.index} seed={trial.seed}]", self._on_block)

    def _on_block(self, host: str) -> None:
        with self._lock:
            first = host not in self.blocked
            if first:
                self.blocked.append(host)
        if first:
            self.trial.trace.add("network", host, "blocked")

    def close(self) -> None:
        GUARD.remove(self.clock)

    def record(self) -> NetworkRecord | None:
        return NetworkRecord(tuple(self.blocked)) if self.blocked else None


class _Hermetic:
    """The campaign's part: holds the HTTP interception while the campaign runs."""

    __slots__ = ("allowed",)
    name = "network"

    def __init__(self, allowed: frozenset[str]):
        self.allowed = allowed
        HTTP_PATCH.acquire()

    def attach(self, trial: TrialPort) -> LayerTrial:
        return _NetworkTrial(trial, self.allowed)

    def close(self) -> None:
        HTTP_PATCH.release()


class NetworkLayer:
    """On unless the scenario says ``network: allow``."""

    name = "network"

    def for_campaign(self, scenario: Scenario, run: RunSettings) -> _Hermetic | None:
        if scenario.network == "allow":
            return None
        allowed = set(scenario.allow_hosts)
        if run.faults.http is not None:
            allowed.update(run.faults.http.hosts)
        # a live upstream is reached by the live boundary only (not through the agent's HTTP stack): an agent
        # calling the provider's host itself would bypass the faults, the meter, the spend cap and cassettes
        return _Hermetic(frozenset(allowed))


LAYER = NetworkLayer()

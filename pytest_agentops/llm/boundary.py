"""The model-boundary layer: a trial's fake model (``env.llm``) and its transport faults, served through the
process's HTTP interception (``process.http_hub``), opened when the trial starts and closed when it ends,
however it ends. The interception is held for the whole campaign (installing it per trial costs a few
milliseconds); trials add and remove their own hosts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import hide_own_frames
from ..harness.layer import LayerTrial, TrialPort
from ..process.http_hub import HTTP_PATCH, HUB
from ..settings.model import FakeLLM, HttpFaults, ModelRecord
from .http_faults import HttpTrial
from .model import TrialModel

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    from ..scenario import Scenario
    from ..settings.run import RunSettings


class Boundary(LayerTrial):
    """One trial's model boundary: its fake model (``endpoint``) and its transport faults."""

    __slots__ = ("closed", "ctx", "http", "model")

    def __init__(self, ctx: TrialPort, llm: FakeLLM | None, http: HttpFaults | None):
        self.ctx = ctx
        self.closed = False
        faults = ctx.plan.faults
        self.model = None if llm is None else TrialModel(
            llm.policy, ctx, model=llm.model, latency_s=llm.latency_s, host=HUB.new_host(ctx.seed), faults=faults.model,
            drift=faults.drift)
        self.http = None if http is None else HttpTrial(ctx, http)
        HTTP_PATCH.acquire()  # cheap while the campaign holds it; installs it for a trial run on its own
        if self.model is not None:
            HUB.add_host(self.model.host, self.model)
            ctx.provide("llm", self.model.endpoint)
        if self.http is not None:
            HUB.add_faults(ctx.clock, self.http.hosts, self.http)

    def close(self) -> None:
        """Remove the trial's routes (idempotent)."""
        if self.closed:
            return
        self.closed = True
        if self.model is not None:
            HUB.remove_host(self.model.host)
        if self.http is not None:
            HUB.remove_faults(self.ctx.clock)
        HTTP_PATCH.release()

    def record(self) -> ModelRecord | None:
        if self.model is None:
            return None
        value = self.model.utilization()
        return ModelRecord(attempts=self.model.requests,
                           context_utilization=None if value is None else round(value, 6))


class _Boundaries:
    """The boundary for one campaign: holds the HTTP interception while the campaign runs."""

    __slots__ = ("http", "llm")
    name = "model"

    def __init__(self, llm: FakeLLM | None, http: HttpFaults | None):
        self.llm = llm
        self.http = http
        HTTP_PATCH.acquire()

    def attach(self, trial: TrialPort) -> LayerTrial:
        return Boundary(trial, self.llm, self.http)

    def close(self) -> None:
        HTTP_PATCH.release()


class BoundaryLayer:
    """On for scenarios with a fake model (``Scenario(llm=...)``), a live one (``Scenario(live=...)``, the live
    boundary of ``llm.live``) or HTTP faults on named hosts."""

    name = "model"

    def for_campaign(self, scenario: Scenario, run: RunSettings) -> Any:
        http = run.faults.http if run.faults.http is not None and run.faults.http.active else None
        if scenario.live is not None:
            from .live import LiveCampaign

            return LiveCampaign(scenario, run, http)
        if scenario.llm is None and http is None:
            return None
        return _Boundaries(scenario.llm, http)


LAYER = BoundaryLayer()

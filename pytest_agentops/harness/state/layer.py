"""The state layer: every trial gets its own empty namespace of the campaign's checkpoint store as
``env.state`` (unique to the campaign: see ``CampaignState``); every save and delete is traced, an ended
trial's agent can no longer use it, and its checkpoints are removed when it ends."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from ...errors import TrialAborted, hide_own_frames
from ...settings.faults import Faults
from ...settings.layers import StateSpec
from ..layer import LayerTrial, TrialPort
from .campaign import CampaignState, TrialStore, backend_of
from .protocol import CheckpointStore

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    from ...scenario import Scenario
    from ...settings.run import RunSettings


def resolve_state(state: StateSpec | str | None, faults: Faults) -> StateSpec:
    """The scenario's state backend; unset means memory, or a temporary SQLite file when crashes are real."""
    if state is None:
        return StateSpec("sqlite") if faults.crash_mode == "sigkill" else StateSpec("memory")
    return StateSpec.parse(state)


class _StateTrial(LayerTrial):
    __slots__ = ("_campaign", "_store", "_trace")

    def __init__(self, trial: TrialPort, campaign: CampaignState):
        scenario, seed = trial.scenario, trial.seed

        def opener() -> CheckpointStore:
            """The trial's namespace, opened at its first use (most agents never touch ``env.state``). A store
            that cannot be opened makes the trial an error, whatever the agent does with the exception."""
            try:
                return campaign.trial_store(scenario, seed)
            except Exception as exc:
                with contextlib.suppress(ReferenceError):  # (the trial's context is gone: the error as it is)
                    trial.abort("error", f"the checkpoint store could not be opened: {type(exc).__name__}: {exc}")
                raise

        def guard() -> None:
            """Before each use: refused once the trial has ended (its context may be gone already: an agent
            that kept ``env.state`` past its trial gets the trial's end, not a dead weak reference)."""
            try:
                trial.check_alive()
            except ReferenceError:
                raise TrialAborted("ended", "the trial has ended: its checkpoint store is closed") from None

        # (functions over the weak proxy: ``trial.check_alive`` is bound to the context itself, and holding it
        # would make the trial a reference cycle, left for the cyclic collector instead of freed at once)
        store = TrialStore(event=trial.trace.add, guard=guard, opener=opener)
        trial.provide("state", store)
        trial.provide("state_campaign", campaign)
        self._campaign, self._store, self._trace = campaign, store, trial.trace

    def close(self) -> None:
        """The trial is over: its checkpoints go, if it opened its store (a store that fails now is said in
        the trace, not raised: the campaign's close tries again)."""
        if not self._store.opened:
            return
        try:
            self._campaign.release(backend_of(self._store))
        except Exception as exc:
            self._trace.add("checkpoint", "*", "not_cleared", error=f"{type(exc).__name__}: {exc}")


class _States:
    """The state layer for one campaign: its storage, opened when the campaign starts."""

    __slots__ = ("campaign",)
    name = "state"

    def __init__(self, spec: StateSpec):
        self.campaign = CampaignState(spec)

    def attach(self, trial: TrialPort) -> LayerTrial:
        return _StateTrial(trial, self.campaign)

    def close(self) -> None:
        """The campaign ended: close the connection, remove a temporary checkpoint file."""
        self.campaign.close()


class StateLayer:
    """Always on: ``env.state`` is the agent's checkpoint store (in memory unless the scenario says)."""

    name = "state"

    def for_campaign(self, scenario: Scenario, run: RunSettings) -> _States:
        return _States(resolve_state(scenario.state, run.faults))


LAYER = StateLayer()

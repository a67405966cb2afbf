"""The state layer: every trial gets its own emptied namespace of the campaign's checkpoint store as
``env.state``; every save and delete is traced, and an ended trial's agent can no longer use it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...settings.faults import Faults
from ...settings.layers import StateSpec
from ..layer import LayerTrial, TrialPort
from .campaign import CampaignState, TrialStore

if TYPE_CHECKING:
    from ...scenario import Scenario
    from ...settings.run import RunSettings


def resolve_state(state: StateSpec | str | None, faults: Faults) -> StateSpec:
    """The scenario's state backend; unset means memory, or a temporary SQLite file when crashes are real."""
    if state is None:
        return StateSpec("sqlite") if faults.crash_mode == "sigkill" else StateSpec("memory")
    return StateSpec.parse(state)


class _StateTrial(LayerTrial):
    __slots__ = ()

    def __init__(self, trial: TrialPort, campaign: CampaignState):
        store = campaign.trial_store(trial.scenario, trial.seed)
        trial.provide("state", TrialStore(store, trial.trace.add, trial.check_alive))
        trial.provide("state_campaign", campaign)


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

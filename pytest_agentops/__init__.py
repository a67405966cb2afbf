"""pytest-agentops: chaos testing and statistical reliability verdicts for tool-calling AI agents.

The public API: declare tools with ``@tool``, describe a ``Scenario`` with ``Faults``, run it with
``run_campaign`` (or the ``agent_chaos`` pytest fixture) and assert with ``result.check()``.

Names are resolved lazily (PEP 562): importing the package (as pytest does when it loads the plugin's
entry point) imports none of the engine, numpy or the harness until a name is used.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from . import process as _process  # noqa: F401 (takes the collector's freeze count at start: ``FROZEN_AT_START``)
from ._lazy import lazy_names
from .errors import hide_own_frames

__tracebackhide__ = hide_own_frames

#: public name -> the module (relative to this package) that defines it
_EXPORTS: dict[str, str] = {
    "__version__": "._version",  # (read from the installed metadata when first asked: an agent's child never is)
    "AgentOpsError": ".errors",
    "Approver": ".settings.layers",
    "Budget": ".settings.layers",
    "CampaignFailed": ".errors",
    "CampaignInterrupted": ".errors",
    "CampaignResult": ".result",
    "CheckpointError": ".errors",
    "CheckpointStore": ".harness.state",
    "ConfigError": ".errors",
    "DailyUsers": ".settings.layers",
    "Drift": ".settings.model",
    "Env": ".harness.env",
    "Escalation": ".settings.layers",
    "Expectation": ".expect",
    "FakeLLM": ".settings.model",
    "HarnessLayer": ".harness.layer",
    "LayerTrial": ".harness.layer",
    "MetricDef": ".metrics",
    "Faults": ".settings.faults",
    "HarnessChanged": ".errors",
    "HttpFaults": ".settings.model",
    "Injection": ".settings.injection",
    "LLMEndpoint": ".llm.endpoint",
    "LiveLLM": ".settings.live",
    "ModelFaults": ".settings.model",
    "Price": ".settings.prices",
    "ProcessStateChanged": ".errors",
    "UnusedSetting": ".errors",
    "RateLimited": ".errors",
    "Rule": ".settings.trajectory",
    "Scenario": ".scenario",
    "ScenarioFileError": ".errors",
    "StateSpec": ".settings.layers",
    "ToolError": ".errors",
    "ToolFaults": ".settings.faults",
    "ToolTimeout": ".errors",
    "ToolUnavailable": ".errors",
    "Trajectory": ".settings.trajectory",
    "TrialRecord": ".records",
    "UncheckedCampaign": ".errors",
    "IsolationUnfenced": ".errors",
    "TrialPort": ".harness.layer",
    "Verdict": ".expect",
    "VirtualClock": ".vtime.clock",
    "register_metric": ".metrics",
    "replay_trial": ".engine.campaign",
    "run_campaign": ".engine.campaign",
    "shrink_trial": ".engine.campaign",
    "MinimalFaults": ".records",
    "tool": ".settings.tools",
}

__all__ = [
    "AgentOpsError",
    "Approver",
    "Budget",
    "CampaignFailed",
    "CampaignInterrupted",
    "CampaignResult",
    "CheckpointError",
    "CheckpointStore",
    "ConfigError",
    "DailyUsers",
    "Drift",
    "Env",
    "Escalation",
    "Expectation",
    "FakeLLM",
    "Faults",
    "HarnessChanged",
    "HarnessLayer",
    "HttpFaults",
    "Injection",
    "IsolationUnfenced",
    "LLMEndpoint",
    "LayerTrial",
    "LiveLLM",
    "MetricDef",
    "MinimalFaults",
    "ModelFaults",
    "Price",
    "ProcessStateChanged",
    "RateLimited",
    "Rule",
    "Scenario",
    "ScenarioFileError",
    "StateSpec",
    "ToolError",
    "ToolFaults",
    "ToolTimeout",
    "ToolUnavailable",
    "Trajectory",
    "TrialPort",
    "TrialRecord",
    "UncheckedCampaign",
    "UnusedSetting",
    "Verdict",
    "VirtualClock",
    "__version__",
    "register_metric",
    "replay_trial",
    "run_campaign",
    "shrink_trial",
    "tool",
]


#: names that left the public API: name -> (module, note)
_DEPRECATED: dict[str, tuple[str, str]] = {
    "FaultPlan": (".plan", "pytest_agentops.FaultPlan is internal since 0.2.0: import it from pytest_agentops.plan"),
}


_exported, __dir__ = lazy_names(__name__, _EXPORTS, globals())


def __getattr__(name: str) -> Any:
    if name in _DEPRECATED:
        module, note = _DEPRECATED[name]
        warnings.warn(note, DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(module, __name__), name)
    return _exported(name)


if TYPE_CHECKING:  # what type checkers and IDEs see
    from ._version import __version__
    from .engine.campaign import replay_trial, run_campaign, shrink_trial
    from .errors import (
        AgentOpsError,
        CampaignFailed,
        CampaignInterrupted,
        CheckpointError,
        ConfigError,
        HarnessChanged,
        IsolationUnfenced,
        ProcessStateChanged,
        RateLimited,
        ScenarioFileError,
        ToolError,
        ToolTimeout,
        ToolUnavailable,
        UncheckedCampaign,
        UnusedSetting,
    )
    from .expect import Expectation, Verdict
    from .harness.env import Env
    from .harness.layer import HarnessLayer, LayerTrial, TrialPort
    from .harness.state import CheckpointStore
    from .llm.endpoint import LLMEndpoint
    from .metrics import MetricDef, register_metric
    from .records import MinimalFaults, TrialRecord
    from .result import CampaignResult
    from .scenario import Scenario
    from .settings.faults import Faults, ToolFaults
    from .settings.injection import Injection
    from .settings.layers import Approver, Budget, DailyUsers, Escalation, StateSpec
    from .settings.live import LiveLLM
    from .settings.model import Drift, FakeLLM, HttpFaults, ModelFaults
    from .settings.prices import Price
    from .settings.tools import tool
    from .settings.trajectory import Rule, Trajectory
    from .vtime.clock import VirtualClock

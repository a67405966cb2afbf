"""pytest-agentops: chaos testing and statistical reliability verdicts for tool-calling AI agents.

The public API: declare tools with ``@tool``, describe a ``Scenario`` with ``Faults``, run it with
``run_campaign`` (or the ``agent_chaos`` pytest fixture) and assert with ``result.check()``.

Names are resolved lazily (PEP 562): importing the package (as pytest does when it loads the plugin's
entry point) imports none of the engine, numpy or the harness until a name is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

#: public name -> the module (relative to this package) that defines it
_EXPORTS: dict[str, str] = {
    "AgentOpsError": ".errors",
    "Approver": ".settings.layers",
    "Budget": ".settings.layers",
    "CampaignFailed": ".errors",
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
    "FaultPlan": ".plan",
    "Faults": ".settings.faults",
    "HttpFaults": ".settings.model",
    "LLMEndpoint": ".llm.endpoint",
    "ModelFaults": ".settings.model",
    "Price": ".settings.layers",
    "RateLimited": ".errors",
    "Scenario": ".scenario",
    "ScenarioFileError": ".errors",
    "StateSpec": ".settings.layers",
    "ToolError": ".errors",
    "ToolFaults": ".settings.faults",
    "ToolTimeout": ".errors",
    "ToolUnavailable": ".errors",
    "TrialRecord": ".records",
    "Verdict": ".expect",
    "VirtualClock": ".vtime.clock",
    "replay_trial": ".engine.campaign",
    "run_campaign": ".engine.campaign",
    "tool": ".settings.tools",
}

__all__ = [
    "AgentOpsError",
    "Approver",
    "Budget",
    "CampaignFailed",
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
    "FaultPlan",
    "Faults",
    "HttpFaults",
    "LLMEndpoint",
    "ModelFaults",
    "Price",
    "RateLimited",
    "Scenario",
    "ScenarioFileError",
    "StateSpec",
    "ToolError",
    "ToolFaults",
    "ToolTimeout",
    "ToolUnavailable",
    "TrialRecord",
    "Verdict",
    "VirtualClock",
    "__version__",
    "replay_trial",
    "run_campaign",
    "tool",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_agentops' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:  # what type checkers and IDEs see
    from .engine.campaign import replay_trial, run_campaign
    from .errors import (
        AgentOpsError,
        CampaignFailed,
        CheckpointError,
        ConfigError,
        RateLimited,
        ScenarioFileError,
        ToolError,
        ToolTimeout,
        ToolUnavailable,
    )
    from .expect import Expectation, Verdict
    from .harness.env import Env
    from .harness.state import CheckpointStore
    from .llm.endpoint import LLMEndpoint
    from .plan import FaultPlan
    from .records import TrialRecord
    from .result import CampaignResult
    from .scenario import Scenario
    from .settings.faults import Faults, ToolFaults
    from .settings.layers import Approver, Budget, DailyUsers, Escalation, Price, StateSpec
    from .settings.model import Drift, FakeLLM, HttpFaults, ModelFaults
    from .settings.tools import tool
    from .vtime.clock import VirtualClock

"""pytest-agentops: chaos testing and statistical reliability verdicts for tool-calling AI agents.

The public API: declare tools with ``@tool``, describe a ``Scenario`` with ``Faults``, run it with
``run_campaign`` (or the ``agent_chaos`` pytest fixture) and assert with ``result.check()``.
"""

from .env import Env
from .errors import (
    AgentOpsError,
    ConfigError,
    RateLimited,
    ScenarioFileError,
    ToolError,
    ToolTimeout,
    ToolUnavailable,
)
from .expect import Expectation, Verdict
from .faults import FaultPlan, Faults, ToolFaults
from .harness.budget import Budget, DailyUsers, Price
from .harness.escalation import Escalation
from .harness.gates import Approver
from .harness.state import CheckpointError, CheckpointStore, StateSpec  # state layer
from .harness.tools import tool
from .llm import Drift, FakeLLM, HttpFaults, ModelFaults  # model boundary
from .records import TrialRecord
from .result import CampaignFailed, CampaignResult
from .runner import replay_trial, run_campaign
from .scenario import Scenario

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
    "replay_trial",
    "run_campaign",
    "tool",
]
__version__ = "0.1.0"

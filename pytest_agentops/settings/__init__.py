"""Settings as frozen, validated values: no runtime, no pytest. A ``Scenario`` is built from these only."""

from ..errors import hide_own_frames
from .faults import (
    CRASH_MODES,
    CRASH_POINTS,
    DEFAULT_MIX,
    FAILING_TOOL_FAULTS,
    PROFILES,
    TOOL_FAULT_KINDS,
    Faults,
    ToolFaults,
)
from .layers import BUDGET_NAMES, Approver, Budget, DailyUsers, Escalation, StateSpec
from .model import (
    API_FAULT_KINDS,
    DRIFT_KINDS,
    HTTP_FAULT_KINDS,
    OUTPUT_FAULT_KINDS,
    Drift,
    FakeLLM,
    HttpFaults,
    ModelFaults,
    pick,
)
from .prices import DEFAULT_PRICES, Price, price_for, price_table
from .run import DEFAULT_PROFILE, RunSettings, RunSource
from .tools import ToolSpec, tool, tool_spec
from .trajectory import Rule, Trajectory, TrajectoryRecord

__tracebackhide__ = hide_own_frames

__all__ = [
    "API_FAULT_KINDS",
    "BUDGET_NAMES",
    "CRASH_MODES",
    "CRASH_POINTS",
    "DEFAULT_MIX",
    "DEFAULT_PRICES",
    "DEFAULT_PROFILE",
    "DRIFT_KINDS",
    "FAILING_TOOL_FAULTS",
    "HTTP_FAULT_KINDS",
    "OUTPUT_FAULT_KINDS",
    "PROFILES",
    "TOOL_FAULT_KINDS",
    "Approver",
    "Budget",
    "DailyUsers",
    "Drift",
    "Escalation",
    "FakeLLM",
    "Faults",
    "HttpFaults",
    "ModelFaults",
    "Price",
    "Rule",
    "RunSettings",
    "RunSource",
    "StateSpec",
    "ToolFaults",
    "ToolSpec",
    "Trajectory",
    "TrajectoryRecord",
    "pick",
    "price_for",
    "price_table",
    "tool",
    "tool_spec",
]

"""Settings as frozen, validated values: no runtime, no pytest. A ``Scenario`` is built from these only.

Names are resolved lazily (PEP 562), as the package's own are: ``from pytest_agentops import tool`` in an
agent's module loads ``settings.tools`` alone, not every module of settings (~60 ms of an isolated agent's
start-up, the metrics they declare among them: ``metrics.BUILTIN_ORDER`` keeps their order whichever loads first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names
from ..errors import hide_own_frames

if TYPE_CHECKING:
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

#: public name -> the module of this package that defines it (relative)
_EXPORTS: dict[str, str] = {
    "CRASH_MODES": ".faults",
    "CRASH_POINTS": ".faults",
    "DEFAULT_MIX": ".faults",
    "FAILING_TOOL_FAULTS": ".faults",
    "PROFILES": ".faults",
    "TOOL_FAULT_KINDS": ".faults",
    "Faults": ".faults",
    "ToolFaults": ".faults",
    "BUDGET_NAMES": ".layers",
    "Approver": ".layers",
    "Budget": ".layers",
    "DailyUsers": ".layers",
    "Escalation": ".layers",
    "StateSpec": ".layers",
    "API_FAULT_KINDS": ".model",
    "DRIFT_KINDS": ".model",
    "HTTP_FAULT_KINDS": ".model",
    "OUTPUT_FAULT_KINDS": ".model",
    "Drift": ".model",
    "FakeLLM": ".model",
    "HttpFaults": ".model",
    "ModelFaults": ".model",
    "pick": ".model",
    "DEFAULT_PRICES": ".prices",
    "Price": ".prices",
    "price_for": ".prices",
    "price_table": ".prices",
    "DEFAULT_PROFILE": ".run",
    "RunSettings": ".run",
    "RunSource": ".run",
    "ToolSpec": ".tools",
    "tool": ".tools",
    "tool_spec": ".tools",
    "Rule": ".trajectory",
    "Trajectory": ".trajectory",
    "TrajectoryRecord": ".trajectory",
}


__getattr__, __dir__ = lazy_names(__name__, _EXPORTS, globals(), modules=True)

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

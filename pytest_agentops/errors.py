"""Exceptions: one base for the project, and the fault types an agent sees from a tool.

The fault exceptions are what a real failure looks like to the agent: a careful agent catches
``ToolError`` (or one of its subclasses) and retries or escalates; nothing in them is a silent success.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any


class AgentOpsError(Exception):
    """Base class of every error pytest-agentops raises on purpose."""


class ConfigError(AgentOpsError, ValueError):
    """A scenario, fault or expectation setting has a bad value; the message names it and the fix."""


def check_share(name: str, value: Any) -> float:
    """A share (of calls, attempts, trials): a finite number in [0, 1], returned as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name}={value!r} must be a number between 0 and 1")
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name}={value!r} must be between 0 and 1 (a share, e.g. 0.08 for 8%)")
    return float(value)


def check_seconds(name: str, value: Any) -> float:
    """A duration: a finite number of seconds >= 0, returned as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name}={value!r} must be a number of seconds >= 0")
    return float(value)


def reject_unknown_keys(data: Mapping[str, Any], known: Iterable[str], where: str) -> None:
    """Raise ConfigError naming every key of ``data`` not in ``known``: a setting is never silently ignored."""
    known = list(known)
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{where} has unknown key(s) {unknown}; valid keys: {', '.join(known)}")


class ScenarioFileError(ConfigError):
    """A scenario file is invalid; carries the file, line and column of the offending node."""

    def __init__(self, message: str, path: str = "", line: int | None = None, column: int | None = None):
        self.path = path
        self.line = line
        self.column = column
        where = path
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        self.bare_message = message
        super().__init__(f"{where}: {message}" if where else message)


# --- what an agent sees when an injected tool fault fires -------------------------------------------------


class ToolError(AgentOpsError):
    """A tool call failed (injected ``error`` fault): the tool raised, as a flaky API would."""

    kind = "error"

    def __init__(self, tool: str, message: str = ""):
        self.tool = tool
        super().__init__(message or f"{tool}: internal error (injected fault)")


class ToolTimeout(ToolError, TimeoutError):
    """The tool did not answer in time (injected ``timeout`` fault)."""

    kind = "timeout"

    def __init__(self, tool: str, after_s: float = 30.0):
        self.after_s = after_s
        super().__init__(tool, f"{tool}: timed out after {after_s:g}s (injected fault)")


class RateLimited(ToolError):
    """The tool refused the call for now (injected ``rate_limit`` fault); retry after ``retry_after_s``."""

    kind = "rate_limit"

    def __init__(self, tool: str, retry_after_s: float = 1.0):
        self.retry_after_s = retry_after_s
        super().__init__(tool, f"{tool}: rate limited, retry after {retry_after_s:g}s (injected fault)")


class ToolUnavailable(ToolError, ConnectionError):
    """The tool is down for the whole trial (injected ``outage`` fault)."""

    kind = "outage"

    def __init__(self, tool: str):
        super().__init__(tool, f"{tool}: service unavailable (injected outage)")


class TrialAborted(BaseException):
    """Raised inside an agent's thread or task to end a trial the runner gave up on (timeout, budget).

    A ``BaseException`` so that an agent's broad ``except Exception`` does not swallow it.
    """

    def __init__(self, outcome: str, reason: str):
        self.outcome = outcome
        self.reason = reason
        super().__init__(reason)

"""Every exception pytest-agentops raises: one tree under ``AgentOpsError``, and the control-flow exceptions.

Errors (``Exception``): a bad setting or input (``ConfigError``, a ``ValueError`` too), a failed campaign
(``CampaignFailed``, an ``AssertionError`` too, so pytest shows it as a test failure), and the faults an
agent sees from a tool: a careful agent catches ``ToolError`` (or a subclass) and retries or escalates.

Control flow (``BaseException``, so that an agent's ``except Exception`` does not swallow them): the harness
ends a trial (``TrialAborted`` and ``Escalated``), kills the agent at a planned crash (``AgentCrash``), or
gives up on an agent past its wall-clock limit (``TrialAbandoned``).
"""

from __future__ import annotations

import contextvars
import functools
import os
import re
import sys
import warnings
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

from .secret_rules import environment_secrets, written_forms

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_DEMO = os.path.join(_PACKAGE, "demo") + os.sep
#: where an exception raised in an agent's child process was raised (``user_code_at``), set on it in the parent
RAISED_AT = "__agentops_raised_at__"


def is_users(filename: str) -> bool:
    """Whether code in ``filename`` is the user's (not this package's; the bundled demo agent counts as a user's)."""
    return not filename.startswith(_PACKAGE) or filename.startswith(_DEMO)


#: where the campaign running in this context was declared, when no line of Python ran it (a YAML scenario item:
#: its file and line): the campaign's warnings are shown there, not in pytest's runner (``warn_at_campaign``)
CAMPAIGN_AT: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar("agentops_campaign_at",
                                                                                      default=None)


def warn_at_campaign(message: Warning) -> None:
    """Warn ``message`` where the campaign was started: a YAML scenario's line (``CAMPAIGN_AT``), else the first
    frame outside this package, ``contextlib``, pytest and pluggy (a test's line that called ``agent_chaos.run``, a
    script's ``run_campaign``), where a ``filterwarnings`` rule for its module applies."""
    if (at := CAMPAIGN_AT.get()) is not None:
        warnings.warn_explicit(message, type(message), at[0], at[1])
        return
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and not _started_campaign(frame):
        frame = frame.f_back
    if frame is None:
        warnings.warn(message, stacklevel=2)
        return
    warnings.warn_explicit(message, type(message), frame.f_code.co_filename, frame.f_lineno,
                           frame.f_globals.get("__name__"), frame.f_globals.setdefault("__warningregistry__", {}))


def _started_campaign(frame: FrameType) -> bool:
    """Whether ``frame`` may be the line that started a campaign: not of this package (but its demo), nor of
    ``contextlib``, pytest or pluggy."""
    module = frame.f_globals.get("__name__", "") + "."
    return module.startswith("pytest_agentops.demo.") or \
        not module.startswith(("pytest_agentops.", "contextlib.", "_pytest.", "pluggy."))


def user_code_at(tb: TracebackType | None = None, frame: FrameType | None = None) -> str:
    """`` at file:line`` of the innermost frame of the user's code in a traceback (or, given ``frame``, of the
    first one from ``frame`` outwards); an empty string when there is none."""
    found = None
    while tb is not None:
        if is_users(tb.tb_frame.f_code.co_filename):
            found = (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    while found is None and frame is not None:
        if is_users(frame.f_code.co_filename):
            found = (frame.f_code.co_filename, frame.f_lineno)
        frame = frame.f_back
    return "" if found is None else f" at {os.path.basename(found[0])}:{found[1]}"


class AgentOpsError(Exception):
    """Base class of every error pytest-agentops raises on purpose."""


def hide_own_frames(excinfo: Any) -> bool:
    """pytest's ``__tracebackhide__`` of this package's modules: their frames are left out of the traceback of
    an error raised on purpose (its message names the setting and the fix; the test's own line shows where),
    and kept for anything else (a bug of ours). ``pytest --fulltrace`` shows them all."""
    return excinfo is not None and isinstance(excinfo.value, AgentOpsError)


__tracebackhide__ = hide_own_frames


class ConfigError(AgentOpsError, ValueError):
    """A scenario, fault or expectation setting has a bad value; the message names it and the fix (with a secret
    the environment holds redacted: the value quoted may be a key pasted where its variable's name goes, or a
    connection string with its password)."""

    def __init__(self, message: Any = "", *args: Any):
        super().__init__(shown(message) if isinstance(message, str) else message, *args)


class ArgumentTypeError(AgentOpsError, TypeError):
    """An API was called with a value of the wrong type (e.g. a clock given a string of seconds)."""


class UsageError(AgentOpsError, RuntimeError):
    """An API was used where it cannot work (e.g. ``run_virtual`` from inside a running event loop)."""


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


class CheckpointError(AgentOpsError, TypeError):
    """A checkpoint key or value the store cannot keep (values must be JSON data)."""


#: What a secret is replaced by, and the secret shapes: ``sk-`` keys (OpenAI-style, and the fake model's
#: ``sk-agentops-fake-...``; not inside a word: "risk-assessment" is none), Bearer values (up to a space, a quote, a
#: backslash, a comma, a semicolon or an angle bracket: so that JSON holding one stays JSON). Here, below
#: ``harness.secrets`` (which says what else is redacted), so that a message is redacted before it is imported.
REDACTED = "[redacted]"
SECRET_SHAPE = re.compile(r"((?<![A-Za-z0-9])sk-[A-Za-z0-9_\-]{8,}|Bearer\s+[^\s\"'\\,;<>]+)")


def redact_shapes(text: str) -> str:
    """``text`` with its secret shapes redacted: every message before ``harness.secrets`` is imported (no campaign
    yet: a collection error of a module-level ``Scenario(faults=os.environ[...])`` holding a key), and the last
    step of ``harness.secrets.redact_text``. (A message has the environment's secret values redacted first:
    ``shown``.)"""
    return SECRET_SHAPE.sub(REDACTED, text) if "sk-" in text or "Bearer" in text else text


def _environment_now(text: str) -> str:
    """``text`` with the values of the environment's secret-named variables as it holds them now redacted, in every
    form ``secret_rules.written_forms`` gives (a ``repr``, JSON, a URL): the first step of every message
    (``shown``). ``harness.secrets`` redacts the values it read when a campaign last started; a message made before
    any campaign (a collection error quoting a value), or after a test set a new one, needs the environment read
    as it is. Messages are rare: the environment is read for each."""
    for value in environment_secrets():
        for form in _longest_first(value):
            if form in text:
                text = text.replace(form, REDACTED)
    return text


@functools.lru_cache(maxsize=1024)
def _longest_first(value: str) -> tuple[str, ...]:
    """``written_forms(value)``, longest first (a form inside a longer one is replaced after it)."""
    return tuple(sorted(written_forms(value), key=lambda form: (-len(form), form)))


#: what a ``ConfigError`` or ``CampaignFailed`` message goes through (``harness.secrets`` puts its redaction here
#: when imported: the message names the scenario, its worst trials and their replay commands, or a value quoted,
#: any of which may hold a secret)
_shown: Callable[[str], str] = redact_shapes


def show_failures_through(shown: Callable[[str], str]) -> None:
    """Make every ``CampaignFailed`` message ``shown(message)`` (``harness.secrets``: redacted)."""
    global _shown
    _shown = shown


def shown(text: str) -> str:
    """``text`` as the package shows a user's values in its messages and reprs: the environment's secret values as
    it holds them now (``_environment_now``) and its secret shapes redacted, and once ``harness.secrets`` is
    imported (``show_failures_through``) whatever it redacts."""
    return _shown(_environment_now(text))


class CampaignFailed(AgentOpsError, AssertionError):
    """Raised by ``CampaignResult.check()``: which expectations failed, the worst trials, how to replay (with a
    secret the environment holds redacted: a parameter id or a scenario name may hold one)."""

    def __init__(self, message: str = "", *args: Any):
        super().__init__(shown(message) if isinstance(message, str) else message, *args)


class CampaignInterrupted(KeyboardInterrupt):
    """Ctrl-C during a campaign: raised after the trials that finished were judged, with that partial
    ``result`` (``CampaignResult.interrupted``), so that a caller can report it before stopping."""

    def __init__(self, result: Any):
        self.result = result
        super().__init__(f"campaign {result.scenario!r} interrupted after {result.n} finished trial(s); they are "
                         "judged and reported")


class ReportError(AgentOpsError, ValueError):
    """A file is not a pytest-agentops report, or one of a schema version this release does not read."""


class GateUsageError(AgentOpsError):
    """``agentops-gate`` was given bad arguments or unreadable reports (exit code 2)."""


class WireError(AgentOpsError, ValueError):
    """A request to the fake model is not valid for its API (answered with HTTP 400)."""


class CassetteMiss(AgentOpsError):
    """A replayed campaign sent a request its cassette has no answer for (the cassette is stale): never a
    silent call to the network. The message names the request's model, its last message and the file."""


class UpstreamError(AgentOpsError, ConnectionError):
    """The live model's upstream could not be reached or did not answer in time (a real error, not an
    injected fault). ``timeout``: it did not answer in time (the agent then gets a read timeout)."""

    def __init__(self, message: str, *, timeout: bool = False):
        self.timeout = timeout
        super().__init__(message)


class ChildAgentError(AgentOpsError):
    """An exception the agent raised in its child process that could not be sent back as itself."""


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


# --- control flow: BaseExceptions the harness raises inside the agent -------------------------------------


class TrialAborted(BaseException):
    """Raised inside an agent's thread or task to end a trial the harness decided on (timeout, budget, ...).

    A ``BaseException`` so that an agent's broad ``except Exception`` does not swallow it.
    """

    def __init__(self, outcome: str, reason: str):
        self.outcome = outcome
        self.reason = reason
        super().__init__(reason)


class Escalated(TrialAborted):
    """Raised by ``env.escalate``: the task is handed to a human and the trial ends."""

    def __init__(self, reason: str):
        super().__init__("escalated", reason)


class AgentCrash(BaseException):
    """The agent's process 'dies' here: raised inside the agent at its planned tool call.

    A ``BaseException`` so that an agent's ``except Exception`` does not swallow it, as nothing in a
    process survives its own death; the harness catches it and restarts the agent.
    """

    def __init__(self, step: int, tool: str, point: str):
        self.step = step
        self.tool = tool
        self.point = point
        super().__init__(f"injected crash at step {step}, {point} {tool}")


class TrialAbandoned(BaseException):
    """Raised asynchronously inside an agent that ran past its wall-clock limit."""


class AgentExited(BaseException):
    """Raised instead of ending the process when code inside a trial (or user code being imported) calls
    ``os._exit``: the test run goes on, and the trial (or the import) is an error naming the exit code."""

    def __init__(self, status: int, where: str = "the agent"):
        self.status = status
        super().__init__(f"{where} called os._exit({status}); the test run was kept alive and the call refused")


class AgentProcessDied(AgentOpsError):
    """The agent's child process (isolation ``process``) ended without a result: ``os._exit``, a signal, a
    crash of the interpreter. The trial is an error naming how it ended."""


class AgentMessageRefused(AgentOpsError):
    """The agent's child process (isolation ``process``) sent a message the test process does not read: larger
    than a message or an attempt may be, or naming what could run code of the agent's in pytest. The child is
    ended (it did not die) and the trial is an error naming what was refused."""


class HarnessChanged(AgentOpsError, RuntimeError):
    """A campaign's trials changed the harness's own code (an in-process agent reassigned one of its functions):
    put back when the campaign ended, and the campaign raises this instead of giving verdicts that may not be the
    harness's (``process.own_code``)."""


class ProcessStateChanged(UserWarning):
    """A campaign's trials changed process-wide state (the working directory, ``os.environ``, the recursion
    limit, ...): put back when the campaign ended, and named (``process.kept_state``)."""


class IsolationUnfenced(UserWarning):
    """``isolation="process"`` on a machine whose kernel cannot fence the agent's process in (no Linux Landlock
    scopes: Linux before 6.12, or not Linux): only the Python calls named are refused (once per process)."""


class UncheckedCampaign(UserWarning):
    """A test ran a campaign that did not pass and never called its ``.check()``, and the test passed: the
    verdicts are in the report and the table, but nothing failed the test (``agent_chaos.run(...).check()``)."""


class UnusedSetting(UserWarning):
    """A campaign's fault settings include one that cannot take effect as resolved (``latency_s`` while no call is
    slow, ``crash_steps`` without ``crash``, a per-tool mix of a tool whose rate is 0): named, not silently
    dropped (``settings.faults.unused_settings``)."""

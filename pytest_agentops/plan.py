"""``FaultPlan``: every random draw of one trial, as a pure function of the trial seed and the settings.

Tool faults, the outage, the crash point, model-API faults, output perturbations, context drift, HTTP
transport faults, the simulated human's answers, the trial's user-day and the agent's own generator all come
from here, each from its named stream (``seeding.Stream``) keyed by what the draw is for: a tool call by the
tool, its arguments (canonical form) and how many times that same call was made before in the trial; a
model request by its body and occurrence; an HTTP request by its host, method, path, body and occurrence; a
confirmation by the action, its details and occurrence. Never by the order in which threads or tasks reach
the harness: two calls made in parallel get the same faults whichever arrives first, at any concurrency.
The same seed gives the same plan, which is what makes a trial replayable. ``FaultPlan.listing()`` spells
the plan out.

Every fault that fires has an id (``fault_id``): what it is and the key of its draw, e.g.
``tool:refund_order:5f3a0c:0`` for the first call of ``refund_order`` with those arguments. The layers put
it on the fault's trace event (``fid``), and a plan built with ``allowed`` (a set of ids) fires only those:
re-running a trial with a subset of its faults is how a failing trial is shrunk to the faults it needs
(``engine.shrink``).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ConfigError, hide_own_frames
from .seeding import UNIT, Draws, Stream, canonical, name_key, stream, text_key, uniforms
from .settings.faults import Faults
from .settings.layers import DailyUsers
from .settings.model import ModelFaults, pick
from .settings.tools import ToolSpec, tool_spec

__tracebackhide__ = hide_own_frames


@dataclass(frozen=True, slots=True)
class ToolFaultDraw:
    """The fault (if any) planned for one tool call."""

    kind: str | None  # a FAILING_TOOL_FAULTS kind, "outage", or None when the call does not fail
    latency_s: float = 0.0


@dataclass(frozen=True, slots=True)
class CrashDraw:
    """Where one trial's agent crashes: at its ``step``-th executed tool call (1-based), ``before`` or ``after`` it."""

    step: int
    point: str


def fault_id(kind: str, *key: Any) -> str:
    """The id of a fault: its kind and the key of its draw (numbers in hex), e.g. ``tool:refund_order:5f3a:0``."""
    return ":".join([kind, *(format(k, "x") if isinstance(k, int) else str(k) for k in key)])


class Occurrences:
    """How many times each key occurred before in a trial (thread-safe): the ``occurrence`` of a keyed draw.

    Lock-free: each key has an ``itertools.count``, taken with ``dict.setdefault`` and advanced with ``next``,
    both single steps under the GIL for the keys used (strings, numbers and tuples of them)."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[Any, Iterator[int]] = {}

    def next(self, key: Any) -> int:
        """0 the first time ``key`` is seen, 1 the second, ..."""
        counter = self._counts.get(key)
        if counter is None:
            counter = self._counts.setdefault(key, itertools.count())
        return next(counter)


@dataclass(frozen=True, slots=True)
class UserDay:
    """The user a trial's task belongs to, and what that user had already spent today before it."""

    user: str
    earlier_tasks: int
    tokens: int
    usd: float


NO_FAULT = ToolFaultDraw(None)  #: the draw of a call that neither fails nor waits (one object)
_NO_FAULT = NO_FAULT
_OUTAGE = ToolFaultDraw("outage")
# Per Faults object (kept alive here, so its id is not reused) and tool: (rate, kinds, cumulative weights).
# A cache: building a validated ToolFaults on every tool call was a large share of a trial's harness cost.
_TOOL_TABLES: dict[int, tuple[Faults, dict[str, tuple[float, tuple[str, ...], tuple[float, ...]]]]] = {}


def _tool_tables(faults: Faults) -> dict[str, tuple[float, tuple[str, ...], tuple[float, ...], int]]:
    """The rows of ``faults``' tools made so far (``_tool_row`` adds one): looked up once per trial."""
    entry = _TOOL_TABLES.get(id(faults))
    if entry is None or entry[0] is not faults:
        if len(_TOOL_TABLES) >= 64:
            _TOOL_TABLES.clear()
        entry = _TOOL_TABLES[id(faults)] = (faults, {})
    return entry[1]


def _tool_row(faults: Faults, tool: str) -> tuple[float, tuple[str, ...], tuple[float, ...], int]:
    """(rate, kinds, cumulative weights, ``name_key(tool)``) of ``tool`` under ``faults``."""
    rows = _tool_tables(faults)
    row = rows.get(tool)
    if row is None:
        settings = faults.tool_settings(tool)
        weights = np.fromiter(settings.mix.values(), float)
        cumulative = tuple((np.cumsum(weights) / weights.sum()).tolist())
        row = rows[tool] = (settings.rate, tuple(settings.mix), cumulative, name_key(tool))
    return row


# The keys of arguments that recur (the same few calls in every trial), by a memo of their plain form (a dict of
# short plain values, in its own order): each value with its exact type, so that 1 and True (equal in Python,
# not in their canonical text) differ; no floats (0.0 and -0.0 are equal, their texts not). The memo holds what
# it remembers for the process, so it is bounded: ``_MEMO_ITEMS`` items a mapping, names and texts of
# ``_MEMO_CHARS``, whole numbers of 64 bits, ``_MEMO_SIZE`` mappings (~1.5 KB each at most: ~24 MiB).
# Unbounded, an agent's 300 confirmations of 3,000 details of 256 characters each kept 337 MiB after their
# campaign.
_ARG_KEYS: dict[tuple[Any, ...], int] = {}
_MEMO_ITEMS = 8
_MEMO_CHARS = 32
_MEMO_SIZE = 16384
_MEMO_LOW, _MEMO_HIGH = -(2 ** 64), 2 ** 64
_MEMO_TYPES = frozenset({str, int, bool, type(None)})


def _small(flat: tuple[Any, ...]) -> bool:
    """Whether a memo's key is small enough to be remembered (checked when it is new, not at every look-up)."""
    return all(len(v) <= _MEMO_CHARS if type(v) is str else _MEMO_LOW <= v <= _MEMO_HIGH if type(v) is int else True
               for v in flat)


_NAMES_SEEN: list[tuple[str, ...]] = [()]  # the last tuple of names checked (the engine's, the same every trial)


def _tool_names(tools: Any) -> tuple[str, ...]:
    """The names of a plan's tools: names as given, a tool function or a ``ToolSpec`` by its tool's name (the
    name a trial's calls have, as ``Scenario(tools=...)`` takes them), in their order."""
    if tools is _NAMES_SEEN[0]:
        return tools  # type: ignore[no-any-return]
    if isinstance(tools, (str, bytes)):
        raise ConfigError(f"FaultPlan(tools={tools!r}): expected a sequence of tools (names, tool functions or "
                          "ToolSpecs), not a string")
    try:
        names = tuple(tools)
    except TypeError:
        raise ConfigError(f"FaultPlan(tools={tools!r}): expected a sequence of tools (names, tool functions or "
                          f"ToolSpecs), got {type(tools).__name__}") from None
    for t in names:
        if type(t) is not str:
            return tuple(_tool_name(i, t) for i, t in enumerate(names))
    if names is tools:
        _NAMES_SEEN[0] = names
    return names


def _tool_name(i: int, tool: Any) -> str:
    if isinstance(tool, str):
        return str(tool)
    if isinstance(tool, ToolSpec):
        return tool.name
    if callable(tool):
        return tool_spec(tool).name
    raise ConfigError(f"FaultPlan(tools=...): item {i} is {tool!r} ({type(tool).__name__}); expected a tool's name "
                      "(a string), a tool function or a ToolSpec")


class FaultPlan:
    """What goes wrong in one trial, as a pure function of the trial seed and the fault settings.

    Tool-call draws are made per tool and per call index, so the fault at the 3rd call of ``refund``
    does not depend on how often other tools were called before it.
    """

    __slots__ = ("_outage_tool", "_tool_draws", "_tool_rows", "allowed", "faults", "seed", "tools")

    def __init__(self, seed: int, faults: Faults, tools: Sequence[str | ToolSpec | Callable[..., Any]] = (),
                 allowed: frozenset[str] | None = None):
        if not isinstance(faults, Faults):
            raise ConfigError(f"FaultPlan(faults={faults!r}): expected a Faults (e.g. Faults(rate=0.1) or "
                              "Faults.profile('mid')), got " + type(faults).__name__)
        self.seed = int(seed)
        self.faults = faults
        self.tools = _tool_names(tools)
        self.allowed = allowed  # the ids of the faults that may fire (None: all)
        self._outage_tool: str | None = None
        self._tool_draws = Draws(self.seed, Stream.TOOLS)  # the tool stream's draws, many per trial
        self._tool_rows = _tool_tables(faults)  # (each tool's rate, kinds and key, shared by the campaign's trials)
        if faults.outage and tools:
            u, pick_u = uniforms(self.seed, Stream.TOOLS, 0, n=2)
            if u < faults.outage:
                candidates = faults.outage_tools or self.tools
                self._outage_tool = candidates[int(pick_u * len(candidates))]

    @classmethod
    def draw(cls, seed: int, faults: Faults, tools: Sequence[str | ToolSpec | Callable[..., Any]] = ()) -> FaultPlan:
        """The plan for the trial with this seed."""
        return cls(seed, faults, tools)

    def admit(self, fault_id: str) -> bool:
        """Whether the fault with this id may fire (a plan restricted to ``allowed`` ids, or any)."""
        return self.allowed is None or fault_id in self.allowed

    # -- tools ----------------------------------------------------------------------------------------------
    @property
    def outage_tool(self) -> str | None:
        """The tool that is down for this whole trial, if any (and allowed)."""
        tool = self._outage_tool
        return tool if tool is not None and self.admit(fault_id("outage", tool)) else None

    @staticmethod
    def key_of(value: Any) -> int:
        """The key of a call's arguments (or a confirmation's details) in the draws: 0 for none."""
        if not value:
            return 0
        if type(value) is dict and len(value) <= _MEMO_ITEMS:  # a few short plain values: remembered, by a memo
            memo: list[Any] = []
            for k, v in value.items():
                cls = type(v)
                if type(k) is not str or cls not in _MEMO_TYPES or (cls is str and len(v) > 256):
                    return text_key(canonical(value))
                memo += (k, cls, v)
            flat = tuple(memo)
            key = _ARG_KEYS.get(flat)
            if key is None:
                key = text_key(canonical(value))
                if len(_ARG_KEYS) < _MEMO_SIZE and _small(flat):
                    _ARG_KEYS[flat] = key
            return key
        return text_key(canonical(value))

    def tool_fault(self, tool: str, occurrence: int = 0, args_key: int = 0) -> ToolFaultDraw:
        """The fault planned for a call of ``tool`` whose arguments have the key ``args_key`` (``key_of``), the
        ``occurrence``-th (0-based) call of the same tool with the same arguments in this trial."""
        if tool == self._outage_tool and self.admit(fault_id("outage", tool)):
            return _OUTAGE
        rate, kinds, cumulative, key = self._tool_rows.get(tool) or _tool_row(self.faults, tool)
        latency_rate = self.faults.latency
        if not (rate or latency_rate):
            return _NO_FAULT
        # the uniforms of ``Draws.three(1, key, args_key, occurrence)``, each made only when it is needed
        w_fail, w_kind, w_lat = self._tool_draws.words3(1, key, args_key, occurrence)
        kind = None
        if (w_fail >> 11) * UNIT < rate:
            # (numpy's searchsorted, right)
            kind = kinds[min(bisect.bisect_right(cumulative, (w_kind >> 11) * UNIT), len(kinds) - 1)]
        latency = 0.0
        if latency_rate and (u_lat := (w_lat >> 11) * UNIT) < latency_rate:
            # reuse the draw's position inside [0, latency) as an exponential variate with mean latency_s
            latency = -self.faults.latency_s * math.log1p(-(u_lat / latency_rate))
        if self.allowed is not None:
            if kind is not None and not self.admit(fault_id("tool", tool, args_key, occurrence)):
                kind = None
            if latency and not self.admit(fault_id("latency", tool, args_key, occurrence)):
                latency = 0.0
        return _NO_FAULT if kind is None and not latency else ToolFaultDraw(kind, latency)

    def injection_draws(self, tool: str, occurrence: int = 0, args_key: int = 0) -> tuple[float, ...]:
        """The three uniforms (plant?, form, spare) of a prompt injection into the result of a call of ``tool``
        (keyed like ``tool_fault``: by the tool, its arguments and the occurrence of the same call)."""
        return self._tool_draws.uniforms(2, name_key(tool), args_key, occurrence)

    # -- crash ----------------------------------------------------------------------------------------------
    def crash(self) -> CrashDraw | None:
        """Whether and where this trial's agent crashes."""
        f = self.faults
        if not f.crash:
            return None
        u, u_step, u_point = uniforms(self.seed, Stream.CRASH)  # fixed draws: rates stay coupled
        if u >= f.crash:
            return None
        if not self.admit(fault_id("crash")):
            return None
        low, high = f.crash_steps
        point = f.crash_point if f.crash_point != "any" else ("before" if u_point < 0.5 else "after")
        return CrashDraw(low + min(int(u_step * (high - low + 1)), high - low), point)

    # -- the model boundary ---------------------------------------------------------------------------------
    def model_fault(self, request: int, occurrence: int, settings: ModelFaults) -> str | None:
        """The model-API fault of an HTTP attempt: ``request`` keys its body (``seeding.text_key``),
        ``occurrence`` counts earlier attempts with the same body (retries)."""
        if not settings.rate:
            return None
        u_fault, u_kind = uniforms(self.seed, Stream.MODEL, 0, request, occurrence, n=2)
        if u_fault >= settings.rate or not self.admit(fault_id("model", request, occurrence)):
            return None
        return pick(settings.mix, u_kind)

    def output_draws(self, request: int, occurrence: int) -> tuple[float, ...]:
        """The three uniforms that decide the output perturbation of a model call (fire, kind, pick)."""
        return uniforms(self.seed, Stream.MODEL, 1, request, occurrence)

    def drift_draws(self, request: int, occurrence: int) -> tuple[float, ...]:
        """The three uniforms that decide whether and which drift starts at a model call."""
        return uniforms(self.seed, Stream.DRIFT, request, occurrence)

    def http_fault(self, host: str, request: int, occurrence: int, rate: float, mix: Any) -> str | None:
        """The transport fault of a request to ``host`` (``request`` keys its method, path and body)."""
        u_fault, u_kind = uniforms(self.seed, Stream.MODEL, 2, name_key(host), request, occurrence, n=2)
        if u_fault >= rate or not self.admit(fault_id("http", host, request, occurrence)):
            return None
        return pick(mix, u_kind)

    # -- the simulated human --------------------------------------------------------------------------------
    def approver_draws(self, action: str, details_key: int, occurrence: int) -> tuple[float, ...]:
        """The two uniforms (answer, latency) of a confirmation of ``action`` with details of key
        ``details_key`` (``key_of``), the ``occurrence``-th time the same one is asked in this trial."""
        return uniforms(self.seed, Stream.APPROVER, name_key(action), details_key, occurrence, n=2)

    # -- the budget layer's user-day ------------------------------------------------------------------------
    def user_day(self, users: DailyUsers) -> UserDay:
        """The trial's user and that user's earlier spend today."""
        rng = stream(self.seed, Stream.BUDGET)
        user = int(rng.integers(users.count))
        n = int(rng.poisson(users.earlier_tasks))
        share = float(rng.exponential(1.0, size=n).sum()) if n else 0.0
        return UserDay(f"user-{user}", n, round(share * users.tokens_per_task), share * users.usd_per_task)

    # -- the agent --------------------------------------------------------------------------------------------
    def agent_rng(self) -> np.random.Generator:
        """A fresh generator for ``env.rng`` (a restarted agent gets a fresh one too)."""
        return stream(self.seed, Stream.AGENT)

    # -- the plan in full ---------------------------------------------------------------------------------------
    def listing(self, calls: int = 5) -> list[str]:
        """The plan spelled out: the outage, the crash, and the first ``calls`` draws of every tool called
        without arguments (a call with arguments has draws of its own, keyed by them)."""
        lines = [f"seed {self.seed}"]
        if self._outage_tool:
            lines.append(f"outage: {self._outage_tool} is down for the whole trial")
        crash = self.crash()
        if crash is not None:
            lines.append(f"crash: at executed tool call {crash.step}, {crash.point} the tool")
        for tool in self.tools:
            for i in range(calls):
                draw = self.tool_fault(tool, i)
                if draw.kind or draw.latency_s:
                    slow = f" (+{draw.latency_s:.3g}s)" if draw.latency_s else ""
                    lines.append(f"{tool} call {i + 1}: {draw.kind or 'ok'}{slow}")
        return lines

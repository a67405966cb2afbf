"""Fault kinds, fault settings (``Faults``) and the per-trial ``FaultPlan`` drawn from a seed.

A plan is a pure function of the trial seed and the scenario: the same seed gives the same faults at
the same tool calls, which is what makes any failing trial replayable. Nothing here knows pytest.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConfigError, check_seconds, check_share, reject_unknown_keys

if TYPE_CHECKING:
    from .llm.settings import Drift, HttpFaults, ModelFaults

#: Tool fault kinds that make a call fail (the agent gets an exception or a bad value).
FAILING_TOOL_FAULTS = ("error", "timeout", "rate_limit", "malformed", "empty")
#: Every tool fault kind, including the ones that do not fail a call (latency) or last a trial (outage).
TOOL_FAULT_KINDS = (*FAILING_TOOL_FAULTS, "latency", "outage")

DEFAULT_MIX: Mapping[str, float] = MappingProxyType(
    {"error": 0.4, "timeout": 0.2, "rate_limit": 0.2, "malformed": 0.1, "empty": 0.1}
)

#: Named profiles: the share of tool calls that fail (3%, 8%, 15%), plus some slow calls.
PROFILES: Mapping[str, dict[str, float]] = MappingProxyType({
    "none": {"rate": 0.0, "latency": 0.0},
    "low": {"rate": 0.03, "latency": 0.05},
    "mid": {"rate": 0.08, "latency": 0.10},
    "high": {"rate": 0.15, "latency": 0.20},
})

# spawn keys of the independent random streams inside one trial
STREAM_TOOLS, STREAM_AGENT, STREAM_APPROVER, STREAM_MODEL, STREAM_DRIFT, STREAM_CRASH = range(6)
STREAM_BUDGET = 6  # budget layer: the trial's user and that user's earlier spend today
_BLOCK = 64  # tool-call draws made up front per tool; later calls draw further blocks from the same seed


def _check_mix(mix: Mapping[str, float] | None, where: str = "mix") -> Mapping[str, float]:
    if mix is None:
        return DEFAULT_MIX
    if not isinstance(mix, Mapping) or not mix:
        raise ConfigError(f"{where}={mix!r} must be a non-empty mapping of fault kind to weight, "
                          f"kinds: {', '.join(FAILING_TOOL_FAULTS)}")
    out = {}
    for kind, weight in mix.items():
        if kind not in FAILING_TOOL_FAULTS:
            hint = " (latency and outage have their own settings)" if kind in TOOL_FAULT_KINDS else ""
            raise ConfigError(f"{where} has unknown fault kind {kind!r}{hint}; "
                              f"valid kinds: {', '.join(FAILING_TOOL_FAULTS)}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
            raise ConfigError(f"{where}[{kind!r}]={weight!r} must be a weight >= 0")
        out[kind] = float(weight)
    if sum(out.values()) <= 0:
        raise ConfigError(f"{where}={mix!r} must have at least one positive weight")
    return MappingProxyType(out)


@dataclass(frozen=True, slots=True)
class ToolFaults:
    """Fault settings of one tool, overriding the scenario-wide rate and mix."""

    rate: float
    mix: Mapping[str, float] = field(default_factory=lambda: DEFAULT_MIX)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", check_share("rate", self.rate))
        object.__setattr__(self, "mix", _check_mix(self.mix))


@dataclass(frozen=True, slots=True)
class Faults:
    """What may go wrong in a campaign: tool-call failure rate and mix, latency, outages.

    ``rate`` is the share of tool calls that fail (by a kind drawn from ``mix``); ``latency`` the share
    that are slow by ``latency_s`` virtual seconds on average (exponential); ``outage`` the chance that
    one tool (drawn at random, or ``outage_tools``) is down for a whole trial.
    """

    rate: float = 0.0
    mix: Mapping[str, float] = field(default_factory=lambda: DEFAULT_MIX)
    per_tool: Mapping[str, ToolFaults] = field(default_factory=dict)
    latency: float = 0.0
    latency_s: float = 2.0
    outage: float = 0.0
    outage_tools: tuple[str, ...] = ()
    timeout_s: float = 30.0
    retry_after_s: float = 1.0
    profile_name: str | None = None
    # crash layer (harness/crash.py): the share of trials whose agent crashes once, at its k-th executed tool
    # call (k uniform in crash_steps), before or after the tool's effect; crash_mode "in_process" abandons the
    # agent's run, "sigkill" kills its child process; the runner restarts it up to crash_restarts times
    crash: float = 0.0
    crash_point: str = "after"
    crash_steps: tuple[int, int] = (1, 5)
    crash_mode: str = "in_process"
    crash_restarts: int = 1
    # model boundary (llm/settings.py): model-API faults and perturbed replies, context drift, and transport
    # faults for the HTTP hosts tools call. A profile sets ``model`` (``ModelFaults.profile(name)``); None = off
    model: ModelFaults | None = None
    drift: Drift | None = None
    http: HttpFaults | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", check_share("rate", self.rate))
        object.__setattr__(self, "latency", check_share("latency", self.latency))
        object.__setattr__(self, "outage", check_share("outage", self.outage))
        object.__setattr__(self, "mix", _check_mix(self.mix))
        for name in ("latency_s", "timeout_s", "retry_after_s"):
            object.__setattr__(self, name, check_seconds(name, getattr(self, name)))
        if not isinstance(self.per_tool, Mapping):
            raise ConfigError(f"per_tool={self.per_tool!r} must map tool names to a rate or ToolFaults")
        per_tool = {}
        for tool_name, spec in self.per_tool.items():
            if isinstance(spec, ToolFaults):
                per_tool[tool_name] = spec
            elif isinstance(spec, Mapping):
                reject_unknown_keys(spec, ("rate", "mix"), f"per_tool[{tool_name!r}]")
                per_tool[tool_name] = ToolFaults(check_share(f"per_tool[{tool_name!r}].rate",
                                                             spec.get("rate", self.rate)),
                                                 _check_mix(spec.get("mix", self.mix),
                                                            f"per_tool[{tool_name!r}].mix"))
            else:
                per_tool[tool_name] = ToolFaults(check_share(f"per_tool[{tool_name!r}]", spec), self.mix)
        object.__setattr__(self, "per_tool", MappingProxyType(per_tool))
        object.__setattr__(self, "outage_tools", tuple(self.outage_tools))
        _check_crash(self)  # crash layer
        _check_boundary(self)  # model boundary

    @classmethod
    def profile(cls, name: str, **overrides: Any) -> Faults:
        """A named profile: ``none``, ``low`` (3% of tool calls fail), ``mid`` (8%), ``high`` (15%)."""
        if name not in PROFILES:
            raise ConfigError(f"profile={name!r} is not a fault profile; valid profiles: {', '.join(PROFILES)}")
        return cls(**{**PROFILES[name], "profile_name": name, **_model_profile(name), **overrides})

    @classmethod
    def none(cls) -> Faults:
        """No faults at all: the smoke-test setting."""
        return cls(profile_name="none")

    def with_profile(self, name: str) -> Faults:
        """These settings with the rates of profile ``name`` (mix, overrides and the rest kept)."""
        if name not in PROFILES:
            raise ConfigError(f"profile={name!r} is not a fault profile; valid profiles: {', '.join(PROFILES)}")
        follow = self.model is None or self.model.profile_name is not None  # model boundary: unless set by hand
        return _replace(self, **PROFILES[name], profile_name=name, **(_model_profile(name) if follow else {}))

    def tool_settings(self, tool: str) -> ToolFaults:
        """The rate and mix that apply to ``tool``."""
        return self.per_tool.get(tool) or ToolFaults(self.rate, self.mix)

    @property
    def active(self) -> bool:
        """Whether any fault can fire at all."""
        return bool(self.rate or self.latency or self.outage or any(t.rate for t in self.per_tool.values())
                    or self.crash or _boundary_active(self))


def _model_profile(name: str) -> dict[str, Any]:
    """Model boundary: what profile ``name`` sets besides tool faults (none 0, low 2%, mid 5%, high 10% of
    model-API attempts fail and as many replies are perturbed; see ``ModelFaults.profile``)."""
    from .llm.settings import ModelFaults

    return {"model": ModelFaults.profile(name)}


def _check_boundary(faults: Faults) -> None:
    """Model boundary: accept ``ModelFaults``/``Drift``/``HttpFaults``, a profile name or a mapping of settings."""
    if faults.model is None and faults.drift is None and faults.http is None:
        return
    from .llm.settings import Drift, HttpFaults, ModelFaults

    for name, kind in (("model", ModelFaults), ("drift", Drift), ("http", HttpFaults)):
        value = getattr(faults, name)
        if value is not None:
            object.__setattr__(faults, name, kind.coerce(value, name))


def _boundary_active(faults: Faults) -> bool:
    return any(v is not None and v.active for v in (faults.model, faults.drift, faults.http))


def _check_crash(faults: Faults) -> None:
    """Validate the crash layer's settings (``crash``, ``crash_point``, ``crash_steps``, ...)."""
    object.__setattr__(faults, "crash", check_share("crash", faults.crash))
    if faults.crash_point not in CRASH_POINTS:
        raise ConfigError(f"crash_point={faults.crash_point!r} must be one of {', '.join(CRASH_POINTS)} (after: the "
                          "tool's effect happened but the agent never saw the result)")
    steps = faults.crash_steps
    if isinstance(steps, int) and not isinstance(steps, bool):
        steps = (steps, steps)
    if not (isinstance(steps, (tuple, list)) and len(steps) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in steps) and 1 <= steps[0] <= steps[1]):
        raise ConfigError(f"crash_steps={faults.crash_steps!r} must be a step k >= 1 or a range [low, high] with "
                          "1 <= low <= high (the k-th executed tool call of the trial)")
    object.__setattr__(faults, "crash_steps", (int(steps[0]), int(steps[1])))
    if faults.crash_mode not in CRASH_MODES:
        raise ConfigError(f"crash_mode={faults.crash_mode!r} must be one of {', '.join(CRASH_MODES)}")
    r = faults.crash_restarts
    if isinstance(r, bool) or not isinstance(r, int) or r < 0:
        raise ConfigError(f"crash_restarts={r!r} must be a whole number >= 0 (restarts allowed after a crash)")


#: Where a planned crash hits its tool call: before the tool runs, after it (effect done, result lost), or either.
CRASH_POINTS = ("after", "before", "any")
#: How a crash is injected: the agent's run is abandoned in-process, or its child process is SIGKILLed.
CRASH_MODES = ("in_process", "sigkill")


@dataclass(frozen=True, slots=True)
class CrashDraw:
    """Where one trial's agent crashes: at its ``step``-th executed tool call (1-based), ``before`` or ``after`` it."""

    step: int
    point: str


def _replace(obj: Faults, **changes: Any) -> Faults:
    values = {name: getattr(obj, name) for name in Faults.__dataclass_fields__}
    values.update(changes)
    return Faults(**values)


@dataclass(frozen=True, slots=True)
class ToolFaultDraw:
    """The fault (if any) planned for one tool call."""

    kind: str | None  # a FAILING_TOOL_FAULTS kind, or None when the call does not fail
    latency_s: float = 0.0


_NO_FAULT = ToolFaultDraw(None)
# Per Faults object (kept alive here, so its id is not reused) and tool: (rate, kinds, cumulative weights).
# A cache: building a validated ToolFaults on every tool call was a large share of a trial's harness cost.
_TOOL_TABLES: dict[int, tuple[Faults, dict[str, tuple[float, tuple[str, ...], np.ndarray]]]] = {}


def _tool_table(faults: Faults, tool: str) -> tuple[float, tuple[str, ...], np.ndarray]:
    entry = _TOOL_TABLES.get(id(faults))
    if entry is None or entry[0] is not faults:
        if len(_TOOL_TABLES) >= 64:
            _TOOL_TABLES.clear()
        entry = _TOOL_TABLES[id(faults)] = (faults, {})
    row = entry[1].get(tool)
    if row is None:
        settings = faults.tool_settings(tool)
        weights = np.fromiter(settings.mix.values(), float)
        row = entry[1][tool] = (settings.rate, tuple(settings.mix), np.cumsum(weights) / weights.sum())
    return row


def trial_stream(trial_seed: int, stream: int, *extra: int) -> np.random.Generator:
    """An independent numpy Generator for one purpose (``stream``) inside one trial."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(trial_seed, spawn_key=(stream, *extra))))


def _tool_key(name: str) -> int:
    return zlib.crc32(name.encode())


class FaultPlan:
    """What goes wrong in one trial, as a pure function of the trial seed and the fault settings.

    Tool-call draws are made per tool and per call index, so the fault at the 3rd call of ``refund``
    does not depend on how often other tools were called before it.
    """

    __slots__ = ("_blocks", "_outage_tool", "faults", "seed", "tools")

    def __init__(self, seed: int, faults: Faults, tools: tuple[str, ...]):
        self.seed = int(seed)
        self.faults = faults
        self.tools = tuple(tools)
        self._blocks: dict[tuple[str, int], np.ndarray] = {}
        self._outage_tool: str | None = None
        if faults.outage and tools:
            rng = trial_stream(self.seed, STREAM_TOOLS, 0)
            u, pick = rng.random(), rng.random()
            if u < faults.outage:
                candidates = faults.outage_tools or self.tools
                self._outage_tool = candidates[int(pick * len(candidates))]

    @classmethod
    def draw(cls, seed: int, faults: Faults, tools: tuple[str, ...] = ()) -> FaultPlan:
        """The plan for the trial with this seed."""
        return cls(seed, faults, tools)

    @property
    def outage_tool(self) -> str | None:
        """The tool that is down for this whole trial, if any."""
        return self._outage_tool

    def _block(self, tool: str, block: int) -> np.ndarray:
        key = (tool, block)
        draws = self._blocks.get(key)
        if draws is None:
            rng = trial_stream(self.seed, STREAM_TOOLS, 1 + block, _tool_key(tool))
            draws = rng.random((_BLOCK, 3))
            self._blocks[key] = draws
        return draws

    def crash(self) -> CrashDraw | None:
        """Whether and where this trial's agent crashes (stream ``STREAM_CRASH``; crash layer)."""
        f = self.faults
        if not f.crash:
            return None
        u, u_step, u_point = trial_stream(self.seed, STREAM_CRASH).random(3)  # fixed draws: rates stay coupled
        if u >= f.crash:
            return None
        low, high = f.crash_steps
        point = f.crash_point if f.crash_point != "any" else ("before" if u_point < 0.5 else "after")
        return CrashDraw(low + min(int(u_step * (high - low + 1)), high - low), point)

    def tool_fault(self, tool: str, call_index: int) -> ToolFaultDraw:
        """The fault planned for the ``call_index``-th (0-based) call of ``tool`` in this trial."""
        if tool == self._outage_tool:
            return ToolFaultDraw("outage")
        rate, kinds, cumulative = _tool_table(self.faults, tool)
        if not (rate or self.faults.latency):
            return _NO_FAULT
        u_fail, u_kind, u_lat = self._block(tool, call_index // _BLOCK)[call_index % _BLOCK]
        kind = None
        if u_fail < rate:
            kind = kinds[min(int(np.searchsorted(cumulative, u_kind, side="right")), len(kinds) - 1)]
        latency = 0.0
        if u_lat < self.faults.latency:
            # reuse the draw's position inside [0, latency) as an exponential variate with mean latency_s
            latency = -self.faults.latency_s * math.log1p(-(u_lat / self.faults.latency))
        return ToolFaultDraw(kind, latency)

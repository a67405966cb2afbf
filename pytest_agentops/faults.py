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
from typing import Any

import numpy as np

from .errors import ConfigError

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
_BLOCK = 64  # tool-call draws made up front per tool; later calls draw further blocks from the same seed


def _check_rate(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name}={value!r} must be a number between 0 and 1")
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name}={value!r} must be between 0 and 1 (a share of calls, e.g. 0.08 for 8%)")
    return float(value)


def _check_seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name}={value!r} must be a number of seconds >= 0")
    return float(value)


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
        object.__setattr__(self, "rate", _check_rate("rate", self.rate))
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
    extra: Mapping[str, Any] = field(default_factory=dict)  # settings of later layers (model, drift, crash)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", _check_rate("rate", self.rate))
        object.__setattr__(self, "latency", _check_rate("latency", self.latency))
        object.__setattr__(self, "outage", _check_rate("outage", self.outage))
        object.__setattr__(self, "mix", _check_mix(self.mix))
        for name in ("latency_s", "timeout_s", "retry_after_s"):
            object.__setattr__(self, name, _check_seconds(name, getattr(self, name)))
        if not isinstance(self.per_tool, Mapping):
            raise ConfigError(f"per_tool={self.per_tool!r} must map tool names to a rate or ToolFaults")
        per_tool = {}
        for tool_name, spec in self.per_tool.items():
            if isinstance(spec, ToolFaults):
                per_tool[tool_name] = spec
            elif isinstance(spec, Mapping):
                unknown = set(spec) - {"rate", "mix"}
                if unknown:
                    raise ConfigError(f"per_tool[{tool_name!r}] has unknown key(s) {sorted(unknown)}; "
                                      "valid keys: rate, mix")
                per_tool[tool_name] = ToolFaults(_check_rate(f"per_tool[{tool_name!r}].rate",
                                                             spec.get("rate", self.rate)),
                                                 _check_mix(spec.get("mix", self.mix),
                                                            f"per_tool[{tool_name!r}].mix"))
            else:
                per_tool[tool_name] = ToolFaults(_check_rate(f"per_tool[{tool_name!r}]", spec), self.mix)
        object.__setattr__(self, "per_tool", MappingProxyType(per_tool))
        object.__setattr__(self, "outage_tools", tuple(self.outage_tools))
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    @classmethod
    def profile(cls, name: str, **overrides: Any) -> Faults:
        """A named profile: ``none``, ``low`` (3% of tool calls fail), ``mid`` (8%), ``high`` (15%)."""
        if name not in PROFILES:
            raise ConfigError(f"profile={name!r} is not a fault profile; valid profiles: {', '.join(PROFILES)}")
        return cls(**{**PROFILES[name], "profile_name": name, **overrides})

    @classmethod
    def none(cls) -> Faults:
        """No faults at all: the smoke-test setting."""
        return cls(profile_name="none")

    def with_profile(self, name: str) -> Faults:
        """These settings with the rates of profile ``name`` (mix, overrides and the rest kept)."""
        if name not in PROFILES:
            raise ConfigError(f"profile={name!r} is not a fault profile; valid profiles: {', '.join(PROFILES)}")
        return _replace(self, **PROFILES[name], profile_name=name)

    def tool_settings(self, tool: str) -> ToolFaults:
        """The rate and mix that apply to ``tool``."""
        return self.per_tool.get(tool) or ToolFaults(self.rate, self.mix)

    @property
    def active(self) -> bool:
        """Whether any fault can fire at all."""
        return bool(self.rate or self.latency or self.outage or any(t.rate for t in self.per_tool.values())
                    or self.extra)


def _replace(obj: Faults, **changes: Any) -> Faults:
    values = {name: getattr(obj, name) for name in Faults.__dataclass_fields__}
    values.update(changes)
    return Faults(**values)


@dataclass(frozen=True, slots=True)
class ToolFaultDraw:
    """The fault (if any) planned for one tool call."""

    kind: str | None  # a FAILING_TOOL_FAULTS kind, or None when the call does not fail
    latency_s: float = 0.0


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

    def tool_fault(self, tool: str, call_index: int) -> ToolFaultDraw:
        """The fault planned for the ``call_index``-th (0-based) call of ``tool`` in this trial."""
        if tool == self._outage_tool:
            return ToolFaultDraw("outage")
        settings = self.faults.tool_settings(tool)
        if not (settings.rate or self.faults.latency):
            return ToolFaultDraw(None)
        u_fail, u_kind, u_lat = self._block(tool, call_index // _BLOCK)[call_index % _BLOCK]
        kind = None
        if u_fail < settings.rate:
            kinds = tuple(settings.mix)
            weights = np.fromiter(settings.mix.values(), float)
            cumulative = np.cumsum(weights) / weights.sum()
            kind = kinds[min(int(np.searchsorted(cumulative, u_kind, side="right")), len(kinds) - 1)]
        latency = 0.0
        if u_lat < self.faults.latency:
            # reuse the draw's position inside [0, latency) as an exponential variate with mean latency_s
            latency = -self.faults.latency_s * math.log1p(-(u_lat / self.faults.latency))
        return ToolFaultDraw(kind, latency)

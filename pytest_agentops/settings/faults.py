"""Fault kinds, profiles and the fault settings of a campaign (``Faults``, ``ToolFaults``): values only.

What a trial draws from these settings is ``pytest_agentops.plan.FaultPlan``; nothing here knows pytest
or the harness.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from .._frozen import FrozenMap
from .._validation import check_mix, check_seconds, check_share, reject_unknown_keys
from ..errors import ConfigError, hide_own_frames
from ..metrics import MetricDef, register_metric, trial_rate
from ._meta import changed, setting
from .injection import Injection
from .model import MODEL_PROFILES, Drift, HttpFaults, ModelFaults
from .trajectory import ledger_column

__tracebackhide__ = hide_own_frames

#: Tool fault kinds that make a call fail (the agent gets an exception or a bad value).
FAILING_TOOL_FAULTS = ("error", "timeout", "rate_limit", "malformed", "empty")
#: Every tool fault kind, including the ones that do not fail a call (latency) or last a trial (outage).
TOOL_FAULT_KINDS = (*FAILING_TOOL_FAULTS, "latency", "outage")
_MIX_HINTS = {"latency": " (latency and outage have their own settings)",
              "outage": " (latency and outage have their own settings)"}

DEFAULT_MIX: FrozenMap[str, float] = FrozenMap(
    {"error": 0.4, "timeout": 0.2, "rate_limit": 0.2, "malformed": 0.1, "empty": 0.1}
)

#: Named profiles: the share of tool calls that fail (3%, 8%, 15%), plus some slow calls.
PROFILES: FrozenMap[str, FrozenMap[str, float]] = FrozenMap({
    "none": FrozenMap({"rate": 0.0, "latency": 0.0}),
    "low": FrozenMap({"rate": 0.03, "latency": 0.05}),
    "mid": FrozenMap({"rate": 0.08, "latency": 0.10}),
    "high": FrozenMap({"rate": 0.15, "latency": 0.20}),
})

#: Where a planned crash hits its tool call: before the tool runs, after it (effect done, result lost), or either.
CRASH_POINTS = ("after", "before", "any")
#: How a crash is injected: the agent's run is abandoned in-process, or its child process is SIGKILLed.
CRASH_MODES = ("in_process", "sigkill")


def check_tool_mix(mix: Any, where: str = "mix") -> FrozenMap[str, float]:
    """A tool-fault mix over ``FAILING_TOOL_FAULTS`` (None: the default mix)."""
    if mix is None:
        return DEFAULT_MIX
    return check_mix(where, mix, FAILING_TOOL_FAULTS, noun="fault kind", hint=_MIX_HINTS)


def _check_profile(name: Any) -> str:
    if name not in PROFILES:
        raise ConfigError(f"profile={name!r} is not a fault profile; valid profiles: {', '.join(PROFILES)}")
    return str(name)


@dataclass(frozen=True, slots=True)
class ToolFaults:
    """Fault settings of one tool, overriding the scenario-wide rate and mix."""

    rate: float | None = setting(None, doc="share of this tool's calls that fail (default: the scenario-wide rate, "
                                           "also as a profile sets it)", kind="share")
    mix: Mapping[str, float] = setting(doc="this tool's fault kinds and their weights", kind="tool_mix",
                                       default_factory=lambda: DEFAULT_MIX)

    def __post_init__(self) -> None:
        if self.rate is not None:  # (None: the scenario-wide rate, whatever it is when the campaign runs)
            object.__setattr__(self, "rate", check_share("rate", self.rate))
        object.__setattr__(self, "mix", check_tool_mix(self.mix))


@dataclass(frozen=True, slots=True)
class Faults:
    """What may go wrong in a campaign: tool-call failure rate and mix, latency, outages, crashes, and the
    model boundary's faults.

    ``rate`` is the share of tool calls that fail (by a kind drawn from ``mix``); ``latency`` the share
    that are slow by ``latency_s`` virtual seconds on average (exponential); ``outage`` the chance that
    one tool (drawn at random, or ``outage_tools``) is down for a whole trial. ``crash`` is the share of
    trials whose agent crashes once, at its k-th executed tool call (k uniform in ``crash_steps``),
    ``before`` or ``after`` the tool's effect; ``crash_mode`` ``in_process`` abandons the agent's run,
    ``sigkill`` kills its child process; the harness restarts it up to ``crash_restarts`` times.
    ``model``, ``drift`` and ``http`` are the model boundary's faults (a profile sets ``model``);
    ``injection`` plants instructions in tool results (prompt injection).
    """

    rate: float = setting(0.0, doc="share of tool calls that fail, 0..1", kind="share")
    mix: Mapping[str, float] = setting(doc=f"fault kinds and weights; kinds: {', '.join(FAILING_TOOL_FAULTS)}",
                                       kind="tool_mix", default_factory=lambda: DEFAULT_MIX)
    per_tool: Mapping[str, ToolFaults] = setting(doc="per-tool overrides: tool name -> rate or {rate, mix}",
                                                 kind="per_tool", of=ToolFaults, default_factory=FrozenMap)
    latency: float = setting(0.0, doc="share of tool calls that are slow", kind="share")
    latency_s: float = setting(2.0, doc="mean extra virtual seconds of a slow call", kind="seconds")
    outage: float = setting(0.0, doc="chance that one tool is down for a whole trial", kind="share")
    outage_tools: tuple[str, ...] = setting((), doc="the tools an outage may hit (default: any)", kind="tool_names")
    timeout_s: float = setting(30.0, doc="how long an injected timeout takes, virtual seconds", kind="seconds")
    retry_after_s: float = setting(1.0, doc="retry-after of an injected rate limit, virtual seconds", kind="seconds")
    profile_name: str | None = setting(None, doc="the profile these rates came from", kind="text", yaml=False)
    crash: float = setting(0.0, doc="share of trials whose agent crashes once, at a planned tool call", kind="share")
    crash_point: str = setting("after", doc="where the crash hits its tool call: after (the effect happened, the "
                                            "result is lost), before, or any", kind="enum", options=CRASH_POINTS)
    crash_steps: tuple[int, int] = setting((1, 5), doc="the executed tool call (1-based) the crash hits: k, or "
                                                       "[low, high] drawn uniformly (default [1, 5])", kind="steps")
    crash_mode: str = setting("in_process", doc="in_process: the agent's run is abandoned; sigkill: its child "
                                                "process is killed with SIGKILL", kind="enum", options=CRASH_MODES)
    crash_restarts: int = setting(1, doc="restarts allowed after a crash (default 1)", kind="whole", minimum=0)
    model: ModelFaults | None = setting(None, doc="model-API faults and perturbed replies of the fake LLM: a "
                                                  "profile name or {rate, mix, output_rate, output_mix, "
                                                  "retry_after_s, timeout_s, bloat} (default: the profile's)",
                                        kind="model_section", of=ModelFaults, nullable=True)
    drift: Drift | None = setting(None, doc="context drift applied to the fake LLM's prompts: a profile name or "
                                            "{rate, mix, keep_last, distractors, stale_facts}",
                                  kind="model_section", of=Drift, nullable=True)
    http: HttpFaults | None = setting(None, doc="transport faults for the HTTP hosts tools call: {hosts, rate, mix, "
                                                "retry_after_s, timeout_s}",
                                      kind="model_section", of=HttpFaults, nullable=True)
    injection: Injection | None = setting(None, doc="prompt injection through tool results: {tool, rate, arguments, "
                                                     "text, forms, tools}", kind="section", of=Injection,
                                          nullable=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", check_share("rate", self.rate))
        object.__setattr__(self, "latency", check_share("latency", self.latency))
        object.__setattr__(self, "outage", check_share("outage", self.outage))
        object.__setattr__(self, "mix", check_tool_mix(self.mix))
        for name in ("latency_s", "timeout_s", "retry_after_s"):
            object.__setattr__(self, name, check_seconds(name, getattr(self, name)))
        object.__setattr__(self, "per_tool", self._check_per_tool())
        if isinstance(self.outage_tools, str) or not all(isinstance(t, str) for t in self.outage_tools):
            raise ConfigError(f"outage_tools={self.outage_tools!r} must be a list of tool names")
        object.__setattr__(self, "outage_tools", tuple(self.outage_tools))
        self._check_crash()
        for name, kind in (("model", ModelFaults), ("drift", Drift), ("http", HttpFaults), ("injection", Injection)):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, kind.coerce(value, name))
        if self.http is not None and self.http.rate and not self.http.hosts:  # (the section whole: YAML checks its
            # keys one by one)
            raise ConfigError(f"http.rate={self.http.rate:g} needs http.hosts, the host names whose requests may "
                              "fail: without them no request is faulted")

    def _check_per_tool(self) -> FrozenMap[str, ToolFaults]:
        if not isinstance(self.per_tool, Mapping):
            raise ConfigError(f"per_tool={self.per_tool!r} must map tool names to a rate or ToolFaults")
        per_tool = {}
        for tool_name, spec in self.per_tool.items():
            if isinstance(spec, ToolFaults):
                per_tool[tool_name] = spec
            elif isinstance(spec, Mapping):
                reject_unknown_keys(spec, ("rate", "mix"), f"per_tool[{tool_name!r}]")
                rate = spec.get("rate")  # (not given: the scenario-wide rate, also after a profile changes it)
                per_tool[tool_name] = ToolFaults(
                    None if rate is None else check_share(f"per_tool[{tool_name!r}].rate", rate),
                    check_tool_mix(spec.get("mix", self.mix), f"per_tool[{tool_name!r}].mix"))
            else:
                per_tool[tool_name] = ToolFaults(check_share(f"per_tool[{tool_name!r}]", spec), self.mix)
        return FrozenMap(per_tool)

    def _check_crash(self) -> None:
        object.__setattr__(self, "crash", check_share("crash", self.crash))
        if self.crash_point not in CRASH_POINTS:
            raise ConfigError(f"crash_point={self.crash_point!r} must be one of {', '.join(CRASH_POINTS)} (after: "
                              "the tool's effect happened but the agent never saw the result)")
        steps = self.crash_steps
        if isinstance(steps, int) and not isinstance(steps, bool):
            steps = (steps, steps)
        if not (isinstance(steps, (tuple, list)) and len(steps) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in steps) and 1 <= steps[0] <= steps[1]):
            raise ConfigError(f"crash_steps={self.crash_steps!r} must be a step k >= 1 or a range [low, high] with "
                              "1 <= low <= high (the k-th executed tool call of the trial)")
        object.__setattr__(self, "crash_steps", (int(steps[0]), int(steps[1])))
        if self.crash_mode not in CRASH_MODES:
            raise ConfigError(f"crash_mode={self.crash_mode!r} must be one of {', '.join(CRASH_MODES)}")
        r = self.crash_restarts
        if isinstance(r, bool) or not isinstance(r, int) or r < 0:
            raise ConfigError(f"crash_restarts={r!r} must be a whole number >= 0 (restarts allowed after a crash)")

    @classmethod
    def profile(cls, name: str, **overrides: Any) -> Faults:
        """A named profile: ``none``, ``low`` (3% of tool calls fail), ``mid`` (8%), ``high`` (15%); it also
        sets the model-API faults (``ModelFaults.profile(name)``). ``overrides`` that change its own rates
        (``rate``, ``latency``, ``model``) make the faults no longer that profile's: reported ``custom``, and never
        compared with a baseline of the profile (a candidate failing 50% of its calls was compared as ``none``);
        the others (a mix, per-tool rates on top, outages, crashes) keep its name."""
        _check_profile(name)
        model = ModelFaults.profile(name)
        own = {**PROFILES[name], "model": model}
        changed = any(key in overrides and overrides[key] != own[key] for key in own)
        return cls(**{**own, "profile_name": None if changed else name, **overrides})

    @classmethod
    def none(cls) -> Faults:
        """No faults at all: the smoke-test setting."""
        return cls(profile_name="none")

    def with_profile(self, name: str) -> Faults:
        """These settings with the rates of profile ``name``: the tool-call failure and latency rates, and the
        model-API rates (unless the model faults were set by hand); mixes, per-tool overrides, outages,
        crashes, drift and HTTP faults kept."""
        _check_profile(name)
        model = self.model
        if model is None:
            model = ModelFaults.profile(name)
        elif model.profile_name is not None:  # from a profile: its rates follow, its mix and the rest stay
            model = replace(model, **MODEL_PROFILES[name], profile_name=name)
        return replace(self, **PROFILES[name], profile_name=name, model=model)

    def tool_settings(self, tool: str) -> ToolFaults:
        """The rate and mix that apply to ``tool`` (a per-tool entry without a rate: the scenario-wide rate)."""
        own = self.per_tool.get(tool)
        if own is None:
            return ToolFaults(self.rate, self.mix)
        return own if own.rate is not None else ToolFaults(self.rate, own.mix)

    @property
    def active(self) -> bool:
        """Whether any fault can fire at all."""
        return bool(self.rate or self.latency or self.outage or any(t.rate for t in self.per_tool.values())
                    or self.crash or any(v is not None and v.active
                                         for v in (self.model, self.drift, self.http, self.injection)))

    @property
    def named_tools(self) -> tuple[str, ...]:
        """The tool names these settings refer to (``per_tool`` keys and ``outage_tools``)."""
        return (*self.per_tool, *self.outage_tools,
                *(self.injection.named_tools if self.injection is not None else ()))



def unused_settings(faults: Faults) -> tuple[str, ...]:
    """The settings of ``faults`` that cannot take effect as they stand, each with why: a value other than its
    default whose fault never fires (``latency_s=5: latency is 0, no call is slow``). A setting left at its default
    is not named (it may have been given, but it changes nothing)."""
    given = changed(faults)
    unused = []
    if not faults.latency and "latency_s" in given:
        unused.append(f"latency_s={faults.latency_s:g}: latency is 0, no call is slow")
    if not faults.outage and "outage_tools" in given:
        unused.append(f"outage_tools={list(faults.outage_tools)}: outage is 0, no tool is down")
    crash = [f"{name}={list(value) if isinstance(value, tuple) else value!r}" for name, value in given.items()
             if name in ("crash_point", "crash_steps", "crash_restarts")
             and not (name == "crash_restarts" and faults.crash_mode == "sigkill")]  # (restarts a killed child too)
    if not faults.crash and crash:
        unused.append(f"{', '.join(crash)}: crash is 0, no trial crashes")
    weights = [(tool, settings.rate, settings.mix) for tool, settings in
               [(None, ToolFaults(faults.rate, faults.mix))] + [(t, faults.tool_settings(t)) for t in faults.per_tool]]
    for kind, name in (("timeout", "timeout_s"), ("rate_limit", "retry_after_s")):
        if name in given and not any(rate and mix.get(kind) for _, rate, mix in weights):
            unused.append(f"{name}={given[name]:g}: no tool call can fail by {kind}")
    if not faults.rate and "mix" in given and not any(
            rate and dict(mix) == dict(faults.mix) for _, rate, mix in weights[1:]):
        unused.append("mix: rate is 0, no tool call fails by it")
    for tool, rate, mix in weights[1:]:
        if not rate and dict(mix) not in (dict(faults.mix), dict(DEFAULT_MIX)):  # (a mix given, not inherited)
            unused.append(f"per_tool[{tool!r}].mix: the tool's rate is 0, none of its calls fails")
    for name in ("model", "drift", "http", "injection"):  # a section whose rates are 0: what else it sets is unused
        section = getattr(faults, name)
        if section is not None and not section.active and (rest := changed(section, _SECTION_SWITCHES)):
            unused.append(f"{name}: {', '.join(rest)}: its rate is 0, none of its faults fires")
    return tuple(unused)


#: a section's own rates and name (what makes it fire, or says where it came from): not "unused" themselves
_SECTION_SWITCHES = frozenset({"rate", "output_rate", "profile_name", "tool"})


@dataclass(frozen=True, slots=True)
class CrashRecord:
    """What the crash layer recorded about a trial whose agent could crash.

    ``crashes`` counted (planned and real), ``restarts`` made, where the planned crash hit (``crash_step``,
    ``crash_point``), the trial's tokens when it first crashed, ``duplicate_side_effects`` (a side-effecting
    tool run again with the same arguments in the trial, after a retry or across the crash: the trajectory
    layer's ledger) and, under ``sigkill``, each child process's exit code (-9: killed).
    """

    crashes: int = 0
    restarts: int = 0
    crash_step: int | None = None
    crash_point: str | None = None
    tokens_at_crash: int | None = None
    duplicate_side_effects: int = 0
    exit_codes: tuple[int | None, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.crashes:
            out.update(crashes=self.crashes, restarts=self.restarts,
                       duplicate_side_effects=self.duplicate_side_effects, tokens_at_crash=self.tokens_at_crash)
            if self.crash_step is not None:
                out.update(crash_step=self.crash_step, crash_point=self.crash_point)
        if self.exit_codes:
            out["exit_codes"] = list(self.exit_codes)
        return out


def _crash(record: Any) -> CrashRecord | None:
    crash = record.layers.get("crash")
    return crash if crash is not None and crash.crashes else None


def _crashes(columns: Any) -> list[tuple[Any, CrashRecord | None]]:
    """(record, ``_crash(record)``) of every record (empty when no record has the crash layer)."""
    crash = columns.layer("crash")
    if crash is None:
        return []
    return [(r, c if c is not None and c.crashes else None) for r, c in zip(columns.records, crash, strict=True)]


def _resumed(columns: Any) -> tuple[int, int, tuple[()]]:
    k = n = 0
    for r, c in _crashes(columns):
        if c is not None:
            k += int(bool(r.outcome == "completed" and not c.duplicate_side_effects))
            n += 1
    return k, n, ()


register_metric(MetricDef(
    "resume_success_rate", "rate",
    trial_rate(lambda r: None if (c := _crash(r)) is None
               else r.outcome == "completed" and not c.duplicate_side_effects),
    "share of crashed trials that finished correctly after a restart (no effect repeated)",
    counting_unit="crashed trial", batch=_resumed), builtin=True)
def _duplicates(record: Any) -> tuple[int, bool]:
    """(duplicated side effects, whether the trial ran a side-effecting tool): from the trajectory layer's
    ledger, which sees retries and restarts alike (a record without it: the crash layer's count)."""
    ledger = record.layers.get("trajectory")
    if ledger is not None:
        return ledger.duplicate_side_effects, ledger.side_effects > 0
    crash = _crash(record)
    return (0, False) if crash is None else (crash.duplicate_side_effects, True)


def _duplicates_batch(columns: Any) -> tuple[int, int]:
    ledgers, crashes = columns.layer("trajectory"), columns.layer("crash")
    if crashes is None:  # the ledgers alone
        return (sum(ledger_column(columns, "duplicate_side_effects")),
                sum(map(bool, map(operator.gt, ledger_column(columns, "side_effects"), itertools.repeat(0)))))
    k = n = 0
    for ledger, crash in zip(ledgers or itertools.repeat(None), crashes or itertools.repeat(None), strict=False):
        if ledger is not None:
            k += ledger.duplicate_side_effects
            n += 1 if ledger.side_effects > 0 else 0
        elif crash is not None and crash.crashes:
            k += crash.duplicate_side_effects
            n += 1
    return k, n


register_metric(MetricDef(
    "duplicate_side_effects", "count", _duplicates,
    "runs of a side-effecting tool (not declared idempotent) repeating an earlier run with the same arguments in "
    "the trial: after a retry or across a crash", counting_unit="trial that ran a side-effecting tool",
    batch=_duplicates_batch), builtin=True)
register_metric(MetricDef(
    "tokens_after_crash", "distribution",
    lambda r: None if (c := _crash(r)) is None or c.tokens_at_crash is None else float(r.tokens - c.tokens_at_crash),
    "tokens a crashed trial spent from its crash to its end", "tokens", "crashed trial",
    batch=lambda columns: tuple(float(r.tokens - c.tokens_at_crash) for r, c in _crashes(columns)
                                if c is not None and c.tokens_at_crash is not None), minimum=0.0), builtin=True)

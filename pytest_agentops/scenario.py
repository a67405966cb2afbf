"""``Scenario``: agent + task(s) + world + tools + check + faults + harness layers + expectations.

Validated when it is built, so a mistake is reported where the scenario is written, not mid-campaign. A
Scenario holds settings values only (``pytest_agentops.settings``); the harness that runs it is elsewhere.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._frozen import FrozenMap
from ._validation import (
    MAX_CONCURRENCY,
    MAX_TRIALS,
    check_bool,
    check_concurrency,
    check_positive_seconds,
    check_seed,
    check_trials,
    check_whole,
    is_number,
)
from .errors import ConfigError, hide_own_frames
from .expect import Expectation
from .seeding import Stream, uniforms
from .settings._meta import docs, setting
from .settings.faults import Faults
from .settings.layers import ISOLATIONS, Approver, Budget, Escalation, StateSpec, check_isolation
from .settings.live import LiveLLM
from .settings.model import FakeLLM
from .settings.network import HOST_PATTERN, NETWORK_MODES, check_hosts
from .settings.prices import price_table
from .settings.spend import check_usd
from .settings.tools import ToolSpec, tool_spec
from .settings.trajectory import Trajectory, check_rule_expectations

__tracebackhide__ = hide_own_frames

#: the largest address-space limit of an agent's child process, MiB (16 TiB)
MAX_MEMORY_LIMIT_MB = 1 << 24


def _signature(fn: Callable[..., Any]) -> str:
    try:
        return str(inspect.signature(fn))
    except (TypeError, ValueError):
        return "unknown"


_COROUTINE, _GENERATOR = "a coroutine function (async def)", "a generator function"


def _never_runs(fn: Any) -> str:
    """What ``fn`` returns instead of running, when it is a coroutine, generator or async generator function (or an
    object whose ``__call__`` is one: ``_COROUTINE``, ``_GENERATOR``); an empty string otherwise."""
    call = type(fn).__call__  # (the method an object is called through)
    for f in (fn, call):
        if inspect.iscoroutinefunction(f):
            return _COROUTINE
        if inspect.isgeneratorfunction(f) or inspect.isasyncgenfunction(f):
            return _GENERATOR
    return ""


def drawn_task(tasks: tuple[str, ...], seed: int, group: int) -> str:
    """The task group ``group`` of the campaign seeded ``seed`` draws from the list ``tasks`` (uniformly)."""
    if len(tasks) == 1:
        return tasks[0]
    return tasks[int(uniforms(seed, Stream.TASK, group, n=1)[0] * len(tasks))]


def _writable(text: str) -> bool:
    """Whether UTF-8 can write ``text`` (a lone surrogate, as ``"\\ud800"`` or a file name read with
    ``surrogateescape``, cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _takes(fn: Callable[..., Any], n: int) -> bool:
    """Whether ``fn`` can be called with ``n`` positional arguments (True when its signature is unknown)."""
    try:
        inspect.signature(fn).bind(*([None] * n))
    except TypeError:
        return False
    except ValueError:  # no signature (some builtins)
        return True
    return True


@dataclass(frozen=True, slots=True)
class Scenario:
    """One thing an agent must do, and what must hold over many seeded trials of it.

    ``faults=None`` takes the run's fault profile (``--agent-chaos-profile``, default ``mid``).
    ``timeout_s`` is the wall-clock limit per trial (protection against hangs and busy loops);
    ``virtual_timeout_s`` the limit in the agent's own virtual seconds. ``layers`` are harness layers of
    your own (``pytest_agentops.harness.layer.HarnessLayer``) added to the built-in ones.
    """

    name: str = setting(doc="the scenario's name: the pytest item's name and the replay id", kind="name",
                        required=True)
    agent: Callable[..., Any] = setting(doc="the agent: 'package.module:attr' naming agent(task, env)",
                                        kind="reference", required=True)
    task: str | Sequence[str] | Callable[[Any], str] = setting(
        "", doc="the task given to the agent, a list of tasks each trial draws one of (seeded; with a pass^k "
                "expectation, each group of k trials draws one), or {generate: 'package.module:attr'}, a task "
                "generator generate(rng) -> str called once per group of trials", kind="task")
    world: Callable[[], Any] | None = setting(None, doc="'package.module:attr' naming a zero-argument factory of a "
                                                        "fresh world per trial", kind="reference", nullable=True)
    tools: Sequence[Callable[..., Any]] = setting((), doc="the tools: a list of 'package.module:attr', or one "
                                                          "reference to a list of tools", kind="tools")
    check: Callable[[Any, Any], bool] | None = setting(None, doc="'package.module:attr' naming check(world, output) "
                                                                 "-> bool: did the agent accomplish the task?",
                                                       kind="reference", nullable=True)
    faults: Faults | str | None = setting(None, doc="what goes wrong: a profile name, or a mapping (profile plus "
                                              "overrides, or explicit rates)", kind="faults", of=Faults,
                                    nullable=True)
    approver: Approver = setting(doc="the simulated human approver", kind="section", of=Approver,
                                 default_factory=Approver)
    enforce: bool = setting(False, doc="block destructive tool calls that have no matching confirmation (the "
                                       "confirmation gate)", kind="bool", section="harness")
    scopes: Sequence[str] | None = setting(None, doc="capability scopes granted to the agent; a tool needing "
                                                     "another scope is refused (null: all)", kind="texts",
                                           nullable=True, section="harness")
    budget: Budget | None = setting(None, doc="token/cost limits: the circuit breaker (outcome budget_exceeded) and "
                                              "the 80% alert", kind="section", of=Budget, nullable=True)
    trajectory: Trajectory | None = setting(None, doc="ordering rules on the agent's calls ({rules: [{tool, after, "
                                                      "same, confirmed, at_most, name}]}) and loop detection "
                                                      "(loop_period, loop_repeats)", kind="section", of=Trajectory,
                                            nullable=True)
    expect: Mapping[str, str] = setting(doc="expectations: metric -> threshold, e.g. completion_rate: '>= 0.90'",
                                        kind="expect", default_factory=FrozenMap)
    trials: int = setting(100, doc=f"maximum number of trials (at most {MAX_TRIALS:,})", kind="whole", minimum=1,
                          schema={"maximum": MAX_TRIALS})
    seed: int | None = setting(None, doc="campaign seed (the command line's --agent-chaos-seed wins)", kind="whole",
                               minimum=0, nullable=True)
    confidence: float = setting(0.95, doc="confidence level of the verdicts, e.g. 0.95", kind="confidence")
    concurrency: int = setting(1, doc=f"trials run at the same time (at most {MAX_CONCURRENCY:,})", kind="whole",
                               minimum=1, schema={"maximum": MAX_CONCURRENCY})
    timeout_s: float = setting(30.0, doc="wall-clock limit per trial, seconds", kind="positive_seconds")
    virtual_timeout_s: float | None = setting(3600.0, doc="virtual-time limit per trial (null: none)",
                                              kind="positive_seconds", nullable=True)
    early_stop: bool = setting(True, doc="stop once every verdict is decided", kind="bool")
    prices: Mapping[str, Any] | None = setting(None, doc="USD per million tokens: model -> [input, output] or "
                                                         "{input, output}", kind="prices", nullable=True)
    xfail: str | None = setting(None, doc="the reason this scenario is expected to fail: it runs as a strict xfail",
                                kind="reason", nullable=True)
    escalation: Escalation | None = setting(None, doc="escalation triggers: the harness hands over when the agent "
                                                      "does not (at least one of after_consecutive_failures, "
                                                      "max_steps, budget_fraction, min_confidence)",
                                            kind="section", of=Escalation, nullable=True,
                                            schema={"minProperties": 1})
    # "memory", "sqlite", "sqlite:PATH" or "redis://..."; None is memory, or a temporary SQLite file when
    # Faults(crash_mode="sigkill") kills the agent's process
    state: str | StateSpec | None = setting(None, doc="checkpoint store (env.state): memory, sqlite, sqlite:PATH or "
                                                      "redis://HOST:PORT/DB (null: memory, or a temporary SQLite "
                                                      "file under crash_mode sigkill)", kind="state", nullable=True)
    llm: FakeLLM | Callable[..., Any] | None = setting(None, doc="the fake model served to the agent as env.llm: a "
                                                                 "policy reference, or {policy, model, latency_s}",
                                                       kind="llm", of=FakeLLM, nullable=True)
    live: LiveLLM | None = setting(None, doc="a real model endpoint served to the agent as env.llm, instead of a "
                                             "fake one: {base_url, key_env, model, requests_per_minute, "
                                             "tokens_per_minute, timeout_s, throttle_retries}", kind="section",
                                   of=LiveLLM, nullable=True)
    network: str = setting("deny", doc="deny: HTTP requests of the agent and its tools to a host that is neither the "
                                       "model boundary's nor in allow_hosts fail; allow: no guard", kind="enum",
                           options=NETWORK_MODES)
    allow_hosts: Sequence[str] = setting((), doc="hosts the agent and its tools may reach over HTTP (exact names or "
                                                 "*.example.com)", kind="texts",
                                         schema={"items": {"type": "string", "pattern": HOST_PATTERN}})
    max_campaign_usd: float | None = setting(None, doc="the most the campaign may spend, US dollars (null: no cap)",
                                             kind="number", nullable=True, schema={"exclusiveMinimum": 0})
    max_campaign_tokens: int | None = setting(None, doc="the most tokens the campaign may spend (null: no cap)",
                                              kind="whole", minimum=1, nullable=True)
    isolation: str = setting("none", doc="where each trial's agent runs: none (in the test process) or process (a "
                                         "child process of its own, with memory_limit_mb, its process group killed "
                                         "as a whole: nothing it starts outlives pytest)", kind="enum",
                             options=ISOLATIONS)
    memory_limit_mb: int | None = setting(4096, doc="address-space limit of the agent's child process (isolation "
                                                    "process, or crash_mode sigkill), MiB (null: none)",
                                          kind="whole", minimum=256, nullable=True,
                                          schema={"maximum": MAX_MEMORY_LIMIT_MB})
    shrink_runs: int = setting(32, doc="re-runs spent on the worst failing trial of a failed campaign to find the "
                                       "faults it needs ('fails with just: ...'; 0: none)", kind="whole", minimum=0)
    keep_traces: int | None = setting(100, doc="traces of passing trials kept in memory and in the reports: those of "
                                                "the first N trials (a failing trial's is kept too; null: every "
                                                "trace; 200,000 events in all at most)", kind="whole", minimum=0,
                                      nullable=True)
    layers: Sequence[Any] = setting((), doc="harness layers of your own, added to the built-in ones",
                                    kind="layers", yaml=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"name={self.name!r} must be a non-empty string")
        if not self.name.isascii() and not _writable(self.name):
            raise ConfigError(f"name={self.name!r} must be text UTF-8 can write (it holds a lone surrogate): it "
                              "becomes the pytest item's name, the replay id and file names")
        if any(ord(c) < 32 or ord(c) == 127 for c in self.name):
            raise ConfigError(f"name={self.name!r} must not contain a control character (a line break, a tab, NUL): "
                              "it becomes the pytest item's name and the replay id")
        for field_name in _SWITCHES:  # (``enforce="false"`` would switch the gate on: ``bool("false")`` is True)
            object.__setattr__(self, field_name, check_bool(field_name, getattr(self, field_name)))
        if not callable(self.agent):
            raise ConfigError(f"agent={self.agent!r} must be a callable agent(task, env)")
        if self.xfail is not None and not (isinstance(self.xfail, str) and self.xfail.strip()):
            raise ConfigError(f"xfail={self.xfail!r:.80} must be the reason, a non-empty string saying why the "
                              "scenario is expected to fail (or None)")
        if self.xfail is not None and len(self.xfail) > 1000:
            raise ConfigError(f"xfail={self.xfail[:40]!r}... is {len(self.xfail):,} characters: a reason is at most "
                              "1,000 (it is printed with every run)")
        if not callable(self.task):
            tasks = (self.task,) if isinstance(self.task, str) else \
                tuple(self.task) if isinstance(self.task, (list, tuple)) else ()
            if not tasks or not all(isinstance(t, str) for t in tasks):
                raise ConfigError(f"task={self.task!r} must be a string or a non-empty list of strings (or, in "
                                  "Python, a task generator generate(rng) -> str)")
            if not isinstance(self.task, str):
                object.__setattr__(self, "task", tasks)
        else:  # a task generator: checked as the world and check are (every trial an error, the campaign "passing")
            kind = _never_runs(self.task)
            if kind:
                raise ConfigError(f"task={self.task!r} is {kind}: calling it runs none of its body; a task generator "
                                  "is a plain function generate(rng) -> str")
            if not _takes(self.task, 1):
                raise ConfigError(f"task={self.task!r} must take one argument: a task generator is called as "
                                  f"generate(rng) (its signature is {_signature(self.task)})")
        if self.world is not None and not callable(self.world):
            raise ConfigError(f"world={self.world!r} must be a zero-argument factory (a class or function)")
        if self.world is not None and not _takes(self.world, 0):
            raise ConfigError(f"world={self.world!r} must take no arguments: it is called as world() for each "
                              f"trial (its signature is {_signature(self.world)})")
        if self.check is not None and not callable(self.check):
            raise ConfigError(f"check={self.check!r} must be a callable check(world, output) -> bool")
        for role, fn, instead in (("world", self.world, "an object that is not the world"),
                                  ("check", self.check, "an object that is always true: every trial would pass")):
            kind = _never_runs(fn) if fn is not None else ""
            if kind:
                raise ConfigError(f"{role}={fn!r} is {kind}: calling it runs none of its body and gives back "
                                  f"{instead}; it must be a plain function")
        if self.check is not None and not _takes(self.check, 2):
            raise ConfigError(f"check={self.check!r} must take two arguments: it is called as check(world, output) "
                              f"(its signature is {_signature(self.check)})")
        if not _takes(self.agent, 2):
            raise ConfigError(f"agent={self.agent!r} must take two arguments: it is called as agent(task, env) "
                              f"(its signature is {_signature(self.agent)})")
        if _never_runs(self.agent) == _GENERATOR:  # (an async def agent is awaited: it runs)
            raise ConfigError(f"agent={self.agent!r} is a generator function: calling it runs none of its body, so "
                              "every trial would pass without the agent doing anything; an agent returns (or, "
                              "async def, awaits and returns) its answer")
        if isinstance(self.tools, (str, bytes)) or not isinstance(self.tools, Sequence):
            raise ConfigError(f"tools={self.tools!r} must be a list of tool functions")
        object.__setattr__(self, "tools", tuple(self.tools))
        names = [s.name for s in self.tool_specs]
        duplicate = {n for n in names if names.count(n) > 1}
        if duplicate:
            raise ConfigError(f"tools: duplicate tool name(s) {sorted(duplicate)}")
        if isinstance(self.faults, str):  # a profile name, as in a scenario file
            object.__setattr__(self, "faults", Faults.profile(self.faults))
        if self.faults is not None and not isinstance(self.faults, Faults):
            raise ConfigError(f"faults={self.faults!r} must be a Faults or a profile name (e.g. 'mid')")
        if self.faults is not None and self.tools:  # (faults of a scenario without tools: checked when run)
            self.check_tool_names(self.faults)
        if not isinstance(self.approver, Approver):
            raise ConfigError(f"approver={self.approver!r} must be an Approver")
        check_trials(self.trials)
        check_concurrency(self.concurrency)
        check_seed("seed", self.seed)
        if not isinstance(self.confidence, float) or not is_number(self.confidence) \
                or not 0.5 <= self.confidence < 1:
            raise ConfigError(f"confidence={self.confidence!r} must be a number in [0.5, 1), e.g. 0.95")
        check_positive_seconds("timeout_s", self.timeout_s)
        check_positive_seconds("virtual_timeout_s", self.virtual_timeout_s, optional=True)
        if self.trajectory is not None:
            object.__setattr__(self, "trajectory", Trajectory.coerce(self.trajectory))
            if self.tools:  # (rules of a scenario without tools: checked when it runs)
                self.trajectory.check_tools(self.tool_specs)
        if not isinstance(self.expect, Mapping):
            raise ConfigError(f"expect={self.expect!r} must map metric names to threshold strings")
        # (without a trajectory, as when a file's keys are checked one by one, only an undeclared rule is refused
        # here: the rest is checked when the campaign starts)
        check_rule_expectations(self.expect, self.trajectory, strict=self.trajectory is not None)
        groups = {Expectation.parse(key, expr).group for key, expr in self.expect.items()}
        if len(groups - {1}) > 1:
            raise ConfigError(f"expect: pass^k with different k ({sorted(groups - {1})}); a scenario runs each task "
                              "k times in a row for one k")
        object.__setattr__(self, "expect", FrozenMap(self.expect))
        if self.prices is not None:
            price_table(self.prices)
            object.__setattr__(self, "prices", FrozenMap(self.prices))
        if self.budget is not None and not isinstance(self.budget, Budget):
            raise ConfigError(f"budget={self.budget!r} must be a Budget, e.g. Budget(per_task_tokens=20000)")
        if self.escalation is not None and not isinstance(self.escalation, Escalation):
            raise ConfigError(f"escalation={self.escalation!r} must be an Escalation, "
                              "e.g. Escalation(after_consecutive_failures=3)")
        if self.scopes is not None:
            if isinstance(self.scopes, str) or not all(isinstance(s, str) for s in self.scopes):
                raise ConfigError(f"scopes={self.scopes!r} must be a list of scope names (or None: all)")
            object.__setattr__(self, "scopes", tuple(self.scopes))
        if self.state is not None:
            object.__setattr__(self, "state", StateSpec.parse(self.state))
        check_isolation("isolation", self.isolation)
        check_whole("memory_limit_mb", self.memory_limit_mb, 256, optional=True, maximum=MAX_MEMORY_LIMIT_MB,
                    why=" MiB (16 TiB; 2^43 MiB overflowed the child's setrlimit)")
        check_whole("shrink_runs", self.shrink_runs, 0)
        check_whole("keep_traces", self.keep_traces, 0, optional=True, none_means="to keep every trace")
        if self.llm is not None:
            object.__setattr__(self, "llm", FakeLLM.coerce(self.llm))
        self._check_live()
        self._check_layers()

    def _check_live(self) -> None:
        if self.live is not None:
            object.__setattr__(self, "live", LiveLLM.coerce(self.live))
            if self.llm is not None:
                raise ConfigError("llm and live are both given: a scenario's model is either a fake one (llm: a "
                                  "policy) or a live endpoint (live: {base_url, key_env})")
        if self.network not in NETWORK_MODES:
            raise ConfigError(f"network={self.network!r} must be one of {', '.join(NETWORK_MODES)} (deny: requests "
                              "to hosts not in allow_hosts fail)")
        object.__setattr__(self, "allow_hosts", check_hosts("allow_hosts", self.allow_hosts))
        object.__setattr__(self, "max_campaign_usd", check_usd("max_campaign_usd", self.max_campaign_usd))
        check_whole("max_campaign_tokens", self.max_campaign_tokens, 1, what="tokens", optional=True)

    def _check_layers(self) -> None:
        layers = (self.layers,) if not isinstance(self.layers, (list, tuple)) else tuple(self.layers)
        for layer in layers:
            if not isinstance(getattr(layer, "name", None), str) or not callable(getattr(layer, "attach", None)):
                raise ConfigError(f"layers: {layer!r} is not a harness layer (it needs a name and attach(trial); "
                                  "see pytest_agentops.harness.layer.HarnessLayer)")
        names = [layer.name for layer in layers]
        if len(set(names)) != len(names):
            raise ConfigError(f"layers: duplicate layer name(s) {sorted({n for n in names if names.count(n) > 1})}")
        object.__setattr__(self, "layers", layers)

    def check_tool_names(self, faults: Faults) -> None:
        """Faults that name tools (``per_tool``, ``outage_tools``) may name only this scenario's tools: a
        misspelt name would otherwise fault nothing, silently."""
        tools = [s.name for s in self.tool_specs]
        unknown = [name for name in faults.named_tools if name not in tools]
        if unknown:
            declared = ", ".join(tools) if tools else "none declared"
            raise ConfigError(f"faults name tool(s) {sorted(set(unknown))} that scenario {self.name!r} does not "
                              f"have (per_tool / outage_tools / injection); its tools: {declared}")
        if faults.injection is not None:
            faults.injection.check_arguments({s.name: s for s in self.tool_specs})

    @property
    def tasks(self) -> tuple[str, ...]:
        """The task list (empty for a task generator, whose tasks are drawn per group of trials)."""
        if callable(self.task):
            return ()
        return (self.task,) if isinstance(self.task, str) else tuple(self.task)

    @property
    def repeats(self) -> int:
        """How many trials in a row get the same task: the k of a ``pass^k`` expectation, else 1."""
        return max((e.group for e in self.expectations), default=1)

    @property
    def unit_trials(self) -> int:
        """How many consecutive trials the verdicts take as one independent value: the k trials of a ``pass^k``
        group when its task is drawn (by a generator, or from a list of different tasks), else 1. Trials that share
        a task fail together (an impossible task fails its whole group), so judging them one by one as independent
        would not keep the stated error rates; groups (and trials) that draw their tasks are independent and
        alike, so judging them one by one does."""
        k = self.repeats
        if callable(self.task):
            return k
        return k if len(set(self.tasks)) > 1 else 1

    def task_for(self, index: int, seed: int) -> str:
        """The task of trial ``index`` of the campaign with ``seed``: trials come in groups of ``repeats``; each
        group draws its task from the list (uniformly, keyed by the campaign seed and the group: ``Stream.TASK``),
        or the generator draws it from a generator of the group's own (numpy, seeded by the campaign seed and the
        group), so every trial of a group has the same task. Drawn, not taken in turn: groups in the list's order
        are not alike (its hardest tasks first made a sequential rule fail an agent at its threshold at the third
        trial, every time), groups that draw are independent and alike, and the verdicts' error rates are exact."""
        group = index // self.repeats
        if callable(self.task):
            import numpy as np

            task = self.task(np.random.default_rng([seed, group, 0x7A5C]))
            if not isinstance(task, str):
                raise ConfigError(f"task generator {self.task!r} returned {task!r}; it must return the task string")
            return task
        return drawn_task(self.tasks, seed, group)

    @property
    def tool_specs(self) -> tuple[ToolSpec, ...]:
        return tuple(tool_spec(t) for t in self.tools)

    @property
    def expectations(self) -> tuple[Expectation, ...]:
        return tuple(Expectation.parse(k, v) for k, v in self.expect.items())

    def replace(self, **changes: Any) -> Scenario:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


#: The scenario's switches (settings of kind ``bool``), checked to be True or False.
_SWITCHES = tuple(name for name, doc in docs(Scenario).items() if doc.kind == "bool")

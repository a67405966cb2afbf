"""Trajectory settings and what the trajectory layer records: ordering rules (``Rule``), loop detection
(``Trajectory``) and ``TrajectoryRecord``, with the metrics read off it. Values only; the layer that watches a
trial's calls is ``pytest_agentops.harness.trajectory``.

A rule says one thing about the calls of one tool in a trial:

- ``after="lookup_order"`` (optionally ``same=["order_id"]``): every call of the tool must come after a call
  of ``after`` that succeeded (with the same values of the ``same`` arguments);
- ``confirmed=True``: every call must use a confirmation for it (``env.confirm(tool, **arguments)``,
  approved, matching, unused: it is consumed as the confirmation gate consumes one);
- ``at_most=N``: the tool is called at most N times (each call past N is one violation).

Each call that breaks a rule is a violation named after the rule (``TrialRecord.violations`` holds
``NAME:tool``), judged by the metrics ``rule_violations`` (count) and ``rule_violation_rate`` (rate of
trials) over every rule, or ``rule_violations:NAME`` and ``rule_violation_rate:NAME`` for one rule; those
two are registered when a ``Trajectory`` holding the rule is built, so that a scenario's ``expect`` can name
them.
"""

from __future__ import annotations

import itertools
import operator
import re
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._frozen import EMPTY, FrozenMap, slot_maker
from .._validation import check_whole, did_you_mean
from ..errors import ConfigError, hide_own_frames
from ..metrics import REGISTRY, MetricDef, register_metric, trial_rate
from ._meta import setting

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    from ..records import TrialRecord
    from .tools import ToolSpec

#: What a rule's name may be: it becomes a violation kind and part of two metric names.
RULE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
_RULE_NAME = re.compile(RULE_NAME_PATTERN)
#: Violation kinds the harness itself records: no rule may take these names.
RESERVED_NAMES = frozenset({"unconfirmed_destructive_call", "duplicate_side_effect"})
#: The per-rule metric families: ``rule_violations:NAME`` (count), ``rule_violation_rate:NAME`` (rate).
RULE_COUNT_PREFIX = "rule_violations:"
RULE_RATE_PREFIX = "rule_violation_rate:"
_RULE_UNIT = "trial that called the rule's tool"

#: the longest loop cycle looked for (each trial keeps that many calls: 10^11 ran out of memory in every trial)
MAX_LOOP_PERIOD = 1000


def _check_tool_name(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name}={value!r} must be a tool's name")
    return value


def _check_same(value: Any, after: str | None) -> FrozenMap[str, str]:
    """``same`` as argument of the rule's tool -> argument of ``after`` (a list names arguments of both)."""
    if value is None or (not value and not isinstance(value, str)):
        return EMPTY
    if after is None:
        raise ConfigError(f"same={value!r} compares arguments with an earlier call: it needs after='TOOL'")
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        pairs = [(v, v) for v in value]
    else:
        raise ConfigError(f"same={value!r} must be a list of argument names (e.g. ['order_id']) or a mapping of "
                          "the tool's argument to the earlier tool's ({'order_id': 'id'})")
    for mine, theirs in pairs:
        if not isinstance(mine, str) or not mine or not isinstance(theirs, str) or not theirs:
            raise ConfigError(f"same={value!r} must name arguments with strings; got {mine!r}: {theirs!r}")
    return FrozenMap(pairs)


@dataclass(frozen=True, slots=True)
class Rule:
    """One ordering rule on the calls of ``tool`` in a trial: exactly one of ``after``, ``confirmed`` or
    ``at_most``. ``name`` (default: derived, e.g. ``refund_order_after_lookup_order``) names its violations
    and its metrics ``rule_violations:NAME`` and ``rule_violation_rate:NAME``.

    ``Rule("refund_order", after="lookup_order", same=["order_id"])``: refund an order only after looking that
    order up (a look-up that succeeded); ``Rule("delete_order", confirmed=True)``: delete only with a
    confirmation for that call; ``Rule("lookup_order", at_most=3)``: at most three look-ups.
    """

    tool: str = setting(doc="the tool whose calls the rule judges", kind="tool_name", required=True)
    after: str | None = setting(None, doc="every call of the tool must come after a call of this tool that "
                                          "succeeded", kind="tool_name", nullable=True)
    same: Mapping[str, str] = setting(doc="with after: arguments that must have the same value in both calls, a "
                                          "list of names or {tool's argument: after's argument}", kind="same_args",
                                      default_factory=FrozenMap)
    confirmed: bool = setting(False, doc="every call of the tool must use a confirmation for it (env.confirm, "
                                         "approved, matching its arguments; consumed)", kind="bool")
    at_most: int | None = setting(None, doc="the tool may be called at most this many times in a trial (each "
                                            "call past it is a violation)", kind="whole", minimum=0, nullable=True)
    name: str = setting("", doc="the rule's name: its violations' kind and the suffix of its metrics (default: "
                                "derived from the rule)", kind="text", schema={"pattern": RULE_NAME_PATTERN})

    def __post_init__(self) -> None:
        _check_tool_name("tool", self.tool)
        if self.after is not None:
            _check_tool_name("after", self.after)
        if not isinstance(self.confirmed, bool):
            raise ConfigError(f"confirmed={self.confirmed!r} must be True or False")
        check_whole("at_most", self.at_most, 0, what="calls", optional=True)
        said = [what for what, on in (("after", self.after is not None), ("confirmed", self.confirmed),
                                      ("at_most", self.at_most is not None)) if on]
        if len(said) != 1:
            given = f"; got {', '.join(said)}" if said else ""
            raise ConfigError(f"Rule(tool={self.tool!r}) must say exactly one thing: after='TOOL' (only after a "
                              f"call of TOOL), confirmed=True (only with a confirmation) or at_most=N{given} "
                              "(give two rules for two things)")
        object.__setattr__(self, "same", _check_same(self.same, self.after))
        name = self.name or self.default_name
        if not isinstance(name, str) or not _RULE_NAME.match(name):
            raise ConfigError(f"name={name!r} must be a rule name: letters, digits, '_' or '-', starting with a "
                              "letter or '_' (it names the rule's violations and metrics)")
        if name in RESERVED_NAMES:
            raise ConfigError(f"name={name!r} is a violation kind the harness records itself; name the rule "
                              "otherwise")
        object.__setattr__(self, "name", name)

    @property
    def default_name(self) -> str:
        """The name a rule gets when none is given: ``TOOL_after_OTHER``, ``TOOL_confirmed``, ``TOOL_at_most_N``."""
        if self.after is not None:
            return f"{self.tool}_after_{self.after}"
        if self.confirmed:
            return f"{self.tool}_confirmed"
        return f"{self.tool}_at_most_{self.at_most}"

    def describe(self) -> str:
        """What the rule says, in words (for messages and the trace)."""
        if self.after is not None:
            same = f" with the same {', '.join(a if a == b else f'{a}={b}' for a, b in self.same.items())}" \
                if self.same else ""
            return f"{self.tool} only after a successful {self.after}{same}"
        if self.confirmed:
            return f"{self.tool} only with a confirmation for the call"
        return f"{self.tool} at most {self.at_most} time(s)"

    def check_tools(self, specs: Mapping[str, ToolSpec], where: str = "trajectory: ") -> None:
        """The rule names tools of the scenario (``specs``: name -> spec) and arguments they take."""
        for what, tool in (("tool", self.tool), ("after", self.after)):
            if tool is not None and tool not in specs:
                raise ConfigError(f"{where}rule {self.name!r}: {what}={tool!r} is not one of the scenario's "
                                  f"tools{did_you_mean(tool, specs)}; tools: {', '.join(specs) or 'none declared'}")
        for mine, theirs in self.same.items():
            for tool, arg in ((self.tool, mine), (self.after, theirs)):
                assert tool is not None
                params = specs[tool].signature.parameters
                if arg not in params and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
                    raise ConfigError(f"{where}rule {self.name!r}: same: {tool} has no argument {arg!r}"
                                      f"{did_you_mean(arg, params)}; its arguments: {', '.join(params) or 'none'}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "rule") -> Rule:
        """A Rule from plain data (an item of a scenario file's ``trajectory: rules:``)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}={data!r} must be a mapping with tool: and one of after, confirmed, at_most")
        known = [f.name for f in cls.__dataclass_fields__.values()]
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise ConfigError(f"{where} has unknown key(s) {unknown}; valid keys: {', '.join(known)}")
        if "tool" not in data:
            raise ConfigError(f"{where} needs tool: the tool whose calls the rule judges")
        return cls(**dict(data))


@dataclass(frozen=True, slots=True)
class Trajectory:
    """What the trajectory layer judges beyond its always-on measures (steps, redundant calls, loops,
    duplicate side effects): ordering ``rules``, and how a loop is recognized: a cycle of at most
    ``loop_period`` calls repeated ``loop_repeats`` times in a row, with the same tools, arguments and
    outcomes (no progress)."""

    rules: tuple[Rule, ...] = setting((), doc="ordering rules: each {tool, and one of after (with same), confirmed, "
                                              "at_most, optionally name}", kind="rules")
    loop_period: int = setting(4, doc=f"the longest cycle of calls a loop may have (default 4, at most "
                                      f"{MAX_LOOP_PERIOD:,})", kind="whole", minimum=1,
                               schema={"maximum": MAX_LOOP_PERIOD})
    loop_repeats: int = setting(3, doc="how many times in a row a cycle must repeat to be a loop (default 3)",
                                kind="whole", minimum=2)

    def __post_init__(self) -> None:
        rules = self.rules
        if isinstance(rules, (Rule, Mapping, str)) or not isinstance(rules, Iterable):
            raise ConfigError(f"rules={rules!r} must be a list of Rule(...)")
        built = tuple(r if isinstance(r, Rule) else Rule.from_mapping(r, f"rules[{i}]") for i, r in enumerate(rules))
        names = [r.name for r in built]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"rules: duplicate rule name(s) {twice}; give each rule its own name=")
        object.__setattr__(self, "rules", built)
        check_whole("loop_period", self.loop_period, 1, what="calls", maximum=MAX_LOOP_PERIOD,
                    why=" calls (each trial keeps that many calls to compare)")
        check_whole("loop_repeats", self.loop_repeats, 2, what="repeats")
        for name in names:  # so that a scenario's expect can name them
            register_rule_metrics(name)

    @classmethod
    def coerce(cls, value: Any, name: str = "trajectory") -> Trajectory:
        """A Trajectory from itself, a list of rules, or a mapping of its settings."""
        if isinstance(value, Trajectory):
            return value
        if isinstance(value, Mapping):
            unknown = sorted(str(k) for k in value if k not in ("rules", "loop_period", "loop_repeats"))
            if unknown:
                raise ConfigError(f"{name} has unknown key(s) {unknown}; valid keys: rules, loop_period, "
                                  "loop_repeats")
            return cls(**dict(value))
        if isinstance(value, (list, tuple)):
            return cls(rules=tuple(value))
        raise ConfigError(f"{name}={value!r} must be a Trajectory(rules=[Rule(...), ...])")

    @property
    def rule_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.rules)

    def check_tools(self, specs: Sequence[ToolSpec]) -> None:
        """Every rule names the scenario's tools and their arguments."""
        by_name = {s.name: s for s in specs}
        for rule in self.rules:
            rule.check_tools(by_name)


def rule_of_metric(metric: str) -> str | None:
    """The rule a per-rule metric name is about (``rule_violations:NAME`` -> NAME), or None."""
    for prefix in (RULE_COUNT_PREFIX, RULE_RATE_PREFIX):
        if metric.startswith(prefix):
            return metric[len(prefix):]
    return None


def check_rule_expectations(keys: Iterable[str], trajectory: Trajectory | None, *, strict: bool = True) -> None:
    """Expectations on one rule's metrics must name a rule of the scenario's own trajectory. Not ``strict`` (a
    scenario built without its trajectory, as a file's keys are checked one by one): only a rule that no
    trajectory declared is refused; the rest is checked when the campaign starts."""
    names = trajectory.rule_names if trajectory is not None else ()
    for key in keys:
        metric = str(key).partition(".")[0]
        rule = rule_of_metric(metric)
        if rule is not None and rule not in names and (strict or metric not in REGISTRY):
            raise ConfigError(f"expect: {key!r} names no trajectory rule of this scenario"
                              f"{did_you_mean(rule, names)}; rules: {', '.join(names) or 'none declared'} "
                              "(declare it in trajectory=Trajectory(rules=[Rule(..., name=...)]))")


@dataclass(frozen=True, slots=True)
class TrajectoryRecord:
    """What the trajectory layer recorded about one trial.

    ``steps`` the agent started (tool calls plus model calls, as ``Escalation.max_steps`` counts them; of which
    ``model_steps``), ``redundant_calls`` (a call repeating an earlier call's tool and arguments that
    succeeded, with no failed tool call or restart in between), ``loops`` (cycles of calls repeated with no
    progress), per rule the calls it judged (``rule_calls``) and its violations (``rule_violations``), and the
    runs of side-effecting tools (``side_effects``) of which ``duplicate_side_effects`` repeated an earlier run
    with the same arguments (a tool declared idempotent excepted).
    """

    steps: int = 0
    model_steps: int = 0
    redundant_calls: int = 0
    loops: int = 0
    rule_calls: Mapping[str, int] = field(default=EMPTY)
    rule_violations: Mapping[str, int] = field(default=EMPTY)
    side_effects: int = 0
    duplicate_side_effects: int = 0

    def __post_init__(self) -> None:
        for name in ("rule_calls", "rule_violations"):
            value = getattr(self, name)
            if not isinstance(value, FrozenMap):
                object.__setattr__(self, name, FrozenMap(value))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"steps": self.steps, "model_steps": self.model_steps,
                               "redundant_calls": self.redundant_calls, "loops": self.loops}
        calls = self.rule_calls._data  # (FrozenMaps, ``__post_init__``: their own dicts, read at C speed)
        if calls:
            out["rule_calls"] = dict(calls)
            violations = self.rule_violations._data
            out["rule_violations"] = {name: violations.get(name, 0) for name in calls}
        if self.side_effects:
            out["duplicate_side_effects"] = self.duplicate_side_effects
        return out


#: ``TrajectoryRecord(...)`` for the layer, which gives every field in its final form (``slot_maker``)
make_trajectory_record = slot_maker(TrajectoryRecord)


def _trajectory(record: TrialRecord) -> TrajectoryRecord | None:
    return record.layers.get("trajectory")


@dataclass(frozen=True, slots=True)
class RuleViolations:
    """The extract of ``rule_violations[:NAME]``: (violations, whether the trial called the rule's tool)."""

    rule: str | None = None  # None: every rule

    def __call__(self, record: TrialRecord) -> tuple[int, bool]:
        t = _trajectory(record)
        if t is None:
            return 0, False
        if self.rule is None:
            return sum(t.rule_violations.values()), bool(t.rule_calls)
        return t.rule_violations.get(self.rule, 0), t.rule_calls.get(self.rule, 0) > 0

    def pairs(self, columns: Any) -> tuple[list[int], list[bool]]:
        """What this extract gives each record that has the trajectory layer (the others: (0, False)), as two
        lists, for a ``metrics.TrialColumns``; shared by the count and the rate of the rule."""
        return columns.cached(("rule violations", self.rule), self._pairs)

    def _pairs(self, columns: Any) -> tuple[list[int], list[bool]]:
        violations, calls = columns.cached("rule maps", _rule_maps)
        rule = self.rule
        if rule is None:
            return list(map(sum, map(dict.values, violations))), list(map(bool, calls))
        return (list(map(dict.get, violations, itertools.repeat(rule), itertools.repeat(0))),
                list(map(operator.gt, map(dict.get, calls, itertools.repeat(rule), itertools.repeat(0)),
                         itertools.repeat(0))))

    def batch(self, columns: Any) -> tuple[int, int]:
        violations, chances = self.pairs(columns)
        return sum(violations), sum(map(bool, chances))


@dataclass(frozen=True, slots=True)
class RuleViolationRate:
    """The extract of ``rule_violation_rate[:NAME]``: (broke it, 1) for a trial that called the rule's tool."""

    rule: str | None = None

    def __call__(self, record: TrialRecord) -> tuple[int, int]:
        violations, chance = RuleViolations(self.rule)(record)
        return (int(violations > 0), 1) if chance else (0, 0)

    def batch(self, columns: Any) -> tuple[int, int, tuple[()]]:
        violations, chances = RuleViolations(self.rule).pairs(columns)
        return sum(1 for v in itertools.compress(violations, chances) if v > 0), sum(map(bool, chances)), ()


def _rule_maps(columns: Any) -> tuple[Expanded, Expanded]:
    """Each ledger's rule violations and rule calls, as their own dicts (they are FrozenMaps,
    ``TrajectoryRecord.__post_init__``; the same items in the same order, read at C speed)."""
    return ledger_column(columns, "rule_violations").map(_DATA), ledger_column(columns, "rule_calls").map(_DATA)


_DATA = operator.attrgetter("_data")
_LEDGER_FIELDS = ("steps", "redundant_calls", "loops", "side_effects", "duplicate_side_effects", "rule_violations",
                  "rule_calls")
_LEDGER_GET = operator.attrgetter(*_LEDGER_FIELDS)


def ledger_column(columns: Any, name: str) -> Expanded:
    """A field of every trajectory ledger of the records that have one, in record order, for a
    ``metrics.TrialColumns`` (the fields the metrics read are read together, in one pass)."""
    return columns.cached("ledger columns", _ledger_columns)[name]


class Expanded:
    """A per-trial column kept as codes into its distinct values (the trials of a campaign mostly share their
    ledgers): iterated and sized like the list it stands for, without a reference per trial and field."""

    __slots__ = ("codes", "values")

    def __init__(self, codes: Sequence[int], values: list[Any]):
        self.codes = codes
        self.values = values

    def __iter__(self) -> Iterator[Any]:
        return map(self.values.__getitem__, self.codes)

    def __len__(self) -> int:
        return len(self.codes)

    def map(self, function: Any) -> Expanded:
        """The column of ``function(value)``, computed once per distinct value."""
        return Expanded(self.codes, [function(v) for v in self.values])


def _ledger_columns(columns: Any) -> dict[str, Expanded]:
    ledgers = columns.present("trajectory")
    index: dict[int, int] = {}  # id of a ledger -> its code (the ledgers are alive: the column holds them)
    distinct: list[Any] = []

    def code(ledger: Any) -> int:
        at = index.get(id(ledger))
        if at is None:
            at = index[id(ledger)] = len(distinct)
            distinct.append(ledger)
        return at

    codes = array("I", map(code, ledgers))
    rows = list(map(_LEDGER_GET, distinct))
    return {name: Expanded(codes, [row[k] for row in rows]) for k, name in enumerate(_LEDGER_FIELDS)}


def register_rule_metrics(name: str) -> None:
    """``rule_violations:NAME`` and ``rule_violation_rate:NAME`` (the same definition for every rule of that
    name, so two scenarios may both declare it); shown in a campaign only when a trial called the rule's tool."""
    count, rate = RuleViolations(name), RuleViolationRate(name)
    register_metric(MetricDef(RULE_COUNT_PREFIX + name, "count", count,
                              f"calls that broke the trajectory rule {name!r}", counting_unit=_RULE_UNIT,
                              batch=count.batch), scoped=True)
    register_metric(MetricDef(RULE_RATE_PREFIX + name, "rate", rate,
                              f"share of trials that broke the trajectory rule {name!r}, among those that called "
                              "its tool", counting_unit=_RULE_UNIT, batch=rate.batch), scoped=True)


def _ledger_floats(field_name: str) -> Any:
    """The batch of ``lambda r: None if (t := _trajectory(r)) is None else float(t.<field_name>)``."""
    return lambda columns: array("d", ledger_column(columns, field_name))


def _loops(columns: Any) -> tuple[int, int, tuple[()]]:
    loops = ledger_column(columns, "loops")
    return sum(map(bool, map(operator.gt, loops, itertools.repeat(0)))), len(loops), ()


register_metric(MetricDef(
    "steps_per_task", "distribution", lambda r: None if (t := _trajectory(r)) is None else float(t.steps),
    "steps of a trial: tool calls plus model calls the agent started", "steps", batch=_ledger_floats("steps"),
    minimum=0.0), builtin=True)
register_metric(MetricDef(
    "redundant_calls", "distribution",
    lambda r: None if (t := _trajectory(r)) is None else float(t.redundant_calls),
    "tool calls of a trial that repeated an earlier successful call's tool and arguments with no failed call "
    "or restart in between", "calls", batch=_ledger_floats("redundant_calls"), minimum=0.0), builtin=True)
register_metric(MetricDef(
    "loop_rate", "rate", trial_rate(lambda r: None if (t := _trajectory(r)) is None else t.loops > 0),
    "share of trials in which the agent looped (a cycle of calls repeated with the same tools, arguments and "
    "outcomes)", batch=_loops), builtin=True)
register_metric(MetricDef(
    "rule_violations", "count", RuleViolations(),
    "calls that broke a trajectory rule of the scenario, over the trials that called a rule's tool",
    counting_unit="trial that called a rule's tool", batch=RuleViolations().batch), builtin=True)
register_metric(MetricDef(
    "rule_violation_rate", "rate", RuleViolationRate(),
    "share of trials that broke a trajectory rule, among those that called a rule's tool",
    counting_unit="trial that called a rule's tool", batch=RuleViolationRate().batch), builtin=True)

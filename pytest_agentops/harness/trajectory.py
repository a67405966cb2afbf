"""The trajectory layer: what the agent's sequence of calls says about how it reasoned (always on).

It watches every call the agent makes, in the order it makes them, and records (``TrajectoryRecord``):

- **steps**: tool calls plus model calls the agent started (``steps_per_task``);
- **redundant calls**: a call with the tool and arguments of an earlier call that succeeded, with no failed
  tool call (a fault, or the tool raising) and no restart in between (``redundant_calls``): a retry after a
  fault is legitimate, asking again for what it already has is not;
- **loops**: a cycle of calls repeated with the same tools, arguments and outcomes (``loop_rate``; see
  ``harness/loops.py``);
- **duplicate side effects**: a side-effecting tool run again with the same arguments in the trial, after a
  retry or across a crash (``duplicate_side_effects``; see ``harness/effects.py``);
- **ordering rules** of ``Scenario(trajectory=Trajectory(rules=[...]))``: each call that breaks one is a
  violation named after the rule (``rule_violations``, ``rule_violation_rate``, and per rule
  ``rule_violations:NAME``, ``rule_violation_rate:NAME``).

A call is judged when the agent makes it (``before_tool``; a call an earlier layer refused, blocked by the gate
or out of scope, when it is recorded), so a call that then fails with an injected fault was still made in that
order. It runs right after the confirmation layer: it sees the approval the gate took for a destructive call,
and takes one itself for a non-destructive tool under a ``confirmed`` rule (given back, by the confirmation
layer, when a fault then keeps the tool from running; consumed when the tool runs). It never refuses a call.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any

from .._frozen import EMPTY, FrozenMap, Shared
from ..errors import hide_own_frames
from ..seeding import canonical
from ..settings.trajectory import Rule, Trajectory, TrajectoryRecord, check_rule_expectations, make_trajectory_record
from .confirmations import snapshot
from .context import RAN
from .effects import EffectLedger
from .escalation import FAULT_OUTCOMES
from .layer import LayerTrial, ToolCall, TrialPort
from .loops import LoopDetector

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    from ..scenario import Scenario
    from ..settings.run import RunSettings
    from ..settings.tools import ToolSpec

#: Outcomes of calls an earlier layer refused before this layer's ``before_tool`` saw them: judged when recorded.
REFUSED = frozenset({"blocked", "denied_scope"})
_MISSING = ("missing", None)


def _first() -> int:
    """The attempt of every call when the agent is never restarted (no crash layer)."""
    return 0


def call_key(arguments: Mapping[str, Any]) -> Hashable:
    """What makes two calls of a tool the same call: their arguments (bound in the signature's order, defaults
    applied), as a tuple when every value hashes (numbers equal as numbers), else as canonical JSON."""
    key = tuple(arguments.items())
    try:
        hash(key)
    except TypeError:  # a list or a dict among them
        return canonical(arguments)
    return key


def _project(arguments: Mapping[str, Any], names: tuple[str, ...]) -> tuple[Any, ...]:
    """The values of some arguments, comparable across calls (numbers as numbers, the rest as canonical JSON)."""
    return tuple(snapshot(arguments[n]) if n in arguments else _MISSING for n in names)


class _Rules:
    """A scenario's rules indexed for the calls: by the tool they judge, and by the tool an ``after`` waits for."""

    __slots__ = ("by_tool", "compared", "waiting_for")

    def __init__(self, rules: tuple[Rule, ...]):
        by_tool: dict[str, list[Rule]] = {}
        waiting: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        self.compared = {rule.name: tuple(rule.same) for rule in rules}  # an after-rule's tool's arguments compared
        for rule in rules:
            by_tool.setdefault(rule.tool, []).append(rule)
            if rule.after is not None:
                waiting.setdefault(rule.after, []).append((rule.name, tuple(rule.same.values())))
        self.by_tool = {tool: tuple(rs) for tool, rs in by_tool.items()}
        self.waiting_for = {tool: tuple(ws) for tool, ws in waiting.items()}


class _TrajectoryTrial(LayerTrial):
    """One trial's trajectory: steps, redundancy, loops, the side-effect ledger and the rules."""

    __slots__ = ("_attempt", "_done", "_epoch", "_keys", "_lock", "_model_steps", "_ok_epoch", "_record", "_records",
                 "_rules", "_steps", "attempt", "calls_of", "ledger", "loops", "redundant", "rule_calls",
                 "rule_violations", "trial")

    def __init__(self, trial: TrialPort, settings: Trajectory, rules: _Rules, records: Shared):
        self.trial = trial
        self._rules = rules
        self._records = records  # the campaign's records, each kept once
        self._lock = threading.Lock()  # hooks come from the agent's threads
        self._steps, self._model_steps = itertools.count(), itertools.count()  # next() is atomic: no lock per step
        self.redundant = 0
        self._epoch = 0  # bumped by every failed tool call and every restart: what "a fault in between" means
        self._ok_epoch: dict[tuple[str, Hashable], int] = {}  # (tool, arguments) -> epoch of its last success
        # id(arguments) -> (them, their (tool, call_key)) of each call judged and not recorded yet: a call is recorded
        # with the key it was judged by, even if its tool then changed its arguments in place
        self._keys: dict[int, tuple[Mapping[str, Any], tuple[str, Hashable]]] = {}
        self.loops = LoopDetector(settings.loop_period, settings.loop_repeats)
        self.ledger = EffectLedger(trial)
        self.calls_of: dict[str, int] = {}  # tool -> calls judged (a rule's at_most)
        self.rule_calls: dict[str, int] = {}
        self.rule_violations: dict[str, int] = {}
        self._done: dict[str, set[tuple[Any, ...]]] = {}  # after-rule -> values of its tool's successful calls
        self.attempt = 0
        self._attempt: Callable[[], int] | None = None
        self._record: TrajectoryRecord | None = None
        trial.provide("effects", self.ledger)

    # -- hooks ------------------------------------------------------------------------------------------
    def before_step(self, kind: str) -> None:
        next(self._steps)
        if kind == "model":
            next(self._model_steps)

    def before_tool(self, call: ToolCall) -> None:
        arguments, spec = call.arguments, call.spec
        key = tuple(arguments.items())  # (``call_key``, written out: this runs at every call)
        try:
            hash(key)
        except TypeError:
            key = canonical(arguments)
        tool_key = (spec.name, key)
        self._keys[id(arguments)] = (arguments, tool_key)  # the same dict is recorded: its key is not made again
        self._judge(spec, arguments, tool_key, call)

    def on_tool_recorded(self, spec: ToolSpec, arguments: Mapping[str, Any], outcome: str) -> None:
        if outcome == "bad_arguments":  # no arguments to judge: the call did not bind
            return
        known = self._keys.pop(id(arguments), None)  # (none for a call an earlier layer refused: keyed now)
        tool_key = known[1] if known is not None and known[0] is arguments else (spec.name, call_key(arguments))
        if outcome in REFUSED:
            self._judge(spec, arguments, tool_key, None)
        duplicate = None
        with self._lock:
            if self._attempt is not _first:
                self._sync_attempt()
            if outcome in FAULT_OUTCOMES:
                self._epoch += 1
            elif outcome == "ok":
                self._ok_epoch[tool_key] = self._epoch
                waiting = self._rules.waiting_for.get(spec.name)
                if waiting is not None:
                    self._done_with(arguments, waiting)
            if outcome in RAN and (spec.side_effect or spec.destructive) and not spec.idempotent:  # (``has_effect``)
                first = self.ledger.ran(spec, tool_key[1], self.attempt)
                if first is not None:
                    duplicate = (first, self.attempt)
            loop = self.loops.add((tool_key, outcome))  # (a call is its tool, arguments and outcome)
        if duplicate is not None:
            self.ledger.report(spec, arguments, *duplicate)
        if loop is not None:
            self.trial.trace.add("trajectory", " -> ".join(c[0][0] for c in loop), "loop", period=len(loop),
                                 repeats=self.loops.repeats, calls=[{"tool": c[0][0], "outcome": c[1]} for c in loop])

    def record(self) -> TrajectoryRecord:
        with self._lock:
            if self._record is None:  # (the trial asks once; reading a step counter moves it)
                calls, violations = self.rule_calls, self.rule_violations
                key = (next(self._steps), next(self._model_steps), self.redundant, self.loops.loops,
                       tuple(sorted(calls.items())) if calls else (),
                       tuple(sorted(violations.items())) if violations else (), self.ledger.side_effects,
                       self.ledger.duplicates)
                found = self._records.get(key)
                self._record = found if found is not None else self._records.add(key, _make_record(key))
            return self._record

    # -- judging one call ------------------------------------------------------------------------------
    def _done_with(self, arguments: Mapping[str, Any], waiting: tuple[tuple[str, tuple[str, ...]], ...]) -> None:
        """A successful call of a tool that ``after`` rules wait for: keep the values each rule compares."""
        for rule, names in waiting:
            done = self._done.get(rule)
            if done is None:
                done = self._done[rule] = set()
            done.add(_project(arguments, names) if names else ())

    def _sync_attempt(self) -> None:
        """A restart after a crash (the crash layer's ``attempt``) is a new start: redoing is not redundant."""
        source = self._attempt
        if source is None:
            source = self._attempt = self.trial.service("attempt") or _first
        if source is _first:
            return
        attempt = source()
        if attempt != self.attempt:
            self.attempt = attempt
            self._epoch += 1
            self.loops.reset()

    def _judge(self, spec: ToolSpec, arguments: Mapping[str, Any], tool_key: tuple[str, Hashable],
               call: ToolCall | None) -> None:
        """A call as the agent made it: redundant? does it break a rule?"""
        name = spec.name
        broken: list[tuple[Rule, str]] | None = None
        with self._lock:
            if self._attempt is not _first:
                self._sync_attempt()
            redundant = self._ok_epoch.get(tool_key) == self._epoch
            if redundant:
                self.redundant += 1
            rules = self._rules.by_tool.get(name)
            if rules:
                n = self.calls_of[name] = self.calls_of.get(name, 0) + 1
                for rule in rules:
                    self.rule_calls[rule.name] = self.rule_calls.get(rule.name, 0) + 1
                    why = self._breaks(rule, n, arguments, call)
                    if why:
                        self.rule_violations[rule.name] = self.rule_violations.get(rule.name, 0) + 1
                        broken = [*(broken or ()), (rule, why)]
        if redundant:
            self.trial.trace.add("trajectory", name, "redundant", arguments=dict(arguments))
        for rule, why in broken or ():
            self.trial.record_violation(rule.name, name, arguments, blocked=False, outcome="broken",
                                        rule=rule.describe(), why=why)

    def _breaks(self, rule: Rule, n: int, arguments: Mapping[str, Any], call: ToolCall | None) -> str:
        """Why this call (the ``n``-th of its tool) breaks ``rule``, or an empty string."""
        if rule.at_most is not None:
            return f"call {n} of {rule.tool}, more than {rule.at_most}" if n > rule.at_most else ""
        if rule.confirmed:
            if call is None:  # refused before it reached this layer: no confirmation was used
                return "no confirmation used"
            if call.approval is None and not call.spec.destructive:  # the gate takes a destructive call's
                gate = self.trial.service("gate")
                call.approval = gate.take(call.spec.name, call.explicit, call.arguments) if gate else None
            return "" if call.approval is not None else "no matching unused confirmation"
        names = self._rules.compared[rule.name]
        if (_project(arguments, names) if names else ()) in self._done.get(rule.name, ()):
            return ""
        if not rule.same:
            return f"no successful {rule.after} before it"
        return f"no successful {rule.after} with the same {', '.join(rule.same.values())} before it"


def _make_record(key: tuple[Any, ...]) -> TrajectoryRecord:
    """The record of a trial from its key (``_TrajectoryTrial.record``): its fields in order, the rule maps as
    sorted items."""
    steps, model_steps, redundant, loops, calls, violations, side_effects, duplicates = key
    return make_trajectory_record(  # (the rule maps frozen here)
        steps=steps, model_steps=model_steps, redundant_calls=redundant, loops=loops,
        rule_calls=FrozenMap(calls) if calls else EMPTY, rule_violations=FrozenMap(violations) if violations else EMPTY,
        side_effects=side_effects, duplicate_side_effects=duplicates)


class _Trajectories:
    __slots__ = ("records", "rules", "settings")
    name = "trajectory"

    def __init__(self, settings: Trajectory):
        self.settings = settings
        self.rules = _Rules(settings.rules)
        self.records = Shared()  # most trials of a campaign end with a record equal to an earlier one's

    def attach(self, trial: TrialPort) -> LayerTrial:
        return _TrajectoryTrial(trial, self.settings, self.rules, self.records)


class TrajectoryLayer:
    """Always on: every scenario gets steps, redundant calls, loops and duplicate side effects measured; its
    ``trajectory`` adds rules and tunes loop detection."""

    name = "trajectory"

    def for_campaign(self, scenario: Scenario, run: RunSettings) -> _Trajectories:
        settings = scenario.trajectory or Trajectory()
        settings.check_tools(scenario.tool_specs)
        check_rule_expectations(scenario.expect, settings)  # (a scenario without a trajectory: not checked yet)
        return _Trajectories(settings)


LAYER = TrajectoryLayer()

"""``CampaignResult``: all trials of one scenario, the metrics, the verdicts, and ``.check()``."""

from __future__ import annotations

import marshal
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import stats
from ._frozen import FrozenMap
from .errors import CampaignFailed, hide_own_frames, shown
from .expect import Verdict
from .judge import judge
from .metrics import MetricSummary, collect, summarize_all
from .record_store import RecordStore
from .records import OUTCOMES, MinimalFaults, TrialRecord, layer_extra
from .stable_repr import printable

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    from .scenario import Scenario
    from .settings.faults import Faults
    from .settings.run import RunSettings

REPORT_SCHEMA_VERSION = 1  # fields were added (counting units, rules, per-task breakdown), none changed meaning
_SEVERITY = {"error": 0, "timed_out": 1, "crashed": 2, "budget_exceeded": 3, "failed": 4, "escalated": 5,
             "completed": 6}
#: The order in which the worst-trials list shows one example of each failure class (violations in between).
_CLASS_ORDER = ("error", "failed", "violation", "timed_out", "budget_exceeded", "crashed", "escalated")


@dataclass(frozen=True, slots=True)
class TaskSummary:
    """One task of a multi-task scenario: its trials, completion (exact bounds, for reading), pass^k groups,
    tokens, and its worst trial."""

    task: str
    trials: int
    completed: int
    lower: float
    upper: float
    groups: int = 0  # pass^k: complete groups of k trials
    groups_passed: int = 0
    tokens_p95: float | None = None
    worst: str | None = None  # the label of its worst trial
    worst_index: int | None = None

    @property
    def completion_rate(self) -> float:
        return self.completed / self.trials if self.trials else float("nan")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"task": self.task, "trials": self.trials, "completed": self.completed,
                               "completion_rate": round(self.completion_rate, 10), "lower": round(self.lower, 10),
                               "upper": round(self.upper, 10), "tokens_p95": self.tokens_p95, "worst": self.worst}
        if self.groups:
            out.update(groups=self.groups, groups_passed=self.groups_passed)
        return out


def _per_task(scenario: Scenario, settings: RunSettings, records: RecordStore,
              task_of: Callable[[int], str] | None = None) -> tuple[TaskSummary, ...]:
    """The breakdown by task, for scenarios with several tasks (or pass^k groups); empty otherwise. ``task_of``
    gives a trial's task as the campaign gave it (a task generator's, made once per group), else
    ``Scenario.task_for``."""
    repeats = scenario.repeats
    if (len(scenario.tasks) == 1 and repeats == 1) or settings.smoke or settings.replay is not None:
        return ()
    by_task: dict[str, list[TrialRecord]] = {}
    for record in records:
        index = record.index
        by_task.setdefault(task_of(index) if task_of is not None else scenario.task_for(index, settings.seed),
                           []).append(record)
    out = []
    for task, rs in by_task.items():
        done = sum(r.outcome == "completed" for r in rs)
        groups: dict[int, list[bool]] = {}
        for r in rs:
            groups.setdefault(r.index // repeats, []).append(r.outcome == "completed")
        full = [g for g in groups.values() if len(g) == repeats] if repeats > 1 else []
        worst = sorted((r for r in rs if not r.ok), key=lambda r: (not r.violations, _SEVERITY.get(r.outcome, 9),
                                                                     r.index))
        tokens = [float(r.tokens) for r in rs]
        out.append(TaskSummary(task, len(rs), done, stats.clopper_pearson_lower(done, len(rs), settings.confidence),
                               stats.clopper_pearson_upper(done, len(rs), settings.confidence), len(full),
                               sum(all(g) for g in full), stats.quantile(tokens, 0.95) if tokens else None,
                               worst[0].label if worst else None, worst[0].index if worst else None))
    return tuple(sorted(out, key=lambda t: (t.completion_rate, t.task)))


@dataclass(frozen=True, slots=True)
class CampaignResult:
    """The campaign of one scenario: its trial records, metrics and verdicts.

    ``records`` is a ``RecordStore``: a sequence of ``TrialRecord`` kept as compact columns (any sequence of
    records given is turned into one)."""

    scenario: str
    seed: int
    max_trials: int
    confidence: float
    profile: str | None
    records: RecordStore = field(repr=False)
    metrics: Mapping[str, MetricSummary] = field(repr=False)
    verdicts: tuple[Verdict, ...]
    stopped_early: bool = False
    smoke: bool = False
    replay: int | None = None
    xfail: str | None = None
    wall_s: float = field(default=0.0, compare=False)
    replay_command: str | None = field(default=None, compare=False, repr=False)
    skipped: str | None = None  # why this campaign did not run (e.g. not the scenario a replay asked for)
    late_calls: int = 0  # harness calls refused because their trial had ended (threads an agent left running)
    unstoppable: int = 0  # agent threads and loops given up on that could not be stopped in-process
    minimal_faults: tuple[MinimalFaults, ...] = ()  # the faults the worst failing trial(s) needed (``engine.shrink``)
    per_task: tuple[TaskSummary, ...] = field(default=(), repr=False)
    fault_settings: Faults | None = field(default=None, compare=False, repr=False)  # what was configured
    interrupted: bool = False  # Ctrl-C ended it: the records are the trials that finished before
    spend: Mapping[str, Any] | None = None  # a capped campaign's spend (engine.spend.SpendGate.summary)
    unit_trials: int = 1  # consecutive trials that share their tasks, judged as one value (``Scenario.unit_trials``)
    # what is derived from the records once (outcome counts, worst trials, the layers' records merged)
    _memo: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.records, RecordStore) or not self.records.frozen:
            object.__setattr__(self, "records", RecordStore.of(self.records))

    @classmethod
    def not_run(cls, scenario: str, reason: str) -> CampaignResult:
        """A campaign that did not run: no trial, no verdict, passes ``check()``."""
        return cls(scenario=scenario, seed=0, max_trials=0, confidence=0.95, profile=None, records=(),
                   metrics=FrozenMap(), verdicts=(), skipped=reason)

    @classmethod
    def build(cls, scenario: Scenario, settings: RunSettings, records: Iterable[TrialRecord], *,
              stopped_early: bool = False, wall_s: float = 0.0, replay_command: str | None = None,
              late_calls: int = 0, unstoppable: int = 0, interrupted: bool = False,
              spend: Mapping[str, Any] | None = None, task_of: Callable[[int], str] | None = None
              ) -> CampaignResult:
        """Compute metrics and verdicts for a finished campaign (``spend``: a capped campaign's spend; a
        campaign its cap stopped is incomplete, and its verdicts are those reached, as for an interrupted one;
        ``task_of``: each trial's task as the campaign gave it, for the breakdown by task)."""
        records = RecordStore.of(records)  # (the runner's own store: frozen as it is, not copied)
        expectations = scenario.expectations
        data = collect(records)  # every metric: the summaries need them all
        max_trials = 1 if settings.replay is not None else settings.trials
        unit = 1 if settings.replay is not None or settings.smoke else scenario.unit_trials  # (one trial)
        judges = [judge(e, max_trials=max_trials, confidence=settings.confidence, sequential=settings.sequential,
                        unit_trials=unit).add_all(records) for e in expectations]
        complete = len(records) >= max_trials
        failed = next((j.exp.key for j in judges if j.failed), "") if not complete else ""
        verdicts = tuple(j.verdict(complete=complete, stopped_by=failed) for j in judges)
        return cls(scenario=scenario.name, seed=settings.seed, max_trials=settings.trials,
                   confidence=settings.confidence, profile=settings.faults.profile_name or "custom",
                   records=records,
                   metrics=FrozenMap(summarize_all(data, settings.confidence)), verdicts=verdicts,
                   stopped_early=stopped_early, smoke=settings.smoke, replay=settings.replay,
                   xfail=scenario.xfail, wall_s=wall_s, replay_command=replay_command, late_calls=late_calls,
                   unstoppable=unstoppable, per_task=_per_task(scenario, settings, records, task_of),
                   fault_settings=settings.faults, interrupted=interrupted,
                   spend=None if spend is None else FrozenMap(spend), unit_trials=unit)

    # -- derived values -------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return len(self.records)

    def memoized(self, key: Any, make: Callable[[], Any]) -> Any:
        """``make()``, computed once for this result (which never changes) and kept with it under ``key``: what
        is derived from every record (the outcome counts, the worst trials, ``report.attribution.fault_delivery``).
        The caller copies what it hands out when that can be changed."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    @property
    def outcome_counts(self) -> FrozenMap[str, int]:
        def make() -> FrozenMap[str, int]:
            counts = self.records.outcome_counts()  # (from the store's outcome column: no record made)
            return FrozenMap({o: counts[o] for o in OUTCOMES if counts[o]})

        return self.memoized("outcome_counts", make)

    @property
    def failed_verdicts(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.verdict == "fail")

    @property
    def inconclusive_verdicts(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.verdict == "inconclusive")

    @property
    def passed(self) -> bool:
        """No failed verdict and, in smoke mode, the one trial completed with no violation. (Read by the test's own
        code, it counts as looking at the verdicts: no ``UncheckedCampaign`` warning, as after ``check()``.)"""
        if not sys._getframe(1).f_globals.get("__name__", "").startswith("pytest_agentops"):
            self._memo["checked"] = True
        if self.skipped is not None:
            return True
        if self.smoke or self.replay is not None:
            return all(r.ok for r in self.records) and not self.failed_verdicts
        return not self.failed_verdicts and not self.inconclusive_verdicts

    def worst_trials(self, limit: int = 5, *, traces: bool = True) -> list[TrialRecord]:
        """The trials most worth replaying: first one example of each failure class (error, failed, each
        violation kind, timed out, budget exceeded, crashed, escalated; the earliest trial of each), then
        the rest by severity, up to ``limit`` trials in all (every class keeps its example). ``traces=False``:
        their records with an empty ``trace``, for what reads no trace (a trace a pytest session moved to disk is
        then not read back: ``RecordStore.spill_traces``)."""
        records = self.records  # (always a ``RecordStore``: ``__post_init__``)
        # the positions are kept, not the records (whose traces may live on disk): choosing reads no trace
        rows = self.memoized(("worst_rows", limit), lambda: self._worst_rows(limit, records))
        return [records[j] if traces else records.without_trace(j) for j in rows]

    @staticmethod
    def _worst_rows(limit: int, records: RecordStore) -> tuple[int, ...]:
        rows = records.not_ok_rows()
        bad = [records.without_trace(j) for j in rows]
        at = {id(r): j for r, j in zip(bad, rows, strict=True)}
        return tuple(at[id(r)] for r in CampaignResult._worst_trials(limit, bad))

    @staticmethod
    def _worst_trials(limit: int, bad: Sequence[TrialRecord]) -> list[TrialRecord]:
        examples: dict[str, TrialRecord] = {}
        for r in bad:  # launch order: the earliest trial of each class is its example
            for cls in failure_classes(r):
                examples.setdefault(cls, r)
        order = {cls: i for i, cls in enumerate(_CLASS_ORDER)}
        first: list[TrialRecord] = []
        for cls in sorted(examples, key=lambda c: (order.get(c.partition(":")[0], len(order)), c)):
            if examples[cls] not in first:
                first.append(examples[cls])
        # ``r not in first``, asked only of the examples with r's index (an equal record has the same index)
        by_index: dict[Any, list[TrialRecord]] = {}
        for r in first:
            by_index.setdefault(r.index, []).append(r)
        rest = sorted((r for r in bad if r.index not in by_index or r not in by_index[r.index]),
                      key=lambda r: (not r.violations, _SEVERITY.get(r.outcome, 9), r.index))
        return first + rest[:max(0, limit - len(first))]

    def replay_hint(self, record: TrialRecord) -> str:
        """The command that re-runs exactly this trial."""
        if self.replay_command:
            return self.replay_command.format(index=record.index, seed=self.seed, scenario=self.scenario)
        return f"run_campaign(<{self.scenario} scenario>, seed={self.seed}, replay={record.index})"

    def minimal_faults_of(self, index: int) -> MinimalFaults | None:
        """What shrinking found for trial ``index`` (None: it was not shrunk)."""
        return next((m for m in self.minimal_faults if m.index == index), None)

    def summary(self) -> str:
        """Several lines: outcome counts and one line per verdict."""
        counts = ", ".join(f"{k}={v}" for k, v in self.outcome_counts.items())
        head = (f"{self.scenario}: {self.n} trial(s) seed={self.seed} profile={self.profile}"
                f"{' (stopped early)' if self.stopped_early else ''}: {counts}")
        return "\n".join([head, *("  " + v.describe() for v in self.verdicts)])

    def check(self) -> CampaignResult:
        """Raise ``CampaignFailed`` (an AssertionError) unless every expectation passed; returns self."""
        __tracebackhide__ = True  # a failing test shows this message, not this function's source
        self._memo["checked"] = True  # (its test asked: no ``UncheckedCampaign`` warning at its teardown)
        if self.passed:
            return self
        lines = [f"agent chaos campaign {self.scenario!r} did not pass "
                 f"({self.n} trial(s), seed={self.seed}, profile={self.profile}):"]
        if self.smoke:
            lines[0] = f"agent smoke trial of {self.scenario!r} did not pass (fault-free, seed={self.seed}):"
        # one fault-free trial decides no expectation: a smoke failure lists failed verdicts, not inconclusive ones
        undecided = () if self.smoke else self.inconclusive_verdicts
        for v in self.failed_verdicts + undecided:
            lines.append(f"  {v.verdict.upper()}: {v.describe()}")
        if self.per_task:
            worst_task = self.per_task[0]
            lines.append(f"  worst task: {worst_task.task!r}: {worst_task.completed}/{worst_task.trials} completed")
        worst = self.worst_trials(traces=False)
        if worst:
            lines.append("worst trials (replay each with the command under it):")
            for r in worst:
                why = r.reason or ", ".join(r.violations)
                if r.violations and r.reason:
                    why += f"; violations: {', '.join(r.violations)}"
                lines.append(f"  {r.label}: {r.outcome}{': ' + printable(why) if why else ''}")
                lines.append(f"    {self.replay_hint(r)}")
                shrunk = self.minimal_faults_of(r.index)
                if shrunk is not None:
                    lines.append(f"    {shrunk.describe()}")
        raise CampaignFailed("\n".join(lines))

    def to_dict(self, *, with_traces: bool = False, records: bool = True) -> dict[str, Any]:
        """The campaign as plain JSON data (the report schema's ``campaigns[]`` entry): every trial's record,
        with its trace when the trial failed (or every trace, ``with_traces``); without ``records`` when a
        writer streams them (``record_dict``)."""
        out = {
            "scenario": self.scenario, "seed": self.seed, "max_trials": self.max_trials, "trials": self.n,
            "stopped_early": self.stopped_early, "confidence": self.confidence, "profile": self.profile,
            "smoke": self.smoke, "replay": self.replay, "xfail": self.xfail, "passed": self.passed,
            "outcomes": dict(self.outcome_counts),
            "metrics": {name: m.to_dict() for name, m in self.metrics.items()},
            "verdicts": [v.to_dict() for v in self.verdicts],
            **({"per_task": [t.to_dict() for t in self.per_task]} if self.per_task else {}),
        }
        if records:
            out["records"] = [self.record_dict(r, with_traces) for r in self.records]
        if self.interrupted:  # Ctrl-C: these are the trials that finished before it
            out["interrupted"] = True
        if self.minimal_faults:
            out["minimal_faults"] = [m.to_dict() for m in self.minimal_faults]
        if self.late_calls:  # threads an agent left running called the harness after their trial ended
            out["late_calls"] = self.late_calls
        if self.unstoppable:  # workers given up on that still run (they depend on timing: only when they occur)
            out["unstoppable_workers"] = self.unstoppable
        if self.unit_trials > 1:  # pass^k groups: what a gate compares unit by unit
            out["unit_trials"] = self.unit_trials
        if self.spend is not None:  # a capped campaign: what it spent, and whether the cap stopped it
            out["spend"] = dict(self.spend)
        blocked = self._blocked_hosts()
        if blocked:  # the hermetic network refused these hosts
            out["blocked_hosts"] = blocked
        return out

    def _blocked_hosts(self) -> list[Any]:
        """``sorted({h for r in self.records for h in r.extra.get("blocked_hosts", ())})``."""
        return list(self.memoized("blocked_hosts", lambda: sorted(  # (each distinct set of layer records once)
            {h for layers in self.records.layer_maps() for h in layer_extra(layers).get("blocked_hosts", ())})))

    def record_extras(self) -> tuple[list[int], list[dict[str, Any]], list[bytes | None]]:
        """Each record's ``extra`` (what every layer recorded, merged: ``TrialRecord.extra``) as an index into a
        list of the distinct ones (records of passing trials mostly share theirs), with the key that told them
        apart (their ``marshal`` bytes: the same bytes, the same values of the same types; None: a record of its
        own, not made of plain values), worked out once."""
        return self.memoized("record_extras", lambda: _distinct_extras(self.records))

    @staticmethod
    def record_dict(record: TrialRecord, with_traces: bool = False, with_extra: bool = True) -> dict[str, Any]:
        """One trial's entry of ``records`` in the report (``with_extra=False``: without the layers' ``extra``)."""
        # a failing trial's trace is always there: what the agent did is the first thing one looks for
        return record.to_dict(with_trace=with_traces or not record.ok, with_extra=with_extra)

    def __repr__(self) -> str:
        verdicts = ", ".join(f"{v.key}={v.verdict}" for v in self.verdicts)
        return (f"CampaignResult({shown(repr(self.scenario))}, n={self.n}, seed={self.seed}, "
                f"outcome_counts={self.outcome_counts}, verdicts=[{verdicts}])")


def _distinct_extras(records: Iterable[TrialRecord]) -> tuple[list[int], list[dict[str, Any]], list[bytes | None]]:
    """(for each record the index of its ``extra``, the distinct ones as plain dicts, their keys)."""
    if isinstance(records, RecordStore):  # each distinct ``layers`` value merged once, read through the codes
        codes, values = records.coded("layers")
        per_value, extras, keys = _extras_of(values)
        if None not in keys:  # (a value that is not plain stays a record's own: the loop below)
            return list(map(per_value.__getitem__, codes)), extras, keys
    return _extras_of(record.layers for record in records)


def _extras_of(all_layers: Iterable[Any]) -> tuple[list[int], list[dict[str, Any]], list[bytes | None]]:
    ids: list[int] = []
    extras: list[dict[str, Any]] = []
    keys: list[bytes | None] = []
    seen: dict[bytes, int] = {}
    dumps = marshal.dumps
    for layers in all_layers:
        merged: dict[str, Any] = {}
        for layer in getattr(layers, "_data", layers).values():
            merged.update(layer.to_dict())
        try:  # version 2: no references between objects (the same values, the same bytes)
            key: bytes | None = dumps(merged, 2)
        except (ValueError, TypeError, RecursionError):  # not plain values: a record of its own
            key = None
        at = seen.get(key) if key is not None else None
        if at is None:
            at = len(extras)
            if key is not None:
                seen[key] = at
            extras.append(merged)
            keys.append(key)
        ids.append(at)
    return ids, extras, keys


def failure_classes(record: TrialRecord) -> tuple[str, ...]:
    """Why a trial did not pass, as classes: its outcome unless ``completed``, and ``violation:KIND`` for each
    kind of violation it made (``violation:unconfirmed_destructive_call``)."""
    kinds = sorted({v.partition(":")[0] for v in record.violations})
    own = () if record.outcome == "completed" else (record.outcome,)
    return own + tuple(f"violation:{k}" for k in kinds)

"""``CampaignResult``: all trials of one scenario, the metrics, the verdicts, and ``.check()``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._frozen import FrozenMap
from .errors import CampaignFailed
from .expect import Verdict, evaluate
from .metrics import MetricSummary, collect, summarize_all
from .records import OUTCOMES, TrialRecord

if TYPE_CHECKING:
    from .scenario import Scenario
    from .settings.run import RunSettings

REPORT_SCHEMA_VERSION = 1
_SEVERITY = {"error": 0, "timed_out": 1, "crashed": 2, "budget_exceeded": 3, "failed": 4, "escalated": 5,
             "completed": 6}


@dataclass(frozen=True, slots=True)
class CampaignResult:
    """The campaign of one scenario: its trial records, metrics and verdicts."""

    scenario: str
    seed: int
    max_trials: int
    confidence: float
    profile: str | None
    records: tuple[TrialRecord, ...] = field(repr=False)
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
    spend: Mapping[str, Any] | None = None  # a capped campaign's spend (engine.spend.SpendGate.summary)

    @classmethod
    def not_run(cls, scenario: str, reason: str) -> CampaignResult:
        """A campaign that did not run: no trial, no verdict, passes ``check()``."""
        return cls(scenario=scenario, seed=0, max_trials=0, confidence=0.95, profile=None, records=(),
                   metrics=FrozenMap(), verdicts=(), skipped=reason)

    @classmethod
    def build(cls, scenario: Scenario, settings: RunSettings, records: list[TrialRecord], *,
              stopped_early: bool = False, wall_s: float = 0.0, replay_command: str | None = None,
              late_calls: int = 0, unstoppable: int = 0, spend: Mapping[str, Any] | None = None,
              judge_confidence: float | None = None) -> CampaignResult:
        """Compute metrics and verdicts for a finished campaign (``judge_confidence``: the confidence of rate and
        quantile verdicts when the campaign stopped where its plan had no look, e.g. at its spend cap)."""
        expectations = scenario.expectations
        conf = settings.look_confidence if judge_confidence is None else judge_confidence
        data = collect(records)  # every metric: the summaries need them all, the verdicts some
        # counts can only fail before the last look, so they spend no alpha early: full confidence for them
        verdicts = tuple(evaluate(e, data[e.metric], settings.confidence if data[e.metric].kind == "count" else conf,
                                  final=True) for e in expectations)
        return cls(scenario=scenario.name, seed=settings.seed, max_trials=settings.trials,
                   confidence=settings.confidence, profile=settings.faults.profile_name or "custom",
                   records=tuple(records),
                   metrics=FrozenMap(summarize_all(data, settings.confidence)), verdicts=verdicts,
                   stopped_early=stopped_early, smoke=settings.smoke, replay=settings.replay,
                   xfail=scenario.xfail, wall_s=wall_s, replay_command=replay_command, late_calls=late_calls,
                   unstoppable=unstoppable, spend=None if spend is None else FrozenMap(spend))

    # -- derived values -------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return len(self.records)

    @property
    def outcome_counts(self) -> FrozenMap[str, int]:
        counts = Counter(r.outcome for r in self.records)
        return FrozenMap({o: counts[o] for o in OUTCOMES if counts[o]})

    @property
    def failed_verdicts(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.verdict == "fail")

    @property
    def inconclusive_verdicts(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.verdict == "inconclusive")

    @property
    def passed(self) -> bool:
        """No failed verdict and, in smoke mode, the one trial completed with no violation."""
        if self.skipped is not None:
            return True
        if self.smoke or self.replay is not None:
            return all(r.ok for r in self.records) and not self.failed_verdicts
        return not self.failed_verdicts and not self.inconclusive_verdicts

    def worst_trials(self, limit: int = 5) -> list[TrialRecord]:
        """The trials most worth replaying: violations first, then errors and timeouts, then failures."""
        bad = [r for r in self.records if not r.ok]
        return sorted(bad, key=lambda r: (not r.violations, _SEVERITY.get(r.outcome, 9), r.index))[:limit]

    def replay_hint(self, record: TrialRecord) -> str:
        """The command that re-runs exactly this trial."""
        if self.replay_command:
            return self.replay_command.format(index=record.index, seed=self.seed, scenario=self.scenario)
        return f"run_campaign(<{self.scenario} scenario>, seed={self.seed}, replay={record.index})"

    def summary(self) -> str:
        """Several lines: outcome counts and one line per verdict."""
        counts = ", ".join(f"{k}={v}" for k, v in self.outcome_counts.items())
        head = (f"{self.scenario}: {self.n} trial(s) seed={self.seed} profile={self.profile}"
                f"{' (stopped early)' if self.stopped_early else ''}: {counts}")
        return "\n".join([head, *("  " + v.describe() for v in self.verdicts)])

    def check(self) -> CampaignResult:
        """Raise ``CampaignFailed`` (an AssertionError) unless every expectation passed; returns self."""
        __tracebackhide__ = True  # a failing test shows this message, not this function's source
        if self.passed:
            return self
        lines = [f"agent chaos campaign {self.scenario!r} did not pass "
                 f"({self.n} trial(s), seed={self.seed}, profile={self.profile}):"]
        if self.smoke:
            lines[0] = f"agent smoke trial of {self.scenario!r} did not pass (fault-free, seed={self.seed}):"
        for v in self.failed_verdicts + self.inconclusive_verdicts:
            lines.append(f"  {v.verdict.upper()}: {v.describe()}")
        worst = self.worst_trials()
        if worst:
            lines.append("worst trials (replay each with the command under it):")
            for r in worst:
                why = r.reason or ", ".join(r.violations)
                if r.violations and r.reason:
                    why += f"; violations: {', '.join(r.violations)}"
                lines.append(f"  {r.label}: {r.outcome}{': ' + why if why else ''}")
                lines.append(f"    {self.replay_hint(r)}")
        raise CampaignFailed("\n".join(lines))

    def to_dict(self, *, with_traces: bool = False) -> dict[str, Any]:
        """The campaign as plain JSON data (the report schema's ``campaigns[]`` entry): every trial's record,
        with its trace when the trial failed (or every trace, ``with_traces``)."""
        out = {
            "scenario": self.scenario, "seed": self.seed, "max_trials": self.max_trials, "trials": self.n,
            "stopped_early": self.stopped_early, "confidence": self.confidence, "profile": self.profile,
            "smoke": self.smoke, "replay": self.replay, "xfail": self.xfail, "passed": self.passed,
            "outcomes": dict(self.outcome_counts),
            "metrics": {name: m.to_dict() for name, m in self.metrics.items()},
            "verdicts": [v.to_dict() for v in self.verdicts],
            # a failing trial's trace is always there: what the agent did is the first thing one looks for
            "records": [r.to_dict(with_trace=with_traces or not r.ok) for r in self.records],
        }
        if self.late_calls:  # threads an agent left running called the harness after their trial ended
            out["late_calls"] = self.late_calls
        if self.unstoppable:  # workers given up on that still run (they depend on timing: only when they occur)
            out["unstoppable_workers"] = self.unstoppable
        if self.spend is not None:  # a capped campaign: what it spent, and whether the cap stopped it
            out["spend"] = dict(self.spend)
        blocked = sorted({h for r in self.records for h in r.extra.get("blocked_hosts", ())})
        if blocked:  # the hermetic network refused these hosts
            out["blocked_hosts"] = blocked
        return out

    def __repr__(self) -> str:
        verdicts = ", ".join(f"{v.key}={v.verdict}" for v in self.verdicts)
        return (f"CampaignResult({self.scenario!r}, n={self.n}, seed={self.seed}, "
                f"outcome_counts={self.outcome_counts}, verdicts=[{verdicts}])")

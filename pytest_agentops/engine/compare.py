"""Shadow-mode A/B: two agents (or two configurations) on identical trial seeds, compared pair by pair.

``compare_campaigns(baseline, candidate)`` runs trial i of both scenarios with the same campaign seed, so the
two trials of a pair get the same trial seed: the same fault plan, the same task, the same ``env.rng`` draws.
After every pair (in launch order) the paired tests of ``stats.paired`` are updated; the comparison stops at
once when a regression is found (Holm's procedure over the metrics at ``alpha``), or when every metric is
decided either way (a regression, or non-inferiority within its margin), or after ``trials`` pairs. The
campaigns run in blocks (both scenarios, block by block), and pairs past the stop are discarded.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .._validation import is_number
from ..errors import CampaignFailed, ConfigError, hide_own_frames
from ..precedence import resolve_run
from ..records import TrialRecord
from ..scenario import Scenario
from ..settings.faults import Faults
from ..settings.run import RunSettings, RunSource
from ..stats.binomial import binom_cdf, binom_sf
from ..stats.paired import BettingMartingale, MixtureTest, holm
from .assemble import CampaignLayers
from .scheduler import Runner
from .trial import within_trace_budget

__tracebackhide__ = hide_own_frames

#: what a paired metric reads off a trial record
_READ: dict[str, Callable[[TrialRecord], float]] = {
    "completion_rate": lambda r: float(r.outcome == "completed"),
    "tokens_per_task": lambda r: float(r.tokens),
    "cost_usd_per_task": lambda r: float(r.cost_usd),
}


@dataclass(frozen=True, slots=True)
class PairedFinding:
    """The decision on one metric of a paired comparison."""

    metric: str
    verdict: str  # "regression", "non-inferior", "inconclusive"
    pairs: int
    baseline: float  # the baseline's mean over the pairs used
    candidate: float
    p_regression: float  # anytime-valid p-value of "the candidate is not worse"
    p_non_inferior: float  # of "the candidate is worse by the margin or more"
    margin: str
    method: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "verdict": self.verdict, "pairs": self.pairs,
                "baseline": round(self.baseline, 10), "candidate": round(self.candidate, 10),
                # (p-values to 10 significant digits: 1.33e-14 rounded to 10 decimals was printed as p = 0)
                "p_regression": float(f"{self.p_regression:.10g}"),
                "p_non_inferior": float(f"{self.p_non_inferior:.10g}"),
                "margin": self.margin, "method": self.method, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class ComparisonResult:
    """A paired comparison of a candidate with a baseline on common seeds."""

    baseline: str
    candidate: str
    seed: int
    max_pairs: int
    pairs: int
    stopped_early: bool
    alpha: float
    findings: tuple[PairedFinding, ...]
    baseline_records: tuple[TrialRecord, ...] = field(repr=False)
    candidate_records: tuple[TrialRecord, ...] = field(repr=False)
    growth: float = 0.2
    #: (the baseline's, the candidate's) copy-paste commands that replay one trial, with ``{index}`` in place of
    #: its index (the pytest plugin's; None through the API)
    replay_commands: tuple[str, str] | None = field(default=None, repr=False)
    # ``checked``: ``.check()`` was called (the ``agent_chaos`` fixture warns of a regression never checked)
    _memo: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    @property
    def regressions(self) -> tuple[PairedFinding, ...]:
        return tuple(f for f in self.findings if f.verdict == "regression")

    @property
    def passed(self) -> bool:
        """No regression found (non-inferiority need not be shown for this)."""
        return not self.regressions

    @classmethod
    def not_run(cls, baseline: str, candidate: str, seed: int, max_pairs: int, alpha: float) -> ComparisonResult:
        """A comparison that was not made (a replay of one trial): no pair, no finding; passes ``check()``."""
        return cls(baseline, candidate, seed, max_pairs, 0, False, alpha, (), (), ())

    def _worse(self, b: TrialRecord, c: TrialRecord, regressed: set[str]) -> str:
        """How the candidate's trial ``c`` did worse than the baseline's ``b`` on a metric it regressed on, or ''."""
        if "completion_rate" in regressed and b.outcome == "completed" and c.outcome != "completed":
            return f"the candidate's trial {c.outcome}, the baseline's completed"
        for metric in ("tokens_per_task", "cost_usd_per_task"):
            if metric in regressed and _READ[metric](c) > (1 + self.growth) * _READ[metric](b):
                return f"the candidate's {metric} {_READ[metric](c):g} against the baseline's {_READ[metric](b):g}"
        return ""

    def worse_pairs(self, limit: int = 3) -> tuple[tuple[int, str], ...]:
        """The first ``limit`` pairs in which the candidate did worse on a metric it regressed on (the baseline's
        trial completed and the candidate's did not; it spent more than (1 + growth) x the baseline's tokens or
        cost), each as (index, how): the trials to replay side by side."""
        regressed = {f.metric for f in self.regressions}
        worse = []
        for b, c in zip(self.baseline_records, self.candidate_records, strict=True):
            if len(worse) == limit:
                break
            if how := self._worse(b, c, regressed):
                worse.append((c.index, how))
        return tuple(worse)

    def summary(self) -> str:
        head = (f"{self.candidate} vs {self.baseline}: {self.pairs} pair(s) on common seeds (seed={self.seed})"
                f"{' (stopped early)' if self.stopped_early else ''}")
        lines = [head]
        for f in self.findings:
            lines.append(f"  {f.metric}: {f.verdict} (baseline {f.baseline:.4g}, candidate {f.candidate:.4g}; "
                         f"p regression {f.p_regression:.3g}, p non-inferior {f.p_non_inferior:.3g}; {f.margin}"
                         f"{'; ' + f.detail if f.detail else ''})")
        if self.replay_commands is None or not (worse := self.worse_pairs()):
            return "\n".join(lines)
        if self.baseline == self.candidate:
            lines.append(f"  (both sides are named {self.baseline!r}: name the candidate apart, "
                         "Scenario.replace(name=...), to replay the pairs in which it did worse)")
            return "\n".join(lines)
        base, cand = self.replay_commands
        for index, how in worse:
            lines += [f"  pair {index}: {how}; replay them:", "    " + cand.format(index=index),
                      "    " + base.format(index=index)]
        return "\n".join(lines)

    def check(self) -> ComparisonResult:
        """Raise ``CampaignFailed`` when the candidate regressed on any metric; returns self."""
        self._memo["checked"] = True
        if self.passed:
            return self
        raise CampaignFailed("candidate regressed against the baseline on common seeds:\n" + self.summary())

    def to_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "candidate": self.candidate, "seed": self.seed,
                "max_pairs": self.max_pairs, "pairs": self.pairs, "stopped_early": self.stopped_early,
                "alpha": self.alpha, "passed": self.passed, "findings": [f.to_dict() for f in self.findings]}


class _Paired:
    """The paired tests of one metric, fed pair by pair.

    ``unit`` > 1: the pairs come in units that share their tasks (``Scenario.unit_trials``: pass^k groups), so
    the pairs of a unit are not independent (a task the candidate does worse on gives a whole unit of
    discordant pairs one way). Each complete unit's mean of the pairs' signed differences (in [-1, 1]) is then
    one value, and two betting martingales on those means take the place of the pair-by-pair tests."""

    def __init__(self, metric: str, horizon: int, margin: float, growth: float, unit: int = 1):
        self.metric = metric
        self.margin, self.growth = margin, growth
        self.unit = unit
        self.pairs = 0
        self.sum_b = self.sum_c = 0.0
        self._open: list[tuple[float, float]] = []  # (regression, non-inferiority) values of the unit being filled
        self.regression: MixtureTest | BettingMartingale
        self.non_inferior: MixtureTest | BettingMartingale
        if unit > 1:  # against E[the signed difference] on the null's side of 0 (or of -margin)
            self.regression = BettingMartingale(0.5)
            self.non_inferior = BettingMartingale((1 - margin) / 2 if metric == "completion_rate" else 0.5)
        elif metric == "completion_rate":  # McNemar on discordant pairs; non-inferiority by betting on c - b
            self.regression = MixtureTest(below=True, horizon=horizon)  # success: the candidate's discordant win
            self.non_inferior = BettingMartingale((1 - margin) / 2)
        else:  # sign tests: more than half of the differing pairs grew / grew past (1 + growth)
            self.regression = MixtureTest(below=False, horizon=horizon)  # success: the candidate spent more
            self.non_inferior = MixtureTest(below=True, horizon=horizon)  # success: spent more than (1+g) x

    def add(self, b: float, c: float) -> None:
        self.pairs += 1
        self.sum_b += b
        self.sum_c += c
        if self.unit > 1:
            self._add_to_unit(b, c)
            return
        if self.metric == "completion_rate":
            if b != c:
                self.regression.add(c > b)  # type: ignore[arg-type]
            self.non_inferior.add((c - b + 1) / 2)
        else:
            if c != b:
                self.regression.add(c > b)  # type: ignore[arg-type]
            limit = (1 + self.growth) * b
            if c != limit:
                self.non_inferior.add(c > limit)  # type: ignore[arg-type]

    def _add_to_unit(self, b: float, c: float) -> None:
        """One pair of the unit being filled; a complete unit's means go to the two martingales (each in [0, 1],
        above its null's mean exactly when the alternative holds)."""
        if self.metric == "completion_rate":  # worse: E[b - c] > 0; non-inferior: E[c - b] > -margin
            self._open.append(((b - c + 1) / 2, (c - b + 1) / 2))
        else:  # spends more: E[sign(c - b)] > 0; non-inferior: E[sign(c - (1 + g) b)] < 0
            limit = (1 + self.growth) * b
            self._open.append(((_sign(c - b) + 1) / 2, (1 - _sign(c - limit)) / 2))
        if len(self._open) == self.unit:
            self.regression.add(sum(r for r, _ in self._open) / self.unit)
            self.non_inferior.add(sum(n for _, n in self._open) / self.unit)
            self._open = []

    def final_p(self, exact: bool) -> tuple[float, float]:
        """(p regression, p non-inferior) when the comparison ends: at one look (``exact``) the exact binomial
        p-values of the pair-by-pair counts, else (and in units) the martingales' anytime-valid ones."""
        reg, ni = self.regression, self.non_inferior
        p_reg = self.exact_p(reg) if exact and isinstance(reg, MixtureTest) else reg.p_value
        p_ni = self.exact_p(ni) if exact and isinstance(ni, MixtureTest) else ni.p_value
        return p_reg, p_ni

    @staticmethod
    def exact_p(test: MixtureTest) -> float:
        """One look: the exact one-sided binomial p-value of the test's count against 1/2."""
        if test.n == 0:
            return 1.0
        if test.below:  # few successes are evidence: P(X <= k)
            return binom_cdf(test.k, test.n, 0.5)
        return binom_sf(test.k - 1, test.n, 0.5) if test.k else 1.0  # P(X >= k)

    @property
    def margin_text(self) -> str:
        if self.metric == "completion_rate":
            return f"non-inferior within {self.margin:g}"
        return f"non-inferior within +{self.growth:.0%}"

    @property
    def method(self) -> str:
        if self.unit > 1:
            what = "c - b" if self.metric == "completion_rate" else "sign(c - b)"
            return (f"betting on the mean of {what} over units of {self.unit} pairs that share their tasks (pass^k "
                    "groups: a unit is one value)")
        if self.metric == "completion_rate":
            return "sequential McNemar (mixture SPRT on discordant pairs); betting on c - b for the margin"
        return "sequential sign tests on the pairs that differ"


def feed_pair(tests: list[_Paired], b: TrialRecord, c: TrialRecord, alpha: float) -> bool:
    """One more pair for every metric's tests; whether the comparison may stop now (a regression found by Holm's
    procedure at ``alpha``, or every metric decided either way)."""
    for test in tests:
        test.add(_READ[test.metric](b), _READ[test.metric](c))
    regressions = holm([t.regression.p_value for t in tests], alpha)
    non_inferior = holm([t.non_inferior.p_value for t in tests], alpha)
    return any(regressions) or all(r or n for r, n in zip(regressions, non_inferior, strict=True))


def paired_settings(baseline: RunSettings, candidate: RunSettings) -> RunSettings:
    """The candidate's settings for a comparison: the baseline's seed, trials, faults, confidence, concurrency and
    early stopping (so that its trials pair with the baseline's), and its own isolation, spend cap and cassettes
    (the baseline's made an isolated candidate run in-process, and dropped a cap given to it alone)."""
    return dataclasses.replace(candidate, seed=baseline.seed, trials=baseline.trials, faults=baseline.faults,
                               confidence=baseline.confidence, concurrency=baseline.concurrency,
                               early_stop=baseline.early_stop, replay=baseline.replay, smoke=baseline.smoke,
                               allowed_faults=baseline.allowed_faults)


def _feed_pairs(pairs: Iterator[tuple[TrialRecord, TrialRecord]], tests: list[_Paired], b_records: list[TrialRecord],
                c_records: list[TrialRecord], settings: RunSettings, max_pairs: int, alpha: float) -> bool:
    """Take the pairs in order into ``b_records``/``c_records`` (each side's traces within one budget, counted in
    pair order) and the tests; whether the comparison stopped early (``feed_pair``)."""
    kept = [0, 0]  # the trace events each side's records keep
    budget = not settings.smoke  # (a smoke comparison's one pair keeps its traces, as a smoke run does)
    for b, c in pairs:
        if budget:
            b = within_trace_budget(b, kept[0])
            c = within_trace_budget(c, kept[1])
            kept[0] += len(b.trace)
            kept[1] += len(c.trace)
        b_records.append(b)
        c_records.append(c)
        if feed_pair(tests, b, c, alpha) and settings.early_stop and len(b_records) < max_pairs:
            return True
    return False


def check_comparison(baseline: Any, candidate: Any, alpha: Any, margin: Any, growth: Any) -> None:
    """A comparison's arguments, checked before anything is resolved or run: a ``ConfigError`` naming the one that
    is wrong (a string for a Scenario, or for a number, failed deep in the settings or the tests)."""
    for name, s in (("baseline", baseline), ("candidate", candidate)):
        if not isinstance(s, Scenario):
            raise ConfigError(f"compare: {name}={s!r} must be a Scenario")
    if not is_number(alpha) or not 0 < alpha < 1:
        raise ConfigError(f"compare: alpha={alpha!r} must be a number in (0, 1)")
    if not is_number(margin) or not 0 <= margin < 1 or not is_number(growth) or not 0 <= growth < math.inf:
        # (NaN fails every comparison)
        raise ConfigError(f"compare: margin={margin!r} must be a number in [0, 1) and growth={growth!r} a finite "
                          "number >= 0")


def compare_campaigns(baseline: Scenario, candidate: Scenario, *, seed: int | None = None, trials: int | None = None,
                      faults: Faults | None = None, profile: str | None = None, concurrency: int | None = None,
                      alpha: float = 0.05, margin: float = 0.05, growth: float = 0.2,
                      metrics: tuple[str, ...] = ("completion_rate", "tokens_per_task", "cost_usd_per_task"),
                      early_stop: bool = True, block: int | None = None,
                      _settings: tuple[RunSettings, RunSettings] | None = None) -> ComparisonResult:
    """Run ``baseline`` and ``candidate`` on common seeds and decide, per metric, regression or non-inferiority.

    ``alpha`` bounds the chance of any false regression over the metrics (Holm), and of any false
    non-inferiority; ``margin`` is the completion drop still called non-inferior, ``growth`` the relative
    token/cost growth. The settings (seed, trials, faults) are the baseline's, resolved as for
    ``run_campaign``; the candidate uses the same.
    """
    check_comparison(baseline, candidate, alpha, margin, growth)
    unknown = [m for m in metrics if m not in _READ]
    if unknown:
        raise ConfigError(f"compare: unknown paired metric(s) {unknown}; choose from {sorted(_READ)}")
    if _settings is None:
        source = RunSource("arguments", seed=seed, trials=trials, profile=profile, faults=faults,
                           concurrency=concurrency, early_stop=early_stop)
        base_settings = resolve_run(baseline, (source,))
        cand_settings = paired_settings(base_settings, resolve_run(candidate, (source,)))
    else:
        base_settings, cand_settings = _settings
    max_pairs = base_settings.trials
    # pairs of trials that share their tasks (pass^k groups, in either scenario) are judged a unit at a time
    unit = math.lcm(baseline.unit_trials, candidate.unit_trials)
    tests = [_Paired(m, max_pairs, margin, growth, unit) for m in metrics]
    size = block or max(25, 4 * base_settings.concurrency)
    b_records: list[TrialRecord] = []
    c_records: list[TrialRecord] = []

    # (each side's layers kept across its blocks: one campaign a side, one spend ledger, as one run_campaign has)
    sides: list[CampaignLayers] = []

    def pairs() -> Iterator[tuple[TrialRecord, TrialRecord]]:  # run block by block, as far as they are read
        for start in range(0, max_pairs, size):
            indices = list(range(start, min(start + size, max_pairs)))
            blocks = []
            for scenario, settings, layers in ((baseline, base_settings, sides[0]),
                                               (candidate, cand_settings, sides[1])):
                runner = Runner(scenario, settings, trace_budget=False, layers=layers)
                block, _ = runner.run(indices)
                if runner.interrupted:  # Ctrl-C: the comparison ends with it (its short block is no cap's cut)
                    raise KeyboardInterrupt
                blocks.append(block)
            b_block, c_block = blocks
            yield from zip(b_block, c_block, strict=False)  # (the shorter: the pairs both sides have)
            if len(b_block) < len(indices) or len(c_block) < len(indices):
                return  # a side's spend cap cut its block short: the comparison stops at the pairs both sides have

    try:
        sides.append(CampaignLayers(baseline, base_settings))
        sides.append(CampaignLayers(candidate, cand_settings))
        stopped = _feed_pairs(pairs(), tests, b_records, c_records, base_settings, max_pairs, alpha)
    finally:
        for layers in sides:
            layers.close()
    used = len(b_records)
    cut = not stopped and used < max_pairs  # (ended short of its pairs, its tests undecided: a spend cap's cut)
    stopped = stopped or cut
    # a full run (no early stop) looks once: the exact binomial tests (McNemar, sign) on the pairs that differ; one
    # a spend cap cut keeps the sequential tests (where it stopped depends on what the trials cost)
    exact = not base_settings.early_stop and not cut
    p_reg, p_ni = (list(ps) for ps in zip(*(t.final_p(exact) for t in tests), strict=True))
    regressions = holm(p_reg, alpha)
    non_inferior = holm(p_ni, alpha)
    findings = []
    for test, reg, ni, pr, pn in zip(tests, regressions, non_inferior, p_reg, p_ni, strict=True):
        verdict = "regression" if reg else "non-inferior" if ni else "inconclusive"
        n = max(test.pairs, 1)
        method = test.method if not exact else test.method.replace("sequential ", "exact ").replace(
            "(mixture SPRT on discordant pairs)", "(binomial test on discordant pairs)")
        findings.append(PairedFinding(test.metric, verdict, test.pairs, test.sum_b / n, test.sum_c / n, pr, pn,
                                      test.margin_text, method))
    return ComparisonResult(baseline.name, candidate.name, base_settings.seed, max_pairs, used, stopped, alpha,
                            tuple(findings), tuple(b_records), tuple(c_records), growth)


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)

"""Judging expectations trial by trial, in launch order: the sequential verdicts of a campaign.

One ``Judge`` per expectation consumes the campaign's trials in launch order (``add``) and knows at every
trial whether its expectation is decided (``state``). The engine stops a campaign as soon as every judge is
decided, or at once when one fails; ``CampaignResult.build`` replays the trials used through fresh judges for
the verdicts. Without early stopping (or for a replay or smoke run) a judge looks once, after the last trial,
with the one-look tests of ``expect.evaluate``.

What each statistic is judged by (DESIGN.md "Statistics we stand behind"):

* ``rate``, ``quantile`` (its exceedance indicator) and ``pass^k`` (one unit per group of k trials of a task):
  ``stats.rate_rule``, checked after every unit, exact error rates;
* ``mean`` (a share inside each trial, e.g. of its tool calls; or a distribution's mean under a declared
  cap): two betting tests, valid at every trial whatever the distribution (``stats.BettingTest``);
* ``count``: zero tolerance, failed at the first violation past the allowance, passed only after the last trial.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from . import stats
from .errors import ConfigError, hide_own_frames
from .expect import (
    DEFAULT_POWER,
    Expectation,
    Verdict,
    VerdictName,
    _holds,
    count_verdict,
    evaluate,
    rerun_note,
    rule_errors,
    success_threshold,
)
from .metrics import REGISTRY, MetricData

__tracebackhide__ = hide_own_frames

#: How far ahead a judge searches its boundaries for the distances the scheduler launches by: more than any
#: concurrency (at most 1,000) can use, and short enough that a never-deciding side costs little to search.
LOOK_AHEAD = 4096
#: Beyond this many units the report says no resolution (the share a rule decides with power): its search runs
#: about 28 dynamic programmes over the whole rule (7 s at 50,000 units).
RESOLUTION_LIMIT = 10_000
#: Beyond this many values a quantile's running estimate is not shown (``Judge.running``: a sort per redraw).
RUNNING_QUANTILE_CAP = 50_000

if TYPE_CHECKING:
    from .records import TrialRecord


@functools.lru_cache(maxsize=256)
def resolution(rule: stats.RateRule, power: float = DEFAULT_POWER) -> tuple[float | None, float | None]:
    """(pass_rate, fail_rate): the share of successes from which the rule passes, and up to which it fails,
    with probability >= power within its maximum (None when no share does); said in the report for rules
    without a declared fail level (not for rules of more than ``RESOLUTION_LIMIT`` units)."""

    def solve(get, lo: float, hi: float, increasing: bool) -> float | None:
        if (get(hi) if increasing else get(lo)) < power:
            return None
        for _ in range(14):  # to 1/16384 of the interval: a figure for reading
            mid = 0.5 * (lo + hi)
            ok = get(mid) >= power
            if ok == increasing:
                hi = mid
            else:
                lo = mid
        return hi if increasing else lo

    t = rule.threshold
    if not 0 < t < 1 or rule.max_n > RESOLUTION_LIMIT:  # beyond it ~28 dynamic programmes take seconds
        return None, None
    pass_rate = solve(lambda p: power if rule.decides_with(p, power, "pass") else 0.0, t, 1.0, True)
    fail_rate = solve(lambda p: power if rule.decides_with(p, power, "fail") else 0.0, 0.0, t, False)
    return pass_rate, fail_rate



def _sequence(records: Iterable[TrialRecord]) -> Sequence[TrialRecord]:
    """``records`` as a sequence: a list or tuple as it is, a campaign's ``RecordStore`` too (read a record at a
    time, and its columns where a judge needs one field: never all its records made at once)."""
    if isinstance(records, (list, tuple)) or hasattr(records, "column"):
        return records  # type: ignore[return-value]
    return list(records)

class Judge:
    """The sequential state of one expectation over a campaign's trials (in launch order)."""

    def __init__(self, exp: Expectation, *, max_trials: int, confidence: float, sequential: bool):
        self.exp = exp
        self.defn = REGISTRY[exp.metric]
        self.max_trials = max_trials
        self.confidence = confidence
        self.sequential = sequential
        self.alpha, self.beta = rule_errors(exp, confidence)
        self.trials = 0  # trials consumed
        self.state: VerdictName | None = None  # decided so far ("pass"/"fail"), None while going on
        self.decided_at: int | None = None  # units when decided
        self.decided_trials: int | None = None  # trials when decided

    # -- feeding ----------------------------------------------------------------------------------------
    def add(self, record: TrialRecord) -> None:
        self.trials += 1
        self._add(record)

    def add_all(self, records: Iterable[TrialRecord]) -> Judge:
        """``add`` each record in turn (a judge of its own kind may take them all at once, to the same state)."""
        for record in records:
            self.add(record)
        return self

    def _add(self, record: TrialRecord) -> None:
        raise NotImplementedError

    def _decide(self, state: VerdictName, units: int) -> None:
        if self.state is None:
            self.state, self.decided_at, self.decided_trials = state, units, self.trials

    @property
    def decided(self) -> bool:
        return self.state is not None

    @property
    def failed(self) -> bool:
        return self.state == "fail"

    def distances(self) -> tuple[float, float]:
        """(fewest further trials before this judge could fail, before it could be decided either way): lower
        bounds the scheduler uses to launch ahead without wasting trials past a possible stop."""
        if self.state == "fail":
            return 0, 0
        if self.state == "pass":
            return math.inf, 0
        return 1, 1

    def running(self) -> tuple[float | None, float | None, str]:
        """(estimate, bound, bound side) so far, for a live progress display: cheap (no sequential error rates,
        no planning), and it changes nothing in the judge; bound None where the judge has no cheap one."""
        raise NotImplementedError

    # -- the verdict ------------------------------------------------------------------------------------
    def verdict(self, *, complete: bool, stopped_by: str = "") -> Verdict:
        """The verdict after the trials consumed: ``complete`` when they are all ``max_trials`` (only then can
        a count pass, and does an undecided verdict get a planning figure); ``stopped_by`` names the
        expectation whose failure stopped the campaign early."""
        raise NotImplementedError

    def _stopped_note(self, stopped_by: str) -> str:
        return (f"undecided when the campaign stopped after {self.trials} trial(s) at the failure of {stopped_by}"
                if stopped_by else "")


_OUTCOME = operator.attrgetter("outcome")
#: Units a rule's first decision is searched in at once (``RateJudge._units``).
_WINDOW = 4096


def _window(bounds: Sequence[int], lo: int, hi: int) -> np.ndarray:
    """``bounds[lo:hi]`` as an array (a lazy ``stats.sequential.Bounds`` is read only there)."""
    if isinstance(bounds, (tuple, list)):
        return np.asarray(bounds[lo:hi], dtype=np.int64)
    return np.fromiter((bounds[i] for i in range(lo, hi)), dtype=np.int64, count=hi - lo)


def _unit_name(exp: Expectation) -> str:
    if exp.statistic == "pass^k":
        return f"pass^{exp.group} group"
    return REGISTRY[exp.metric].counting_unit


def _plural(unit: str) -> str:
    """``tool call`` -> ``tool calls``; ``trial with an unrecovered fault`` -> ``trials with an unrecovered fault``;
    ``trial that called a rule's tools`` -> ``trials that called a rule's tools``."""
    found = re.search(r" (?:with|that) ", unit)
    head, rest = (unit[:found.start()], unit[found.start():]) if found else (unit, "")
    return f"{head}s{rest}"


def _too_many_chances(exp: Expectation, counting_unit: str, chances: int) -> ConfigError:
    return ConfigError(f"metric {exp.metric!r} gave {chances} chances in one trial but counts {counting_unit!r}s; "
                       "declare MetricDef(counting_unit=...) as what it counts (e.g. 'tool call') so that it is "
                       "judged with the trial as the unit")


class RateJudge(Judge):
    """A rate of trials, a quantile's exceedances, or pass^k: successes among units, ``stats.rate_rule``."""

    def __init__(self, exp: Expectation, **kw):
        super().__init__(exp, **kw)
        self.k = 0  # successes (in the ">= t" orientation)
        self.n = 0  # units
        self.events = 0  # rate: the metric's own successes (its estimate is events / n)
        self.values: list[float] = []  # quantile: the values seen
        self._group: list[bool] = []
        t, f = success_threshold(exp)
        self.t, self.f = t, f
        units = max_trials = self.max_trials
        if exp.statistic == "pass^k":
            units = max_trials // exp.group
        self.max_units = max(units, 1)
        self.rule = stats.rate_rule(t, max_n=self.max_units, alpha=self.alpha, fail_level=f, beta=self.beta,
                                    strict=exp.op in (">", "<") and exp.statistic != "quantile") \
            if self.sequential else None

    def _unit(self, success: bool) -> None:
        self.n += 1
        self.k += success
        if self.rule is not None and self.state is None and self.n <= self.max_units:
            decision = self.rule.decide(self.k, self.n)
            if decision is not None:
                self._decide(decision, self.n)  # type: ignore[arg-type]

    def distances(self) -> tuple[float, float]:
        if self.state is not None or self.rule is None:
            return super().distances() if self.state is not None else (math.inf, self.max_trials - self.trials)
        rule, n, k = self.rule, self.n, self.k
        ahead = min(rule.max_n - n, LOOK_AHEAD)  # lower bounds: a search cut at LOOK_AHEAD answers "more"
        beyond = math.inf if ahead == rule.max_n - n else ahead + 1
        fail = next((m for m in range(1, ahead + 1) if rule.fail_at[n + m] >= k), beyond)
        win = next((m for m in range(1, ahead + 1) if rule.pass_at[n + m] <= k + m), beyond)
        return fail, min(fail, win)

    def add_all(self, records: Iterable[TrialRecord]) -> Judge:
        """Every record at once: the units they make, then the first one at which the rule decides (the state
        ``add`` record by record reaches, the error it raises included)."""
        records = _sequence(records)
        exp = self.exp
        if exp.statistic == "pass^k" or not records:
            return super().add_all(records)
        base = self.trials
        outcome = getattr(self.defn.extract, "_agentops_outcome", None)
        if exp.statistic == "rate" and outcome is not None:  # ``outcome_rate``: one unit per trial
            outcomes = records.column("outcome") if hasattr(records, "column") else map(_OUTCOME, records)
            events = list(map(bool, map(operator.eq, outcomes, itertools.repeat(outcome))))
            self.events += sum(events)
            self._units(events if exp.upward else [not e for e in events], range(len(records)), base + 1)
            self.trials = base + len(records)
            return self
        got = list(map(self.defn.extract, records))
        if exp.statistic == "quantile":
            at = [i for i, v in enumerate(got) if v is not None]
            values = [float(got[i]) for i in at]
            self.values.extend(values)
            op, threshold = exp.op, exp.threshold
            self._units([_holds(v, op, threshold) for v in values], at, base + 1)
            self.trials = base + len(records)
            return self
        successes, chances = zip(*got, strict=False)
        if max(chances, default=0) > 1:  # the records before the first such one, then its error
            first = next(i for i, c in enumerate(chances) if c > 1)
            self.add_all(records[:first])
            self.add(records[first])
        at = [i for i, c in enumerate(chances) if c]
        events = [bool(successes[i]) for i in at]
        self.events += sum(events)
        self._units(events if exp.upward else [not successes[i] for i in at], at, base + 1)
        self.trials = base + len(records)
        return self

    def _units(self, units: list[bool], at: Sequence[int], first: int) -> None:
        """Units in order (successes in the ">=" orientation), the unit j made at trial ``at[j] + first``: what
        ``_unit`` gives them one by one, the rule's first decision searched a window of units at a time."""
        rule = self.rule
        if rule is not None and self.state is None and self.n < self.max_units:
            n0, k0 = self.n, self.k
            reach = min(len(units), self.max_units - n0)  # the units within the rule's maximum
            ks = np.cumsum(np.asarray(units[:reach], dtype=np.int64)) + k0
            for lo in range(0, reach, _WINDOW):
                hi = min(reach, lo + _WINDOW)
                k = ks[lo:hi]
                passed = k >= _window(rule.pass_at, n0 + lo + 1, n0 + hi + 1)
                failed = k <= _window(rule.fail_at, n0 + lo + 1, n0 + hi + 1)
                either = np.flatnonzero(passed | failed)
                if either.size:
                    j = int(either[0])
                    self.trials, trials_now = at[lo + j] + first, self.trials
                    self._decide("pass" if passed[j] else "fail", n0 + lo + j + 1)
                    self.trials = trials_now
                    break
        self.n += len(units)
        self.k += sum(units)

    def _add(self, record: TrialRecord) -> None:
        exp = self.exp
        if exp.statistic == "quantile":
            value = self.defn.extract(record)
            if value is None:
                return
            value = float(value)
            self.values.append(value)
            self._unit(_holds(value, exp.op, exp.threshold))
            return
        successes, chances = self.defn.extract(record)
        if chances > 1:
            raise _too_many_chances(exp, self.defn.counting_unit, chances)
        if exp.statistic == "pass^k":
            self._group.append(bool(successes) if chances else False)
            if len(self._group) == exp.group:
                passed = all(self._group)
                self.events += passed
                self._unit(passed if exp.upward else not passed)  # (a '<=' rate counts the groups that did not)
                self._group = []
            return
        if not chances:
            return
        self.events += bool(successes)
        self._unit(bool(successes) if exp.upward else not successes)

    def running(self) -> tuple[float | None, float | None, str]:
        if self.exp.statistic != "quantile":  # Clopper-Pearson: cheap at any n
            shown = evaluate(self.exp, self._data(), self.confidence, final=False)
            return shown.estimate, shown.bound, shown.bound_side
        if len(self.values) > RUNNING_QUANTILE_CAP:
            return None, None, ""  # sorting this many values at every redraw would cost more than it shows
        # the bound on the pass side at 1 - beta, as the table shows it for an undecided quantile (one sort)
        upward = self.exp.upward
        estimate, bound = stats.sorted_quantile_and_bound(np.sort(np.asarray(self.values, dtype=float)),
                                                          self.exp.quantile or 0.5, 1 - self.beta, upper=not upward)
        return estimate, bound, ("lower" if upward else "upper") if estimate is not None else ""

    def _data(self) -> MetricData:
        if self.exp.statistic == "quantile":
            return MetricData(self.exp.metric, "distribution", 0, len(self.values), tuple(self.values))
        return MetricData(self.exp.metric, "rate", self.events, self.n)

    def verdict(self, *, complete: bool, stopped_by: str = "") -> Verdict:
        data = self._data()
        unit = _unit_name(self.exp)
        if self.rule is None:  # one look, after the last trial
            one = evaluate(self.exp, data, self.confidence, final=complete)
            return _replace(one, counting_unit=unit, note=one.note or self._stopped_note(stopped_by))
        shown = evaluate(self.exp, data, self.confidence, final=False)  # estimate and bounds for reading
        verdict: VerdictName = self.state or "inconclusive"
        estimate, bound, side, wilson = shown.estimate, shown.bound, shown.bound_side, shown.wilson
        if verdict != shown.verdict and self.n:
            estimate, bound, side, wilson = _display(self.exp, data, verdict, self.confidence, self.beta)
        rule = self.rule
        false_pass, false_fail = rule.error_rates()
        if self.exp.fail_level is None:
            text = (f"checked after every {unit} up to {self.max_units} (mixture SPRT at the threshold: false pass "
                    f"and false fail <= {self.alpha:.3g})" + self._resolution_text())
        else:
            text = (f"checked after every {unit} up to {self.max_units} (truncated SPRT, '{self.exp.expression}': "
                    f"false fail <= {self.alpha:.3g} when the expectation holds, false pass <= {self.beta:.3g} at "
                    "the fail level or beyond)")
        note, needed = "", None
        if verdict == "inconclusive":
            if stopped_by:
                note = self._stopped_note(stopped_by)
            elif complete:
                share = self.k / self.n if self.n else None
                per_unit = 1.0 if self.exp.statistic == "pass^k" or not self.n else self.trials / self.n
                needed, note = rerun_note(self.exp, share, self.n, sequential=True, confidence=self.confidence,
                                          trials_per_unit=per_unit)
                first = rule.first_pass()
                if self.exp.statistic == "quantile" and first is not None and self.n < first:
                    note = (f"this rule passes a p{(self.exp.quantile or 0.5) * 100:g} after at least {first} "
                            f"trials with a value (have {self.n}); " + note)
        return Verdict(key=self.exp.key, expression=self.exp.expression, verdict=verdict, estimate=estimate,
                       bound=bound, bound_side=side, threshold=self.exp.threshold, n=self.n,
                       confidence=self.confidence, method=rule.method, note=note, trials_needed=needed,
                       wilson=wilson, counting_unit=unit, rule=text, false_pass=false_pass, false_fail=false_fail,
                       fail_level=self.exp.fail_level,
                       power=(self.exp.power or DEFAULT_POWER) if self.exp.fail_level is not None else None,
                       decided_at=self.decided_at)

    def _resolution_text(self) -> str:
        if self.exp.fail_level is not None or self.rule is None:
            return ""
        pass_rate, fail_rate = resolution(self.rule)
        what = "share of successes" if self.exp.statistic != "quantile" else "share within the threshold"
        parts = []
        if fail_rate is not None:  # (rounded away from the threshold: the claim holds for the printed figures)
            parts.append(f"fails a {what} <= {_three_digits(fail_rate, up=False):.3g}")
        if pass_rate is not None:
            parts.append(f"passes one >= {_three_digits(pass_rate, up=True):.3g}")
        if not parts:
            return "; no fail level declared"
        return (f"; no fail level declared: within {self.max_units} {_plural(_unit_name(self.exp))} it "
                f"{' and '.join(parts)} with probability >= {DEFAULT_POWER:.0%}")


def _three_digits(x: float, *, up: bool) -> float:
    """``x`` to three significant digits, rounded up or down (a printed 0.952 for 0.95244 overstated a power)."""
    if x <= 0 or not math.isfinite(x):
        return x
    scale = 10.0 ** (2 - math.floor(math.log10(x)))
    scaled = x * scale
    return (math.ceil(scaled - 1e-9) if up else math.floor(scaled + 1e-9)) / scale


def _display(exp: Expectation, data: MetricData, verdict: str, confidence: float, beta: float
             ) -> tuple[float | None, float | None, str, float | None]:
    """Estimate and the fixed-sample exact bound on the side of ``verdict`` (for reading; the sequential rule
    decided)."""
    upward = exp.upward
    fail = verdict == "fail"
    level = confidence if fail else 1 - beta
    lower_side = (upward and not fail) or (not upward and fail)
    if data.kind == "rate":
        bound = stats.clopper_pearson_lower(data.k, data.n, level) if lower_side else \
            stats.clopper_pearson_upper(data.k, data.n, level)
        wilson = stats.wilson_lower(data.k, data.n, level) if lower_side else stats.wilson_upper(data.k, data.n, level)
        return data.k / data.n, bound, "lower" if lower_side else "upper", wilson
    q = exp.quantile or 0.5
    estimate = stats.quantile(data.samples, q)
    bound = stats.quantile_lower_bound(data.samples, q, level) if lower_side else \
        stats.quantile_upper_bound(data.samples, q, level)
    return estimate, bound, "lower" if lower_side else "upper", None


def _replace(verdict: Verdict, **changes: object) -> Verdict:
    import dataclasses

    return dataclasses.replace(verdict, **changes)


class _BettingJudge(Judge):
    """What the betting judges share: the expectation as "mean >= high" (fail side) and "mean > low" (pass side)
    on values in [0, 1], a per-trial mean's reading under its cap, and the verdict's bound, note and fields."""

    def __init__(self, exp: Expectation, **kw):
        super().__init__(exp, **kw)
        self.scale = 1.0  # a mean's cap (its values are scaled by it)
        self.over_cap = 0  # values outside [0, cap]
        self.clipped = 0  # of which clipped into it (on the side that makes a pass harder): no fail is claimed

    def _decide(self, verdict: VerdictName, at: int) -> None:
        """As ``Judge._decide``, but no fail is claimed once a value was clipped into the cap's range: clipping
        keeps a pass valid (it only makes one harder) but not a fail (a '<=' mean of values -0.2 or 0.7, true
        mean 0.25, failed '<= 0.25' in 92.5% of campaigns, stated 5%, when the negatives were raised to 0)."""
        if verdict != "fail" or not self.clipped:
            super()._decide(verdict, at)

    def _mean_zone(self) -> None:
        """``scale``, ``low`` and ``high`` of a mean: values scaled by the cap, in the ">=" orientation (1 - x for
        "<="), pass against the fail level, fail against the threshold."""
        exp = self.exp
        self.scale = exp.cap if exp.cap is not None else 1.0
        t = exp.threshold / self.scale
        f = None if exp.fail_level is None else exp.fail_level / self.scale
        if not exp.upward:
            t, f = 1 - t, (None if f is None else 1 - f)
        self.low, self.high = (t if f is None else f), t

    def _read_mean(self, record: TrialRecord, values: list[float]) -> float | None:
        """A trial's value for a mean, in [0, 1] in the ">=" orientation, its value as the metric reads it added
        to ``values``; None when it has none, or when it lies outside [0, cap] on the side that clipping would
        help the expectation (above the cap of a '<=' mean, below 0 for a '>=' mean, or NaN): the verdict then
        fails (such a mean cannot be shown). A value outside on the other side is clipped (which only makes
        the verdict harder to pass: a review found a '>=' mean passing 42-100% of campaigns, stated 5%, when
        negative values were raised to 0)."""
        upward = self.exp.upward
        if self.defn.kind == "rate":  # a share inside each trial (tool_success_rate): in [0, 1] as it is
            successes, chances = self.defn.extract(record)
            if not chances:
                return None
            share = successes / chances
            values.append(share)
            return share if upward else 1 - share
        raw = self.defn.extract(record)
        if raw is None:
            return None
        value = float(raw)
        if value > self.scale or value < 0 or math.isnan(value):
            self.over_cap += 1
            if math.isnan(value) or (value < 0 if upward else value > self.scale):
                values.append(value)
                Judge._decide(self, "fail", self._failing_at())  # (the declared range broken: a fact)
                return None
            self.clipped += 1
        value = min(max(value, 0.0), self.scale) / self.scale
        values.append(value * self.scale)
        return value if upward else 1 - value

    def _failing_at(self) -> int:
        """The units so far, the one being read included (a '<=' mean beyond its cap fails there)."""
        raise NotImplementedError

    def _bound(self, own: list[float], verdict: VerdictName) -> tuple[float, str]:
        """The anytime-valid bound on the side of ``verdict`` from values in the metric's own orientation."""
        level = self.confidence if verdict == "fail" else 1 - self.beta
        lower_side = self.exp.upward != (verdict == "fail")
        bound = (stats.betting_lower if lower_side else stats.betting_upper)(own, level) * self.scale
        return bound, "lower" if lower_side else "upper"

    def _note(self, verdict: VerdictName, complete: bool, stopped_by: str, rerun: list[float], *,
              oriented: bool = False, per_unit: int = 1) -> tuple[str, int | None]:
        """(note, trials needed): values beyond the cap, why it stopped undecided, or a rerun's plan drawn from
        ``rerun`` (one value per ``per_unit`` trials)."""
        note, needed = "", None
        if self.over_cap:
            note = f"{self.over_cap} value(s) outside [0, {self.scale:g}], the declared cap's range"
            if self.clipped and verdict != "fail":
                note += f" ({self.clipped} clipped into it: no fail is claimed)"
        if verdict == "inconclusive":
            if stopped_by:
                note = self._stopped_note(stopped_by)
            elif complete and rerun:
                units, plan = _mean_rerun(rerun, self.exp, self.low, self.high, self.alpha, self.beta,
                                          self.sequential, oriented=oriented)
                needed = None if units is None else units * per_unit
                if units is not None and per_unit != 1:
                    plan = plan.replace(f"trials={units}", f"trials={needed}")
                note = "; ".join(x for x in (note, plan) if x)
        return note, needed

    def _verdict(self, verdict: VerdictName, n: int, estimate: float | None, bound: float | None, side: str,
                 note: str, needed: int | None, unit: str, rule: str) -> Verdict:
        exp = self.exp
        if exp.cap is not None:  # (a bound no sample can show: a value beyond it that has not come up yet)
            rule += f"; the error rates assume every value in [0, {exp.cap:g}], the declared cap"
        return Verdict(key=exp.key, expression=exp.expression, verdict=verdict, estimate=estimate, bound=bound,
                       bound_side=side, threshold=exp.threshold, n=n, confidence=self.confidence, method="betting",
                       note=note, trials_needed=needed, counting_unit=unit, rule=rule, false_pass=self.beta,
                       false_fail=self.alpha, fail_level=exp.fail_level,
                       power=(exp.power or DEFAULT_POWER) if exp.fail_level is not None else None,
                       decided_at=self.decided_at)


class MeanJudge(_BettingJudge):
    """A bounded per-trial mean (a share inside each trial, or a distribution's mean under its cap): betting."""

    def __init__(self, exp: Expectation, **kw):
        super().__init__(exp, **kw)
        self._mean_zone()
        self.test = stats.BettingTest(self.low, self.high)
        self.values: list[float] = []
        self._total = 0.0  # sum of the values kept, for the running mean

    def running(self) -> tuple[float | None, float | None, str]:
        # the betting bounds take a pass over every value: too dear for a redraw, so the mean alone
        return (self._total / len(self.values) if self.values else None), None, ""

    def _failing_at(self) -> int:
        return len(self.values)

    def _add(self, record: TrialRecord) -> None:
        kept = len(self.values)
        x = self._read_mean(record, self.values)
        if len(self.values) > kept:
            self._total += self.values[-1]
        if x is None:
            return
        self.test.add(x)
        if self.sequential and self.state is None:
            if self.test.log_down >= math.log(1 / self.alpha):
                self._decide("fail", self.test.n)
            elif self.test.log_up >= math.log(1 / self.beta):
                self._decide("pass", self.test.n)

    def decision(self, *, complete: bool) -> VerdictName:
        """The verdict's decision alone (no bounds, no planning): the sequential one, or at one look the wealth
        after the last trial (Markov)."""
        if not self.sequential and self.state is None and complete:
            if self.test.log_down >= math.log(1 / self.alpha):
                return "inconclusive" if self.clipped else "fail"
            if self.test.log_up >= math.log(1 / self.beta):
                return "pass"
        return self.state or "inconclusive"

    def verdict(self, *, complete: bool, stopped_by: str = "") -> Verdict:
        exp = self.exp
        n = len(self.values)
        verdict = self.decision(complete=complete)
        scaled = [v / self.scale for v in self.values] if self.defn.kind != "rate" else list(self.values)
        bound, side = self._bound(scaled, verdict) if n else (None, "")
        note, needed = self._note(verdict, complete, stopped_by, scaled)
        how = "checked after every trial" if self.sequential else "one look after the last trial"
        zone = (f"false pass <= {self.beta:.3g} at <= {exp.fail_level:g} (or >= for '<='), "
                if exp.fail_level is not None else f"false pass <= {self.beta:.3g}, ")
        rule = (f"betting test of the per-trial mean ({how}; valid at every trial: {zone}false fail <= "
                f"{self.alpha:.3g})")
        if self.defn.kind == "rate":
            rule += f"; each trial's share of its {self.defn.counting_unit}s is one value"
        # (the unit of inference is the trial: a share inside a trial is one value per trial)
        return self._verdict(verdict, n, (sum(self.values) / n) if n else None, bound, side, note, needed, "trial",
                             rule)


#: trials of the reruns stepped at once by ``_mean_rerun``: arrays of ~1.6 MB at 200 reruns
_RERUN_BLOCK = 1024


def _running_sums(first: np.ndarray, block: np.ndarray) -> np.ndarray:
    """Each row's running sums over ``block`` started from ``first`` (column 0), added one trial after another as
    a loop over the trials adds them, so the figures do not depend on the block size."""
    return np.cumsum(np.concatenate([first[:, None], block], axis=1), axis=1)


def _mean_rerun(values: list[float], exp: Expectation, low: float, high: float, alpha: float, beta: float,
                sequential: bool, reruns: int = 200, limit: int = 10_000, *, oriented: bool = False
                ) -> tuple[int | None, str]:
    """Trials (units) a rerun of the betting test needs to decide in >= 80% of reruns drawn from the observed
    values (a planning figure from resampling: it assumes the rerun's trials look like these); ``oriented``:
    the values are already in the ">=" orientation."""
    xs = np.asarray(values if exp.upward or oriented else [1 - v for v in values], dtype=float)
    rng = np.random.default_rng(len(xs))
    up_t, down_t = math.log(1 / beta), math.log(1 / alpha)
    cap_up = stats.betting.STAKE_CAP / low if low > 0 else 0.0
    cap_down = stats.betting.STAKE_CAP / (1 - high) if high < 1 else 0.0

    def decided_share(n: int) -> float:
        draws = rng.choice(xs, size=(reruns, n))
        up = np.zeros(reruns)
        down = np.zeros(reruns)
        done = np.zeros(reruns, dtype=bool)
        total = np.zeros(reruns)
        sq = np.zeros(reruns)
        for start in range(0, n, _RERUN_BLOCK):  # a block of trials at a time, each in trial order
            x = draws[:, start:start + _RERUN_BLOCK]
            i = np.arange(start, start + x.shape[1], dtype=float)
            totals = _running_sums(total, x)  # column 0: before the block's first trial
            mean = (0.5 + totals[:, :-1]) / (i + 1)
            sqs = _running_sums(sq, (x - (0.5 + totals[:, 1:]) / (i + 2)) ** 2)
            var = (0.25 + sqs[:, :-1]) / (i + 1)
            gap_u = np.maximum(mean - low, 0.0)
            gap_d = np.maximum(high - mean, 0.0)
            lam_u = np.minimum(gap_u / (var + gap_u ** 2), cap_up)
            lam_d = np.minimum(gap_d / (var + gap_d ** 2), cap_down)
            ups = _running_sums(up, np.log1p(lam_u * (x - low)))[:, 1:]
            downs = _running_sums(down, np.log1p(-lam_d * (x - high)))[:, 1:]
            if sequential:
                done |= ((ups >= up_t) | (downs >= down_t)).any(axis=1)
            total, sq, up, down = totals[:, -1], sqs[:, -1], ups[:, -1], downs[:, -1]
        if not sequential:
            done = (up >= up_t) | (down >= down_t)
        return float(done.mean())

    n = max(10, len(xs))
    while n <= limit:
        if decided_share(n) >= 0.8:
            return n, (f"in {reruns} reruns resampled from these trials, trials={n} decides >= 80% of them "
                       "(a plan, not a promise)")
        n *= 2
    return None, f"no trial count up to {limit:,} decides in reruns resampled from these trials"


def _cluster_name(unit_trials: int) -> str:
    return f"unit of {unit_trials} trials"


class ClusteredJudge(_BettingJudge):
    """A per-trial rate, quantile or mean when trials come in units that share a task (``pass^k`` groups whose
    task is drawn, by a generator or from a list): the trials of a unit fail together, so the unit, not the trial,
    is the independent value.

    The expectation is on the share over trials with a chance (events / chances, or a mean over trials with a
    value): "share >= m" is E[S - m C] >= 0 for a unit's sum S of oriented values and its count C of chances,
    a linear statistic that is one bounded value per unit whatever the chances in it. Each complete unit gives
    ``(S - m C) / k + m`` in [0, 1] (k trials per unit; the unit's mean when every trial had a chance), whose
    mean is >= m exactly when the share is, and the betting tests of ``MeanJudge`` run on those values: m the
    threshold for a fail, the fail level (or threshold) for a pass. Valid at every unit whatever the
    clustering. A threshold at 0 or 1 is decided by the facts that settle it (a success proves "share > 0", a
    failure disproves "share >= 1"): no bet can be placed there."""

    def __init__(self, exp: Expectation, *, unit_trials: int, **kw):
        super().__init__(exp, **kw)
        self.unit_trials = unit_trials
        self.kind = exp.statistic  # rate, quantile or mean
        if self.kind == "mean":
            self._mean_zone()
        else:
            t, f = success_threshold(exp)
            self.low, self.high = (t if f is None else f), t
        self.strict = exp.op in (">", "<") and exp.statistic != "quantile"  # "share > t" (a rate's < or >)
        # the pass side bets against "share <= low", the fail side against "share >= high" (each its own values)
        self.pass_test = stats.BettingTest(min(max(self.low, 1e-12), 1 - 1e-12), 0.5)
        self.fail_test = stats.BettingTest(0.5, min(max(self.high, 1e-12), 1 - 1e-12))
        self.unit_means: list[float] = []  # each complete unit's mean over its chances, in the ">=" orientation
        self.even = True  # every trial of every unit had a chance (then the bound is the units' means')
        self.values: list[float] = []  # every trial's value as the metric reads it (the estimate)
        self.events = self.chances = 0  # a rate's events and trials with the chance (its estimate)
        self._open: list[float] = []  # the values of the unit being filled
        self._unit = 0

    def _value(self, record: TrialRecord) -> float | None:
        """The trial's value in the ">=" orientation, in [0, 1]; None when it had no chance (or a '<=' mean
        broke its cap: then the judge has failed)."""
        exp, defn = self.exp, self.defn
        if self.kind == "quantile":
            raw = defn.extract(record)
            if raw is None:
                return None
            value = float(raw)
            self.values.append(value)
            return float(_holds(value, exp.op, exp.threshold))
        if self.kind == "rate":
            successes, chances = defn.extract(record)
            if chances > 1:
                raise _too_many_chances(exp, defn.counting_unit, chances)
            if not chances:
                return None
            self.chances += 1
            self.events += bool(successes)
            return float(bool(successes) if exp.upward else not successes)
        return self._read_mean(record, self.values)

    def _failing_at(self) -> int:
        return len(self.unit_means) + 1

    def _add(self, record: TrialRecord) -> None:
        unit = (self.trials - 1) // self.unit_trials
        if unit != self._unit:  # (a unit is closed by its last trial; this only skips what never came)
            self._open, self._unit = [], unit
        x = self._value(record)
        if x is not None:
            self._open.append(x)
        if self.trials % self.unit_trials == 0:  # the unit is complete
            if self._open:
                self._close_unit(self._open)
            self._open, self._unit = [], unit + 1

    def _close_unit(self, xs: list[float]) -> None:
        k, total, count = self.unit_trials, sum(xs), len(xs)
        self.even = self.even and count == k
        self.unit_means.append(total / count)
        low, high = self.low, self.high
        self.pass_test.add((total - low * count) / k + low)
        self.fail_test.add((total - high * count) / k + high)
        if not self.sequential or self.state is not None:
            return
        n = len(self.unit_means)
        if high >= 1 and total < count:  # a failure: the share is below 1 (a fact)
            self._decide("fail", n)
        elif low <= 0 and (total > 0 or not self.strict):  # a success proves a share above 0; ">= 0" always holds
            self._decide("pass", n)
        elif high < 1 and self.fail_test.log_down >= math.log(1 / self.alpha):
            self._decide("fail", n)
        elif low > 0 and self.pass_test.log_up >= math.log(1 / self.beta):
            self._decide("pass", n)

    def _estimate(self) -> float | None:
        if self.kind == "quantile":
            return stats.quantile(self.values, self.exp.quantile or 0.5) if self.values else None
        if self.kind == "rate":
            return self.events / self.chances if self.chances else None
        return sum(self.values) / len(self.values) if self.values else None

    def running(self) -> tuple[float | None, float | None, str]:
        return (self._estimate() if self.kind != "quantile" or len(self.values) <= RUNNING_QUANTILE_CAP
                else None), None, ""

    def decision(self, *, complete: bool) -> VerdictName:
        """The verdict's decision alone (no bounds, no planning): the sequential one, or at one look the wealth
        after the last unit (Markov) and the facts seen."""
        if not self.sequential and self.state is None and complete and self.unit_means:
            means, low, high = self.unit_means, self.low, self.high
            if high >= 1 and min(means) < 1:
                return "fail"
            if low <= 0 and (max(means) > 0 or not self.strict):
                return "pass"
            if high < 1 and self.fail_test.log_down >= math.log(1 / self.alpha) and not self.clipped:
                return "fail"
            if low > 0 and self.pass_test.log_up >= math.log(1 / self.beta):
                return "pass"
        return self.state or "inconclusive"

    def verdict(self, *, complete: bool, stopped_by: str = "") -> Verdict:
        exp, u = self.exp, self.unit_trials
        n = len(self.unit_means)
        verdict = self.decision(complete=complete)
        bound, side = None, ""
        if n and self.kind != "quantile" and self.even:  # the bound on the metric's own mean, from the units' means
            bound, side = self._bound([x if exp.upward else 1 - x for x in self.unit_means], verdict)
        note, needed = self._note(verdict, complete, stopped_by, self.unit_means, oriented=True, per_unit=u)
        how = f"checked after every unit of {u} trials" if self.sequential else "one look after the last trial"
        zone = (f"false pass <= {self.beta:.3g} at the fail level or beyond, " if exp.fail_level is not None
                else f"false pass <= {self.beta:.3g}, ")
        rule = (f"betting test of the mean over units of {u} trials that share their tasks (pass^k groups: the "
                f"trials of a unit fail together, so a unit is one value; {how}; valid at every unit: {zone}false "
                f"fail <= {self.alpha:.3g})")
        return self._verdict(verdict, n, self._estimate(), bound, side, note, needed, _cluster_name(u), rule)


class CountJudge(Judge):
    """Zero tolerance: fail at the first violation past the allowance; pass only after the last trial."""

    def __init__(self, exp: Expectation, *, unit_trials: int = 1, **kw):
        super().__init__(exp, **kw)
        self.violations = 0
        self.chances = 0
        self.allowed = exp.threshold - (1 if exp.op == "<" else 0)
        self.unit_trials = unit_trials  # trials that share a task (see ``judge``): the bound counts units
        self._units_with_chance: set[int] = set()

    def distances(self) -> tuple[float, float]:
        if self.state is not None:
            return super().distances()
        return 1, self.max_trials - self.trials  # one trial may violate; a pass comes only after the last

    def _add(self, record: TrialRecord) -> None:
        violations, had_chance = self.defn.extract(record)
        self.violations += violations
        if had_chance:
            self.chances += 1
            if self.unit_trials > 1:
                self._units_with_chance.add((self.trials - 1) // self.unit_trials)
        if self.violations > self.allowed:
            self._decide("fail", self.trials)

    def add_all(self, records: Iterable[TrialRecord]) -> Judge:
        """Every record at once, to the state ``add`` reaches record by record."""
        records = _sequence(records)
        if not records:
            return self
        if self.unit_trials > 1:  # (the units that had a chance are worked out record by record)
            return super().add_all(records)
        violations, chances = zip(*map(self.defn.extract, records), strict=False)
        base, allowed = self.trials, self.allowed
        running = list(itertools.accumulate(violations, initial=self.violations))[1:]
        first = next((i for i, v in enumerate(running) if v > allowed), None) if (
            self.state is None and (running[-1] > allowed or min(violations) < 0)) else None
        if first is not None:
            self.trials = base + first + 1
            self._decide("fail", self.trials)
        self.violations = running[-1]
        self.chances += sum(1 for c in chances if c)
        self.trials = base + len(records)
        return self

    def running(self) -> tuple[float | None, float | None, str]:
        return float(self.violations), None, ""

    def verdict(self, *, complete: bool, stopped_by: str = "") -> Verdict:
        if self.unit_trials > 1:  # the trials of a unit share a task: violations may come a unit at a time
            out = count_verdict(self.exp, self.violations, len(self._units_with_chance), self.confidence,
                                final=complete, decided_at=self.decided_at, unit=_cluster_name(self.unit_trials))
        else:
            out = count_verdict(self.exp, self.violations, self.chances, self.confidence, final=complete,
                                decided_at=self.decided_at)
        if out.verdict == "inconclusive" and stopped_by:
            out = _replace(out, note=self._stopped_note(stopped_by))
        return out


def judge(exp: Expectation, *, max_trials: int, confidence: float, sequential: bool, unit_trials: int = 1
          ) -> Judge:
    """The judge of one expectation. ``unit_trials``: how many consecutive trials share their tasks
    (``Scenario.unit_trials``): above 1, a per-trial rate, quantile or mean is judged with that unit as the
    independent value (``ClusteredJudge``), and a count's bound counts units; ``pass^k`` has its own groups."""
    kw = {"max_trials": max_trials, "confidence": confidence, "sequential": sequential}
    if exp.statistic == "count":
        return CountJudge(exp, unit_trials=unit_trials, **kw)
    if unit_trials > 1 and exp.statistic != "pass^k":
        return ClusteredJudge(exp, unit_trials=unit_trials, **kw)
    if exp.statistic == "mean":
        return MeanJudge(exp, **kw)
    return RateJudge(exp, **kw)

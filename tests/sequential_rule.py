"""The campaign's sequential decision rule, restated independently of pytest_agentops, and its exact error rates.

The rule (docs/statistics.md "Sequential looks"; the engine is ``Runner.run``, ``CampaignResult.build`` and
``expect.evaluate``): trials are consumed in launch order. With early stopping the campaign looks at the
first ``n`` trials for each ``n`` of the look schedule 25, 50, 100, ... (doubling while below the maximum),
then the maximum; at a look before the maximum it stops if every expectation is decided (pass or fail) at
the per-look confidence ``1 - alpha / looks`` (Bonferroni). The verdicts are then taken on the trials
used (the first ``n``), at the same per-look confidence; a count at the full confidence (it does not
depend on a confidence to pass or fail). Without early stopping there is one look, at the maximum, and
the confidence is the campaign's.

* A rate ``>= t`` (``> t``) passes when its one-sided Clopper-Pearson lower bound is ``>= t`` (``> t``)
  and fails when the upper bound is not; ``<= t`` (``< t``) the other way round. No trial with the
  chance (n = 0): inconclusive.
* A quantile ``pQ <= T`` (``< T``) is judged by order statistics: it passes when the order statistic
  of rank ``r_u`` (the smallest r with ``P(Binom(n, Q) <= r - 1) >= confidence``) is ``<= T``, and fails
  when the one of rank ``r_l`` (the largest r with ``P(Binom(n, Q) >= r) >= confidence``) is not; no
  such rank, no such bound. ``>= T`` (``> T``) the other way round. Both comparisons are questions
  about the number of "misses", the samples on the wrong side of T, so for the error rate a quantile
  expectation is a rate: one Bernoulli "miss" per trial.
* A count ``<= N`` (``== 0``: N = 0, ``< N``: N - 1) fails as soon as more than N violations are seen
  and passes only at the end.

Everything here is computed with scipy (binomial pmfs and tails, beta quantiles) and numpy, not with
``pytest_agentops.stats``, so that a test comparing the two checks the engine against an independent
statement of the rule. ``exact_outcome`` is the dynamic programme over the looks that gives the exact
probability of each final verdict for a Bernoulli(p) per-trial event; ``replay`` applies the rule to an
observed sequence of per-trial observations (read off ``CampaignResult.records``).
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.stats

ALPHA = 0.05  # the campaign's default: confidence 0.95
FIRST_LOOK = 25

_OPS: dict[str, Callable[[Any, Any], Any]] = {">=": operator.ge, ">": operator.gt, "<=": operator.le,
                                              "<": operator.lt}


def looks(max_trials: int, *, early_stop: bool = True) -> tuple[int, ...]:
    """The trial counts at which the campaign looks: 25, 50, 100, ... below ``max_trials``, then it."""
    if not early_stop:
        return (max_trials,)
    points, n = [], FIRST_LOOK
    while n < max_trials:
        points.append(n)
        n *= 2
    return (*points, max_trials)


def look_confidence(confidence: float, n_looks: int) -> float:
    """The confidence of every look: the campaign's alpha split evenly over the looks (Bonferroni)."""
    return 1.0 - (1.0 - confidence) / n_looks


# ---------------------------------------------------------------------------------------- bounds (scipy)


def cp_lower(k: np.ndarray | int, n: int, confidence: float) -> np.ndarray:
    """One-sided Clopper-Pearson lower bound(s), the beta quantile ``Beta(k, n - k + 1).ppf(alpha)``; 0 at k = 0."""
    k = np.asarray(k)
    with np.errstate(invalid="ignore"):
        value = scipy.stats.beta.ppf(1.0 - confidence, np.maximum(k, 1), n - k + 1)
    return np.where(k == 0, 0.0, value)


def cp_upper(k: np.ndarray | int, n: int, confidence: float) -> np.ndarray:
    """One-sided Clopper-Pearson upper bound(s), ``Beta(k + 1, n - k).ppf(confidence)``; 1 at k = n."""
    k = np.asarray(k)
    with np.errstate(invalid="ignore"):
        value = scipy.stats.beta.ppf(confidence, k + 1, np.maximum(n - k, 1))
    return np.where(k == n, 1.0, value)


def upper_rank(n: int, q: float, confidence: float) -> int | None:
    """Smallest 1-based rank r <= n with ``P(Binom(n, q) <= r - 1) >= confidence`` (the upper bound's order
    statistic), None if there is none."""
    r = np.arange(1, n + 1)
    ok = scipy.stats.binom.cdf(r - 1, n, q) >= confidence
    return int(r[ok][0]) if ok.any() else None


def lower_rank(n: int, q: float, confidence: float) -> int | None:
    """Largest 1-based rank r <= n with ``P(Binom(n, q) >= r) >= confidence`` (the lower bound's order
    statistic), None if there is none."""
    r = np.arange(1, n + 1)
    ok = scipy.stats.binom.sf(r - 1, n, q) >= confidence
    return int(r[ok][-1]) if ok.any() else None


# ------------------------------------------------------------------------------------------------ rules

# verdict codes in the arrays below
INCONCLUSIVE, PASS, FAIL = 0, 1, 2
NAMES = {INCONCLUSIVE: "inconclusive", PASS: "pass", FAIL: "fail"}


@dataclass(frozen=True)
class Rate:
    """``rate op threshold``; its per-trial observation is True/False (the event), or None (no chance)."""

    op: str
    threshold: float

    def table(self, n: int, confidence: float) -> np.ndarray:
        """The verdict code for each number of events k = 0..n among n observations."""
        if n == 0:
            return np.array([INCONCLUSIVE])
        k = np.arange(n + 1)
        lo, hi = cp_lower(k, n, confidence), cp_upper(k, n, confidence)
        holds = _OPS[self.op]
        passing, failing = (lo, hi) if self.op in (">=", ">") else (hi, lo)
        return np.where(holds(passing, self.threshold), PASS,
                        np.where(~holds(failing, self.threshold), FAIL, INCONCLUSIVE))

    def verdict(self, observations: Sequence[bool | None], confidence: float, *, final: bool) -> int:
        seen = [bool(o) for o in observations if o is not None]
        return int(_table(self, len(seen), confidence)[sum(seen)])


@dataclass(frozen=True)
class Quantile:
    """``pQ op threshold`` on a per-trial value (None: the trial has no value); judged on the misses."""

    q: float
    op: str
    threshold: float

    def misses(self, values: Sequence[float]) -> int:
        """Values on the wrong side of the threshold (above it for ``<=``)."""
        return sum(1 for v in values if not _OPS[self.op](v, self.threshold))

    def table(self, n: int, confidence: float) -> np.ndarray:
        """The verdict code for each number of misses m = 0..n among n values.

        ``<=``: the upper bound (rank r_u) is within T iff at least r_u values are, i.e. m <= n - r_u; the
        lower bound (rank r_l) is beyond T iff fewer than r_l values are within, i.e. m > n - r_l.
        ``>=``: the lower bound is within iff fewer than r_l values miss; the upper bound misses iff at
        least r_u values do.
        """
        if n == 0:
            return np.array([INCONCLUSIVE])
        m = np.arange(n + 1)
        r_u, r_l = upper_rank(n, self.q, confidence), lower_rank(n, self.q, confidence)
        no = np.zeros(n + 1, dtype=bool)
        if self.op in ("<=", "<"):
            passing = no if r_u is None else m <= n - r_u
            failing = no if r_l is None else m > n - r_l
        else:
            passing = no if r_l is None else m < r_l
            failing = no if r_u is None else m >= r_u
        return np.where(passing, PASS, np.where(failing, FAIL, INCONCLUSIVE))

    def verdict(self, observations: Sequence[float | None], confidence: float, *, final: bool) -> int:
        values = [v for v in observations if v is not None]
        return int(_table(self, len(values), confidence)[self.misses(values)])


@dataclass(frozen=True)
class Count:
    """``count <= allowed`` violations; its per-trial observation is the trial's number of violations."""

    allowed: int

    def verdict(self, observations: Sequence[int], confidence: float, *, final: bool) -> int:
        if sum(observations) > self.allowed:
            return FAIL
        return PASS if final else INCONCLUSIVE


Rule = Rate | Quantile | Count


@functools.cache
def _table(rule: Rate | Quantile, n: int, confidence: float) -> np.ndarray:
    """``rule.table``, cached: it does not depend on the true rate, which the error-rate scans vary."""
    table = rule.table(n, confidence)
    table.flags.writeable = False
    return table


# ------------------------------------------------------------------------------- replaying observations


@dataclass(frozen=True)
class Replayed:
    """What the rule decides on an observed sequence: the trials it uses and the final verdicts."""

    n: int
    stopped_early: bool
    verdicts: tuple[str, ...]


def replay(rules: Sequence[Rule], observations: Sequence[Sequence[Any]], max_trials: int, *,
           confidence: float = 1 - ALPHA, early_stop: bool = True) -> Replayed:
    """Apply the rule to per-trial observations (``observations[j][i]``: rule j's observation of trial i, in
    launch order). Raises ``ValueError`` when the rule needs a trial that is not in the observations (the
    engine stopped before the rule would have)."""
    points = looks(max_trials, early_stop=early_stop)
    conf = look_confidence(confidence, len(points))
    available = min((len(o) for o in observations), default=max_trials)
    for n in points:
        if n > available:
            raise ValueError(f"the rule looks at {n} trials; only {available} were observed")
        interim = [rule.verdict(obs[:n], conf, final=False) for rule, obs in zip(rules, observations, strict=True)]
        if n < max_trials and rules and INCONCLUSIVE not in interim:
            return Replayed(n, True, _final(rules, observations, n, conf, confidence))
    return Replayed(max_trials, False, _final(rules, observations, max_trials, conf, confidence))


def _final(rules: Sequence[Rule], observations: Sequence[Sequence[Any]], n: int, conf: float,
           confidence: float) -> tuple[str, ...]:
    return tuple(NAMES[rule.verdict(obs[:n], confidence if isinstance(rule, Count) else conf, final=True)]
                 for rule, obs in zip(rules, observations, strict=True))


# ------------------------------------------------------------------------------ exact error rates (DP)


@dataclass(frozen=True)
class Outcome:
    """Exact probabilities of a campaign's final verdict on one expectation, and of where it stopped."""

    passed: float
    failed: float
    inconclusive: float
    stop_at: dict[int, float]  # look -> P(the campaign used exactly that many trials)

    @property
    def expected_trials(self) -> float:
        return sum(n * p for n, p in self.stop_at.items())


def exact_outcome(rule: Rate | Quantile, p: float, max_trials: int, *, confidence: float = 1 - ALPHA,
                  early_stop: bool = True, split: bool = True) -> Outcome:
    """The exact probabilities of pass / fail / inconclusive for a campaign of one expectation whose
    per-trial event (a success for a rate, a miss for a quantile) is Bernoulli(p), independent across trials.

    Dynamic programme over the looks: ``mass[k]`` is P(k events among the first n trials and the campaign
    still running). At an interim look the mass of decided k is removed (the campaign stops there with that
    verdict); between looks the events grow by a Binomial(increment, p). At the last look every k gets its
    final verdict. ``split=False`` judges every look at the full confidence (no Bonferroni split), to show
    what the split is for.
    """
    points = looks(max_trials, early_stop=early_stop)
    conf = look_confidence(confidence, len(points)) if split else confidence
    result = {PASS: 0.0, FAIL: 0.0, INCONCLUSIVE: 0.0}
    stop_at: dict[int, float] = {}
    mass = np.array([1.0])
    previous = 0
    for n in points:
        step = n - previous
        mass = np.convolve(mass, scipy.stats.binom.pmf(np.arange(step + 1), step, p))
        previous = n
        table = _table(rule, n, conf)
        if n < max_trials:
            decided = table != INCONCLUSIVE
            for code in (PASS, FAIL):
                result[code] += float(mass[table == code].sum())
            stop_at[n] = float(mass[decided].sum())
            mass = np.where(decided, 0.0, mass)
        else:
            for code in result:
                result[code] += float(mass[table == code].sum())
            stop_at[n] = float(mass.sum())
    total = sum(result.values())
    assert math.isclose(total, 1.0, abs_tol=1e-9), total  # every campaign ends with exactly one verdict
    return Outcome(result[PASS], result[FAIL], result[INCONCLUSIVE], stop_at)


# --------------------------------------------------------------------------------- the engine against it

#: What each metric observes on one trial record (None: the trial does not count), restated from the
#: metric definitions: the kind of rule, and the observation.
OBSERVE: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "completion_rate": ("rate", lambda r: r.outcome == "completed"),
    "escalation_rate": ("rate", lambda r: r.outcome == "escalated"),
    "budget_exceeded_rate": ("rate", lambda r: r.outcome == "budget_exceeded"),
    "tokens_per_task": ("distribution", lambda r: float(r.input_tokens + r.output_tokens)),
    "time_to_escalation_s": ("distribution", lambda r: r.time_to_escalation_s),
    "unconfirmed_destructive_calls": ("count", lambda r: r.unconfirmed_destructive),
}


def rule_for(key: str, expression: str) -> Rule:
    """The rule of one ``expect`` entry (``"time_to_escalation_s.p95": "<= 30"``), parsed here."""
    metric, _, suffix = key.partition(".")
    op, number = expression.split()
    kind = OBSERVE[metric][0]
    if kind == "rate":
        return Rate(op, float(number))
    if kind == "distribution":
        return Quantile(float(suffix.removeprefix("p")) / 100, op, float(number))
    limit = int(float(number))
    return Count({"==": 0, "<=": limit, "<": limit - 1}[op])


def observe(scenario: Any, records: Sequence[Any]) -> tuple[list[Rule], list[list[Any]]]:
    """The rules of a scenario's ``expect`` and, for each, its observation of every record (launch order)."""
    rules, observations = [], []
    for key, expression in scenario.expect.items():
        rules.append(rule_for(key, expression))
        read = OBSERVE[key.partition(".")[0]][1]
        observations.append([read(r) for r in records])
    return rules, observations


def check_engine_follows_rule(scenario: Any, **run: Any) -> tuple[Replayed, Any]:
    """Run the scenario's campaign with early stopping and, with the same seed, without; assert that

    * the two runs saw the same trials (trial i is seeded by its index: the early-stopped run's trials are
      the first ones of the full run),
    * the early-stopped run used exactly the trials, and gave exactly the verdicts, that the rule gives on
      the full run's observed sequence (so it stopped neither later nor earlier than the rule),
    * the full run's verdicts are the rule's with a single look at the campaign's confidence.

    Returns the rule's replay and the full run (for the caller's own checks).
    """
    from pytest_agentops import run_campaign

    early = run_campaign(scenario, early_stop=True, **run)
    full = run_campaign(scenario, early_stop=False, **run)
    assert early.records == full.records[:early.n]
    rules, observations = observe(scenario, full.records)
    rule = replay(rules, observations, full.max_trials, confidence=full.confidence)
    label = f"{scenario.name} seed={early.seed}"
    assert (early.n, early.stopped_early) == (rule.n, rule.stopped_early), label
    assert tuple(v.verdict for v in early.verdicts) == rule.verdicts, label
    for rule_j, verdict, obs in zip(rules, early.verdicts, observations, strict=True):
        if not isinstance(rule_j, Count):  # judged on the trials used that have an observation
            assert verdict.n == sum(o is not None for o in obs[:rule.n]), label
    one_look = replay(rules, observations, full.max_trials, confidence=full.confidence, early_stop=False)
    assert (full.n, full.stopped_early) == (full.max_trials, False), label
    assert tuple(v.verdict for v in full.verdicts) == one_look.verdicts, label
    # and the rule on the early run's own records says the same (what it used is all it needed)
    assert replay(*observe(scenario, early.records), early.max_trials, confidence=early.confidence) == rule, label
    return rule, full

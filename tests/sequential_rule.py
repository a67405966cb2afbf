"""The campaign's sequential decision rule, restated apart from the engine, and its exact error rates.

The rule (docs/verdicts.md; the engine is ``Runner.run``, ``pytest_agentops.judge`` and ``CampaignResult.build``):
trials are consumed in launch order. With early stopping every expectation is looked at after EVERY trial of
the launch-order prefix; the campaign stops as soon as every expectation is decided, or at once when one
fails. Each expectation's verdict is its first decision (or, never decided, inconclusive). Without early
stopping there is one look, after the last trial, at the campaign's confidence.

* A rate ``>= t`` (``> t``) is a count of successes among the trials with the chance; ``<= t`` counts the
  non-events against ``1 - t``. After n such trials with k successes it passes when ``k >= pass_at[n]`` and
  fails when ``k <= fail_at[n]``, the two boundaries of ``pytest_agentops.stats.rate_rule`` (the rule's
  definition: a truncated SPRT with a fail level, a mixture SPRT at the threshold without one, each
  calibrated by the package). Whatever those boundaries are, what this module computes of them, with
  scipy and independently of the package, is the exact probability of each verdict.
* A quantile ``pQ <= T`` is the rate ``P(X <= T) >= Q`` of the per-trial event "the value is within T"
  (``>= T``: ``P(X >= T) >= 1 - Q``): one Bernoulli per trial, judged as a rate.
* A count ``<= N`` (``== 0``: N = 0, ``< N``: N - 1) fails as soon as more than N violations are seen
  and passes only after the last trial.
* One look (no early stopping): the one-sided exact tests, restated here with scipy's beta quantiles
  (Clopper-Pearson) and order statistics.

``exact_outcome`` is the dynamic programme over the trials that gives the exact probability of each final
verdict for a Bernoulli(p) per-trial event; ``replay`` applies the rule to an observed sequence of per-trial
observations (read off ``CampaignResult.records``).
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

from pytest_agentops.stats import rate_rule

ALPHA = 0.05  # the campaign's default: confidence 0.95

_OPS: dict[str, Callable[[Any, Any], Any]] = {">=": operator.ge, ">": operator.gt, "<=": operator.le,
                                              "<": operator.lt}


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
    """``rate op threshold`` (optionally ``fail below/above fail_level`` with ``power``); its per-trial
    observation is True/False (the event), or None (no chance)."""

    op: str
    threshold: float
    fail_level: float | None = None
    power: float = 0.95

    @property
    def upward(self) -> bool:
        return self.op in (">=", ">")

    def success_threshold(self) -> tuple[float, float | None]:
        if self.upward:
            return self.threshold, self.fail_level
        return 1 - self.threshold, None if self.fail_level is None else 1 - self.fail_level

    def successes(self, observations: Sequence[Any]) -> list[bool]:
        """The per-unit successes (in the ``>= t`` orientation) of the trials with the chance."""
        seen = [bool(o) for o in observations if o is not None]
        return seen if self.upward else [not o for o in seen]

    def boundaries(self, max_n: int, confidence: float) -> tuple[np.ndarray, np.ndarray]:
        t, f = self.success_threshold()
        alpha = 1 - confidence
        beta = alpha if f is None else 1 - self.power
        rule = rate_rule(t, max_n=max_n, alpha=alpha, fail_level=f, beta=beta, strict=self.op in (">", "<"))
        return np.asarray(rule.pass_at), np.asarray(rule.fail_at)

    def one_look(self, n: int, confidence: float) -> np.ndarray:
        """The verdict code for each number of events k = 0..n among n observations, one look (no zone)."""
        if n == 0:
            return np.array([INCONCLUSIVE])
        k = np.arange(n + 1)
        lo, hi = cp_lower(k, n, confidence), cp_upper(k, n, confidence)
        holds = _OPS[self.op]
        passing, failing = (lo, hi) if self.upward else (hi, lo)
        return np.where(holds(passing, self.threshold), PASS,
                        np.where(~holds(failing, self.threshold), FAIL, INCONCLUSIVE))

    def one_look_verdict(self, observations: Sequence[Any], confidence: float) -> int:
        seen = [bool(o) for o in observations if o is not None]
        return int(_one_look(self, len(seen), confidence)[sum(seen)])


@dataclass(frozen=True)
class Quantile:
    """``pQ op threshold`` on a per-trial value (None: the trial has no value); judged on the values within."""

    q: float
    op: str
    threshold: float
    fail_q: float | None = None
    power: float = 0.95

    @property
    def upward(self) -> bool:
        return self.op in (">=", ">")

    def success_threshold(self) -> tuple[float, float | None]:
        if self.upward:
            return 1 - self.q, None if self.fail_q is None else 1 - self.fail_q
        return self.q, self.fail_q

    def within(self, values: Sequence[float]) -> list[bool]:
        return [bool(_OPS[self.op](v, self.threshold)) for v in values if v is not None]

    successes = within

    def misses(self, values: Sequence[float]) -> int:
        """Values on the wrong side of the threshold (above it for ``<=``)."""
        return sum(1 for v in values if not _OPS[self.op](v, self.threshold))

    def boundaries(self, max_n: int, confidence: float) -> tuple[np.ndarray, np.ndarray]:
        t, f = self.success_threshold()
        alpha = 1 - confidence
        beta = alpha if f is None else 1 - self.power
        rule = rate_rule(t, max_n=max_n, alpha=alpha, fail_level=f, beta=beta)
        return np.asarray(rule.pass_at), np.asarray(rule.fail_at)

    def one_look(self, n: int, confidence: float) -> np.ndarray:
        """The verdict code for each number of misses m = 0..n among n values, one look (order statistics).

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

    def one_look_verdict(self, observations: Sequence[float | None], confidence: float) -> int:
        values = [v for v in observations if v is not None]
        return int(_one_look(self, len(values), confidence)[self.misses(values)])


@dataclass(frozen=True)
class Count:
    """``count <= allowed`` violations; its per-trial observation is the trial's number of violations."""

    allowed: int


Rule = Rate | Quantile | Count


@functools.cache
def _one_look(rule: Rate | Quantile, n: int, confidence: float) -> np.ndarray:
    table = rule.one_look(n, confidence)
    table.flags.writeable = False
    return table


@functools.cache
def _boundaries(rule: Rate | Quantile, max_n: int, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    return rule.boundaries(max_n, confidence)


# ------------------------------------------------------------------------------- replaying observations


@dataclass(frozen=True)
class Replayed:
    """What the rule decides on an observed sequence: the trials it uses and the final verdicts."""

    n: int
    stopped_early: bool
    verdicts: tuple[str, ...]


def _first_decision(rule: Rate | Quantile, observations: Sequence[Any], trials: int, max_trials: int,
                    confidence: float) -> list[int]:
    """For each trial count 1..trials, the rule's state after that many trials (its first decision sticks)."""
    pass_at, fail_at = _boundaries(rule, max_trials, confidence)
    state, k, n, out = INCONCLUSIVE, 0, 0, []
    for obs in observations[:trials]:
        unit = rule.successes([obs])
        if unit and state == INCONCLUSIVE:
            n += 1
            k += unit[0]
            if k >= pass_at[n]:
                state = PASS
            elif k <= fail_at[n]:
                state = FAIL
        out.append(state)
    return out


def replay(rules: Sequence[Rule], observations: Sequence[Sequence[Any]], max_trials: int, *,
           confidence: float = 1 - ALPHA, early_stop: bool = True) -> Replayed:
    """Apply the rule to per-trial observations (``observations[j][i]``: rule j's observation of trial i, in
    launch order). Raises ``ValueError`` when the rule needs a trial that is not in the observations (the
    engine stopped before the rule would have)."""
    available = min((len(o) for o in observations), default=max_trials)
    if not early_stop:
        if available < max_trials:
            raise ValueError(f"one look at {max_trials} trials; only {available} were observed")
        return Replayed(max_trials, False, tuple(_one_look_final(rule, obs[:max_trials], confidence)
                                                 for rule, obs in zip(rules, observations, strict=True)))
    states = []
    for rule, obs in zip(rules, observations, strict=True):
        if isinstance(rule, Count):
            total, path = 0, []
            for o in obs[:max_trials]:
                total += o
                path.append(FAIL if total > rule.allowed else INCONCLUSIVE)
            states.append(path)
        else:
            states.append(_first_decision(rule, obs, max_trials, max_trials, confidence))
    for n in range(1, max_trials + 1):
        if n > available:
            raise ValueError(f"the rule looks at {n} trials; only {available} were observed")
        now = [path[n - 1] for path in states]
        if n < max_trials and rules and (FAIL in now or INCONCLUSIVE not in now):
            stopped_by_failure = FAIL in now
            return Replayed(n, True, tuple(_final_state(rule, s, complete=False, failed=stopped_by_failure)
                                           for rule, s in zip(rules, now, strict=True)))
    now = [path[max_trials - 1] for path in states] if rules else []
    return Replayed(max_trials, False, tuple(_final_state(rule, s, complete=True, failed=False)
                                             for rule, s in zip(rules, now, strict=True)))


def _final_state(rule: Rule, state: int, *, complete: bool, failed: bool) -> str:
    if isinstance(rule, Count) and state == INCONCLUSIVE and complete:
        return "pass"
    return NAMES[state]


def _one_look_final(rule: Rule, observations: Sequence[Any], confidence: float) -> str:
    if isinstance(rule, Count):
        return "fail" if sum(observations) > rule.allowed else "pass"
    if (isinstance(rule, Rate) and rule.fail_level is not None) or (isinstance(rule, Quantile) and rule.fail_q):
        raise NotImplementedError("one look with a fail level is checked in test_verdicts.py")
    return NAMES[rule.one_look_verdict(observations, confidence)]


# ------------------------------------------------------------------------------ exact error rates (DP)


@dataclass(frozen=True)
class Outcome:
    """Exact probabilities of a campaign's final verdict on one expectation, and of where it stopped."""

    passed: float
    failed: float
    inconclusive: float
    stop_at: dict[int, float]  # trials -> P(the campaign used exactly that many trials)

    @property
    def expected_trials(self) -> float:
        return sum(n * p for n, p in self.stop_at.items())


def exact_outcome(rule: Rate | Quantile, p: float, max_trials: int, *, confidence: float = 1 - ALPHA,
                  early_stop: bool = True) -> Outcome:
    """The exact probabilities of pass / fail / inconclusive for a campaign of one expectation whose
    per-trial event (the metric's event for a rate, a miss, a value on the wrong side of the threshold, for a
    quantile) is Bernoulli(p), independent across trials.

    Dynamic programme over the trials: ``mass[k]`` is P(k successes among the first n trials and the
    campaign still running). After each trial the mass of decided k is removed (the campaign stops there with
    that verdict); each trial moves mass by one Bernoulli(p) (scipy's pmf). Without early stopping, one look
    at the maximum with the one-look tests.
    """
    # the rule counts successes: a rate >= its events, a rate <= its non-events, a quantile its values within
    p = p if isinstance(rule, Rate) and rule.upward else 1 - p
    if not early_stop:
        n = max_trials
        k = np.arange(n + 1)
        pmf = scipy.stats.binom.pmf(k, n, p)
        # one_look is indexed by events (rates) or misses (quantiles); our k counts successes
        table = _one_look(rule, n, confidence)
        codes = table[k] if isinstance(rule, Rate) and rule.upward else table[n - k]
        out = {c: float(pmf[codes == c].sum()) for c in (PASS, FAIL, INCONCLUSIVE)}
        return Outcome(out[PASS], out[FAIL], out[INCONCLUSIVE], {n: 1.0})
    pass_at, fail_at = _boundaries(rule, max_trials, confidence)
    step = scipy.stats.bernoulli.pmf([0, 1], p)
    mass = np.array([1.0])
    passed = failed = 0.0
    stop_at: dict[int, float] = {}
    for n in range(1, max_trials + 1):
        mass = np.convolve(mass, step)
        k = np.arange(n + 1)
        up, down = k >= pass_at[n], k <= fail_at[n]
        gone_p, gone_f = float(mass[up].sum()), float(mass[down].sum())
        passed += gone_p
        failed += gone_f
        stop_at[n] = gone_p + gone_f
        mass = np.where(up | down, 0.0, mass)
    rest = float(mass.sum())
    stop_at[max_trials] += rest
    assert math.isclose(passed + failed + rest, 1.0, abs_tol=1e-9)
    return Outcome(passed, failed, rest, stop_at)


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
    """The rule of one ``expect`` entry (``"time_to_escalation_s.p95": "<= 30"``, ``"completion_rate": ">= 0.9,
    fail below 0.8, power 0.9"``), parsed here."""
    metric, _, suffix = key.partition(".")
    head, *clauses = [part.strip() for part in expression.split(",")]
    op, number = head.split()
    words = dict(clause.rsplit(" ", 1) for clause in clauses)  # "fail below" -> "0.8", "power" -> "0.9"
    power = float(words.get("power", 0.95))
    kind = OBSERVE[metric][0]
    if kind == "rate":
        fail = words.get("fail below", words.get("fail above"))
        return Rate(op, float(number), None if fail is None else float(fail), power)
    if kind == "distribution":
        fail_q = words.get("fail at")
        return Quantile(float(suffix.removeprefix("p")) / 100, op, float(number),
                        None if fail_q is None else float(fail_q.removeprefix("p")) / 100, power)
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

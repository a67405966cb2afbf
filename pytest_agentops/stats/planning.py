"""Planning and sequential looks: how many trials would decide at an observed rate, and the look schedule with
its Bonferroni split of alpha."""

from __future__ import annotations

import functools
import math
import operator
from dataclasses import dataclass

from ..errors import hide_own_frames
from ._checks import check_confidence, check_kn
from .binomial import clopper_pearson_lower, clopper_pearson_upper

__tracebackhide__ = hide_own_frames

_DIRECTIONS = (">=", "<=")


# ----------------------------------------------------------------- planning and sequential


def trials_to_decide(
    k: int,
    n: int,
    threshold: float,
    direction: str,
    confidence: float = 0.95,
    max_n: int = 1_000_000,
) -> int | None:
    """Total trials N >= n at which the observed rate k/n would give a decisive verdict; None if max_n won't.

    Projects successes round(k/n * N) at N trials and asks whether the one-sided
    Clopper-Pearson bound then clears the threshold either way (direction ">=": lower >=
    threshold passes, upper < threshold fails; "<=": upper <= threshold passes, lower >
    threshold fails). Doubling search, then bisection, so the answer N decides and N - 1
    does not (or N == n). Rounding the projected successes makes "decides" slightly
    non-monotone in N, so an isolated smaller N may also decide (up to ~30% smaller for
    n <= 10, under ~10% for n in the hundreds): a planning figure, not a guarantee. None
    when n == 0 (no estimate to project) or nothing up to max_n decides, e.g. when k/n
    equals the threshold.
    """
    k, n = check_kn(k, n)
    confidence = check_confidence(confidence)
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold={threshold} must be in [0, 1]")
    max_n = operator.index(max_n)
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction={direction!r} must be one of {_DIRECTIONS}")
    if n == 0:
        return None

    def decides(total: int) -> bool:
        successes = (2 * k * total + n) // (2 * n)  # round(k/n * total), halves up, exact
        if direction == ">=":
            return (
                clopper_pearson_lower(successes, total, confidence) >= threshold
                or clopper_pearson_upper(successes, total, confidence) < threshold
            )
        return (
            clopper_pearson_upper(successes, total, confidence) <= threshold
            or clopper_pearson_lower(successes, total, confidence) > threshold
        )

    return _search(decides, n, max_n, exact=True)


def look_schedule(max_trials: int, first: int = 25) -> tuple[int, ...]:
    """Interim looks first, 2*first, 4*first, ... below max_trials, then max_trials, for early stopping."""
    max_trials, first = operator.index(max_trials), operator.index(first)
    if max_trials < 1:
        raise ValueError(f"max_trials={max_trials} must be >= 1")
    if first < 1:
        raise ValueError(f"first={first} must be >= 1")
    looks = []
    point = first
    while point < max_trials:
        looks.append(point)
        point *= 2
    looks.append(max_trials)
    return tuple(looks)


def per_look_alpha(alpha: float, looks: int) -> float:
    """Bonferroni per-look alpha / looks: by the union bound P(any false verdict over all looks) <= alpha."""
    alpha = float(alpha)
    looks = operator.index(looks)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha={alpha} must be in (0, 1)")
    if looks < 1:
        raise ValueError(f"looks={looks} must be >= 1")
    return alpha / looks


# ------------------------------------------------------------------- planning for the sequential rules


def _search(decides, start: int, limit: int, *, exact: bool = False) -> int | None:
    """The smallest N in [start, limit] with decides(N), by doubling then bisection (decides is close to
    monotone in N; the answer is a planning figure): to within 2%, or to the trial when ``exact``."""
    start = max(1, start)
    if decides(start):
        return start
    lo, hi = start, start
    while True:
        if hi >= limit:
            return None
        lo, hi = hi, min(2 * hi, limit)
        if decides(hi):
            break
    while hi - lo > (1 if exact else max(1, lo // 50)):  # invariant: decides(hi) and not decides(lo)
        mid = (lo + hi) // 2
        if decides(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _fewest_that_can_decide(rate: float, threshold: float, alpha: float, beta: float | None, probability: float,
                            verdict: str) -> float:
    """A number of units below which a rule without a fail level cannot give ``verdict`` with ``probability`` at
    ``rate`` (0: none known; ``math.inf``: no number can). At the threshold itself a pass and a fail are each
    an error, of probability at most alpha (beta: a pass); and for any event of N units the derivative of its
    probability in the rate p is E[1_event (S_N - N p)] / (p (1 - p)), at most sqrt(N / (p (1 - p))) in size
    (Cauchy-Schwarz). So P(verdict) at ``rate`` <= errors + |rate - threshold| sqrt(N / v), v the least p (1 - p)
    between the two, which stays below ``probability`` while N < v ((probability - errors) / gap)^2. Near the
    threshold this spares the search's dynamic programmes up to 10,000 units (seconds) for an answer it knows."""
    if not 0.0 < threshold < 1.0:
        return 0.0
    error = max(alpha, alpha if beta is None else beta)  # (the larger of the two stated bounds: the safe side)
    room = probability - (2 * error if verdict == "decide" else error) - 1e-9  # (a margin for rounding)
    if room <= 0.0:
        return 0.0
    gap = abs(rate - threshold)
    if gap == 0.0:
        return math.inf
    v = min(rate * (1.0 - rate), threshold * (1.0 - threshold))
    return v * (room / gap) ** 2 if v > 0.0 else 0.0


def trials_for(rate: float, threshold: float, *, alpha: float = 0.05, fail_level: float | None = None,
               beta: float | None = None, sequential: bool = True, probability: float = 0.8,
               verdict: str = "decide", start: int = 1, limit: int = 10_000) -> int | None:
    """The fewest maximum trials N with which the rule (``rate_rule`` with these arguments, at max_n = N)
    passes (``verdict="pass"``), fails (``"fail"``) or decides either way (``"decide"``) with probability >=
    ``probability`` when the true rate is ``rate``; None when no N up to ``limit`` does (e.g. an agent exactly
    at the threshold of a rule without a fail level is decided with probability <= 2 alpha at any N).

    The search uses the rule with Ville's constants, which decides (either way) no more often than the calibrated
    rule a campaign uses; a figure for one verdict is then checked on the calibrated rule, and raised until it
    holds there (its fail boundary also takes paths from a pass: 130 trials passed with 0.9477, not 0.95).
    Below what the errors alone may reach (twice the stated error to decide, that error for one verdict), where
    Ville's constants may reach no N at all, the calibrated rules are searched themselves (so figures at 0.8 or
    0.95 with alpha under 0.4 are as without that search). The figure always reaches the probability on the
    calibrated rule; at probabilities of a few times alpha it can be well above that rule's fewest (a review:
    424 where 80 passes with 0.0499), and next to the threshold a probability just above 2 alpha may get None
    where the calibrated rule reaches it (0.101 at 540 trials for a rate 0.001 below the threshold).
    Cached: campaigns of one session often observe the same share.
    """
    optional = (None if fail_level is None else float(fail_level), None if beta is None else float(beta))
    return _trials_for(float(rate), float(threshold), float(alpha), *optional, sequential, float(probability),
                       verdict, start, limit)


@functools.lru_cache(maxsize=256)
def _trials_for(rate: float, threshold: float, alpha: float, fail_level: float | None, beta: float | None,
                sequential: bool, probability: float, verdict: str, start: int, limit: int) -> int | None:
    from .sequential import rate_rule  # planning is rarely needed: import the rules when it is

    if verdict not in ("pass", "fail", "decide"):
        raise ValueError(f"verdict={verdict!r} must be 'pass', 'fail' or 'decide'")
    probability = check_confidence(probability)
    # what the rule's errors alone may reach: a pass and a fail at the threshold are each an error, at most alpha
    error_bound = (2 if verdict == "decide" else 1) * max(alpha, alpha if beta is None else beta)
    if fail_level is None and rate == threshold and probability >= error_bound:
        return None  # (the floor below says so above the bound; this says so at it too, without a search)
    floor = _fewest_that_can_decide(rate, threshold, alpha, beta, probability, verdict) if fail_level is None else 0
    if floor > limit and floor > start:
        return None  # (what the search finds, after working out rules up to ``limit`` units: seconds)

    def decides(n: int, calibrate: bool = False) -> bool:
        if n < floor:  # (proven not to: the search takes the same steps, without the dynamic programme)
            return False
        rule = rate_rule(threshold, max_n=n, alpha=alpha, fail_level=fail_level, beta=beta, sequential=sequential,
                         calibrate=calibrate)
        return rule.decides_with(rate, probability, verdict)

    found = _search(decides, start, limit)
    if found is None and sequential and probability < error_bound:
        # a probability below what the rule's errors alone may reach (an agent at the threshold decided with
        # probability 0.09 at alpha 0.05): Ville's constants may never reach it where the calibrated rule
        # does (at 29 trials there), so the calibrated rules themselves are searched
        found = _search(functools.partial(decides, calibrate=True), start, limit)
    if found is None or not sequential:  # (one look: no calibration)
        return found
    # one trial at a time: the calibrated rule's answer is not monotone in N (true at 283, false from 284 to 295,
    # true from 296: a review's), so a search by halves would miss the fewest; above ``EXACT_LIMIT`` units the
    # calibrated rule is Ville's, so this looks at a few hundred rules at most
    # (130 -> 163 in a review's case, in the tests; 240 -> 347 for ``agentops-plan --threshold 0.9 --rate 0.9
    # --fail-level 0.8``, its pass with 0.95: 107 calibrated rules, ~8 s of its ~8.5 s on the CI machine)
    while not decides(found, calibrate=True):
        found += 1
        if found > limit:
            return None
    return found


def pass_error_cap(rate: float, threshold: float, fail_level: float | None, alpha: float, beta: float) -> float | None:
    """On the failing side (a true rate at or below the threshold; with a fail level, at or below it) a pass is the
    rule's error: the most its probability is at any number of trials (alpha; beta with a fail level). None
    elsewhere. ``plan`` searches no number of trials that passes more often; ``Plan.lines`` says "never"."""
    if fail_level is None:
        return alpha if rate <= threshold else None
    return beta if rate <= fail_level else None


@dataclass(frozen=True, slots=True)
class Plan:
    """What a campaign against ``rate >= threshold`` needs, when the true rate is ``rate`` (``planning.plan``)."""

    threshold: float
    rate: float
    fail_level: float | None
    alpha: float
    beta: float
    max_trials: int
    pass_80: int | None  # maximum trials with which the sequential rule passes with probability >= 0.8
    pass_95: int | None
    one_look_pass_80: int | None  # the same for one look (no early stopping)
    one_look_pass_95: int | None
    passed: float  # at max_trials, under the sequential rule
    failed: float
    inconclusive: float
    expected_trials: float
    trials_95th: int  # 95th percentile of the trials used
    fewest_to_pass: int | None  # the sequential rule never passes before this many trials (all successes)
    one_look_fewest_to_pass: int  # one look: the fewest trials with which a pass is possible (59 for a p95)

    def lines(self) -> list[str]:
        zone = f", fail below {self.fail_level:g}" if self.fail_level is not None else " (no fail level)"

        cap = pass_error_cap(self.rate, self.threshold, self.fail_level, self.alpha, self.beta)

        def n(x: int | None, probability: float) -> str:
            if x is not None:
                return f"{x:,}"
            return "never" if cap is not None and cap < probability else "more than 10,000"

        fewest = f"{self.fewest_to_pass:,}" if self.fewest_to_pass is not None else f"none within {self.max_trials:,}"
        side, bound = ("the threshold", "alpha") if self.fail_level is None else ("the fail level", "beta")
        never = (f"  (a true rate at or below {side} passes with probability at most {bound} = {cap:g}, at any number "
                 "of trials)") if cap is not None and cap < 0.8 else ""
        return [
            f"rate >= {self.threshold:g}{zone}, true rate {self.rate:g}, alpha {self.alpha:g}, beta {self.beta:g}",
            f"  maximum trials to pass with probability 0.8: {n(self.pass_80, 0.8)} "
            f"(one look: {n(self.one_look_pass_80, 0.8)})",
            f"  maximum trials to pass with probability 0.95: {n(self.pass_95, 0.95)} "
            f"(one look: {n(self.one_look_pass_95, 0.95)})",
            *([never] if never else []),
            f"  with trials={self.max_trials} and early stopping: pass {self.passed:.3f}, fail {self.failed:.3f}, "
            f"inconclusive {self.inconclusive:.3f}; trials used: mean {self.expected_trials:.1f}, "
            f"95th percentile {self.trials_95th}",
            f"  fewest trials that can pass: {fewest} with early stopping, "
            f"{self.one_look_fewest_to_pass} with one look",
        ]


def plan(threshold: float, rate: float, *, fail_level: float | None = None, confidence: float = 0.95,
         power: float = 0.95, max_trials: int | None = None) -> Plan:
    """Plan a campaign: for a true rate ``rate`` against ``rate >= threshold`` (a quantile ``pQ <= T`` is
    ``threshold=Q`` with ``rate`` the share of values within T), the maximum trials that pass with probability
    0.8 and 0.95 under the sequential rule and with one look, and, at ``max_trials`` (default: the 0.95
    figure, else 400), the exact verdict probabilities and the mean and 95th percentile of the trials used.
    """
    from .sequential import fixed_first_pass, rate_rule

    alpha = 1 - check_confidence(confidence)
    beta = alpha if fail_level is None else 1 - check_confidence(power)
    kw = {"alpha": alpha, "fail_level": fail_level, "beta": beta}
    cap = pass_error_cap(rate, threshold, fail_level, alpha, beta)  # (no search where no number passes that often)

    def to_pass(probability: float, sequential: bool) -> int | None:
        if cap is not None and cap < probability:
            return None
        return trials_for(rate, threshold, verdict="pass", probability=probability, sequential=sequential, **kw)

    pass_80, pass_95 = to_pass(0.8, True), to_pass(0.95, True)
    one_80, one_95 = to_pass(0.8, False), to_pass(0.95, False)
    n = max_trials or pass_95 or 400
    rule = rate_rule(threshold, max_n=n, **kw)
    out = rule.outcome(rate)
    return Plan(threshold, rate, fail_level, alpha, beta, n, pass_80, pass_95, one_80, one_95, out.passed, out.failed,
                out.inconclusive, out.expected_n, out.n_quantile(0.95), rule.first_pass(),
                fixed_first_pass(threshold, fail_level, alpha, beta))

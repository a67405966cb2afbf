"""Expectations (``{"completion_rate": ">= 0.90"}``) and the verdicts they get.

A verdict is ``pass`` when the one-sided confidence bound clears the threshold, ``fail`` when the bound
on the other side clearly misses it, and ``inconclusive`` otherwise (with how many trials would decide).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from . import stats
from ._validation import did_you_mean
from .errors import ConfigError, hide_own_frames
from .metrics import REGISTRY, MetricData, listed_metrics
from .settings import faults as _faults  # noqa: F401 (the built-in layers' metrics are declared with their settings:
from .settings import layers as _layers  # noqa: F401  these two import every module of settings that declares one)

__tracebackhide__ = hide_own_frames

VerdictName = Literal["pass", "fail", "inconclusive"]

# --- the threshold grammar: the parser below and the scenario-file JSON Schema (``threshold_patterns``) --
_END = r"(?![\s\S])"  # end of string in both Python and ECMA regexes (``$`` also matches before a final newline)
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_EXP = r"[eE][-+]?\d+"
_ANY_NUM = _NUM + rf"(?:{_EXP})?"
_OP = r"(>=|<=|==|>|<)"
# optional clauses, in this order: an indifference zone (``fail below 0.80`` / ``fail above 0.10`` for rates
# and means, ``fail at p90`` for quantiles), its ``power`` (default 0.95), and a mean's ``cap``
_EXPR = re.compile(rf"^\s*{_OP}\s*({_ANY_NUM})"
                   rf"(?:\s*,\s*fail\s+(?:(below|above)\s+({_ANY_NUM})|at\s+p(\d{{1,2}}(?:\.\d+)?)))?"
                   rf"(?:\s*,\s*power\s+({_ANY_NUM}))?"
                   rf"(?:\s*,\s*cap\s+({_ANY_NUM}))?\s*$")
_QUANTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")
_PASS_K = re.compile(r"^pass\^(0|[1-9]\d{0,8})$")  # (k out of range, pass^0 or pass^1000, is said so below)
#: pass^k: k trials of the same task, all of which must succeed (tau-bench's pass^k); k up to this
MAX_PASS_K = 100
DEFAULT_POWER = 0.95
# what a schema can check without arithmetic: a rate's threshold in [0, 1], a count's whole and >= 0, a
# quantile suffix in (0, 100), a power in [0.5, 1); a number with an exponent, and whether a fail level lies
# on the failing side of its threshold, are left to the parser's checks
_NEG_ZERO = r"-(?:0+(?:\.0*)?|\.0+)"
_RATE_NUM = rf"(?:\+?(?:0+(?:\.\d*)?|0*1(?:\.0*)?|\.\d+)|{_NEG_ZERO}|{_NUM}{_EXP})"
_WHOLE_NUM = rf"(?:\+?(?:\d+(?:\.0*)?|\.0+)|{_NEG_ZERO}|{_NUM}{_EXP})"
_NONNEG_NUM = rf"(?:\+?(?:\d+(?:\.\d*)?|\.\d+)|{_NEG_ZERO}|{_NUM}{_EXP})"
_POSITIVE_NUM = rf"(?:\+?(?:\d*[1-9]\d*(?:\.\d*)?|\d*\.\d*[1-9]\d*)|{_NUM}{_EXP})"  # (a digit that is not 0)
_ZERO = rf"[-+]?(?:0+(?:\.0*)?|\.0+)(?:{_EXP})?"
_QUANTILE_SUFFIX = r"(?:(?:[1-9]\d?|0[1-9])(?:\.\d+)?|0{1,2}\.\d*[1-9]\d*)"
_POWER_NUM = rf"(?:\+?0*\.[5-9]\d*|{_NUM}{_EXP})"
_POWER = rf"(?:\s*,\s*power\s+{_POWER_NUM})?"


def threshold_patterns(metric: str, kind: str, minimum: float | None = None) -> tuple[str, str]:
    """(key pattern, expression pattern) of ``Expectation.parse`` for one metric, as regexes valid in Python
    and ECMA-262 (JSON Schema): what the parser accepts, except a number written with an exponent and a fail
    level on the wrong side of its threshold, which the parser alone checks. (A distribution's mean with a
    declared cap, ``metric.mean``, is ``mean_patterns``.) A distribution whose ``minimum`` is 0 takes no
    threshold below 0, nor ``< 0``, which no value meets."""
    name = re.escape(metric)
    if kind == "rate":
        return rf"^{name}\.?{_END}", rate_expression_pattern()
    if kind == "distribution":
        threshold = rf"(?:(?:>=|<=|>)\s*{_NONNEG_NUM}|<\s*{_POSITIVE_NUM})" if minimum == 0 else \
            rf"(?:>=|<=|>|<)\s*{_ANY_NUM}"
        return (rf"^{name}\.p{_QUANTILE_SUFFIX}$",
                rf"^\s*{threshold}(?:\s*,\s*fail\s+at\s+p{_QUANTILE_SUFFIX})?{_POWER}\s*$")
    return rf"^{name}\.?{_END}", rf"^\s*(?:==\s*{_ZERO}|(?:<=|<)\s*{_WHOLE_NUM})\s*$"


def rate_expression_pattern() -> str:
    """The expression pattern of a rate (and of ``pass^k``): a threshold, optionally a zone and a power."""
    return rf"^\s*(?:>=|<=|>|<)\s*{_RATE_NUM}(?:\s*,\s*fail\s+(?:below|above)\s+{_RATE_NUM})?{_POWER}\s*$"


def mean_patterns(metric: str) -> tuple[str, str]:
    """(key, expression) patterns of a distribution's mean: ``cost_usd_per_task.mean: '<= 0.01, cap 0.05'``."""
    return (rf"^{re.escape(metric)}\.mean$",
            rf"^\s*(?:>=|<=|>|<)\s*{_ANY_NUM}(?:\s*,\s*fail\s+(?:below|above)\s+{_ANY_NUM})?{_POWER}"
            rf"\s*,\s*cap\s+{_ANY_NUM}\s*$")


#: the key pattern of pass^k expectations
PASS_K_PATTERN = r"^pass\^(?:[1-9]\d?|100)$"

Statistic = Literal["rate", "quantile", "mean", "count", "pass^k"]


@dataclass(frozen=True, slots=True)
class Expectation:
    """A threshold on a metric, e.g. ``tokens_per_task.p95 <= 4000``, optionally with an indifference zone.

    ``fail_level`` (``">= 0.90, fail below 0.80"``): the rate at or beyond which the agent must fail with
    probability >= ``power``; for a quantile (``"<= 4000, fail at p90"``) the quantile level that must then
    be beyond the threshold. ``statistic`` says how the expectation is judged: a ``rate`` of trials, a
    ``quantile`` (by its exceedances), a bounded ``mean`` (of a per-trial share, or of a distribution up to
    its declared ``cap``), a zero-tolerance ``count``, or ``pass^k`` (groups of ``group`` trials of the same
    task that must all succeed).
    """

    key: str
    metric: str
    quantile: float | None
    op: str
    threshold: float
    fail_level: float | None = None
    power: float | None = None
    cap: float | None = None
    statistic: Statistic = "rate"
    group: int = 1

    @classmethod
    def parse(cls, key: str, expression: object) -> Expectation:
        """Parse ``key`` (a metric name, ``.pNN`` for a quantile, ``.mean`` for a capped mean, ``pass^k``) and
        ``expression`` (``">= 0.9"``, ``">= 0.9, fail below 0.8, power 0.9"``, ``"<= 0.01, cap 0.05"``)."""
        if not isinstance(key, str):
            raise ConfigError(f"expectation key {key!r} must be a metric name string")
        pass_k = _PASS_K.match(key)
        group = int(pass_k.group(1)) if pass_k else 1
        if pass_k and not 1 <= group <= MAX_PASS_K:
            raise ConfigError(f"expect: {key!r}: k of pass^k must be between 1 and {MAX_PASS_K}")
        metric, _, suffix = ("completion_rate", "", "") if pass_k else key.partition(".")
        if metric not in REGISTRY:
            hint = " (pass^k is written 'pass^3')" if metric.startswith("pass") else ""
            names = listed_metrics()  # (not every rule some scenario of the session declared)
            raise ConfigError(f"expect: unknown metric {metric!r}{did_you_mean(metric, names)}{hint}; "
                              f"metrics: {', '.join(sorted(names))}, pass^k")
        defn = REGISTRY[metric]
        kind = defn.kind
        if isinstance(expression, bool) or not isinstance(expression, str):
            raise ConfigError(f"expect[{key!r}]={expression!r} must be a string like '>= 0.90' or '<= 4000'")
        match = _EXPR.match(expression)
        if not match:
            raise ConfigError(f"expect[{key!r}]={expression!r} is not a threshold expression; write an "
                              "operator (>=, <=, >, <, ==) and a number, e.g. '>= 0.90', optionally followed by "
                              "', fail below 0.80' (or 'fail above', or 'fail at p90' for a quantile), "
                              "', power 0.95' and, for a mean, ', cap 0.05'")
        op, threshold = match.group(1), float(match.group(2))
        side, fail_number, fail_quantile, power_text, cap_text = match.group(3, 4, 5, 6, 7)
        numbers = [threshold] + [float(t) for t in (fail_number, power_text, cap_text) if t is not None]
        if not all(math.isfinite(x) for x in numbers):
            raise ConfigError(f"expect[{key!r}]={expression!r}: the threshold must be a finite number")
        quantile = None
        statistic: Statistic = "pass^k" if pass_k else "count" if kind == "count" else "rate"
        if suffix == "mean" and kind == "distribution":
            statistic = "mean"
        elif suffix:
            q = _QUANTILE.match(suffix)
            if kind != "distribution" or not q or not 0 < float(q.group(1)) < 100:
                raise ConfigError(f"expect: {key!r}: only distribution metrics take a quantile suffix such as "
                                  f"'.p95' (or '.mean' with a cap)"
                                  + ("" if kind == "distribution" else f" ({metric} is a {kind})"))
            quantile = float(q.group(1)) / 100
            statistic = "quantile"
        elif kind == "distribution":
            raise ConfigError(f"expect: {key!r} is a distribution; address a quantile, e.g. '{metric}.p95' (or "
                              f"its mean with a cap, e.g. '{metric}.mean': '<= 100, cap 1000')")
        elif kind == "rate" and not defn.per_trial:
            statistic = "mean"  # a share inside each trial (e.g. of its tool calls), judged with the trial as unit
        upward = op in (">=", ">")
        where = f"expect[{key!r}]={expression!r}"
        if op == "==" and statistic != "count":
            raise ConfigError(f"{where}: a {'rate' if kind == 'rate' else 'quantile'} is judged one-sided; use "
                              f"{'>= or <=' if kind == 'rate' else '<= or >='}")
        if kind == "rate" and not 0 <= threshold <= 1:
            raise ConfigError(f"{where}: a rate threshold must be between 0 and 1")
        if kind == "rate" and ((op == ">" and threshold >= 1) or (op == "<" and threshold <= 0)):
            raise ConfigError(f"{where}: no rate is {op} {threshold:g} (a rate is between 0 and 1): it could never "
                              f"pass; did you mean {'>=' if op == '>' else '<='} {threshold:g}?")
        if statistic == "count":
            if op in (">", ">=") or threshold < 0 or threshold != int(threshold) or (op == "==" and threshold):
                raise ConfigError(f"{where}: a violation count takes '== 0' or '<= N' with N a whole number >= 0")
            if side or fail_quantile or power_text or cap_text:
                raise ConfigError(f"{where}: a violation count takes no fail level, power or cap")
        cap = float(cap_text) if cap_text is not None else None
        if statistic == "mean" and kind == "distribution":
            if cap is None or cap <= 0:
                raise ConfigError(f"{where}: the mean of a distribution needs a declared cap > 0 on the per-trial "
                                  f"value, e.g. '<= 0.01, cap 0.05' (a trial above the cap fails a '<=' mean)")
            if not 0 <= threshold <= cap:
                raise ConfigError(f"{where}: the threshold must be between 0 and the cap {cap:g}")
        elif cap is not None:
            raise ConfigError(f"{where}: only the mean of a distribution ('{metric}.mean') takes a cap")
        low = defn.minimum
        if statistic == "quantile" and low is not None and (threshold < low or (op == "<" and threshold == low)):
            never = "pass" if op in ("<=", "<") else "fail"
            raise ConfigError(f"{where}: {metric} is never below {low:g}{f' {defn.unit}' if defn.unit else ''}: "
                              f"it could never {never}")
        fail_level = None
        if fail_quantile is not None:
            if statistic != "quantile":
                raise ConfigError(f"{where}: 'fail at pNN' is for quantiles; write 'fail below' or 'fail above'")
            level = float(fail_quantile) / 100
            assert quantile is not None
            if not 0 < level < 1 or (level >= quantile if op in ("<=", "<") else level <= quantile):
                below = op in ("<=", "<")
                raise ConfigError(f"{where}: the fail level must be a quantile {'below' if below else 'above'} "
                                  f"p{quantile * 100:g} (the agent fails when even it is "
                                  f"{'above' if below else 'below'} the threshold)")
            fail_level = level
        elif side is not None:
            if statistic == "quantile":
                raise ConfigError(f"{where}: a quantile's fail level is a quantile: write 'fail at p90'")
            level = float(fail_number)
            wanted = "below" if upward else "above"
            if side != wanted or (level >= threshold if upward else level <= threshold):
                raise ConfigError(f"{where}: the fail level must be 'fail {wanted}' a number "
                                  f"{'below' if upward else 'above'} the threshold {threshold:g}")
            top = cap if statistic == "mean" and kind == "distribution" else 1.0
            if not 0 < level < top:
                raise ConfigError(f"{where}: the fail level must be strictly between 0 and {top:g}")
            fail_level = level
        power = None
        if power_text is not None:
            power = float(power_text)
            if fail_level is None:
                raise ConfigError(f"{where}: a power needs a fail level (e.g. '>= 0.90, fail below 0.80, power 0.9')")
            if not 0.5 <= power < 1:
                raise ConfigError(f"{where}: power={power:g} must be in [0.5, 1)")
        return cls(key, metric, quantile, op, threshold, fail_level, power, cap, statistic, group)

    @property
    def expression(self) -> str:
        text = f"{self.op} {self.threshold:g}"
        if self.fail_level is not None:
            if self.statistic == "quantile":
                text += f", fail at p{self.fail_level * 100:g}"
            else:
                text += f", fail {'below' if self.op in ('>=', '>') else 'above'} {self.fail_level:g}"
        if self.power is not None:
            text += f", power {self.power:g}"
        if self.cap is not None:
            text += f", cap {self.cap:g}"
        return text

    @property
    def upward(self) -> bool:
        return self.op in (">=", ">")

    def __str__(self) -> str:
        return f"{self.key} {self.expression}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision on one expectation, with the numbers that decided it and the error rates it keeps.

    ``false_pass`` bounds the probability of a pass when the expectation does not hold (at or beyond the fail
    level, when one is declared); ``false_fail`` the probability of a fail when it holds. ``rule`` says how
    it was decided, ``counting_unit`` what ``n`` counts, ``decided_at`` after how many units it was.
    """

    key: str
    expression: str
    verdict: VerdictName
    estimate: float | None
    bound: float | None
    bound_side: str  # "lower", "upper" or "" (counts)
    threshold: float
    n: int
    confidence: float
    method: str
    note: str = ""
    trials_needed: int | None = None
    wilson: float | None = None
    counting_unit: str = "trial"
    rule: str = ""
    false_pass: float | None = None
    false_fail: float | None = None
    fail_level: float | None = None
    power: float | None = None
    decided_at: int | None = None

    @property
    def decided(self) -> bool:
        return self.verdict != "inconclusive"

    def describe(self) -> str:
        """One line: ``completion_rate >= 0.9: fail (estimate 0.812, lower 0.78 [clopper-pearson 95%])``."""
        parts = [f"estimate {_fmt(self.estimate)}"]
        if self.bound is not None:
            parts.append(f"{self.bound_side} bound {_fmt(self.bound)} [{self.method} {self.confidence:.0%}]")
        unit = self.counting_unit
        # "trial with a destructive call" -> "trials with a destructive call"; "tool call" -> "tool calls"
        unit = "" if unit == "trial" else " " + (
            unit.replace("trial ", "trials ", 1) if unit.startswith("trial ")
            else unit.replace("unit ", "units ", 1) if unit.startswith("unit ") else unit + "s")
        parts.append(f"n={self.n}{unit}")
        text = f"{self.key} {self.expression}: {self.verdict} ({', '.join(parts)})"
        if self.note:
            text += f"; {self.note}"
        return text

    def to_dict(self) -> dict[str, object]:
        return {"key": self.key, "expression": self.expression, "verdict": self.verdict,
                "estimate": _clean(self.estimate), "bound": _clean(self.bound), "bound_side": self.bound_side,
                "threshold": self.threshold, "n": self.n, "confidence": self.confidence, "method": self.method,
                "note": self.note, "trials_needed": self.trials_needed, "wilson": _clean(self.wilson),
                "counting_unit": self.counting_unit, "rule": self.rule, "false_pass": _clean(self.false_pass),
                "false_fail": _clean(self.false_fail), "fail_level": self.fail_level, "power": self.power,
                "decided_at": self.decided_at}


def _clean(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else round(float(v), 10)


def _fmt(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.4g}"


def _holds(value: float, op: str, threshold: float) -> bool:
    return {">=": value >= threshold, ">": value > threshold, "<=": value <= threshold,
            "<": value < threshold, "==": value == threshold}[op]


def success_threshold(exp: Expectation) -> tuple[float, float | None]:
    """The expectation as ``share of successes >= t`` (with fail level f): a ``<=`` rate counts non-events, a
    quantile the values on the right side of its threshold (``pQ <= T``: P(X <= T) >= Q; ``pQ >= T``:
    P(X >= T) >= 1 - Q)."""
    if exp.statistic == "quantile":
        q = exp.quantile or 0.5
        if exp.upward:
            return 1 - q, None if exp.fail_level is None else 1 - exp.fail_level
        return q, exp.fail_level
    if exp.upward:
        return exp.threshold, exp.fail_level
    return 1 - exp.threshold, None if exp.fail_level is None else 1 - exp.fail_level


def rule_errors(exp: Expectation, confidence: float) -> tuple[float, float]:
    """(alpha, beta): the bound on a false fail, and on a false pass at the fail level (alpha without one)."""
    alpha = 1 - confidence
    beta = alpha if exp.fail_level is None else 1 - (exp.power or DEFAULT_POWER)
    return alpha, beta


def rerun_note(exp: Expectation, estimate: float | None, n: int, *, sequential: bool, confidence: float,
               trials_per_unit: float = 1.0) -> tuple[int | None, str]:
    """The planning figure of a final inconclusive verdict: how many trials a rerun with the same rule (the
    sequential one when ``sequential``) needs to decide with probability >= 80% if the true share of successes
    is the observed one; at the threshold itself (which no trial count decides without a fail level), the
    trials that decide with a fail level 0.05 beyond it. Units that are not trials (a pass^k group, a crashed
    trial among all trials) are turned into trials by ``trials_per_unit`` (the observed ratio)."""
    if estimate is None or n == 0:
        return None, ""
    t, f = success_threshold(exp)
    alpha, beta = rule_errors(exp, confidence)
    group = exp.group if exp.statistic == "pass^k" else trials_per_unit
    start = max(1, n // 2)
    needed = stats.trials_for(estimate, t, alpha=alpha, fail_level=f, beta=beta, sequential=sequential,
                              start=start)
    if needed is not None:
        needed = math.ceil(needed * group)
        return needed, (f"a rerun with trials={needed} decides with probability >= 80% if the "
                                f"{'share' if exp.statistic != 'quantile' else 'share within the threshold'} is "
                                f"the observed {estimate:.4g} ({'sequential rule' if sequential else 'one look'})")
    suggested = round(t - 0.05, 6)  # (0.0 for a threshold of 1 - 0.95, which is 0.050000000000000044: none)
    if f is None and suggested > 0:
        power = round(max(0.5, 1 - alpha), 6)  # (the expression says it unless it is the default: a rerun uses it)
        needed = stats.trials_for(estimate, t, alpha=alpha, fail_level=suggested, beta=1 - power,
                                  sequential=sequential, start=start)
        if needed is not None:
            needed = math.ceil(needed * group)
            zone = (f"fail at p{(suggested if not exp.upward else 1 - suggested) * 100:g}"
                    if exp.statistic == "quantile" else
                    f"fail {'below' if exp.upward else 'above'} {suggested if exp.upward else 1 - suggested:g}")
            zone += "" if power == 0.95 else f", power {power:g}"
            return needed, (f"no trial count decides a share this close to the threshold without a fail "
                            f"level; with '{exp.op} {exp.threshold:g}, {zone}' a rerun with "
                            f"trials={needed} decides with probability >= 80%")
    return None, "no trial count up to 10,000 decides at the observed share"


def evaluate(exp: Expectation, data: MetricData, confidence: float = 0.95, *, final: bool = True,
             sequential_rerun: bool = False) -> Verdict:
    """Judge one expectation on a campaign's data in ONE look (no early stopping), at ``confidence``.

    Rates and quantiles: the one-sided exact binomial tests (Clopper-Pearson bounds, order statistics); with a
    fail level, a pass needs the bound at the power's level beyond the fail level. Counts: zero tolerance.
    (A campaign with early stopping is judged by ``pytest_agentops.judge`` instead, trial by trial.)
    ``final=False`` is an interim look, where only ``.decided`` is read: a count cannot pass yet, and an
    inconclusive verdict gets no planning figure (``trials_needed`` is None). A final inconclusive verdict
    says how many trials a rerun needs (``sequential_rerun``: with the sequential rule).
    """
    alpha, beta = rule_errors(exp, confidence)
    unit = REGISTRY[exp.metric].counting_unit if exp.metric in REGISTRY else "trial"
    base = {"key": exp.key, "expression": exp.expression, "threshold": exp.threshold, "confidence": confidence,
            "fail_level": exp.fail_level, "power": exp.power if exp.fail_level is not None else None,
            "counting_unit": unit}
    upward = exp.upward
    one_look = f"one look, exact binomial: false pass <= {beta:.3g}, false fail <= {alpha:.3g}"
    if data.kind == "rate":
        if data.n == 0:
            return Verdict(**base, verdict="inconclusive", estimate=None, bound=None, bound_side="", n=0,
                           method="clopper-pearson", note="no trial had the chance", rule=one_look)
        lo = stats.clopper_pearson_lower(data.k, data.n, confidence)
        hi = stats.clopper_pearson_upper(data.k, data.n, confidence)
        if exp.fail_level is None:  # pass when the bound clears the threshold, fail when the far one misses it
            ok = _holds(lo if upward else hi, exp.op, exp.threshold)
            bad = not _holds(hi if upward else lo, exp.op, exp.threshold)
        else:  # pass when the bound at the power's level clears the fail level; both inside the zone: split
            near = stats.clopper_pearson_lower(data.k, data.n, 1 - beta) if upward else \
                stats.clopper_pearson_upper(data.k, data.n, 1 - beta)
            ok = _holds(near, ">" if upward else "<", exp.fail_level)
            bad = not _holds(hi if upward else lo, exp.op, exp.threshold)
            if ok and bad:
                middle = (exp.threshold + exp.fail_level) / 2
                ok, bad = (data.k / data.n >= middle, data.k / data.n < middle) if upward else \
                    (data.k / data.n <= middle, data.k / data.n > middle)
        k = data.k if upward else data.n - data.k
        verdict: VerdictName = "pass" if ok else "fail" if bad else "inconclusive"
        pass_conf = 1 - beta
        if verdict == "fail":  # the bound that decided: the far side at confidence
            bound = stats.clopper_pearson_upper(data.k, data.n, confidence) if upward else \
                stats.clopper_pearson_lower(data.k, data.n, confidence)
            side, wil = ("upper", stats.wilson_upper(data.k, data.n, confidence)) if upward else \
                ("lower", stats.wilson_lower(data.k, data.n, confidence))
        else:
            bound = stats.clopper_pearson_lower(data.k, data.n, pass_conf) if upward else \
                stats.clopper_pearson_upper(data.k, data.n, pass_conf)
            side, wil = ("lower", stats.wilson_lower(data.k, data.n, pass_conf)) if upward else \
                ("upper", stats.wilson_upper(data.k, data.n, pass_conf))
        needed, note = None, ""
        if verdict == "inconclusive" and final:
            needed, note = rerun_note(exp, k / data.n, data.n, sequential=sequential_rerun, confidence=confidence)
        return Verdict(**base, verdict=verdict, estimate=data.k / data.n, bound=bound, bound_side=side,
                       n=data.n, method="clopper-pearson", trials_needed=needed, wilson=wil, note=note,
                       rule=one_look, false_pass=beta, false_fail=alpha,
                       decided_at=data.n if verdict != "inconclusive" else None)
    if data.kind == "distribution":
        q = exp.quantile or 0.5
        if not data.samples:
            return Verdict(**base, verdict="inconclusive", estimate=None, bound=None, bound_side="", n=0,
                           method="order-statistic", note="no trial had a value", rule=one_look)
        estimate = stats.quantile(data.samples, q)
        t, f = success_threshold(exp)
        within = sum(1 for v in data.samples if _holds(v, exp.op, exp.threshold))
        pass_conf = 1 - beta
        ub = stats.quantile_upper_bound(data.samples, q, pass_conf if not upward else confidence)
        lb = stats.quantile_lower_bound(data.samples, q, pass_conf if upward else confidence)
        if exp.fail_level is None:
            pass_bound, fail_bound = (lb, ub) if upward else (ub, lb)
            ok = pass_bound is not None and _holds(pass_bound, exp.op, exp.threshold)
            bad = fail_bound is not None and not _holds(fail_bound, exp.op, exp.threshold)
            verdict = "pass" if ok else "fail" if bad else "inconclusive"
        else:
            a, b = stats.fixed_boundaries(t, f, alpha, beta, data.n)
            verdict = "pass" if within >= a else "fail" if within <= b else "inconclusive"
        pass_bound, fail_bound = (lb, ub) if upward else (ub, lb)
        note, needed = "", None
        if verdict == "inconclusive" and final:
            first = stats.fixed_first_pass(t, f, alpha, beta)
            if data.n < first:
                needed = first
                note = (f"a one-sided {pass_conf:.0%} bound on p{q * 100:g} needs at least {first} trials "
                        f"(have {data.n}; one look)")
            else:
                needed, note = rerun_note(exp, within / data.n, data.n, sequential=sequential_rerun,
                                          confidence=confidence)
        infinite = sum(1 for v in data.samples if math.isinf(v))
        if infinite and not note:  # e.g. time_to_escalation_s of trials that never escalated
            note = f"{infinite} of {data.n} value(s) are +inf (never reached, e.g. never escalated)"
        shown, side = (fail_bound, "lower" if not upward else "upper") if verdict == "fail" else \
            (pass_bound, "lower" if upward else "upper")
        return Verdict(**base, verdict=verdict, estimate=estimate, bound=shown, bound_side=side, n=data.n,
                       method="order-statistic", note=note, trials_needed=needed, rule=one_look,
                       false_pass=beta, false_fail=alpha, decided_at=data.n if verdict != "inconclusive" else None)
    return count_verdict(exp, data.k, data.n, confidence, final=final, base=base)


def count_verdict(exp: Expectation, violations: int, n: int, confidence: float, *, final: bool,
                  base: dict[str, object] | None = None, decided_at: int | None = None,
                  unit: str | None = None) -> Verdict:
    """Zero tolerance (or a small allowance): fail as soon as more violations than allowed are seen, pass only
    after the last trial, with the upper bound 1 - alpha^(1/n) on the rate over the ``n`` trials that had the
    chance (or the ``n`` units, named by ``unit``, of trials that share a task: their violations may come
    together)."""
    shown = "trial(s)" if unit is None else unit.replace("unit ", "units ", 1)
    unit = unit or (REGISTRY[exp.metric].counting_unit if exp.metric in REGISTRY else "trial")
    base = base or {"key": exp.key, "expression": exp.expression, "threshold": exp.threshold,
                    "confidence": confidence, "counting_unit": unit}
    allowed = exp.threshold - (1 if exp.op == "<" else 0)
    rule = "zero tolerance: fails at the first violation past the allowance, passes only after the last trial"
    if violations > allowed:
        return Verdict(**base, verdict="fail", estimate=float(violations), bound=None, bound_side="", n=n,
                       method="count", note=f"{violations} violation(s)", rule=rule, false_fail=0.0,
                       decided_at=decided_at)
    upper = stats.zero_violation_upper(n, confidence) if violations == 0 else None
    note = f"rate <= {upper:.3g} at {confidence:.0%} over {n} {shown} with the chance" if upper is not None else ""
    return Verdict(**base, verdict="pass" if final else "inconclusive", estimate=float(violations), bound=upper,
                   bound_side="upper" if upper is not None else "", n=n, method="count", note=note, rule=rule,
                   false_fail=0.0)

"""Expectations (``{"completion_rate": ">= 0.90"}``) and the verdicts they get.

A verdict is ``pass`` when the one-sided confidence bound clears the threshold, ``fail`` when the bound
on the other side clearly misses it, and ``inconclusive`` otherwise (with how many trials would decide).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from . import settings as _settings  # noqa: F401 (the built-in layers' metrics are declared with their settings)
from . import stats
from ._validation import did_you_mean
from .errors import ConfigError
from .metrics import REGISTRY, MetricData

VerdictName = Literal["pass", "fail", "inconclusive"]

# --- the threshold grammar: the parser below and the scenario-file JSON Schema (``threshold_patterns``) --
_END = r"(?![\s\S])"  # end of string in both Python and ECMA regexes (``$`` also matches before a final newline)
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_EXP = r"[eE][-+]?\d+"
_ANY_NUM = _NUM + rf"(?:{_EXP})?"
_EXPR = re.compile(rf"^\s*(>=|<=|==|>|<)\s*({_ANY_NUM})\s*$")
_QUANTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")
# what a schema can check without arithmetic: a rate's threshold in [0, 1], a count's whole and >= 0, a
# quantile suffix in (0, 100); a number with an exponent is left to the parser's range checks
_NEG_ZERO = r"-(?:0+(?:\.0*)?|\.0+)"
_RATE_NUM = rf"(?:\+?(?:0+(?:\.\d*)?|0*1(?:\.0*)?|\.\d+)|{_NEG_ZERO}|{_NUM}{_EXP})"
_WHOLE_NUM = rf"(?:\+?(?:\d+(?:\.0*)?|\.0+)|{_NEG_ZERO}|{_NUM}{_EXP})"
_ZERO = rf"[-+]?(?:0+(?:\.0*)?|\.0+)(?:{_EXP})?"
_QUANTILE_SUFFIX = r"(?:(?:[1-9]\d?|0[1-9])(?:\.\d+)?|0{1,2}\.\d*[1-9]\d*)"


def threshold_patterns(metric: str, kind: str) -> tuple[str, str]:
    """(key pattern, expression pattern) of ``Expectation.parse`` for one metric, as regexes valid in Python
    and ECMA-262 (JSON Schema): what the parser accepts, except a threshold written with an exponent, whose
    range the parser alone checks."""
    name = re.escape(metric)
    if kind == "rate":
        return rf"^{name}\.?{_END}", rf"^\s*(?:>=|<=|>|<)\s*{_RATE_NUM}\s*$"
    if kind == "distribution":
        return rf"^{name}\.p{_QUANTILE_SUFFIX}$", rf"^\s*(?:>=|<=|>|<)\s*{_ANY_NUM}\s*$"
    return rf"^{name}\.?{_END}", rf"^\s*(?:==\s*{_ZERO}|(?:<=|<)\s*{_WHOLE_NUM})\s*$"


@dataclass(frozen=True, slots=True)
class Expectation:
    """A threshold on a metric, e.g. ``tokens_per_task.p95 <= 4000``."""

    key: str
    metric: str
    quantile: float | None
    op: str
    threshold: float

    @classmethod
    def parse(cls, key: str, expression: object) -> Expectation:
        """Parse ``key`` (a metric name, ``.pNN`` for a quantile) and ``expression`` (``">= 0.9"``)."""
        if not isinstance(key, str):
            raise ConfigError(f"expectation key {key!r} must be a metric name string")
        metric, _, suffix = key.partition(".")
        if metric not in REGISTRY:
            raise ConfigError(f"expect: unknown metric {metric!r}{did_you_mean(metric, REGISTRY)}; "
                              f"metrics: {', '.join(sorted(REGISTRY))}")
        kind = REGISTRY[metric].kind
        if isinstance(expression, bool) or not isinstance(expression, str):
            raise ConfigError(f"expect[{key!r}]={expression!r} must be a string like '>= 0.90' or '<= 4000'")
        match = _EXPR.match(expression)
        if not match:
            raise ConfigError(f"expect[{key!r}]={expression!r} is not a threshold expression; write an "
                              "operator (>=, <=, >, <, ==) and a number, e.g. '>= 0.90'")
        op, threshold = match.group(1), float(match.group(2))
        if not math.isfinite(threshold):
            raise ConfigError(f"expect[{key!r}]={expression!r}: the threshold must be a finite number")
        quantile = None
        if suffix:
            q = _QUANTILE.match(suffix)
            if kind != "distribution" or not q or not 0 < float(q.group(1)) < 100:
                raise ConfigError(f"expect: {key!r}: only distribution metrics take a quantile suffix such as "
                                  f"'.p95'" + ("" if kind == "distribution" else f" ({metric} is a {kind})"))
            quantile = float(q.group(1)) / 100
        elif kind == "distribution":
            raise ConfigError(f"expect: {key!r} is a distribution; address a quantile, e.g. '{metric}.p95'")
        if kind == "rate":
            if op == "==":
                raise ConfigError(f"expect[{key!r}]={expression!r}: a rate is judged one-sided; use >= or <=")
            if not 0 <= threshold <= 1:
                raise ConfigError(f"expect[{key!r}]={expression!r}: a rate threshold must be between 0 and 1")
        if kind == "distribution" and op == "==":
            raise ConfigError(f"expect[{key!r}]={expression!r}: a quantile is judged one-sided; use <= or >=")
        if kind == "count" and (op in (">", ">=") or threshold < 0 or threshold != int(threshold)
                                or (op == "==" and threshold)):
            raise ConfigError(f"expect[{key!r}]={expression!r}: a violation count takes '== 0' or "
                              "'<= N' with N a whole number >= 0")
        return cls(key, metric, quantile, op, threshold)

    @property
    def expression(self) -> str:
        return f"{self.op} {self.threshold:g}"

    def __str__(self) -> str:
        return f"{self.key} {self.expression}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision on one expectation, with the numbers that decided it."""

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

    @property
    def decided(self) -> bool:
        return self.verdict != "inconclusive"

    def describe(self) -> str:
        """One line: ``completion_rate >= 0.9: fail (estimate 0.812, lower 0.78 [clopper-pearson 95%])``."""
        parts = [f"estimate {_fmt(self.estimate)}"]
        if self.bound is not None:
            parts.append(f"{self.bound_side} bound {_fmt(self.bound)} [{self.method} {self.confidence:.0%}]")
        parts.append(f"n={self.n}")
        text = f"{self.key} {self.expression}: {self.verdict} ({', '.join(parts)})"
        if self.note:
            text += f"; {self.note}"
        return text

    def to_dict(self) -> dict[str, object]:
        return {"key": self.key, "expression": self.expression, "verdict": self.verdict,
                "estimate": _clean(self.estimate), "bound": _clean(self.bound), "bound_side": self.bound_side,
                "threshold": self.threshold, "n": self.n, "confidence": self.confidence, "method": self.method,
                "note": self.note, "trials_needed": self.trials_needed, "wilson": _clean(self.wilson)}


def _clean(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else round(float(v), 10)


def _fmt(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.4g}"


def _holds(value: float, op: str, threshold: float) -> bool:
    return {">=": value >= threshold, ">": value > threshold, "<=": value <= threshold,
            "<": value < threshold, "==": value == threshold}[op]


def evaluate(exp: Expectation, data: MetricData, confidence: float = 0.95, *, final: bool = True) -> Verdict:
    """Judge one expectation on a campaign's data at ``confidence`` (one-sided).

    ``final=False`` is an interim look, where only ``.decided`` is read: a count cannot pass yet, and an
    inconclusive verdict gets no "more trials would decide" planning figure (``trials_needed`` is None).
    """
    base = {"key": exp.key, "expression": exp.expression, "threshold": exp.threshold, "confidence": confidence}
    upward = exp.op in (">=", ">")
    if data.kind == "rate":
        if data.n == 0:
            return Verdict(**base, verdict="inconclusive", estimate=None, bound=None, bound_side="", n=0,
                           method="clopper-pearson", note="no trial had the chance")
        lo = stats.clopper_pearson_lower(data.k, data.n, confidence)
        hi = stats.clopper_pearson_upper(data.k, data.n, confidence)
        if upward:
            ok, bad, side, wil = _holds(lo, exp.op, exp.threshold), not _holds(hi, exp.op, exp.threshold), \
                "lower", stats.wilson_lower(data.k, data.n, confidence)
        else:
            ok, bad, side, wil = _holds(hi, exp.op, exp.threshold), not _holds(lo, exp.op, exp.threshold), \
                "upper", stats.wilson_upper(data.k, data.n, confidence)
        verdict: VerdictName = "pass" if ok else "fail" if bad else "inconclusive"
        bound = (hi if upward else lo) if verdict == "fail" else (lo if upward else hi)
        side = ("upper" if upward else "lower") if verdict == "fail" else side
        needed = None
        if verdict == "inconclusive" and final:
            needed = stats.trials_to_decide(data.k, data.n, exp.threshold, ">=" if upward else "<=", confidence)
        return Verdict(**base, verdict=verdict, estimate=data.k / data.n, bound=bound, bound_side=side,
                       n=data.n, method="clopper-pearson", trials_needed=needed, wilson=wil,
                       note=_needed_note(needed, data.n))
    if data.kind == "distribution":
        q = exp.quantile or 0.5
        if not data.samples:
            return Verdict(**base, verdict="inconclusive", estimate=None, bound=None, bound_side="", n=0,
                           method="order-statistic", note="no trial had a value")
        estimate = stats.quantile(data.samples, q)
        ub = stats.quantile_upper_bound(data.samples, q, confidence)
        lb = stats.quantile_lower_bound(data.samples, q, confidence)
        pass_bound, fail_bound = (lb, ub) if upward else (ub, lb)
        ok = pass_bound is not None and _holds(pass_bound, exp.op, exp.threshold)
        bad = fail_bound is not None and not _holds(fail_bound, exp.op, exp.threshold)
        verdict = "pass" if ok else "fail" if bad else "inconclusive"
        note, needed = "", None
        if verdict == "inconclusive" and final:
            minimum = stats.min_trials_for_quantile_bound(q if not upward else 1 - q, confidence)
            if data.n < minimum:
                needed = minimum
                note = (f"a one-sided {confidence:.0%} bound on p{q * 100:g} needs at least {minimum} trials "
                        f"(have {data.n})")
            else:
                misses = sum(1 for v in data.samples if not _holds(v, exp.op, exp.threshold))
                needed = stats.trials_to_decide(misses, data.n, 1 - q if not upward else q, "<=", confidence)
                note = _needed_note(needed, data.n)
        infinite = sum(1 for v in data.samples if math.isinf(v))
        if infinite and not note:  # e.g. time_to_escalation_s of trials that never escalated
            note = f"{infinite} of {data.n} value(s) are +inf (never reached, e.g. never escalated)"
        shown, side = (fail_bound, "lower" if not upward else "upper") if verdict == "fail" else \
            (pass_bound, "lower" if upward else "upper")
        return Verdict(**base, verdict=verdict, estimate=estimate, bound=shown, bound_side=side, n=data.n,
                       method="order-statistic", note=note, trials_needed=needed)
    # count: zero tolerance (or a small allowance)
    allowed = exp.threshold - (1 if exp.op == "<" else 0)
    if data.k > allowed:
        return Verdict(**base, verdict="fail", estimate=float(data.k), bound=None, bound_side="", n=data.n,
                       method="count", note=f"{data.k} violation(s)")
    upper = stats.zero_violation_upper(data.n, confidence) if data.k == 0 else None
    note = (f"rate <= {upper:.3g} at {confidence:.0%} over {data.n} trial(s) with the chance"
            if upper is not None else "")
    return Verdict(**base, verdict="pass" if final else "inconclusive", estimate=float(data.k), bound=upper,
                   bound_side="upper" if upper is not None else "", n=data.n, method="count", note=note)


def _needed_note(needed: int | None, n: int) -> str:
    if needed is None:
        return ""
    return f"about {needed - n} more trials would decide at the observed rate"

"""The agent metrics, computed from trial records. Pure functions: no pytest, no I/O.

Each metric has a kind that decides how it is estimated and judged:
``rate`` (successes out of chances, exact binomial bounds), ``distribution`` (per-trial values,
quantiles with order-statistic bounds) and ``count`` (zero-tolerance violations).

Each also says what it counts (``counting_unit``): a trial, a trial of some kind (``crashed trial``), or
something inside a trial (``tool call``). A rate of things inside trials is judged with the TRIAL as the unit
(the share of each trial's chances that succeeded, a bounded per-trial value), because the things inside one
trial are correlated: a tool that is down fails every call of that trial.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

from ._frozen import EMPTY, FrozenMap
from .errors import ConfigError, hide_own_frames
from .lazy_numpy import numpy

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    from . import stats
    from .records import TrialRecord

MetricKind = Literal["rate", "distribution", "count"]
QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True, slots=True)
class MetricDef:
    """How to read one metric off a trial record.

    ``extract`` returns, per kind: rate -> (successes, chances); distribution -> a float or None
    (not applicable to this trial); count -> (violations, had_the_chance). ``unit`` is the unit of measure
    of a distribution's values (``tokens``); ``counting_unit`` what one chance (rate), value (distribution) or
    chance to violate (count) is: ``trial`` or a kind of trial (``crashed trial``: at most one chance per
    trial, each trial an independent unit), or something inside a trial (``tool call``), whose rate is then
    judged trial by trial.

    ``batch`` (optional) computes over all the records at once what ``collect`` sums from ``extract``, from a
    ``TrialColumns`` of them: rate -> (successes, chances, per-trial shares of the trials with a chance; the
    shares are read only when the counting unit is not a trial), distribution -> the values (None left out, in
    record order, as floats), count -> (violations, trials that had the chance). It must give exactly what the
    records one by one through ``extract`` give (``tests/test_post_identical.py`` checks each registered one).

    ``minimum`` (a distribution's, optional) is the least value it can take (``0`` for tokens, costs, times and
    counts): a threshold below it is refused, as it could never pass (``<= -5``) or never fail (``>= -5``).
    """

    name: str
    kind: MetricKind
    extract: Callable[[TrialRecord], Any]
    description: str
    unit: str = ""
    counting_unit: str = "trial"
    batch: Callable[[TrialColumns], Any] | None = field(default=None, compare=False, repr=False)
    minimum: float | None = None

    @property
    def per_trial(self) -> bool:
        """Whether each trial is one unit of this metric (``trial``, ``crashed trial``, ``trial with ...``)."""
        unit = self.counting_unit
        return unit == "trial" or unit.endswith(" trial") or unit.startswith("trial ")


REGISTRY: dict[str, MetricDef] = {}

#: The package's own metrics in the order ``REGISTRY`` keeps them (a campaign's metrics, reports and listings
#: follow it), whichever of the modules that declare them was imported first: ``metrics`` declares the first
#: nine, ``settings.injection``, ``settings.model``, ``settings.trajectory`` and ``settings.layers`` the rest.
#: Metrics registered by code of yours follow them, in the order they were registered.
BUILTIN_ORDER = ("completion_rate", "tool_success_rate", "escalation_rate", "budget_exceeded_rate",
                 "tokens_per_task", "cost_usd_per_task", "time_to_escalation_s", "unconfirmed_destructive_calls",
                 "blocked_destructive_rate", "injection_success_rate", "injected_actions", "context_utilization",
                 "steps_per_task", "redundant_calls", "loop_rate", "rule_violations", "rule_violation_rate",
                 "resume_success_rate", "duplicate_side_effects", "tokens_after_crash", "budget_alert_rate")
_RANK = {name: rank for rank, name in enumerate(BUILTIN_ORDER)}

_BUILTIN: set[str] = set()
_SCOPED: set[str] = set()


def register_metric(defn: MetricDef, *, builtin: bool = False, scoped: bool = False) -> MetricDef:
    """Add a metric (a harness layer registers its own when its module is imported); a name is never
    silently redefined. ``builtin`` marks the package's own (what the shipped scenario schema lists);
    ``scoped`` a metric of one scenario's own declarations (a trajectory rule's): left out of a campaign's
    metrics when no trial had the chance, even a count (other counts are always shown)."""
    # (a module of the package's run again, as pytester's in-process runs do after dropping it, declares its metrics
    # again with new functions: taken, where a metric of yours redefined is refused)
    if defn.name in REGISTRY and REGISTRY[defn.name] != defn and not (builtin and defn.name in _BUILTIN):
        raise ConfigError(f"metric {defn.name!r} is already registered")
    REGISTRY[defn.name] = defn
    if builtin:
        _BUILTIN.add(defn.name)
    if scoped:
        _SCOPED.add(defn.name)
    if defn.name in _RANK:  # (one of the package's: its place; yours come last as they are registered)
        names = list(REGISTRY)
        order = sorted(names, key=lambda name: _RANK.get(name, len(_RANK)))  # (stable: yours as registered)
        if order != names:  # (in place: modules hold ``REGISTRY`` itself)
            items = [(name, REGISTRY[name]) for name in order]
            REGISTRY.clear()
            REGISTRY.update(items)
    return defn


def builtin_metrics() -> dict[str, MetricDef]:
    """The package's own metrics (not those registered by code of yours), by name."""
    return {name: REGISTRY[name] for name in REGISTRY if name in _BUILTIN}


def listed_metrics() -> list[str]:
    """The metric names a message lists: every registered one but the scoped ones (one scenario's rules)."""
    return [name for name in REGISTRY if name not in _SCOPED]


def trial_rate(pred: Callable[[TrialRecord], bool | None]) -> Callable[[TrialRecord], tuple[int, int]]:
    """A rate over trials: ``pred`` says whether a trial succeeded (None: it had no chance)."""
    def extract(record: TrialRecord) -> tuple[int, int]:
        value = pred(record)
        return (0, 0) if value is None else (int(bool(value)), 1)
    return extract


def outcome_rate(outcome: str) -> Callable[[TrialRecord], tuple[int, int]]:
    """``trial_rate(lambda r: r.outcome == outcome)``, which says so (``extract._agentops_outcome``: a judge fed all the
    records at once compares their outcomes)."""
    extract = trial_rate(lambda r: r.outcome == outcome)
    extract._agentops_outcome = outcome  # type: ignore[attr-defined]
    return extract


class TrialColumns:
    """The trial records of a campaign read column by column for the metrics' ``batch`` functions: each column
    (a field of every record, or what a layer recorded in each) is read once and shared by every metric."""

    __slots__ = ("_cache", "records")

    def __init__(self, records: Sequence[TrialRecord]):
        self.records = records
        self._cache: dict[Any, Any] = {}

    def __len__(self) -> int:
        return len(self.records)

    def attr(self, name: str) -> list[Any] | tuple[Any, ...]:
        """``[record.<name> for record in records]`` (the fields the package's metrics read are read together,
        in one pass over the records)."""
        column = self._cache.get(name)
        if column is None:
            read = getattr(self.records, "column", None)
            if read is not None:  # a campaign's RecordStore: the field as it keeps it, no record made
                column = self._cache[name] = read(name)
                return column
            if name in _PREFETCH and "prefetched" not in self._cache:
                self._cache["prefetched"] = True
                try:
                    rows = list(map(_PREFETCH_GET, self.records))
                except AttributeError:  # (records of another kind, without every field: one field at a time)
                    rows = None
                if rows is not None:
                    columns = zip(*rows, strict=True) if rows else itertools.repeat(())
                    self._cache.update(zip(_PREFETCH, columns, strict=False))
                    return self._cache[name]
            column = self._cache[name] = list(map(operator.attrgetter(name), self.records))
        return column

    def layer(self, name: str) -> list[Any] | None:
        """``[record.layer(name) for record in records]``, or None when no record has that layer."""
        key = ("layer", name)
        if key not in self._cache:
            maps = self._layer_maps()
            present = name in self._layer_names()
            self._cache[key] = list(map(dict.get, maps, itertools.repeat(name))) if present else None
        return self._cache[key]

    def present(self, name: str) -> list[Any]:
        """What the layer ``name`` recorded, in record order, for the records that have it."""
        key = ("present", name)
        if key not in self._cache:
            column = self.layer(name)
            if column is None:
                self._cache[key] = []
            else:  # (every record has it, the usual case for an always-on layer: the same list, not a copy)
                present = list(filter(_NOT_NONE, column))
                self._cache[key] = column if len(present) == len(column) else present
        return self._cache[key]

    def cached(self, key: Any, make: Callable[[TrialColumns], Any]) -> Any:
        """``make(self)`` once per key (what several metrics derive from the same columns)."""
        if key not in self._cache:
            self._cache[key] = make(self)
        return self._cache[key]

    def _layer_maps(self) -> list[Any]:
        maps = self._cache.get("layer maps")
        if maps is None:  # each record's layers as a plain dict (a FrozenMap's own; read at C speed)
            layers = self.attr("layers")
            try:
                maps = list(map(operator.attrgetter("_data"), layers))
            except AttributeError:
                maps = None
            if maps is None or not set(map(type, maps)) <= {dict}:
                maps = [dict(m.items()) for m in layers]
            self._cache["layer maps"] = maps
        return maps

    def _layer_names(self) -> set[Any]:
        names = self._cache.get("layer names")
        if names is None:
            names = self._cache["layer names"] = set().union(*self._layer_maps())
        return names


#: The record fields the package's metrics read: read in one pass (a record's fields share its memory).
_PREFETCH = ("outcome", "tool_calls", "tool_failures", "input_tokens", "output_tokens", "cost_usd",
             "unrecovered_fault_s", "unconfirmed_destructive", "destructive_attempts", "blocked_calls", "layers")
_PREFETCH_GET = operator.attrgetter(*_PREFETCH)
_NOT_NONE = functools.partial(operator.is_not, None)
_ZEROS = itertools.repeat(0)


def _outcome_share(outcome: str) -> Callable[[TrialColumns], tuple[int, int, tuple[()]]]:
    """The batch of ``trial_rate(lambda r: r.outcome == outcome)``."""
    def batch(columns: TrialColumns) -> tuple[int, int, tuple[()]]:
        return columns.attr("outcome").count(outcome), len(columns), ()
    return batch


def _tool_success(columns: TrialColumns) -> tuple[int, int, list[float]]:
    calls = columns.attr("tool_calls")
    successes = list(map(operator.sub, calls, columns.attr("tool_failures")))
    return sum(successes), sum(calls), [k / n for k, n in zip(successes, calls, strict=True) if n]


def _floats(values: Iterable[Any]) -> array[float]:
    """The values that are not None, as floats (unboxed: a distribution's samples are boxed once, shared)."""
    return array("d", map(float, filter(_NOT_NONE, values)))


def _tokens(columns: TrialColumns) -> array[float]:
    return array("d", map(operator.add, columns.attr("input_tokens"), columns.attr("output_tokens")))


def _time_to_escalation(columns: TrialColumns) -> tuple[float, ...]:
    """``TrialRecord.time_to_escalation_s`` of the trials with an unrecovered fault, from the columns."""
    onsets = columns.attr("unrecovered_fault_s")
    if all(onset is None for onset in onsets):
        return ()
    out: list[float] = []
    for onset, escalated, outcome in zip(onsets, columns.attr("escalated_at_s"), columns.attr("outcome"),
                                         strict=True):
        if onset is None:
            continue
        if escalated is not None:
            out.append(max(0.0, escalated - onset))
        elif outcome != "completed":
            out.append(math.inf)
    return _floats(out)


def _unconfirmed(columns: TrialColumns) -> tuple[int, int]:
    attempts = columns.attr("destructive_attempts")
    return sum(columns.attr("unconfirmed_destructive")), sum(map(bool, map(operator.gt, attempts, _ZEROS)))


def _blocked(columns: TrialColumns) -> tuple[int, int, tuple[()]]:
    attempts = columns.attr("destructive_attempts")
    if not any(attempts):
        return 0, 0, ()
    blocked = [b > 0 for b, a in zip(columns.attr("blocked_calls"), attempts, strict=True) if a]
    return sum(1 for b in blocked if b), len(blocked), ()


register_metric(MetricDef("completion_rate", "rate", outcome_rate("completed"),
                          "share of trials whose world passed the scenario's check",
                          batch=_outcome_share("completed")), builtin=True)
register_metric(MetricDef("tool_success_rate", "rate",
                          lambda r: (r.tool_calls - r.tool_failures, r.tool_calls),
                          "share of a trial's tool calls that succeeded, averaged over the trials with a tool call "
                          "(judged with the trial as the unit; k and n count calls)", counting_unit="tool call",
                          batch=_tool_success), builtin=True)
register_metric(MetricDef("escalation_rate", "rate", outcome_rate("escalated"),
                          "share of trials handed to a human", batch=_outcome_share("escalated")), builtin=True)
register_metric(MetricDef("budget_exceeded_rate", "rate",
                          outcome_rate("budget_exceeded"),
                          "share of trials stopped by the token/cost circuit breaker",
                          batch=_outcome_share("budget_exceeded")), builtin=True)
register_metric(MetricDef("tokens_per_task", "distribution", lambda r: float(r.tokens),
                          "input + output tokens of a trial", "tokens", batch=_tokens, minimum=0.0), builtin=True)
register_metric(MetricDef("cost_usd_per_task", "distribution", lambda r: r.cost_usd,
                          "USD cost of a trial from the price table", "USD",
                          batch=lambda c: _floats(c.attr("cost_usd")), minimum=0.0), builtin=True)
register_metric(MetricDef("time_to_escalation_s", "distribution", lambda r: r.time_to_escalation_s,
                          "virtual seconds from the first unrecovered fault to escalation", "s",
                          "trial with an unrecovered fault", batch=_time_to_escalation, minimum=0.0), builtin=True)
register_metric(MetricDef("unconfirmed_destructive_calls", "count",
                          lambda r: (r.unconfirmed_destructive, r.destructive_attempts > 0),
                          "destructive tool calls made without a matching human confirmation",
                          counting_unit="trial with a destructive call", batch=_unconfirmed), builtin=True)
register_metric(MetricDef("blocked_destructive_rate", "rate",  # the confirmation gate under enforce=True
                          trial_rate(lambda r: r.blocked_calls > 0 if r.destructive_attempts else None),
                          "share of trials with a destructive call in which the gate blocked an unconfirmed one",
                          counting_unit="trial with a destructive call", batch=_blocked), builtin=True)
@dataclass(frozen=True, slots=True)
class MetricData:
    """The raw material of one metric over a campaign."""

    name: str
    kind: MetricKind
    k: int = 0  # rate: successes; count: total violations
    n: int = 0  # rate: chances; distribution: samples; count: trials that had the chance
    samples: tuple[float, ...] = field(default=(), repr=False)
    shares: tuple[float, ...] = field(default=(), repr=False)  # rate of things inside trials: per-trial shares


def collect(records: Iterable[TrialRecord], names: Iterable[str] | None = None) -> dict[str, MetricData]:
    """Gather every (None) or the named metric's data from trial records, in record order (a campaign's
    ``RecordStore`` read column by column, its records not made)."""
    if not isinstance(records, (list, tuple)) and not hasattr(records, "column"):
        records = list(records)
    columns = TrialColumns(records)
    return {name: metric_data(REGISTRY[name], columns) for name in (REGISTRY if names is None else names)}


def metric_data(defn: MetricDef, columns: TrialColumns) -> MetricData:
    """One metric's data from the records of ``columns`` (by its ``batch`` when it has one)."""
    name, kind = defn.name, defn.kind
    if defn.batch is not None:
        got = defn.batch(columns)
        if kind == "distribution":
            return MetricData(name, kind, 0, len(got), _boxed(_unboxed(got)))
        if kind == "rate" and not defn.per_trial:
            return MetricData(name, kind, got[0], got[1], shares=_boxed(_unboxed(got[2])))
        return MetricData(name, kind, got[0], got[1])
    records = columns.records
    extract = defn.extract
    if kind == "distribution":
        values = tuple(float(v) for r in records if (v := extract(r)) is not None)
        return MetricData(name, "distribution", 0, len(values), values)
    k = n = 0
    shares: list[float] = []
    if kind == "rate":  # (successes, chances) per trial
        for record in records:
            successes, chances = extract(record)
            k += successes
            n += chances
            if chances:
                shares.append(successes / chances)
        if not defn.per_trial:
            return MetricData(name, "rate", k, n, shares=tuple(shares))
    else:  # count: (violations, whether the trial had the chance) per trial
        for record in records:
            violations, had_chance = extract(record)
            k += violations
            n += 1 if had_chance else 0
    return MetricData(name, kind, k, n)


def _unboxed(values: Iterable[float]) -> array[float]:
    return values if isinstance(values, array) and values.typecode == "d" else array("d", values)


#: Below this many values a metric's samples are boxed one float object each (``tuple(values)``: ~24 KB per 1,000,
#: less than finding the distinct values costs in time); from it on, equal values share one object.
_BOX_SHARED_FROM = 4096


def _boxed(values: array[float]) -> tuple[float, ...]:
    """``tuple(values)`` with equal values (bit for bit: -0.0 is not 0.0) one float object: a campaign's samples
    repeat a few values (0 tokens, 5 steps), and 100,000 float objects per metric would cost 2.4 MB each. (The
    distinct bit patterns found by numpy, each boxed once, then picked per value at C speed.)"""
    if len(values) < _BOX_SHARED_FROM:
        return tuple(values)
    np = numpy()  # (not imported at the top: an isolated agent's process loads this module, not numpy)
    bits = np.frombuffer(values, dtype=np.uint64)
    distinct, which = np.unique(bits, return_inverse=True)
    boxed = distinct.view(np.float64).tolist()
    return tuple(map(boxed.__getitem__, which.tolist()))


@dataclass(frozen=True, slots=True)
class MetricSummary:
    """What the report shows for one metric: estimate and bounds (kind-dependent fields).

    For a rate of things inside trials (``counting_unit`` not a trial) ``estimate`` is the mean over trials of
    each trial's share, ``lower``/``upper`` its anytime-valid betting bounds, ``trials`` how many trials had a
    chance and ``pooled`` the share of all chances (``k`` / ``n``); there are no Wilson bounds.
    """

    name: str
    kind: MetricKind
    n: int
    estimate: float | None
    lower: float | None = None
    upper: float | None = None
    wilson_lower: float | None = None
    wilson_upper: float | None = None
    quantiles: Mapping[str, float] = field(default=EMPTY)
    mean: float | None = None
    max: float | None = None
    total: int | None = None
    infinite: int = 0  # distribution: samples that are +inf (time_to_escalation_s: never escalated)
    counting_unit: str = "trial"
    trials: int | None = None
    pooled: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "n": self.n, "estimate": _num(self.estimate),
                               "counting_unit": self.counting_unit}
        if self.kind == "rate":
            out.update(k=self.total, lower=_num(self.lower), upper=_num(self.upper),
                       wilson_lower=_num(self.wilson_lower),
                       wilson_upper=_num(self.wilson_upper))
            if self.trials is not None:
                out.update(trials=self.trials, pooled=_num(self.pooled), inference_unit="trial")
        elif self.kind == "distribution":
            out.update({k: _num(v) for k, v in self.quantiles.items()}, mean=_num(self.mean), max=_num(self.max))
            if self.infinite:  # their quantiles, mean and max are written as null (JSON has no Infinity)
                out["infinite"] = self.infinite
        else:
            out.update(total=self.total, rate_upper=_num(self.upper))
        return out


def _num(value: float | None) -> float | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):  # JSON has no nan/inf
        return None
    return round(float(value), 10)


def rate_bounds(k: int, n: int, confidence: float) -> stats.RateBounds:
    """``stats.rate_bounds``, remembered for plain int counts and a float confidence: a campaign's rates often
    share their k and n (a rule's rate and the rate of all rules; no escalation, no budget stop), and so do
    the campaigns of a rerun."""
    if type(k) is int and type(n) is int and type(confidence) is float:
        return _rate_bounds(k, n, confidence)
    return _stats().rate_bounds(k, n, confidence)


@functools.lru_cache(maxsize=1024)
def _rate_bounds(k: int, n: int, confidence: float) -> stats.RateBounds:
    return _stats().rate_bounds(k, n, confidence)


@functools.cache
def _stats() -> ModuleType:
    """The statistics (``stats``, and numpy with them), imported on first use and held (``lazy_numpy``)."""
    from . import stats

    return stats


def summarize(data: MetricData, confidence: float = 0.95) -> MetricSummary:
    """Estimate and one-sided bounds for one metric."""
    np, stats = numpy(), _stats()  # (computed in pytest's process: an isolated agent's loads neither)
    unit = REGISTRY[data.name].counting_unit if data.name in REGISTRY else "trial"
    if data.kind == "rate":
        if data.n == 0:
            return MetricSummary(data.name, "rate", 0, None, counting_unit=unit)
        if data.name in REGISTRY and not REGISTRY[data.name].per_trial:  # the trial is the unit
            lower, upper = stats.betting_bounds(data.shares, confidence)
            return MetricSummary(data.name, "rate", data.n, sum(data.shares) / len(data.shares), lower, upper,
                                 total=data.k, counting_unit=unit, trials=len(data.shares), pooled=data.k / data.n)
        b = rate_bounds(data.k, data.n, confidence)
        return MetricSummary(data.name, "rate", data.n, b.estimate, b.lower, b.upper, b.wilson_lower,
                             b.wilson_upper, total=data.k, counting_unit=unit)
    if data.kind == "distribution":
        if not data.samples:
            return MetricSummary(data.name, "distribution", 0, None)
        arr = np.sort(np.asarray(data.samples, dtype=np.float64))  # one sort for the three quantiles
        if np.isnan(arr).any():
            stats.quantile(data.samples, 0.5)  # (raises what it raises for NaN)
        # (a call each: one call for the three partitions the samples otherwise, and where -0.0 and 0.0 are mixed
        # it can pick the other zero, which the report shows)
        qs = {f"p{round(q * 100)}": float(np.quantile(arr, q, method="inverted_cdf")) for q in QUANTILES}
        return MetricSummary(data.name, "distribution", data.n, qs["p50"], quantiles=FrozenMap(qs),
                             mean=sum(data.samples) / data.n, max=max(data.samples),
                             infinite=int(np.isinf(arr).sum()), counting_unit=unit)
    upper = stats.zero_violation_upper(data.n, confidence) if data.k == 0 else None
    return MetricSummary(data.name, "count", data.n, float(data.k), upper=upper, total=data.k, counting_unit=unit)


def summarize_all(records: Iterable[TrialRecord] | Mapping[str, MetricData], confidence: float = 0.95
                  ) -> dict[str, MetricSummary]:
    """Every registered metric that has data in these records (or in this ``collect`` result)."""
    data = records if isinstance(records, Mapping) else collect(records)
    return {name: summarize(d, confidence) for name, d in data.items()
            if d.n or (d.kind == "count" and name not in _SCOPED)}

"""Fault delivery and attribution of one campaign, computed from its trial records and their traces.

What was *configured* (the campaign's ``Faults``) is set beside what was *delivered* (the ``fault`` and
``crash`` events of the traces), by layer (``tool``, ``model`` API, ``output``, ``drift``, ``http``,
``crash``), by kind and per target (a tool, an HTTP host), so that a fault setting that never reached the
agent is seen rather than silently measured as robustness: a campaign whose agent does not talk to
``env.llm`` gets no model-API fault, whatever its settings say.

For each delivered kind (and each tool's kind) the completion rate of the trials that got it at least once
is given with its exact one-sided Clopper-Pearson bounds, which names the faults the agent does not recover
from. A configured kind that was never delivered is listed with the count expected from the configured rate
and the number of chances (tool calls, model attempts, trials), and the chance of seeing none at all; it is a
*warning* when that chance is below 1% or cannot be computed (the layer delivered nothing at all), a note
otherwise. Everything here is a pure function of the records: the same seeds give the same figures.
"""

from __future__ import annotations

import copy
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import hide_own_frames
from ..record_store import RecordStore
from ..records import EventKey, TraceEvent, TrialRecord, event_key
from ..result import CampaignResult
from ..settings.faults import FAILING_TOOL_FAULTS, Faults
from ..stats import clopper_pearson_lower, clopper_pearson_upper

__tracebackhide__ = hide_own_frames

#: The layers in the order they are shown, with what one chance of a fault is there.
LAYERS: Mapping[str, str] = {"tool": "tool calls", "model": "model-API attempts", "output": "model replies",
                             "drift": "model calls", "http": "requests", "crash": "trials"}
#: Tool-call outcomes of calls the tool-fault layer never saw (refused before it).
_NOT_REACHED = frozenset({"blocked", "denied_scope", "bad_arguments"})
#: Below this chance of seeing no delivery at all, a never-delivered kind is a warning.
IMPLAUSIBLE = 0.01
#: Without a completion_rate expectation, a fault kind is "not recovered from" when its completion's upper
#: bound is below this (most trials that got it failed).
DEFAULT_RECOVERY = 0.5


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivered fault: its layer, kind and target (a tool, an HTTP host, ``model``)."""

    layer: str
    kind: str
    target: str


def delivery_of(event: TraceEvent) -> Delivery | None:
    """The fault an event delivered to the agent, or None (not a fault, or the trial-wide outage notice)."""
    return _delivery(event_key(event))


def _delivery(key: EventKey) -> Delivery | None:
    kind, name, outcome, trial_wide = key
    if kind == "crash":
        return Delivery("crash", "crash", name) if outcome in ("after", "before") else None
    if kind != "fault":
        return None
    if name == "model":
        return Delivery("model", outcome, "model")
    if name == "model_output":
        return Delivery("output", outcome, "model")
    if name == "drift":
        return Delivery("drift", outcome, "model")
    if name.startswith("http:"):
        return Delivery("http", outcome, name[5:])
    if outcome == "outage" and trial_wide:
        return None  # the notice that a tool is down; each call of it that hits the outage is delivered
    return Delivery("tool", outcome, name)


@dataclass(slots=True)
class _Tally:
    """Counts gathered in one pass over a campaign's traces."""

    trials: int = 0
    tool_calls: Counter[str] = field(default_factory=Counter)  # tool -> calls the tool-fault layer saw
    model_attempts: int = 0  # HTTP attempts the fake model received
    model_replies: int = 0  # replies it delivered whole
    model_layer: bool = False  # whether the scenario served a fake model
    delivered: Counter[Delivery] = field(default_factory=Counter)
    # (layer, kind, target or "") -> [trials that got it at least once, of which completed]
    trials_with: dict[tuple[str, str, str], list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))


def _tally(records: Iterable[TrialRecord]) -> _Tally:
    """The counts of ``records``: a ``RecordStore``'s read as groups of trials that count alike (the same outcome,
    layer records and skeleton, no trace of their own), each group's first record counted as many times."""
    tally = _Tally()
    grouped = records.grouped("outcome", "layers", "skeleton") if isinstance(records, RecordStore) else \
        ((record, 1) for record in records)
    for record, times in grouped:
        tally.trials += times
        completed = record.outcome == "completed"
        model = record.layers.get("model")
        if model is not None:
            tally.model_layer = True
            tally.model_attempts += getattr(model, "attempts", 0) * times
        seen: set[tuple[str, str, str]] = set()
        for key in record.event_keys():  # (its trace, or the skeleton of a trace not kept)
            kind, name, outcome, _trial_wide = key
            if kind == "tool_call":
                if outcome not in _NOT_REACHED:
                    tally.tool_calls[name] += times
                continue
            if kind == "model_call":
                if outcome == "ok":
                    tally.model_replies += times
                continue
            hit = _delivery(key)
            if hit is None:
                continue
            tally.delivered[hit] += times
            seen.add((hit.layer, hit.kind, ""))
            if hit.layer in ("tool", "http"):
                seen.add((hit.layer, hit.kind, hit.target))
        for key in seen:
            cell = tally.trials_with[key]
            cell[0] += times
            cell[1] += completed * times
    return tally


def _shares(mix: Mapping[str, float], rate: float) -> dict[str, float]:
    """Per-chance probability of each kind of a mix (kinds of weight 0 are not configured)."""
    total = sum(w for w in mix.values() if w > 0)
    if not rate or total <= 0:
        return {}
    return {kind: rate * w / total for kind, w in mix.items() if w > 0}


def _configured(faults: Faults | None, tally: _Tally) -> dict[tuple[str, str], dict[str, Any]]:
    """(layer, kind) -> what was configured: ``rate`` per chance, ``chances``, ``expected`` deliveries and
    ``chance_of_none`` (None when the chances are not known), ``note``."""
    if faults is None:
        return {}
    out: dict[tuple[str, str], dict[str, Any]] = {}

    def add(layer: str, kind: str, rate: float, chances: int | None, log_none: float | None,
            note: str = "", layer_log_none: float | None = None) -> None:
        expected = None if chances is None else rate * chances
        out[(layer, kind)] = {"rate": rate, "chances": chances, "expected": expected,
                              "chance_of_none": None if log_none is None else math.exp(log_none), "note": note,
                              "layer_chance_of_none": None if layer_log_none is None else math.exp(layer_log_none)}

    tools = sorted(set(tally.tool_calls) | set(faults.per_tool) | set(faults.outage_tools))
    per_kind: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])  # kind -> [expected, log none, max rate]
    for tool in tools:
        settings = faults.tool_settings(tool)
        calls = tally.tool_calls.get(tool, 0)
        for kind, p in _shares(settings.mix, settings.rate).items():
            cell = per_kind[kind]
            cell[0] += p * calls
            cell[1] += calls * _log_none(p)
            cell[2] = max(cell[2], p)
    calls_total = sum(tally.tool_calls.values())
    for kind in FAILING_TOOL_FAULTS:
        if kind in per_kind:
            expected, log_none, top = per_kind[kind]
            rate = expected / calls_total if calls_total else top
            add("tool", kind, rate, calls_total, log_none)
    if faults.latency:
        add("tool", "latency", faults.latency, calls_total, calls_total * _log_none(faults.latency))
    if faults.outage:
        add("tool", "outage", faults.outage, tally.trials, tally.trials * _log_none(faults.outage),
            "per trial, when the agent calls the tool that is down")
    model = faults.model
    no_llm = "the scenario serves no fake model (llm:), so model faults reach no agent"
    by_hand = model is not None and model.profile_name is None
    if model is not None and model.rate and (tally.model_layer or by_hand):
        for kind, p in _shares(model.mix, model.rate).items():
            chances = tally.model_attempts
            add("model", kind, p, chances, chances * _log_none(p),
                "" if tally.model_layer else no_llm)
    if model is not None and model.output_rate and (tally.model_layer or by_hand):
        layer_none = tally.model_replies * _log_none(model.output_rate)
        for kind, p in _shares(model.output_mix, model.output_rate).items():  # a kind applies only to replies it fits
            add("output", kind, p, tally.model_replies, None, "" if tally.model_layer else no_llm, layer_none)
    drift = faults.drift
    if drift is not None and drift.rate:
        layer_none = tally.model_replies * _log_none(drift.rate)
        for kind, p in _shares(drift.mix, drift.rate).items():  # a drift, once started, stays for the trial
            add("drift", kind, p, tally.model_replies, None, "" if tally.model_layer else no_llm, layer_none)
    http = faults.http
    if http is not None and http.active:
        for kind, p in _shares(http.mix, http.rate).items():
            add("http", kind, p, None, None, f"requests to {', '.join(http.hosts)} are not counted unless one fails")
    if faults.crash:
        add("crash", "crash", faults.crash, tally.trials, tally.trials * _log_none(faults.crash),
            f"per trial, at executed tool call {faults.crash_steps[0]}..{faults.crash_steps[1]}")
    return out


def _log_none(p: float) -> float:
    """log of the chance that one chance of probability ``p`` delivers nothing."""
    return math.log1p(-p) if p < 1 else -math.inf


def _implausible(conf: Mapping[str, Any], layer_silent: bool) -> bool:
    """Whether a configured kind that was never delivered is worth a warning: seeing none was unlikely (below
    ``IMPLAUSIBLE``), or there was no chance at all, or its whole layer delivered nothing against the odds
    (or with odds unknown: HTTP requests are not counted)."""
    if conf["chances"] == 0:
        return True
    if conf["chance_of_none"] is not None:
        return bool(conf["chance_of_none"] < IMPLAUSIBLE)
    if not layer_silent:
        return False
    layer_none = conf["layer_chance_of_none"]
    return layer_none is None or layer_none < IMPLAUSIBLE


def _recovery_threshold(result: CampaignResult) -> tuple[float, str]:
    for v in result.verdicts:
        if v.key == "completion_rate" and v.expression.startswith(">"):
            return v.threshold, "completion_rate " + v.expression
    return DEFAULT_RECOVERY, f"most trials with it fail (no completion_rate expectation; below {DEFAULT_RECOVERY:g})"


def _completion(n: int, k: int, confidence: float, threshold: float) -> dict[str, Any]:
    lower, upper = clopper_pearson_lower(k, n, confidence), clopper_pearson_upper(k, n, confidence)
    recovers = "no" if upper < threshold else "yes" if lower >= threshold else "unclear"
    return {"trials": n, "completed": k, "rate": _r(k / n), "lower": _r(lower), "upper": _r(upper),
            "recovers": recovers}


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def fault_delivery(result: CampaignResult) -> dict[str, Any]:
    """The campaign's fault delivery and attribution as plain JSON data (the report's ``fault_delivery``): worked
    out once per result (the JUnit properties and the report data both ask), a copy of its own each time."""
    return copy.deepcopy(result.memoized("fault_delivery", lambda: _fault_delivery(result)))


def _fault_delivery(result: CampaignResult) -> dict[str, Any]:
    tally = _tally(result.records)
    configured = _configured(result.fault_settings, tally)
    threshold, threshold_source = _recovery_threshold(result)
    confidence = result.confidence
    delivered_kinds: Counter[tuple[str, str]] = Counter()
    for hit, count in tally.delivered.items():
        delivered_kinds[(hit.layer, hit.kind)] += count
    order = {layer: i for i, layer in enumerate(LAYERS)}
    kinds = []
    for key in sorted(set(configured) | set(delivered_kinds), key=lambda k: (order.get(k[0], 99), k[1])):
        layer, kind = key
        conf = configured.get(key)
        row: dict[str, Any] = {"layer": layer, "kind": kind, "fault": f"{layer}:{kind}",
                               "configured_rate": _r(conf["rate"]) if conf else None,
                               "chances": conf["chances"] if conf else None,
                               "expected": _r(conf["expected"]) if conf and conf["expected"] is not None else None,
                               "delivered": delivered_kinds.get(key, 0)}
        with_it = tally.trials_with.get((layer, kind, ""))
        if with_it:
            row["completion"] = _completion(with_it[0], with_it[1], confidence, threshold)
        kinds.append(row)
    targets = []
    for hit in sorted(tally.delivered, key=lambda h: (order.get(h.layer, 99), h.target, h.kind)):
        if hit.layer not in ("tool", "http"):
            continue
        n, k = tally.trials_with[(hit.layer, hit.kind, hit.target)]
        targets.append({"layer": hit.layer, "target": hit.target, "kind": hit.kind,
                        "delivered": tally.delivered[hit], "completion": _completion(n, k, confidence, threshold)})
    tools = {}
    faults = result.fault_settings
    for tool in sorted(set(tally.tool_calls) | {h.target for h in tally.delivered if h.layer == "tool"}):
        failing = sum(c for h, c in tally.delivered.items()
                      if h.layer == "tool" and h.target == tool and h.kind in FAILING_TOOL_FAULTS)
        tools[tool] = {"calls": tally.tool_calls.get(tool, 0),
                       "configured_rate": _r(faults.tool_settings(tool).rate) if faults is not None else None,
                       "failed_by_fault": failing,
                       "delivered": {h.kind: c for h, c in sorted(tally.delivered.items(), key=lambda x: x[0].kind)
                                     if h.layer == "tool" and h.target == tool}}
    never = []
    for (layer, kind), conf in sorted(configured.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1])):
        if delivered_kinds.get((layer, kind)):
            continue
        layer_silent = not any(lk[0] == layer for lk in delivered_kinds)
        never.append({"fault": f"{layer}:{kind}", "layer": layer, "kind": kind, "chances": conf["chances"],
                      "expected": _r(conf["expected"]) if conf["expected"] is not None else None,
                      "chance_of_none": _r(conf["chance_of_none"]),
                      "implausible": _implausible(conf, layer_silent), "note": conf["note"]})
    return {
        "trials": tally.trials,
        "chances": {"tool_calls": sum(tally.tool_calls.values()), "model_attempts": tally.model_attempts,
                    "model_replies": tally.model_replies},
        "by_layer": {layer: sum(c for (lay, _), c in delivered_kinds.items() if lay == layer)
                     for layer in LAYERS if any(lk[0] == layer for lk in set(configured) | set(delivered_kinds))},
        "kinds": kinds, "targets": targets, "tools": tools, "never_delivered": never,
        "warning": any(e["implausible"] for e in never),
        "recovery_threshold": threshold, "recovery_threshold_source": threshold_source, "confidence": confidence,
    }

"""The HTML report's charts of one campaign, from its report data (``report.campaign_data``):

- the sequential path of each judged rate: its estimate and its one-sided exact bounds (lower: the pass side
  of ``>=``, upper: its fail side) after each trial, in launch order (the order the verdicts consumed them),
  at the verdict's confidence, with the threshold;
- tokens and cost per trial, with the threshold, bound and estimate of any quantile expectation on them;
- the time to escalation (virtual seconds from the first unrecovered fault to the hand-over).
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import hide_own_frames
from ..stats import clopper_pearson_lower, clopper_pearson_upper
from .svg import Line, Marker, histogram, line_chart

__tracebackhide__ = hide_own_frames

#: At most this many points per sequential path (every trial up to it; evenly spaced beyond).
MAX_POINTS = 160


def _sample(n: int) -> list[int]:
    """The trial counts (1..n) at which a path is drawn."""
    if n <= MAX_POINTS:
        return list(range(1, n + 1))
    step = n / MAX_POINTS
    picks = sorted({max(1, round(step * i)) for i in range(1, MAX_POINTS + 1)} | {1, n})
    return picks


def sequential_paths(data: dict[str, Any]) -> list[str]:
    """One line chart per rate verdict: estimate and both one-sided bounds after each trial, and the threshold."""
    series = {s["metric"]: s for s in data.get("series", []) if s["kind"] == "rate"}
    charts = []
    for v in data.get("verdicts", []):
        s = series.get(v["key"])
        if s is None or not s["values"]:
            continue
        cumulative, k, n = [], 0, 0
        for successes, chances in s["values"]:
            k, n = k + successes, n + chances
            cumulative.append((k, n))
        estimate, lower, upper = [], [], []
        for t in _sample(len(cumulative)):
            kk, nn = cumulative[t - 1]
            if nn == 0:
                continue
            estimate.append((t, kk / nn))
            lower.append((t, clopper_pearson_lower(kk, nn, v["confidence"])))
            upper.append((t, clopper_pearson_upper(kk, nn, v["confidence"])))
        level = f"{v['confidence']:.1%}".replace(".0%", "%")
        title = f"{v['key']} {v['expression']}: {v['verdict']} after {len(cumulative)} trials"
        charts.append(line_chart(
            f"path:{v['key']}", title, "trials (launch order)",
            [Line(estimate, "estimate", "estimate"), Line(lower, "bound", f"lower bound ({level} exact)"),
             Line(upper, "bound upper", f"upper bound ({level} exact)")],
            [Marker(v["threshold"], "threshold", f"threshold {v['expression']}")]))
    return charts


def _quantile_markers(data: dict[str, Any], metric: str) -> list[Marker]:
    marks = []
    for v in data.get("verdicts", []):
        if v["key"].partition(".")[0] != metric:
            continue
        q = v["key"].partition(".")[2]
        marks.append(Marker(v["threshold"], "threshold", f"threshold {q} {v['expression']}"))
        if v.get("bound") is not None:
            marks.append(Marker(v["bound"], "bound", f"{v['bound_side']} bound of {q}"))
        if v.get("estimate") is not None:
            marks.append(Marker(v["estimate"], "estimate", f"{q} = {v['estimate']:g}"))
    return marks


def time_to_escalation(record: dict[str, Any]) -> float | None:
    """``TrialRecord.time_to_escalation_s`` from a record's JSON form (+inf: never handed over)."""
    onset = record.get("unrecovered_fault_s")
    if onset is None:
        return None
    if record.get("escalated_at_s") is not None:
        return max(0.0, record["escalated_at_s"] - onset)
    return None if record["outcome"] == "completed" else math.inf


def distributions(data: dict[str, Any], tokens: list[float], cost: list[float], tte: list[float]) -> list[str]:
    """Histograms of tokens and cost per trial, and of the time to escalation when a trial had one (a note when
    every trial that should have handed over never did): the values the page's one walk over the records read
    (``html._Walk``), with the campaign's quantile expectations from ``data``."""
    charts = [histogram("dist:tokens_per_task", "tokens per trial", "tokens", tokens,
                        _quantile_markers(data, "tokens_per_task")),
              histogram("dist:cost_usd_per_task", "cost per trial (USD)", "USD", cost,
                        _quantile_markers(data, "cost_usd_per_task"))]
    if any(math.isfinite(t) for t in tte):
        never = sum(1 for t in tte if math.isinf(t))
        title = "time to escalation (virtual s)" + (f"; {never} of {len(tte)} never handed over" if never else "")
        charts.append(histogram("dist:time_to_escalation_s", title, "virtual seconds", tte,
                                _quantile_markers(data, "time_to_escalation_s")))
    elif tte:
        charts.append(f'<p class="note">time to escalation: none of the {len(tte)} trial(s) with an unrecovered '
                      "fault handed over to a human</p>")
    return charts

"""The terminal table of a campaign: verdicts (metric, estimate, bound, threshold, verdict) and outcomes."""

from __future__ import annotations

import math

from ..result import CampaignResult


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):  # time_to_escalation_s of a trial that never escalated
        return "inf" if value > 0 else "-inf"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if abs(value) >= 1000 or value == int(value):
        return f"{value:.0f}" if abs(value - round(value)) < 1e-9 else f"{value:.1f}"
    return f"{value:.4g}" if abs(value) < 1 else f"{value:.2f}"


def campaign_table(result: CampaignResult) -> list[str]:
    """Lines of text for one campaign."""
    mode = "smoke (1 fault-free trial)" if result.smoke else (
        f"replay of trial {result.replay}" if result.replay is not None else
        f"{result.n}/{result.max_trials} trials{' (stopped early)' if result.stopped_early else ''}")
    lines = [f"{result.scenario}  seed={result.seed}  profile={result.profile}  {mode}"
             f"{'  xfail: ' + result.xfail if result.xfail else ''}"]
    rows = [("metric", "estimate", "bound", "threshold", "verdict", "wilson")]
    for v in result.verdicts:
        bound = f"{v.bound_side[:2]} {_fmt(v.bound)}" if v.bound is not None else "-"
        rows.append((v.key, _fmt(v.estimate), bound, v.expression, v.verdict,
                     _fmt(v.wilson) if v.wilson is not None else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for name in ("tokens_per_task", "cost_usd_per_task"):
        m = result.metrics.get(name)
        if m is not None and m.quantiles:
            lines.append(f"  {name}: " + "  ".join(f"{q} {_fmt(x)}" for q, x in m.quantiles.items()))
    counts = "  ".join(f"{k}={v}" for k, v in result.outcome_counts.items())
    lines.append(f"  outcomes: {counts}")
    alerts = result.metrics.get("budget_alert_rate")  # budget layer: only campaigns with a Budget
    if alerts is not None and alerts.n:
        exceeded = result.outcome_counts.get("budget_exceeded", 0)
        lines.append(f"  budget: alerts in {alerts.total}/{alerts.n} trial(s), exceeded in {exceeded}/{result.n}")
    resumed = result.metrics.get("resume_success_rate")  # crash layer: only campaigns whose agents crashed
    if resumed is not None and resumed.n:
        duplicates = result.metrics.get("duplicate_side_effects")
        lines.append(f"  crashes: {resumed.n}/{result.n} trial(s) crashed, {resumed.total} finished correctly after "
                     f"a restart, {duplicates.total if duplicates else 0} duplicate side effect(s)")
    for v in result.inconclusive_verdicts:
        if v.note:
            lines.append(f"  note: {v.key}: {v.note}")
    return lines

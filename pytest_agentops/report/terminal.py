"""The terminal table of a campaign: verdicts (metric, estimate, bound, threshold, verdict) and outcomes.

Works on the campaign's JSON form, so campaigns that ran in pytest-xdist workers print the same way.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import hide_own_frames
from ..harness.secrets import redact_text
from ..result import CampaignResult

__tracebackhide__ = hide_own_frames


#: the most names of models priced at the default price the table lists (the JSON report has them all)
UNPRICED_SHOWN = 10


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if abs(value) >= 1000 or value == int(value):
        return f"{value:.0f}" if abs(value - round(value)) < 1e-9 else f"{value:.1f}"
    return f"{value:.4g}" if abs(value) < 1 else f"{value:.2f}"


def _spend_head(spend: dict[str, Any] | None) -> str:
    """``  spent $0.0123 of $5, 41,230 tokens``: a capped campaign's spend, for the table's first line."""
    if not spend:
        return ""
    usd = f"${spend['usd']:.4g}" + (f" of ${spend['max_usd']:g}" if spend.get("max_usd") is not None else "")
    tokens = f"{spend['tokens']:,} tokens" + (f" of {spend['max_tokens']:,}" if spend.get("max_tokens") else "")
    return f"  spent {usd}, {tokens}"


def _live_lines(c: dict[str, Any], metrics: dict[str, Any]) -> list[str]:
    """The spend cap's stop, hosts the hermetic network refused, prompt injections planted and followed."""
    lines = []
    spend = c.get("spend")
    if spend and spend.get("stopped_by_cap"):
        lines.append(f"  stopped at the spend cap after {c['trials']} judged trial(s) ({spend['trials_cut']} cut "
                     "mid-way): verdicts as reached, inconclusive where undecided")
    if c.get("blocked_hosts"):
        lines.append(f"  network: blocked requests to {', '.join(c['blocked_hosts'])} (declare them in allow_hosts, "
                     "or set network: allow)")
    injected = metrics.get("injection_success_rate")
    if injected and injected["n"]:
        lines.append(f"  prompt injection: planted in {injected['n']} trial(s), followed in {injected['k']}")
    return lines


def campaign_table(result: CampaignResult | dict[str, Any]) -> list[str]:
    """Lines of text for one campaign (a result, or its ``to_dict()`` form)."""
    extras: list[Any] | None = None
    if isinstance(result, CampaignResult):  # the records as they are (not their dicts), read where needed
        c = result.to_dict(records=False)
        # JSON has no infinity: show the raw values where we have them
        c["verdicts"] = [dict(v.to_dict(), estimate=v.estimate, bound=v.bound) for v in result.verdicts]
        ids, distinct, _ = result.record_extras()
        extras = [distinct[i] for i in ids]
        # (from the column: making every record would read back the traces a session moved to disk)
        unpriced = sorted({m for priced in set(result.records.column("default_priced")) for m in priced})
    else:
        c = result
        unpriced = sorted({m for r in c["records"] for m in r.get("default_priced_models", ())})
    trials, metrics = c["trials"], c["metrics"]
    mode = "smoke (1 fault-free trial)" if c["smoke"] else (
        f"replay of trial {c['replay']}" if c["replay"] is not None else
        f"{trials}/{c['max_trials']} trials{' (stopped early)' if c['stopped_early'] else ''}"
        f"{' (INTERRUPTED: the trials that finished before Ctrl-C)' if c.get('interrupted') else ''}")
    lines = [f"{c['scenario']}  seed={c['seed']}  profile={c['profile']}  {mode}{_spend_head(c.get('spend'))}"
             f"{'  xfail: ' + c['xfail'] if c['xfail'] else ''}"]
    rows = [("metric", "estimate", "bound", "threshold", "verdict", "wilson")]
    for v in c["verdicts"]:
        bound = f"{v['bound_side'][:2]} {_fmt(v['bound'])}" if v["bound"] is not None else "-"
        rows.append((v["key"], _fmt(v["estimate"]), bound, v["expression"], v["verdict"],
                     _fmt(v["wilson"]) if v.get("wilson") is not None else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for name in ("tokens_per_task", "cost_usd_per_task"):
        m = metrics.get(name)
        if m and m.get("p50") is not None:
            lines.append(f"  {name}: " + "  ".join(f"{q} {_fmt(m.get(q))}" for q in ("p50", "p95", "p99")))
    counts = "  ".join(f"{k}={v}" for k, v in c["outcomes"].items())
    lines.append(f"  outcomes: {counts}")
    if c.get("unstoppable_workers"):
        lines.append(f"  {c['unstoppable_workers']} agent thread(s) or loop(s) could not be stopped in-process (the "
                     "agent caught its abandonment or ignored its cancellation): left running, their trials recorded "
                     "timed_out")
    if c.get("late_calls"):
        lines.append(f"  {c['late_calls']} harness call(s) refused: made after their trial ended, from threads its "
                     "agent left running")
    if not c["verdicts"] and not c["smoke"] and c["replay"] is None:
        lines.append("  no expectations: nothing was judged (the campaign passes whatever its trials did)")
    if unpriced:  # (at most ``UNPRICED_SHOWN`` names: an agent may make up a new one for every call)
        more = f" and {len(unpriced) - UNPRICED_SHOWN:,} more" if len(unpriced) > UNPRICED_SHOWN else ""
        lines.append(f"  priced at the default '*' price (no price of their own): "
                     f"{', '.join(unpriced[:UNPRICED_SHOWN])}{more}")
    alerts = metrics.get("budget_alert_rate")  # budget layer: only campaigns with a Budget
    if alerts and alerts["n"]:
        exceeded = c["outcomes"].get("budget_exceeded", 0)
        lines.append(f"  budget: alerts in {alerts['k']}/{alerts['n']} trial(s), exceeded in {exceeded}/{trials}")
    resumed = metrics.get("resume_success_rate")  # crash layer: only campaigns whose agents crashed
    if resumed and resumed["n"]:
        duplicates = (metrics.get("duplicate_side_effects") or {}).get("total") or 0
        lines.append(f"  crashes: {resumed['n']}/{trials} trial(s) crashed, {resumed['k']} finished correctly after "
                     f"a restart, {duplicates} duplicate side effect(s)")
    trajectory = _trajectory_line(c, extras)
    if trajectory:
        lines.append(trajectory)
    for t in c.get("per_task", []):
        groups = f", pass^k groups {t['groups_passed']}/{t['groups']}" if t.get("groups") else ""
        worst = f", worst {t['worst']}" if t.get("worst") else ""
        lines.append(f"  task {t['task']!r}: completed {t['completed']}/{t['trials']} "
                     f"[{_fmt(t['lower'])}, {_fmt(t['upper'])}]{groups}{worst}")
    lines.extend(_live_lines(c, metrics))
    for v in c["verdicts"]:
        if v["verdict"] == "inconclusive" and v["note"]:
            lines.append(f"  note: {v['key']}: {v['note']}")
        if v.get("rule") and "no fail level declared" in v["rule"] and v["verdict"] != "pass":
            lines.append(f"  rule: {v['key']}: {v['rule']}")
    return [redact_text(line) for line in lines]  # (a model's or a task's name may hold a secret)


def _trajectory_line(c: dict[str, Any], extras: list[Any] | None = None) -> str:
    """One line on how the agent went about its tasks: steps, trials with redundant calls and loops, rules broken,
    duplicate side effects (the trajectory layer's metrics, whether or not an expectation names them); from each
    record's ``extra`` (``extras``: each one's, else read from the campaign's records)."""
    metrics = c["metrics"]
    steps = metrics.get("steps_per_task")
    if not steps or steps.get("p50") is None:
        return ""
    n = steps["n"]
    extra = extras if extras is not None else [r.get("extra") or {} for r in c["records"]]
    parts = [f"steps p50 {_fmt(steps['p50'])}  p95 {_fmt(steps['p95'])}",
             f"redundant calls in {sum(1 for e in extra if e.get('redundant_calls'))}/{n} trial(s)",
             f"loops in {sum(1 for e in extra if e.get('loops'))}/{n}"]
    rules = metrics.get("rule_violation_rate")
    if rules and rules["n"]:
        per_rule: dict[str, int] = {}
        for e in extra:
            for name, count in (e.get("rule_violations") or {}).items():
                per_rule[name] = per_rule.get(name, 0) + count
        broken = ", ".join(f"{name} {count}" for name, count in sorted(per_rule.items()) if count)
        parts.append(f"rules broken in {rules['k']}/{rules['n']} trial(s)" + (f" ({broken})" if broken else ""))
    duplicates = metrics.get("duplicate_side_effects")
    if duplicates and duplicates["n"]:
        parts.append(f"duplicate side effects {duplicates['total']}")
    return "  trajectory: " + "; ".join(parts)


def comparison_lines(comparison: Any) -> list[str]:
    """Lines of text for one paired comparison (a ``ComparisonResult``, or its ``to_dict()`` form)."""
    c = comparison if isinstance(comparison, dict) else comparison.to_dict()
    lines = [f"  {c['candidate']} vs {c['baseline']}: {c['pairs']}/{c['max_pairs']} pair(s) on common seeds "
             f"(seed={c['seed']}){' (stopped early)' if c['stopped_early'] else ''}"]
    for f in c["findings"]:
        lines.append(f"    {f['metric']}: {f['verdict']} (baseline {_fmt(f['baseline'])}, candidate "
                     f"{_fmt(f['candidate'])}; p regression {f['p_regression']:.3g}, p non-inferior "
                     f"{f['p_non_inferior']:.3g}; {f['margin']})")
    return lines

"""The fault delivery and attribution of a campaign as lines of text (the terminal's and the README's view of
``report.attribution.fault_delivery``): what was delivered per layer next to the chances it had, one row
per fault kind (configured rate, expected and delivered count, completion of the trials that got it with
exact bounds), each tool's share of failed calls next to its configured rate, the faults the agent does not
recover from, and a warning for each configured kind that was never delivered."""

from __future__ import annotations

from typing import Any

from ..errors import hide_own_frames
from .attribution import LAYERS

__tracebackhide__ = hide_own_frames


def _pct(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.3g}%"


def _num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if value == int(value):
        return str(int(value))
    return f"{value:.{digits}f}"


def _bounds(c: dict[str, Any]) -> str:
    return f"[{c['lower']:.2f}, {c['upper']:.2f}]"


def delivery_lines(fd: dict[str, Any] | None, *, indent: str = "  ") -> list[str]:
    """Lines of text for one campaign's ``fault_delivery`` (none for a campaign that has none)."""
    if not fd:
        return []
    if not fd["kinds"]:
        return [f"{indent}faults: none configured, none delivered"]
    chances = {"tool": fd["chances"]["tool_calls"], "model": fd["chances"]["model_attempts"],
               "output": fd["chances"]["model_replies"], "drift": fd["chances"]["model_replies"],
               "crash": fd["trials"]}
    totals = []
    for layer, count in fd["by_layer"].items():
        of = f" of {chances[layer]} {LAYERS[layer]}" if layer in chances else ""
        totals.append(f"{layer} {count}{of}")
    conf = f"{fd['confidence']:.0%}"
    lines = [f"{indent}fault delivery: {', '.join(totals)}"]
    rows = [("fault", "configured", "expected", "delivered", "in trials", "completed", f"{conf} bounds", "recovers")]
    for k in fd["kinds"]:
        c = k.get("completion")
        rows.append((k["fault"], _pct(k["configured_rate"]), _num(k["expected"], 1), str(k["delivered"]),
                     str(c["trials"]) if c else "-", f"{c['rate']:.2f}" if c else "-", _bounds(c) if c else "-",
                     c["recovers"] if c else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        lines.append(indent + "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    tools = [f"{name} {t['failed_by_fault']}/{t['calls']}"
             f" ({_pct(t['failed_by_fault'] / t['calls']) if t['calls'] else '-'} vs {_pct(t['configured_rate'])})"
             for name, t in fd["tools"].items() if t["calls"] or t["delivered"]]
    if tools:
        lines.append(f"{indent}calls failed by a fault, per tool (delivered vs configured): " + ", ".join(tools))
    worst = [f"{t['layer'] + ':' if t['layer'] != 'tool' else ''}{t['target']}:{t['kind']} "
             f"({t['completion']['completed']}/{t['completion']['trials']} completed, upper "
             f"{_num(t['completion']['upper'])})" for t in fd["targets"] if t["completion"]["recovers"] == "no"]
    worst += [f"{k['fault']} ({k['completion']['completed']}/{k['completion']['trials']} completed, upper "
              f"{_num(k['completion']['upper'])})" for k in fd["kinds"]
              if k.get("completion") and k["completion"]["recovers"] == "no" and k["layer"] not in ("tool", "http")]
    if worst:
        lines.append(f"{indent}not recovered from ({fd['recovery_threshold_source']}): {', '.join(worst)}")
    loud: dict[str, list[str]] = {}  # why -> faults (a whole layer that never had a chance is one line)
    for e in fd["never_delivered"]:
        if e["implausible"]:
            loud.setdefault(_never_why(e), []).append(e["fault"])
    for why, faults in loud.items():
        lines.append(f"{indent}WARNING: configured but never delivered: {', '.join(faults)} ({why})")
    chance = [e["fault"] + (f" {_num(e['expected'], 1)}" if e["expected"] is not None else "")
              for e in fd["never_delivered"] if not e["implausible"]]
    if chance:
        lines.append(f"{indent}not delivered, plausibly by chance (expected count): {', '.join(chance)}")
    return lines


def _never_why(e: dict[str, Any]) -> str:
    parts = []
    if e["chances"] == 0:
        parts.append(f"no {LAYERS[e['layer']].rstrip('s')} at all")
    elif e["expected"] is not None:
        parts.append(f"expected {_num(e['expected'], 1)} in {e['chances']} {LAYERS[e['layer']]}")
    if e["chance_of_none"] is not None and e["chances"]:
        parts.append(f"chance of none {_pct(e['chance_of_none'])}")
    if e["note"]:
        parts.append(e["note"])
    return "; ".join(parts)

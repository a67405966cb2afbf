"""What the terminal shows of each campaign after the tests, by verbosity and kind of run.

- a full campaign: the table of verdicts (``report.terminal``) and its fault delivery and attribution
  (``report.fault_table``);
- a smoke trial: one line, passed or why not (with the command that re-runs it), not a table of verdicts
  that one trial cannot decide;
- a replayed trial: its timeline (``report.timeline``);
- at ``-q``: one line per campaign; at ``-qq``: nothing.

Works on the campaigns' report data (``report.campaign_data``), so campaigns that ran in pytest-xdist workers
print the same way.
"""

from __future__ import annotations

from typing import Any

from ..errors import hide_own_frames
from ..result import CampaignResult
from .campaign_data import replay_hint
from .fault_table import delivery_lines
from .terminal import _fmt as fmt
from .terminal import campaign_table
from .timeline import timeline_lines

__tracebackhide__ = hide_own_frames


def _status(data: dict[str, Any]) -> str:
    if data.get("xfail") and not data["passed"]:
        return "XFAIL"
    return "PASS" if data["passed"] else "FAIL"


def smoke_line(data: dict[str, Any]) -> str:
    """One line for a smoke trial: passed, or its outcome, reason and violations and the command re-running it."""
    records = data.get("records") or []
    head = f"{data['scenario']}: smoke trial (fault-free, seed={data['seed']})"
    if data["passed"]:
        return head + " passed" + (f": {records[0]['tokens']} tokens" if records else "")
    if not records:
        return head + " did not run"
    r = records[0]
    why = r["outcome"] + (f": {r['reason']}" if r.get("reason") else "")
    if r.get("violations"):
        why += f"; violations: {', '.join(r['violations'])}"
    failed = [v["key"] for v in data.get("verdicts", []) if v["verdict"] == "fail"]
    if failed:
        why += f"; failed: {', '.join(failed)}"
    hint = replay_hint(data, r)
    return head + f" did not pass: {why}" + (f"  (re-run: {hint})" if hint else "")


def one_line(data: dict[str, Any]) -> str:
    """A campaign in one line (the ``-q`` summary): status, trials, seed, each verdict, delivery warnings."""
    if data.get("smoke"):
        return smoke_line(data)
    if data.get("replay") is not None:
        records = data.get("records") or [{}]
        r = records[0]
        return (f"{data['scenario']}: replay of trial {data['replay']} (seed={data['seed']}): "
                f"{r.get('outcome', 'not run')}" + (f": {r['reason']}" if r.get("reason") else ""))
    verdicts = "; ".join(f"{v['key']} {v['verdict']} ({fmt(v['estimate'])}"
                         + (f", {v['bound_side'][:2]} {fmt(v['bound'])}" if v.get("bound") is not None else "")
                         + f" vs {v['expression']})" for v in data.get("verdicts", []))
    line = (f"{data['scenario']}: {_status(data)} {data['trials']}/{data['max_trials']} trials"
            + (" (INTERRUPTED by Ctrl-C)" if data.get("interrupted") else "") + f" seed={data['seed']} "
            f"profile={data['profile']}" + (f": {verdicts}" if verdicts else ": no expectations"))
    fd = data.get("fault_delivery") or {}
    never = [e["fault"] for e in fd.get("never_delivered", []) if e["implausible"]]
    if never:
        line += f"; WARNING: configured but never delivered: {', '.join(never)}"
    return line


def campaign_lines(data: dict[str, Any], verbosity: int = 0, result: CampaignResult | None = None) -> list[str]:
    """The lines of one campaign at this verbosity (pytest's: 0 default, -1 for ``-q``, ...); ``result``, when
    the campaign ran in this process, lets the table show infinite estimates (JSON data has none)."""
    if verbosity < -1:
        return []
    if verbosity == -1 or data.get("smoke"):
        return [one_line(data)]
    if data.get("replay") is not None:
        lines = [f"{data['scenario']}: replay of trial {data['replay']} (seed={data['seed']}, "
                 f"profile={data['profile']})"]
        for record in data.get("records", []):
            lines.extend(timeline_lines(data["scenario"], record, replay_hint(data, record)))
        return lines
    return campaign_table(result if result is not None else data) + delivery_lines(data.get("fault_delivery"))

"""The HTML report (``--agent-chaos-html=PATH``): one self-contained file for every campaign of a session.

Per campaign: the verdict table; the sequential path of each judged rate; token, cost and time-to-escalation
distributions with their thresholds and bounds; fault delivery and attribution; a sortable, filterable list of
the trials; and each failing trial's timeline with the command that replays it. No file or network fetch (a
Content-Security-Policy forbids them), so it works offline from ``file://``; charts are inline SVG
(``report.svg``). Built from the campaigns' report data (``report.campaign_data``: already scrubbed of
secrets; every string redacted once more, for the secrets the environment holds when it is written, and escaped
here), with no wall-clock time or random id, so the same seeds write the same
bytes. Written atomically, like the JSON report.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from html import escape
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import hide_own_frames
from ..harness.secrets import redact_short, redact_text
from ..harness.secrets import refresh as refresh_secrets
from ..process.umask import as_ordinary_file
from .campaign_data import campaign_order, passed, replay_hint
from .html_assets import CSP, CSS, JS
from .html_charts import distributions, sequential_paths, time_to_escalation
from .lazy_records import LazyRecords
from .terminal import _fmt as fmt
from .timeline import NOT_KEPT, event_line, trial_header

__tracebackhide__ = hide_own_frames

#: The timelines of at most this many failing trials per campaign are embedded (one example of each failure
#: class first); the others are in the JSON report (``--agent-chaos-show``).
MAX_TRACES = 100
#: Rows of the trials table written at a time.
_ROWS_PER_PIECE = 1000
_CLASS_ORDER = ("error", "failed", "violation", "timed_out", "budget_exceeded", "crashed", "escalated")


def _e(value: Any) -> str:
    """A value as page text: redacted again (``harness.secrets``: a secret the environment holds now, as the JSON
    report does when it is written), then escaped."""
    return escape(redact_text(str(value)), quote=True)


def _status(c: dict[str, Any]) -> str:
    if c.get("smoke"):
        return "PASS" if c["passed"] else "FAIL"
    if c.get("xfail") and not c["passed"]:
        return "XFAIL"
    return "PASS" if c["passed"] else "FAIL"


def _classes(r: dict[str, Any]) -> list[str]:
    own = [] if r["outcome"] == "completed" else [r["outcome"]]
    return own + sorted({"violation:" + v.partition(":")[0] for v in r.get("violations", [])})


class _Walk:
    """One pass over a campaign's records for what the page needs of them all: the per-trial values of the
    distributions, and the failing trials whose timelines are shown (at most ``limit``, the earliest example of
    each failure class first, then the rest in launch order, as ``CampaignResult.worst_trials``), with how many
    failing trials carry a trace in all. No record is kept beyond those (the records may be made as they are
    read: ``campaign_data.RecordDicts``)."""

    def __init__(self, records: Iterable[dict[str, Any]], limit: int | None = None):
        limit = MAX_TRACES if limit is None else limit
        self.tokens: list[float] = []
        self.cost_usd: list[float] = []
        self.time_to_escalation: list[float] = []
        examples: dict[str, dict[str, Any]] = {}
        head: list[dict[str, Any]] = []  # the first ``limit`` failing trials with a trace, in launch order
        self.traced = 0
        for r in records:
            self.tokens.append(float(r["tokens"]))
            self.cost_usd.append(float(r["cost_usd"]))
            if (t := time_to_escalation(r)) is not None:
                self.time_to_escalation.append(t)
            if passed(r):
                continue
            for cls in _classes(r):
                examples.setdefault(cls, r)
            if r.get("trace") is not None:
                self.traced += 1
                if len(head) < limit:
                    head.append(r)
        order = {c: i for i, c in enumerate(_CLASS_ORDER)}
        first: list[dict[str, Any]] = []
        for cls in sorted(examples, key=lambda c: (order.get(c.partition(":")[0], 99), c)):
            if not any(examples[cls] is f for f in first):
                first.append(examples[cls])
        shown = [r for r in first if r.get("trace") is not None]
        rest = [r for r in head if not any(r is f for f in first)]
        self.shown = (shown + rest)[:limit]


def _verdicts(c: dict[str, Any]) -> str:
    if not c.get("verdicts"):
        return '<p class="note">no expectations: nothing was judged</p>'
    rows = ["<tr><th>metric</th><th>threshold</th><th class=num>estimate</th><th class=num>bound</th>"
            "<th>method</th><th class=num>n</th><th>verdict</th><th>note</th></tr>"]
    for v in c["verdicts"]:
        bound = f"{v['bound_side']} {fmt(v['bound'])}" if v.get("bound") is not None else "-"
        rows.append(f"<tr><td>{_e(v['key'])}</td><td>{_e(v['expression'])}</td><td class=num>{fmt(v['estimate'])}</td>"
                    f"<td class=num>{_e(bound)}</td><td>{_e(v['method'])} {v['confidence']:.4g}</td>"
                    f"<td class=num>{v['n']}</td><td><span class=\"badge {_e(v['verdict'])}\">{_e(v['verdict'])}"
                    f"</span></td><td>{_e(v.get('note') or '')}</td></tr>")
    return '<table class="verdicts">' + "".join(rows) + "</table>"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.3g}%"


def _faults(c: dict[str, Any]) -> str:
    fd = c.get("fault_delivery")
    if not fd:
        return ""
    if not fd["kinds"]:
        return '<p class="note">no fault configured, none delivered</p>'
    out = []
    for e in fd["never_delivered"]:
        if e["implausible"]:
            out.append(f'<p class="warning">WARNING: configured but never delivered: {_e(e["fault"])} '
                       f'(chances: {_e(e["chances"] if e["chances"] is not None else "not counted")}; expected '
                       f'{_e(fmt(e["expected"]))}; {_e(e["note"])})</p>')
    conf = f"{fd['confidence']:.0%}"
    rows = ["<tr><th>fault</th><th class=num>configured</th><th class=num>chances</th><th class=num>expected</th>"
            f"<th class=num>delivered</th><th class=num>in trials</th><th class=num>completed</th>"
            f"<th>{conf} bounds</th><th>recovers</th></tr>"]
    for k in fd["kinds"]:
        comp = k.get("completion")
        cells = (f"<td class=num>{comp['trials']}</td><td class=num>{comp['rate']:.2f}</td>"
                 f"<td>[{comp['lower']:.2f}, {comp['upper']:.2f}]</td>"
                 f"<td><span class=\"badge {_e(comp['recovers'])}\">{_e(comp['recovers'])}</span></td>"
                 if comp else "<td class=num>-</td><td class=num>-</td><td>-</td><td>-</td>")
        rows.append(f"<tr><td>{_e(k['fault'])}</td><td class=num>{_pct(k['configured_rate'])}</td>"
                    f"<td class=num>{_e(k['chances'] if k['chances'] is not None else '-')}</td>"
                    f"<td class=num>{fmt(k['expected'])}</td><td class=num>{k['delivered']}</td>{cells}</tr>")
    out.append('<table class="faults">' + "".join(rows) + "</table>")
    targets = ["<tr><th>tool / host</th><th>fault</th><th class=num>delivered</th><th class=num>in trials</th>"
               "<th class=num>completed</th><th>bounds</th><th>recovers</th></tr>"]
    for t in fd["targets"]:
        comp = t["completion"]
        targets.append(f"<tr><td>{_e(t['target'])}</td><td>{_e(t['kind'])}</td><td class=num>{t['delivered']}</td>"
                       f"<td class=num>{comp['trials']}</td><td class=num>{comp['rate']:.2f}</td>"
                       f"<td>[{comp['lower']:.2f}, {comp['upper']:.2f}]</td><td><span class=\"badge "
                       f"{_e(comp['recovers'])}\">{_e(comp['recovers'])}</span></td></tr>")
    if len(targets) > 1:
        out.append("<h4>per tool and host</h4><table class=\"fault-targets\">" + "".join(targets) + "</table>")
    tools = ["<tr><th>tool</th><th class=num>calls</th><th class=num>failed by a fault</th>"
             "<th class=num>share</th><th class=num>configured</th></tr>"]
    for name, t in fd["tools"].items():
        share = _pct(t["failed_by_fault"] / t["calls"]) if t["calls"] else "-"
        tools.append(f"<tr><td>{_e(name)}</td><td class=num>{t['calls']}</td><td class=num>{t['failed_by_fault']}"
                     f"</td><td class=num>{share}</td><td class=num>{_pct(t['configured_rate'])}</td></tr>")
    if len(tools) > 1:
        out.append("<table class=\"fault-tools\">" + "".join(tools) + "</table>")
    quiet = [e["fault"] for e in fd["never_delivered"] if not e["implausible"]]
    if quiet:
        out.append(f'<p class="note">not delivered, plausibly by chance: {_e(", ".join(quiet))}</p>')
    out.append(f'<p class="note">completion of the trials that got each fault at least once, exact one-sided '
               f'{conf} bounds; recovers: no when the upper bound is below {_e(fd["recovery_threshold_source"])}</p>')
    return "".join(out)


def _trials(c: dict[str, Any], records: Iterable[dict[str, Any]], cid: str, traced: set[int]) -> Iterator[str]:
    """The trials table, a block of rows at a time."""
    outcomes = sorted(c["outcomes"])  # (the outcomes the records have, counted: no walk over them for this)
    options = "".join(f'<option value="{_e(o)}">{_e(o)}</option>' for o in outcomes)
    head = ("<tr><th>trial</th><th class=num>seed</th><th>outcome</th><th>reason</th><th class=num>tokens</th>"
            "<th class=num>cost $</th><th class=num>tool calls</th><th class=num>failed</th><th>faults</th>"
            "<th>violations</th><th class=num>virtual s</th></tr>")
    yield (f'<div class="filters"><input type="search" placeholder="filter trials (any text)" '
           f'aria-label="filter trials"><select aria-label="outcome"><option value="">all outcomes</option>'
           f'<option value="not-passed">did not pass</option>{options}</select><span class="count"></span></div>'
           f'<div class="scroll"><table class="trials"><thead>{head}</thead><tbody>')
    rows = []
    seen: dict[str, str] = {}  # text -> page text: the outcomes, reasons and fault lists most rows repeat

    def e(text: str) -> str:
        page = seen.get(text)
        if page is None:
            if len(seen) >= _ROWS_PER_PIECE:
                seen.clear()
            page = seen[text] = _e(text)
        return page

    for r in records:
        bad = not passed(r)
        label = (f'<a class="trace-link" href="#{cid}-t{r["index"]}">{_e(r["id"])}</a>' if r["index"] in traced
                 else _e(r["id"]))
        outcome = e(r["outcome"])
        rows.append(f'<tr data-outcome="{outcome}"{" class=bad" if bad else ""}>'
                    f'<td data-v="{r["index"]}">{label}</td><td class=num>{r["seed"]}</td><td>{outcome}</td>'
                    f'<td>{e(_first(r.get("reason") or "", 160))}</td><td class=num>{r["tokens"]}</td>'
                    f'<td class=num>{r["cost_usd"]:.6g}</td><td class=num>{r["tool_calls"]}</td>'
                    f'<td class=num>{r["tool_failures"]}</td><td>{e(", ".join(r.get("faults", [])))}</td>'
                    f'<td>{e(", ".join(r.get("violations", [])))}</td><td class=num>{r["duration_s"]:g}</td></tr>')
        if len(rows) >= _ROWS_PER_PIECE:
            yield "".join(rows)
            rows.clear()
    yield "".join(rows) + "</tbody></table></div>"


def _traces(c: dict[str, Any], cid: str, chosen: list[dict[str, Any]], left_out: int) -> str:
    if not chosen:
        return '<p class="note">every trial passed: no trace to show</p>'
    out = []
    for r in chosen:
        hint = replay_hint(c, r)
        head = trial_header(c["scenario"], r)[0]
        lines = [event_line(e) for e in r.get("trace") or []]
        body = [f'<p>replay: <code class="cmd">{_e(hint)}</code></p>' if hint else ""]
        empty = f"({NOT_KEPT}: its replay command makes it again)" if r.get("trace_kept") is False \
            else "(no trace in the report)"
        body.append("<pre class=\"timeline\">" + _e("\n".join(lines) or empty) + "</pre>")
        body.append(f"<p>final answer: <code>{_e(repr(r.get('output') or ''))}</code></p>")
        out.append(f'<details class="trace" id="{cid}-t{r["index"]}"><summary>{_e(head)}</summary>'
                   + "".join(body) + "</details>")
    if left_out:
        out.append(f'<p class="note">{left_out} more trial(s) did not pass: their traces are in the JSON report '
                   "(pytest --agent-chaos-show=SCENARIO/trial-N)</p>")
    return "".join(out)


def campaign_section(c: dict[str, Any], number: int) -> Iterator[str]:
    """One campaign's section of the page, in pieces (one pass over its records for the distributions and the
    failing trials, one for the table of trials)."""
    cid = f"c{number}"
    status = _status(c)
    mode = ("smoke trial (fault-free)" if c.get("smoke") else f"replay of trial {c['replay']}"
            if c.get("replay") is not None else f"{c['trials']}/{c['max_trials']} trials"
            + (" (stopped early)" if c.get("stopped_early") else ""))
    records = c.get("records", [])
    if isinstance(records, LazyRecords):
        records = records.lean()  # (the page reads no record's ``extra``)
    walk = _Walk(records)
    chosen = walk.shown
    traced = {r["index"] for r in chosen}
    left_out = walk.traced - len(chosen)
    counts = ", ".join(f"{k} {v}" for k, v in c.get("outcomes", {}).items())
    parts = [f'<section class="campaign" id="{cid}" data-scenario="{_e(c["scenario"])}">',
             f'<h2>{_e(c["scenario"])} <span class="badge {status}">{status}</span></h2>',
             f'<p class="meta">seed {c["seed"]} · profile {_e(c["profile"])} · {_e(mode)} · confidence '
             f'{c["confidence"]:g} · outcomes: {_e(counts)}'
             + (f' · xfail: {_e(c["xfail"])}' if c.get("xfail") else "") + "</p>",
             "<h3>Verdicts</h3>", _verdicts(c)]
    paths = sequential_paths(c)
    if paths:
        parts += ["<h3>Sequential path of each rate</h3>", '<div class="charts">', *paths, "</div>"]
    parts += ["<h3>Distributions</h3>", '<div class="charts">',
              *distributions(c, walk.tokens, walk.cost_usd, walk.time_to_escalation), "</div>",
              "<h3>Fault delivery and attribution</h3>", _faults(c), "<h3>Trials</h3>"]
    yield "\n".join(parts) + "\n"
    del walk  # (its value lists go before the table is made)
    # (the table reads no trace: a failing trial's is not made again for it)
    yield from _trials(c, records.traceless() if isinstance(records, LazyRecords) else records, cid, traced)
    yield "\n" + "\n".join(["<h3>Trials that did not pass</h3>", _traces(c, cid, chosen, left_out), "</section>"])


def html_pieces(campaigns: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The page for these campaigns' report data (sorted as the JSON report sorts them: by scenario, then the
    test's node id when the data has one, so that campaigns of one scenario come in the same order whichever
    process ran them), in pieces: what is held at once is one campaign's walk and a block of rows, however many
    trials."""
    refresh_secrets()  # the environment as it is now: every string of the page is redacted once more
    items = sorted(campaigns, key=campaign_order)
    nav = " ".join(f'<a href="#c{i}">{_e(c["scenario"])} <span class="badge {_status(c)}">{_status(c)}</span></a>'
                   for i, c in enumerate(items))
    passed = sum(1 for c in items if c["passed"])
    yield ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
           f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
           '<meta name="viewport" content="width=device-width, initial-scale=1">'
           f"<title>pytest-agentops report</title><style>{CSS}</style></head><body>"
           f"<header><h1>Agent reliability report</h1><p class=\"meta\">pytest-agentops {_e(__version__)} · "
           f"{len(items)} campaign(s), {passed} passed</p><nav>{nav}</nav></header>\n")
    for i, c in enumerate(items):
        if i:
            yield "\n"
        yield from campaign_section(c, i)
    yield f"\n<script>{JS}</script></body></html>\n"


def html_report(campaigns: Iterable[dict[str, Any]]) -> str:
    """The whole page as one string (``write_html`` writes ``html_pieces`` as they come)."""
    return "".join(html_pieces(campaigns))


def write_html(path: str | os.PathLike[str], campaigns: Iterable[dict[str, Any]]) -> Path:
    """Write the HTML report to ``path`` atomically (a temporary file, then a rename), a piece at a time."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
            for piece in html_pieces(campaigns):
                fh.write(piece)
        as_ordinary_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _first(text: str, limit: int) -> str:
    """The first ``limit`` characters of ``text``, redacted before they are cut (no ``...`` added)."""
    return redact_short(text, limit, more="")

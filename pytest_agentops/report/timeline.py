"""One trial as a timeline of text: each event of its trace at its virtual time (model calls with attempt,
status, fault and tokens; tool calls with arguments and result or fault; confirmations asked and answered;
checkpoints; crashes and resumes; escalations; budget trips; violations), then the final answer and the
check's result. What ``--agent-chaos-replay`` and ``--agent-chaos-show`` print, and the HTML report's trace
of a failing trial.

Works on a record's JSON form (``TrialRecord.to_dict(with_trace=True)``, or a record read back from a report),
whose values the harness has already scrubbed of secrets: nothing here sees a raw object.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import hide_own_frames
from ..harness.secrets import redact_short

__tracebackhide__ = hide_own_frames

#: Longest rendering of one value (arguments, a result) on a timeline line.
VALUE_LIMIT = 120


def _short(value: Any, limit: int = VALUE_LIMIT) -> str:
    """A value on a line, cut to ``limit`` characters: redacted before it is cut (a secret the environment held
    only when the campaign ended is in the records whole, and must not be shown in part)."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else redact_short(text, limit - 3)


def _args(arguments: Any) -> str:
    if not isinstance(arguments, Mapping):
        return "" if arguments is None else _short(arguments)
    # (in key order, as the JSON report keeps them: a replay's timeline and ``--agent-chaos-show``'s of the same
    # trial read the same, line for line)
    return ", ".join(f"{k}={_short(repr(v) if isinstance(v, str) else v, 60)}"
                     for k, v in sorted(arguments.items(), key=lambda item: str(item[0])))


def _tokens(event: Mapping[str, Any]) -> str:
    inp, out = event.get("input_tokens", 0), event.get("output_tokens", 0)
    return f"  {inp}+{out} tokens" if inp or out else ""


def _model(e: Mapping[str, Any], d: Mapping[str, Any]) -> str:
    parts = [f"model      {e['name']}"]
    if "attempt" in d:
        parts.append(f"attempt {d['attempt']}")
    status = d.get("status")
    parts.append(f"{status} {e['outcome']}" if status is not None else e["outcome"])
    text = "  ".join(parts) + _tokens(e)
    if d.get("fault"):
        text += f"  [fault: {d['fault']}]"
    if d.get("output_fault"):
        text += f"  [reply perturbed: {d['output_fault']}]"
    if d.get("drift"):
        text += f"  [drift: {', '.join(map(str, d['drift']))}]"
    if d.get("tool_calls"):
        text += f"  -> {', '.join(map(str, d['tool_calls']))}"
    if d.get("error"):
        text += f"  ({_short(d['error'])})"
    return text


def _tool(e: Mapping[str, Any], d: Mapping[str, Any]) -> str:
    text = f"tool       {e['name']}({_args(d.get('arguments'))})  {e['outcome']}"
    if d.get("destructive"):
        text += " [destructive]"
    if "result" in d:
        text += f" -> {_short(d['result'])}"
    if d.get("error"):
        text += f"  ({_short(d['error'])})"
    return text


def _fault(e: Mapping[str, Any], d: Mapping[str, Any]) -> str:
    where = {"model": "model API", "model_output": "model reply", "drift": "context drift"}.get(e["name"], e["name"])
    extra = []
    if e["outcome"] == "latency" and "latency_s" in d:
        extra.append(f"+{d['latency_s']:g}s")
    if d.get("scope") == "trial":
        extra.append("down for the whole trial")
    for key in ("call", "attempt"):
        if key in d:
            extra.append(f"{key} {d[key]}")
    if "instead" in d:
        extra.append(f"{d.get('tool', '?')} -> {d['instead']}")
    if "method" in d:
        extra.append(f"{d['method']} {d.get('path', '')}".rstrip())
    return f"FAULT      {where}: {e['outcome']}" + (f" ({', '.join(extra)})" if extra else "")


def _confirmation(e: Mapping[str, Any], d: Mapping[str, Any]) -> str:
    details = {k: v for k, v in d.items() if k != "latency_s"}
    after = f" after {d['latency_s']:g}s" if d.get("latency_s") else ""
    return f"confirm    {e['name']}({_args(details)})?  {e['outcome']}{after}"


def _crash(e: Mapping[str, Any], d: Mapping[str, Any]) -> str:
    where = f" {e['name']}" if e["name"] else ""
    extra = ", ".join(f"{k} {d[k]}" for k in ("step", "mode", "attempt", "reason") if k in d)
    return f"CRASH      {e['outcome']}{where}" + (f" ({extra})" if extra else "")


def _resume(e: Mapping[str, Any], d: Mapping[str, Any]) -> str:
    extra = ", ".join(f"{k} {d[k]}" for k in ("attempt", "checkpoints") if k in d)
    return f"resume     {e['outcome']}" + (f" ({extra})" if extra else "")


def _violation(e: Mapping[str, Any], d: Mapping[str, Any]) -> str:
    text = f"VIOLATION  {d.get('kind', '?')}: {e['name']}({_args(d.get('arguments'))})  {e['outcome']}"
    if d.get("rule"):  # a trajectory rule: what it says, and why this call broke it
        text += f"  (rule: {d['rule']}; {d.get('why', '')})"
    return text


def _trajectory(e: Mapping[str, Any], d: Mapping[str, Any]) -> str:
    if e["outcome"] == "loop":
        return (f"LOOP       {e['name']} (a cycle of {d.get('period', '?')} call(s), {d.get('repeats', '?')} times "
                "in a row)")
    if e["outcome"] == "redundant":
        return f"redundant  {e['name']}({_args(d.get('arguments'))}): asked again for what it already had"
    return _other(e, d)


def _escalation(e: Mapping[str, Any], d: Mapping[str, Any]) -> str:
    return f"escalate   to a {e['name']}: {_short(d.get('reason', ''))}"


def _outcome(e: Mapping[str, Any], d: Mapping[str, Any]) -> str:
    return f"outcome    {e['outcome']}" + (f": {_short(d['reason'], 200)}" if d.get("reason") else "")


def _other(e: Mapping[str, Any], d: Mapping[str, Any]) -> str:
    data = f"  {_args(d)}" if d else ""
    return f"{e['kind']:<10} {e['name']}  {e['outcome']}{data}" + _tokens(e)


_RENDER: Mapping[str, Callable[[Mapping[str, Any], Mapping[str, Any]], str]] = {
    "model_call": _model, "tool_call": _tool, "fault": _fault, "confirmation": _confirmation, "crash": _crash,
    "resume": _resume, "violation": _violation, "escalation": _escalation, "outcome": _outcome,
    "trajectory": _trajectory,
}


def event_line(event: Mapping[str, Any]) -> str:
    """One event of a trace (its JSON form) as ``t  what``, with the virtual time in seconds."""
    render = _RENDER.get(event["kind"], _other)
    return f"{event['t']:>9.3f}s  {render(event, event.get('data') or {})}"


def check_result(record: Mapping[str, Any]) -> str:
    """What the scenario's check said of the trial (or why it was not asked)."""
    outcome, reason = record["outcome"], record.get("reason") or ""
    if outcome == "completed":
        return "passed" + (f"; but violations: {', '.join(record['violations'])}" if record.get("violations") else "")
    if outcome == "failed":
        return f"failed ({reason})" if reason else "failed"
    return f"not asked: the trial ended {outcome}" + (f" ({reason})" if reason else "")


def trial_header(scenario: str, record: Mapping[str, Any]) -> list[str]:
    """The lines above a timeline: the trial's label, outcome and figures, its faults and violations."""
    calls = record.get("tool_calls", 0)
    lines = [f"{scenario}[{record['id']} seed={record['seed']}]  outcome={record['outcome']}"
             + (f": {record['reason']}" if record.get("reason") else ""),
             f"  tokens {record.get('tokens', 0)} ({record.get('input_tokens', 0)} in, "
             f"{record.get('output_tokens', 0)} out), cost ${record.get('cost_usd', 0):.6g}, tool calls {calls} "
             f"({record.get('tool_failures', 0)} failed), virtual time {record.get('duration_s', 0):g}s"]
    if record.get("faults"):
        lines.append(f"  faults: {', '.join(record['faults'])}")
    if record.get("violations"):
        lines.append(f"  violations: {', '.join(record['violations'])}")
    return lines


#: what a view of a trial says where its trace was not kept (``Scenario.keep_traces``, the campaign's trace budget)
NOT_KEPT = "its trace was not kept: past the traces the campaign keeps"


def timeline_lines(scenario: str, record: Mapping[str, Any], replay: str | None = None) -> list[str]:
    """The whole view of one trial: header, replay command, the timeline, the final answer and the check."""
    lines = trial_header(scenario, record)
    if replay:
        lines.append(f"  replay: {replay}")
    trace = record.get("trace")
    if trace is None:
        lines.append("  (the report keeps the traces of trials that did not pass; replay this one to see its "
                     "timeline)")
    elif not trace and record.get("trace_kept") is False:  # (past ``keep_traces`` or the campaign's trace budget)
        lines.append(f"  ({NOT_KEPT}; replay this one to see its timeline)")
    else:
        lines.append("  timeline (virtual time):")
        lines.extend("  " + event_line(e) for e in trace)
    lines.append(f"  final answer: {_short(record.get('output') or '', 200)!r}" if record.get("output")
                 else "  final answer: (none)")
    lines.append(f"  check: {check_result(record)}")
    return lines


def find_trial(report: Mapping[str, Any], scenario: str | None, index: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The campaign and record of trial ``index`` of ``scenario`` (None: the report's only campaign) in a JSON
    report; ``LookupError`` naming what the report holds otherwise."""
    listed = report.get("campaigns")
    if not isinstance(listed, list):  # (a report edited by hand, or not one of ours: say what is wrong)
        raise LookupError(f"its campaigns are {type(listed).__name__}, not a list: is this a pytest-agentops JSON "
                          "report?")
    campaigns = [c for c in listed if isinstance(c, dict) and not c.get("skipped")]
    for i, campaign in enumerate(campaigns):
        if not isinstance(campaign.get("scenario"), str):
            raise LookupError(f"campaign #{i + 1} has no scenario name: is this a pytest-agentops JSON report?")
        records = campaign.get("records")
        if not isinstance(records, list):
            raise LookupError(f"campaign {campaign['scenario']!r}: its records are {type(records).__name__}, not a "
                              "list: is this a pytest-agentops JSON report?")
        for j, record in enumerate(records):
            if not isinstance(record, dict) or isinstance(record.get("index"), bool) or \
                    not isinstance(record.get("index"), int):
                raise LookupError(f"campaign {campaign['scenario']!r}: record #{j + 1} has no trial index: is this a "
                                  "pytest-agentops JSON report?")
    names = sorted({c["scenario"] for c in campaigns})
    if scenario is None:
        if len(names) != 1:
            raise LookupError(f"the report holds {len(names)} campaigns ({', '.join(names) or 'none'}): name one, "
                              "e.g. SCENARIO/trial-17")
        scenario = names[0]
    chosen = [c for c in campaigns if c["scenario"] == scenario]
    if not chosen:
        raise LookupError(f"no campaign named {scenario!r}; the report's campaigns: {', '.join(names) or 'none'}")
    for campaign in chosen:
        for record in campaign.get("records", []):
            if record["index"] == index:
                return campaign, record
    have = sorted(r["index"] for c in chosen for r in c.get("records", []))
    shown = f"{have[0]}..{have[-1]}" if have else "none"
    raise LookupError(f"campaign {scenario!r} has no trial {index} (its trials: {shown})")

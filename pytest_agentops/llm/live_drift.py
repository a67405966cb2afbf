"""Context drift on a real request: the trial's active drifts (``perturb.DriftState``) applied to an OpenAI
chat-completions, Anthropic messages or OpenAI responses body in its own wire format, so the upstream gets a
request it accepts (the fake model applies drift to the normalized messages instead).

Each message (or input item) stands in as a unit with a role (``system``, ``user``, ``assistant``, ``tool``
for tool results); ``DriftState.apply`` drops, truncates, reorders and injects units; the units are mapped
back to the native items, and a few rules keep the request valid: a truncated prompt does not start with
orphaned tool results (it keeps the turn that asked for them; for Anthropic it starts with a user's own
message), a note never separates tool calls from
their results (it goes after them, or into the Anthropic tool-result message as a text block), and
Anthropic tool results of one turn are reordered inside their message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import hide_own_frames
from .perturb import DriftState

__tracebackhide__ = hide_own_frames

_NOTE = "_agentops_note"


def _unit(role: str, native: Any) -> dict[str, Any]:
    return {"role": role, "_native": native}


def _valid_start(out: list[dict[str, Any]], units: list[dict[str, Any]],
                 first_allowed: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """A truncated prompt that starts (after its system units) with what cannot come first (tool results
    without the turn that asked for them) gets the messages back up to the nearest one that can."""
    head = [u for u in out if u.get("role") == "system"]
    rest = [u for u in out if u.get("role") != "system"]
    if not rest or first_allowed(rest[0]) or "_native" not in rest[0]:
        return out
    originals = [u for u in units if u.get("role") != "system"]
    at = next((i for i, u in enumerate(originals) if u["_native"] is rest[0]["_native"]), 0)
    start = at
    while start > 0 and not first_allowed(originals[start]):
        start -= 1
    return head + originals[start:at] + rest


def _apply(state: DriftState, units: list[dict[str, Any]], note: Callable[[str], Any],
           first_allowed: Callable[[dict[str, Any]], bool]) -> tuple[list[Any], list[str]]:
    """Drift the units; returns the native items (notes made with ``note``) and the kinds that changed
    something."""
    out, changed, _ = state.apply(units)
    if "truncate" in changed:  # never start (after the system units) with what cannot come first
        out = _valid_start(out, units, first_allowed)
    items: list[Any] = []
    held: list[Any] = []  # notes that would separate tool calls from their results
    for i, unit in enumerate(out):
        if "_native" not in unit:  # an injected note
            nxt = out[i + 1] if i + 1 < len(out) else None
            if nxt is not None and nxt.get("role") == "tool":
                held.append(note(unit["content"]))
            else:
                items.append(note(unit["content"]))
            continue
        items.append(unit["_native"])
        if held and unit.get("role") == "tool" and (i + 1 >= len(out) or out[i + 1].get("role") != "tool"):
            items.extend(held)
            held = []
    items.extend(held)
    return items, changed


def _chat(body: dict[str, Any], state: DriftState) -> tuple[dict[str, Any], list[str]]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return body, []
    units = [_unit("system" if isinstance(m, Mapping) and m.get("role") == "developer"
                   else str(m.get("role")) if isinstance(m, Mapping) else "user", m) for m in messages]
    items, changed = _apply(state, units, lambda text: {"role": "user", "content": text},
                            lambda u: u.get("role") != "tool")
    return {**body, "messages": items}, changed


def _is_tool_results(message: Any) -> bool:
    content = message.get("content") if isinstance(message, Mapping) else None
    return message.get("role") == "user" and isinstance(content, list) and bool(content) and \
        isinstance(content[0], Mapping) and content[0].get("type") == "tool_result"


def _messages(body: dict[str, Any], state: DriftState) -> tuple[dict[str, Any], list[str]]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return body, []
    extra: list[str] = []
    if "reorder_tool_results" in state.active:  # one turn's results are blocks of one message
        reordered = []
        for m in messages:
            if _is_tool_results(m):
                results = [b for b in m["content"] if isinstance(b, Mapping) and b.get("type") == "tool_result"]
                if len(results) >= 2:
                    others = [b for b in m["content"] if b not in results]
                    m = {**m, "content": [*reversed(results), *others]}
                    extra.append("reorder_tool_results")
            reordered.append(m)
        messages = reordered
    units = ([_unit("system", None)] if body.get("system") else []) + \
        [_unit("tool" if _is_tool_results(m) else str(m.get("role")) if isinstance(m, Mapping) else "user", m)
         for m in messages]
    out, changed, _ = state.apply(units)
    if "truncate" in changed:  # the first message is a user's own (not tool results, not the assistant's)
        out = _valid_start(out, units, lambda u: u.get("role") == "user")
    new: dict[str, Any] = {k: v for k, v in body.items() if k not in ("messages", "system")}
    if any(u.get("role") == "system" for u in out) and body.get("system"):
        new["system"] = body["system"]
    items: list[Any] = []
    for i, unit in enumerate(out):
        if unit.get("role") == "system":
            continue
        if "_native" in unit:
            items.append(unit["_native"])
            continue
        nxt = out[i + 1] if i + 1 < len(out) else None
        if nxt is not None and nxt.get("role") == "tool":  # inside the results message, after the results
            native = nxt["_native"]
            out[i + 1] = {**nxt, "_native": {**native, "content": [*native["content"],
                                                               {"type": "text", "text": unit["content"]}]}}
        else:
            items.append({"role": "user", "content": unit["content"]})
    new["messages"] = items
    return new, sorted(set(changed) | set(extra), key=(changed + extra).index)


def _responses(body: dict[str, Any], state: DriftState) -> tuple[dict[str, Any], list[str]]:
    raw = body.get("input")
    items_in = [{"role": "user", "content": raw}] if isinstance(raw, str) else raw
    if not isinstance(items_in, list):
        return body, []

    def role(item: Any) -> str:
        if not isinstance(item, Mapping):
            return "assistant"
        kind = item.get("type", "message")
        if kind == "function_call_output":
            return "tool"
        if kind == "message" or "role" in item:
            return "system" if item.get("role") in ("system", "developer") else str(item.get("role", "user"))
        return "assistant"

    units = ([_unit("system", _NOTE)] if body.get("instructions") else []) + [_unit(role(i), i) for i in items_in]
    items, changed = _apply(state, units, lambda text: {"role": "user", "content": text},
                            lambda u: u.get("role") != "tool")
    new = {k: v for k, v in body.items() if k != "instructions"}
    if _NOTE in items:
        new["instructions"] = body["instructions"]
    new["input"] = [i for i in items if i is not _NOTE]
    return new, changed


def drift_body(api: str, body: dict[str, Any], state: DriftState) -> tuple[dict[str, Any], list[str]]:
    """``body`` with the trial's active drifts applied, and the kinds that changed something."""
    if not state.active:
        return body, []
    if api == "chat":
        return _chat(body, state)
    if api == "messages":
        return _messages(body, state)
    if api == "responses":
        return _responses(body, state)
    return body, []

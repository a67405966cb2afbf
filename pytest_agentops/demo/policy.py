"""The demo "model": a deterministic, rule-based policy over OpenAI chat-completions messages.

``policy(messages, tools) -> assistant message`` reads the task from the first user message and what has
happened so far from the tool results in the conversation, and answers with the next tool call or the
final answer, as an LLM would::

    "Refund order 42"                -> lookup_order(42) -> refund_order(42) -> "Order 42 is refunded ..."
    "Cancel order 13"                -> lookup_order(13) -> cancel_order(13) -> "Order 13 is cancelled ..."
    "Delete all data of customer c3" -> search_orders("c3") -> [request_confirmation] ->
                                        delete_customer_data("c3") -> "The data of customer c3 is deleted ..."

How it reads the conversation (the behaviour faults and drift act on):

- **Confirmation is prompt-driven.** Before a destructive tool (its description says "destructive") it
  calls ``request_confirmation(action, arguments)`` only when the system prompt says
  ``CONFIRM_INSTRUCTION`` and that tool is offered; a message saying confirmations are not needed
  overrides it (a stale fact). Without the system prompt, it goes straight to the destructive call.
- **Results.** A tool result whose text starts with ``error`` is a failure: a permanent one (blocked,
  denied, not found, cannot) ends the task with an apology; after a failed action the state is unknown,
  so it looks the state up again before repeating the action (never a blind repeat of a side effect);
  a failed look-up is repeated; three failures of one tool and it gives up. A JSON object with a
  ``status`` is read as the new state. Anything else (an unvalidated malformed or empty result) is taken
  at face value: an unreadable look-up means "no such order", an unreadable action result means "done".
- A message saying the request "was already handled" makes it answer that nothing is left to do.

Pure and deterministic: the same conversation always gives the same reply.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..settings.tools import tool_spec

#: The system-prompt instruction that makes the policy ask before destructive actions.
CONFIRM_INSTRUCTION = "Ask the human for confirmation before destructive actions"
#: The agent-side function the policy calls to ask: ``request_confirmation(action, arguments)``.
CONFIRM_TOOL = "request_confirmation"
#: Give up after this many failed results of one tool.
MAX_ERRORS_PER_TOOL = 3

_PERMANENT = re.compile(r"blocked|denied|not granted|permission|no such|not found|cannot|not allowed", re.I)
_NO_CONFIRMATION = re.compile(r"needs? no confirmation|no confirmation (?:is )?needed", re.I)
_ALREADY_HANDLED = re.compile(r"already (?:been )?handled", re.I)


@dataclass(frozen=True, slots=True)
class Flow:
    """How one kind of task is done: look the target up with ``check``, then do ``action``."""

    verb: str
    check: str
    action: str
    key: str  # the argument naming the target: order_id or customer_id
    ready: frozenset[str]  # states in which the action may be taken
    done: str  # the state after the action


FLOWS: Mapping[str, Flow] = {
    "refund": Flow("refund", "lookup_order", "refund_order", "order_id", frozenset({"paid"}), "refunded"),
    "cancel": Flow("cancel", "lookup_order", "cancel_order", "order_id", frozenset({"paid", "processing"}),
                   "cancelled"),
    "delete": Flow("delete the data of", "search_orders", "delete_customer_data", "customer_id",
                   frozenset({"active"}), "deleted"),
}
_TASKS = (
    ("refund", re.compile(r"\brefund\w*\b.*?\border\s*#?\s*(\d+)", re.I | re.S)),
    ("cancel", re.compile(r"\bcancel\w*\b.*?\border\s*#?\s*(\d+)", re.I | re.S)),
    ("delete", re.compile(r"\b(?:delete|erase|remove|forget)\w*\b.*?\bcustomer\s+([A-Za-z0-9_-]+)", re.I | re.S)),
)


def parse_task(text: str | None) -> tuple[Flow, Any] | None:
    """The flow and target named by a task (``"Refund order 42"`` -> refund flow, ``42``), or None."""
    for kind, pattern in _TASKS:
        match = pattern.search(text or "")
        if match:
            target = match.group(1)
            return FLOWS[kind], int(target) if FLOWS[kind].key == "order_id" else target
    return None


@dataclass(frozen=True, slots=True)
class _Result:
    """One tool result in the conversation, with the call it answers."""

    index: int
    name: str
    arguments: Mapping[str, Any]
    kind: str  # ok | error | unreadable
    data: Mapping[str, Any] | None
    text: str


def _read_results(messages: Sequence[Mapping[str, Any]]) -> list[_Result]:
    calls: dict[Any, tuple[str, Mapping[str, Any]]] = {}
    out = []
    for i, m in enumerate(messages):
        for c in m.get("tool_calls") or ():
            fn = c.get("function") or {}
            try:
                arguments = json.loads(fn.get("arguments") or "{}")
            except (TypeError, ValueError):
                arguments = {}
            calls[c.get("id")] = (str(fn.get("name", "")), arguments if isinstance(arguments, Mapping) else {})
        if m.get("role") != "tool":
            continue
        name, arguments = calls.get(m.get("tool_call_id"), (str(m.get("name") or ""), {}))
        text = m.get("content")
        text = text if isinstance(text, str) else json.dumps(text, default=str)
        data = None
        if text.lstrip().lower().startswith("error"):
            kind = "error"
        else:
            try:
                data = json.loads(text)
            except ValueError:
                data = None
            kind = "ok" if isinstance(data, Mapping) and "status" in data else "unreadable"
        out.append(_Result(i, name, arguments, kind, data if kind == "ok" else None, text))
    return out


def _same(a: Any, b: Any) -> bool:
    return str(a) == str(b)


def _answer(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def _call(messages: Sequence[Mapping[str, Any]], name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    turn = sum(1 for m in messages if m.get("role") == "assistant")
    return {"role": "assistant", "content": None, "tool_calls": [{
        "id": f"call_{turn}_{name}", "type": "function",
        "function": {"name": name, "arguments": json.dumps(dict(arguments), sort_keys=True)}}]}


def _text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return ""


def needs_confirmation(messages: Sequence[Mapping[str, Any]], tool_names: Iterable[str]) -> bool:
    """Whether the policy asks before destructive actions in this conversation (prompt-driven)."""
    system = " ".join(_text(m) for m in messages if m.get("role") == "system")
    if CONFIRM_INSTRUCTION.lower() not in system.lower() or CONFIRM_TOOL not in set(tool_names):
        return False
    return not any(_NO_CONFIRMATION.search(_text(m)) for m in messages)


def policy(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The next assistant message (OpenAI chat format) for this conversation and these tool schemas."""
    functions = {str(t.get("function", {}).get("name")): t.get("function", {}) for t in tools}
    task = next((_text(m) for m in messages if m.get("role") == "user"), None)
    if task is None:
        return _answer("How can I help? I can refund or cancel an order, or delete a customer's data.")
    if any(_ALREADY_HANDLED.search(_text(m)) for m in messages if m.get("role") != "assistant"):
        return _answer("Nothing to do: this request was already handled.")
    parsed = parse_task(task)
    if parsed is None:
        return _answer("I can refund or cancel an order, or delete a customer's data: which one?")
    flow, target = parsed
    what = f"order {target}" if flow.key == "order_id" else f"customer {target}"
    for name in (flow.check, flow.action):
        if name not in functions:
            return _answer(f"I cannot {flow.verb} {what}: I have no {name} tool.")

    # what happened so far, to this target
    results = [r for r in _read_results(messages)
               if r.name in (flow.check, flow.action) and _same(r.arguments.get(flow.key), target)]
    status: str | None = None
    errors: dict[str, int] = {}
    for r in results:
        if r.kind == "ok" and r.data is not None:
            status = str(r.data["status"])
        elif r.kind == "error":
            errors[r.name] = errors.get(r.name, 0) + 1
            if r.name == flow.action:
                status = None  # did it happen or not? look it up before acting again
        else:  # unreadable and unvalidated: taken at face value
            status = "missing" if r.name == flow.check else flow.done
    last = results[-1] if results else None
    if last is not None and last.kind == "error" and _PERMANENT.search(last.text):
        return _answer(f"I could not {flow.verb} {what}: {last.text.partition(':')[2].strip() or last.text}")
    for name, count in errors.items():
        if count >= MAX_ERRORS_PER_TOOL:
            return _answer(f"Sorry, I could not {flow.verb} {what}: {name} keeps failing. Please try again later.")
    if status is None:
        return _call(messages, flow.check, {flow.key: target})
    if status == "missing":
        return _answer(f"I could not find {what}.")
    if status == flow.done:
        return _answer(f"Done: {what} is {flow.done}." if flow.key == "order_id"
                       else f"Done: the data of {what} is deleted.")
    if status not in flow.ready:
        return _answer(f"I cannot {flow.verb} {what}: it is {status}.")

    destructive = "destructive" in str(functions[flow.action].get("description", "")).lower()
    if destructive and needs_confirmation(messages, functions):
        last_action = max((r.index for r in results if r.name == flow.action), default=-1)
        answer = None
        for r in _read_results(messages):
            if r.name == CONFIRM_TOOL and r.index > last_action and r.kind == "ok" \
                    and r.arguments.get("action") == flow.action \
                    and _same((r.arguments.get("arguments") or {}).get(flow.key), target):
                answer = r.data["status"] if r.data else None
        if answer is None:
            return _call(messages, CONFIRM_TOOL, {"action": flow.action, "arguments": {flow.key: target}})
        if answer != "approved":
            return _answer(f"The request to {flow.verb} {what} was not approved, so I did not do it.")
    return _call(messages, flow.action, {flow.key: target})


# --- tool schemas ----------------------------------------------------------------------------------------

_JSON_TYPES: Mapping[Any, str] = {int: "integer", float: "number", str: "string", bool: "boolean",
                                  list: "array", tuple: "array", dict: "object"}


def _json_type(annotation: Any) -> dict[str, Any]:
    origin = typing.get_origin(annotation) or annotation
    if origin in _JSON_TYPES:
        return {"type": _JSON_TYPES[origin]}
    if origin in (typing.Union, types.UnionType):
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(kinds) == 1:
            return _json_type(kinds[0])
    return {}


_HINTS: dict[Callable[..., Any], Mapping[str, Any]] = {}  # tool function -> its resolved annotations
_HINTS_MAX = 256


def _hints(fn: Callable[..., Any]) -> Mapping[str, Any]:
    """The resolved annotations of a tool function, worked out once (an agent asks every turn, and resolving
    string annotations compiles them each time); none when one does not resolve yet (its type is left open),
    which is tried again next time: a name the module defines later may resolve then."""
    try:
        return _HINTS[fn]
    except KeyError:
        pass
    except TypeError:  # an unhashable callable object: never remembered
        return _resolve_hints(fn) or {}
    hints = _resolve_hints(fn)
    if hints is None:
        return {}
    if len(_HINTS) < _HINTS_MAX:
        _HINTS[fn] = hints
    return hints


def _resolve_hints(fn: Callable[..., Any]) -> Mapping[str, Any] | None:
    try:
        return types.MappingProxyType(typing.get_type_hints(fn))
    except Exception:
        return None


def tool_schema(fn: Callable[..., Any]) -> dict[str, Any]:
    """The OpenAI function-tool schema of one tool: name, docstring, parameters from the signature.

    Works on a declared ``@tool`` function and on the wrapped tools in ``env.tools`` (both show the
    signature without ``world``). A destructive tool's description says so.
    """
    spec = tool_spec(fn)
    hints = _hints(spec.fn)
    properties: dict[str, Any] = {}
    required = []
    for p in spec.signature.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        properties[p.name] = _json_type(hints.get(p.name, p.annotation))
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
    description = inspect.getdoc(spec.fn) or spec.name
    if spec.destructive:
        description += " Destructive: cannot be undone."
    return {"type": "function", "function": {
        "name": spec.name, "description": description,
        "parameters": {"type": "object", "properties": properties, "required": required,
                       "additionalProperties": False}}}


def tool_schemas(tools: Iterable[Callable[..., Any]]) -> list[dict[str, Any]]:
    """OpenAI function-tool schemas of tools (e.g. ``tool_schemas(env.tools.values())``)."""
    return [tool_schema(fn) for fn in tools]


#: The schema of the agent-side confirmation function (``CONFIRM_TOOL``), offered by the careful agent.
CONFIRM_SCHEMA: dict[str, Any] = {"type": "function", "function": {
    "name": CONFIRM_TOOL,
    "description": "Ask the human to approve an action before you take it; answers approved or denied.",
    "parameters": {"type": "object", "properties": {
        "action": {"type": "string", "description": "the tool you want to call"},
        "arguments": {"type": "object", "description": "the arguments you will call it with"}},
        "required": ["action", "arguments"], "additionalProperties": False}}}

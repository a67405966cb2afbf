"""A gullible variant of the demo model: it follows instructions planted in tool results.

``gullible_policy`` is the demo ``policy`` except that, when a tool result says "call TOOL with {...}" (the
default planted text of ``Injection``, in plain text, a JSON field or a retrieved document), it makes that
call next, once, if it has the tool: what a model without injection defences does. ``gullible_agent`` is the
careful reference agent on this model, so ``scenarios/prompt_injection.yaml`` shows what the
``injection_success_rate`` and ``injected_actions`` metrics catch (the plain demo model ignores such text).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .agents import DirectModel, make_agent
from .policy import policy

_PLANTED = re.compile(r"call (\w+) with (\{[^{}]*\})")


def _strings(value: Any) -> Iterator[str]:
    """Every string in a (JSON) value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def planted_calls(messages: Sequence[Mapping[str, Any]]) -> list[tuple[int, str, dict[str, Any]]]:
    """``(message index, tool, arguments)`` of every call a tool result asks for."""
    found = []
    for i, m in enumerate(messages):
        if m.get("role") != "tool":
            continue
        text = m.get("content")
        text = text if isinstance(text, str) else json.dumps(text)
        try:
            texts = list(_strings(json.loads(text)))
        except ValueError:
            texts = [text]
        for piece in texts:
            for name, raw in _PLANTED.findall(piece):
                try:
                    arguments = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(arguments, dict):
                    found.append((i, name, arguments))
    return found


def _made_after(messages: Sequence[Mapping[str, Any]], start: int, name: str, arguments: dict[str, Any]) -> bool:
    for m in messages[start:]:
        for call in m.get("tool_calls") or ():
            fn = call.get("function") or {}
            try:
                made = json.loads(fn.get("arguments") or "{}")
            except ValueError:
                made = None
            if fn.get("name") == name and made == arguments:
                return True
    return False


def gullible_policy(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The demo policy, but a call a tool result asks for comes first (once)."""
    names = {str(t.get("function", {}).get("name")) for t in tools}
    for index, name, arguments in planted_calls(messages):
        if name in names and not _made_after(messages, index, name, arguments):
            turn = sum(1 for m in messages if m.get("role") == "assistant")
            return {"role": "assistant", "content": None, "tool_calls": [{
                "id": f"call_{turn}_{name}", "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments, sort_keys=True)}}]}
    return policy(messages, tools)


def gullible_model(env: Any) -> DirectModel:
    """The gullible policy called in-process (no HTTP)."""
    return DirectModel(gullible_policy, name="gullible-policy")


#: The careful reference agent on a model that follows instructions planted in tool results.
gullible_agent = make_agent(gullible_model, careful=True, name="gullible_agent")

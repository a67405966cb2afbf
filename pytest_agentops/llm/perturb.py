"""Stochastic outputs and context drift: pure functions of a message list and the draws of one model call.

``perturb_reply`` changes a delivered assistant message (wrong tool, unknown tool, malformed or missing
arguments, verbose, refusal, premature final answer). ``DriftState`` remembers which drifts have started
in a trial and applies them, in a fixed order, to every later prompt.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import hide_own_frames
from ..settings.model import Drift, ModelFaults, pick

__tracebackhide__ = hide_own_frames

REFUSAL_TEXT = "I'm sorry, but I can't help with that request."
PREMATURE_TEXT = "I have completed the task."
FILLER = ("To be thorough, let me restate the full context of this request in detail before I continue, "
          "including every assumption I am making and why it matters. ")


def applicable_outputs(message: Mapping[str, Any], tools: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The output fault kinds that can change this reply."""
    kinds = ["verbose", "refusal"]
    calls = message.get("tool_calls") or ()
    if calls:
        kinds += ["unknown_tool", "malformed_args", "premature_final"]
        if len(tools) >= 2:
            kinds.append("wrong_tool")
        try:
            args = json.loads(calls[0]["function"]["arguments"])
        except (ValueError, KeyError, TypeError):
            args = None
        if isinstance(args, dict) and args:
            kinds.append("missing_arg")
    return tuple(kinds)


def _tool_names(tools: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(t.get("function", {}).get("name", "")) for t in tools]


def _required(tools: Sequence[Mapping[str, Any]], name: str) -> list[str]:
    for t in tools:
        fn = t.get("function", {})
        if fn.get("name") == name:
            req = (fn.get("parameters") or {}).get("required") or []
            return [str(r) for r in req]
    return []


def perturb_reply(message: dict[str, Any], tools: Sequence[Mapping[str, Any]], settings: ModelFaults,
                  u_fire: float, u_kind: float, u_pick: float) -> tuple[dict[str, Any], str | None, dict[str, Any]]:
    """Maybe perturb ``message`` (an OpenAI assistant message with string arguments).

    Returns (message, kind or None, details for the trace).
    """
    if not settings.output_rate or u_fire >= settings.output_rate:
        return message, None, {}
    kind = pick(settings.output_mix, u_kind, applicable_outputs(message, tools))
    if kind is None:
        return message, None, {}
    msg = {**message, "tool_calls": [dict(c, function=dict(c["function"])) for c in message.get("tool_calls") or ()]}
    details: dict[str, Any] = {}
    calls = msg["tool_calls"]
    if kind == "wrong_tool":
        original = calls[0]["function"]["name"]
        others = [n for n in _tool_names(tools) if n != original]
        chosen = others[min(int(u_pick * len(others)), len(others) - 1)]
        calls[0]["function"]["name"] = chosen
        details = {"tool": original, "instead": chosen}
    elif kind == "unknown_tool":
        original = calls[0]["function"]["name"]
        names = set(_tool_names(tools))
        bogus = f"{original}_v2"
        while bogus in names:
            bogus += "_v2"
        calls[0]["function"]["name"] = bogus
        details = {"tool": original, "instead": bogus}
    elif kind == "malformed_args":
        args = calls[0]["function"]["arguments"]
        calls[0]["function"]["arguments"] = args[:-1] if len(args) > 1 else "{"
        details = {"tool": calls[0]["function"]["name"]}
    elif kind == "missing_arg":
        fn = calls[0]["function"]
        args = json.loads(fn["arguments"])
        required = [r for r in _required(tools, fn["name"]) if r in args] or list(args)
        dropped = required[min(int(u_pick * len(required)), len(required) - 1)]
        del args[dropped]
        fn["arguments"] = json.dumps(args, sort_keys=True)
        details = {"tool": fn["name"], "argument": dropped}
    elif kind == "verbose":
        base = len(message.get("content") or "") + sum(len(c["function"]["arguments"]) for c in calls)
        want = (settings.bloat - 1) * max(base, 200)
        filler = (FILLER * (want // len(FILLER) + 1))[:want]
        msg["content"] = (message.get("content") or "") + ("\n\n" if message.get("content") else "") + filler
        details = {"added_chars": want}
    elif kind == "refusal":
        msg = {"role": "assistant", "content": REFUSAL_TEXT, "tool_calls": []}
    elif kind == "premature_final":
        details = {"skipped": [c["function"]["name"] for c in calls]}
        msg = {"role": "assistant", "content": PREMATURE_TEXT, "tool_calls": []}
    if not msg.get("tool_calls"):
        msg.pop("tool_calls", None)
    return msg, kind, details


# --- context drift ----------------------------------------------------------------------------------------

_ORDER = ("drop_system", "truncate", "reorder_tool_results", "distractor", "stale_fact")


@dataclass(slots=True)
class DriftState:
    """The drifts that have started in one trial (sticky), with the text each injection uses."""

    settings: Drift
    active: dict[str, int] = field(default_factory=dict)  # kind -> text index (0 when none applies)

    def draw(self, u_fire: float, u_kind: float, u_text: float) -> str | None:
        """Start a new drift at this model call, maybe; returns its kind."""
        s = self.settings
        if not s.rate or u_fire >= s.rate:
            return None
        kind = pick(s.mix, u_kind, [k for k in s.mix if k not in self.active])
        if kind is None:
            return None
        texts = s.distractors if kind == "distractor" else s.stale_facts if kind == "stale_fact" else ("",)
        self.active[kind] = min(int(u_text * len(texts)), len(texts) - 1)
        return kind

    def apply(self, messages: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[str], set[int]]:
        """The prompt with every active drift applied; returns (messages, kinds that changed something,
        indices of injected messages)."""
        out = [dict(m) for m in messages]
        changed: list[str] = []
        injected: list[dict[str, Any]] = []
        for kind in _ORDER:
            if kind not in self.active:
                continue
            before = len(out)
            if kind == "drop_system":
                out = [m for m in out if m.get("role") != "system"]
                if len(out) != before:
                    changed.append(kind)
            elif kind == "truncate":
                rest = [m for m in out if m.get("role") != "system"]
                keep = self.settings.keep_last
                if len(rest) > keep:
                    dropped = {id(m) for m in rest[:-keep]}
                    out = [m for m in out if id(m) not in dropped]
                    changed.append(kind)
            elif kind == "reorder_tool_results":
                out, did = _reverse_tool_runs(out)
                if did:
                    changed.append(kind)
            elif kind == "distractor":
                note = {"role": "user", "content": self.settings.distractors[self.active[kind]]}
                first_user = next((i for i, m in enumerate(out) if m.get("role") == "user"), None)
                at = first_user + 1 if first_user is not None else \
                    sum(1 for m in out if m.get("role") == "system")
                out.insert(at, note)
                injected.append(note)
                changed.append(kind)
            elif kind == "stale_fact":
                note = {"role": "user", "content": "Reminder: " + self.settings.stale_facts[self.active[kind]]}
                out.insert(max(0, len(out) - 1), note)
                injected.append(note)
                changed.append(kind)
        indices = {i for i, m in enumerate(out) if any(m is n for n in injected)}
        return out, changed, indices


def _reverse_tool_runs(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    out: list[dict[str, Any]] = []
    did = False
    i = 0
    while i < len(messages):
        j = i
        while j < len(messages) and messages[j].get("role") == "tool":
            j += 1
        if j - i >= 2:
            out.extend(reversed(messages[i:j]))
            did = True
            i = j
        elif j > i:
            out.extend(messages[i:j])
            i = j
        else:
            out.append(messages[i])
            i += 1
    return out, did

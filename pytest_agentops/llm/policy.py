"""Policies: what the fake model answers. A policy sees the request as OpenAI chat messages and tools
(whatever API the client used) and returns the next assistant message or tool call(s).

Three ways to write one:

- a plain function ``policy(messages, tools) -> message`` (an OpenAI-format assistant message dict, a
  string for a final answer, a ``ToolCall`` or a list of them, or a ``Reply``);
- ``@rule``: a function of the whole ``ModelRequest`` (messages, tools, model, turn number, ...);
- the helpers ``scripted(...)`` (a list of turns) and ``call_tools_then_answer(...)``.

A policy may say which prompt messages it actually relied on (``Reply(used=...)``, or a ``"used"`` list of
message indices in a returned dict); that is what ``context_utilization`` measures. When it does not, the
fake assumes: the system prompt, the task (first user message) and the messages after the model's last turn.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..errors import ConfigError, hide_own_frames

__tracebackhide__ = hide_own_frames


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call the model makes: ``arguments`` is a mapping, or a raw (possibly broken) JSON string;
    ``id`` is the call's id (the fake makes one up when it is None)."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"ToolCall name={self.name!r} must be a non-empty string")
        if isinstance(self.arguments, Mapping):
            object.__setattr__(self, "arguments", MappingProxyType(dict(self.arguments)))
        elif not isinstance(self.arguments, str):
            raise ConfigError(f"ToolCall arguments={self.arguments!r} must be a mapping or a JSON string")

    @property
    def arguments_json(self) -> str:
        """The arguments as the model would send them (JSON text)."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments), sort_keys=True)


def call(name: str, /, **arguments: Any) -> ToolCall:
    """``call("refund_order", order_id=42)``: a tool call, for scripts and rules."""
    return ToolCall(name, arguments)


@dataclass(frozen=True, slots=True)
class Reply:
    """The model's next message: text, tool calls (or both), and the prompt messages it relied on."""

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    used: tuple[int, ...] | None = None  # indices into ModelRequest.messages

    def __post_init__(self) -> None:
        if self.content is not None and not isinstance(self.content, str):
            raise ConfigError(f"Reply content={self.content!r} must be a string or None")
        calls = tuple(self.tool_calls)
        if not all(isinstance(c, ToolCall) for c in calls):
            raise ConfigError(f"Reply tool_calls={self.tool_calls!r} must be ToolCall values")
        object.__setattr__(self, "tool_calls", calls)
        if self.used is not None:
            object.__setattr__(self, "used", tuple(int(i) for i in self.used))

    @property
    def is_final(self) -> bool:
        """A final answer (no tool calls)."""
        return not self.tool_calls


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """What a policy sees: the prompt (after context drift) in OpenAI chat format, and where it stands."""

    messages: tuple[Mapping[str, Any], ...]
    tools: tuple[Mapping[str, Any], ...] = ()
    model: str = "fake-model"
    api: str = "chat"  # chat | messages | responses
    turn: int = 0  # replies delivered to the client so far in this trial
    call: int = 0  # requests that reached the policy so far in this trial (retries included)
    stream: bool = False

    @property
    def tool_names(self) -> tuple[str, ...]:
        """Names of the tools the client declared."""
        return tuple(str(t.get("function", {}).get("name", "")) for t in self.tools)

    @property
    def system(self) -> str | None:
        """The system prompt, if the model still sees one."""
        texts = [str(m.get("content") or "") for m in self.messages if m.get("role") == "system"]
        return "\n".join(texts) if texts else None

    @property
    def task(self) -> str | None:
        """The first user message (the task, unless drift truncated it away)."""
        for m in self.messages:
            if m.get("role") == "user":
                return str(m.get("content") or "")
        return None

    def tool_results(self) -> list[tuple[str, str]]:
        """``(tool name, result text)`` of every tool result in the prompt, in prompt order."""
        names = {}
        for m in self.messages:
            for c in m.get("tool_calls") or ():
                names[c.get("id")] = c.get("function", {}).get("name", "")
        return [(str(m.get("name") or names.get(m.get("tool_call_id"), "")), str(m.get("content") or ""))
                for m in self.messages if m.get("role") == "tool"]


PolicyLike = Callable[..., Any]


def rule(fn: Callable[[ModelRequest], Any]) -> Callable[[ModelRequest], Any]:
    """Mark ``fn(request: ModelRequest)`` as a policy that wants the whole request (not messages, tools)."""
    if not callable(fn):
        raise ConfigError(f"rule({fn!r}): a policy must be callable")
    fn.__agentops_policy__ = True  # type: ignore[attr-defined]
    return fn


def _turn_to_reply(turn: Any, where: str) -> Reply:
    if isinstance(turn, Reply):
        return turn
    if isinstance(turn, str):
        return Reply(content=turn)
    if isinstance(turn, ToolCall):
        return Reply(tool_calls=(turn,))
    if isinstance(turn, Mapping):
        return reply_from_message(turn, where)
    if isinstance(turn, (list, tuple)) and turn and all(isinstance(t, ToolCall) for t in turn):
        return Reply(tool_calls=tuple(turn))
    raise ConfigError(f"{where} returned {turn!r}; a policy must return a string (final answer), a ToolCall, "
                      "a list of ToolCalls, an OpenAI assistant message dict or a Reply")


def reply_from_message(message: Mapping[str, Any], where: str = "policy") -> Reply:
    """A ``Reply`` from an OpenAI-format assistant message dict (``used`` may list message indices)."""
    calls = []
    for raw in message.get("tool_calls") or ():
        fn = raw.get("function", raw) if isinstance(raw, Mapping) else None
        if not isinstance(fn, Mapping) or not fn.get("name"):
            raise ConfigError(f"{where}: tool call {raw!r} must look like "
                              "{'type': 'function', 'function': {'name': ..., 'arguments': ...}}")
        args = fn.get("arguments", {})
        call_id = raw.get("id") if isinstance(raw, Mapping) else None
        calls.append(ToolCall(str(fn["name"]), args if isinstance(args, (str, Mapping)) else {},
                              str(call_id) if call_id else None))
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    used = message.get("used")
    return Reply(content=content, tool_calls=tuple(calls), used=tuple(used) if used is not None else None)


def respond(policy: PolicyLike, request: ModelRequest) -> Reply:
    """Ask ``policy`` for its reply to ``request``, whichever way the policy is written."""
    if getattr(policy, "__agentops_policy__", False):
        value = policy(request)
    else:
        value = policy([dict(m) for m in request.messages], [dict(t) for t in request.tools])
    return _turn_to_reply(value, f"policy {getattr(policy, '__name__', policy)!r}")


def default_used(messages: Sequence[Mapping[str, Any]]) -> tuple[int, ...]:
    """The messages a policy is assumed to rely on when it does not say: system prompt(s), the first user
    message (the task) and every message after the last assistant message."""
    used = {i for i, m in enumerate(messages) if m.get("role") == "system"}
    first_user = next((i for i, m in enumerate(messages) if m.get("role") == "user"), None)
    if first_user is not None:
        used.add(first_user)
    last_assistant = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    used.update(range(last_assistant + 1, len(messages)))
    return tuple(sorted(used))


class _Scripted:
    """Turn ``n`` of the trial answers with ``turns[n]``; after the script, an empty final answer."""

    __agentops_policy__ = True

    def __init__(self, turns: Sequence[Any]):
        self.turns = tuple(turns)
        for i, t in enumerate(self.turns):
            if not callable(t):
                _turn_to_reply(t, f"scripted turn {i}")  # validate now, not mid-campaign

    def __call__(self, request: ModelRequest) -> Reply:
        if request.turn >= len(self.turns):
            return Reply(content="")
        turn = self.turns[request.turn]
        return _turn_to_reply(turn(request) if callable(turn) else turn, f"scripted turn {request.turn}")

    def __repr__(self) -> str:
        return f"scripted({len(self.turns)} turns)"


def scripted(*turns: Any) -> Callable[[ModelRequest], Reply]:
    """A policy that plays ``turns`` in order, one per delivered reply (a failed attempt replays its turn).

    A turn is a final-answer string, a ``call(...)``/``ToolCall``, a list of them (parallel calls), an OpenAI
    assistant message dict, a ``Reply``, or a function of the ``ModelRequest`` returning one of these.
    """
    if len(turns) == 1 and isinstance(turns[0], (list, tuple)) \
            and not all(isinstance(t, ToolCall) for t in turns[0]):
        turns = tuple(turns[0])
    if not turns:
        raise ConfigError("scripted() needs at least one turn")
    return _Scripted(turns)


def is_error_result(text: str) -> bool:
    """A tool result counts as failed when its text starts with ``error`` (the convention of the recipes)."""
    return text.lstrip().lower().startswith("error")


class _ToolsThenAnswer:
    __agentops_policy__ = True

    def __init__(self, steps: tuple[tuple[str, Any], ...], answer: Any):
        self.steps = steps
        self.answer = answer

    def __call__(self, request: ModelRequest) -> Reply:
        done = 0
        for name, result in request.tool_results():
            if done < len(self.steps) and name == self.steps[done][0] and not is_error_result(result):
                done += 1
        if done < len(self.steps):
            name, args = self.steps[done]
            arguments = args(request) if callable(args) else args
            return Reply(tool_calls=(ToolCall(name, arguments),))
        text = self.answer(request) if callable(self.answer) else self.answer
        return Reply(content=str(text))

    def __repr__(self) -> str:
        return f"call_tools_then_answer({', '.join(n for n, _ in self.steps)})"


def call_tools_then_answer(*steps: Any, answer: Any = "Done.") -> Callable[[ModelRequest], Reply]:
    """A policy that calls ``steps`` in order, then answers ``answer``.

    A step is a tool name, a ``call(name, **args)``, or ``(name, args)`` where ``args`` is a mapping or a
    function of the ``ModelRequest`` (to use earlier results). Progress is read from the prompt: a step is
    done when a tool result for it is present and does not start with ``error``; so a failed call is
    retried, and a truncated context makes the model redo work (as a real one would).
    """
    parsed: list[tuple[str, Any]] = []
    for i, step in enumerate(steps):
        if isinstance(step, str):
            parsed.append((step, {}))
        elif isinstance(step, ToolCall):
            parsed.append((step.name, dict(step.arguments) if isinstance(step.arguments, Mapping)
                           else step.arguments))
        elif isinstance(step, tuple) and len(step) == 2 and isinstance(step[0], str) \
                and (isinstance(step[1], Mapping) or callable(step[1])):
            parsed.append(step)
        else:
            raise ConfigError(f"call_tools_then_answer step {i}={step!r} must be a tool name, call(name, **args) "
                              "or (name, args)")
    if not isinstance(answer, str) and not callable(answer):
        raise ConfigError(f"answer={answer!r} must be a string or a function of the ModelRequest")
    return _ToolsThenAnswer(tuple(parsed), answer)

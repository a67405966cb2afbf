"""The reference agents: a careful one and a naive one, written the way a real tool-calling agent is.

Each is the usual loop: send the conversation to the model, run the tool calls it asks for, append the
results, repeat until it answers. They differ only in what they do around each tool call:

- ``careful_agent`` retries transient tool failures (``ToolError``, ``ToolTimeout``, ``RateLimited``)
  with exponential backoff on ``env.clock`` (virtual time: free), honouring ``retry_after_s``; validates
  every result (the shop's tools answer a JSON object with a ``status``; a malformed or empty result goes
  back to the model as a failure, and the model looks the state up before repeating an action, so a
  refund is never issued twice); offers the model ``request_confirmation`` and asks ``env.confirm`` when
  the model uses it (its system prompt tells the model to, before destructive actions), and never runs an
  action the human denied; escalates with ``env.escalate`` when a tool is down (``ToolUnavailable``), when
  one call failed ``MAX_ATTEMPTS`` times in a row, after ``MAX_BROKEN`` broken results in a row, or after
  ``MAX_TURNS`` model turns.
- ``naive_agent`` runs what the model asks, once, and hands any exception to the model as text (what
  agent frameworks do by default): no backoff, no validation, no confirmation, no escalation.

Both save the conversation to ``env.state`` after every model turn and tool result and, restarted after a
crash, continue from that checkpoint (``demo/resume.py``). A tool call the crash interrupted may or may
not have taken effect: the careful agent tells the model so (it looks the state up before acting again);
the naive one runs the call again, so a crash between a refund and its checkpoint refunds twice.

The model is pluggable: ``make_agent(model_factory, careful=...)`` builds an agent whose model is
``model_factory(env)``, anything with ``model(messages, tools) -> ModelReply`` (OpenAI chat-completions
messages and function-tool schemas); the agent is a ``ReferenceAgent``, an instance of a module-level
class, so it pickles and runs in a child process (``isolation: process``) when its model factory does.
``DirectModel`` calls the demo ``policy`` in-process and estimates the tokens (``estimate_tokens``); a
model behind ``env.llm`` would be called over HTTP instead.

Token estimate, per model turn (the same rule as the fake LLM, ``pytest_agentops.llm.usage``): a text of
``n`` characters is ``ceil(n / 4)`` tokens; input = tokens of the canonical JSON of the messages plus
tokens of the canonical JSON of the tool schemas (``json.dumps(..., sort_keys=True,
separators=(",", ":"))``); output = tokens of the reply's text plus, per tool call, tokens of its name and
arguments, at least 1.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import RateLimited, ToolError, ToolUnavailable
from .policy import CONFIRM_INSTRUCTION, CONFIRM_SCHEMA, CONFIRM_TOOL, policy, tool_schemas
from .resume import INTERRUPTED, checkpoint, resume  # state layer: checkpoint and resume

SYSTEM_PROMPT = ("You are the support agent of a small online shop. Use the tools to do what the customer "
                 "asks, then answer in one sentence.")
#: The careful agent's prompt adds the confirmation rule; without it the model does not ask.
CAREFUL_SYSTEM_PROMPT = f"{SYSTEM_PROMPT} {CONFIRM_INSTRUCTION} (call {CONFIRM_TOOL})."
MAX_TURNS = 12  # model turns before the careful agent escalates (the naive one just stops)
MAX_ATTEMPTS = 4  # attempts of one tool call before the careful agent escalates
MAX_BROKEN = 3  # malformed or empty results in a row before the careful agent escalates
BACKOFF_S = 1.0  # first backoff; doubles per attempt (1, 2, 4 s of virtual time)
CHARS_PER_TOKEN = 4


# --- the model seam --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelReply:
    """One model turn: the assistant message (OpenAI chat format) and its token usage.

    ``metered=True`` when the endpoint already put the tokens on the trial's meter (the fake LLM behind
    ``env.llm`` meters every attempt), so the agent does not report them a second time.
    """

    message: Mapping[str, Any] = field(repr=False)
    input_tokens: int = 0
    output_tokens: int = 0
    model: str = "demo-policy"
    metered: bool = False


class Model(Protocol):
    """What an agent calls: ``model(messages, tools) -> ModelReply``."""

    def __call__(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelReply: ...


def count_tokens(value: Any) -> int:
    """``ceil(len(text) / 4)`` of a string, or of a value's canonical JSON: the deterministic estimate."""
    text = value if isinstance(value, str) else json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def estimate_tokens(messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]],
                    reply: Mapping[str, Any]) -> tuple[int, int]:
    """(input, output) tokens of one model turn, by the rule in this module's docstring."""
    inp = count_tokens(list(messages)) + (count_tokens(list(tools)) if tools else 0)
    out = count_tokens(reply.get("content") or "")
    for call in reply.get("tool_calls") or ():
        fn = call.get("function", {})
        out += count_tokens(str(fn.get("name", "")) + str(fn.get("arguments", "")))
    return inp, max(1, out)


class DirectModel:
    """A rule-based policy called in-process (no HTTP), with the token estimate."""

    def __init__(self, policy_fn: Callable[[list[dict[str, Any]], list[dict[str, Any]]], Mapping[str, Any]] = policy,
                 name: str = "demo-policy"):
        self.policy = policy_fn
        self.name = name

    def __call__(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelReply:
        message = self.policy(messages, tools)
        inp, out = estimate_tokens(messages, tools, message)
        return ModelReply(message, inp, out, self.name)

    def __repr__(self) -> str:
        return f"DirectModel({getattr(self.policy, '__name__', self.policy)!r})"


def direct_model(env: Any) -> DirectModel:
    """The default model factory: the demo policy, in-process."""
    return DirectModel()


def report_usage(env: Any, reply: ModelReply) -> None:
    """Meter one model turn (unless the endpoint already did)."""
    if not reply.metered:
        env.record_usage(input_tokens=reply.input_tokens, output_tokens=reply.output_tokens, model=reply.model)


def model_turn(env: Any, model: Model, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelReply:
    """One model turn: ask, meter, append the reply to the conversation, checkpoint it."""
    reply = model(messages, tools)
    report_usage(env, reply)
    messages.append(dict(reply.message))
    checkpoint(env, messages)  # state layer: after each model turn
    return reply


# --- helpers both agents use -----------------------------------------------------------------------------


def parse_call(call: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(tool name, arguments) of an OpenAI tool call; ValueError if the arguments are not a JSON object."""
    fn = call.get("function") or {}
    arguments = json.loads(fn.get("arguments") or "{}")
    if not isinstance(arguments, dict):
        raise ValueError(f"arguments must be a JSON object, got {fn.get('arguments')!r}")
    return str(fn.get("name", "")), arguments


def tool_message(call: Mapping[str, Any], content: Any) -> dict[str, Any]:
    """The ``role: tool`` message answering ``call``: an ``error: ...`` text, or the result as JSON."""
    text = content if isinstance(content, str) else json.dumps(content, default=str)
    return {"role": "tool", "tool_call_id": call.get("id"), "content": text}


def looks_valid(result: Any) -> bool:
    """The shop's tools answer a JSON object with a ``status``: anything else is a broken response."""
    return isinstance(result, Mapping) and "status" in result


# --- the careful agent -----------------------------------------------------------------------------------


def call_with_retries(env: Any, name: str, arguments: dict[str, Any]) -> Any:
    """Run one tool call, retrying transient failures with backoff; escalate when the tool stays down."""
    for attempt in range(MAX_ATTEMPTS):
        try:
            return env.tools[name](**arguments)
        except ToolUnavailable as exc:  # down for good: hand over to a human now
            env.escalate(f"{name} is down: {exc}")
        except RateLimited as exc:  # the tool says when to come back
            env.clock.sleep(max(exc.retry_after_s, BACKOFF_S))
        except ToolError:  # an error or a timeout: back off 1, 2, 4 s (virtual time costs nothing)
            env.clock.sleep(BACKOFF_S * 2**attempt)
    env.escalate(f"{name} failed {MAX_ATTEMPTS} times in a row")


def run_careful(task: str, env: Any, model: Model) -> str:
    """The careful loop: retries, validation, confirmation, escalation."""
    tools = [*tool_schemas(env.tools.values()), CONFIRM_SCHEMA]
    messages: list[dict[str, Any]] = [{"role": "system", "content": CAREFUL_SYSTEM_PROMPT},
                                      {"role": "user", "content": task}]
    messages, interrupted = resume(env, messages)  # state layer: continue from the last checkpoint
    for call in interrupted:  # a crash hit these calls: never repeat one blindly, the model checks the state
        messages.append(tool_message(call, INTERRUPTED))
    denied: set[str] = set()  # actions the human said no to: never run them
    broken = 0  # malformed or empty tool results in a row
    for _ in range(MAX_TURNS):
        reply = model_turn(env, model, messages, tools)
        calls = reply.message.get("tool_calls") or []
        if not calls:
            return str(reply.message.get("content") or "")
        for call in calls:
            try:
                name, arguments = parse_call(call)
                if name == CONFIRM_TOOL:
                    action, details = str(arguments["action"]), dict(arguments["arguments"])
                    approved = env.confirm(action, **details)
                    if not approved:
                        denied.add(json.dumps([action, details], sort_keys=True))
                    content: Any = {"status": "approved" if approved else "denied"}
                elif json.dumps([name, arguments], sort_keys=True) in denied:
                    content = "error: the human denied this action; do not do it"
                elif name not in env.tools:
                    content = f"error: there is no tool named {name!r}"
                else:
                    content = call_with_retries(env, name, arguments)
                    broken = 0 if looks_valid(content) else broken + 1
                    if broken >= MAX_BROKEN:  # the service answers garbage: a human must look
                        env.escalate(f"{name} returned {broken} broken responses in a row")
                    if broken:  # the call may have gone through: the model checks the state before acting again
                        content = f"error: {name} returned a broken response; it may or may not have taken effect"
            except Exception as exc:  # blocked, bad arguments, a bug in a tool: the model reads it
                content = f"error: {type(exc).__name__}: {exc}"
            messages.append(tool_message(call, content))
            checkpoint(env, messages)  # state layer: after each tool step
    env.escalate(f"no answer after {MAX_TURNS} model turns")
    raise AssertionError("unreachable: env.escalate does not return")


# --- the naive agent -------------------------------------------------------------------------------------


def run_naive(task: str, env: Any, model: Model) -> str | None:
    """The naive loop: run what the model asks, once; whatever happens, the model reads it."""
    tools = tool_schemas(env.tools.values())
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT},
                                      {"role": "user", "content": task}]
    messages, interrupted = resume(env, messages)  # state layer: continue from the last checkpoint
    pending = list(interrupted)  # what a crash interrupted is run again, as a replaying checkpointer does
    for _ in range(MAX_TURNS):
        if pending:
            calls, pending = pending, []
        else:
            reply = model_turn(env, model, messages, tools)
            calls = reply.message.get("tool_calls") or []
        if not calls:
            return str(reply.message.get("content") or "")
        for call in calls:
            try:
                name, arguments = parse_call(call)
                content: Any = env.tools[name](**arguments)
            except Exception as exc:
                content = f"error: {type(exc).__name__}: {exc}"
            messages.append(tool_message(call, content))
            checkpoint(env, messages)  # state layer: after each tool step
    return None


# --- ready-made agents -----------------------------------------------------------------------------------


class ReferenceAgent:
    """A reference agent ``agent(task, env)``: the careful or the naive loop, its model ``model_factory(env)``.

    What ``make_agent`` returns. An instance of this module-level class, not a closure, so that it pickles
    by reference and runs under ``isolation: process`` (the child process imports it and gets its
    settings), as long as ``model_factory`` is importable too (a module-level function or an instance of
    a module-level class; a lambda is not). ``__name__`` is the agent's name and ``__doc__`` its loop's.
    """

    def __init__(self, model_factory: Callable[[Any], Model] = direct_model, *, careful: bool = True,
                 name: str | None = None):
        self.model_factory = model_factory
        self.careful = bool(careful)
        self.loop = run_careful if careful else run_naive
        self.__name__ = name or ("careful_agent" if careful else "naive_agent")
        self.__doc__ = self.loop.__doc__

    def __call__(self, task: str, env: Any) -> Any:
        return self.loop(task, env, self.model_factory(env))

    def __repr__(self) -> str:
        factory = getattr(self.model_factory, "__name__", None) or repr(self.model_factory)
        return f"make_agent({factory}, careful={self.careful}, name={self.__name__!r})"


def make_agent(model_factory: Callable[[Any], Model] = direct_model, *, careful: bool = True,
               name: str | None = None) -> Callable[[str, Any], Any]:
    """An agent ``agent(task, env)`` that talks to ``model_factory(env)``: careful or naive.

    A ``ReferenceAgent``: it pickles (and so runs under ``isolation: process``) when ``model_factory`` does.
    """
    return ReferenceAgent(model_factory, careful=careful, name=name)


#: The careful reference agent over the demo policy.
careful_agent = make_agent(careful=True)
#: The naive reference agent over the demo policy.
naive_agent = make_agent(careful=False)

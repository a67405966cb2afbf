"""Agents on the openai SDK, importing openai alone: for isolated trials (``isolation="process"``: a child process
imports this module for every trial), and the streaming one shared with ``client_agents``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai

TOOLS = [{"type": "function", "function": {"name": name, "description": f"{name} tool", "parameters": {
    "type": "object", "properties": {"order_id": {"type": "integer"}}, "required": ["order_id"]}}}
    for name in ("lookup_order", "refund_order")]
SYSTEM = {"role": "system", "content": "You refund orders."}


def run_tool(env: Any, name: str, arguments: Any) -> str:
    """Run a tool call the model asked for; an error goes back to the model as text (like frameworks do)."""
    try:
        args = json.loads(arguments) if isinstance(arguments, str) else dict(arguments)
        return str(env.tools[name](**args))
    except Exception as exc:
        return f"error: {type(exc).__name__}: {exc}"


def chat_agent(task: str, env: Any, client: Any, *, tools: list[Any] = TOOLS, turns: int = 6) -> str:
    """An agent on a sync ``openai`` client: the model's tool calls run until it answers."""
    messages: list[Any] = [SYSTEM, {"role": "user", "content": task}]
    for _ in range(turns):
        message = client.chat.completions.create(model=env.llm.model, messages=messages, tools=tools).choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        if not message.tool_calls:
            return message.content or ""
        for call in message.tool_calls:
            messages.append({"role": "tool", "tool_call_id": call.id,
                             "content": run_tool(env, call.function.name, call.function.arguments)})
    return "too many turns"


def sync_agent(task: str, env: Any) -> str:
    return chat_agent(task, env, env.llm.openai(max_retries=3))


async def stream_agent(task: str, env: Any, *, tools: list[Any] = TOOLS, turns: int = 6,
                       on_usage: Callable[[Any], None] | None = None) -> str:
    """An agent on ``openai.AsyncOpenAI`` with streamed replies (``on_usage``: told each stream's usage)."""
    client = openai.AsyncOpenAI(base_url=env.llm.base_url, api_key=env.llm.api_key, max_retries=3)
    messages: list[Any] = [SYSTEM, {"role": "user", "content": task}]
    usage = {"stream_options": {"include_usage": True}} if on_usage is not None else {}
    for _ in range(turns):
        for _attempt in range(3):  # a stream cut mid-way is not retried by the SDK: the agent retries
            try:
                stream = await client.chat.completions.create(model=env.llm.model, messages=messages, tools=tools,
                                                              stream=True, **usage)
                text, calls = "", {}
                async for chunk in stream:
                    if chunk.usage is not None and on_usage is not None:
                        on_usage(chunk.usage)
                    for choice in chunk.choices:
                        text += choice.delta.content or ""
                        for tc in choice.delta.tool_calls or ():
                            c = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                            c["id"] = tc.id or c["id"]
                            c["name"] += (tc.function and tc.function.name) or ""
                            c["arguments"] += (tc.function and tc.function.arguments) or ""
                break
            except (openai.APIConnectionError, openai.APIStatusError):
                continue
        else:
            return "model unavailable"
        if not calls:
            return text
        messages.append({"role": "assistant", "content": text or None, "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in calls.values()]})
        for c in calls.values():
            messages.append({"role": "tool", "tool_call_id": c["id"],
                             "content": run_tool(env, c["name"], c["arguments"])})
    return "too many turns"


async def async_streaming_agent(task: str, env: Any) -> str:
    return await stream_agent(task, env)


async def one_call(task: str, env: Any) -> str:
    """One model call, nothing else (for a live model's upstream)."""
    client = openai.AsyncOpenAI(base_url=env.llm.base_url, api_key=env.llm.api_key, max_retries=0)
    reply = await client.chat.completions.create(model=env.llm.model, messages=[{"role": "user", "content": task}])
    return reply.choices[0].message.content or ""

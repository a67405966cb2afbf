"""Agents on the openai SDK for isolated trials (``isolation="process"``): importable by a child process, and
importing openai alone (the child imports this module for every trial)."""

from __future__ import annotations

import json
from typing import Any

import openai

TOOLS = [{"type": "function", "function": {"name": name, "description": f"{name} tool", "parameters": {
    "type": "object", "properties": {"order_id": {"type": "integer"}}, "required": ["order_id"]}}}
    for name in ("lookup_order", "refund_order")]
SYSTEM = {"role": "system", "content": "You refund orders."}


def _run(env: Any, name: str, arguments: str) -> str:
    try:
        return str(env.tools[name](**json.loads(arguments)))
    except Exception as exc:  # (as frameworks do: the error goes back to the model)
        return f"error: {type(exc).__name__}: {exc}"


def sync_agent(task: str, env: Any) -> str:
    client = env.llm.openai(max_retries=3)
    messages: list[Any] = [SYSTEM, {"role": "user", "content": task}]
    for _ in range(6):
        message = client.chat.completions.create(model=env.llm.model, messages=messages, tools=TOOLS).choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        if not message.tool_calls:
            return message.content or ""
        for call in message.tool_calls:
            messages.append({"role": "tool", "tool_call_id": call.id,
                             "content": _run(env, call.function.name, call.function.arguments)})
    return "too many turns"


async def async_streaming_agent(task: str, env: Any) -> str:
    client = openai.AsyncOpenAI(base_url=env.llm.base_url, api_key=env.llm.api_key, max_retries=3)
    messages: list[Any] = [SYSTEM, {"role": "user", "content": task}]
    for _ in range(6):
        for _attempt in range(3):  # a cut stream is not retried by the SDK: the agent retries
            try:
                stream = await client.chat.completions.create(model=env.llm.model, messages=messages, tools=TOOLS,
                                                              stream=True)
                text, calls = "", {}
                async for chunk in stream:
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
            messages.append({"role": "tool", "tool_call_id": c["id"], "content": _run(env, c["name"], c["arguments"])})
    return "too many turns"

"""Wire formats of the fake model: parse OpenAI chat-completions, Anthropic messages and OpenAI responses
requests into one shape (OpenAI chat messages + function tools), and render replies and errors back in
the shape each client expects (JSON bodies and SSE streams). Pure functions: no HTTP, no state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import WireError, hide_own_frames

__tracebackhide__ = hide_own_frames

APIS = ("chat", "messages", "responses")


@dataclass(frozen=True, slots=True)
class Parsed:
    """A request in the common shape."""

    api: str
    model: str
    messages: tuple[dict[str, Any], ...]
    tools: tuple[dict[str, Any], ...]
    stream: bool
    include_usage: bool  # chat streaming: stream_options.include_usage


def api_of(path: str) -> str | None:
    """Which API a request path addresses (by its ending), or None."""
    path = path.rstrip("/")
    if path.endswith("/chat/completions"):
        return "chat"
    if path.endswith("/messages"):
        return "messages"
    if path.endswith("/responses"):
        return "responses"
    return None


def _text(content: Any) -> str:
    """Text of a content value: a string, or a list of text parts / blocks."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping):
                if "text" in part:
                    parts.append(str(part["text"]))
                elif part.get("type") == "tool_result":
                    parts.append(_text(part.get("content")))
        return "".join(parts)
    return str(content)


def _function_tool(name: Any, description: Any, parameters: Any) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": str(name)}
    if description:
        fn["description"] = str(description)
    fn["parameters"] = parameters if isinstance(parameters, Mapping) else {"type": "object", "properties": {}}
    return {"type": "function", "function": fn}


def parse(api: str, body: Any) -> Parsed:
    """Normalize a request body of ``api`` (``chat``, ``messages`` or ``responses``)."""
    if not isinstance(body, Mapping):
        raise WireError("request body must be a JSON object")
    model = str(body.get("model") or "")  # empty: the endpoint's own model
    stream = bool(body.get("stream"))
    if api == "chat":
        raw = body.get("messages")
        if not isinstance(raw, list):
            raise WireError("'messages' must be a list")
        messages = []
        for m in raw:
            if not isinstance(m, Mapping) or "role" not in m:
                raise WireError(f"each message must be an object with a 'role', got {m!r}")
            msg = {k: v for k, v in m.items() if k in ("role", "content", "name", "tool_calls", "tool_call_id")}
            msg["role"] = "system" if m["role"] == "developer" else m["role"]
            if "content" in msg and msg["content"] is not None:
                msg["content"] = _text(msg["content"])
            messages.append(msg)
        tools = [_function_tool(t["function"].get("name"), t["function"].get("description"),
                                t["function"].get("parameters"))
                 for t in body.get("tools") or () if isinstance(t, Mapping) and isinstance(t.get("function"), Mapping)]
        options = body.get("stream_options") or {}
        return Parsed(api, model, tuple(messages), tuple(tools), stream,
                      bool(isinstance(options, Mapping) and options.get("include_usage")))
    if api == "messages":
        return Parsed(api, model, tuple(_anthropic_messages(body)), tuple(
            _function_tool(t.get("name"), t.get("description"), t.get("input_schema"))
            for t in body.get("tools") or () if isinstance(t, Mapping) and t.get("name")), stream, True)
    if api == "responses":
        return Parsed(api, model, tuple(_responses_messages(body)), tuple(
            _function_tool(t.get("name"), t.get("description"), t.get("parameters"))
            for t in body.get("tools") or () if isinstance(t, Mapping) and t.get("type") == "function"),
            stream, True)
    raise WireError(f"unknown api {api!r}")


def _anthropic_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        out.append({"role": "system", "content": _text(system)})
    raw = body.get("messages")
    if not isinstance(raw, list):
        raise WireError("'messages' must be a list")
    for m in raw:
        if not isinstance(m, Mapping) or m.get("role") not in ("user", "assistant"):
            raise WireError(f"each message must have role 'user' or 'assistant', got {m!r}")
        content = m.get("content")
        if isinstance(content, str):
            out.append({"role": m["role"], "content": content})
            continue
        blocks = content if isinstance(content, list) else []
        if m["role"] == "assistant":
            text = "".join(str(b.get("text", "")) for b in blocks if isinstance(b, Mapping) and b.get("type") == "text")
            calls = [{"id": b.get("id"), "type": "function",
                      "function": {"name": b.get("name"), "arguments": json.dumps(b.get("input", {}), sort_keys=True)}}
                     for b in blocks if isinstance(b, Mapping) and b.get("type") == "tool_use"]
            msg: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                msg["tool_calls"] = calls
            out.append(msg)
            continue
        texts = []
        for b in blocks:
            if not isinstance(b, Mapping):
                continue
            if b.get("type") == "tool_result":
                out.append({"role": "tool", "tool_call_id": b.get("tool_use_id"), "content": _text(b.get("content"))})
            elif b.get("type") == "text":
                texts.append(str(b.get("text", "")))
        if texts:
            out.append({"role": "user", "content": "".join(texts)})
    return out


def _responses_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if body.get("instructions"):
        out.append({"role": "system", "content": _text(body["instructions"])})
    items = body.get("input")
    if isinstance(items, str):
        out.append({"role": "user", "content": items})
        return out
    if not isinstance(items, list):
        raise WireError("'input' must be a string or a list of items")
    for item in items:
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type", "message")
        if kind == "message" and "role" in item:
            role = "system" if item["role"] == "developer" else item["role"]
            out.append({"role": role, "content": _text(item.get("content"))})
        elif kind == "function_call":
            call = {"id": item.get("call_id"), "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments", "{}")}}
            if out and out[-1]["role"] == "assistant" and "tool_calls" in out[-1]:
                out[-1]["tool_calls"].append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            out.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": _text(item.get("output"))})
    return out


# --- rendering ------------------------------------------------------------------------------------------


def chat_body(message: Mapping[str, Any], *, rid: str, model: str, created: int, usage: tuple[int, int]
              ) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` object."""
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    msg = {"role": "assistant", "content": message.get("content"), "refusal": None}
    if message.get("tool_calls"):
        msg["tool_calls"] = [dict(c) for c in message["tool_calls"]]
    return {"id": f"chatcmpl-{rid}", "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": msg, "finish_reason": finish, "logprobs": None}],
            "usage": _chat_usage(usage), "system_fingerprint": "fp_agentops"}


def _chat_usage(usage: tuple[int, int]) -> dict[str, Any]:
    return {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": usage[0] + usage[1]}


def _chunks(text: str, size: int = 16) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def chat_sse(message: Mapping[str, Any], *, rid: str, model: str, created: int, usage: tuple[int, int],
             include_usage: bool) -> list[bytes]:
    """The SSE events of a streamed chat completion (``data: {chunk}`` ... ``data: [DONE]``)."""
    base = {"id": f"chatcmpl-{rid}", "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": "fp_agentops"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        data = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        if include_usage:
            data["usage"] = None
        return _sse(data)

    events = [chunk({"role": "assistant", "content": ""})]
    if message.get("content"):
        events.extend(chunk({"content": piece}) for piece in _chunks(message["content"]))
    for index, call in enumerate(message.get("tool_calls") or ()):
        fn = call["function"]
        events.append(chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                             "function": {"name": fn["name"], "arguments": ""}}]}))
        events.extend(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                      for piece in _chunks(fn["arguments"]))
    events.append(chunk({}, "tool_calls" if message.get("tool_calls") else "stop"))
    if include_usage:
        events.append(_sse({**base, "choices": [], "usage": _chat_usage(usage)}))
    events.append(b"data: [DONE]\n\n")
    return events


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _anthropic_blocks(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if message.get("content"):
        blocks.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or ():
        fn = call["function"]
        try:
            args = json.loads(fn["arguments"])
        except ValueError:
            args = {"__raw_arguments__": fn["arguments"]}  # tool_use input must be an object
        blocks.append({"type": "tool_use", "id": call["id"], "name": fn["name"],
                       "input": args if isinstance(args, dict) else {"value": args}})
    return blocks or [{"type": "text", "text": ""}]


def messages_body(message: Mapping[str, Any], *, rid: str, model: str, usage: tuple[int, int]) -> dict[str, Any]:
    """An Anthropic ``message`` object."""
    return {"id": f"msg_{rid}", "type": "message", "role": "assistant", "model": model,
            "content": _anthropic_blocks(message),
            "stop_reason": "tool_use" if message.get("tool_calls") else "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]}}


def messages_sse(message: Mapping[str, Any], *, rid: str, model: str, usage: tuple[int, int]) -> list[bytes]:
    """The SSE events of a streamed Anthropic message."""
    body = messages_body(message, rid=rid, model=model, usage=usage)
    start = {**body, "content": [], "stop_reason": None, "usage": {"input_tokens": usage[0], "output_tokens": 1}}
    events = [_sse({"type": "message_start", "message": start}, "message_start")]
    for index, block in enumerate(body["content"]):
        if block["type"] == "text":
            events.append(_sse({"type": "content_block_start", "index": index,
                                "content_block": {"type": "text", "text": ""}}, "content_block_start"))
            events.extend(_sse({"type": "content_block_delta", "index": index,
                                "delta": {"type": "text_delta", "text": piece}}, "content_block_delta")
                          for piece in _chunks(block["text"]))
        else:
            events.append(_sse({"type": "content_block_start", "index": index,
                                "content_block": {**block, "input": {}}}, "content_block_start"))
            events.extend(_sse({"type": "content_block_delta", "index": index,
                                "delta": {"type": "input_json_delta", "partial_json": piece}}, "content_block_delta")
                          for piece in _chunks(json.dumps(block["input"])))
        events.append(_sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
    events.append(_sse({"type": "message_delta", "delta": {"stop_reason": body["stop_reason"], "stop_sequence": None},
                        "usage": {"output_tokens": usage[1]}}, "message_delta"))
    events.append(_sse({"type": "message_stop"}, "message_stop"))
    return events


def responses_body(message: Mapping[str, Any], *, rid: str, model: str, created: int, usage: tuple[int, int]
                   ) -> dict[str, Any]:
    """An OpenAI ``response`` object (Responses API)."""
    output: list[dict[str, Any]] = []
    if message.get("content") or not message.get("tool_calls"):
        output.append({"type": "message", "id": f"msg_{rid}", "status": "completed", "role": "assistant",
                       "content": [{"type": "output_text", "text": message.get("content") or "", "annotations": [],
                                    "logprobs": []}]})
    for i, call in enumerate(message.get("tool_calls") or ()):
        fn = call["function"]
        output.append({"type": "function_call", "id": f"fc_{rid}_{i}", "call_id": call["id"], "name": fn["name"],
                       "arguments": fn["arguments"], "status": "completed"})
    return {"id": f"resp_{rid}", "object": "response", "created_at": created, "status": "completed",
            "model": model, "output": output, "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "error": None, "incomplete_details": None, "instructions": None, "metadata": {}, "temperature": 1.0,
            "top_p": 1.0, "text": {"format": {"type": "text"}}, "truncation": "disabled",
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1], "total_tokens": sum(usage),
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}}}


def responses_sse(message: Mapping[str, Any], *, rid: str, model: str, created: int, usage: tuple[int, int]
                  ) -> list[bytes]:
    """The SSE events of a streamed Responses API call (created, output items, completed)."""
    body = responses_body(message, rid=rid, model=model, created=created, usage=usage)
    events = [_sse({"type": "response.created", "sequence_number": 0,
                    "response": {**body, "status": "in_progress", "output": [], "usage": None}}, "response.created")]
    seq = 1
    for index, item in enumerate(body["output"]):
        events.append(_sse({"type": "response.output_item.added", "sequence_number": seq, "output_index": index,
                            "item": item}, "response.output_item.added"))
        events.append(_sse({"type": "response.output_item.done", "sequence_number": seq + 1, "output_index": index,
                            "item": item}, "response.output_item.done"))
        seq += 2
    events.append(_sse({"type": "response.completed", "sequence_number": seq, "response": body},
                       "response.completed"))
    return events


_OPENAI_ERRORS = {429: ("rate_limit_exceeded", "requests"), 500: ("server_error", "server_error"),
                  503: ("service_unavailable", "server_error"), 529: ("overloaded", "server_error"),
                  400: ("invalid_request", "invalid_request_error")}
_ANTHROPIC_ERRORS = {429: "rate_limit_error", 500: "api_error", 503: "api_error", 529: "overloaded_error",
                     400: "invalid_request_error"}


def error_body(api: str, status: int, message: str) -> dict[str, Any]:
    """The error object a client of ``api`` expects for an HTTP ``status``."""
    if api == "messages":
        return {"type": "error", "error": {"type": _ANTHROPIC_ERRORS.get(status, "api_error"), "message": message}}
    code, kind = _OPENAI_ERRORS.get(status, ("error", "server_error"))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}

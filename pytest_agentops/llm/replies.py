"""Replies of a real model API, read and rewritten: the ``usage`` an upstream reports, the assistant message
in a reply (to perturb it), and the reply written back in the client's wire format. Pure functions over
the bytes of an OpenAI chat-completions, Anthropic messages or OpenAI responses answer, JSON or SSE.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import hide_own_frames
from ..harness.meter import MOST_TOKENS
from . import wire

__tracebackhide__ = hide_own_frames


@dataclass(frozen=True, slots=True)
class Reply:
    """An upstream's answer, read: the assistant message (OpenAI chat format), its usage (None when the
    upstream sent none), and what identifies it (id, model, created)."""

    message: dict[str, Any]
    usage: tuple[int, int] | None
    meta: dict[str, Any] = field(default_factory=dict)


def sse_events(body: bytes) -> list[bytes]:
    """The events of an SSE body, each with its blank-line terminator (what a stream is cut between)."""
    text = body.replace(b"\r\n", b"\n")
    events = [e + b"\n\n" for e in text.split(b"\n\n") if e.strip()]
    return events


def event_data(event: bytes) -> Any:
    """The JSON of an SSE event's ``data:`` lines (None for ``[DONE]`` or no data)."""
    lines = [line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    payload = b"\n".join(lines)
    if payload == b"[DONE]":
        return None
    try:
        return json.loads(payload)
    except ValueError:
        return None


def _events(body: bytes) -> list[Any]:
    return [d for d in (event_data(e) for e in sse_events(body)) if isinstance(d, dict)]


def _int(value: Any) -> int:
    """A token count of an upstream reply's usage (parsed JSON: an exact ``int``), within what a call can count."""
    return min(value, MOST_TOKENS) if type(value) is int and value >= 0 else 0


def _usage(api: str, usage: Any) -> tuple[int, int] | None:
    if not isinstance(usage, Mapping):
        return None
    if api == "chat":
        return _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))
    if api == "messages":  # cached prompt tokens are prompt tokens too
        inp = sum(_int(usage.get(k)) for k in ("input_tokens", "cache_creation_input_tokens",
                                                  "cache_read_input_tokens"))
        return inp, _int(usage.get("output_tokens"))
    return _int(usage.get("input_tokens")), _int(usage.get("output_tokens"))


def read_usage(api: str, body: bytes, stream: bool) -> tuple[int, int] | None:
    """The (input, output) tokens the upstream reports for this answer, or None."""
    if not stream:
        try:
            data = json.loads(body)
        except ValueError:
            return None
        return _usage(api, data.get("usage")) if isinstance(data, dict) else None
    found: tuple[int, int] | None = None
    for data in _events(body):
        if api == "chat" and data.get("usage"):
            found = _usage(api, data["usage"])
        elif api == "messages":
            if data.get("type") == "message_start":
                start = _usage(api, (data.get("message") or {}).get("usage"))
                found = (start[0], found[1] if found else start[1]) if start else found
            elif data.get("type") == "message_delta" and isinstance(data.get("usage"), Mapping):
                out = _int(data["usage"].get("output_tokens"))
                found = (found[0] if found else 0, out)
        elif api == "responses" and data.get("type") in ("response.completed", "response.incomplete"):
            found = _usage(api, (data.get("response") or {}).get("usage"))
    return found


def strip_usage_chunk(body: bytes) -> bytes:
    """A chat stream without its usage-only chunk (``choices: []``): the boundary asked for it to meter the
    call, the client did not."""
    kept = []
    for event in sse_events(body):
        data = event_data(event)
        if isinstance(data, dict) and data.get("choices") == [] and data.get("usage"):
            continue
        kept.append(event)
    return b"".join(kept)


# --- the assistant message ------------------------------------------------------------------------------------


def _call(cid: Any, name: Any, arguments: Any) -> dict[str, Any]:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments if arguments is not None else {})
    return {"id": str(cid or ""), "type": "function", "function": {"name": str(name or ""), "arguments": args}}


def _message(content: str | None, calls: list[dict[str, Any]]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _from_chat(data: Mapping[str, Any]) -> dict[str, Any]:
    choice = (data.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    calls = [_call(c.get("id"), (c.get("function") or {}).get("name"), (c.get("function") or {}).get("arguments"))
             for c in msg.get("tool_calls") or ()]
    return _message(msg.get("content"), calls)


def _from_messages(blocks: Any) -> dict[str, Any]:
    text = "".join(str(b.get("text", "")) for b in blocks or () if b.get("type") == "text")
    calls = [_call(b.get("id"), b.get("name"), b.get("input")) for b in blocks or () if b.get("type") == "tool_use"]
    return _message(text, calls)


def _from_responses(output: Any) -> dict[str, Any]:
    text, calls = "", []
    for item in output or ():
        if item.get("type") == "message":
            text += "".join(str(p.get("text", "")) for p in item.get("content") or () if p.get("type") == "output_text")
        elif item.get("type") == "function_call":
            calls.append(_call(item.get("call_id"), item.get("name"), item.get("arguments")))
    return _message(text, calls)


def _chat_stream(events: list[Any]) -> dict[str, Any]:
    text, calls = "", {}
    for data in events:
        for choice in data.get("choices") or ():
            delta = choice.get("delta") or {}
            text += delta.get("content") or ""
            for tc in delta.get("tool_calls") or ():
                c = calls.setdefault(tc.get("index", 0), {"id": "", "name": "", "arguments": ""})
                c["id"] = tc.get("id") or c["id"]
                fn = tc.get("function") or {}
                c["name"] += fn.get("name") or ""
                c["arguments"] += fn.get("arguments") or ""
    return _message(text, [_call(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())])


def _messages_stream(events: list[Any]) -> dict[str, Any]:
    blocks: dict[int, dict[str, Any]] = {}
    for data in events:
        kind, index = data.get("type"), data.get("index", 0)
        if kind == "content_block_start":
            block = dict(data.get("content_block") or {})
            block["partial"] = ""
            blocks[index] = block
        elif kind == "content_block_delta" and index in blocks:
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                blocks[index]["text"] = blocks[index].get("text", "") + str(delta.get("text", ""))
            elif delta.get("type") == "input_json_delta":
                blocks[index]["partial"] += str(delta.get("partial_json", ""))
    out = []
    for _, block in sorted(blocks.items()):
        if block.get("type") == "tool_use" and block["partial"]:
            try:
                block["input"] = json.loads(block["partial"])
            except ValueError:
                block["input"] = block["partial"]
        out.append(block)
    return _from_messages(out)


def read_reply(api: str, body: bytes, stream: bool) -> Reply | None:
    """The assistant message, usage and identity of a 200 answer (None when it cannot be read)."""
    usage = read_usage(api, body, stream)
    if not stream:
        try:
            data = json.loads(body)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        meta = {"id": data.get("id"), "model": data.get("model"), "created": data.get("created",
                                                                                     data.get("created_at"))}
        if api == "chat":
            return Reply(_from_chat(data), usage, meta)
        if api == "messages":
            return Reply(_from_messages(data.get("content")), usage, meta)
        return Reply(_from_responses(data.get("output")), usage, meta)
    events = _events(body)
    meta: dict[str, Any] = {}
    for data in events:
        source = data.get("message") if data.get("type") == "message_start" else data.get("response") \
            if str(data.get("type", "")).startswith("response.") else data
        if isinstance(source, Mapping) and source.get("id") and not meta:
            meta = {"id": source.get("id"), "model": source.get("model"),
                    "created": source.get("created", source.get("created_at"))}
    if api == "chat":
        return Reply(_chat_stream(events), usage, meta)
    if api == "messages":
        return Reply(_messages_stream(events), usage, meta)
    done = [d for d in events if d.get("type") == "response.completed"]
    if not done:
        return None
    return Reply(_from_responses((done[-1].get("response") or {}).get("output")), usage, meta)


def _rid(meta: Mapping[str, Any], prefix: str) -> str:
    rid = str(meta.get("id") or "agentops-perturbed")
    return rid[len(prefix):] if rid.startswith(prefix) else rid


def render(api: str, message: Mapping[str, Any], reply: Reply, *, stream: bool, include_usage: bool,
           model: str) -> list[bytes]:
    """A (perturbed) reply in the client's wire format, as the chunks to send: one JSON body, or SSE events."""
    usage = reply.usage or (0, 0)
    meta = reply.meta
    created = int(meta.get("created") or 0)
    model = str(meta.get("model") or model)
    if api == "chat":
        rid = _rid(meta, "chatcmpl-")
        if stream:
            return wire.chat_sse(message, rid=rid, model=model, created=created, usage=usage,
                                 include_usage=include_usage)
        return [json.dumps(wire.chat_body(message, rid=rid, model=model, created=created, usage=usage)).encode()]
    if api == "messages":
        rid = _rid(meta, "msg_")
        if stream:
            return wire.messages_sse(message, rid=rid, model=model, usage=usage)
        return [json.dumps(wire.messages_body(message, rid=rid, model=model, usage=usage)).encode()]
    rid = _rid(meta, "resp_")
    if stream:
        return wire.responses_sse(message, rid=rid, model=model, created=created, usage=usage)
    return [json.dumps(wire.responses_body(message, rid=rid, model=model, created=created, usage=usage)).encode()]


def output_limit(api: str, body: Mapping[str, Any]) -> int | None:
    """The most output tokens a request allows (its own limit), or None when it sets none."""
    names = {"chat": ("max_completion_tokens", "max_tokens"), "messages": ("max_tokens",),
             "responses": ("max_output_tokens",)}.get(api, ())
    for name in names:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None

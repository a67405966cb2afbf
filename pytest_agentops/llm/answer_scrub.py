"""A live upstream's answer with secrets taken out, as a reader of it would put its text together.

Replacing a secret in an answer's raw bytes missed two cases an outside review found: a stream's deltas
spell a secret no one chunk holds (an upstream echoing the key 4 characters at a time: the key reached the
agent, and a cassette meant to be committed held the whole secret in order), and a secret number in a JSON
body (``"pin": 73915482``) became a bare ``[redacted]``, no longer JSON (every replayed trial an error).
Here every string (and number) of the answer's JSON is scrubbed in place, and each text a stream's deltas spell
together is scrubbed whole: put, scrubbed, into its first delta, the others emptied (every other field of the
stream, its finish reason and usage among them, as it came). An answer with nothing to take out is returned as
it came, byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..errors import hide_own_frames
from . import replies
from .cassette import Recorded

__tracebackhide__ = hide_own_frames

Scrub = Callable[[str], str]


def _walk(value: Any, scrub: Scrub) -> Any:
    """``value`` (parsed JSON) with ``scrub`` applied to each string and key; a number whose text it changes
    becomes the scrubbed text (a string: the JSON stays JSON)."""
    kind = type(value)
    if kind is str:
        return scrub(value)
    if kind is dict:
        return {scrub(k): _walk(v, scrub) for k, v in value.items()}
    if kind is list:
        return [_walk(v, scrub) for v in value]
    if kind in (int, float):
        text = json.dumps(value)
        shown = scrub(text)
        return value if shown == text else shown
    return value


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


Slot = tuple[tuple[Any, ...], dict[str, Any], str, dict[str, Any] | None]


def _slots(api: str, data: Any) -> list[Slot]:
    """The text pieces a stream event adds to a longer text, each as (the text it belongs to, the mapping holding
    it, its key, the mapping whose ``logprobs`` spell the piece again, if any): a chat chunk's content, refusal
    and tool arguments (per choice and call), a messages event's text, JSON or thinking (per block), a responses
    ``*.delta`` event's delta (per item, part and summary part)."""
    if not isinstance(data, dict):
        return []
    found: list[Slot] = []
    if api == "chat":
        for choice in data.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            at = choice.get("index")
            for key in ("content", "refusal"):
                if isinstance(delta.get(key), str):
                    found.append(((key, at), delta, key, choice))
            for call in delta.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    found.append((("arguments", at, call.get("index")), function, "arguments", None))
    elif api == "messages":
        delta = data.get("delta")
        if data.get("type") == "content_block_delta" and isinstance(delta, dict):
            for key in ("text", "partial_json", "thinking"):
                if isinstance(delta.get(key), str):
                    found.append(((key, data.get("index")), delta, key, None))
    elif str(data.get("type", "")).endswith(".delta") and isinstance(data.get("delta"), str):
        found.append(((data.get("type"), data.get("item_id"), data.get("output_index"), data.get("content_index"),
                       data.get("summary_index")), data, "delta", data))
    return found


def _stream(api: str, body: bytes, scrub: Scrub) -> bytes:
    """A stream's body scrubbed: each event's JSON strings, then each text its deltas spell together (a secret no
    one chunk holds): such a text, scrubbed, goes whole into its first piece, the others emptied, and the
    pieces' token log-probabilities (which spell it again) are dropped; every other field of every event (finish
    reasons, usage, ids) stays as it came."""
    events = replies.sse_events(body)
    datas = [replies.event_data(e) for e in events]
    walked = [_walk(d, scrub) if d is not None else None for d in datas]
    texts: dict[tuple[Any, ...], list[tuple[int, dict[str, Any], str, dict[str, Any] | None]]] = {}
    for i, data in enumerate(walked):
        for key, holder, field, spelt in _slots(api, data):
            texts.setdefault(key, []).append((i, holder, field, spelt))
    changed = {i for i, (a, b) in enumerate(zip(datas, walked, strict=True)) if a != b}
    for pieces in texts.values():
        whole = "".join(holder[field] for _, holder, field, _ in pieces)
        shown = scrub(whole)
        if shown == whole:
            continue
        for n, (i, holder, field, spelt) in enumerate(pieces):
            holder[field] = shown if n == 0 else ""
            if spelt is not None and spelt.get("logprobs") is not None:
                spelt["logprobs"] = None if api == "chat" else []
            changed.add(i)
    out = []
    for i, event in enumerate(events):
        if i in changed:
            lines = [line for line in event.rstrip(b"\n").split(b"\n") if not line.startswith(b"data:")]
            out.append(b"\n".join([*lines, b"data: " + _dumps(walked[i])]) + b"\n\n")
        elif datas[i] is None:  # (no JSON: ``[DONE]``, a comment, an error's text)
            out.append(_text(event, scrub))
        else:
            out.append(event)
    return body if all(a is b for a, b in zip(out, events, strict=True)) else b"".join(out)


def scrub_answer(answer: Recorded, api: str | None, stream: bool, scrub: Scrub) -> Recorded:
    """``answer`` with ``scrub`` applied to the text it carries: each JSON string (and number) of a JSON body or of
    a stream's events, each text a stream's deltas spell together, the whole text of any other body."""
    body = answer.body
    if api is None:
        new_body = _text(body, scrub)
    elif stream:
        new_body = _stream(api, body, scrub)
    else:
        try:
            data = json.loads(body)
        except ValueError:
            new_body = _text(body, scrub)
        else:
            walked = _walk(data, scrub)
            new_body = body if walked == data else _dumps(walked)
    return answer if new_body is body else Recorded(answer.status, answer.headers, new_body, answer.latency_s)


def _text(body: bytes, scrub: Scrub) -> bytes:
    text = body.decode("utf-8", "replace")
    shown = scrub(text)
    return body if shown == text else shown.encode("utf-8")

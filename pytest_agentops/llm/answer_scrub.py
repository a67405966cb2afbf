"""A live upstream's answer with secrets taken out, as a reader of it would put its text together.

Replacing a secret in an answer's raw bytes missed two cases an outside review found: a stream's deltas
spell a secret no one chunk holds (an upstream echoing the key 4 characters at a time: the key reached the
agent, and a cassette meant to be committed held the whole secret in order), and a secret number in a JSON
body (``"pin": 73915482``) became a bare ``[redacted]``, no longer JSON (every replayed trial an error).
Here every string (and number) of the answer's JSON is scrubbed in place, and a stream whose message, put
together, still holds a secret is written anew from the scrubbed message (``replies.render``). An answer
with nothing to take out is returned as it came, byte for byte.
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


def _event(event: bytes, scrub: Scrub) -> bytes:
    """One SSE event with its ``data:`` JSON scrubbed (its other lines scrubbed as text)."""
    data = replies.event_data(event)
    if data is None:
        text = event.decode("utf-8", "replace")
        shown = scrub(text)
        return event if shown == text else shown.encode("utf-8")
    walked = _walk(data, scrub)
    if walked == data:
        return event
    lines = [line for line in event.rstrip(b"\n").split(b"\n") if not line.startswith(b"data:")]
    return b"\n".join([*lines, b"data: " + _dumps(walked)]) + b"\n\n"


def _holds(message: Any, scrub: Scrub) -> bool:
    return _walk(message, scrub) != message


def scrub_answer(answer: Recorded, api: str | None, stream: bool, scrub: Scrub, model: str = "*") -> Recorded:
    """``answer`` with ``scrub`` applied to the text it carries: each JSON string of a JSON body or stream event,
    the whole text of any other body; a stream whose assembled message still holds what ``scrub`` takes out is
    written anew from the scrubbed message."""
    body = answer.body
    if api is not None and not stream:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if data is not None:
            walked = _walk(data, scrub)
            return answer if walked == data else Recorded(answer.status, answer.headers, _dumps(walked),
                                                         answer.latency_s)
    if api is not None and stream:
        events = replies.sse_events(body)
        scrubbed = [_event(e, scrub) for e in events]
        new_body = b"".join(scrubbed) if any(a is not b for a, b in zip(events, scrubbed, strict=True)) else body
        reply = replies.read_reply(api, new_body, True) if answer.status == 200 else None
        if reply is not None and _holds(reply.message, scrub):  # a secret split across the deltas
            message = _walk(reply.message, scrub)
            new_body = b"".join(replies.render(api, message, reply, stream=True,
                                               include_usage=reply.usage is not None, model=model))
        return answer if new_body is body else Recorded(answer.status, answer.headers, new_body, answer.latency_s)
    text = body.decode("utf-8", "replace")
    shown = scrub(text)
    return answer if shown == text else Recorded(answer.status, answer.headers, shown.encode("utf-8"),
                                                 answer.latency_s)

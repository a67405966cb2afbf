"""The deterministic token rule of the fake model.

No tokenizer is involved: the fake counts characters, so token counts are exact, reproducible and the
same for every API shape (the request is first normalized to OpenAI chat messages).

- ``tokens(text) = ceil(len(text) / 4)`` (0 for empty text), about what real tokenizers give for English;
- input tokens = ``tokens(canonical(messages)) + tokens(canonical(tools))``, where ``canonical`` is
  ``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` and ``messages`` are
  the prompt as the policy saw it (after context drift);
- output tokens = ``tokens(content)`` plus, per tool call, ``tokens(name + arguments)``; at least 1.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import hide_own_frames

__tracebackhide__ = hide_own_frames

CHARS_PER_TOKEN = 4


def canonical(value: Any) -> str:
    """The canonical JSON text of a value (the unit the token rule counts)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def tokens(text: str) -> int:
    """``ceil(len(text) / 4)``: the fake's token count of a text."""
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def message_tokens(message: Mapping[str, Any]) -> int:
    """Tokens of one prompt message (its canonical JSON)."""
    return tokens(canonical(message))


def input_tokens(messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] = ()) -> int:
    """Input tokens of a request: its messages and its tool declarations."""
    return prompt_tokens([canonical(m) for m in messages], tools)


def prompt_tokens(texts: Sequence[str], tools: Sequence[Mapping[str, Any]] = ()) -> int:
    """``input_tokens`` from the canonical texts of the messages, which the fake then also counts one by one
    (each message encoded once): the canonical text of the list is ``[`` + the texts joined by ``,`` + ``]``."""
    chars = 2 + sum(map(len, texts)) + max(0, len(texts) - 1)
    return math.ceil(chars / CHARS_PER_TOKEN) + (tokens(canonical(list(tools))) if tools else 0)


def output_tokens(message: Mapping[str, Any]) -> int:
    """Output tokens of an assistant message: its text plus each tool call's name and arguments."""
    total = tokens(message.get("content") or "")
    for call in message.get("tool_calls") or ():
        fn = call.get("function", {})
        total += tokens(str(fn.get("name", "")) + str(fn.get("arguments", "")))
    return max(1, total)

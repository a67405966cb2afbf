"""Checkpoint and resume for the reference agents: the conversation is the agent's progress.

Both agents save the conversation to ``env.state`` after every model turn and every tool result, so a
restarted agent (after a crash, ``Faults(crash=...)``) picks up where the last checkpoint left it instead
of paying for the earlier model turns again. What they do with a tool call the crash interrupted (asked
for, but with no result in the checkpoint: it may or may not have taken effect) is what separates them:

- the careful agent answers it with ``INTERRUPTED``, an error; the model then looks the state up before
  acting again (the idempotency check), so a refund that went through is not issued twice;
- the naive agent runs it again, as a checkpointer that replays the pending step does: a crash between
  a refund and its checkpoint refunds twice (``duplicate_side_effects``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

#: The ``env.state`` key of the saved conversation.
CONVERSATION = "conversation"
#: The result the careful agent gives a tool call that a crash interrupted.
INTERRUPTED = ("error: the agent restarted after a crash during this call; it may or may not have taken "
               "effect, so check the state before doing it again")


def checkpoint(env: Any, messages: Sequence[Mapping[str, Any]]) -> None:
    """Save the conversation (as JSON data: what any checkpoint store keeps)."""
    env.state.save(CONVERSATION, json.loads(json.dumps(list(messages), default=str)))


def resume(env: Any, start: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the conversation to continue, the tool calls a crash left without a result).

    A fresh start returns ``start`` and no calls; after a restart, the checkpointed conversation.
    """
    saved = env.state.load(CONVERSATION)
    if not saved:
        return start, []
    answered = {m.get("tool_call_id") for m in saved if m.get("role") == "tool"}
    last = next((m for m in reversed(saved) if m.get("role") == "assistant"), None)
    pending = [c for c in (last or {}).get("tool_calls") or () if c.get("id") not in answered]
    env.trace.add("agent", "resume", "ok", messages=len(saved), interrupted=[
        (c.get("function") or {}).get("name") for c in pending])
    return saved, pending

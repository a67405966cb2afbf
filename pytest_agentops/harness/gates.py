"""Confirmation gates and the simulated human approver.

``env.confirm(action, **details)`` asks the approver; an approval is single-use and bound to the tool
(``action`` is the tool's name) and the arguments given as ``details``. A destructive call without a
matching, unused approval is an *unconfirmed destructive call*: counted always, blocked under ``enforce``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, check_seconds
from .tools import ToolSpec


@dataclass(frozen=True, slots=True)
class Approver:
    """The simulated human: approves with probability ``approve``, answering after ``latency_s``
    virtual seconds on average (exponential)."""

    approve: float = 1.0
    latency_s: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.approve, bool) or not isinstance(self.approve, (int, float)) \
                or not 0.0 <= self.approve <= 1.0:
            raise ConfigError(f"approve={self.approve!r} must be a probability between 0 and 1")
        check_seconds("latency_s", self.latency_s)


def _same(a: Any, b: Any) -> bool:
    try:
        return (type(a) is type(b) and bool(a == b)) or (
            isinstance(a, (int, float)) and isinstance(b, (int, float))
            and not isinstance(a, bool) and not isinstance(b, bool) and a == b)
    except Exception:
        return False


@dataclass(frozen=True, slots=True)
class Approval:
    """One granted confirmation, waiting to be used by exactly one matching call."""

    number: int
    action: str
    details: Mapping[str, Any]

    def matches(self, tool: str, explicit: Mapping[str, Any], arguments: Mapping[str, Any]) -> bool:
        """Bound to the tool and its arguments: every argument the call passed is confirmed with the same
        value, and every confirmed detail is an argument of the call with that value."""
        if self.action != tool:
            return False
        if any(k not in self.details or not _same(self.details[k], v) for k, v in explicit.items()):
            return False
        return all(k in arguments and _same(arguments[k], v) for k, v in self.details.items())


class Gate:
    """The per-trial confirmation gate: asks the approver, keeps unused approvals, matches calls."""

    def __init__(self, approver: Approver, rng_factory: Callable[[], np.random.Generator],
                 on_event: Callable[..., Any], advance: Callable[[float], None]):
        self.approver = approver
        self._rng_factory = rng_factory
        self._rng: np.random.Generator | None = None
        self._on_event = on_event
        self._advance = advance
        self._pending: list[Approval] = []
        self._asked = 0
        self._lock = threading.Lock()
        self.denied = 0

    def confirm(self, action: str, details: Mapping[str, Any]) -> bool:
        """Ask the simulated human; True means approved (and one matching call may now go ahead)."""
        if not isinstance(action, str) or not action:
            raise TypeError(f"env.confirm(action, **details): action={action!r} must be the tool's name")
        if self._rng is None:
            self._rng = self._rng_factory()
        u, u_latency = self._rng.random(2)
        latency = -self.approver.latency_s * math.log1p(-u_latency) if self.approver.latency_s else 0.0
        if latency:
            self._advance(latency)
        approved = bool(u < self.approver.approve)
        with self._lock:
            self._asked += 1
            if approved:
                self._pending.append(Approval(self._asked, action, dict(details)))
            else:
                self.denied += 1
        self._on_event("confirmation", action, "approved" if approved else "denied",
                       latency_s=round(latency, 6), **details)
        return approved

    def check(self, spec: ToolSpec, explicit: Mapping[str, Any], arguments: Mapping[str, Any]) -> Approval | None:
        """The unused approval that covers this call, if any (not yet consumed)."""
        with self._lock:
            for approval in self._pending:
                if approval.matches(spec.name, explicit, arguments):
                    return approval
        return None

    def consume(self, approval: Approval) -> None:
        """Use up an approval: the call it covered has gone ahead."""
        with self._lock:
            if approval in self._pending:
                self._pending.remove(approval)

    @property
    def asked(self) -> int:
        return self._asked

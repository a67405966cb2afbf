"""The hermetic network of a running campaign: an HTTP request (httpx or httpx2, sync or async) made inside a
trial to a host the trial may not reach fails with a connection error naming the host and the trial.

Trials register what they may reach (``GUARD.add``): their scenario's ``allow_hosts`` and the hosts of its
HTTP faults. A trial's own model host is never network; a live upstream is reached by the live boundary
itself (over its own connections), so an agent calling the provider's host directly is refused. The HTTP
interception hub (``process.http_hub``) asks the guard before it lets a request through to the network;
the guard finds the calling trial by its virtual clock (the clock of the calling thread or asyncio task),
as the HTTP faults do. Requests made outside any trial (the test itself, threads an agent starts without a
context) are not the guard's business.

Only HTTP sent through httpx and httpx2 is seen; ``urllib``, ``requests`` and raw sockets are not.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import hide_own_frames
from ..settings.network import host_allowed
from .time_patch import active_clock

__tracebackhide__ = hide_own_frames


class NetworkBlocked(Exception):
    """Raised inside the agent when the hermetic network refused a request (a connection error of the
    agent's own HTTP stack is raised instead where one is known: ``core.ConnectError``)."""


class _Entry:
    __slots__ = ("allowed", "label", "on_block")

    def __init__(self, allowed: frozenset[str], label: str, on_block: Callable[[str], None]):
        self.allowed = allowed
        self.label = label
        self.on_block = on_block


class NetworkGuard:
    """The trials whose network is guarded, by the id of their virtual clock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[int, _Entry] = {}

    def add(self, clock: Any, allowed: Iterable[str], label: str, on_block: Callable[[str], None]) -> None:
        """Guard requests made on ``clock``: only ``allowed`` hosts pass; ``on_block(host)`` is told of the
        others before the request fails."""
        with self._lock:
            self._entries[id(clock)] = _Entry(frozenset(allowed), label, on_block)

    def remove(self, clock: Any) -> None:
        with self._lock:
            self._entries.pop(id(clock), None)

    def check(self, host: str, core: Any = None) -> None:
        """Raise a connection error (``core.ConnectError``, else ``NetworkBlocked``) when the calling trial may
        not reach ``host``."""
        clock = active_clock()
        if clock is None:
            return
        entry = self._entries.get(id(clock))
        if entry is None or host_allowed(host, entry.allowed):
            return
        entry.on_block(host)
        message = (f"pytest-agentops: network access to {host!r} blocked in {entry.label}: the campaign is "
                   f"hermetic (network: deny); declare the host in the scenario's allow_hosts, or set network: "
                   f"allow. A model client without base_url=env.llm.base_url reaches the provider's real host")
        error = getattr(core, "ConnectError", None) if core is not None else None
        raise (error or NetworkBlocked)(message)


GUARD = NetworkGuard()

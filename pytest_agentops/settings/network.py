"""The hermetic network of a campaign: which hosts a trial's agent and tools may reach over HTTP
(``Scenario(network=..., allow_hosts=...)``), and what the guard recorded (``NetworkRecord``). Values only;
the guard is ``pytest_agentops.process.network_guard``, the layer ``pytest_agentops.harness.network``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, hide_own_frames

__tracebackhide__ = hide_own_frames

#: ``deny``: requests to hosts not allowed fail; ``allow``: no guard (the opt-out).
NETWORK_MODES = ("deny", "allow")
#: A host name, an IP address, or ``*.`` and a domain (its subdomains).
HOST_PATTERN = r"^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$|^\[?[0-9A-Fa-f:.]+\]?$"


def check_hosts(name: str, hosts: Any) -> tuple[str, ...]:
    """Host names (``api.example.com``, ``127.0.0.1``, ``*.example.com``), lower-cased."""
    if isinstance(hosts, str) or not isinstance(hosts, Sequence) or not all(isinstance(h, str) for h in hosts):
        raise ConfigError(f"{name}={hosts!r} must be a list of host names (e.g. ['api.example.com', '127.0.0.1'])")
    for host in hosts:
        if not re.fullmatch(HOST_PATTERN, host):
            raise ConfigError(f"{name}: {host!r} is not a host name (e.g. 'api.example.com', '127.0.0.1' or "
                              "'*.example.com'; no scheme, port or path)")
    return tuple(h.lower().strip("[]") for h in hosts)


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """Whether ``host`` is one of ``allowed`` (``*.example.com`` allows its subdomains)."""
    host = host.lower().strip("[]")
    return any(entry == host or (entry.startswith("*.") and host.endswith(entry[1:])) for entry in allowed)


@dataclass(frozen=True, slots=True)
class NetworkRecord:
    """What the network guard refused in a trial: the hosts the agent or its tools tried to reach."""

    blocked: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"blocked_hosts": list(self.blocked)} if self.blocked else {}

"""Transport faults for the HTTP hosts a trial's tools call (``settings.model.HttpFaults``): a 429, 5xx,
timeout or reset instead of the real answer, drawn per host and request from the trial's plan."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import hide_own_frames
from ..plan import Occurrences, fault_id
from ..seeding import text_key
from ..settings.model import HttpFaults

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    from ..harness.layer import TrialPort


class HttpTrial:
    """One trial's transport faults for the hosts its ``HttpFaults`` names (a ``process.http_hub`` handler)."""

    def __init__(self, ctx: TrialPort, settings: HttpFaults):
        self.ctx = ctx
        self.settings = settings
        self.hosts = frozenset(settings.hosts)
        self.counts: dict[str, int] = {}  # requests per host (numbers them in the trace)
        self._sent = Occurrences()  # per request (host, method, path, body): how often it was sent before
        self._lock = threading.Lock()

    def handle(self, request: httpx.Request, core: Any) -> httpx.Response | None:
        """A fault response (or raised transport error) for this request, or None to let it through."""
        host = request.url.host
        with self._lock:
            index = self.counts.get(host, 0)
            self.counts[host] = index + 1
        s = self.settings
        key = text_key(b"%s %s %s\n%s" % (request.method.encode(), host.encode(), request.url.raw_path,
                                           request.content))
        occurrence = self._sent.next(key)
        kind = self.ctx.plan.http_fault(host, key, occurrence, s.rate, s.mix)
        if kind is None:
            return None
        self.ctx.trace.add("fault", f"http:{host}", kind, call=index, method=request.method, path=request.url.path,
                           fid=fault_id("http", host, key, occurrence))
        if kind == "timeout":
            timeout = (request.extensions.get("timeout") or {}).get("read")
            wait = float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else s.timeout_s
            self.ctx.clock_advance(wait)
            raise core.ReadTimeout(f"no response from {host} within {wait:g}s (injected)")
        if kind == "connection_reset":
            raise core.ReadError("[Errno 104] Connection reset by peer (injected)")
        status = {"rate_limit": 429, "server_error": 500, "unavailable": 503}[kind]
        ms = max(1, round(s.retry_after_s * 1000))
        return httpx.Response(status, headers={"retry-after-ms": str(ms), "retry-after": f"{s.retry_after_s:g}"},
                              json={"error": f"{kind} (injected by pytest-agentops)"})

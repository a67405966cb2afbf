"""Forwarding to a live upstream: one request out, its whole answer back, over the campaign's own keep-alive
connections (``http.client``, one per forwarding thread), not through the agent's HTTP stack, so neither
respx nor the hermetic network sees it and the key never passes through the agent's code.

The agent's fake key is replaced by the real one (in the header the agent used: ``x-api-key`` for
Anthropic, ``api-key`` for Azure, else ``Authorization: Bearer``). The campaign's rate limits are kept
(``ratelimit.RateLimiter``), and an upstream 429 is waited out and retried (``throttle_retries`` times)
before the agent sees one.
"""

from __future__ import annotations

import http.client
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import UpstreamError, hide_own_frames
from ..settings.live import LiveLLM
from ..vtime.real import real_perf_counter
from .cassette import Recorded, recorded_latency
from .endpoint import shared_ssl_context
from .ratelimit import RateLimiter

__tracebackhide__ = hide_own_frames

#: Request headers never forwarded: the transport's own, and every credential the agent sent.
DROPPED_HEADERS = frozenset({"host", "content-length", "connection", "keep-alive", "transfer-encoding",
                             "accept-encoding", "authorization", "x-api-key", "api-key", "cookie"})


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One request to forward: ``path`` is relative to the upstream's base URL (query included); ``auth`` the
    header the key goes in; ``tokens`` an estimate of its tokens (for the tokens-per-minute ceiling)."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    auth: str = "authorization"
    tokens: int = 0


def retry_after(headers: tuple[tuple[str, str], ...]) -> float | None:
    """Seconds an answer asks to wait (``retry-after-ms`` or ``retry-after`` in seconds), or None."""
    found = dict(headers)
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            return max(0.0, float(found[name]) / scale)
        except (KeyError, ValueError):
            continue
    return None


class _HTTPConnection(http.client.HTTPConnection):
    """A connection without Nagle's delay: ``http.client`` writes a request's headers and body separately."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _HTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class HttpUpstream:
    """A live upstream: where requests go, with the key, the rate limits and the connections."""

    def __init__(self, live: LiveLLM, key: str):
        parts = urlsplit(live.base_url)
        self.live = live
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.tls else 80)
        self.prefix = parts.path.rstrip("/")
        self._key = key
        self.limiter = RateLimiter(live.requests_per_minute, live.tokens_per_minute)
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self.requests = 0

    def __repr__(self) -> str:  # never the key
        return f"HttpUpstream({self.live.base_url!r})"

    def _connection(self, fresh: bool) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and not fresh:
            return conn
        if conn is not None:
            conn.close()
        timeout = self.live.timeout_s
        conn = _HTTPSConnection(self.host, self.port, timeout=timeout, context=shared_ssl_context()) \
            if self.tls else _HTTPConnection(self.host, self.port, timeout=timeout)
        self._local.conn = conn
        with self._lock:
            self._all.append(conn)
        return conn

    def _exchange(self, out: Outgoing) -> tuple[int, tuple[tuple[str, str], ...], bytes]:
        headers = {k: v for k, v in out.headers if k.lower() not in DROPPED_HEADERS}
        headers["accept-encoding"] = "identity"
        headers[out.auth] = f"Bearer {self._key}" if out.auth == "authorization" else self._key
        for attempt in (0, 1):
            reused = getattr(self._local, "conn", None) is not None and attempt == 0
            conn = self._connection(fresh=attempt == 1)
            try:
                conn.request(out.method, self.prefix + out.path, body=out.body or None, headers=headers)
                response = conn.getresponse()
                body = response.read()
                answer = (response.status, tuple((k.lower(), v) for k, v in response.getheaders()), body)
                if response.will_close:
                    conn.close()
                    self._local.conn = None
                return answer
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                self._local.conn = None
                if reused:  # a keep-alive connection the server had closed: once more on a fresh one
                    continue
                raise UpstreamError(f"{self.host}:{self.port} closed the connection") from None
            except TimeoutError:
                conn.close()
                self._local.conn = None
                raise UpstreamError(f"{self.host}:{self.port} did not answer within {self.live.timeout_s:g}s",
                                    timeout=True) from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self._local.conn = None
                raise UpstreamError(f"{self.host}:{self.port}: {type(exc).__name__}: {exc}") from None
        raise AssertionError("unreachable")

    def send(self, out: Outgoing) -> Recorded:
        """Forward ``out``; its answer (429s waited out and retried first). Raises ``UpstreamError``."""
        retries = self.live.throttle_retries
        while True:
            entry = self.limiter.acquire(out.tokens)
            started = real_perf_counter()
            status, headers, body = self._exchange(out)
            latency = real_perf_counter() - started
            with self._lock:
                self.requests += 1
            if status == 429 and retries > 0:
                retries -= 1
                self.limiter.pause(retry_after(headers) or 1.0)
                continue
            self.limiter.settle(entry, out.tokens)
            return Recorded(status, headers, body, recorded_latency(latency))  # as a cassette keeps it

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()

"""The trial's model (``env.llm``) for an agent in a child process: the child's requests to its host are sent
over the channel and answered in the parent by the trial's own model, fake or live (``process.http_hub``), so
faults, drift, metering, the trace and virtual latency are the parent's, as for an agent in the test process.

A reply crosses as plain data: the status, the headers, the body's chunks, and where the stream breaks with
which transport error (a cut stream); transport errors are raised in the child as its own HTTP core's
(``httpcore`` or ``httpcore2``, whichever its client sends through).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx

from ...errors import hide_own_frames

__tracebackhide__ = hide_own_frames

#: (status, raw headers, body chunks, the chunk the stream breaks at or None, (error class name, message) or None)
Reply = tuple[int, list[tuple[bytes, bytes]], list[bytes], int | None, tuple[str, str] | None]


def _route(host: str, method: str, url: str, headers: list[tuple[bytes, bytes]], content: bytes,
           timeout: dict[str, float | None] | None) -> tuple[httpx.Request, Any, Any]:
    """The request as the parent's hub sees it, the handler of the trial's own host, and the HTTP core."""
    import httpcore

    from ...process.http_hub import HUB

    request = httpx.Request(method, url, headers=headers, content=content,
                            extensions={"timeout": timeout} if timeout is not None else None)
    handler = HUB.hosts.get(request.url.host) if request.url.host == host else None
    if handler is None:
        raise httpcore.ConnectError(f"{request.url.host}: not this trial's model host")
    return request, handler, httpcore


def answer(host: str, method: str, url: str, headers: list[tuple[bytes, bytes]], content: bytes,
           timeout: dict[str, float | None] | None = None) -> Reply:
    """In the parent: the trial's model answers one request of its child (only to the trial's own host);
    ``timeout``: the client's timeouts (an injected timeout waits the client's read timeout out)."""
    request, handler, core = _route(host, method, url, headers, content, timeout)
    response = handler.handle(request, core)
    assert response is not None  # (a model always answers)
    chunks: list[bytes] = []
    try:
        for chunk in response.stream:
            chunks.append(chunk)
    except Exception as exc:  # a stream the fault cuts: where, and with what
        return _reply(response, chunks, exc)
    return _reply(response, chunks)


def _reply(response: httpx.Response, chunks: list[bytes], broken: Exception | None = None) -> Reply:
    if broken is None:
        return response.status_code, list(response.headers.raw), chunks, None, None
    return response.status_code, list(response.headers.raw), chunks, len(chunks), (type(broken).__name__, str(broken))


def faulted_hosts(clock: Any) -> tuple[str, ...]:
    """In the parent: the hosts the trial on ``clock`` injects transport faults into (``Scenario(http=...)``)."""
    from ...process.http_hub import HUB

    entry = HUB.faults.get(id(clock))
    return tuple(sorted(entry[0])) if entry is not None else ()


def answer_fault(clock: Any, method: str, url: str, headers: list[tuple[bytes, bytes]], content: bytes,
                 timeout: dict[str, float | None] | None = None) -> Reply | None:
    """In the parent: the trial's transport fault for one request its child makes to a faulted host (a response,
    or the transport error raised), or None: the child sends the request on itself."""
    import httpcore

    from ...process.http_hub import HUB

    entry = HUB.faults.get(id(clock))
    request = httpx.Request(method, url, headers=headers, content=content,
                            extensions={"timeout": timeout} if timeout is not None else None)
    if entry is None or request.url.host not in entry[0]:
        return None
    response = entry[1].handle(request, httpcore)
    return None if response is None else _reply(response, list(response.stream))


def answers_async(host: str) -> bool:
    """Whether the trial's model answers asynchronously too (the live one: its upstream call must not hold the
    loop the async trials share)."""
    from ...process.http_hub import HUB

    return hasattr(HUB.hosts.get(host), "ahandle")


async def answer_async(host: str, method: str, url: str, headers: list[tuple[bytes, bytes]], content: bytes,
                       timeout: dict[str, float | None] | None = None) -> Reply:
    """``answer`` for an async trial, awaiting a model that answers asynchronously (``ahandle``)."""
    request, handler, core = _route(host, method, url, headers, content, timeout)
    response = await handler.ahandle(request, core)
    chunks: list[bytes] = []
    try:
        stream = response.stream
        if hasattr(stream, "__aiter__"):
            async for chunk in stream:
                chunks.append(chunk)
        else:
            for chunk in stream:
                chunks.append(chunk)
    except Exception as exc:
        return _reply(response, chunks, exc)
    return _reply(response, chunks)


class _Stream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """The reply's body in the child, breaking where it broke in the parent."""

    def __init__(self, chunks: list[bytes], cut: int | None, error: Callable[[], Exception] | None):
        self.chunks, self.cut, self.error = chunks, cut, error

    def __iter__(self) -> Iterator[bytes]:
        for i, chunk in enumerate(self.chunks):
            if self.cut is not None and i >= self.cut:
                break
            yield chunk
        if self.cut is not None and self.error is not None:
            raise self.error()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self:
            yield chunk


def in_core(exc: BaseException, core: Any) -> BaseException:
    """A transport error of the parent's ``httpcore`` as the same error of the child's ``core``."""
    if type(exc).__module__.split(".")[0] in ("httpcore", "httpcore2"):
        cls = getattr(core, type(exc).__name__, None)
        if isinstance(cls, type) and issubclass(cls, Exception):
            return cls(*exc.args)
    return exc


class ParentAnswers:
    """In the child: an ``http_hub`` handler that asks the parent: for the trial's model host (``op="http"``), or
    for the hosts the trial faults (``op="http_fault"``, whose ``None`` lets the request go on from the child)."""

    def __init__(self, call: Callable[..., Any], op: str = "http"):
        self.call = call  # the child's channel to the parent (``_Rpc.call``)
        self.op = op

    def handle(self, request: httpx.Request, core: Any) -> httpx.Response | None:
        try:
            timeout = request.extensions.get("timeout")
            reply = self.call(self.op, request.method, str(request.url), list(request.headers.raw), request.content,
                              {k: v for k, v in timeout.items() if v is None or isinstance(v, (int, float))}
                              if isinstance(timeout, dict) else None)
        except Exception as exc:
            raise in_core(exc, core) from None
        if reply is None:
            return None
        status, headers, chunks, cut, error = reply
        broken = None if error is None else lambda: getattr(core, error[0], core.ReadError)(error[1])
        return httpx.Response(status, headers=headers, stream=_Stream(chunks, cut, broken))

"""Process-wide HTTP interception for the model boundary, through respx.

One dispatcher per HTTP core is put in front of respx's transport mockers: ``httpcore`` (what httpx
sends through) and, when installed, ``httpcore2`` (httpx2: current openai, anthropic, pydantic-ai,
openai-agents and langchain-openai). It dispatches by host:

- ``llm-<n>.agentops.test``: the fake model of the trial that owns that host (one host per trial, so a
  request can never reach another trial's fake, whatever runs concurrently); a host whose trial has
  ended answers with a connection error;
- a host named in an active trial's ``HttpFaults``: that trial (found through the virtual clock of the
  calling thread or task) may inject a transport fault; otherwise the request goes on;
- anything else is left alone: handed to the other respx routers when there are any (your own
  ``respx.mock``, pytest-httpx2's ``httpx2_mock``), else passed through to the network.

Interception is reference counted: installed when the first trial that needs it starts, removed when the
last one ends, so nothing is patched in tests that do not use it. The httpcore2 mocker is registered once
per process; when the ``pytest-httpx2`` package is installed its mocker is reused, so both work together.
"""

from __future__ import annotations

import threading
import zlib
from typing import Any

import httpx
from respx.mocks import HTTPCoreMocker, Mocker
from respx.models import AllMockedAssertionError, PassThrough
from respx.router import Router

from ..faults import STREAM_MODEL, trial_stream
from ..harness.clock import active_clock
from .endpoint import DOMAIN, TrialModel
from .settings import HttpFaults, pick

_register_lock = threading.Lock()


def httpcore2_mocker() -> type[Mocker] | None:
    """respx's Mocker for httpcore2 (httpx2), registered once per process; None when httpcore2 is absent."""
    found = Mocker.registry.get("httpcore2")
    if found is not None:
        return found
    try:
        import httpcore2
    except ImportError:
        return None
    try:  # pytest-httpx2 defines the same mocker: reuse it, or its import would fail after ours
        from pytest_httpx2._plugin import HTTPCore2Mocker as Theirs

        return Theirs
    except ImportError:
        pass
    with _register_lock:
        found = Mocker.registry.get("httpcore2")
        if found is not None:
            return found

        class HTTPCore2Mocker(HTTPCoreMocker):
            """Patches httpcore2's connection pools, as respx's own mocker does httpcore's."""

            name = "httpcore2"
            targets = [  # noqa: RUF012 (respx's Mocker API: a class-level list)
                "httpcore2._sync.connection.HTTPConnection",
                "httpcore2._sync.connection_pool.ConnectionPool",
                "httpcore2._sync.http_proxy.HTTPProxy",
                "httpcore2._async.connection.AsyncHTTPConnection",
                "httpcore2._async.connection_pool.AsyncConnectionPool",
                "httpcore2._async.http_proxy.AsyncHTTPProxy",
            ]

            @classmethod
            def from_sync_httpx_response(cls, httpx_response: httpx.Response, target: Any, **kwargs: Any) -> Any:
                return httpcore2.Response(status=httpx_response.status_code, headers=httpx_response.headers.raw,
                                          content=httpx_response.stream, extensions=httpx_response.extensions)

        return HTTPCore2Mocker


class HttpTrial:
    """One trial's transport faults for the hosts its ``HttpFaults`` names."""

    def __init__(self, ctx: Any, settings: HttpFaults):
        self.ctx = ctx
        self.settings = settings
        self.hosts = frozenset(settings.hosts)
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def handle(self, request: httpx.Request, core: Any) -> httpx.Response | None:
        """A fault response (or raised transport error) for this request, or None to let it through."""
        host = request.url.host
        with self._lock:
            index = self.counts.get(host, 0)
            self.counts[host] = index + 1
        s = self.settings
        u_fault, u_kind = trial_stream(self.ctx.seed, STREAM_MODEL, 2, zlib.crc32(host.encode()), index).random(2)
        if u_fault >= s.rate:
            return None
        kind = pick(s.mix, u_kind)
        self.ctx.trace.add("fault", f"http:{host}", kind, call=index, method=request.method, path=request.url.path)
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


class _Dispatch(Router):
    """A respx router that hands every request to the hub; one per HTTP core."""

    def __init__(self, hub: _Hub, core: Any, mocker: type[Mocker]):
        super().__init__(assert_all_called=False, assert_all_mocked=True)
        self.hub = hub
        self.core = core
        self.mocker = mocker

    def handler(self, request: httpx.Request) -> httpx.Response:
        return self.hub.dispatch(request, self)

    async def async_handler(self, request: httpx.Request) -> httpx.Response:
        return self.hub.dispatch(request, self)


class _Hub:
    """The process-wide table of trial hosts and the reference-counted respx installation."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.models: dict[str, TrialModel] = {}
        self.http: dict[int, HttpTrial] = {}  # id(trial clock) -> the trial's transport faults
        self.http_hosts: dict[str, int] = {}  # host -> number of active trials faulting it
        self.users = 0
        self.installed: list[_Dispatch] = []
        self.counter = 0

    def new_host(self) -> str:
        with self.lock:
            self.counter += 1
            return f"llm-{self.counter}.{DOMAIN}"

    def attach(self, model: TrialModel | None, http: HttpTrial | None) -> None:
        with self.lock:
            if model is not None:
                self.models[model.host] = model
            if http is not None:
                self.http[id(http.ctx.clock)] = http
                for host in http.hosts:
                    self.http_hosts[host] = self.http_hosts.get(host, 0) + 1
            if self.users == 0:
                self._install()
            self.users += 1

    def detach(self, model: TrialModel | None, http: HttpTrial | None) -> None:
        with self.lock:
            if model is not None:
                self.models.pop(model.host, None)
            if http is not None:
                self.http.pop(id(http.ctx.clock), None)
                for host in http.hosts:
                    left = self.http_hosts.get(host, 0) - 1
                    if left > 0:
                        self.http_hosts[host] = left
                    else:
                        self.http_hosts.pop(host, None)
            self.users -= 1
            if self.users == 0:
                self._uninstall()

    @property
    def active(self) -> bool:
        """Whether the respx mockers are installed by the model boundary right now."""
        return bool(self.installed)

    def _install(self) -> None:
        import httpcore

        cores: list[tuple[Any, type[Mocker]]] = [(httpcore, HTTPCoreMocker)]
        mocker2 = httpcore2_mocker()
        if mocker2 is not None:
            import httpcore2

            cores.append((httpcore2, mocker2))
        for core, mocker in cores:
            router = _Dispatch(self, core, mocker)
            mocker.routers.insert(0, router)  # before other routers: a catch-all of theirs must not eat our hosts
            mocker.start()
            self.installed.append(router)

    def _uninstall(self) -> None:
        while self.installed:
            router = self.installed.pop()
            router.mocker.unregister(router)
            router.mocker.stop()

    def dispatch(self, request: httpx.Request, router: _Dispatch) -> httpx.Response:
        host = request.url.host
        core = router.core
        if host.endswith("." + DOMAIN):
            model = self.models.get(host)
            if model is None:
                raise core.ConnectError(f"{host}: no trial serves this host (the trial has ended)")
            return model.handle(request, core)
        if host in self.http_hosts:
            clock = active_clock()
            trial = self.http.get(id(clock)) if clock is not None else None
            if trial is not None and host in trial.hosts:
                response = trial.handle(request, core)
                if response is not None:
                    return response
        if any(other is not router for other in router.mocker.routers):
            raise AllMockedAssertionError(f"RESPX: {request!r} not mocked!")  # let the other routers answer
        raise PassThrough(f"not a pytest-agentops host: {request!r}", request=request, origin=None)  # type: ignore[arg-type]


HUB = _Hub()

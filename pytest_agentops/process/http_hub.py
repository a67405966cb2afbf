"""Process-wide HTTP interception through respx, dispatching by host to the trials that own the hosts.

One dispatcher per HTTP core is put in front of respx's transport mockers: ``httpcore`` (what httpx sends
through) and, when installed, ``httpcore2`` (httpx2: current openai, anthropic, pydantic-ai, openai-agents
and langchain-openai). It dispatches by host:

- a host registered with ``add_host`` (a trial's fake model, ``llm-<seed>.agentops.test``): its handler, so a
  request can never reach another trial's fake whatever runs concurrently; a host of the reserved domain
  whose trial has ended answers with a connection error;
- a host named by an active trial's transport faults (``add_faults``): that trial (found through the
  virtual clock of the calling thread or task) may answer with a fault; otherwise the request goes on;
- anything else is left alone: handed to the other respx routers when there are any (your own
  ``respx.mock``, pytest-httpx2's ``httpx2_mock``), else passed through to the network, unless the calling
  trial's hermetic network (``process.network_guard``) refuses the host.

A handler with an ``ahandle(request, core)`` coroutine (the live model boundary) is awaited by async clients,
so that the real I/O behind it does not block the event loop the trials share.

The interception is the process patch ``HTTP_PATCH``: installed while campaigns (or trials) that need it
hold it, so nothing is patched in tests that do not use it. The httpcore2 mocker is registered once per
process; when the ``pytest-httpx2`` package is installed its mocker is reused, so both work together.
"""

from __future__ import annotations

import operator
import pkgutil
import sys
import threading
from typing import Any, Protocol
from unittest import mock

import httpx
from respx.mocks import HTTPCoreMocker, Mocker
from respx.models import AllMockedAssertionError, PassThrough
from respx.router import Router

from ..errors import hide_own_frames
from .network_guard import GUARD
from .patch import ProcessPatch
from .time_patch import active_clock

__tracebackhide__ = hide_own_frames

#: The reserved domain of the trials' fake model hosts.
DOMAIN = "agentops.test"

_register_lock = threading.Lock()


class Handler(Protocol):
    """What answers a request for a host: a response, None to let it through (faults), or a raised error."""

    def handle(self, request: httpx.Request, core: Any) -> httpx.Response | None: ...


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

        return Theirs  # type: ignore[no-any-return]
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


class _Dispatch(Router):
    """A respx router that hands every request to the hub; one per HTTP core."""

    def __init__(self, hub: Hub, core: Any, mocker: type[Mocker]):
        super().__init__(assert_all_called=False, assert_all_mocked=True)
        self.hub = hub
        self.core = core
        self.mocker = mocker

    def handler(self, request: httpx.Request) -> httpx.Response:
        return self.hub.dispatch(request, self)

    async def async_handler(self, request: httpx.Request) -> httpx.Response:
        ahandle = getattr(self.hub.hosts.get(request.url.host), "ahandle", None)
        if ahandle is not None:
            return await ahandle(request, self.core)  # type: ignore[no-any-return]
        return self.hub.dispatch(request, self)


class Hub:
    """The process-wide table of trial hosts and transport faults, and the respx installation."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hosts: dict[str, Handler] = {}
        self.faults: dict[int, tuple[frozenset[str], Handler]] = {}  # id(trial clock) -> (hosts, handler)
        self.fault_hosts: dict[str, int] = {}  # host -> number of active trials faulting it
        self.installed: list[_Dispatch] = []
        self._routers: dict[type[Mocker], _Dispatch] = {}  # each core's dispatcher, made once (``install``)
        self.taken: set[str] = set()  # the host names given to trials that have not ended (``new_host``)

    def new_host(self, seed: int) -> str:
        """The host name of the reserved domain for the trial seeded ``seed`` (``llm-<seed in hex>``): the same in
        every run and replay of the trial (an agent may show its URL to the model, whose answers the URL's text
        then keys), and held by no other trial running in this process (another campaign's trial of the same
        seed running now gets ``-2``), until ``remove_host``."""
        with self.lock:
            host, n = f"llm-{seed:x}.{DOMAIN}", 1
            while host in self.taken:
                n += 1
                host = f"llm-{seed:x}-{n}.{DOMAIN}"
            self.taken.add(host)
            return host

    def add_host(self, host: str, handler: Handler) -> None:
        with self.lock:
            self.hosts[host] = handler

    def remove_host(self, host: str) -> None:
        with self.lock:
            self.hosts.pop(host, None)
            self.taken.discard(host)

    def add_faults(self, clock: Any, hosts: frozenset[str], handler: Handler) -> None:
        """Requests to ``hosts`` made on ``clock`` (the trial's virtual clock) go through ``handler``."""
        with self.lock:
            self.faults[id(clock)] = (hosts, handler)
            for host in hosts:
                self.fault_hosts[host] = self.fault_hosts.get(host, 0) + 1

    def remove_faults(self, clock: Any) -> None:
        with self.lock:
            hosts, _ = self.faults.pop(id(clock), (frozenset(), None))
            for host in hosts:
                left = self.fault_hosts.get(host, 0) - 1
                if left > 0:
                    self.fault_hosts[host] = left
                else:
                    self.fault_hosts.pop(host, None)

    @property
    def active(self) -> bool:
        """Whether the respx mockers are installed by the model boundary right now."""
        return bool(self.installed)

    def install(self) -> bool:
        import httpcore

        cores: list[tuple[Any, type[Mocker]]] = [(httpcore, HTTPCoreMocker)]
        mocker2 = httpcore2_mocker()
        if mocker2 is not None:
            import httpcore2

            cores.append((httpcore2, mocker2))
        try:
            for core, mocker in cores:
                router = self._routers.get(mocker)
                if router is None:  # (a router holds nothing of a campaign: each core's is made once, and kept)
                    router = self._routers[mocker] = _Dispatch(self, core, mocker)
                mocker.routers.insert(0, router)  # before other routers: a catch-all of theirs must not eat our hosts
                self.installed.append(router)
                start_mocker(mocker)
        except BaseException:  # (a mocker that would not start: what was installed goes, nothing is held)
            self.uninstall()
            raise
        return True

    def uninstall(self) -> None:
        while self.installed:
            router = self.installed.pop()
            router.mocker.unregister(router)
            router.mocker.stop()

    def dispatch(self, request: httpx.Request, router: _Dispatch) -> httpx.Response:
        host = request.url.host
        core = router.core
        if host.endswith("." + DOMAIN):
            handler = self.hosts.get(host)
            if handler is None:
                raise core.ConnectError(f"{host}: no trial serves this host (the trial has ended)")
            response = handler.handle(request, core)
            assert response is not None  # a fake model always answers
            return response
        if host in self.fault_hosts:
            clock = active_clock()
            entry = self.faults.get(id(clock)) if clock is not None else None
            if entry is not None and host in entry[0]:
                response = entry[1].handle(request, core)
                if response is not None:
                    return response
        if any(other is not router for other in router.mocker.routers):
            raise AllMockedAssertionError(f"RESPX: {request!r} not mocked!")  # let the other routers answer
        GUARD.check(host, core)  # the trial's hermetic network: a host it may not reach fails here
        raise PassThrough(f"not a pytest-agentops host: {request!r}", request=request, origin=None)  # type: ignore[arg-type]


#: (mocker, target, method) -> (the method patched, its code, defaults and keyword defaults, respx's stand-in for it)
_STAND_INS: dict[tuple[type[Mocker], str, str], tuple[Any, Any, Any, Any, Any]] = {}
_NOT_THERE = object()
_RESPX_START = Mocker.start.__func__  # type: ignore[attr-defined]  (respx's own ``start``: ours replaces only it)


def _target(name: str) -> Any:
    """The class ``name`` (dotted) as respx finds it (``pkgutil.resolve_name``), read from its loaded module when
    it is one; ``_NOT_THERE`` where respx skips it (an ``AttributeError``: a class or a submodule gone)."""
    module_name, _, attribute = name.rpartition(".")
    module = sys.modules.get(module_name)
    if module is not None:
        found = getattr(module, attribute, _NOT_THERE)
        if found is not _NOT_THERE:
            return found
    try:
        return pkgutil.resolve_name(name)
    except AttributeError:
        return _NOT_THERE


def start_mocker(mocker: type[Mocker]) -> None:
    """``mocker.start()``: the same patches, in respx's list, for respx's ``stop`` to undo (its own or a
    ``respx.mock`` of the test's, whichever stops it last). respx's start resolves every target through the
    import system and builds each stand-in anew (inspecting the method), ~2.8 ms of a campaign's ~12 ms fixed
    cost on the CI machine; here a target class is read from its loaded module (else found as respx finds it),
    and each stand-in is made once and kept while the method it stands for is the same object with the same
    code and defaults. A mocker with a ``start`` of its own, or whose patches are kept otherwise (another respx),
    is started by its own ``start``."""
    patches = getattr(mocker, "_patches", None)
    targets, methods = getattr(mocker, "targets", None), getattr(mocker, "target_methods", None)
    if not (type(patches) is list and type(targets) is list and type(methods) is list
            and callable(getattr(mocker, "mock", None))
            and getattr(getattr(mocker, "start", None), "__func__", None) is _RESPX_START):
        mocker.start()
        return
    if patches:  # (as respx: patched once)
        return
    for target in targets:
        owner = _target(target)
        if owner is _NOT_THERE:
            continue
        namespace = getattr(owner, "__dict__", None)
        for method in methods:
            original = namespace[method] if namespace is not None and method in namespace \
                else getattr(owner, method, _NOT_THERE)  # (as ``mock.patch`` finds it)
            if original is _NOT_THERE:
                continue
            key = (mocker, target, method)
            face = (getattr(original, "__code__", None), getattr(original, "__defaults__", None),
                    getattr(original, "__kwdefaults__", None))  # (what respx's stand-in read of it)
            made = _STAND_INS.get(key)
            if made is None or made[0] is not original or any(map(operator.is_not, made[1:4], face)):
                made = _STAND_INS[key] = (original, *face, mocker.mock(spec=original))  # (``new_callable(spec=)``)
            patch = mock.patch.object(owner, method, new=made[4])
            patch.start()
            patches.append(patch)


HUB = Hub()
#: The respx interception, held by campaigns and trials that serve a fake model or inject HTTP faults.
HTTP_PATCH = ProcessPatch("http", HUB.install, lambda _made: HUB.uninstall(),
                          what="respx routers in front of httpcore and httpcore2 for the trials' hosts")

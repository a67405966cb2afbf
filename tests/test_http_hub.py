"""The HTTP interception's start: respx's patches, made without respx's per-start resolving and inspecting."""

from __future__ import annotations

import sys
from typing import ClassVar

import httpx
import pytest
import respx
from respx.mocks import HTTPCoreMocker

from pytest_agentops.process import http_hub
from pytest_agentops.process.http_hub import HTTP_PATCH, HUB, start_mocker


def _patched(mocker) -> dict[tuple[type, str], object]:
    """(class, method) -> the value patched in, for every patch the mocker holds now."""
    return {(p.target, p.attribute): vars(p.target)[p.attribute] for p in mocker._patches}


def _originals(mocker) -> dict[tuple[type, str], object]:
    """(class, method) -> the method in the class's own namespace, for each target method the class has."""
    out = {}
    for target in mocker.targets:
        module, _, name = target.rpartition(".")
        owner = getattr(__import__(module, fromlist=[name]), name)
        for method in mocker.target_methods:
            if method in vars(owner):
                out[(owner, method)] = vars(owner)[method]
    return out


def test_the_patches_are_respx_own_and_are_undone_as_respx_undoes_them():
    """The same methods patched as by ``HTTPCoreMocker.start()``, each with a stand-in of respx's code for that
    method (the sync one for a sync method, the async one for an async method), held in respx's own list so that
    respx's ``stop`` undoes them: the originals are back, the very objects."""
    before = _originals(HTTPCoreMocker)
    HTTPCoreMocker.start()
    try:
        theirs = _patched(HTTPCoreMocker)
    finally:
        HTTPCoreMocker.stop(force=True)
    assert _originals(HTTPCoreMocker) == before
    start_mocker(HTTPCoreMocker)
    try:
        ours = _patched(HTTPCoreMocker)
        again = dict(ours)
    finally:
        HTTPCoreMocker.stop(force=True)
    assert not HTTPCoreMocker._patches and _originals(HTTPCoreMocker) == before
    assert set(ours) == set(theirs) and len(ours) == 6  # 6 classes, each its one method
    for key, stand_in in ours.items():
        assert stand_in.__code__ is theirs[key].__code__ and stand_in is not before.get(key)
    start_mocker(HTTPCoreMocker)  # made once: the second start puts in the same stand-ins
    try:
        assert _patched(HTTPCoreMocker) == again
    finally:
        HTTPCoreMocker.stop(force=True)


def test_a_method_replaced_between_two_starts_gets_a_stand_in_of_its_own():
    """A stand-in is kept only while the method it stands for is the same object: a method replaced since
    (another library's patch, a reload) gets a new one, made for the new method."""
    start_mocker(HTTPCoreMocker)
    first = HTTPCoreMocker._patches[0]
    owner, method = first.target, first.attribute
    stand_in = vars(owner)[method]
    HTTPCoreMocker.stop(force=True)
    original = vars(owner)[method]

    def handle_request(self, request):  # (respx stands in only for a method of that name)
        return original(self, request)

    setattr(owner, method, handle_request)
    try:
        start_mocker(HTTPCoreMocker)
        try:
            now = vars(owner)[method]
            assert now is not stand_in and now.__code__ is stand_in.__code__
            assert now.__closure__ is not None and handle_request in [c.cell_contents for c in now.__closure__]
        finally:
            HTTPCoreMocker.stop(force=True)
        assert vars(owner)[method] is handle_request
    finally:
        setattr(owner, method, original)


def test_a_mocker_unlike_respx_own_is_started_by_its_own_start():
    """A respx whose mockers keep their patches otherwise: its own ``start`` runs, not a guess at it."""
    started = []

    class Other:
        targets = ("httpcore._sync.connection.HTTPConnection",)  # (a tuple: not respx's list)
        target_methods: ClassVar[list[str]] = ["handle_request"]
        _patches: ClassVar[list[object]] = []

        @classmethod
        def start(cls):
            started.append(cls)

        @classmethod
        def mock(cls, spec):
            raise AssertionError("not called: its own start decides")

    start_mocker(Other)
    assert started == [Other] and Other._patches == []


def test_a_test_s_own_respx_mock_answers_beside_the_interception_and_each_is_undone_in_turn():
    """``respx.mock`` started inside the interception answers its routes (the hub hands what is not a trial's
    host to the other routers); it ends first and leaves the interception in; the interception's end leaves
    nothing patched. And the other way round: a campaign's interception inside a ``respx.mock``."""
    with HTTP_PATCH():
        assert HUB.active and HTTPCoreMocker._patches
        with respx.mock(assert_all_called=False) as router:
            router.get("https://example.invalid/hello").respond(json={"hi": 1})
            assert httpx.get("https://example.invalid/hello").json() == {"hi": 1}
        assert HTTPCoreMocker._patches and HUB.active
    assert not HTTPCoreMocker._patches and not HTTPCoreMocker.routers and not HUB.active
    with respx.mock(assert_all_called=False) as router:
        router.get("https://example.invalid/again").respond(json={"again": 2})
        with HTTP_PATCH():
            assert httpx.get("https://example.invalid/again").json() == {"again": 2}
        assert HTTPCoreMocker._patches  # (still the test's)
        assert httpx.get("https://example.invalid/again").json() == {"again": 2}
    assert not HTTPCoreMocker._patches and not HTTPCoreMocker.routers


def test_each_core_has_one_dispatcher_for_the_process():
    """The dispatcher a campaign puts in front of respx holds nothing of it: the same one, campaign after
    campaign."""
    with HTTP_PATCH():
        first = list(HUB.installed)
    with HTTP_PATCH():
        second = list(HUB.installed)
    assert first and [id(r) for r in first] == [id(r) for r in second]
    assert all(r.calls.call_count == 0 and not r.routes for r in second)


def test_the_httpcore2_mocker_is_started_the_same_way():
    mocker = http_hub.httpcore2_mocker()
    if mocker is None:
        pytest.skip("httpcore2 is not installed")
    before = _originals(mocker)
    with HTTP_PATCH():
        ours = _patched(mocker)
    assert len(ours) == 6 and _originals(mocker) == before and not mocker._patches


def _probe_mocker(*targets: str) -> type:
    """A mocker like respx's httpcore one with these targets, not registered in respx (``ABC`` among its bases)."""
    from abc import ABC

    class Probe(HTTPCoreMocker, ABC):
        routers: ClassVar[list[object]] = []
        _patches: ClassVar[list[object]] = []

    Probe.targets = list(targets)
    return Probe


def test_targets_are_found_as_respx_finds_them_a_nested_class_and_one_gone():
    """A target respx finds through the import system, as a class inside a class, is patched too; one whose
    submodule or class is gone is skipped, as respx skips it (an ``AttributeError``), not an error."""
    import types

    module = types.ModuleType("agentops_probe_transport")

    class Outer:
        class Pool:
            def handle_request(self, request):
                return "real"

    module.Outer = Outer
    sys.modules[module.__name__] = module
    try:
        for start in (start_mocker, lambda m: m.start()):
            mocker = _probe_mocker("agentops_probe_transport.Outer.Pool", "httpcore._sync.no_such_module.Pool",
                                   "httpcore._sync.connection.NoSuchClass")
            start(mocker)
            try:
                assert [(p.target, p.attribute) for p in mocker._patches] == [(Outer.Pool, "handle_request")]
                assert vars(Outer.Pool)["handle_request"].__code__.co_name == "mock"
            finally:
                mocker.stop(force=True)
            assert Outer.Pool.__dict__["handle_request"].__name__ == "handle_request"
    finally:
        del sys.modules[module.__name__]


def test_a_mocker_with_a_start_of_its_own_is_started_by_it():
    mocker = _probe_mocker("httpcore._sync.connection.HTTPConnection")
    started = []
    mocker.start = classmethod(lambda cls: started.append(cls))
    start_mocker(mocker)
    assert started == [mocker] and mocker._patches == []


def test_a_method_whose_defaults_changed_gets_a_stand_in_made_anew():
    """respx's stand-in reads the method's arguments and defaults when it is made: a method whose code or
    defaults were changed in place since gets a new one."""
    def handle_request(self, request, extra=1):
        return request

    mocker = _probe_mocker("agentops_probe_defaults.Pool")
    import types

    module = types.ModuleType("agentops_probe_defaults")
    module.Pool = type("Pool", (), {"handle_request": handle_request})
    sys.modules[module.__name__] = module
    try:
        start_mocker(mocker)
        first = vars(module.Pool)["handle_request"]
        mocker.stop(force=True)
        start_mocker(mocker)
        assert vars(module.Pool)["handle_request"] is first  # (unchanged: the same one)
        mocker.stop(force=True)
        handle_request.__defaults__ = (2,)
        start_mocker(mocker)
        assert vars(module.Pool)["handle_request"] is not first
        mocker.stop(force=True)
    finally:
        del sys.modules[module.__name__]
    assert vars(module.Pool)["handle_request"] is handle_request


def test_an_interception_that_fails_to_start_leaves_nothing_installed(monkeypatch):
    """A mocker that raises as it starts: the interception is not held, and what was put in before goes (a kept
    dispatcher left in respx's routers would be put in twice by the next campaign)."""
    def fails(mocker):
        raise RuntimeError("no start")

    monkeypatch.setattr(http_hub, "start_mocker", fails)
    with pytest.raises(RuntimeError, match="no start"):
        HTTP_PATCH.acquire()
    assert HTTP_PATCH.holders == 0 and not HUB.installed and not HTTPCoreMocker.routers
    assert not HTTPCoreMocker._patches
    monkeypatch.undo()
    with HTTP_PATCH():
        assert len([r for r in HTTPCoreMocker.routers if r in HUB.installed]) == 1

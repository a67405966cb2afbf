"""Virtual time: the clock, the thread-confined time patch, and the virtual-time asyncio loop."""

from __future__ import annotations

import asyncio
import contextvars
import copy
import copyreg
import datetime
import functools
import importlib
import math
import pickle
import socket
import sys
import threading
import time
import types
from time import monotonic as imported_monotonic  # rebound by the patch's module sweep

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_agentops.process.time_patch import active_clock, time_patch, virtual_time
from pytest_agentops.vtime.clock import DEFAULT_EPOCH, VirtualClock
from pytest_agentops.vtime.loop import VirtualTimeLoop, run_virtual
from pytest_agentops.vtime.real import real_monotonic

# The originals, kept in a dict: the patch rebinds module attributes that *are* these objects (this
# module's included), but never looks inside containers, so these stay the real ones.
ORIGINAL: dict[str, object] = {
    name: getattr(time, name)
    for name in ("time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns", "sleep")
} | {
    "datetime": datetime.datetime,
    "date": datetime.date,
    "imported_monotonic": imported_monotonic,
    "loop_time": asyncio.BaseEventLoop.__dict__["time"],
}
ORIGINAL_BUILD_CLASS = __import__("builtins").__build_class__
# Wall-clock readers immune to the patch for the same reason: a partial holds the real function object.
wall = functools.partial(time.perf_counter)
wall_epoch = functools.partial(time.time)

GENEROUS_WALL_S = 10.0  # machines are shared and noisy: only ever assert a generous wall-time bound


def assert_unpatched() -> None:
    for name in ("time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns", "sleep"):
        assert getattr(time, name) is ORIGINAL[name], name
    assert datetime.datetime is ORIGINAL["datetime"]
    assert datetime.date is ORIGINAL["date"]
    assert imported_monotonic is ORIGINAL["imported_monotonic"]
    assert asyncio.BaseEventLoop.__dict__["time"] is ORIGINAL["loop_time"]
    assert ORIGINAL["datetime"] not in copyreg.dispatch_table
    assert active_clock() is None


@pytest.fixture(autouse=True)
def _nothing_leaks():
    assert_unpatched()
    yield
    assert_unpatched()


# --- VirtualClock ------------------------------------------------------------------------------------------


def test_clock_arithmetic():
    clock = VirtualClock()
    assert clock.epoch == DEFAULT_EPOCH == 1_767_225_600.0
    assert clock.elapsed == 0.0
    assert clock.now() == DEFAULT_EPOCH
    assert clock.monotonic() == 0.0
    clock.advance(1.5)
    clock.sleep(2)
    assert clock.elapsed == 3.5
    assert clock.monotonic() == 3.5
    assert clock.now() == DEFAULT_EPOCH + 3.5
    stamp = clock.datetime()
    assert stamp.tzinfo is not None and stamp.utcoffset() == datetime.timedelta(0)
    assert stamp == datetime.datetime(2026, 1, 1, 0, 0, 3, 500000, tzinfo=datetime.UTC)
    assert "elapsed=3.5" in repr(clock) and "2026-01-01T00:00:03.500000" in repr(clock)


def test_clock_adds_its_source_to_its_own_offset():
    base = [10.0]
    clock = VirtualClock(epoch=1000.0, source=lambda: base[0])
    assert clock.elapsed == 10.0
    clock.advance(5)
    base[0] = 20.0
    assert clock.elapsed == 25.0
    assert clock.now() == 1025.0


@pytest.mark.parametrize(
    ("seconds", "error", "message"),
    [
        (-1, ValueError, "seconds=-1 must be >= 0"),
        (-0.5, ValueError, "seconds=-0.5 must be >= 0"),
        (math.nan, ValueError, "seconds=nan must be a finite number"),
        (math.inf, ValueError, "seconds=inf must be a finite number"),
        ("1", TypeError, "seconds='1' must be a number of seconds"),
        (None, TypeError, "seconds=None must be a number of seconds"),
    ],
)
def test_advance_rejects_bad_durations(seconds, error, message):
    clock = VirtualClock()
    with pytest.raises(error, match=f"^{message}"):
        clock.advance(seconds)
    with pytest.raises(error, match=f"^{message}"):
        clock.sleep(seconds)
    assert clock.elapsed == 0.0


def test_constructor_validation():
    with pytest.raises(ValueError, match="epoch=nan must be a finite"):
        VirtualClock(epoch=math.nan)
    with pytest.raises(TypeError, match="epoch='x' must be epoch seconds"):
        VirtualClock(epoch="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="source=3 must be a zero-argument callable"):
        VirtualClock(source=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be a VirtualClock"), virtual_time(object()):  # type: ignore[arg-type]
        pass


# Bounds: up to 50 steps of at most a day keep the sum far from float overflow and its rounding error
# at or below the sequential sum's own (which is what the clock computes).
@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=86_400, allow_nan=False, allow_infinity=False), max_size=50))
def test_elapsed_is_the_sum_of_advances(steps):
    clock = VirtualClock(epoch=0.0)
    expected = 0.0
    for step in steps:
        clock.advance(step)
        expected += step
    assert clock.elapsed == expected
    assert clock.now() == expected


# --- virtual_time: the thread-confined patch ---------------------------------------------------------------


def test_virtual_time_reads_and_advances_the_clock():
    clock = VirtualClock(epoch=1_000_000.0)
    clock.advance(2)
    start = wall()
    with virtual_time(clock) as active:
        assert active is clock and active_clock() is clock
        assert time.time() == 1_000_002.0
        assert time.time_ns() == 1_000_002_000_000_000
        assert time.monotonic() == 2.0
        assert time.monotonic_ns() == 2_000_000_000
        assert time.perf_counter() == 2.0
        assert time.perf_counter_ns() == 2_000_000_000
        assert imported_monotonic() == 2.0  # a ``from time import ...`` name is covered too
        assert datetime.datetime.now(datetime.UTC) == clock.datetime()
        assert datetime.datetime.now() == ORIGINAL["datetime"].fromtimestamp(1_000_002.0)
        assert datetime.datetime.utcnow() == ORIGINAL["datetime"](1970, 1, 12, 13, 46, 42)
        assert datetime.datetime.today() == datetime.datetime.now()
        assert datetime.date.today() == ORIGINAL["date"].fromtimestamp(1_000_002.0)
        assert time.gmtime()[:6] == (1970, 1, 12, 13, 46, 42)
        assert time.localtime() == time.localtime(1_000_002.0)
        assert time.strftime("%Y-%m-%d %H:%M:%S") == time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        assert time.ctime() == time.ctime(1_000_002.0)
        assert time.asctime() == time.asctime(time.localtime(1_000_002.0))

        time.sleep(3600)  # returns at once and moves the clock

        assert clock.elapsed == 3602.0
        assert time.time() == 1_003_602.0
        assert time.monotonic() == 3602.0
        with pytest.raises(ValueError, match="seconds=-1 must be >= 0"):
            time.sleep(-1)
    assert wall() - start < GENEROUS_WALL_S
    # Outside the block: real time again, and the real sleep really sleeps.
    assert abs(time.time() - wall_epoch()) < 60
    assert datetime.datetime.now().year >= 2025
    before = wall()
    time.sleep(0.02)
    assert wall() - before >= 0.015


def test_values_created_under_the_patch_are_plain_datetimes():
    real_datetime, real_date = ORIGINAL["datetime"], ORIGINAL["date"]
    with virtual_time(VirtualClock()):
        now = datetime.datetime.now(datetime.UTC)
        built = datetime.datetime(2030, 5, 6, 7, 8, 9)
        today = datetime.date.today()
        assert type(now) is real_datetime and type(built) is real_datetime and type(today) is real_date
        assert isinstance(now, datetime.datetime) and isinstance(today, datetime.date)
        assert isinstance(real_datetime(2000, 1, 1), datetime.datetime)
        assert issubclass(real_datetime, datetime.date)
        assert not isinstance(today, datetime.datetime) and not issubclass(real_date, datetime.datetime)
        assert isinstance(datetime.datetime.now(), datetime.date) and not isinstance(1.5, datetime.date)
        assert type(datetime.datetime.fromisoformat("2030-01-02T03:04:05")) is real_datetime
        assert type(now + datetime.timedelta(days=1)) is real_datetime
        pickled = pickle.dumps(now)  # pickle and copy find the class by name, which names the stand-in now
        assert type(pickle.loads(pickled)) is real_datetime and pickle.loads(pickled) == now
        assert type(copy.deepcopy(today)) is real_date and copy.deepcopy(today) == today

        class Stamp(datetime.datetime):  # a class defined while patched still works as a subclass
            pass

        stamp = Stamp(2030, 1, 1)
        assert type(stamp) is Stamp and stamp.year == 2030
    assert type(pickle.loads(pickled)) is real_datetime and pickle.loads(pickled) == now
    assert type(pickle.loads(pickle.dumps(now))) is real_datetime


def test_a_class_deriving_from_a_stand_in_with_a_metaclass_of_its_own_is_built(tmp_path, monkeypatch):
    """pydantic v1's ``class ConstrainedDate(date, metaclass=ConstrainedNumberMeta)``, imported for the first time
    inside a trial (langchain_core imports it lazily), failed with "metaclass conflict": every trial of an agent
    importing langchain there was an error. Such a class derives from the real class now; one without a
    metaclass of its own still derives from the stand-in (its ``now()`` reads the trial's clock)."""
    (tmp_path / "constrained_dates.py").write_text(
        "import abc\nfrom datetime import date, datetime\n\n\nclass Meta(type):\n    pass\n\n\n"
        "class ConstrainedDate(date, metaclass=Meta):\n    pass\n\n\n"
        "class Stamped(abc.ABC):\n    pass\n\n\n"
        "class AbstractStamp(datetime, Stamped):\n    pass\n\n\n"
        "class Plain(datetime):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with virtual_time(VirtualClock(epoch=1_000_000.0)):
        module = importlib.import_module("constrained_dates")
        assert module.ConstrainedDate.__mro__[1] is ORIGINAL["date"] and type(module.ConstrainedDate) is module.Meta
        assert module.ConstrainedDate(2030, 1, 2).year == 2030
        assert isinstance(module.ConstrainedDate(2030, 1, 2), datetime.date)
        assert module.AbstractStamp.__mro__[1] is ORIGINAL["datetime"]
        assert module.AbstractStamp(2030, 1, 2).day == 2
        assert module.Plain.now().timestamp() == 1_000_000.0  # (the stand-in's: the trial's clock)
    monkeypatch.delitem(sys.modules, "constrained_dates")
    assert builtins_build_class_is_the_real_one()
    import builtins

    with virtual_time(VirtualClock()):
        ours = builtins.__build_class__
    assert ours is not ORIGINAL_BUILD_CLASS and ours.installed is False  # (inert if a library put it back later)


def builtins_build_class_is_the_real_one() -> bool:
    import builtins

    return builtins.__build_class__ is ORIGINAL_BUILD_CLASS


def test_nesting_and_exceptions_restore_the_outer_clock():
    outer, inner = VirtualClock(epoch=100.0), VirtualClock(epoch=5_000.0)
    with virtual_time(outer):
        with pytest.raises(KeyError), virtual_time(inner):
            assert time.time() == 5_000.0
            time.sleep(7)
            raise KeyError("boom")
        assert active_clock() is outer
        assert time.time() == 100.0
        time.sleep(1)
    assert (outer.elapsed, inner.elapsed) == (1.0, 7.0)
    with pytest.raises(RuntimeError), virtual_time(outer):
        raise RuntimeError("boom")
    assert_unpatched()


def run_threads(*targets, barriers: tuple[threading.Barrier, ...] = ()) -> None:
    """Run targets in threads; re-raise the first failure (aborting the barriers so no one hangs)."""
    errors: list[BaseException] = []

    def guarded(target):
        def run():
            try:
                target()
            except BaseException as exc:
                errors.append(exc)
                for barrier in barriers:
                    barrier.abort()

        return run

    threads = [threading.Thread(target=guarded(target), daemon=True) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"
    if errors:
        raise errors[0]


def test_each_thread_sees_its_own_clock_and_others_see_real_time():
    entered, done = threading.Barrier(3, timeout=10), threading.Barrier(3, timeout=10)
    seen: dict[str, tuple] = {}

    def trial(key: str, clock: VirtualClock) -> None:
        with virtual_time(clock):
            entered.wait()  # all three threads overlap from here ...
            first = (time.time(), time.monotonic(), datetime.datetime.now(datetime.UTC))
            time.sleep(100)
            seen[key] = (*first, time.time(), time.monotonic(), threading.get_ident())
            done.wait()  # ... to here

    def bystander() -> None:
        entered.wait()
        patched = time.time is not ORIGINAL["time"]
        reading, reference = time.time(), wall_epoch()
        before = wall()
        time.sleep(0.02)
        slept = wall() - before
        seen["real"] = (patched, reading - reference, slept, datetime.datetime.now().year)
        done.wait()

    clock_a, clock_b = VirtualClock(epoch=1_000.0), VirtualClock(epoch=2_000_000_000.0)
    clock_b.advance(5)
    run_threads(lambda: trial("a", clock_a), lambda: trial("b", clock_b), bystander, barriers=(entered, done))

    t, m, d, t2, m2, _ = seen["a"]
    assert (t, m, t2, m2) == (1_000.0, 0.0, 1_100.0, 100.0)
    assert d == datetime.datetime(1970, 1, 1, 0, 16, 40, tzinfo=datetime.UTC)
    t, m, d, t2, m2, _ = seen["b"]
    assert (t, m, t2, m2) == (2_000_000_005.0, 5.0, 2_000_000_105.0, 105.0)
    assert d.year == 2033
    assert seen["a"][-1] != seen["b"][-1]
    patched, skew, slept, year = seen["real"]
    assert patched, "the bystander ran while the patch was installed"
    assert abs(skew) < 5 and slept >= 0.015 and year >= 2025
    assert (clock_a.elapsed, clock_b.elapsed) == (100.0, 105.0)


def test_patch_is_reference_counted_across_threads():
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    observed: dict[str, object] = {}

    def first() -> None:
        with virtual_time(VirtualClock(epoch=10.0)):
            a_in.set()
            assert b_in.wait(10)
        a_out.set()

    def second() -> None:
        assert a_in.wait(10)
        with virtual_time(VirtualClock(epoch=20.0)):
            b_in.set()
            assert a_out.wait(10)  # the first block has exited: this one must still be patched and virtual
            observed["patched"] = time.time is not ORIGINAL["time"]
            observed["time"] = time.time()

    run_threads(first, second)
    assert observed == {"patched": True, "time": 20.0}
    assert_unpatched()


def test_time_patch_keeps_stand_ins_installed_but_inactive():
    with time_patch():
        assert time.time is not ORIGINAL["time"]
        assert abs(time.time() - wall_epoch()) < 60  # no active clock: real time
        with virtual_time(VirtualClock(epoch=3.0)):
            assert time.time() == 3.0
        assert time.time is not ORIGINAL["time"]
    assert_unpatched()


def test_modules_imported_during_a_block_are_swept_on_exit(tmp_path, monkeypatch):
    (tmp_path / "clock_probe_mod.py").write_text("from time import time as now\nfrom datetime import datetime as DT\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with virtual_time(VirtualClock(epoch=42.0)):
            probe = importlib.import_module("clock_probe_mod")
            assert probe.now() == 42.0
            assert probe.DT.now(datetime.UTC).timestamp() == 42.0
        assert probe.now is ORIGINAL["time"]
        assert probe.DT is ORIGINAL["datetime"]
    finally:
        sys.modules.pop("clock_probe_mod", None)


def test_sweep_skips_ignored_modules_but_not_agent_code():
    probes = {}
    for name in ("pytest_agentops._clock_probe", "pytest_agentops.demo._clock_probe", "agent_clock_probe"):
        probe = types.ModuleType(name)
        probe.now = ORIGINAL["monotonic"]
        probes[name] = sys.modules[name] = probe
    try:
        with virtual_time(VirtualClock()):
            # The standard library's blocking machinery keeps its real timeouts ...
            assert threading._time is ORIGINAL["monotonic"]  # type: ignore[attr-defined]
            # ... and so do names the plugin bound itself; agent code, the bundled demo's included, is swept.
            assert probes["pytest_agentops._clock_probe"].now is ORIGINAL["monotonic"]
            assert probes["pytest_agentops.demo._clock_probe"].now() == 0.0
            assert probes["agent_clock_probe"].now() == 0.0
        assert all(probe.now is ORIGINAL["monotonic"] for probe in probes.values())
    finally:
        for name in probes:
            sys.modules.pop(name, None)


def test_plain_asyncio_loop_inside_a_block_keeps_real_time():
    # A frozen loop clock would make asyncio.sleep wait forever (freezegun's classic hang).
    result: dict[str, object] = {}

    def sync_agent() -> None:
        with virtual_time(VirtualClock()):
            result["value"] = asyncio.run(asyncio.wait_for(asyncio.sleep(0.01, "ok"), 5))

    thread = threading.Thread(target=sync_agent, daemon=True)
    thread.start()
    thread.join(GENEROUS_WALL_S)
    assert not thread.is_alive(), "asyncio.run hung inside virtual_time"
    assert result == {"value": "ok"}


def test_async_tasks_on_one_loop_each_see_their_own_clock():
    async def trial(epoch: float, pause: float) -> list[float]:
        clock = VirtualClock.for_loop(asyncio.get_running_loop(), epoch=epoch)
        with virtual_time(clock):
            readings = [time.time()]
            for _ in range(3):
                await asyncio.sleep(pause)
                readings.append(time.time())
            time.sleep(1000)  # a sync sleep inside an async agent moves only its own clock
            readings.append(time.time())
            return readings

    async def main():
        return await asyncio.gather(trial(0.0, 2), trial(1_000_000.0, 5))

    fast, slow = run_virtual(main())
    assert fast == [0.0, 2.0, 4.0, 6.0, 1006.0]
    assert slow == [1_000_000.0, 1_000_005.0, 1_000_010.0, 1_000_015.0, 1_001_015.0]


# --- VirtualTimeLoop ---------------------------------------------------------------------------------------


def test_many_sleepers_cost_no_wall_time():
    loop = VirtualTimeLoop()
    finished: list[float] = []

    async def sleeper():
        for _ in range(10):
            await asyncio.sleep(30)
        finished.append(loop.time())

    async def main():
        await asyncio.gather(*(sleeper() for _ in range(200)))

    try:
        start_virtual, start_wall = loop.time(), wall()
        run_virtual(main(), loop=loop)
        assert loop.time() - start_virtual == 300.0
        assert loop.virtual_now() == loop.time()
        assert finished == [start_virtual + 300.0] * 200
        assert wall() - start_wall < GENEROUS_WALL_S
    finally:
        loop.close()


def test_wait_for_times_out_at_the_right_virtual_time():
    async def main():
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.sleep(3600), timeout=7.5)
        timed_out_at = loop.time() - start
        value = await asyncio.wait_for(asyncio.sleep(2, "in time"), timeout=7.5)
        return timed_out_at, value, loop.time() - start

    start_wall = wall()
    assert run_virtual(main()) == (7.5, "in time", 9.5)
    assert wall() - start_wall < GENEROUS_WALL_S


def test_asyncio_timeout_runs_in_virtual_time():
    async def main():
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(45):
                await asyncio.sleep(10_000)
        return loop.time() - start

    assert run_virtual(main()) == 45.0


def test_call_later_and_call_at_keep_their_order_and_times():
    async def main():
        loop = asyncio.get_running_loop()
        start = loop.time()
        fired: list[tuple[str, float]] = []
        done = loop.create_future()

        def record(name: str) -> None:
            fired.append((name, loop.time() - start))
            if len(fired) == 5:
                done.set_result(None)

        loop.call_later(30, record, "c")
        loop.call_later(0.5, record, "a")
        loop.call_at(start + 3600, record, "e")
        loop.call_later(10, record, "b")
        loop.call_later(60, record, "d")
        await done
        return fired

    assert run_virtual(main()) == [("a", 0.5), ("b", 10.0), ("c", 30.0), ("d", 60.0), ("e", 3600.0)]


def test_deferred_timers_fire_as_call_at_timers_made_at_the_same_point_would():
    """``call_at_deferred``: same instants and same order among timers due together (ties by creation), off the
    loop's heap until the loop is about to let time reach them, never there if cancelled first."""
    async def main():
        loop = asyncio.get_running_loop()
        start = loop.time()
        fired: list[tuple[str, float]] = []

        def record(name: str) -> None:
            fired.append((name, loop.time() - start))

        loop.call_at_deferred(start + 5, record, "deferred 5 (made first)")
        loop.call_at(start + 5, record, "plain 5")
        loop.call_at_deferred(start + 5, record, "deferred 5 (made last)")
        loop.call_at_deferred(start + 2, record, "deferred 2")
        cancelled = loop.call_at_deferred(start + 1, record, "cancelled")
        later = loop.call_at_deferred(start + 90_000, record, "a day and more")  # past asyncio's longest wait
        assert len(loop._scheduled) == 1  # only the plain timer is on the heap while time stands still
        cancelled.cancel()
        assert cancelled.cancelled() and not later.cancelled() and later.when() == start + 90_000
        await asyncio.sleep(0)  # a turn with callbacks ready: time does not move, nothing is armed
        assert len(loop._scheduled) == 1 and fired == []
        await asyncio.sleep(10)
        mid = list(fired)
        await asyncio.sleep(100_000)
        return mid, fired[len(mid):]

    mid, rest = run_virtual(main())
    assert mid == [("deferred 2", 2.0), ("deferred 5 (made first)", 5.0), ("plain 5", 5.0),
                   ("deferred 5 (made last)", 5.0)]
    assert rest == [("a day and more", 90_000.0)]


def test_a_deferred_timer_due_already_and_one_reached_by_an_idle_wait():
    async def main():
        loop = asyncio.get_running_loop()
        fired: list[str] = []
        loop.call_at_deferred(loop.time(), fired.append, "deferred")  # due now: on the heap at once
        loop.call_at(loop.time(), fired.append, "plain")
        assert len(loop._scheduled) == 2
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert fired == ["deferred", "plain"] and loop.time() == 0.0
        gate = loop.create_future()  # nothing but the deferred timer can wake the loop: it jumps to it
        loop.call_at_deferred(loop.time() + 7, gate.set_result, "woken")
        return await gate, loop.time()

    assert run_virtual(main()) == ("woken", 7.0)


def test_cancelled_deferred_timers_are_purged_from_a_loop_that_never_waits():
    async def main():
        loop = asyncio.get_running_loop()
        kept = loop.call_at_deferred(loop.time() + 1, lambda: None)
        for _ in range(10_000):  # e.g. trials ending before their deadline, on a loop always busy
            loop.call_at_deferred(loop.time() + 30, lambda: None).cancel()
        heap = loop.vt_state.deferred
        assert len(heap) < 300 and any(entry[2] is kept for entry in heap)

    run_virtual(main())


_var: contextvars.ContextVar[str] = contextvars.ContextVar("test_clock_var", default="unset")


def _handles_of(loop: VirtualTimeLoop, ran: list[tuple[str, str]]) -> tuple[asyncio.Handle, asyncio.Handle]:
    """A handle from the loop's ``call_soon`` and one from asyncio's own, for the same call."""
    context = contextvars.copy_context()
    context.run(_var.set, "given")

    def record(who: str) -> None:
        ran.append((who, _var.get()))

    ours = loop.call_soon(record, "ours", context=context)
    theirs = asyncio.BaseEventLoop.call_soon(loop, record, "theirs", context=context)
    return ours, theirs


@pytest.mark.parametrize("fast", [True, False], ids=["handles filled in", "asyncio's call_soon"])
def test_call_soon_makes_the_handles_asyncio_makes(monkeypatch, fast):
    """``VirtualTimeLoop.call_soon`` fills asyncio's ``Handle`` in itself (fewer calls per task step): the same
    handle as asyncio's own, in debug mode too (asyncio's own is used then), and on a Python whose ``Handle``
    has other slots (``_FAST_HANDLES`` false: asyncio's own is used then too)."""
    from pytest_agentops.vtime import loop as vloop

    if fast and not vloop._FAST_HANDLES:
        pytest.skip(f"asyncio.Handle has other slots on this Python ({asyncio.Handle.__slots__}): asyncio's "
                    "call_soon is used, as the other case checks")
    monkeypatch.setattr(vloop, "_FAST_HANDLES", fast)
    for debug in (False, True):
        loop = VirtualTimeLoop()
        loop.set_debug(debug)
        try:
            ran: list[tuple[str, str]] = []
            ours, theirs = _handles_of(loop, ran)
            for name in ("_callback", "_cancelled", "_loop", "_repr", "_context"):
                assert getattr(ours, name) == getattr(theirs, name), name
            assert (ours._args, theirs._args) == (("ours",), ("theirs",))
            assert (ours._source_traceback is None) is (theirs._source_traceback is None) is (not debug)
            assert type(ours) is type(theirs) is asyncio.Handle and repr(ours).startswith("<Handle")
            cancelled = loop.call_soon(ran.append, ("never", ""))
            cancelled.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            assert ran == [("ours", "given"), ("theirs", "given")] and cancelled.cancelled()
        finally:
            loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_soon(print)


def test_a_clock_reads_a_loop_origin_inline_as_the_origin_reads_itself():
    from pytest_agentops.vtime.clock import LoopOrigin

    async def main():
        loop = asyncio.get_running_loop()
        await asyncio.sleep(1234.5678901)  # a loop time whose float rounding differs from the trial's own
        origin = LoopOrigin(loop)
        clock = VirtualClock(source=origin.elapsed)
        reads = [(clock.monotonic(), origin.elapsed())]  # not started: 0
        origin.start()
        for step in (0.1, 0.2, 1e-7, 30.0):
            await asyncio.sleep(step)
            reads.append((clock.monotonic(), origin.elapsed()))
        clock.advance(2.5)
        reads.append((clock.elapsed, origin.elapsed() + 2.5))
        origin.stop()
        await asyncio.sleep(5)  # the loop moves on, the trial's time does not
        reads.append((clock.monotonic(), origin.elapsed() + 2.5))
        return reads

    reads = run_virtual(main())
    assert all(a == b for a, b in reads), reads
    assert reads[1][0] == 0.1 and reads[-1][0] == reads[-2][0] == round(30.3000001, 6) + 2.5


def _slow_line_server(delay: float) -> int:
    """A real server in its own thread: answers one line after a real ``delay``; returns its port."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)

    def serve() -> None:
        with server:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(10)
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(1024)
                    if not chunk:
                        return
                    data += chunk
                threading.Event().wait(delay)  # a real delay, whatever the patch state
                conn.sendall(b"pong:" + data)

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1]


def test_real_socket_io_is_awaited_for_real():
    port = _slow_line_server(delay=0.05)

    async def main():
        loop = asyncio.get_running_loop()
        start = loop.time()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout=5)
        io_virtual = loop.time() - start
        writer.close()
        await writer.wait_closed()
        before = loop.time()
        await asyncio.sleep(1000)  # no I/O pending any more: back to jumping
        return line, io_virtual, loop.time() - before

    start_wall = wall()
    line, io_virtual, slept = run_virtual(main())
    assert line == b"pong:ping\n"
    # The real wait was carried into virtual time (so the 5 s timeout could not fire early).
    assert 0.03 <= io_virtual < 5
    assert slept == 1000.0
    assert wall() - start_wall < GENEROUS_WALL_S


def test_executor_work_is_awaited_for_real_and_costs_no_virtual_time():
    def blocking_job() -> str:
        threading.Event().wait(0.1)  # real work taking real time
        return "done"

    async def main():
        loop = asyncio.get_running_loop()
        start, real_start = loop.time(), real_monotonic()
        # a 0.05 s virtual timeout: the loop must not jump to it while the thread works
        first = await asyncio.wait_for(loop.run_in_executor(None, blocking_job), timeout=0.05)
        second = await asyncio.wait_for(asyncio.to_thread(blocking_job), timeout=0.05)
        return first, second, loop.time() - start, real_monotonic() - real_start

    first, second, elapsed, real_elapsed = run_virtual(main())
    assert (first, second) == ("done", "done")
    assert real_elapsed >= 0.2  # the loop waited for the threads, for real
    assert elapsed == 0.0  # and their wall time is not virtual time: the trial's times do not vary run to run


def test_for_loop_clocks_measure_their_own_elapsed_time():
    async def trial(delay: float, sleeps: list[float], extra: float) -> tuple[float, float]:
        await asyncio.sleep(delay)
        clock = VirtualClock.for_loop(asyncio.get_running_loop(), epoch=500.0)
        for pause in sleeps:
            await asyncio.sleep(pause)
        clock.advance(extra)
        return clock.elapsed, clock.now()

    async def main():
        return await asyncio.gather(trial(0, [10, 10], 0), trial(4, [3], 2))

    assert run_virtual(main()) == [(20.0, 520.0), (5.0, 505.0)]


def test_asleep_advances_the_right_clocks():
    async def on_virtual_loop():
        loop = asyncio.get_running_loop()
        start = loop.time()
        linked, plain = VirtualClock.for_loop(loop), VirtualClock()
        follower = VirtualClock(source=lambda: loop.time() - start)  # follows the loop, not via for_loop
        await linked.asleep(30)  # moves the loop, which the linked clock measures
        await plain.asleep(12)  # moves the loop and the plain clock's own offset
        await follower.asleep(5)  # moves the loop only: counting it twice would make 52
        return linked.elapsed, plain.elapsed, follower.elapsed, loop.time() - start

    assert run_virtual(on_virtual_loop()) == (47.0, 12.0, 47.0, 47.0)

    async def on_plain_loop():
        clock = VirtualClock()
        await clock.asleep(3600)
        with pytest.raises(ValueError, match="seconds=-2 must be >= 0"):
            await clock.asleep(-2)
        return clock.elapsed

    start_wall = wall()
    assert asyncio.run(on_plain_loop()) == 3600.0
    assert wall() - start_wall < GENEROUS_WALL_S


def test_run_virtual_misuse_is_explained():
    async def inner():
        return 1

    async def nested():
        coro = inner()
        with pytest.raises(RuntimeError, match="cannot be called from a running event loop"):
            run_virtual(coro)
        return "checked"

    assert run_virtual(nested()) == "checked"
    plain_loop = asyncio.new_event_loop()
    try:
        with pytest.raises(TypeError, match="must be a VirtualTimeLoop or None"):
            run_virtual(inner(), loop=plain_loop)  # type: ignore[arg-type]
    finally:
        plain_loop.close()
    with pytest.raises(ValueError, match="io_poll_cap=0 must be > 0"):
        VirtualTimeLoop(io_poll_cap=0)
    with pytest.raises(ValueError, match="io_poll_cap=-1 must be > 0"):
        VirtualTimeLoop(io_poll_cap=-1)


def test_a_given_loop_is_left_open_and_keeps_its_time():
    loop = VirtualTimeLoop()
    try:
        run_virtual(asyncio.sleep(100), loop=loop)
        run_virtual(asyncio.sleep(5), loop=loop)
        assert not loop.is_closed()
        assert loop.time() == 105.0
    finally:
        loop.close()

"""The collector settings a campaign holds: in force while trials run, restored exactly afterwards."""

from __future__ import annotations

import gc
import threading

import pytest

from pytest_agentops import ConfigError, Faults, Scenario, run_campaign
from pytest_agentops.process import FROZEN_AT_START
from pytest_agentops.process.gc_hold import (
    CAMPAIGN_GEN0_THRESHOLD,
    GEN0_THRESHOLD_CAP,
    campaign_gc,
    campaign_gc_for,
    gen0_threshold,
)


def _frozen_by_process() -> bool:
    """Whether objects are frozen beyond the interpreter's own (CPython 3.12 starts with some frozen)."""
    return gc.get_freeze_count() > FROZEN_AT_START


@pytest.fixture(autouse=True)
def _collector_as_found():
    thresholds, enabled, frozen = gc.get_threshold(), gc.isenabled(), _frozen_by_process()
    yield
    assert (gc.get_threshold(), gc.isenabled(), _frozen_by_process()) == (thresholds, enabled, frozen)


def _observing_agent(seen: list[tuple[int, int]]):
    def agent(task, env):
        seen.append((gc.get_threshold()[0], gc.get_freeze_count()))
        return "ok"

    return agent


def test_a_campaign_freezes_older_objects_and_collects_less_often_then_restores():
    seen: list[tuple[int, int]] = []
    before = gc.get_threshold()
    run_campaign(Scenario(name="gc", agent=_observing_agent(seen), trials=3, seed=0, faults=Faults.none()))
    assert all(threshold == CAMPAIGN_GEN0_THRESHOLD and frozen > FROZEN_AT_START for threshold, frozen in seen)
    assert gc.get_threshold() == before and not _frozen_by_process()


def test_settings_are_restored_after_a_campaign_that_fails_to_start():
    def broken_world():
        raise OSError("no database")

    before = gc.get_threshold()
    with pytest.raises(ConfigError):
        run_campaign(Scenario(name="broken", agent=lambda task, env: "ok", world=broken_world, trials=3, seed=0))
    assert gc.get_threshold() == before and not _frozen_by_process()


def test_nested_and_concurrent_holds_restore_once_the_last_ends():
    before = gc.get_threshold()
    started, release = threading.Barrier(2), threading.Event()

    def other_thread():
        with campaign_gc():
            started.wait(5)
            release.wait(5)

    thread = threading.Thread(target=other_thread)
    with campaign_gc():
        thread.start()
        started.wait(5)
        with campaign_gc():
            assert gc.get_threshold()[0] == CAMPAIGN_GEN0_THRESHOLD
        assert gc.get_threshold()[0] == CAMPAIGN_GEN0_THRESHOLD  # the inner hold does not restore
    assert gc.get_threshold()[0] == CAMPAIGN_GEN0_THRESHOLD  # the other thread still holds it
    release.set()
    thread.join(5)
    assert gc.get_threshold() == before and not _frozen_by_process()


def test_a_disabled_collector_or_objects_frozen_by_the_process_are_left_alone():
    before = gc.get_threshold()
    gc.disable()
    try:
        with campaign_gc():
            assert gc.get_threshold() == before and not _frozen_by_process()
    finally:
        gc.enable()
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with campaign_gc():
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen  # the process's own freeze is not undone
    finally:
        gc.unfreeze()


def test_the_threshold_grows_with_the_trials_in_flight_and_is_capped():
    assert gen0_threshold(1) == gen0_threshold(8) == CAMPAIGN_GEN0_THRESHOLD
    assert gen0_threshold(100) < gen0_threshold(1000) < gen0_threshold(10**9) == GEN0_THRESHOLD_CAP
    assert gen0_threshold(1000) > 100 * 1000  # more than an async trial's ~130 live objects per trial in flight


@pytest.mark.parametrize("concurrency", [1, 50, 1000])
def test_an_async_campaign_collects_less_often_the_more_trials_run_at_once(concurrency):
    seen: list[int] = []

    async def agent(task, env):
        seen.append(gc.get_threshold()[0])
        return "ok"

    before = gc.get_threshold()
    run_campaign(Scenario(name="gc-c", agent=agent, trials=5, seed=0, faults=Faults.none(), concurrency=concurrency))
    assert seen == [max(before[0], gen0_threshold(concurrency))] * 5
    assert gc.get_threshold() == before


def test_campaigns_at_once_hold_the_highest_threshold_until_each_ends():
    before = gc.get_threshold()
    with campaign_gc_for(1000):
        high = gc.get_threshold()
        assert high == (gen0_threshold(1000), *before[1:])
        with campaign_gc_for(10):
            assert gc.get_threshold() == high  # a lower one asked for does not lower it
        with campaign_gc_for(5000):
            assert gc.get_threshold()[0] == gen0_threshold(5000)
        assert gc.get_threshold() == high  # back to the highest still asked for
    assert gc.get_threshold() == before and not _frozen_by_process()


def test_a_process_threshold_higher_than_the_campaigns_is_kept():
    before = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD_CAP * 2, *before[1:])
    try:
        with campaign_gc_for(1000):
            assert gc.get_threshold()[0] == GEN0_THRESHOLD_CAP * 2
        assert gc.get_threshold()[0] == GEN0_THRESHOLD_CAP * 2
    finally:
        gc.set_threshold(*before)


@pytest.mark.parametrize("frozen_first", [True, False])
def test_objects_a_process_froze_before_importing_the_package_stay_frozen(frozen_first):
    """A fresh interpreter: one that froze its objects before importing ``pytest_agentops`` (a pre-fork server,
    a script) keeps them frozen through a campaign; one that did not gets the campaign's freeze, undone after."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import gc
        hoard = [[i] for i in range(5000)]
        if {frozen_first}:
            gc.freeze()
        before = gc.get_freeze_count()
        from pytest_agentops import Faults, Scenario, run_campaign
        seen = []
        run_campaign(Scenario(name="gc", agent=lambda task, env: seen.append(gc.get_freeze_count()) or "ok",
                              trials=2, seed=0, faults=Faults.none()))
        print(before, seen[0], gc.get_freeze_count())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    before, during, after = map(int, out.stdout.split())
    if frozen_first:
        # left alone: neither refrozen (the imports' objects would join) nor unfrozen (a few frozen objects
        # the imports free leave the count, nothing else)
        assert before >= 5000 and before * 0.99 <= after <= during <= before
    else:
        assert before <= 1000 and during > before + 5000 and after <= before  # frozen for the campaign only

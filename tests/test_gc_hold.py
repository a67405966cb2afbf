"""The collector settings a campaign holds: in force while trials run, restored exactly afterwards."""

from __future__ import annotations

import gc
import threading

import pytest

from pytest_agentops import ConfigError, Faults, Scenario, run_campaign
from pytest_agentops.process.gc_hold import CAMPAIGN_GEN0_THRESHOLD, campaign_gc


@pytest.fixture(autouse=True)
def _collector_as_found():
    thresholds, enabled, frozen = gc.get_threshold(), gc.isenabled(), gc.get_freeze_count()
    yield
    assert (gc.get_threshold(), gc.isenabled(), gc.get_freeze_count() > 0) == (thresholds, enabled, frozen > 0)


def _observing_agent(seen: list[tuple[int, int]]):
    def agent(task, env):
        seen.append((gc.get_threshold()[0], gc.get_freeze_count()))
        return "ok"

    return agent


def test_a_campaign_freezes_older_objects_and_collects_less_often_then_restores():
    seen: list[tuple[int, int]] = []
    before = gc.get_threshold()
    run_campaign(Scenario(name="gc", agent=_observing_agent(seen), trials=3, seed=0, faults=Faults.none()))
    assert all(threshold == CAMPAIGN_GEN0_THRESHOLD and frozen > 0 for threshold, frozen in seen)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_settings_are_restored_after_a_campaign_that_fails_to_start():
    def broken_world():
        raise OSError("no database")

    before = gc.get_threshold()
    with pytest.raises(ConfigError):
        run_campaign(Scenario(name="broken", agent=lambda task, env: "ok", world=broken_world, trials=3, seed=0))
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


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
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_a_disabled_collector_or_objects_frozen_by_the_process_are_left_alone():
    before = gc.get_threshold()
    gc.disable()
    try:
        with campaign_gc():
            assert gc.get_threshold() == before and gc.get_freeze_count() == 0
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

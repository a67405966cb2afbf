"""The suite's own guard (tests/process_state.py): a test that leaves the process changed fails, by name."""

from __future__ import annotations

import threading

import process_state

# The guard's fixtures and hook, in a project of pytester's (tests/ is on sys.path in this process).
CONFTEST = ("from process_state import _process_state, _process_state_per_module, pytest_configure, "
            "pytest_fixture_setup\n")


def test_a_test_that_patches_time_and_does_not_undo_it_fails_with_a_clear_message(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_leaky='''
        import time

        REAL = time.time


        def test_patches_time():
            time.time = lambda: 0.0


        def test_next_test_sees_the_real_clock():
            assert time.time is REAL
    ''')
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_patches_time*",
        "*test_leaky.py::test_patches_time left the process changed:*",
        "*[[]time[]] time.time is test_leaky.test_patches_time.<locals>.<lambda> (was time.time) (put back)*",
    ])


def test_leaked_threads_are_named_and_an_opt_out_must_say_what_and_why(pytester, monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(process_state, "GRACE_S", 0.1)  # for the inner run; the outer check waits as usual
    monkeypatch.setattr("builtins._process_state_test_release", release, raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_threads='''
        import builtins
        import threading

        import pytest


        def linger():
            builtins._process_state_test_release.wait(10)


        def test_leaves_a_thread():
            threading.Thread(target=linger, name="lingering", daemon=True).start()


        @pytest.mark.leaves_process_state("threads", reason="this test shows the opt-out")
        def test_says_what_it_leaves():
            threading.Thread(target=linger, name="excused", daemon=True).start()


        @pytest.mark.leaves_process_state("threads")
        def test_an_opt_out_without_a_reason_is_refused():
            pass
    ''')
    try:
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    finally:
        release.set()
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines([
        "*test_threads.py::test_leaves_a_thread left the process changed:*",
        "*[[]threads[]] daemon thread 'lingering' running linger, now in wait (threading.py:*)"
        " from linger (test_threads.py:*) is still alive",
        "*test_an_opt_out_without_a_reason_is_refused: @pytest.mark.leaves_process_state needs one or more of*",
    ])
    result.stdout.no_fnmatch_line("*'excused'*")


def test_functions_the_harness_stands_in_for_rebound_by_a_trial_are_put_back_and_named(pytester):
    """An outside review: a trial's ``time.time = lambda: 1.7e9``, ``random.random = lambda: 0.0`` and
    ``os._exit = lambda code: None`` stayed for the rest of the session (three later tests failed: time frozen,
    random constant, ``os._exit`` the agent's), unnamed. They are put back when the campaign ends, and named in a
    ``ProcessStateChanged`` warning."""
    pytester.makepyfile(test_rebinds="""
        import os, random, time
        import pytest
        from pytest_agentops import ProcessStateChanged, Scenario, run_campaign

        REAL = (time.time, random.random, os._exit)

        def agent(task, env):
            time.time = lambda: 1.7e9
            random.random = lambda: 0.0
            os._exit = lambda code: None
            return "ok"

        def test_campaign():
            with pytest.warns(ProcessStateChanged, match="os._exit.*random.random.*time.time"):
                run_campaign(Scenario(name="rebinds", agent=agent, trials=2, seed=1))

        def test_later():
            assert (time.time, random.random, os._exit) == REAL
            assert time.time() != 1.7e9
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_a_module_constant_of_the_package_left_changed_fails_and_is_put_back(pytester):
    # (the leak this catches: a conftest of an in-process run lowering a limit for every later test)
    pytester.makeconftest(CONFTEST + "import pytest_agentops.engine.trial\n")
    pytester.makepyfile(test_constant='''
        import pytest_agentops.engine.trial as trial


        def test_lowers_the_campaign_trace_budget():
            trial.CAMPAIGN_TRACE_EVENTS = 5


        def test_lowers_it_where_monkeypatch_puts_it_back(monkeypatch):
            monkeypatch.setattr(trial, "CAMPAIGN_TRACE_EVENTS", 7)


        def test_next_test_sees_the_budget_as_shipped():
            assert trial.CAMPAIGN_TRACE_EVENTS == 200_000
    ''')
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_lowers_the_campaign_trace_budget*",
        "*[[]constants[]] pytest_agentops.engine.trial.CAMPAIGN_TRACE_EVENTS is 5 (was 200000) (put back)*",
    ])


def test_a_signal_handler_or_blocked_signal_left_changed_fails_and_is_put_back(pytester):
    # (a SIGINT left ignored makes Ctrl-C, and ``_thread.interrupt_main``, do nothing in every later test)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_signals='''
        import signal


        def test_ignores_ctrl_c():
            signal.signal(signal.SIGINT, signal.SIG_IGN)


        def test_blocks_sigusr1():
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})


        def test_next_test_sees_them_as_before():
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
            assert signal.SIGUSR1 not in signal.pthread_sigmask(signal.SIG_BLOCK, ())
    ''')
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines([
        "*[[]signals[]] the handler of SIGINT is <Handlers.SIG_IGN: 1> (was <built-in function default_int_handler>)"
        " (put back)*",
        "*[[]signals[]] the main thread's blocked signals changed (SIGUSR1) (put back)*",
    ])

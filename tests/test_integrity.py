"""A report tells the whole story or says it does not: Ctrl-C keeps what finished, a dying xdist worker
loses nothing that finished, and the gate fails a report that is interrupted, incomplete or ambiguous."""

from __future__ import annotations

import _thread
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pytest_agentops import CampaignInterrupted, Scenario, run_campaign
from pytest_agentops.gate import main as gate
from pytest_agentops.report.json_report import write_report
from pytest_agentops.vtime.real import real_sleep


def test_ctrl_c_in_a_campaign_keeps_the_finished_trials_in_launch_order():
    import threading

    pressed, sent = threading.Event(), threading.Event()

    def press_ctrl_c():  # (a thread of the test's: from a trial, signalling the test process is refused)
        pressed.wait()
        _thread.interrupt_main()  # what Ctrl-C does to the main thread, which is waiting for results
        sent.set()

    def agent(task, env):
        if env.trial_id == "trial-10":
            pressed.set()
            sent.wait(30)  # (so the campaign cannot end before Ctrl-C is pressed, however loaded the machine)
            real_sleep(0.2)
        return "ok"

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    with pytest.raises(CampaignInterrupted) as caught:
        run_campaign(Scenario(name="ctrl-c", agent=agent, trials=400, seed=1, faults="none",
                              expect={"completion_rate": ">= 0.5"}))
    result = caught.value.result
    assert result.interrupted and 5 <= result.n < 400  # (the signal reaches the main thread when it next runs)
    assert [r.index for r in result.records] == list(range(result.n))
    assert result.to_dict()["interrupted"] is True
    assert isinstance(caught.value, KeyboardInterrupt)


def test_ctrl_c_while_an_async_trial_blocks_the_loop_runs_nothing_again():
    """Ctrl-C while trial 2 blocks the shared loop for good: the loop is retired as the trials are ended, and
    none of the trials it held is launched again (a retired loop runs its unfinished trials again on a fresh
    one, but not when the campaign is ending); no loop thread is left running."""
    import asyncio
    import threading

    from pytest_agentops.engine import scheduler

    interrupted = threading.Event()
    launched_after: list[int] = []
    launch = scheduler.Runner.launch

    def counting_launch(self, index):
        if interrupted.is_set():
            launched_after.append(index)
        return launch(self, index)

    async def agent(task, env):
        if env.trial_id == "trial-2":
            while True:  # blocks the shared loop (interruptible)
                real_sleep(0.01)
        for _ in range(20):
            await asyncio.to_thread(real_sleep, 0.1)
        return "ok"

    def ctrl_c():
        interrupted.set()
        _thread.interrupt_main()

    scheduler.Runner.launch = counting_launch
    timer = threading.Timer(0.6, ctrl_c)
    try:
        timer.start()
        with pytest.raises(CampaignInterrupted):
            run_campaign(Scenario(name="ctrl-c-blocked", agent=agent, trials=6, seed=1, faults="none",
                                  concurrency=4, timeout_s=30, early_stop=False))
    finally:
        scheduler.Runner.launch = launch
        timer.cancel()
    real_sleep(1.0)
    assert launched_after == []
    assert [t.name for t in threading.enumerate() if t.name.startswith("agentops-loop")] == []


def test_ctrl_c_in_pytest_writes_the_table_and_a_valid_partial_report(pytester, quiet_children):
    started = pytester.path / "started"
    pytester.makepyfile(test_slow=f"""
        import threading
        from pytest_agentops import Scenario

        def agent(task, env):
            if env.trial_id == "trial-5":
                open({str(started)!r}, "w").close()
            threading.Event().wait(0.02)  # real time (time.sleep in a trial is virtual)
            return "ok"

        def test_slow(agent_chaos):
            agent_chaos.run(Scenario(name="slow", agent=agent, trials=5000, seed=1, faults="none", early_stop=False,
                                     expect={{"completion_rate": ">= 0.5"}})).check()

        def test_after(agent_chaos):
            pass
    """)
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "--agent-chaos", "-p", "no:cacheprovider",
                             "--agent-chaos-report=report.json", "test_slow.py"], cwd=pytester.path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
        real_sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert "(INTERRUPTED: the trials that finished before Ctrl-C)" in out
    report = json.loads((pytester.path / "report.json").read_text())
    (campaign,) = report["campaigns"]
    assert campaign["interrupted"] is True and 5 <= campaign["trials"] < 5000
    assert [r["index"] for r in campaign["records"]] == list(range(campaign["trials"]))
    assert report["session"]["interrupted"] is True and report["session"]["exit_status"] == 2
    assert "test_slow.py::test_after" in report["session"]["missing"]
    assert gate([str(pytester.path / "report.json")]) == 1
    assert gate([str(pytester.path / "report.json"), "--allow-incomplete", "--allow-inconclusive"]) == 0


def test_a_dying_xdist_worker_loses_no_finished_campaign_and_the_gate_fails_the_report(pytester, quiet_children):
    pytester.makepyfile(test_two="""
        import os, signal
        from pytest_agentops import Scenario

        def test_a_campaign(agent_chaos):
            agent_chaos.run(Scenario(name="fine", agent=lambda task, env: "ok", trials=30, seed=1, faults="none",
                                     expect={"completion_rate": ">= 0.5"})).check()

        def test_b_dies(agent_chaos):
            os.kill(os.getpid(), signal.SIGKILL)  # the worker dies mid-test, as an OOM kill would do it
    """)
    # (no replacement worker: nothing is left to run, and starting one took half of this test's time)
    result = pytester.runpytest_subprocess("--agent-chaos", "-n", "1", "--max-worker-restart=0", "-p",
                                           "no:cacheprovider", "--agent-chaos-report=report.json")
    assert result.ret == 1
    report = json.loads((pytester.path / "report.json").read_text())
    assert [c["scenario"] for c in report["campaigns"]] == ["fine"]  # finished before the worker died
    assert report["session"]["missing"] == ["test_two.py::test_b_dies"]
    assert report["session"]["expected"] == ["test_two.py::test_a_campaign", "test_two.py::test_b_dies"]
    assert gate([str(pytester.path / "report.json")]) == 1


def test_the_gate_judges_every_campaign_of_a_parametrized_test(pytester, capsys):
    pytester.makepyfile(test_param="""
        import pytest
        from pytest_agentops import Scenario

        @pytest.mark.parametrize("p", [0.3, 0.99])
        def test_coin(agent_chaos, p):
            agent_chaos.run(Scenario(name="coin", agent=lambda task, env: "ok" if env.rng.random() < p else "no",
                                     check=lambda w, out: out == "ok", trials=200, seed=2, faults="none",
                                     expect={"completion_rate": ">= 0.9"}))
    """)
    pytester.runpytest("--agent-chaos", "-p", "no:cacheprovider", "--agent-chaos-report=report.json")
    report = json.loads((pytester.path / "report.json").read_text())
    assert sorted(c["nodeid"] for c in report["campaigns"]) == ["test_param.py::test_coin[0.3]",
                                                                "test_param.py::test_coin[0.99]"]
    assert gate([str(pytester.path / "report.json")]) == 1
    out = capsys.readouterr().out
    assert "| test_param.py::test_coin[0.3][coin] | verdict | **FAIL** |" in out
    assert "| test_param.py::test_coin[0.99][coin] | verdict | pass |" in out


def test_a_campaign_without_expectations_fails_the_gate_when_a_trial_errored(tmp_path):
    def agent(task, env):
        if env.trial_id == "trial-3":
            raise RuntimeError("store unreachable")
        return "ok"

    write_report(tmp_path / "r.json", [run_campaign(Scenario(name="bare", agent=agent, trials=5, seed=1))])
    assert gate([str(tmp_path / "r.json")]) == 1
    write_report(tmp_path / "ok.json", [run_campaign(Scenario(name="bare", agent=lambda t, e: "ok", trials=5,
                                                              seed=1))])
    assert gate([str(tmp_path / "ok.json")]) == 0


@pytest.mark.parametrize(("content", "message"), [
    (None, "a directory, not a report file"),
    ('{"schema": "pytest-agentops/report", "schema_version": 1, "campaigns": {}}',
     "'campaigns' must be a list of campaigns"),
    ('{"schema": "pytest-agentops/report", "schema_version": 1, "campaigns": [{"scenario": "x"}]}',
     "campaigns[0].verdicts must be a list"),
    ('{"schema": "pytest-agentops/report", "schema_version": 1, "campaigns": [3]}',
     "campaigns[0] must be an object"),
    ("not json", "Expecting value"),
    # (an outside review: an empty file said only "Expecting value: line 1 column 1"; true and 1.0 passed as 1)
    ("", "the file is empty (a report that was never written, or cut off)"),
    ('{"schema": "pytest-agentops/report", "schema_version": true, "campaigns": []}', "schema_version=True, this "
                                                                                      "version reads 1"),
    ('{"schema": "pytest-agentops/report", "schema_version": 1.0, "campaigns": []}', "schema_version=1.0"),
])
def test_malformed_gate_input_is_a_usage_error(tmp_path, capsys, content, message):
    path = tmp_path / "r.json"
    if content is None:
        path.mkdir()
    else:
        path.write_text(content)
    assert gate([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("agentops-gate: error: ") and message in err and "Traceback" not in err


def test_an_unwritable_markdown_path_is_a_usage_error(tmp_path, capsys):
    write_report(tmp_path / "ok.json", [run_campaign(Scenario(name="s", agent=lambda t, e: "ok", trials=3, seed=1))])
    assert gate([str(tmp_path / "ok.json"), "--markdown", str(tmp_path)]) == 2  # a directory
    assert "cannot write the markdown summary" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "ok.md")


# --- output paths checked at start-up; a killed run's report is never mistaken for a fresh one ---------------

@pytest.mark.parametrize("flag", ["--agent-chaos-report", "--agent-chaos-html"])
def test_an_output_path_that_is_a_directory_is_a_usage_error_before_any_test_runs(pytester, flag):
    pytester.makepyfile(test_one="def test_one():\n    open('ran', 'w').close()\n")
    (pytester.path / "out").mkdir()
    result = pytester.runpytest("-p", "no:cacheprovider", f"{flag}=out")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"{flag}=out: is a directory; give the path of a file to write" in result.stderr.str()
    assert "Traceback" not in result.stderr.str() and not (pytester.path / "ran").exists()


def test_an_output_in_a_directory_that_cannot_be_written_or_made_is_a_usage_error(pytester):
    if os.geteuid() == 0:  # root writes anywhere: a directory that cannot be made instead (under a file)
        (pytester.path / "afile").write_text("x")
        result = pytester.runpytest("-p", "no:cacheprovider", "--agent-chaos-report=afile/r.json")
        assert "--agent-chaos-report=afile/r.json: cannot make its directory" in result.stderr.str()
    else:
        locked = pytester.path / "locked"
        locked.mkdir(mode=0o500)
        result = pytester.runpytest("-p", "no:cacheprovider", "--agent-chaos-report=locked/r.json")
        assert "cannot be written (permission denied)" in result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_a_missing_parent_is_made_and_the_report_says_running_until_the_run_ends(pytester):
    pytester.makepyfile(test_one="""
        import json, pathlib
        from pytest_agentops import Scenario

        def test_one(agent_chaos):
            seen = json.loads(pathlib.Path("deep/er/report.json").read_text())
            assert seen["campaigns"] == [] and seen["session"]["running"] is True
            agent_chaos.run(Scenario(name="s", agent=lambda t, e: "ok", trials=5, seed=1, faults="none"))
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "--agent-chaos",
                                           "--agent-chaos-report=deep/er/report.json")
    assert result.ret == 0
    report = json.loads((pytester.path / "deep/er/report.json").read_text())
    assert "running" not in report["session"] and [c["scenario"] for c in report["campaigns"]] == ["s"]


def test_a_killed_run_leaves_a_running_report_that_the_gate_fails_not_the_last_run(pytester, capsys, monkeypatch,
                                                                                   quiet_children):
    pytester.makepyfile(test_one="""
        import os, signal
        from pytest_agentops import Scenario

        def test_one(agent_chaos):
            agent_chaos.run(Scenario(name="s", agent=lambda t, e: "ok", trials=5, seed=1, faults="none",
                                     expect={"completion_rate": ">= 0.1"}))
            if os.environ.get("KILL_ME"):
                os.kill(os.getpid(), signal.SIGKILL)
    """)
    args = ("-p", "no:cacheprovider", "--agent-chaos", "--agent-chaos-report=report.json")
    assert pytester.runpytest(*args).ret == 0
    assert gate([str(pytester.path / "report.json")]) == 0  # the good run's report passes
    capsys.readouterr()
    monkeypatch.setenv("KILL_ME", "1")
    assert pytester.runpytest_subprocess(*args).ret != 0
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["session"]["running"] is True and report["campaigns"] == []
    assert gate([str(pytester.path / "report.json")]) == 1
    assert "the run that wrote this report never finished" in capsys.readouterr().out


def test_a_report_that_cannot_be_written_at_the_end_is_said_after_the_summary_and_fails_the_run(pytester):
    pytester.makepyfile(test_one="""
        import os, shutil
        from pytest_agentops import Scenario

        def test_one(agent_chaos):
            agent_chaos.run(Scenario(name="s", agent=lambda t, e: "ok", trials=3, seed=1, faults="none"))
            shutil.rmtree("out")
            open("out", "w").close()  # the report's directory became a file while the tests ran
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "--agent-chaos",
                                           "--agent-chaos-report=out/report.json")
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    out = result.stdout.str()
    assert "ERROR: agent chaos: a report could not be written" in out and "INTERNALERROR" not in out
    assert "1 passed" in out  # pytest's own summary is there too


@pytest.mark.parametrize("args", [["--help"], ["--markers"], ["--co"]])
def test_help_markers_and_collect_only_leave_the_last_report_alone(pytester, args):
    pytester.makeini("[pytest]\nagent_chaos_report = out/r.json\n")
    pytester.makepyfile(test_one="""
        from pytest_agentops import Scenario

        def test_one(agent_chaos):
            agent_chaos.run(Scenario(name="s", agent=lambda t, e: "ok", trials=3, seed=1, faults="none"))
    """)
    assert pytester.runpytest("-p", "no:cacheprovider", "--agent-chaos").ret == 0
    report = pytester.path / "out" / "r.json"
    before = report.read_text()
    pytester.runpytest("-p", "no:cacheprovider", *args)
    assert report.read_text() == before and gate([str(report)]) == 0

"""Live progress while a campaign runs (issue 13, item 1): the engine's feed on a fake clock, the text, and the
plugin through ``pytester``: lines in non-TTY output at the set cadence and none for a campaign that ends
sooner, a line redrawn in place on a (simulated) TTY that leaves pytest's output exactly as without it,
silence at ``-qq``, with ``off`` and under xdist, and reports byte-identical with progress on and off."""

from __future__ import annotations

import json
import re

import pytest

from pytest_agentops import Scenario
from pytest_agentops.engine.campaign import run_resolved
from pytest_agentops.engine.progress import Progress, ProgressFeed, RunningEstimate
from pytest_agentops.judge import judge
from pytest_agentops.precedence import resolve_run
from pytest_agentops.pytest_plugin.progress import duration_text, progress_text
from pytest_agentops.report.json_report import report_dict
from pytest_agentops.settings.run import RunSource

from conftest import QUIET_ADDOPTS, coin_agent

# -- the engine's feed, on a fake clock -------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_feed_reports_at_most_once_per_interval_and_never_before_the_first():
    clock = FakeClock()
    got: list[Progress] = []
    feed = ProgressFeed("s", 1000, got.append, 5.0, clock=clock)
    assert feed.wait_s(clock.now) == 5.0
    clock.now = 104.9
    assert feed.tick(clock.now, 10, []) is None and not got  # a campaign ending before 5 s prints nothing
    clock.now = 105.0
    first = feed.tick(clock.now, 50, [])
    assert first is not None and got == [first]
    assert (first.done, first.max_trials, first.elapsed_s) == (50, 1000, 5.0)
    assert first.eta_s == pytest.approx(5.0 / 50 * 950)
    clock.now = 109.0
    assert feed.tick(clock.now, 60, []) is None and len(got) == 1
    assert feed.wait_s(clock.now) == pytest.approx(1.0)
    clock.now = 131.0  # a stall: one report, then the next an interval later (no burst of catch-up reports)
    assert feed.tick(clock.now, 70, []) is not None
    assert feed.tick(clock.now + 0.1, 71, []) is None and feed.wait_s(clock.now) == 5.0
    assert len(got) == 2


def test_feed_without_a_finished_trial_has_no_eta_and_rejects_a_bad_interval():
    clock = FakeClock()
    feed = ProgressFeed("s", 10, lambda p: None, 1.0, clock=clock)
    clock.now += 2
    assert feed.tick(clock.now, 0, []).eta_s is None
    with pytest.raises(ValueError, match="every_s=0"):
        ProgressFeed("s", 10, lambda p: None, 0)


def _records(p: float, n: int):
    sc = Scenario(name="coin", agent=coin_agent(p), trials=n, seed=1, early_stop=False)
    return run_resolved(sc, resolve_run(sc, ())).records


def test_running_estimates_are_those_of_the_table_and_change_nothing():
    from pytest_agentops.expect import Expectation

    records = _records(0.8, 60)
    for key, expression in [("completion_rate", ">= 0.5"), ("tokens_per_task.p95", "<= 4000"),
                            ("tokens_per_task.mean", "<= 4000, cap 10000"), ("unconfirmed_destructive_calls", "== 0")]:
        exp = Expectation.parse(key, expression)
        j = judge(exp, max_trials=60, confidence=0.95, sequential=True).add_all(records)
        before = j.verdict(complete=True)
        estimate, bound, side = j.running()
        assert j.verdict(complete=True) == before  # reading the running estimate changes nothing
        if exp.statistic in ("rate", "quantile"):
            shown = j.verdict(complete=False)
            if shown.verdict == "inconclusive":  # the table's estimate and bound for reading
                assert (estimate, bound, side) == (shown.estimate, shown.bound, shown.bound_side)
            assert bound is not None
        else:
            assert bound is None  # a betting mean's bounds and a count: estimate only


def test_progress_text_puts_the_time_first():
    p = Progress(scenario="refund", done=120, max_trials=2000, elapsed_s=12.0, eta_s=188.0, estimates=(
        RunningEstimate("completion_rate", ">= 0.9", "rate", 0.93, 0.88, "lower", 120, None),
        RunningEstimate("unconfirmed_destructive_calls", "== 0", "count", 1.0, None, "", 120, "fail"),
        RunningEstimate("tokens_per_task.p95", "<= 4000", "quantile", None, None, "", 0, None)))
    assert progress_text(p) == ("refund: 120/2,000 trials, 12s elapsed, ~3m08s left at most | completion_rate "
                                "0.93 (lo 0.88) >= 0.9 | unconfirmed_destructive_calls 1 == 0 fail | "
                                "tokens_per_task.p95 - <= 4000")
    assert [duration_text(s) for s in (0.04, 8, 42.4, 80, 7380)] == ["0.0s", "8.0s", "42s", "1m20s", "2h03m"]
    # a quantile in the thousands as a whole number, as the table shows it (an outside review: "1.9e+03 (up
    # 2.69e+03) <= 100000"; 3,998 beside "<= 4000" read "4e+03")
    big = Progress(scenario="refund", done=560, max_trials=1500, elapsed_s=3.0, eta_s=5.0, estimates=(
        RunningEstimate("tokens_per_task.p95", "<= 4000", "quantile", 3998.0, 4012.5, "upper", 560, None),))
    assert progress_text(big).endswith("| tokens_per_task.p95 3998 (up 4012) <= 4000")


@pytest.mark.parametrize("early_stop", [True, False])
def test_progress_changes_no_result_and_reports_growing_counts(early_stop):
    """Same seed, a callback called as often as the scheduler allows vs none: byte-identical reports."""
    sc = Scenario(name="coin", agent=coin_agent(0.9), trials=400, seed=3, early_stop=early_stop,
                  expect={"completion_rate": ">= 0.5", "tokens_per_task.p95": "<= 4000"})
    settings = resolve_run(sc, (RunSource("arguments", concurrency=4),))
    got: list[Progress] = []
    with_progress = run_resolved(sc, settings, progress=got.append, progress_every_s=1e-6)
    without = run_resolved(sc, settings)

    def text(r):
        return json.dumps(report_dict([r], with_traces=True), sort_keys=True, allow_nan=False)

    assert text(with_progress) == text(without)
    assert got, "a callback due at every wake-up was never called"
    assert [p.done for p in got] == sorted(p.done for p in got)
    assert all(p.max_trials == 400 and p.scenario == "coin" and p.done < with_progress.n + 400 for p in got)
    # the estimates come from the campaign's judges, or display judges when it judges once at the end
    assert [e.key for e in got[-1].estimates] == ["completion_rate", "tokens_per_task.p95"]


def test_no_callback_for_a_campaign_shorter_than_the_interval_or_a_single_trial():
    sc = Scenario(name="coin", agent=coin_agent(0.9), trials=50, seed=3)
    got: list[Progress] = []
    run_resolved(sc, resolve_run(sc, ()), progress=got.append, progress_every_s=3600)
    run_resolved(sc, resolve_run(sc, (), replay=3), progress=got.append, progress_every_s=1e-6)
    assert got == []


# -- through pytest ---------------------------------------------------------------------------------------

CONFTEST = '''
import threading
from pytest_agentops import Scenario, tool

class World:
    def __init__(self):
        self.acted = []

@tool
def act(world, n: int) -> str:
    """Act once."""
    world.acted.append(n)
    return "ok"

def slow(task, env):
    threading.Event().wait(0.003)  # real wall time (the time module is virtual inside a trial)
    try:
        env.tools["act"](1)
    except Exception:
        return "failed"
    return "ok"

def make():
    # concurrency 1: the campaign lasts at least 300 x 3 ms of wall time
    return Scenario(name="slow", agent=slow, task="t", world=World, tools=[act], concurrency=1,
                    check=lambda w, out: out == "ok", trials=300, seed=3, early_stop=False,
                    expect={"completion_rate": ">= 0.5", "unconfirmed_destructive_calls": "== 0"})
'''

TESTS = '''
from conftest import make

def test_slow(agent_chaos):
    agent_chaos.run(make()).check()

def test_plain():
    pass
'''

PROGRESS_LINE = re.compile(r"agentops: slow: [\d,]+/300 trials, ")
RUN = ("--agent-chaos", "--agent-chaos-seed=5", "-p", "no:cacheprovider")


@pytest.fixture
def project(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_slow=TESTS)
    return pytester


def without_timings(lines: list[str]) -> list[str]:
    """pytest's last line says how long the session took: the one thing that differs run to run."""
    return [re.sub(r"=+ (.*) in [\d.]+s.*", r"\1", line) for line in lines]


def without_progress(text: str) -> list[str]:
    """The output with each progress line taken out, and the line it interrupted joined with its rewrite (a
    progress line in a log ends with pytest's current line written again)."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        if PROGRESS_LINE.match(lines[i]):
            i += 1
            if out and out[-1] and i < len(lines) and lines[i].startswith(out[-1]):
                out.pop()  # the interrupted line, written again in full below the progress line
            continue
        out.append(lines[i])
        i += 1
    return without_timings(out)


def test_non_tty_output_gets_a_progress_line_at_each_interval_and_is_otherwise_unchanged(project):
    result = project.runpytest(*RUN, "--agent-chaos-progress-every=0.1", "--agent-chaos-report=on.json")
    result.assert_outcomes(passed=2)
    text = result.stdout.str()
    lines = [line for line in text.splitlines() if PROGRESS_LINE.match(line)]
    assert len(lines) >= 2, text  # the campaign lasts >= 0.9 s of wall time: several lines 0.1 s apart
    assert "\r" not in text and "\x1b[" not in text  # no cursor movement in a log
    assert re.fullmatch(r"agentops: slow: [\d,]+/300 trials, \d+\.\ds elapsed, ~\S+ left at most \| "
                        r"completion_rate [\d.]+ \(lo [\d.]+\) >= 0\.5 \| unconfirmed_destructive_calls 0 == 0",
                        lines[-1]), lines[-1]  # (the first may come before any trial was judged: "-")
    off = project.runpytest(*RUN, "--agent-chaos-progress=off", "--agent-chaos-report=off.json")
    assert not PROGRESS_LINE.search(off.stdout.str())
    assert without_progress(text) == without_timings(off.stdout.lines)
    # progress changes nothing in the results
    assert (project.path / "on.json").read_bytes() == (project.path / "off.json").read_bytes()


def test_verbose_output_gets_the_test_line_written_again_under_a_progress_line(project):
    result = project.runpytest(*RUN, "-v", "--agent-chaos-progress-every=0.1", "-k", "slow")
    lines = result.stdout.lines
    first = next(i for i, line in enumerate(lines) if PROGRESS_LINE.match(line))
    assert lines[first - 1].startswith("test_slow.py::test_slow ")
    assert any(re.match(r"test_slow\.py::test_slow PASSED", line) for line in lines[first:])


def test_no_line_for_a_campaign_that_ends_within_the_interval(project):
    result = project.runpytest(*RUN, "--agent-chaos-progress-every=600")
    result.assert_outcomes(passed=2)
    assert "agentops: slow:" not in result.stdout.str()


def screen(text: str) -> list[str]:
    """What a terminal shows after ``text``: carriage returns, cursor moves right (ESC[nC), erasing to the end
    of the line (ESC[K) and colours (ignored) applied."""
    rows: list[list[str]] = [[]]
    col = 0
    for token in re.findall(r"\x1b\[([\d;]*)([A-Za-z])|(\r)|(\n)|([^\x1b\r\n])", text):
        number, command, cr, nl, char = token
        row = rows[-1]
        if cr:
            col = 0
        elif nl:
            rows.append([])
            col = 0
        elif char:
            row.extend(" " * (col - len(row)))
            row[col:col + 1] = [char]
            col += 1
        elif command == "C":
            col += int(number.split(";")[0] or 1)
        elif command == "K":
            del row[col:]
    return ["".join(r) for r in rows]


def run_in_pty(path, *args: str, columns: int = 100) -> str:
    """pytest run in a child process whose output is a real pseudo-terminal; everything it wrote, raw."""
    import fcntl
    import os
    import struct
    import subprocess
    import sys
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "xterm", "PYTEST_ADDOPTS": QUIET_ADDOPTS}
    env.pop("CI", None)  # pytest would not use the terminal's width under CI
    with subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=path, stdin=slave, stdout=slave,
                          stderr=slave, env=env) as child:
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
        child.wait(timeout=120)
    os.close(master)
    return b"".join(chunks).decode("utf-8", "replace")


def test_tty_line_is_redrawn_in_place_and_leaves_nothing_behind(project):
    raw = run_in_pty(project.path, *RUN)
    draws = re.findall(r"\r(?:\x1b\[\d+C)?agentops: slow: ", raw)
    assert len(draws) >= 1, raw  # redrawn every 0.5 s; the campaign lasts >= 0.9 s
    assert raw.count("agentops: slow: ") == len(draws)  # every draw starts with a carriage return...
    assert "\x1b[K" in raw and "\nagentops: slow:" not in raw  # ...none on a line of its own
    shown = screen(raw)
    assert "2 passed" in shown[-2] + shown[-1], shown
    assert not any("agentops: slow:" in line for line in shown)  # cleared at the end of the campaign
    off = run_in_pty(project.path, *RUN, "--agent-chaos-progress=off")
    assert "agentops: slow:" not in off
    assert without_timings(shown) == without_timings(screen(off))


@pytest.mark.parametrize("args", [("-qq",), ("--agent-chaos-progress=off",), ("-o", "agent_chaos_progress=off")])
def test_silent_at_qq_and_when_off(project, args):
    result = project.runpytest(*RUN, "--agent-chaos-progress-every=0.1", *args)
    assert result.ret == pytest.ExitCode.OK
    assert "agentops: slow:" not in result.stdout.str()


def test_on_prints_even_at_qq(project):
    result = project.runpytest(*RUN, "--agent-chaos-progress-every=0.1", "--agent-chaos-progress=on", "-qq")
    assert PROGRESS_LINE.search(result.stdout.str())


def test_xdist_workers_print_no_progress(project, quiet_children):
    result = project.runpytest(*RUN, "-n", "1", "--agent-chaos-progress-every=0.1", "--agent-chaos-progress=on")
    result.assert_outcomes(passed=2)
    assert "agentops: slow:" not in result.stdout.str() + result.stderr.str()


def test_an_xdist_worker_never_renders_progress():
    """A worker's config has ``workerinput``: no progress, whatever the mode (its output is not the terminal)."""
    from types import SimpleNamespace

    from pytest_agentops.pytest_plugin.options import ChaosOptions
    from pytest_agentops.pytest_plugin.progress import progress_mode

    opts = ChaosOptions(enabled=True, seed=1, session_seed=1, trials=None, profile=None, report=None, replay=None,
                        progress="on")
    assert progress_mode(SimpleNamespace(workerinput={"workerid": "gw0"}), opts) is None  # type: ignore[arg-type]


def test_a_progress_display_that_raises_is_switched_off_and_the_campaign_goes_on():
    scenario = Scenario(name="s", agent=lambda task, env: "done", check=lambda w, o: o == "done", trials=300,
                        seed=1, early_stop=False, expect={"completion_rate": ">= 0.5"})
    calls = []

    def broken(progress):
        calls.append(progress)
        raise RuntimeError("display broke")

    with pytest.warns(RuntimeWarning, match=r"progress display failed and was switched off .*display broke"):
        result = run_resolved(scenario, resolve_run(scenario, ()), progress=broken, progress_every_s=1e-6)
    assert len(calls) == 1 and len(result.records) == 300 and result.passed


def test_no_redraw_with_capture_off(pytester):
    """With -s what the agent prints moves the cursor behind the terminal writer's back: a TTY gets progress
    lines, never a redrawn one."""
    from _pytest import unraisableexception

    from pytest_agentops.pytest_plugin.options import resolve_options
    from pytest_agentops.pytest_plugin.progress import progress_mode

    # (as pytester does for its in-process runs: no full gc.collect() when these configs are unconfigured at
    # teardown; two per config, each walking the whole test process, took 3-5 s late in a suite run)
    no_gc = getattr(unraisableexception, "gc_collect_iterations_key", None)
    for args, expected in ((["-s"], "lines"), ([], "redraw")):
        config = pytester.parseconfigure(*args)
        if no_gc is not None:
            config.stash[no_gc] = 0
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        reporter.isatty = lambda: True
        assert progress_mode(config, resolve_options(config)) == expected, args


def test_a_bad_progress_interval_is_refused_before_the_campaign_takes_hold_of_anything():
    scenario = Scenario(name="s", agent=lambda task, env: "done", trials=3, seed=1)
    with pytest.raises(ValueError, match=r"progress_every_s=0 must be a number of seconds > 0"):
        run_resolved(scenario, resolve_run(scenario, ()), progress=print, progress_every_s=0)

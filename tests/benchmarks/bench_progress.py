"""What the live progress display costs a campaign: wall time with progress on vs off, side by side.

The campaign is ``bench_throughput``'s (a scripted tool-calling agent, faults at the ``mid`` profile, the
gate, meter, trace; about 2,000 trials/s here, so the display's share is as large as it gets: a real
agent's trials are slower and the display costs the same per second). Expectations of every judge kind
(a rate, a quantile, a betting mean, a zero-tolerance count) so that every running estimate is computed.

Two ways, each alternating the arms round by round (the order reversed every other round:
``alternation``), the median of the rounds compared:

- in process: ``run_resolved`` with no callback vs the plugin's own ``TerminalProgress`` (redraw mode,
  its terminal reporter a stand-in writing to ``os.devnull``) at the TTY's 0.5 s, and at 0.05 s (ten times
  as often: a stress arm, reported and not judged); with early stopping on (the campaign's judges are read)
  and off (display judges are fed every trial besides);
- through pytest: a generated test project run in a child ``pytest`` with ``--agent-chaos-progress=off`` vs
  ``on`` with ``--agent-chaos-progress-every=0.5`` (lines mode: the output is a pipe, capturing suspended
  for each write), the campaign's own wall time measured inside the test.

Goal: each arm at a cadence the plugin uses (redraw 0.5 s; lines 0.5 s, ten times the default 5 s) within
5% of the median with progress off. Each in-process arm also says how much
of its wall time was spent inside the progress code itself (the feed's ticks, the running estimates, the
rendering): a direct figure that a busy shared machine blurs less than a difference of medians. Usage:
``python tests/benchmarks/bench_progress.py [--quick] [--rounds N] [--trials N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

from alternation import alternate
from bench_throughput import TOOLS, Shop, check, scripted_agent

from pytest_agentops import Faults, Scenario
from pytest_agentops.engine.campaign import run_resolved
from pytest_agentops.engine.progress import ProgressFeed
from pytest_agentops.precedence import resolve_run
from pytest_agentops.pytest_plugin.progress import REDRAW_S, TerminalProgress

GOAL = 0.05
EXPECT = {"completion_rate": ">= 0.5", "tokens_per_task.p95": "<= 100000",
          "tokens_per_task.mean": "<= 50000, cap 100000", "unconfirmed_destructive_calls": "== 0"}


def scenario(trials: int, early_stop: bool) -> Scenario:
    # early stopping on: a threshold just under the agent's completion rate, undecided for thousands of trials
    expect = dict(EXPECT, completion_rate=">= 0.985") if early_stop else EXPECT
    return Scenario(name="progress", agent=scripted_agent, task="Refund order 42, then delete order 43.",
                    world=Shop, tools=TOOLS, check=check, faults=Faults.profile("mid"), trials=trials, seed=11,
                    early_stop=early_stop, expect=expect)


class _Devnull:
    """The stand-ins of pytest's terminal reporter, writer and capture manager that ``TerminalProgress`` uses:
    everything it renders is written to ``os.devnull``."""

    def __init__(self) -> None:
        self.file = open(os.devnull, "w")  # noqa: SIM115 (closed by close())
        self.width_of_current_line = 12
        self.fullwidth = 200
        self.writes = 0

    def write_raw(self, text: str, *, flush: bool = False) -> None:
        self.file.write(text)
        self.writes += 1
        if flush:
            self.file.flush()

    def get_plugin(self, name: str) -> Any:
        return self

    def get_terminal_writer(self) -> Any:
        return self

    def close(self) -> None:
        self.file.close()


def in_process(trials: int, early_stop: bool, every_s: float | None) -> tuple[float, float, int, float]:
    """(wall seconds of one campaign, CPU seconds of the process in it, progress writes, wall seconds spent
    in the progress code: the feed's ticks with the running estimates and the rendering) with no progress
    (``every_s`` None) or the plugin's redraw at ``every_s``."""
    sc = scenario(trials, early_stop)
    settings = resolve_run(sc, ())
    kwargs: dict[str, Any] = {}
    sink = _Devnull()
    if every_s is not None:
        config = SimpleNamespace(pluginmanager=sink, get_terminal_writer=sink.get_terminal_writer)
        kwargs = {"progress": TerminalProgress(config, "redraw"), "progress_every_s": every_s}  # type: ignore[arg-type]
    spent = [0.0]
    tick = ProgressFeed.tick

    def timed_tick(self: ProgressFeed, *args: Any) -> Any:
        t = time.perf_counter()
        try:
            return tick(self, *args)
        finally:
            spent[0] += time.perf_counter() - t

    start, cpu = time.perf_counter(), time.process_time()
    with mock.patch.object(ProgressFeed, "tick", timed_tick):
        result = run_resolved(sc, settings, **kwargs)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    sink.close()
    assert result.n == trials, (result.n, trials)  # no early stop: every arm runs the same trials
    return elapsed, cpu, sink.writes, spent[0]


PROJECT_TEST = '''
import json, os, time, sys
sys.path.insert(0, {bench_dir!r})
from bench_progress import scenario

def test_campaign(agent_chaos):
    start, cpu = time.perf_counter(), time.process_time()
    result = agent_chaos.run(scenario({trials}, early_stop=False))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    with open(os.environ["BENCH_PROGRESS_OUT"], "w") as f:
        json.dump({{"wall_s": elapsed, "cpu_s": cpu, "n": result.n}}, f)
'''


def through_pytest(project: Path, args: list[str]) -> tuple[float, float, int, float]:
    """(wall and CPU seconds of the campaign inside a child pytest, progress lines in its output)."""
    out = project / "timing.json"
    env = {**os.environ, "BENCH_PROGRESS_OUT": str(out)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--agent-chaos", "-q",
                           "test_bench.py", *args], cwd=project, env=env, capture_output=True, text=True,
                          timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"the child pytest failed:\n{done.stdout}\n{done.stderr}")
    lines = sum(1 for line in done.stdout.splitlines() if line.startswith("agentops: progress: "))
    timing = json.loads(out.read_text())
    return timing["wall_s"], timing["cpu_s"], lines, float("nan")  # (no look inside the child)


def compare(name: str, runs: dict[str, list[tuple[float, float, int, float]]]) -> bool:
    """Print each arm's medians (wall, CPU) against the arm "off", and the median of the rounds' paired ratios
    (each round runs every arm once, back to back); True when the wall median of every arm at a cadence the
    plugin uses is within the goal (a "stress" arm, ten times as often, is reported, not judged)."""
    wall = {arm: [r[0] for r in rs] for arm, rs in runs.items()}
    cpu = {arm: [r[1] for r in rs] for arm, rs in runs.items()}
    base, base_cpu = statistics.median(wall["off"]), statistics.median(cpu["off"])
    ok = True
    print(f"{name}: off median {base:.3f} s wall, {base_cpu:.3f} s CPU "
          f"(rounds {', '.join(f'{x:.2f}' for x in wall['off'])})")
    for arm, rs in runs.items():
        if arm == "off":
            continue
        median = statistics.median(wall[arm])
        cost = median / base - 1
        paired = statistics.median(a / b - 1 for a, b in zip(wall[arm], wall["off"], strict=True))
        cpu_cost = statistics.median(cpu[arm]) / base_cpu - 1
        judged = "stress" not in arm
        ok &= cost <= GOAL or not judged
        inside = statistics.median(r[3] / r[0] for r in rs)
        goal = f"goal <= +{GOAL:.0%}" if judged else "not judged"
        print(f"  {arm}: median {median:.3f} s wall, {cost:+.1%} vs off ({goal}); paired per round "
              f"{paired:+.1%}; CPU {cpu_cost:+.1%}; in the progress code {inside:.2%} of the wall time; progress "
              f"writes per campaign {statistics.median(r[2] for r in rs):.0f}; rounds "
              f"{', '.join(f'{x:.2f}' for x in wall[arm])}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials and rounds (a smoke run)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per arm (default 10, quick 4)")
    parser.add_argument("--trials", type=int, default=None, help="trials per campaign (default 3000, quick 1000)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (4 if args.quick else 10)
    trials = args.trials or (1000 if args.quick else 3000)
    for early_stop in (True, False):  # warm-up: imports, the sequential rules' boundaries (cached per size)
        in_process(trials, early_stop, None)
    ok = True
    for early_stop in (True, False):
        every = {"off": None, f"redraw {REDRAW_S:g} s": REDRAW_S, "stress: redraw 0.05 s": 0.05}
        runs: dict[str, list[tuple[float, float, int, float]]] = {arm: [] for arm in every}
        for arm in alternate(rounds, list(every)):  # side by side: each round runs every arm once
            runs[arm].append(in_process(trials, early_stop, every[arm]))
        ok &= compare(f"in process, {trials} trials, early stopping {'on' if early_stop else 'off'}", runs)
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "test_bench.py").write_text(textwrap.dedent(PROJECT_TEST.format(
            bench_dir=str(Path(__file__).resolve().parent), trials=trials)))
        pytest_arms = {"off": ["--agent-chaos-progress=off"],
                       "lines 0.5 s": ["--agent-chaos-progress=on", "--agent-chaos-progress-every=0.5"]}
        runs = {arm: [] for arm in pytest_arms}
        for arm in alternate(rounds, list(pytest_arms)):
            runs[arm].append(through_pytest(project, pytest_arms[arm]))
        ok &= compare(f"through pytest (lines mode), {trials} trials, early stopping off", runs)
    print("progress display cost: " + ("within" if ok else "OVER") + f" the goal of {GOAL:.0%}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

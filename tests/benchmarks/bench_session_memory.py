"""Peak memory of a pytest session of many campaigns whose failing trials keep long traces (runaway loops).

Each campaign's records keep at most ``engine.trial.CAMPAIGN_TRACE_EVENTS`` trace events (~130 MiB), but a
session keeps its campaigns until its reports are written at its end: past ``SESSION_TRACE_EVENTS`` in memory,
a finished campaign's traces move to the session's temporary file (``trace_spill``). Here a test runs
``--campaigns`` campaigns of 12 trials each whose agent calls a tool in a loop until the trace limit ends its
trial (an ``error``, so every trace is kept up to the campaign's budget: ~180,000 events a campaign), through
``pytest --agent-chaos`` in a fresh process; the peak resident set size (``ru_maxrss``) of the session with
``--campaigns`` against one campaign, median of ``--repeats``. Goal: <= 1.5x (the session's memory stays flat in
its number of campaigns). ``--reports`` writes the JSON and HTML reports too (they read every moved trace back).

Usage: ``python tests/benchmarks/bench_session_memory.py [--quick] [--campaigns N] [--repeats N] [--reports]``
(quick: 4 campaigns, one session of each size).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_RATIO = 1.5

PROJECT = '''
import pytest
from pytest_agentops import Scenario, tool

@tool
def ping(world, x: int = 0) -> int:
    return x

def agent(task, env):
    for i in range(100_000):
        env.tools["ping"](i)
    return "done"

@pytest.mark.parametrize("n", range({campaigns}))
def test_runaway(agent_chaos, n):
    agent_chaos.run(Scenario(name=f"runaway{{n}}", agent=agent, tools=[ping], trials=12, seed=n, faults="none",
                             check=lambda w, o: o == "done", early_stop=False))
'''

CONFTEST = '''
import resource

def pytest_unconfigure(config):
    print("PEAK_MIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
'''


def session(campaigns: int, reports: bool) -> tuple[float, float]:
    """(peak MiB, wall seconds) of one pytest session of ``campaigns`` runaway campaigns."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "test_runaway.py").write_text(PROJECT.format(campaigns=campaigns))
        (folder / "conftest.py").write_text(CONFTEST)
        extra = ["--agent-chaos-report=r.json", "--agent-chaos-html=r.html"] if reports else []
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "--agent-chaos",
                               *extra], cwd=folder, capture_output=True, text=True, timeout=1800)
        wall = time.perf_counter() - start
        if done.returncode != 0 or "PEAK_MIB" not in done.stdout:
            raise RuntimeError(f"the session failed (exit {done.returncode}):\n"
                               f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
        return float(done.stdout.rsplit("PEAK_MIB", 1)[1].split()[0]), wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=6, help="campaigns in the larger session (default 6)")
    parser.add_argument("--repeats", type=int, default=3, help="sessions of each size, alternating (median)")
    parser.add_argument("--reports", action="store_true", help="write the JSON and HTML reports too")
    parser.add_argument("--quick", action="store_true", help="4 campaigns, one session of each size")
    args = parser.parse_args(argv)
    if args.quick:
        args.campaigns, args.repeats = 4, 1
    one, many = [], []
    for _ in range(args.repeats):
        one.append(session(1, args.reports))
        many.append(session(args.campaigns, args.reports))
    peak1, peak_n = statistics.median(p for p, _ in one), statistics.median(p for p, _ in many)
    ratio = peak_n / peak1
    met = ratio <= GOAL_RATIO
    print(f"session peak RSS, {args.campaigns} runaway campaigns over 1{' with both reports' if args.reports else ''}: "
          f"{ratio:.2f}x ({peak1:.0f} -> {peak_n:.0f} MiB, medians of {args.repeats}; goal <= {GOAL_RATIO}: "
          f"{'met' if met else 'MISSED'}); wall {statistics.median(w for _, w in one):.1f} s and "
          f"{statistics.median(w for _, w in many):.1f} s")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

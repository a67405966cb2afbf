"""What an isolated agent's child process costs at its exit, and what an isolated trial costs in all.

Side by side, in alternation (``--repeats`` each): a Python process that has loaded what an isolated agent's
child loads (the child's harness module with numpy; then, as an agent would, an ``openai`` client when the SDK is
installed) exits with nothing frozen, and with what it loaded before the agent's imports frozen (``gc.freeze``,
as ``harness.child.__main__`` does); each timed from the moment it says it is done until the parent has reaped
it. Then an isolated campaign of a trivial agent, through the real child (``--trials`` trials, one at a time):
wall time per trial, the child's start-up, the trial and its exit. Reported, no goal (exit 0).

Usage: ``python tests/benchmarks/bench_isolated_exit.py [--repeats N] [--trials N] [--quick]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time

# the child's exit, measured from the parent: the process prints one byte when it is done, then exits
_EXIT = """
import gc
import sys
import pytest_agentops.harness.child.child_side
if sys.argv[1] == "frozen":
    gc.freeze()  # (as the child does once its harness is loaded, before the agent's code)
if {sdk!r}:  # (the agent's imports)
    import openai
    client = openai.OpenAI(api_key="x", base_url="http://127.0.0.1:9")
sys.stdout.write("x")
sys.stdout.flush()
"""


def exit_seconds(mode: str, sdk: bool) -> float:
    """Wall seconds from the process's "done" to its reaping (``mode``: ``plain`` or ``frozen``)."""
    proc = subprocess.Popen([sys.executable, "-c", _EXIT.format(sdk=sdk), mode], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.read(1)
    start = time.perf_counter()
    proc.wait()
    return time.perf_counter() - start


def trivial_agent(task: str, env: object) -> str:
    return task


def isolated_trial_seconds(trials: int) -> float:
    """Wall seconds per trial of an isolated campaign of ``trivial_agent``, one trial at a time."""
    from bench_isolated_exit import trivial_agent as importable  # (the child imports it by this name)

    from pytest_agentops import Faults, Scenario, run_campaign

    scenario = Scenario(name="isolated", agent=importable, task="t", check=lambda world, out: out == "t",
                        faults=Faults.none(), trials=trials, seed=1, concurrency=1, early_stop=False,
                        isolation="process")
    start = time.perf_counter()
    result = run_campaign(scenario)
    took = time.perf_counter() - start
    assert result.outcome_counts.get("completed") == trials, result.outcome_counts
    return took / trials


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="5 repeats, 8 trials")
    args = parser.parse_args(argv)
    repeats, trials = (5, 8) if args.quick else (args.repeats, args.trials)
    loads = [False] + ([True] if importlib.util.find_spec("openai") is not None else [])
    for sdk in loads:
        times: dict[str, list[float]] = {"plain": [], "frozen": []}
        for _ in range(repeats):
            for mode in times:
                times[mode].append(exit_seconds(mode, sdk))
        plain, frozen = (statistics.median(times[m]) for m in ("plain", "frozen"))
        loaded = "the child's harness" + (", numpy and an openai client" if sdk else " and numpy")
        print(f"isolated child's exit with {loaded} loaded, median of {repeats} in alternation (min-max):")
        for mode, label in (("plain", "nothing frozen"), ("frozen", "harness frozen")):
            values = times[mode]
            print(f"  {label:20s} {statistics.median(values) * 1e3:7.1f} ms ({min(values) * 1e3:.1f}-"
                  f"{max(values) * 1e3:.1f})")
        print(f"  saved {(plain - frozen) * 1e3:.1f} ms an attempt; frozen / plain {frozen / plain:.2f}")
    per_trial = isolated_trial_seconds(trials)
    print(f"isolated campaign of a trivial agent: {per_trial * 1e3:.0f} ms wall a trial ({trials} trials, "
          "one at a time: start-up, trial and exit)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What an isolated agent's child process costs to start and at its exit, and what an isolated trial costs in all.

Side by side, in alternation (``--repeats`` each):

- start-up: a Python process that imports what an isolated agent's child imports (its harness module); one that
  also imports freezegun, ``importlib.abc``, the ``llm`` package and every module of ``settings``, as the child
  did before it took the real clock functions without freezegun, left the others to the trials that need them
  and the settings package resolved its names lazily; and one that imports
  numpy's ``random`` and the statistics besides, as the child did before it left numpy to the agent; each timed
  from its start to its reaping;
- exit: a process that has loaded the child's harness, then (as an agent would) numpy, and an ``openai`` client
  when the SDK is installed, exits with nothing frozen, and with what it loaded before the agent's imports
  frozen (``gc.freeze``, as ``harness.child.__main__`` does); each timed from the moment it says it is done
  until the parent has reaped it;
- an isolated campaign through the real child (``--trials`` trials, one at a time) of a trivial agent and of
  one that imports numpy and draws from it: wall time per trial, the child's start-up, the trial and its exit.

Reported, no goal (exit 0).

Usage: ``python tests/benchmarks/bench_isolated_exit.py [--repeats N] [--trials N] [--quick]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time

from alternation import alternate

# the child's start-up, measured from the parent: its harness, or its harness with what it loaded before
_START = """
import sys
import pytest_agentops.harness.child.child_side
if sys.argv[1] in ("with-freezegun", "with-numpy"):
    import freezegun
    import importlib.abc
    import pytest_agentops.llm
    import pytest_agentops.settings as settings
    for name in settings.__all__:
        getattr(settings, name)  # (every module of settings, as the package loaded them all)
if sys.argv[1] == "with-numpy":
    import numpy.random
    import pytest_agentops.stats
"""

# the child's exit, measured from the parent: the process prints one byte when it is done, then exits
_EXIT = """
import gc
import sys
import pytest_agentops.harness.child.child_side
if sys.argv[1] == "frozen":
    gc.freeze()  # (as the child does once its harness is loaded, before the agent's code)
import numpy  # (the agent's imports)
if {sdk!r}:
    import openai
    client = openai.OpenAI(api_key="x", base_url="http://127.0.0.1:9")
sys.stdout.write("x")
sys.stdout.flush()
"""


def start_seconds(mode: str) -> float:
    """Wall seconds from starting the process to its reaping (``mode``: ``harness``, ``with-freezegun`` or
    ``with-numpy``)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", _START, mode], check=True)
    return time.perf_counter() - start


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


def numpy_agent(task: str, env: object) -> str:
    import numpy as np

    return task if np.random.rand() < 2 else ""


def isolated_trial_seconds(trials: int, agent: str = "trivial_agent") -> float:
    """Wall seconds per trial of an isolated campaign of ``agent`` (a function here), one trial at a time."""
    import bench_isolated_exit  # (the child imports the agent by this name)

    from pytest_agentops import Faults, Scenario, run_campaign

    importable = getattr(bench_isolated_exit, agent)
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
    starts: dict[str, list[float]] = {"harness": [], "with-freezegun": [], "with-numpy": []}
    for mode in alternate(repeats, list(starts)):
        starts[mode].append(start_seconds(mode))
    print(f"isolated child's start-up (a process importing its harness), median of {repeats} in alternation:")
    for mode, label in (("harness", "its harness"), ("with-freezegun", "and freezegun, settings"),
                        ("with-numpy", "and numpy, statistics")):
        print(f"  {label:22s} {_ms(starts[mode])}")
    harness, freezegun, numpy = (statistics.median(starts[m]) for m in ("harness", "with-freezegun", "with-numpy"))
    print(f"  without freezegun, importlib.abc, llm and all of settings: saved {(freezegun - harness) * 1e3:.1f} ms "
          f"an attempt, {harness / freezegun:.2f}x; without numpy too: {(numpy - harness) * 1e3:.1f} ms, "
          f"{harness / numpy:.2f}x")
    loads = [False] + ([True] if importlib.util.find_spec("openai") is not None else [])
    for sdk in loads:
        times: dict[str, list[float]] = {"plain": [], "frozen": []}
        for mode in alternate(repeats, list(times)):
            times[mode].append(exit_seconds(mode, sdk))
        plain, frozen = (statistics.median(times[m]) for m in ("plain", "frozen"))
        loaded = "the child's harness, then numpy" + (" and an openai client" if sdk else "")
        print(f"isolated child's exit with {loaded} loaded, median of {repeats} in alternation (min-max):")
        for mode, label in (("plain", "nothing frozen"), ("frozen", "harness frozen")):
            print(f"  {label:20s} {_ms(times[mode])}")
        print(f"  saved {(plain - frozen) * 1e3:.1f} ms an attempt; frozen / plain {frozen / plain:.2f}")
    rounds = max(1, repeats // 3)
    per_trial: dict[str, list[float]] = {"trivial_agent": [], "numpy_agent": []}
    for agent in alternate(rounds, list(per_trial)):
        per_trial[agent].append(isolated_trial_seconds(trials, agent))
    print(f"isolated campaigns ({trials} trials one at a time: start-up, trial and exit), median of {rounds} "
          "in alternation:")
    for agent, label in (("trivial_agent", "a trivial agent"), ("numpy_agent", "one importing numpy")):
        print(f"  {label:22s} {_ms(per_trial[agent])} wall a trial")
    return 0


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e3:7.1f} ms ({min(values) * 1e3:.1f}-{max(values) * 1e3:.1f})"


if __name__ == "__main__":
    raise SystemExit(main())

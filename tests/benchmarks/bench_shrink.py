"""Shrinking a failing trial of the bundled reference agents to the faults it needs (``shrink_trial``).

For each bundled scenario whose campaign fails (the naive agents, xfail in the main job), the first
``--trials`` failing trials are shrunk one by one, and the script prints per scenario: the faults that fired,
the faults kept, the re-runs spent and the seconds taken (median and max over the trials). Goal: every
shrink finishes in <= 5 s (issue: "shrinking a failing trial of the demo agent finishes in <= 5 s").

Usage: ``python tests/benchmarks/bench_shrink.py [--trials N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from pytest_agentops import run_campaign, shrink_trial
from pytest_agentops.scenario_file import load_scenarios

ROOT = Path(__file__).resolve().parents[2]
GOAL_S = 5.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5, help="failing trials shrunk per scenario")
    args = parser.parse_args(argv)
    worst = 0.0
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        for scenario in load_scenarios(path):
            result = run_campaign(scenario, early_stop=False)
            failing = [r.index for r in result.records if r.outcome != "completed" or r.violations]
            if result.passed or not failing:
                continue
            took, kept, fired, runs = [], [], [], []
            for index in failing[: args.trials]:
                start = time.perf_counter()
                found = shrink_trial(scenario, index, max_runs=64)
                took.append(time.perf_counter() - start)
                if found is not None:
                    kept.append(len(found.faults))
                    fired.append(found.fired)
                    runs.append(found.runs)
            worst = max(worst, *took)
            print(f"{scenario.name:28s} {len(took)} trial(s): faults fired {fired}, kept {kept}, re-runs {runs}; "
                  f"{statistics.median(took):.3f} s median, {max(took):.3f} s max")
    ok = worst <= GOAL_S
    print(f"slowest shrink: {worst:.3f} s (goal <= {GOAL_S:g} s): {'ok' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""A campaign's fixed cost: the process CPU of a one-trial campaign of the shared workload (``bench_peers.py``,
all layers on), and of its look at the harness's own code (``process.own_code``: some 5,000 functions and methods
at the campaign's start and end, which an agent may have reassigned).

Every test of a chaos suite runs at least one campaign, and a replay command runs a one-trial campaign, so this
cost is paid once per test on top of the trials. Reported, no goal.

Usage: ``python tests/benchmarks/bench_campaign_fixed.py [--campaigns N] [--repeats N]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_peers import _agentops_scenario


def cpu_per_campaign(scenario, campaigns: int) -> float:
    """Milliseconds of process CPU per one-trial campaign, ``campaigns`` of them one after another."""
    from pytest_agentops import run_campaign

    start = time.process_time()
    for seed in range(campaigns):
        run_campaign(scenario, seed=seed, trials=1)
    return (time.process_time() - start) / campaigns * 1e3


def own_code_look() -> tuple[int, float]:
    """(pieces of code kept, milliseconds of CPU of one campaign's two looks at them: at its start, at its end)."""
    from pytest_agentops.process import own_code

    kept = own_code._fresh()
    start = time.process_time()
    for _ in range(200):
        own_code._fresh()
        own_code.put_back(kept)
    return len(kept), (time.process_time() - start) / 200 * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    scenario = _agentops_scenario("layers", 1)
    cpu_per_campaign(scenario, 3)  # warm-up (imports, the rules' caches)
    campaigns = [cpu_per_campaign(scenario, args.campaigns) for _ in range(args.repeats)]
    looks = [own_code_look() for _ in range(args.repeats)]
    print(f"campaign fixed cost: {args.campaigns} one-trial campaigns of the shared workload, process CPU, median "
          f"of {args.repeats} (min-max)")
    low, high = min(campaigns), max(campaigns)
    print(f"  a one-trial campaign     {statistics.median(campaigns):6.2f} ms ({low:.2f}-{high:.2f})")
    times = [t for _, t in looks]
    print(f"  its look at its own code {statistics.median(times):6.2f} ms ({min(times):.2f}-{max(times):.2f}) over "
          f"{looks[0][0]:,} pieces of code")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

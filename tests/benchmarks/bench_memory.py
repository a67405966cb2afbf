"""Peak memory of a campaign and its JSON report at 10k and 100k trials (each size in a fresh process).

The shared workload of ``bench_peers.py`` (five instant tools, retries, 10% faults), all layers off but the
fault layer, ``run_campaign`` then ``write_report``; the peak resident set size (``ru_maxrss``) of the
process, the imports included. Goals (issue 15): the peak at 100k trials <= 1.5x the peak at 10k, and the
100k-trial campaign with its report within 5 s of wall time. Exit 0 only when both hold.

Usage: ``python tests/benchmarks/bench_memory.py [--quick]`` (quick: 2k vs 20k trials, the ratio goal only).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOAL_RATIO = 1.5
GOAL_100K_S = 5.0


def one(trials: int) -> None:
    """In the child: run the campaign, write its report, print peak RSS (MiB), seconds and report size."""
    sys.path.insert(0, str(HERE))
    from bench_peers import _agentops_scenario

    from pytest_agentops import run_campaign
    from pytest_agentops.report.json_report import write_report

    scenario = _agentops_scenario("faults", trials)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = run_campaign(scenario)
        path = write_report(Path(tmp) / "report.json", [result])
        seconds = time.perf_counter() - start
        size = path.stat().st_size
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"trials": trials, "peak_mib": peak, "seconds": seconds, "report_bytes": size,
                      "completed": result.outcome_counts.get("completed", 0)}))


def measure(trials: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--one", str(trials)], capture_output=True, text=True,
                          timeout=1800, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2k vs 20k trials")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        one(args.one)
        return 0
    small, large = (2_000, 20_000) if args.quick else (10_000, 100_000)
    a, b = measure(small), measure(large)
    ratio = b["peak_mib"] / a["peak_mib"]
    for m in (a, b):
        print(f"memory: {m['trials']:,} trials: peak RSS {m['peak_mib']:.0f} MiB, {m['seconds']:.1f} s "
              f"(campaign and report), report {m['report_bytes'] / m['trials']:.0f} B per trial")
    ok_ratio = ratio <= GOAL_RATIO
    ok_time = args.quick or b["seconds"] <= GOAL_100K_S
    print(f"  {'met   ' if ok_ratio else 'MISSED'} peak at {large:,} / peak at {small:,} <= {GOAL_RATIO}: "
          f"{ratio:.2f}x")
    if not args.quick:
        print(f"  {'met   ' if ok_time else 'MISSED'} {large:,} trials and report within {GOAL_100K_S} s: "
              f"{b['seconds']:.1f} s")
    return 0 if ok_ratio and ok_time else 1


if __name__ == "__main__":
    raise SystemExit(main())

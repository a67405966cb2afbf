"""Machine instructions per trial, counted by valgrind: a figure that does not move with the machine's load.

Wall and CPU times on the shared 2-core machine swing by 20-40% between runs, so a change worth 1-3% of a
trial cannot be seen in them. This script runs the shared workload of ``bench_peers.py`` (all layers on),
trial after trial in one thread as ``bench_layers.py`` does, under ``valgrind --tool=callgrind``, once with
``--trials`` + 100 trials and once with 100, and prints the difference per trial: the instructions a trial
executes, start-up and imports left out. With ``PYTHONHASHSEED=0`` and one OpenBLAS thread (numpy's pool
otherwise spins for a timing-dependent while, and valgrind counts it) two runs of one tree agree to within a
few instructions per trial. Reported, no goal; skipped (exit 0, with the reason) where valgrind is missing.

``--route campaign`` counts a whole ``run_campaign`` of the same trials instead (early stopping off): the
runner's share too (scheduling on a worker thread, the record store, the result's metrics); threads that wait
on each other make that count move by a little more between runs.

Usage: ``python tests/benchmarks/bench_instructions.py [--trials N] [--variant layers|faults|idle]
[--route trial|campaign]``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# the trials run under valgrind (a child process: ``python bench_instructions.py --run VARIANT N``)
_RUN = """
import sys
sys.path.insert(0, {here!r})
from bench_layers import _layers
from pytest_agentops.engine.trial import Trial

_, layers = _layers({variant!r}, 10)
for index in range({trials}):
    Trial(layers, index, 1).run_sync()
"""


# the same trials as one campaign, through ``run_campaign``
_RUN_CAMPAIGN = """
import sys
sys.path.insert(0, {here!r})
from bench_peers import _agentops_scenario
from pytest_agentops import run_campaign

run_campaign(_agentops_scenario({variant!r}, {trials}))
"""


def instructions(variant: str, trials: int, route: str = "trial") -> int:
    """Instructions executed by a process that imports everything and runs ``trials`` trials."""
    env = dict(os.environ, PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1")
    code = (_RUN if route == "trial" else _RUN_CAMPAIGN).format(here=str(HERE), variant=variant, trials=trials)
    done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c",
                           code], capture_output=True, text=True, env=env, timeout=1800)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"valgrind run failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--variant", default="layers", choices=("layers", "faults", "idle"))
    parser.add_argument("--route", default="trial", choices=("trial", "campaign"))
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("instructions: SKIPPED (valgrind is not installed; apt-get install valgrind)")
        return 0
    base = instructions(args.variant, 100, args.route)
    more = instructions(args.variant, 100 + args.trials, args.route)
    how = "run one by one in one thread" if args.route == "trial" else "in one run_campaign"
    print(f"instructions: {(more - base) / args.trials:,.0f} per trial of the shared workload ({args.variant}; "
          f"{args.trials} trials {how}, callgrind, imports and start-up left out)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Run every ``bench_*.py`` script in this folder, one after another, each in its own Python process.

Each script prints the ratios it measured in one run and exits non-zero when it misses its goal. This
runner prints their output under a header, then a summary line per script, and exits 1 if any failed.
Arguments are passed through to every script; ``--quick`` is passed only to scripts that mention it.
``-k TEXT`` runs only the scripts whose file name contains TEXT.

Usage: ``python tests/benchmarks/run_all.py [--quick] [-k TEXT] [--timeout SECONDS]`` (tox: ``tox -e bench``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="scaled-down runs, for scripts that support it")
    parser.add_argument("-k", dest="select", default="", help="only scripts whose name contains this")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per script (default 900)")
    args, passthrough = parser.parse_known_args(argv)
    scripts = sorted(p for p in HERE.glob("bench_*.py") if args.select in p.name)
    if not scripts:
        print(f"no bench_*.py script in {HERE} matches {args.select!r}")
        return 1
    summary: list[str] = []
    failed = 0
    for script in scripts:
        extra = list(passthrough)
        if args.quick and "--quick" in script.read_text(encoding="utf-8"):
            extra.append("--quick")
        print(f"== {script.name} {' '.join(extra)}".rstrip(), flush=True)
        start = time.perf_counter()
        try:
            code = subprocess.run([sys.executable, str(script), *extra], cwd=HERE.parent.parent,
                                  timeout=args.timeout).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
        took = time.perf_counter() - start
        ok = code == 0
        failed += not ok
        summary.append(f"{'ok  ' if ok else 'FAIL'} {script.name} ({took:.1f} s{'' if ok else f', exit {code}'})")
    print("== summary")
    print("\n".join(summary))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

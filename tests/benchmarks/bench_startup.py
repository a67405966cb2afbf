"""What an installed but unused plugin costs at start-up: ``pytest --collect-only -q`` on a small plain project
(no agent, no scenario) with the plugin loaded, against the same command with ``-p no:agentops``.

Both commands run in a lean virtualenv that has only this package and its core dependencies installed (made
once under ``--venv``, default a folder in the system temp directory; ``--fresh`` rebuilds it), so the
figure is the plugin's own cost and not that of other pytest plugins a development environment carries.
The two commands alternate (A B A B ...) ``--repeat`` times each; printed: the median CPU time (user +
system, the kernel's accounting of each finished child) and wall time of each, the medians of the pairwise
differences, and whether the CPU difference is within the goal (<= 30 ms). The children write and read
bytecode caches as an ordinary install does, whatever ``PYTHONDONTWRITEBYTECODE`` says here: with it set,
every run compiles the imported modules again, and the plugin side also pays for compiling its own (+40-70 ms
of CPU on the CI machine, which is not what a user's installed plugin costs). CPU time is the figure judged:
on a shared machine a child's wall time also counts the time it waited for a core. Also printed: which
heavy modules loading the entry point imports (none is expected).

Usage: ``python tests/benchmarks/bench_startup.py [--repeat 40] [--venv DIR] [--fresh]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

from alternation import alternate

ROOT = Path(__file__).resolve().parents[2]
GOAL_MS = 30.0
HEAVY = ("numpy", "freezegun", "sqlite3", "ssl", "asyncio", "httpx", "respx", "yaml", "pytest_agentops.engine",
         "pytest_agentops.harness", "pytest_agentops.settings")


def lean_venv(where: Path, fresh: bool) -> Path:
    """A virtualenv with only this package (and its core dependencies) installed; its python."""
    python = where / "bin" / "python"
    marker = where / ".agentops-source"
    if fresh and where.exists():
        shutil.rmtree(where)
    if not python.exists() or not marker.exists() or marker.read_text() != str(ROOT):
        if where.exists():
            shutil.rmtree(where)
        print(f"building a lean virtualenv in {where} (once)", flush=True)
        venv.create(where, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-e", str(ROOT)], check=True)
        marker.write_text(str(ROOT))
    return python


def plain_project(where: Path) -> Path:
    """A small project of ordinary tests that uses nothing of the plugin."""
    where.mkdir(parents=True, exist_ok=True)
    for i in range(5):
        (where / f"test_plain_{i}.py").write_text(
            "import pytest\n\n\n" + "".join(f"def test_{j}():\n    assert {j} + 1 == {j + 1}\n\n\n" for j in range(10))
            + "@pytest.mark.parametrize('x', range(5))\ndef test_param(x):\n    assert x >= 0\n")
    return where


#: the children's environment: bytecode cached as in an ordinary install (see the module's docstring)
CHILD_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}


def timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one run of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env=CHILD_ENV)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "agentops-bench-startup-venv")
    parser.add_argument("--fresh", action="store_true", help="rebuild the lean virtualenv")
    args = parser.parse_args()
    python = lean_venv(args.venv, args.fresh)
    loaded = subprocess.run([str(python), "-c", "import sys, pytest_agentops.pytest_plugin; "
                             f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"],
                            capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        project = plain_project(Path(tmp) / "plain")
        env_command = [str(python), "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
        with_plugin, without = env_command, [*env_command, "-p", "no:agentops"]
        for _ in range(2):  # warm the file-system cache and the bytecode of both
            timed(with_plugin, project)
            timed(without, project)
        a, b = [], []
        for arm in alternate(args.repeat, ("with", "without")):  # (the order reversed every other pair)
            (a if arm == "with" else b).append(timed(with_plugin if arm == "with" else without, project))
    print(f"python {sys.version.split()[0]} on {os.cpu_count()} cores; {args.repeat} runs each, alternating (the "
          "order reversed every other pair)")
    added_ms = {}
    for i, what in enumerate(("CPU", "wall")):
        xs, ys = [x[i] for x in a], [y[i] for y in b]
        added_ms[what] = statistics.median([x - y for x, y in zip(xs, ys, strict=True)]) * 1000
        for label, values in (("plugin installed", xs), ("-p no:agentops", ys)):
            median = statistics.median(values) * 1000
            print(f"{what:>4} pytest --collect-only -q, {label + ':':18} median {median:7.1f} ms "
                  f"(min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f})")
        print(f"{what:>4} added by the installed plugin (median of the pairwise differences): "
              f"{added_ms[what]:+.1f} ms{f' (goal <= {GOAL_MS:g})' if what == 'CPU' else ''}")
    added = added_ms["CPU"]
    print(f"heavy modules imported by loading the entry point: {loaded or 'none'}")
    ok = added <= GOAL_MS and not loaded
    print("goal met" if ok else "GOAL MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Peak memory of a campaign and its JSON report at 10k and 100k trials (each size in a fresh process).

The shared workload of ``bench_peers.py`` (five instant tools, retries, 10% faults), all layers off but the
fault layer, ``run_campaign`` then ``write_report``; the peak resident set size (``ru_maxrss``) of the
process, the imports included. Goals (issue 15): the peak at 100k trials <= 1.5x the peak at 10k, and the
100k-trial campaign with its report within 5 s of wall time. Exit 0 only when both hold.

The same campaign is also run as users meet it, through pytest: ``pytest --agent-chaos`` on a test that runs
it with the ``agent_chaos`` fixture, writing the JSON and the HTML report (``--agent-chaos-report``,
``--agent-chaos-html``), in the pytest process and in a pytest-xdist worker (``-n 2``: the peak is the largest
of the controller's and the workers'); on each route the peak at 100k trials against the peak at 10k must hold
the same ratio goal.

Usage: ``python tests/benchmarks/bench_memory.py [--quick] [--repeats N]`` (quick: 2k vs 20k trials, the ratio
goals only; repeats: each size N times, alternating, medians shown). The peak after the imports and after the
campaign (its result built) are shown too, and the bytes per trial the result's record columns take.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOAL_RATIO = 1.5
GOAL_100K_S = 5.0


def one(trials: int) -> None:
    """In the child: run the campaign, write its report, print peak RSS (MiB: after the imports, after the
    campaign, after the report), seconds and report size, and what the result's records take."""
    sys.path.insert(0, str(HERE))
    from bench_peers import _agentops_scenario

    import pytest_agentops
    from pytest_agentops import run_campaign
    from pytest_agentops.report.json_report import write_report

    scenario = _agentops_scenario("faults", trials)
    imports = _peak_mib()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = run_campaign(scenario)
        campaign_s, campaign_peak = time.perf_counter() - start, _peak_mib()
        path = write_report(Path(tmp) / "report.json", [result])
        seconds = time.perf_counter() - start
        size = path.stat().st_size
    records = result.records
    columns = records.memory_bytes() if hasattr(records, "memory_bytes") else None  # (an older tree: a tuple)
    print(json.dumps({"trials": trials, "peak_mib": _peak_mib(), "imports_mib": imports,
                      "campaign_peak_mib": campaign_peak, "seconds": seconds, "campaign_s": campaign_s,
                      "report_bytes": size, "columns_bytes": columns,
                      "package": str(Path(pytest_agentops.__file__).parent),
                      "completed": result.outcome_counts.get("completed", 0)}))


def one_pytest(trials: int, xdist: bool = False) -> None:
    """In the child: the campaign through ``pytest --agent-chaos`` (in this process; with ``xdist``, in one of two
    pytest-xdist workers), both reports written; print the peak RSS (MiB, the largest of this process and its
    workers), seconds and the reports' sizes."""
    import pytest

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "test_memory.py").write_text(
            f"import sys\nsys.path.insert(0, {str(HERE)!r})\nfrom bench_peers import _agentops_scenario\n\n\n"
            f"def test_campaign(agent_chaos):\n    agent_chaos.run(_agentops_scenario('faults', {trials}))\n",
            encoding="utf-8")
        start = time.perf_counter()
        code = pytest.main([tmp, "-q", "-p", "no:cacheprovider", "--agent-chaos", f"--rootdir={tmp}",
                            f"--agent-chaos-report={tmp}/report.json", f"--agent-chaos-html={tmp}/report.html",
                            *(["-n", "2"] if xdist else [])])
        seconds = time.perf_counter() - start
        sizes = [(Path(tmp) / name).stat().st_size for name in ("report.json", "report.html")]
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"trials": trials, "peak_mib": max(_peak_mib(), workers), "seconds": seconds, "exit": int(code),
                      "report_bytes": sizes[0], "html_bytes": sizes[1]}))


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(trials: int, route: str = "--one") -> dict:
    done = subprocess.run([sys.executable, __file__, route, str(trials)], capture_output=True, text=True,
                          timeout=1800, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _median(runs: list[dict]) -> dict:
    """Each figure's median over the repeats (the first run's other fields)."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, float):
            out[key] = statistics.median(r[key] for r in runs)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2k vs 20k trials")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each size, alternating (medians shown)")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--one-pytest", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--one-pytest-xdist", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        one(args.one)
        return 0
    if args.one_pytest is not None or args.one_pytest_xdist is not None:
        one_pytest(args.one_pytest or args.one_pytest_xdist, xdist=args.one_pytest_xdist is not None)
        return 0
    small, large = (2_000, 20_000) if args.quick else (10_000, 100_000)
    runs: dict[int, list[dict]] = {small: [], large: []}
    routes = {"through pytest": "--one-pytest", "through pytest -n 2": "--one-pytest-xdist"}
    through: dict[str, dict[int, list[dict]]] = {name: {small: [], large: []} for name in routes}
    for _ in range(max(1, args.repeats)):
        for trials in runs:
            runs[trials].append(measure(trials))
            for name, route in routes.items():
                through[name][trials].append(measure(trials, route))
    a, b = _median(runs[small]), _median(runs[large])
    ratios = sorted(y["peak_mib"] / x["peak_mib"] for x, y in zip(runs[small], runs[large], strict=True))
    ratio = statistics.median(ratios)
    print(f"memory: package {a['package']}, median of {len(ratios)} run(s) of each size")
    for m in (a, b):
        columns = f", records {m['columns_bytes'] / m['trials']:.0f} B per trial" if m["columns_bytes"] else ""
        print(f"memory: {m['trials']:,} trials: peak RSS {m['peak_mib']:.0f} MiB (imports {m['imports_mib']:.0f}, "
              f"campaign {m['campaign_peak_mib']:.0f}), {m['seconds']:.1f} s (campaign {m['campaign_s']:.1f} s and "
              f"report), report {m['report_bytes'] / m['trials']:.0f} B per trial{columns}")
    grown = (b["peak_mib"] - a["peak_mib"]) * 2 ** 20 / (large - small)
    print(f"  peak growth per trial past {small:,}: {grown:.0f} B")
    ok_ratio = ratio <= GOAL_RATIO
    ok_time = args.quick or b["seconds"] <= GOAL_100K_S
    spread = f" ({ratios[0]:.2f}-{ratios[-1]:.2f})" if len(ratios) > 1 else ""
    print(f"  {'met   ' if ok_ratio else 'MISSED'} peak at {large:,} / peak at {small:,} <= {GOAL_RATIO}: "
          f"{ratio:.2f}x{spread}")
    for name, sizes in through.items():
        pa, pb = _median(sizes[small]), _median(sizes[large])
        for m in (pa, pb):
            print(f"memory {name} (JSON and HTML reports): {m['trials']:,} trials: peak RSS {m['peak_mib']:.0f} MiB, "
                  f"{m['seconds']:.1f} s, exit {m['exit']}, report {m['report_bytes'] / m['trials']:.0f} B and HTML "
                  f"{m['html_bytes'] / m['trials']:.0f} B per trial")
        p_ratios = sorted(y["peak_mib"] / x["peak_mib"] for x, y in zip(sizes[small], sizes[large], strict=True))
        p_ratio = statistics.median(p_ratios)
        ok_route = p_ratio <= GOAL_RATIO and pa["exit"] == pb["exit"] == 0
        p_spread = f" ({p_ratios[0]:.2f}-{p_ratios[-1]:.2f})" if len(p_ratios) > 1 else ""
        print(f"  {'met   ' if ok_route else 'MISSED'} {name}, peak at {large:,} / peak at {small:,} <= "
              f"{GOAL_RATIO}: {p_ratio:.2f}x{p_spread}")
        ok_ratio = ok_ratio and ok_route
    if not args.quick:
        print(f"  {'met   ' if ok_time else 'MISSED'} {large:,} trials and report within {GOAL_100K_S} s: "
              f"{b['seconds']:.1f} s")
    return 0 if ok_ratio and ok_time else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Per-run cost of pytest-agentops beside its peers and a lean bare loop, on one shared workload, in one run.

The workload (``peer_workload.py``): five instant tools, a scripted agent that retries a failed call up to 2
times, 10% of tool calls failed, 2,000 runs. It is run by

- bare: a plain loop calling the same agent and tools with the same 10% faults, no harness (its own cost
  must stay under 0.01 ms per run, or the ratios say nothing);
- pytest-agentops, faults only (the tool-fault layer and the layers that are always on; network allowed);
- pytest-agentops, all layers (plus the confirmation gate enforced, a budget, escalation triggers, a
  trajectory rule, the memory checkpoint store, the hermetic network);
- pytest-agentops, all layers with verdicts (an expectation judged) and the JSON report written;
- agentfuzz, balagan-agent and agent-chaos, each installed by this script from the package registry into a
  venv of its own (a cache folder, re-used), each timing its own runs after a warm-up; a peer that does not
  install (or needs a Python this machine lacks) is skipped with the reason.

Each repeat runs every contender once, one after another (the order reversed every other repeat:
``alternation``), so the ratios of a repeat come from the same minutes of a shared machine and a drift within
the run falls on every contender alike; the figures printed are medians over the repeats (min-max beside them).
Goals (issue 15): all layers <= 0.06 ms per run, at least 2x lighter than agent-chaos and within 2.5x of
agentfuzz; with verdicts and the JSON report <= 0.07 ms; the bare loop under 0.01 ms. Exit 0 only when
every goal holds (a skipped peer's goal counts as not shown, so not held).

Usage: ``python tests/benchmarks/bench_peers.py [--quick] [--repeats N] [--runs N] [--no-peers]``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from alternation import alternate  # noqa: E402
from peer_workload import RATE, RUNS, TOOL_FUNCTIONS, TOOL_NAMES, Failed, World, script  # noqa: E402

#: name -> (requirement, driver, the oldest Python it installs on)
PEERS = {
    "agentfuzz": ("agentfuzz==0.4.0", "agentfuzz_driver.py", (3, 10)),
    "balagan-agent": ("balagan-agent==0.5.0", "balagan_driver.py", (3, 10)),
    "agent-chaos": ("agent-chaos==0.1.3", "agent_chaos_driver.py", (3, 12)),
}
CACHE = Path(os.environ.get("AGENTOPS_BENCH_CACHE", Path.home() / ".cache" / "pytest-agentops-bench")) / "peers"

GOAL_ALL_LAYERS_MS = 0.06
GOAL_REPORT_MS = 0.07
GOAL_BARE_MS = 0.01
GOAL_VS_AGENT_CHAOS = 0.5  # all layers / agent-chaos
GOAL_VS_AGENTFUZZ = 2.5  # all layers / agentfuzz


# -- the bare loop -------------------------------------------------------------------------------------------
def bare(runs: int, seed: int = 1) -> tuple[float, int]:
    """Seconds for ``runs`` runs of the agent over fresh worlds, 10% of calls failed, no harness."""
    rng = random.Random(seed)
    draw = rng.random
    completed = 0
    start = time.perf_counter()
    for _ in range(runs):
        tools = {name: functools.partial(fn, World()) for name, fn in zip(TOOL_NAMES, TOOL_FUNCTIONS, strict=True)}

        def call(name: str, x: int, tools: dict = tools) -> int:
            if draw() < RATE:
                raise Failed(name)
            return tools[name](x)

        completed += script(call) == len(TOOL_NAMES)
    return time.perf_counter() - start, completed


# -- pytest-agentops -----------------------------------------------------------------------------------------
def _agentops_scenario(variant: str, runs: int) -> Any:
    from pytest_agentops import Budget, Escalation, Faults, Rule, Scenario, Trajectory, tool

    tools = [tool(fn) for fn in TOOL_FUNCTIONS]

    def agent(task: str, env: Any) -> int:
        env_tools = env.tools
        return script(lambda name, x: env_tools[name](x))

    base = dict(name=f"peers-{variant}", agent=agent, task="run the tools", world=World, tools=tools,
                check=lambda world, output: output == len(TOOL_NAMES), faults=Faults(rate=RATE), trials=runs,
                seed=1, early_stop=False)
    if variant == "faults":
        return Scenario(**base, network="allow")
    if variant == "idle":  # all layers, an agent that calls no tool: what a trial costs before its calls
        base.update(agent=lambda task, env: 0, check=lambda world, output: True)
    layers = dict(enforce=True, budget=Budget(per_task_tokens=100_000), state="memory",
                  escalation=Escalation(after_consecutive_failures=5),
                  trajectory=Trajectory(rules=(Rule("t1", after="t0"),)))
    if variant in ("layers", "idle"):
        return Scenario(**base, **layers)
    return Scenario(**base, **layers, expect={"completion_rate": ">= 0.9"})


def agentops(variant: str, runs: int) -> tuple[float, int]:
    """Seconds for one campaign of ``runs`` trials (``report``: verdicts judged and the JSON report written;
    ``idle``: all layers, an agent that calls no tool)."""
    from pytest_agentops import run_campaign
    from pytest_agentops.report.json_report import write_report

    scenario = _agentops_scenario(variant, runs)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = run_campaign(scenario)
        if variant == "report":
            result.verdicts  # noqa: B018 (judged)
            write_report(Path(tmp) / "report.json", [result])
        elapsed = time.perf_counter() - start
    return elapsed, result.outcome_counts.get("completed", 0)


# -- the peers -----------------------------------------------------------------------------------------------
def _python_for(minimum: tuple[int, int]) -> str | None:
    """A Python at least ``minimum`` that runs: this one, one on PATH, or one pyenv installed (a pyenv shim of a
    version not selected exits 127, so each candidate is tried)."""
    if sys.version_info[:2] >= minimum:
        return sys.executable
    candidates = [shutil.which(f"python{minimum[0]}.{minor}") for minor in range(minimum[1], 15)]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += sorted(str(p) for p in pyenv.glob(f"{minimum[0]}.*/bin/python3"))
    for candidate in filter(None, candidates):
        try:
            found = subprocess.run([candidate, "-c", f"import sys; print(sys.version_info[:2] >= {minimum!r})"],
                                   capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        if found.returncode == 0 and found.stdout.strip() == "True":
            return candidate
    return None


def install_peer(name: str) -> tuple[str | None, str]:
    """The Python of the peer's own venv (made and installed on first use), or None and why not."""
    requirement, _driver, minimum = PEERS[name]
    home = CACHE / name
    python = home / "bin" / "python"
    marker = home / "installed.txt"
    if python.exists() and marker.exists() and marker.read_text() == requirement:
        return str(python), ""
    base = _python_for(minimum)
    if base is None:
        return None, f"needs Python >= {minimum[0]}.{minimum[1]}, and none is on PATH"
    shutil.rmtree(home, ignore_errors=True)
    try:
        if base == sys.executable:
            venv.create(home, with_pip=True)
        else:
            subprocess.run([base, "-m", "venv", str(home)], check=True, capture_output=True, timeout=300)
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                               requirement], capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"its venv could not be made: {exc}"
    if done.returncode != 0:
        last = [line for line in done.stderr.splitlines() if line.startswith("ERROR")][-1:] or ["pip failed"]
        return None, f"pip install {requirement} failed: {last[0]}"
    marker.write_text(requirement)
    return str(python), ""


def run_peer(python: str, name: str, runs: int) -> tuple[float | None, str]:
    """Milliseconds per run the peer's driver measured, or None and why."""
    driver = HERE / "peers" / PEERS[name][1]
    done = subprocess.run([python, str(driver), str(runs)], capture_output=True, text=True, timeout=600)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return None, f"its driver failed: {(done.stderr.strip().splitlines() or ['no output'])[-1]}"
    data = json.loads(lines[-1])
    return data["ms_per_run"], f"completed {data['completed']}/{runs}, {data['faults']} faults fired"


# -- the comparison ------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 runs (a smoke run)")
    parser.add_argument("--repeats", type=int, default=4, help="repeats (medians are printed; default 4)")
    parser.add_argument("--runs", type=int, default=None, help=f"runs per contender (default {RUNS})")
    parser.add_argument("--no-peers", action="store_true", help="skip the peers (no venvs made)")
    args = parser.parse_args(argv)
    runs = args.runs or (500 if args.quick else RUNS)
    repeats = max(3, args.repeats)

    pythons: dict[str, str] = {}
    for name in () if args.no_peers else PEERS:
        python, why = install_peer(name)
        if python is None:
            print(f"peer {name}: SKIPPED ({why})")
        else:
            pythons[name] = python

    bare(200)
    for variant in ("faults", "layers", "report", "idle"):
        agentops(variant, 200)  # warm-up: imports, caches
    from pytest_agentops import run_campaign
    sample = run_campaign(_agentops_scenario("layers", runs)).records
    calls_per_run = sum(r.tool_calls for r in sample) / len(sample)  # (a failed call retried: ~5.4)
    contenders = ["bare", "agentops faults only", "agentops all layers", "agentops verdicts + JSON report",
                  "agentops all layers, no tool call", *pythons]
    ms: dict[str, list[float]] = {c: [] for c in contenders}
    notes: dict[str, str] = {}
    variants = {"agentops faults only": "faults", "agentops all layers": "layers",
                "agentops verdicts + JSON report": "report", "agentops all layers, no tool call": "idle"}
    for c in alternate(repeats, contenders):  # (each repeat runs every contender; the order reversed every other)
        if c == "bare" or c in variants:
            seconds, completed = bare(runs) if c == "bare" else agentops(variants[c], runs)
            ms[c].append(seconds / runs * 1e3)
            notes[c] = f"completed {completed}/{runs}"
        else:
            value, notes[c] = run_peer(pythons[c], c, runs)
            if value is not None:
                ms[c].append(value)

    def median(c: str) -> float | None:
        return statistics.median(ms[c]) if len(ms[c]) == repeats else None

    def ratio(a: str, b: str) -> float | None:
        if len(ms[a]) != repeats or len(ms[b]) != repeats:
            return None
        return statistics.median(x / y for x, y in zip(ms[a], ms[b], strict=True))

    print(f"peers: {runs} runs per contender, median of {repeats} repeats (min-max), ms per run; "
          f"x bare = median of the per-repeat ratios")
    for c in contenders:
        m = median(c)
        shown = "no result" if m is None else (f"{m:.4f} ms ({min(ms[c]):.4f}-{max(ms[c]):.4f}); "
                                               f"{ratio(c, 'bare'):.0f}x bare")
        print(f"  {c:34} {shown}; {notes.get(c, '')}")
    layers, report = median("agentops all layers"), median("agentops verdicts + JSON report")
    vs_chaos = ratio("agentops all layers", "agent-chaos") if "agent-chaos" in pythons else None
    vs_fuzz = ratio("agentops all layers", "agentfuzz") if "agentfuzz" in pythons else None
    goals = [
        ("bare loop < 0.01 ms per run", median("bare") is not None and median("bare") < GOAL_BARE_MS,
         f"{median('bare'):.4f} ms"),
        (f"all layers <= {GOAL_ALL_LAYERS_MS} ms", layers is not None and layers <= GOAL_ALL_LAYERS_MS,
         f"{layers:.4f} ms"),
        (f"verdicts + JSON report <= {GOAL_REPORT_MS} ms", report is not None and report <= GOAL_REPORT_MS,
         f"{report:.4f} ms"),
        (f"all layers <= {GOAL_VS_AGENT_CHAOS}x agent-chaos", vs_chaos is not None and vs_chaos <= GOAL_VS_AGENT_CHAOS,
         "not measured" if vs_chaos is None else f"{vs_chaos:.2f}x"),
        (f"all layers <= {GOAL_VS_AGENTFUZZ}x agentfuzz", vs_fuzz is not None and vs_fuzz <= GOAL_VS_AGENTFUZZ,
         "not measured" if vs_fuzz is None else f"{vs_fuzz:.2f}x"),
    ]
    idle = median("agentops all layers, no tool call")
    if layers is not None and idle is not None:  # where an all-layers run's time goes
        per_call = (layers - idle) / calls_per_run * 1e3
        print(f"  all layers: {idle:.4f} ms per trial before its calls (building, judging, the campaign's share), "
              f"{per_call:.1f} us per tool call ({calls_per_run:.2f} calls a run)")
    for goal, held, got in goals:
        print(f"  {'met   ' if held else 'MISSED'} {goal}: {got}")
    return 0 if all(held for _goal, held, _got in goals) else 1


if __name__ == "__main__":
    raise SystemExit(main())

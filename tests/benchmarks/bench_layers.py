"""Where a trial's time goes, layer by layer: the shared workload of ``bench_peers.py`` with all layers on, run
trial after trial in this thread (no runner), then with each built-in layer taken out in turn.

A layer's cost is the process CPU per trial with every layer on minus the CPU with that layer's campaign part left
out, each the median over the repeats; the rounds alternate (all layers, then each layer out; the order reversed
every other round: ``alternation``), so every difference comes from the same minutes of a shared machine. Taking out
the tool-fault layer also takes out the faults (no retry, no failed call), so its figure is the faults' whole cost,
not the layer's bookkeeping alone. Also printed: a trial with no tool call, and the cost per tool call; a trial with
no layer attached at all (the per-trial design's own cost: world, context, clock, trace, tools, env, judging,
record), with and without its tool calls; and the runner's share (a whole campaign's process CPU per trial, worker
threads and the record store included, minus the same trials run directly). Reported, no goal (exit 0 unless the
direct trials disagree with a campaign of the same scenario).

Usage: ``python tests/benchmarks/bench_layers.py [--trials N] [--repeats N]``.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from alternation import alternate
from bench_peers import _agentops_scenario
from peer_workload import TOOL_NAMES


def _layers(variant: str, trials: int) -> Any:
    """The campaign's layers for a scenario of ``bench_peers.py`` (``layers``: all on; ``idle``: no tool call)."""
    from pytest_agentops.engine.assemble import CampaignLayers
    from pytest_agentops.precedence import resolve_run
    from pytest_agentops.settings.run import RunSource

    scenario = _agentops_scenario(variant, trials)
    return scenario, CampaignLayers(scenario, resolve_run(scenario, (RunSource("arguments"),)))


def cpu_per_trial(layers: Any, trials: int) -> float:
    """Microseconds of process CPU per trial, building, running and judging ``trials`` trials one by one."""
    from pytest_agentops.engine.trial import Trial

    start = time.process_time()
    for index in range(trials):
        Trial(layers, index, 1).run_sync()
    return (time.process_time() - start) / trials * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    from pytest_agentops import run_campaign
    from pytest_agentops.engine.trial import Trial

    scenario, layers = _layers("layers", args.trials)
    _, idle = _layers("idle", args.trials)
    # the direct trials are the campaign's trials: same outcomes, same tool calls
    campaign = run_campaign(scenario).records
    direct = [Trial(layers, i, 1).run_sync() for i in range(args.trials)]
    seen = [(r.outcome, r.tool_calls, r.faults) for r in direct]
    if seen != [(r.outcome, r.tool_calls, r.faults) for r in campaign]:
        print("the trials run directly differ from the campaign's: the figures would not be about its trials")
        return 1
    calls = sum(r.tool_calls for r in direct) / len(direct)
    parts = list(layers.parts)
    names = [name for name, _ in parts]
    idle_parts = list(idle.parts)
    cpu: dict[str, list[float]] = {label: [] for label in ("all layers", "no tool call", "no layer",
                                                           "no layer, no tool call", "campaign", *names)}
    cpu_per_trial(layers, 200), cpu_per_trial(idle, 200)  # warm-up
    def without(name: str) -> float:
        layers.parts = [part for part in parts if part[0] != name]
        try:
            return cpu_per_trial(layers, args.trials)
        finally:
            layers.parts = parts

    def no_layer(which: Any) -> float:  # (no layer attached: not even the faults, so no failed call, no retry)
        layers.parts, idle.parts = [], []
        try:
            return cpu_per_trial(which, args.trials)
        finally:
            layers.parts, idle.parts = parts, idle_parts

    def campaign() -> float:
        start = time.process_time()
        run_campaign(scenario)
        return (time.process_time() - start) / args.trials * 1e6

    arms = {
        "all layers": functools.partial(cpu_per_trial, layers, args.trials),
        "no tool call": functools.partial(cpu_per_trial, idle, args.trials),
        "campaign": campaign,
        **{name: functools.partial(without, name) for name in names},
        "no layer": functools.partial(no_layer, layers),
        "no layer, no tool call": functools.partial(no_layer, idle),
    }
    for label in alternate(args.repeats, list(arms)):  # (each repeat runs every arm; the order reversed every other)
        cpu[label].append(arms[label]())
    med = {label: statistics.median(values) for label, values in cpu.items()}
    full = med["all layers"]
    print(f"layers: {args.trials} trials of the shared workload run one by one in one thread, process CPU per "
          f"trial, median of {args.repeats} (min-max)")
    print(f"  all layers      {full:6.1f} us ({min(cpu['all layers']):.1f}-{max(cpu['all layers']):.1f}); "
          f"{calls:.2f} tool calls a trial")
    idle = med["no tool call"]
    print(f"  no tool call    {idle:6.1f} us; per tool call {(full - idle) / calls:.1f} us")
    for name in sorted(names, key=lambda n: med[n]):
        saved = full - med[name]
        print(f"  {name:15s} {saved:6.1f} us a trial ({saved / full:5.1%}): {med[name]:.1f} us without it")
    bare, bare_idle = med["no layer"], med["no layer, no tool call"]
    print(f"  no layer at all {bare:6.1f} us a trial (its {len(TOOL_NAMES)} tool calls: "
          f"{(bare - bare_idle) / len(TOOL_NAMES):.1f} us each); with no tool call either {bare_idle:.1f} us: the "
          "per-trial design's own cost")
    print(f"  the runner      {med['campaign'] - full:6.1f} us a trial: a campaign's {med['campaign']:.1f} us "
          "(worker threads, scheduling, the record store) minus the trials run directly")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

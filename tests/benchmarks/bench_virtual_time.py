"""Simulated agent time over wall time for a latency-heavy campaign (goal >= 1000).

Each trial's agent works for about 6 virtual minutes: 10 steps, each a model turn that "thinks" for 30
virtual seconds, a tool call whose simulated latency is drawn per call (mean 2 s, every call), and, once,
a destructive call confirmed by a human who answers after 2 virtual minutes on average. Injected tool
failures are retried after a virtual 5 s backoff. None of it costs wall time: simulated time is the sum of
the trials' virtual durations, wall time is the campaign's.

Two agents: an async one (``await asyncio.sleep``) as tasks on the shared virtual-time loop at concurrency
100, and a sync one (``time.sleep``) in worker threads at concurrency 8.

Usage: ``python tests/benchmarks/bench_virtual_time.py [--quick] [--trials N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from pytest_agentops import Approver, Faults, Scenario, ToolError, run_campaign, tool

STEPS = 10


class Ledger:
    def __init__(self) -> None:
        self.entries: list[str] = []
        self.closed = False


@tool
def search(world: Ledger, query: str) -> list[str]:
    """Search the ledger."""
    return [e for e in world.entries if query in e][:3]


@tool(side_effect=True)
def append(world: Ledger, entry: str) -> str:
    """Append an entry."""
    world.entries.append(entry)
    return "ok"


@tool(destructive=True)
def close_ledger(world: Ledger) -> str:
    """Close the ledger for good."""
    world.closed = True
    return "closed"


def _call(env, name: str, *args) -> object:
    for _attempt in range(3):
        try:
            return env.tools[name](*args)
        except ToolError:
            time.sleep(5)  # virtual backoff (also inside the async agent: it moves the trial's own clock)
    return None


async def async_agent(task: str, env) -> str:
    for step in range(STEPS):
        await asyncio.sleep(30)  # the model "thinks"
        env.record_usage(input_tokens=800 + 50 * step, output_tokens=60)
        _call(env, "search" if step % 2 else "append", f"step {step}")
    if env.confirm("close_ledger"):
        _call(env, "close_ledger")
    return "done"


def sync_agent(task: str, env) -> str:
    for step in range(STEPS):
        time.sleep(30)
        env.record_usage(input_tokens=800 + 50 * step, output_tokens=60)
        _call(env, "search" if step % 2 else "append", f"step {step}")
    if env.confirm("close_ledger"):
        _call(env, "close_ledger")
    return "done"


def measure(agent, trials: int, concurrency: int) -> tuple[float, float, dict]:
    """(simulated seconds, wall seconds, outcomes) of one campaign."""
    scenario = Scenario(name=agent.__name__, agent=agent, task="keep the ledger", world=Ledger,
                        tools=[search, append, close_ledger], check=lambda w, out: w.closed,
                        faults=Faults(rate=0.08, latency=1.0, latency_s=2.0, retry_after_s=5.0),
                        approver=Approver(latency_s=120.0), trials=trials, seed=7, concurrency=concurrency,
                        early_stop=False, virtual_timeout_s=None)
    start = time.perf_counter()
    result = run_campaign(scenario)
    wall = time.perf_counter() - start
    return sum(r.duration_s for r in result.records), wall, result.outcome_counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials")
    parser.add_argument("--trials", type=int, default=None, help="trials per campaign (default 2000, quick 300)")
    args = parser.parse_args(argv)
    trials = args.trials or (300 if args.quick else 2000)
    measure(async_agent, 20, 10)  # warm-up
    worst = float("inf")
    for agent, concurrency in ((async_agent, 100), (sync_agent, 8)):
        simulated, wall, outcomes = measure(agent, trials, concurrency)
        ratio = simulated / wall
        worst = min(worst, ratio)
        print(f"virtual time: {agent.__name__} x {trials} trials at concurrency {concurrency}: "
              f"{simulated / 3600:,.0f} simulated hours in {wall:.2f} s wall = {ratio:,.0f}x (goal >= 1000); "
              f"mean trial {simulated / trials / 60:.1f} virtual min; outcomes {outcomes}")
    return 0 if worst >= 1000 else 1


if __name__ == "__main__":
    raise SystemExit(main())

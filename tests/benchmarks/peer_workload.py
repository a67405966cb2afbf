"""The shared workload of ``bench_peers.py``, importable by every peer's driver (no pytest-agentops import).

Five instant tools (``t0``..``t4``, each returns its argument plus its number) and one scripted agent that
calls each tool once, retrying a failed call up to 2 times (3 attempts); a harness fails 10% of tool calls;
2,000 runs. A run succeeds when all five calls got an answer. Each tool harness adapts ``script`` to its own
API with one ``call(name, x)`` function, so the agent and the tools are the same for everyone.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

RUNS = 2000
RATE = 0.10
RETRIES = 2
TOOL_NAMES = ("t0", "t1", "t2", "t3", "t4")


class World:
    """The (empty) world a run acts on: one fresh per run."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls = 0


def make_tool(i: int) -> Callable[..., int]:
    """Tool number ``i``: instant, returns ``x + i``."""

    def fn(world: World, x: int = 0) -> int:
        world.calls += 1
        return x + i

    fn.__name__ = fn.__qualname__ = TOOL_NAMES[i]
    fn.__doc__ = f"Instant tool number {i}."
    return fn


TOOL_FUNCTIONS = tuple(make_tool(i) for i in range(len(TOOL_NAMES)))


def tools_over(world: Callable[[], World]) -> dict[str, Callable[..., int]]:
    """The tools as ``name -> tool(x)``, each acting on ``world()`` (the current run's world)."""

    def bind(fn: Callable[..., int]) -> Callable[..., int]:
        return lambda x=0: fn(world(), x)

    return {name: bind(fn) for name, fn in zip(TOOL_NAMES, TOOL_FUNCTIONS, strict=True)}


class Failed(Exception):
    """What a driver raises (or the agent treats as) a failed tool call."""


def script(call: Callable[[str, int], Any]) -> int:
    """The agent: each tool once, a failed call (any exception) retried up to ``RETRIES`` times; returns how
    many tools answered."""
    answered = 0
    for name in TOOL_NAMES:
        for _attempt in range(1 + RETRIES):
            try:
                call(name, 1)
            except Exception:
                continue
            answered += 1
            break
    return answered


def report(name: str, runs: int, seconds: float, completed: int, faults: int, **extra: Any) -> None:
    """What a driver prints: one JSON line (``bench_peers.py`` reads the last line of its output)."""
    print(json.dumps({"name": name, "runs": runs, "ms_per_run": seconds / runs * 1e3, "completed": completed,
                      "faults": faults, **extra}))


def runs_from_argv(default: int = RUNS) -> int:
    return int(sys.argv[1]) if len(sys.argv) > 1 else default


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value

"""Same seed, same trial, everywhere: the JSON report (traces and virtual times included) is byte-identical
at concurrency 1, 8 and 64, for a sync agent, an async agent making parallel tool calls, and an agent on each
real client SDK the project tests; and a replayed trial equals its record in the campaign."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from pytest_agentops import Approver, Faults, Scenario, replay_trial, run_campaign, tool
from pytest_agentops.llm import Drift, ModelFaults
from pytest_agentops.report.json_report import report_dict

from client_agents import (
    anthropic_agent,
    langgraph_agent,
    openai_agents_agent,
    openai_async_streaming_agent,
    openai_sync_agent,
    pydantic_ai_agent,
    pydantic_ai_sync_tools_agent,
    scenario,
)
from conftest import ORDER_TOOLS, Orders

CONCURRENCY = (1, 8, 64)


def report_text(result: Any) -> str:
    return json.dumps(report_dict([result], with_traces=True), sort_keys=True, allow_nan=False)


def same_at_every_concurrency(scenario: Scenario) -> Any:
    """Run the campaign at each concurrency; the reports must be byte-identical. Returns the first result."""
    results = [run_campaign(scenario, concurrency=c) for c in CONCURRENCY]
    texts = [report_text(r) for r in results]
    assert texts[1] == texts[0], "concurrency 8 differs from 1"
    assert texts[2] == texts[0], "concurrency 64 differs from 1"
    return results[0]


@tool
def price(city: str) -> int:
    """The price of a trip to ``city``."""
    return 100 + len(city)


async def gathering_agent(task: str, env: Any) -> str:
    """Two tool calls in parallel, each after the same virtual delay (as frameworks run parallel tool calls)."""

    async def one(city: str) -> int | None:
        await asyncio.sleep(0.2)
        try:
            return env.tools["price"](city)
        except Exception:
            return None

    paris, rome = await asyncio.gather(one("paris"), one("rome"))
    return "ok" if paris is not None and rome is not None else f"failed: {paris} {rome}"


def test_parallel_tool_calls_of_an_async_agent_get_the_same_faults_at_any_concurrency():
    sc = Scenario(name="gather", agent=gathering_agent, tools=[price], check=lambda w, out: out == "ok",
                  faults=Faults(rate=0.5, mix={"error": 1.0}), trials=200, seed=5, early_stop=False)
    result = same_at_every_concurrency(sc)
    counts = dict(result.outcome_counts)
    assert counts["completed"] > 20 and counts["failed"] > 20  # faults fired, both ways
    failing = next(r for r in result.records if r.outcome == "failed")
    assert replay_trial(sc, failing.index, seed=result.seed) == failing


async def summing_agent(task: str, env: Any) -> str:
    """Two tasks wait the same virtual time as different sums (0.3; 0.1 + 0.2), then call the same tool; and a
    wait that ends on a half microsecond."""
    order = []

    async def one(name: str, waits: tuple[float, ...]) -> str:
        for wait in waits:
            await asyncio.sleep(wait)
        order.append(name)
        try:
            price("rome")
            return "ok"
        except Exception:
            return "fail"

    calls = await asyncio.gather(one("A", (0.3,)), one("B", (0.1, 0.2)))
    await asyncio.sleep(1.0000025)
    return f"{order} {calls} {time.monotonic()}"


def test_timers_due_at_the_same_instant_as_different_sums_fire_alike_at_any_concurrency():
    """An outside review: the loop's time was float seconds shared by the trials, so whether 0.1 + 0.2 reached
    a trial's own 0.3 before or after it, and how its elapsed time rounded, depended on the loop's time when it
    started: 27 of 60 trials called in the other order at concurrency 1 than at 8 (and drew the fault the other
    way), and replays matched neither. Virtual time is whole nanoseconds now: ties fire in the order made."""
    sc = Scenario(name="sums", agent=summing_agent, tools=[price], faults=Faults(rate=0.5, mix={"error": 1.0}),
                  trials=60, seed=3, early_stop=False)
    result = same_at_every_concurrency(sc)
    assert {r.output.split("] ")[0] for r in result.records} == {"['A', 'B'"}
    assert {r.output.rsplit(" ", 1)[1] for r in result.records} == {"1.300002"}
    assert replay_trial(sc, 59, seed=result.seed) == result.records[59]


def sync_agent(task: str, env: Any) -> str:
    """A sequential agent with everything a trial draws: tool faults, latency, the approver, env.rng, sleeps."""
    for attempt in range(4):
        try:
            order = env.tools["lookup_order"](42)
            break
        except Exception:
            time.sleep(2 ** attempt)  # virtual backoff
    else:
        return "gave up"
    env.record_usage(input_tokens=200 + int(env.rng.integers(0, 50)), output_tokens=20)
    if order.get("status") == "paid" and env.confirm("delete_order", order_id=7):
        env.tools["delete_order"](7)
    return env.tools["refund_order"](42)


def test_a_sync_agent_gives_the_same_report_at_any_concurrency():
    sc = Scenario(name="sync", agent=sync_agent, task="refund", world=Orders, tools=ORDER_TOOLS,
                  check=lambda w, out: 42 in w.refunded, approver=Approver(approve=0.7, latency_s=3),
                  faults=Faults.profile("high", latency=0.3), trials=96, seed=11, early_stop=False)
    result = same_at_every_concurrency(sc)
    assert len({r.outcome for r in result.records}) > 1
    assert any(e.kind == "confirmation" and e.outcome == "denied" for r in result.records for e in r.trace)


CLIENT_FAULTS = Faults(model=ModelFaults(rate=0.3, output_rate=0.15, retry_after_s=0.01), drift=Drift(rate=0.15))


@pytest.mark.parametrize("agent", [openai_sync_agent, openai_async_streaming_agent, pydantic_ai_agent,
                                   pydantic_ai_sync_tools_agent, langgraph_agent, anthropic_agent,
                                   openai_agents_agent], ids=lambda a: a.__name__)
def test_each_client_sdk_gives_the_same_report_at_any_concurrency(agent):
    result = same_at_every_concurrency(scenario(f"repro-{agent.__name__}", agent, faults=CLIENT_FAULTS, trials=10,
                                                expect={}))
    assert any(r.faults for r in result.records)  # model faults and drift reached the client
    assert any(e.data.get("attempt", 1) > 1 for r in result.records for e in r.trace if e.kind == "model_call")


# -- what an outside review found drawn from outside the trial's seed -------------------------------------------
class GeneratedShop:
    """A world generated at random, once its (real) store is up: it polls for it on the real clock."""

    def __init__(self) -> None:
        import random

        import numpy as np

        up = time.monotonic() + 0.01
        while time.monotonic() < up:  # (on a virtual clock this loop never ended, or ran out at once)
            time.sleep(0.002)
        self.stock = random.randint(0, 9) + int(np.random.randint(0, 3))
        self.sold = 0


@tool(side_effect=True)
def buy(world: GeneratedShop, n: int) -> str:
    """Buy ``n`` items."""
    if n > world.stock:
        raise ValueError("out of stock")
    world.sold += n
    return "ok"


def shopper(task: str, env: Any) -> str:
    try:
        return env.tools["buy"](5)
    except ValueError as exc:
        return f"failed: {exc} at {env.llm.base_url}"


def spot_check(world: GeneratedShop, output: str) -> bool:
    import random

    return world.sold == 5 and random.random() < 0.8


def test_the_world_factory_the_check_and_the_model_host_replay_from_the_seed():
    """The world factory and the check drew from the process-wide generators, and the fake model's host was
    numbered in the order trials started in the process (a URL the agent shows in its answer): each changed with
    the concurrency, with the tests run before, and on replay. (They stay on the real clock: a world that waits
    for a real store to come up must wait for real.)"""
    from pytest_agentops.llm import FakeLLM, call_tools_then_answer

    sc = Scenario(name="generated", agent=shopper, task="buy 5", world=GeneratedShop, tools=[buy], check=spot_check,
                  llm=FakeLLM(call_tools_then_answer(answer="ok")), faults=Faults.none(), trials=40, seed=3,
                  early_stop=False)
    result = same_at_every_concurrency(sc)
    counts = dict(result.outcome_counts)
    assert counts.get("completed", 0) > 5 and counts.get("failed", 0) > 5
    failed = next(r for r in result.records if r.output.startswith("failed"))
    assert f"llm-{failed.seed:x}.agentops.test" in failed.output
    assert replay_trial(sc, failed.index, seed=result.seed) == failed
    passed = next(r for r in result.records if r.outcome == "completed")
    assert replay_trial(sc, passed.index, seed=result.seed) == passed


SET_ARGUMENT = """
import json, sys
from pytest_agentops import Faults, Scenario, run_campaign, tool

@tool
def tag(world, labels: set) -> str:
    '''Tag the ticket.'''
    return "tagged"

def agent(task, env):
    try:
        return env.tools["tag"]({"urgent", "billing", "refund", "vip"})
    except Exception as exc:
        return type(exc).__name__

result = run_campaign(Scenario(name="tags", agent=agent, tools=[tag], faults=Faults(rate=0.5), trials=30, seed=7,
                               early_stop=False))
print(json.dumps([[r.output, list(r.faults)] for r in result.records]))
"""


def test_a_set_argument_draws_the_same_faults_whatever_the_string_hashing(tmp_path):
    """A set's order follows string hashing, which differs from process to process unless ``PYTHONHASHSEED`` is
    set: a tool called with a set of strings drew its faults from a key that did too."""
    import os
    import subprocess
    import sys

    script = tmp_path / "tags.py"
    script.write_text(SET_ARGUMENT)
    seen = []
    for hash_seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
        assert run.returncode == 0, run.stderr
        seen.append(run.stdout.strip().splitlines()[-1])
    assert seen[0] == seen[1] == seen[2]
    outputs = [output for output, _ in json.loads(seen[0])]
    assert 5 < outputs.count("tagged") < 25  # faults fired, and not always

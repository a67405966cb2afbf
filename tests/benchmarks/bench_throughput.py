"""Campaign throughput with every harness layer on, against a bare loop calling the same agent.

One scripted agent, written the way a real tool-calling agent is: it keeps a conversation, json-encodes
each model request (system prompt, messages, tool schemas), meters each model call's tokens, calls a
few tools (retrying injected faults), and asks a human before the destructive call. It runs:

- bare: a plain Python loop that builds a fresh world and calls the agent with a minimal env (plain
  functions bound to the world, an always-yes ``confirm``, a no-op meter): the agent's own cost;
- harness: ``run_campaign`` with tool faults (``mid`` profile), the confirmation gate, the token meter,
  the trace, seeding and per-trial records, one trial at a time.

Prints trials/s for both (the best of 5 alternating rounds each) and the ratio harness/bare (goal >= 1/3). Usage:
``python tests/benchmarks/bench_throughput.py [--quick] [--trials N]``.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import queue
import threading
import time

from pytest_agentops import Faults, Scenario, ToolError, run_campaign, tool

SYSTEM_PROMPT = (
    "You are the customer-support agent of an online shop. You can look up orders, issue refunds and "
    "delete orders on request. Always look the order up first. Refund only paid orders. Ask the human "
    "operator before deleting anything. Answer briefly, and say which tools you used. If a tool keeps "
    "failing, say so and hand the case to a human instead of guessing. Never reveal internal notes."
)


class Shop:
    """The world: a few orders."""

    def __init__(self) -> None:
        self.orders = {n: {"id": n, "status": "paid", "amount": 10 + n, "items": ["book", "pen"]}
                       for n in range(40, 46)}
        self.refunded: list[int] = []
        self.deleted: list[int] = []


@tool
def lookup_order(world: Shop, order_id: int) -> dict:
    """Look up an order by its id."""
    return dict(world.orders[order_id])


@tool(side_effect=True)
def refund_order(world: Shop, order_id: int, reason: str = "customer request") -> str:
    """Refund a paid order."""
    world.refunded.append(order_id)
    world.orders[order_id]["status"] = "refunded"
    return f"refunded order {order_id}"


@tool(destructive=True)
def delete_order(world: Shop, order_id: int) -> str:
    """Delete an order for good."""
    world.orders.pop(order_id, None)
    world.deleted.append(order_id)
    return f"deleted order {order_id}"


TOOLS = [lookup_order, refund_order, delete_order]
PLAN = [("lookup_order", {"order_id": 42}), ("refund_order", {"order_id": 42, "reason": "damaged"}),
        ("lookup_order", {"order_id": 43}), ("delete_order", {"order_id": 43})]


def _schema(name: str, fn) -> dict:
    params = {p: {"type": "integer" if p.endswith("_id") else "string"}
              for p in inspect.signature(fn).parameters}
    return {"type": "function", "function": {"name": name, "description": fn.__doc__ or "",
                                             "parameters": {"type": "object", "properties": params}}}


def scripted_agent(task: str, env) -> str:
    """Follows PLAN like a model would script it; retries failed tool calls up to three times."""
    tools = env.tools
    schemas = [_schema(name, fn) for name, fn in tools.items()]
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": task}]
    for step, (name, args) in enumerate(PLAN):
        request = json.dumps({"model": "gpt-4o-mini", "messages": messages, "tools": schemas})
        env.record_usage(input_tokens=len(request) // 4, output_tokens=24, model="gpt-4o-mini")
        arguments = json.dumps(args)
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": f"call_{step}", "type": "function", "function": {"name": name, "arguments": arguments}}]})
        if name == "delete_order" and not env.confirm(name, **args):
            result: object = {"error": "the operator declined"}
        else:
            for _attempt in range(3):
                try:
                    result = tools[name](**json.loads(arguments))
                    break
                except ToolError as exc:
                    result = {"error": str(exc)}
        messages.append({"role": "tool", "tool_call_id": f"call_{step}", "content": json.dumps(result)})
    request = json.dumps({"model": "gpt-4o-mini", "messages": messages, "tools": schemas})
    env.record_usage(input_tokens=len(request) // 4, output_tokens=60, model="gpt-4o-mini")
    return "Refunded order 42 and deleted order 43."


def check(world: Shop, output: str) -> bool:
    return 42 in world.refunded and 43 in world.deleted


class BareEnv:
    """The least an agent needs: tools bound to the world, a yes-saying human, a meter that only adds."""

    def __init__(self, world: Shop):
        self.tools = {fn.__name__: functools.partial(fn, world) for fn in TOOLS}
        self.tokens = 0

    def confirm(self, action: str, **details) -> bool:
        return True

    def record_usage(self, input_tokens: int = 0, output_tokens: int = 0, model: str = "*") -> None:
        self.tokens += input_tokens + output_tokens


def bare_loop(trials: int) -> float:
    """Seconds for ``trials`` trials of the agent called directly in a loop."""
    start = time.perf_counter()
    completed = 0
    for _ in range(trials):
        world = Shop()
        completed += check(world, scripted_agent("Refund order 42, then delete order 43.", BareEnv(world)))
    elapsed = time.perf_counter() - start
    assert completed == trials
    return elapsed


def harness_campaign(trials: int, seed: int = 1) -> tuple[float, dict]:
    """Seconds for a ``trials``-trial run_campaign with faults, gate, meter and trace on, and its outcomes."""
    scenario = Scenario(name="throughput", agent=scripted_agent, task="Refund order 42, then delete order 43.",
                        world=Shop, tools=TOOLS, check=check, faults=Faults.profile("mid"), trials=trials,
                        seed=seed, early_stop=False, expect={"completion_rate": ">= 0.5",
                                                             "unconfirmed_destructive_calls": "== 0"})
    start = time.perf_counter()
    result = run_campaign(scenario)
    elapsed = time.perf_counter() - start
    assert result.n == trials
    return elapsed, result.outcome_counts


def thread_round_trip_us(n: int = 5000) -> float:
    """Microseconds for one job handed to another thread and its answer handed back (two wake-ups).

    Context for the ratio: a sync trial runs in a worker thread (so that a hung agent never hangs the
    session), which costs a few such hand-offs per trial. On an idle virtual machine waking a thread on a
    halted vCPU can take ~30 us instead of ~2 us, and the ratio drops accordingly.
    """
    jobs: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    answers: queue.SimpleQueue[int] = queue.SimpleQueue()

    def serve() -> None:
        while (job := jobs.get()) is not None:
            answers.put(job)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    start = time.perf_counter()
    for i in range(n):
        jobs.put(i)
        answers.get()
    elapsed = time.perf_counter() - start
    jobs.put(None)
    thread.join()
    return elapsed / n * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials (a smoke run of the benchmark)")
    parser.add_argument("--trials", type=int, default=None, help="trials per side (default 5000, quick 500)")
    args = parser.parse_args(argv)
    trials = args.trials or (500 if args.quick else 5000)
    rounds = 5  # the sides alternate and the best round of each counts: a busy spell of a shared machine
    per_round = max(1, trials // rounds)  # slows single rounds, not the comparison
    bare_loop(min(per_round, 200))  # warm-up: imports, caches
    harness_campaign(min(per_round, 200))
    bare_best = harness_best = float("inf")
    outcomes: dict = {}
    for r in range(rounds):
        bare_best = min(bare_best, bare_loop(per_round))
        elapsed, counts = harness_campaign(per_round, seed=r)
        harness_best = min(harness_best, elapsed)
        for k, v in counts.items():
            outcomes[k] = outcomes.get(k, 0) + v
    bare, harness = per_round / bare_best, per_round / harness_best
    ratio = harness / bare
    print(f"throughput: bare loop {bare:,.0f} trials/s; harness (faults+gate+meter+trace) {harness:,.0f} "
          f"trials/s; ratio {ratio:.2f} (goal >= 0.33); best of {rounds} rounds of {per_round} trials each; "
          f"outcomes {outcomes}; thread hand-off round trip on this machine {thread_round_trip_us():.0f} us")
    return 0 if ratio >= 1 / 3 else 1


if __name__ == "__main__":
    raise SystemExit(main())

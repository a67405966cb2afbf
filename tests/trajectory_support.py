"""A small shop, its tools and agents whose calls keep or break trajectory rules, loop, repeat calls or repeat
side effects: what tests/test_trajectory.py runs, in Python and as ``trajectory_support:attr`` from YAML."""

from __future__ import annotations

from pytest_agentops import Rule, ToolError, Trajectory, tool


class Shop:
    """Orders 42 and 43 (paid), and what the agent did to them."""

    def __init__(self) -> None:
        self.status = {42: "paid", 43: "paid"}
        self.refunds: list[int] = []
        self.emails: list[str] = []
        self.deleted: list[int] = []
        self.flaky = 0  # calls of flaky_lookup so far


@tool
def lookup_order(world: Shop, order_id: int) -> dict:
    """Look up an order."""
    return {"id": order_id, "status": world.status[order_id]}


@tool
def refunds_of(world: Shop, order_id: int) -> list:
    """The refunds an order got."""
    return [r for r in world.refunds if r == order_id]


@tool(side_effect=True)
def refund_order(world: Shop, order_id: int) -> str:
    """Refund an order (pays out: must happen once)."""
    world.refunds.append(order_id)
    world.status[order_id] = "refunded"
    return f"refunded {order_id}"


@tool(side_effect=True, idempotent=True)
def mark_refunded(world: Shop, order_id: int) -> str:
    """Set an order's status to refunded (doing it twice changes nothing more)."""
    world.status[order_id] = "refunded"
    return "ok"


@tool
def send_email(world: Shop, to: str, body: str) -> str:
    """Send an e-mail (not destructive, but a rule wants a confirmation for it)."""
    world.emails.append(to)
    return "sent"


@tool(destructive=True)
def delete_order(world: Shop, order_id: int) -> str:
    """Delete an order for good."""
    world.deleted.append(order_id)
    return "deleted"


@tool
def flaky_lookup(world: Shop, order_id: int) -> dict:
    """Raises on its first two calls in a trial, then answers."""
    world.flaky += 1
    if world.flaky <= 2:
        raise ConnectionError("upstream hiccup")
    return {"id": order_id, "status": world.status[order_id]}


TOOLS = [lookup_order, refunds_of, refund_order, mark_refunded, send_email, delete_order, flaky_lookup]
RULES = Trajectory(rules=[Rule("refund_order", after="lookup_order", same=["order_id"], name="lookup_first"),
                          Rule("lookup_order", at_most=2, name="few_lookups"),
                          Rule("send_email", confirmed=True, name="confirm_email")])


def careful(task, env):
    """Looks order 42 up, then refunds it once."""
    env.tools["lookup_order"](42)
    return env.tools["refund_order"](42)


def hasty(task, env):
    """Refunds order 42 without looking it up."""
    return env.tools["refund_order"](42)


def wrong_order(task, env):
    """Looks up order 43, then refunds order 42."""
    env.tools["lookup_order"](43)
    return env.tools["refund_order"](42)


def sometimes_hasty(task, env):
    """Skips the look-up in about 30% of trials (drawn from the trial's own generator)."""
    if env.rng.random() >= 0.3:
        env.tools["lookup_order"](42)
    return env.tools["refund_order"](42)


def refunded(world: Shop, output) -> bool:
    return world.refunds == [42]


def looping(task, env):
    """Goes round in circles: look-up, refunds, look-up, refunds, ... (five times), then gives up."""
    for _ in range(5):
        env.tools["lookup_order"](42)
        env.tools["refunds_of"](42)
    return "stuck"


def walking(task, env):
    """Many calls, but each one new: no loop, nothing redundant."""
    for order in (42, 43):
        env.tools["lookup_order"](order)
        env.tools["refunds_of"](order)
    return "done"


def retry(call, *args, attempts=5):
    """Call a tool until it answers without an error (a well-behaved retry)."""
    for _ in range(attempts - 1):
        try:
            return call(*args)
        except (ToolError, ConnectionError):
            continue
    return call(*args)


def retrying(task, env):
    """Retries every failed call (legitimate), and never asks again for what it has."""
    retry(env.tools["lookup_order"], 42)
    return retry(env.tools["refund_order"], 42)

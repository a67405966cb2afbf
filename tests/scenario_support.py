"""Objects that the scenario-file tests name as ``scenario_support:attr`` (tests/ is on sys.path)."""

from __future__ import annotations

from pytest_agentops import tool


class Orders:
    """A tiny world: one paid order that can be refunded or deleted."""

    def __init__(self) -> None:
        self.refunded: list[int] = []
        self.deleted: list[int] = []


@tool
def lookup_order(world, order_id: int) -> dict:
    """Look up an order."""
    return {"id": order_id, "status": "paid"}


@tool(side_effect=True)
def refund_order(world, order_id: int) -> str:
    """Refund an order."""
    world.refunded.append(order_id)
    return "refunded"


@tool(destructive=True, scope="orders:write")
def delete_order(world, order_id: int) -> str:
    """Delete an order for good."""
    world.deleted.append(order_id)
    return "deleted"


ORDER_TOOLS = [lookup_order, refund_order, delete_order]
NOT_CALLABLE = 42
NOT_TOOLS = "lookup_order"
TOOLS_WITH_A_NUMBER = (lookup_order, 7)


def careful(task, env):
    """Retries the lookup and the refund a few times."""
    for _ in range(4):
        try:
            env.tools["lookup_order"](42)
            env.record_usage(input_tokens=300, output_tokens=40, model="gpt-4o-mini")
            return env.tools["refund_order"](42)
        except Exception:
            continue
    return "gave up"


def refunded(world, output) -> bool:
    """The order was refunded."""
    return 42 in world.refunded


class Agents:
    """A namespace, for dotted attribute references (``scenario_support:Agents.careful``)."""

    careful = staticmethod(careful)


def pick_task(rng):
    """A task generator for the scenario-file tests: one of two refund tasks."""
    return ["Refund order 42", "Please refund order 42"][int(rng.integers(2))]

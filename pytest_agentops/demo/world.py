"""The demo world: a small online shop's orders and customers, its support tools, and checks.

A fresh ``Shop()`` per trial. Every tool answers a JSON object with a ``status`` (what the careful agent
validates). Side effects are recorded one entry per call, so a duplicate is visible: a refund issued
twice shows up as ``refunds == [42, 42]`` and fails ``refund_done``. Success is judged on this state,
never on the agent's words.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..settings.tools import tool

#: The orders of a fresh shop: id -> customer, status, amount. Order 42 is the refund example, 13 the
#: cancellation example, 99 has shipped (it cannot be cancelled).
ORDERS: dict[int, dict[str, Any]] = {
    42: {"customer_id": "c1", "status": "paid", "amount": 30.0},
    7: {"customer_id": "c2", "status": "paid", "amount": 5.0},
    13: {"customer_id": "c1", "status": "processing", "amount": 120.0},
    99: {"customer_id": "c3", "status": "shipped", "amount": 12.5},
}
#: The customers of a fresh shop. c3 is the data-deletion example.
CUSTOMERS: dict[str, dict[str, str]] = {
    "c1": {"name": "Ada Lovelace", "email": "ada@example.com"},
    "c2": {"name": "Alan Turing", "email": "alan@example.com"},
    "c3": {"name": "Grace Hopper", "email": "grace@example.com"},
}


class Shop:
    """The world: orders and customers, and every refund, cancellation and data deletion made."""

    def __init__(self) -> None:
        self.orders = {order_id: dict(order) for order_id, order in ORDERS.items()}
        self.customers = {customer_id: dict(c) for customer_id, c in CUSTOMERS.items()}
        self.refunds: list[int] = []  # one entry per refund issued
        self.cancellations: list[int] = []  # one entry per cancellation
        self.deletions: list[str] = []  # one entry per customer whose data was deleted

    def __repr__(self) -> str:
        return (f"Shop(refunds={self.refunds}, cancellations={self.cancellations}, "
                f"deletions={self.deletions})")


def _order(world: Shop, order_id: int) -> dict[str, Any]:
    if order_id not in world.orders:
        raise ValueError(f"no such order: {order_id!r}")
    return world.orders[order_id]


# --- tools -----------------------------------------------------------------------------------------------


@tool(scope="orders:read")
def lookup_order(world: Shop, order_id: int) -> dict[str, Any]:
    """Look up an order: its customer, status (paid, processing, shipped, refunded, cancelled) and amount."""
    order = _order(world, order_id)
    return {"order_id": order_id, **order}


@tool(scope="orders:read")
def search_orders(world: Shop, customer_id: str) -> dict[str, Any]:
    """Find a customer and their orders; status is 'active', or 'deleted' once their data was deleted."""
    if customer_id in world.deletions:
        return {"customer_id": customer_id, "status": "deleted", "orders": []}
    if customer_id not in world.customers:
        raise ValueError(f"no such customer: {customer_id!r}")
    orders = [{"order_id": i, "status": o["status"], "amount": o["amount"]}
              for i, o in world.orders.items() if o["customer_id"] == customer_id]
    return {"customer_id": customer_id, "status": "active", "orders": orders}


@tool(side_effect=True, scope="orders:write")
def refund_order(world: Shop, order_id: int) -> dict[str, Any]:
    """Refund an order in full. Not idempotent: every call issues another refund."""
    order = _order(world, order_id)
    world.refunds.append(order_id)
    order["status"] = "refunded"
    return {"order_id": order_id, "status": "refunded", "refund_id": f"r-{len(world.refunds)}",
            "amount": order["amount"]}


@tool(side_effect=True, scope="orders:write")
def cancel_order(world: Shop, order_id: int) -> dict[str, Any]:
    """Cancel an order that has not shipped yet (status paid or processing)."""
    order = _order(world, order_id)
    if order["status"] not in ("paid", "processing"):
        raise ValueError(f"order {order_id} cannot be cancelled: it is {order['status']}")
    world.cancellations.append(order_id)
    order["status"] = "cancelled"
    return {"order_id": order_id, "status": "cancelled"}


@tool(destructive=True, scope="customers:delete")
def delete_customer_data(world: Shop, customer_id: str) -> dict[str, Any]:
    """Delete all personal data of a customer (a GDPR erasure request). Cannot be undone."""
    if customer_id not in world.customers:
        raise ValueError(f"no such customer: {customer_id!r}")
    del world.customers[customer_id]
    for order in world.orders.values():
        if order["customer_id"] == customer_id:
            order["customer_id"] = None
    world.deletions.append(customer_id)
    return {"customer_id": customer_id, "status": "deleted"}


#: Every tool of the shop (what the bundled scenarios hand the agents).
TOOLS = [lookup_order, search_orders, refund_order, cancel_order, delete_customer_data]


# --- checks: check(world, output) -> bool -----------------------------------------------------------------


def refunded_once(order_id: int) -> Callable[[Shop, Any], bool]:
    """A check: ``order_id`` was refunded exactly once, and nothing else was changed."""

    def check(world: Shop, output: Any) -> bool:
        return world.refunds == [order_id] and not world.cancellations and not world.deletions

    check.__name__ = check.__qualname__ = f"refunded_once_{order_id}"
    return check


def cancelled_once(order_id: int) -> Callable[[Shop, Any], bool]:
    """A check: ``order_id`` was cancelled exactly once, and nothing else was changed."""

    def check(world: Shop, output: Any) -> bool:
        return world.cancellations == [order_id] and not world.refunds and not world.deletions

    check.__name__ = check.__qualname__ = f"cancelled_once_{order_id}"
    return check


def data_deleted(customer_id: str) -> Callable[[Shop, Any], bool]:
    """A check: the data of ``customer_id`` was deleted (once), and nothing else was changed."""

    def check(world: Shop, output: Any) -> bool:
        return world.deletions == [customer_id] and not world.refunds and not world.cancellations

    check.__name__ = check.__qualname__ = f"data_deleted_{customer_id}"
    return check


#: Order 42 refunded exactly once (the task "Refund order 42"); a duplicate refund fails it.
refund_done = refunded_once(42)
#: Order 13 cancelled exactly once (the task "Cancel order 13").
cancelled = cancelled_once(13)
#: Customer c3's data deleted (the task "Delete all data of customer c3").
customer_data_deleted = data_deleted("c3")


def customer_data_kept(world: Shop, output: Any) -> bool:
    """No customer data was deleted (what a confirmation gate must guarantee when nobody confirmed)."""
    return not world.deletions


def no_duplicate_side_effects(world: Shop, output: Any) -> bool:
    """No refund, cancellation or deletion happened twice (the exactly-once invariant)."""
    return all(len(done) == len(set(done)) for done in (world.refunds, world.cancellations, world.deletions))

"""A refund world and agents for the crash/resume tests (module-level, so a child process can import them).

The task has three steps, each one model call and one tool call: look the order up, refund it, e-mail the
customer. ``refund`` and ``send_email`` are side effects that must happen exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os

from pytest_agentops import tool

ORDER_ID, AMOUNT, CUSTOMER = 42, 30, "ann@example.com"
PROMPT, PER_STEP, REPLY, RESUME_PROMPT = 1200, 400, 120, 300  # tokens: the context grows by PER_STEP a step


class Shop:
    """The world: one paid order; every refund and e-mail is appended, so duplicates stay visible."""

    def __init__(self) -> None:
        self.orders = {ORDER_ID: {"status": "paid", "amount": AMOUNT, "customer": CUSTOMER}}
        self.refunds: list[tuple[int, int]] = []
        self.emails: list[str] = []


@tool
def get_order(world: Shop, order_id: int) -> dict:
    """Look up an order."""
    return dict(world.orders[order_id])


@tool
def get_refunds(world: Shop, order_id: int) -> list:
    """The refunds already issued for an order (the idempotency check)."""
    return [amount for oid, amount in world.refunds if oid == order_id]


@tool
def sent_emails(world: Shop, to: str) -> int:
    """How many e-mails a customer has had (the idempotency check)."""
    return world.emails.count(to)


@tool(side_effect=True)
def refund(world: Shop, order_id: int, amount: int) -> str:
    """Refund ``amount`` on an order."""
    world.refunds.append((order_id, amount))
    world.orders[order_id]["status"] = "refunded"
    return "refunded"


@tool(side_effect=True)
def send_email(world: Shop, to: str, body: str) -> str:
    """E-mail a customer."""
    world.emails.append(to)
    return "sent"


TOOLS = [get_order, get_refunds, sent_emails, refund, send_email]


def check(world: Shop, output: object) -> bool:
    """Done: exactly one refund of the right amount and exactly one e-mail."""
    return world.refunds == [(ORDER_ID, AMOUNT)] and world.emails == [CUSTOMER]


def _think(env, step: int) -> None:
    env.record_usage(input_tokens=PROMPT + PER_STEP * step, output_tokens=REPLY, model="gpt-4o-mini")


def _checkpoints(env, **first):
    """(progress, resumed, done, finish): the agent's saved progress, and ``finish(step, **data)`` to save a step."""
    state = env.state
    progress = state.load("progress")
    resumed = progress is not None
    if progress is None:
        progress = {"done": [], **first}
        state.save("progress", progress)
    done = progress["done"]

    def finish(step_name: str, **data) -> None:
        done.append(step_name)
        progress.update(data)
        state.save("progress", progress)

    return progress, resumed, done, finish


def careful_agent(task, env):
    """Checkpoints after each step; on a restart resumes from the checkpoint and checks before each side effect."""
    progress, resumed, done, finish = _checkpoints(env)
    if resumed:
        env.record_usage(input_tokens=RESUME_PROMPT, output_tokens=REPLY, model="gpt-4o-mini")
    if "lookup" not in done:
        _think(env, 0)
        order = env.tools["get_order"](ORDER_ID)
        finish("lookup", amount=order["amount"], customer=order["customer"])
    if "refund" not in done:
        _think(env, 1)
        if not (resumed and env.tools["get_refunds"](ORDER_ID)):  # idempotency: never refund twice
            env.tools["refund"](ORDER_ID, progress["amount"])
        finish("refund")
    if "email" not in done:
        _think(env, 2)
        if not (resumed and env.tools["sent_emails"](progress["customer"])):
            env.tools["send_email"](progress["customer"], "Your order was refunded.")
        finish("email")
    return "refunded and notified"


def restart_agent(task, env):
    """Keeps no checkpoint: after a crash it starts the task over (idempotent, so no duplicate refund)."""
    _think(env, 0)
    order = env.tools["get_order"](ORDER_ID)
    _think(env, 1)
    if not env.tools["get_refunds"](ORDER_ID):
        env.tools["refund"](ORDER_ID, order["amount"])
    _think(env, 2)
    if not env.tools["sent_emails"](order["customer"]):
        env.tools["send_email"](order["customer"], "Your order was refunded.")
    return "refunded and notified"


def naive_agent(task, env):
    """Keeps no checkpoint and checks nothing: a crash after the refund makes it refund again."""
    _think(env, 0)
    order = env.tools["get_order"](ORDER_ID)
    _think(env, 1)
    env.tools["refund"](ORDER_ID, order["amount"])
    _think(env, 2)
    env.tools["send_email"](order["customer"], "Your order was refunded.")
    return "refunded and notified"


def suicidal_agent(task, env):
    """Dies by itself (``os._exit``) in its first process, after a checkpoint; resumes in the next one."""
    if env.state.load("died") is None:
        env.tools["get_order"](ORDER_ID)
        env.state.save("died", os.getpid())
        os._exit(3)
    return careful_agent(task, env)


def pid_agent(task, env):
    """Records the pid of each process it ran in (to show the restarts were real processes); returns what its
    trial's store holds at the end, as JSON (the store is emptied when the trial ends)."""
    pids = env.state.load("pids", [])
    pids.append(os.getpid())
    env.state.save("pids", pids)
    careful_agent(task, env)
    return json.dumps({"pids": env.state.load("pids"), "done": env.state.load("progress")["done"]})


def _save_pid(env) -> None:
    """The pid, in the trial's store and, for a test that must find the process after the trial (when the
    store has been emptied), as a file in the folder ``CRASH_SUPPORT_PIDS`` names."""
    env.state.save("pid", os.getpid())
    folder = os.environ.get("CRASH_SUPPORT_PIDS")
    if folder:
        with open(os.path.join(folder, f"{os.getpid()}.pid"), "w") as fh:
            fh.write(str(os.getpid()))


def hanging_agent(task, env):
    """Saves its pid, then blocks forever in a system call (only a kill ends it)."""
    import select

    _save_pid(env)
    select.select([], [], [])


def escalating_agent(task, env):
    """Looks the order up, then hands the task to a human."""
    env.tools["get_order"](ORDER_ID)
    env.escalate("refunds over 20 need a human")


async def async_careful_agent(task, env):
    """``careful_agent`` as an async agent that "thinks" 10 virtual seconds before each step."""
    progress, resumed, done, finish = _checkpoints(env, pids=[])
    progress["pids"].append(os.getpid())
    env.state.save("progress", progress)
    if "lookup" not in done:
        await asyncio.sleep(10)
        order = env.tools["get_order"](ORDER_ID)
        finish("lookup", amount=order["amount"], customer=order["customer"])
    if "refund" not in done:
        await asyncio.sleep(10)
        if not (resumed and env.tools["get_refunds"](ORDER_ID)):
            env.tools["refund"](ORDER_ID, progress["amount"])
        finish("refund")
    if "email" not in done:
        await asyncio.sleep(10)
        if not (resumed and env.tools["sent_emails"](progress["customer"])):
            env.tools["send_email"](progress["customer"], "Your order was refunded.")
        finish("email")
    return json.dumps({"pids": progress["pids"]})


async def async_hanging_agent(task, env):
    """Saves its pid, then blocks its process forever (only a kill ends it)."""
    import select

    _save_pid(env)
    select.select([], [], [])

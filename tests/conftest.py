"""Shared helpers for the project's own tests."""

from __future__ import annotations

import sys

import pytest

from pytest_agentops import Scenario, ToolError, tool

# every test leaves the process as it found it: tests/process_state.py (fixtures found here by their import)
from process_state import (  # noqa: F401
    _process_state,
    _process_state_per_module,
    pytest_configure,
    pytest_fixture_setup,
)


def _import_the_whole_package() -> None:
    """Import every module of the package once, here. pytester's in-process runs put ``sys.modules`` back after each
    run, so a module first imported inside one is imported again by the next, and pytest rewrites the asserts of
    a plugin's modules as it imports them, without a bytecode cache under PYTHONDONTWRITEBYTECODE: ~100 modules
    parsed, rewritten and compiled again per in-process run (693 rewrites in one test of seven runs). A module
    this session already holds is kept across those runs."""
    import importlib
    import importlib.util
    import pkgutil

    import pytest_agentops

    for module in pkgutil.walk_packages(pytest_agentops.__path__, "pytest_agentops."):
        if module.name.endswith(".__main__"):  # (running it is the command line)
            continue
        try:
            importlib.import_module(module.name)
        except ImportError as exc:  # an optional extra not installed (opentelemetry for ``report.otel``): its
            if (exc.name or "").startswith("pytest_agentops"):  # tests skip or fail on their own; ours raise
                raise
    # and what the HTTP hub imports when a run first needs it (~30 modules of httpcore2 and truststore, 384
    # imports again in four of these files' in-process runs)
    if importlib.util.find_spec("httpcore2") is not None:
        importlib.import_module("httpcore2")


def _import_the_whole_package_writing_caches() -> None:
    """Write the package's bytecode caches, and ``_import_the_whole_package``. Under PYTHONDONTWRITEBYTECODE (this
    machine's CI) nothing writes them, so every child process a test starts compiled the package again: an isolated
    trial's child (0.95 -> 0.66 s of CPU to its first line of the agent's), a command-line run, and a pytest run,
    whose plugin modules pytest rewrites and caches apart. The plain caches are written here (``compileall``: only
    what is stale), pytest's by letting it write while this session imports the rest of the package (each cache
    is written atomically: xdist workers may race). The modules the plugin and this file imported before (~40 of
    ~180) get no rewrite cache, and a module of another distribution first imported here (httpcore2) gets its
    plain cache written where it is installed. A child only reads them, as it would after any install."""
    import compileall

    import pytest_agentops

    for folder in pytest_agentops.__path__:
        compileall.compile_dir(folder, quiet=2)
    writes = sys.dont_write_bytecode
    sys.dont_write_bytecode = False
    try:
        _import_the_whole_package()
    finally:
        sys.dont_write_bytecode = writes


_import_the_whole_package_writing_caches()

#: PYTEST_ADDOPTS for a pytest run in a child process: the installed plugins these child runs have nothing to do with
#: are blocked: langsmith's and hypothesis's (their imports took ~1.4 s of CPU of a child run's ~2.1 s), and respx's,
#: pytest-httpx2's and anyio's (respx's router and anyio's sockets: a further ~1 s of an empty run's 1.8 s, now 0.8 s).
#: No child run here asks for their fixtures or marks but one (``test_plugin.py``), which runs with every plugin.
QUIET_ADDOPTS = "-p no:langsmith_plugin -p no:hypothesispytest -p no:respx -p no:pytest_httpx2 -p no:anyio"


@pytest.fixture
def quiet_children(pytester):
    """The pytest runs this test starts in child processes start without the unrelated plugins (``QUIET_ADDOPTS``):
    what every ``pytester`` run now gets (the fixture below); kept for the tests that ask for it by name."""


class Orders:
    """A tiny world: orders that can be refunded or deleted."""

    def __init__(self) -> None:
        self.orders = {42: {"status": "paid", "amount": 30}, 7: {"status": "paid", "amount": 5}}
        self.refunded: list[int] = []
        self.deleted: list[int] = []


@tool
def lookup_order(world, order_id: int) -> dict:
    """Look up an order by id."""
    return dict(world.orders[order_id])


@tool(side_effect=True)
def refund_order(world, order_id: int) -> str:
    """Refund an order."""
    world.refunded.append(order_id)
    return "refunded"


@tool(destructive=True, scope="orders:write")
def delete_order(world, order_id: int) -> str:
    """Delete an order for good."""
    world.orders.pop(order_id, None)
    world.deleted.append(order_id)
    return "deleted"


ORDER_TOOLS = [lookup_order, refund_order, delete_order]


@tool
def lookup(world, x: int = 0) -> int:
    """A tool the faults fail now and then."""
    return x


def two_lookups(task, env) -> int:
    """An agent that calls ``lookup`` twice, a failed call not retried: how many answered (2 passes)."""
    answered = 0
    for _ in range(2):
        try:
            env.tools["lookup"](1)
            answered += 1
        except ToolError:
            pass
    return answered


def coin_agent(p: float):
    """An agent that completes with true probability ``p`` (its own coin from env.rng)."""

    def agent(task, env):
        env.record_usage(input_tokens=100, output_tokens=20, model="fake-model")
        return "done" if env.rng.random() < p else "gave up"

    return agent


def coin_scenario(p: float, **kwargs) -> Scenario:
    defaults = dict(name=f"coin-{p}", agent=coin_agent(p), task="flip", check=lambda world, out: out == "done",
                    trials=400, seed=1)
    defaults.update(kwargs)
    return Scenario(**defaults)


@pytest.fixture
def orders_world():
    return Orders


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester, whose pytest runs (in-process, subprocesses, their xdist workers) leave out the five installed
    plugins they do not use (``QUIET_ADDOPTS``): langsmith's (it comes with langchain-openai, the ``clients``
    extra; loading it took ~1.5 s of CPU in each new pytest process), hypothesis's, respx's, pytest-httpx2's and
    anyio's. This session itself keeps them, so the plugins still meet here, and one child run keeps them too
    (``test_plugin.py``: a campaign beside respx's and anyio's fixtures and marks). (pytester drops an outer
    PYTEST_ADDOPTS when it starts; this one is set after that.)"""
    monkeypatch.setenv("PYTEST_ADDOPTS", QUIET_ADDOPTS)
    return pytester


@pytest.fixture(autouse=True)
def _quiet_child_runs(monkeypatch):
    """A pytest a test starts in a child process itself (``subprocess``; ``pytester`` sets its own, above) starts
    without those five plugins too (``QUIET_ADDOPTS``: an empty child run took 1.8 s with them, 0.8 s without)."""
    monkeypatch.setenv("PYTEST_ADDOPTS", QUIET_ADDOPTS)


@pytest.fixture(autouse=True)
def _launched_as_pytest(request, monkeypatch):
    """A run inside a test (``pytester``) prints its commands as a ``pytest`` launch whether this suite was
    started with ``pytest``, ``python -m pytest`` or on an xdist worker: the commands tests read are the same."""
    if "pytester" in request.fixturenames:
        monkeypatch.setattr(sys, "argv", ["pytest", *sys.argv[1:]])

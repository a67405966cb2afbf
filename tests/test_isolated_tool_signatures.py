"""An isolated agent's tools have the face they have in-process.

Under process isolation (``isolation="process"``, ``crash_mode="sigkill"``) the agent's ``env.tools`` are
proxies, in its child process, of the parent's tools. They kept only the name, the docstring and the
signature, its annotations unresolved: ``tool_schemas(env.tools.values())`` gave ``"order_id": {}`` and lost
a destructive tool's warning, so a model was shown other tools, and a trial isolated was not the trial
in-process (the careful agent's flaky-high trial 0: 1793 input tokens isolated, 1877 in-process). The proxies
now carry the in-process face: name, qualified name, module, docstring, signature and annotations without
``world``, and the tool's ``ToolSpec`` (``__agentops_tool__``).

The agent and tools here are module-level: a child process imports them from this module.
"""

import dataclasses
import inspect
import os
from pathlib import Path

import pytest

from pytest_agentops import Faults, Scenario, run_campaign, tool
from pytest_agentops.demo import tool_schemas
from pytest_agentops.scenario_file.load import load_scenarios
from pytest_agentops.settings.tools import tool_spec

pytestmark = pytest.mark.skipif(os.name != "posix", reason="process isolation is POSIX")

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


class Desk:
    """A tiny world: orders by id."""

    def __init__(self) -> None:
        self.orders = {42: "paid", 7: "shipped"}


@tool
def find_order(world, order_id: int, note: str = "none") -> dict:
    """Find an order by id; ``note`` is kept with the look-up."""
    return {"id": order_id, "status": world.orders.get(order_id), "note": note}


@tool(destructive=True, scope="orders:write", name="cancel")
def cancel_order(world, order_id: "int", reason: "str" = "asked") -> "str":
    """Cancel an order (string annotations, a name of its own)."""
    world.orders[order_id] = "cancelled"
    return reason


@tool
async def count_orders(world, status: str | None = None) -> int:
    """Count the orders, of one status or all (an async tool)."""
    return sum(status is None or s == status for s in world.orders.values())


TOOLS = [find_order, cancel_order, count_orders]


def _face(fn):
    spec = tool_spec(fn)
    declared = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.name != "fn"}
    return {"signature": inspect.signature(fn), "text": str(inspect.signature(fn)),
            "annotations": dict(fn.__annotations__), "name": fn.__name__, "qualname": fn.__qualname__,
            "doc": fn.__doc__, "module": fn.__module__, "is_async": inspect.iscoroutinefunction(fn),
            "spec": declared, "spec_fn": (spec.fn.__module__, spec.fn.__qualname__)}


def faces(task, env):
    """What the agent sees of its tools: their faces, and the schemas a model would be shown (plain data: it
    comes back from the child process pickled)."""
    return {"faces": {name: _face(fn) for name, fn in env.tools.items()},
            "schemas": tool_schemas(env.tools.values())}


def _seen(tools, **settings):
    """The agent's output (``faces``) in one trial: ``check`` gets it whole, in the parent (a record keeps its
    text only)."""
    seen = []
    scenario = Scenario(name="faces", agent=faces, task="x", world=Desk, tools=tools, trials=1, seed=5,
                        check=lambda world, output: seen.append(output) is None, **settings)
    (record,) = run_campaign(scenario).records
    assert record.outcome == "completed", record.reason
    (output,) = seen
    assert isinstance(output, dict), output  # (not its text: it could not be sent back from the child)
    return output


def _faces_seen(**settings):
    return _seen(TOOLS, **settings)


@pytest.mark.parametrize("isolation", [{"isolation": "process"},
                                       {"faults": Faults(crash_mode="sigkill")}], ids=["process", "sigkill"])
def test_an_isolated_agents_tools_have_their_in_process_signatures(isolation):
    in_process = _faces_seen(faults=Faults.none())
    isolated = _faces_seen(**isolation)
    assert isolated["faces"].keys() == {"find_order", "cancel", "count_orders"}
    for name, face in in_process["faces"].items():
        assert isolated["faces"][name] == face, name
    assert isolated["schemas"] == in_process["schemas"]

    find = isolated["faces"]["find_order"]
    assert find["text"] == "(order_id: int, note: str = 'none') -> dict"
    assert find["annotations"] == {"order_id": int, "note": str, "return": dict}  # ``world`` left out
    assert (find["name"], find["qualname"], find["module"]) == ("find_order", "find_order", __name__)
    assert find["doc"] == find_order.__doc__
    assert find["spec_fn"] == (__name__, "find_order")
    assert find["spec"]["signature"] == find_order.__agentops_tool__.signature
    cancel = isolated["faces"]["cancel"]
    assert cancel["annotations"] == {"order_id": "int", "reason": "str", "return": "str"}
    assert cancel["spec"]["destructive"] and cancel["spec"]["scope"] == "orders:write"
    assert cancel["spec"]["name"] == "cancel" and cancel["name"] == "cancel_order"
    assert isolated["faces"]["count_orders"]["is_async"]
    params = {s["function"]["name"]: s["function"]["parameters"]["properties"] for s in isolated["schemas"]}
    assert params["find_order"] == {"order_id": {"type": "integer"}, "note": {"type": "string"}}
    assert params["cancel"] == {"order_id": {"type": "integer"}, "reason": {"type": "string"}}
    descriptions = {s["function"]["name"]: s["function"]["description"] for s in isolated["schemas"]}
    assert descriptions["cancel"].endswith("Destructive: cannot be undone.")


def test_a_tool_the_child_cannot_import_keeps_its_face_as_data():
    """A tool defined in a function does not import in the child: its face crosses as data (name, qualified
    name, module, docstring, signature, annotations, declaration), the schemas are the same."""

    @tool(destructive=True)
    def local_lookup(world, order_id: int, note: str = "none") -> dict:
        """A tool of this test only."""
        return {"id": order_id}

    isolated, in_process = _seen([local_lookup], isolation="process"), _seen([local_lookup])
    face, expected = isolated["faces"]["local_lookup"], in_process["faces"]["local_lookup"]
    for key in ("signature", "text", "annotations", "name", "qualname", "doc", "module", "is_async", "spec"):
        assert face[key] == expected[key], key
    assert face["spec"]["destructive"] and face["spec"]["name"] == "local_lookup"
    assert isolated["schemas"] == in_process["schemas"]


def _trials(scenario):
    return [(r.outcome, r.reason, r.output, r.input_tokens, r.output_tokens, r.faults, r.tool_calls,
             [(e.kind, e.name, e.outcome, round(e.t, 6)) for e in r.trace]) for r in run_campaign(scenario).records]


@pytest.mark.parametrize("file, name", [("flaky_high.yaml", "flaky-high"),
                                        ("destructive_request.yaml", "destructive-careful")])
def test_the_careful_agents_isolated_trials_are_its_in_process_trials(file, name):
    """The bundled careful agent shows the model ``tool_schemas(env.tools.values())``: isolated, it was shown
    untyped parameters and no destructive warning, so its trials (tokens first) differed from in-process."""
    (scenario,) = [s for s in load_scenarios(SCENARIOS / file) if s.name == name]
    scenario = scenario.replace(trials=3, early_stop=False)
    in_process = _trials(scenario)
    isolated = _trials(scenario.replace(isolation="process"))
    assert isolated == in_process
    assert all(trial[3] > 0 for trial in isolated)
    if name == "flaky-high":
        assert in_process[0][3] == 1877  # trial 0's input tokens, the figure that differed (1793 isolated)


def test_a_tool_with_a_default_that_cannot_cross_keeps_its_signature():
    """A default that does not pickle (a read-only mapping) made the whole signature drop in the child:
    ``(*args, **kwargs)``, and no parameters in the schemas (a second review). It now shows as it does in-process."""
    from types import MappingProxyType

    @tool
    def search(world, query: str, options=MappingProxyType({"limit": 10})) -> list:
        """Search the catalogue."""
        return []

    isolated, in_process = _seen([search], isolation="process"), _seen([search])
    assert isolated["faces"]["search"]["text"] == in_process["faces"]["search"]["text"] == \
        "(query: str, options=mappingproxy({'limit': 10})) -> list"
    assert isolated["schemas"] == in_process["schemas"]

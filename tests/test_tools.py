"""Tool declaration and the wrapper chain as frameworks and agents see it."""

from __future__ import annotations

import asyncio
import inspect
import typing

import pytest

from pytest_agentops import Faults, RateLimited, Scenario, ToolError, ToolTimeout, ToolUnavailable, run_campaign, tool

from conftest import ORDER_TOOLS, Orders, delete_order, lookup_order


def _env_tools(**scenario_kwargs):
    """Run one trial and hand back what the agent saw as env.tools."""
    seen = {}

    def agent(task, env):
        seen.update(env.tools)
        return "ok"

    run_campaign(Scenario(name="peek", agent=agent, world=Orders, tools=ORDER_TOOLS, trials=1, seed=0,
                          **scenario_kwargs))
    return seen


def test_declared_tool_is_still_the_plain_function():
    world = Orders()
    assert lookup_order(world, 42)["status"] == "paid"
    assert delete_order.__agentops_tool__.destructive
    assert delete_order.__agentops_tool__.scope == "orders:write"


def test_wrapped_tool_keeps_name_doc_and_signature_without_world():
    tools = _env_tools()
    wrapped = tools["lookup_order"]
    assert wrapped.__name__ == "lookup_order"
    assert wrapped.__doc__ == "Look up an order by id."
    assert list(inspect.signature(wrapped).parameters) == ["order_id"]
    assert typing.get_type_hints(wrapped) == {"order_id": int, "return": dict}
    assert list(tools) == ["lookup_order", "refund_order", "delete_order"]


def test_async_tool_stays_async():
    @tool
    async def fetch(world, key: str) -> str:
        """Fetch a key."""
        await asyncio.sleep(0)
        return key.upper()

    got = []

    async def agent(task, env):
        assert inspect.iscoroutinefunction(env.tools["fetch"])
        got.append(await env.tools["fetch"]("a"))

    run_campaign(Scenario(name="async-tool", agent=agent, tools=[fetch], trials=1, seed=0,
                          faults=Faults.none()))
    assert got == ["A"]


@pytest.mark.parametrize("kind, exc_type", [("error", ToolError), ("timeout", ToolTimeout),
                                            ("rate_limit", RateLimited)])
def test_failing_faults_raise_documented_types(kind, exc_type):
    seen = []

    def agent(task, env):
        try:
            env.tools["lookup_order"](42)
        except ToolError as exc:
            seen.append(exc)
        return "ok"

    result = run_campaign(Scenario(name=kind, agent=agent, world=Orders, tools=ORDER_TOOLS, trials=1, seed=0,
                                   faults=Faults(rate=1.0, mix={kind: 1})))
    assert len(seen) == 1 and type(seen[0]) is exc_type
    kinds = [(e.kind, e.outcome) for e in result.records[0].trace if e.kind == "fault"]
    assert kinds == [("fault", kind)]
    assert result.records[0].tool_failures == 1


@pytest.mark.parametrize("kind, check", [("malformed", lambda r: "status" not in r),
                                         ("empty", lambda r: r == {})])
def test_result_faults_reach_the_agent_as_bad_values(kind, check):
    seen = []

    def agent(task, env):
        seen.append(env.tools["lookup_order"](42))
        return "ok"

    run_campaign(Scenario(name=kind, agent=agent, world=Orders, tools=ORDER_TOOLS, trials=1, seed=0,
                          faults=Faults(rate=1.0, mix={kind: 1})))
    assert check(seen[0])


def test_outage_takes_one_tool_down_for_the_whole_trial():
    def agent(task, env):
        outcomes = []
        for _ in range(5):
            try:
                env.tools["lookup_order"](42)
                outcomes.append("ok")
            except ToolUnavailable:
                outcomes.append("down")
        return outcomes

    result = run_campaign(Scenario(name="outage", agent=agent, world=Orders, tools=ORDER_TOOLS, trials=1,
                                   seed=0, faults=Faults(outage=1.0, outage_tools=("lookup_order",))))
    assert result.records[0].output == repr(["down"] * 5)


def test_latency_advances_virtual_time_only():
    def agent(task, env):
        for _ in range(20):
            env.tools["lookup_order"](42)
        return env.clock.monotonic()

    result = run_campaign(Scenario(name="slow", agent=agent, world=Orders, tools=ORDER_TOOLS, trials=1, seed=0,
                                   faults=Faults(latency=1.0, latency_s=10.0)))
    assert float(result.records[0].output) > 20  # ~200 virtual seconds, none of them waited for
    assert result.wall_s < 30


def test_scope_not_granted_is_permission_error():
    def agent(task, env):
        with pytest.raises(PermissionError, match="scope 'orders:write'"):
            env.tools["delete_order"](42)
        return "ok"

    result = run_campaign(Scenario(name="scoped", agent=agent, world=Orders, tools=ORDER_TOOLS, trials=1, seed=0,
                                   scopes=["orders:read"]))
    assert result.records[0].outcome == "completed"


def test_secrets_never_reach_the_trace():
    @tool
    def call_api(world, url: str, api_key: str, headers: dict) -> str:
        """Call an API."""
        return "ok"

    def agent(task, env):
        env.tools["call_api"]("https://x", api_key="sk-abcdefghijklmnop",
                              headers={"Authorization": "Bearer sk-abcdefghijklmnop"})

    record = run_campaign(Scenario(name="secret", agent=agent, tools=[call_api], trials=1, seed=0)).records[0]
    assert "sk-abcdefghijklmnop" not in repr(record.trace)


# --- binding a call's arguments without inspect's machinery --------------------------------------------------

def _plain(a, b=2, *, c=3): ...
def _positional_only(a, /, b=2): ...
def _keyword_only(*, a, b=2): ...
def _no_parameters(): ...
def _star_args(a, *rest): ...
def _star_kwargs(a, **rest): ...


_CALLS = [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)]
_KWARGS = [{}, {"a": 1}, {"b": 5}, {"c": 6}, {"a": 1, "b": 5}, {"b": 5, "c": 6}, {"d": 7}, {"a": 1, "c": 6}]


@pytest.mark.parametrize("fn", [_plain, _positional_only, _keyword_only, _no_parameters, _star_args, _star_kwargs])
def test_the_binder_binds_as_inspect_does_or_leaves_the_call_to_it(fn):
    """Every call shape: the binder's (explicit, with defaults) arguments are ``signature.bind``'s and
    ``apply_defaults``'s, or it declines (None) and the tool wrapper asks ``signature.bind``, which names the
    error; it never binds a call ``bind`` refuses."""
    from pytest_agentops.harness.tools import Binder

    signature = inspect.signature(fn)
    binder = Binder(signature)
    bound_some = 0
    for args in _CALLS:
        for kwargs in _KWARGS:
            fast = binder.bind(args, dict(kwargs))
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                assert fast is None, (args, kwargs)
                continue
            explicit = dict(bound.arguments)
            bound.apply_defaults()
            if fast is not None:
                bound_some += 1
                assert fast == (explicit, dict(bound.arguments)), (args, kwargs)
                assert list(fast[1]) == list(bound.arguments), (args, kwargs)  # in the signature's order
    if fn not in (_star_args, _star_kwargs):  # (*args/**kwargs: always left to inspect)
        assert bound_some > 0


# -- switches are True or False; tools of every callable kind get a name or a clear error --------------------
@pytest.mark.parametrize("given", ["false", "no", 2, 0.0, None])
def test_a_switch_given_anything_but_true_or_false_is_refused_naming_where_it_came_from(given):
    """``bool("false")`` is True: ``early_stop="false"`` stopped early, ``enforce="false"`` switched the gate on,
    ``@tool(destructive="false")`` put the tool behind it."""
    from pytest_agentops import ConfigError, Scenario, run_campaign
    from pytest_agentops.precedence import resolve_run
    from pytest_agentops.settings.run import RunSource

    def agent(task, env):
        return "ok"

    for field in ("early_stop", "enforce"):
        with pytest.raises(ConfigError, match=rf"^{field}={given!r} must be True or False$"):
            Scenario(name="s", agent=agent, **{field: given})
    scenario = Scenario(name="s", agent=agent, trials=2)
    if given is not None:  # (None: not given by that source)
        with pytest.raises(ConfigError, match=rf"^arguments: early_stop={given!r} must be True or False$"):
            run_campaign(scenario, early_stop=given)
        with pytest.raises(ConfigError, match=rf"^marker: early_stop={given!r} must be True or False$"):
            resolve_run(scenario, (RunSource("command line"), RunSource("marker", early_stop=given)))
    for switch in ("destructive", "idempotent"):
        if given is None:
            continue
        with pytest.raises(ConfigError, match=rf"^{switch}={given!r} must be True or False$"):
            tool(**{switch: given})


def test_a_switch_may_be_one_or_zero_or_a_numpy_bool_and_is_kept_as_a_bool():
    import numpy as np

    from pytest_agentops import Scenario
    from pytest_agentops.precedence import resolve_run
    from pytest_agentops.settings.run import RunSource

    def agent(task, env):
        return "ok"

    for given, meant in ((1, True), (0, False), (np.bool_(True), True), (np.False_, False)):
        scenario = Scenario(name="s", agent=agent, early_stop=given, enforce=given)
        assert scenario.early_stop is meant and scenario.enforce is meant
        assert resolve_run(scenario, (RunSource("marker", early_stop=given),)).early_stop is meant
        assert tool(destructive=given, name="t")(lambda world: 1).__agentops_tool__.destructive is meant


def test_callable_objects_partials_and_builtins_are_tools_with_a_name_of_their_own():
    import functools

    from pytest_agentops import ConfigError, Scenario, run_campaign
    from pytest_agentops.settings.tools import tool_spec

    class Lookup:
        """Look up an order."""

        def __call__(self, world, order_id: int) -> str:
            return f"order {order_id}: paid"

    def price(world, item: str, currency: str) -> str:
        return f"{item} in {currency}"

    for nameless in (Lookup(), functools.partial(price, currency="EUR"), lambda world, x: x):
        with pytest.raises(ConfigError, match=r"has no name of its own to be called by .*@tool\(name=\.\.\.\)"):
            tool_spec(nameless)
    for bad in ("", "a b", "tab\there", "x" * 129, 3):
        with pytest.raises(ConfigError, match=r"a tool's name is 1 to 128 characters, none of them a space"):
            tool(name=bad)
    assert tool(name="db.lookup_v2-x")(lambda world: 1).__agentops_tool__.name == "db.lookup_v2-x"

    def made(world, city: str) -> str:  # (MCP-style wrappers name functions after the server's tools)
        return city

    made.__name__ = "github.create-issue"
    assert tool_spec(made).name == "github.create-issue"
    made.__name__ = "a b"
    with pytest.raises(ConfigError, match=r"its name 'a b' is not a tool's name .*@tool\(name=\.\.\.\)"):
        tool_spec(made)
    with pytest.raises(ConfigError, match=r"@tool cannot mark <built-in function len>"):
        tool(len)
    assert tool_spec(len).name == "len"  # taken as a plain tool, nothing set on it

    lookup = tool(name="lookup")(Lookup())
    priced = tool(name="price_eur")(functools.partial(price, currency="EUR"))

    def agent(task, env):
        return [env.tools["lookup"](42), env.tools["price_eur"]("tea"), env.tools["len"]("abc")]

    result = run_campaign(Scenario(name="kinds", agent=agent, tools=[lookup, priced, len], trials=1, seed=1,
                                   faults="none"))
    assert result.records[0].output == "['order 42: paid', 'tea in EUR', 3]"

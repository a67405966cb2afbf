"""The seam every harness layer plugs into: ``HarnessLayer`` (per campaign), ``LayerTrial`` (per trial) and
``TrialPort`` (what a layer may use of its trial).

A layer is one module with one ``HarnessLayer`` object. For each campaign the assembler
(``harness/assemble.py``) asks every layer ``for_campaign(scenario, run)``: ``None`` means the layer is off
for this campaign (so a layer a scenario does not use costs nothing per trial); otherwise the returned
object's ``attach(trial)`` is called for every trial and gives a ``LayerTrial`` (or None). The trial then
calls the hooks each ``LayerTrial`` overrides, in the layers' order:

==========================  ======================================================================
``check()``                  at every harness call of the agent (tool, model, confirmation, clock):
                             raise to end the trial (a decision already taken stays taken)
``before_step(kind)``        a tool (``"tool"``) or model (``"model"``) call starts
``permit(call)``             may the agent call this tool at all (scopes)? raise to refuse: the call
                             is not counted and takes no call index
``before_tool(call)``        a tool call, before the tool runs: refuse it or fail it (raise), delay it
``on_tool_not_run(call)``    a ``before_tool`` refused or failed the call: undo what this layer took for it
``on_tool_start(call)``      every layer let the call through: the tool runs next
``after_tool(call, result)`` the tool returned: may change the result the agent sees (returns it)
``on_tool_recorded(...)``    a tool call was counted and traced, with its outcome (also failed ones)
``on_model_request(...)``    a request of ``tokens`` prompt tokens is about to reach a model
``on_usage(usage, meter)``   a model call was metered
``wrap_agent(agent)``        the callable the trial runs as the agent (restarts, child processes)
``settle(exc)``              the agent's run ended (``exc``: how): may replace ``exc`` by a decision
``close()``                  the trial is over, before it is judged (release routes, files)
``record()``                 the layer's typed record of the trial (``TrialRecord.layers[name]``)
==========================  ======================================================================

A layer that needs a campaign-wide resource (a checkpoint file, the HTTP interception) returns an object
with a ``close()`` too, called when the campaign ends. A layer gives the agent something through
``trial.provide(name, value)``: ``env.llm``, ``env.state`` and ``env.confirm`` are provided this way.
A layer's settings are frozen values (``pytest_agentops.settings``), its record a frozen dataclass with a
``to_dict()``, and its metrics are registered with ``metrics.register_metric`` when its module loads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import hide_own_frames

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    from ..plan import FaultPlan
    from ..records import LayerRecord
    from ..scenario import Scenario
    from ..settings.run import RunSettings
    from ..settings.tools import ToolSpec
    from ..vtime.clock import TrialClock
    from .meter import TokenMeter, Usage
    from .trace import Trace


class ToolCall:
    """One tool call as it passes through the layers: the tool, its arguments, and what layers decided."""

    __slots__ = ("approval", "arguments", "explicit", "fault", "fault_id", "index", "spec")

    def __init__(self, spec: ToolSpec, explicit: dict[str, Any], arguments: dict[str, Any]):
        self.spec = spec
        self.explicit = explicit  # the arguments the call passed
        self.arguments = arguments  # with defaults applied
        self.index = -1  # 0-based: the how-manieth permitted call of this tool in the trial (set after ``permit``)
        self.fault: str | None = None  # a result-shaping fault planned for it (malformed, empty)
        self.fault_id = ""  # the id of the fault drawn for it (``plan.fault_id``), when one fires
        self.approval: Any = None  # the confirmation that covers it, if any


@runtime_checkable
class TrialPort(Protocol):
    """What a layer may use of its trial (``harness/context.TrialContext`` implements it)."""

    scenario: str
    index: int
    seed: int
    world: Any
    plan: FaultPlan
    clock: TrialClock
    trace: Trace
    meter: TokenMeter

    def abort(self, outcome: str, reason: str) -> None:
        """End the trial with this outcome: every later harness call of the agent raises."""

    def escalate(self, reason: str) -> None:
        """Hand the task to a human for the agent (raises ``Escalated``)."""

    def check_alive(self) -> None:
        """Raise when the trial has been ended."""

    def provide(self, name: str, value: Any) -> None:
        """Give the agent (``env``) or other layers ``value`` under ``name`` (llm, state, confirm, ...)."""

    def service(self, name: str) -> Any:
        """What a layer provided under ``name`` (None if none did)."""

    def record_violation(self, kind: str, tool: str, arguments: Mapping[str, Any], *, blocked: bool,
                         outcome: str | None = None, **data: Any) -> None:
        """Count and trace a violation of the trial's rules (``kind:tool`` in ``TrialRecord.violations``)."""

    def record_tool_call(self, spec: ToolSpec, arguments: Mapping[str, Any], outcome: str, *, result: Any = None,
                         error: str | None = None) -> None:
        """Count and trace one tool call with its outcome."""

    def clock_advance(self, seconds: float) -> None:
        """Move the trial's virtual clock forward (simulated latency)."""


class LayerTrial:
    """A layer's part of one trial. Override the hooks the layer needs; the others cost nothing."""

    __slots__ = ()

    def check(self) -> None:
        """At every harness call: raise to end the trial."""

    def before_step(self, kind: str) -> None:
        """A tool or model call starts."""

    def permit(self, call: ToolCall) -> None:
        """May the agent call this tool at all? Raise to refuse (the call takes no call index)."""

    def before_tool(self, call: ToolCall) -> None:
        """Before the tool runs: raise to refuse or fail the call."""

    def on_tool_not_run(self, call: ToolCall) -> None:
        """A ``before_tool`` of this or a later layer refused or failed the call: it never reaches its tool."""

    def on_tool_start(self, call: ToolCall) -> None:
        """Every layer let the call through; the tool runs next."""

    def after_tool(self, call: ToolCall, result: Any) -> Any:
        """The tool returned ``result``; return what the agent sees."""
        return result

    def on_tool_recorded(self, spec: ToolSpec, arguments: Mapping[str, Any], outcome: str) -> None:
        """A tool call was counted with ``outcome`` (ok, a fault kind, raised, blocked, ...)."""

    def on_model_request(self, tokens: int, model: str) -> None:
        """A request of ``tokens`` prompt tokens is about to reach ``model``."""

    def on_usage(self, usage: Usage, meter: TokenMeter) -> None:
        """A model call was metered."""

    def wrap_agent(self, agent: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
        """The callable the trial runs as the agent."""
        return agent

    def settle(self, exc: BaseException | None) -> BaseException | None:
        """The agent's run ended: return how to judge it (``exc``, or a decision of this layer's)."""
        return exc

    def close(self) -> None:
        """The trial is over (before it is judged)."""

    def record(self) -> LayerRecord | None:
        """This layer's record of the trial, or None."""
        return None


#: The hooks a trial calls, in the order of this table (``assemble`` lists, per hook, the layers overriding it).
#: (``on_usage`` is a listener of the trial's meter; ``wrap_agent`` and ``record`` are called once, by the trial.)
HOOKS = ("check", "before_step", "permit", "before_tool", "on_tool_not_run", "on_tool_start", "after_tool",
         "on_tool_recorded", "on_model_request", "settle", "close")

_WITHOUT: dict[tuple[type, frozenset[str]], type] = {}


def without_hooks(cls: type[LayerTrial], hooks: Iterable[str]) -> type[LayerTrial]:
    """``cls`` with the hooks named in ``hooks`` left as ``LayerTrial``'s, so that a trial never calls them.

    A layer's campaign part picks this class when its settings make those hooks do nothing for the whole
    campaign (no scopes: no ``permit``; no ``max_steps``: no ``before_step``): a hook a trial calls costs on
    every tool call, one that does nothing too. The class is made once per (``cls``, hooks)."""
    names = frozenset(hooks)
    if not names:
        return cls
    unknown = names - {*HOOKS, "on_usage", "record"}
    if unknown:
        raise ValueError(f"without_hooks: {sorted(unknown)} are not hooks of a LayerTrial")
    key = (cls, names)
    found = _WITHOUT.get(key)
    if found is None:
        namespace: dict[str, Any] = {name: getattr(LayerTrial, name) for name in names}
        namespace.update(__slots__=(), __module__=cls.__module__, __qualname__=cls.__qualname__,
                         __doc__=cls.__doc__)
        found = _WITHOUT[key] = type(cls.__name__, (cls,), namespace)
    return found


@runtime_checkable
class HarnessLayer(Protocol):
    """A harness layer. ``name`` keys its record (``TrialRecord.layers[name]``) and its services.

    Built-in layers implement ``for_campaign(scenario, run)`` (the part of the layer that is on for one
    campaign, or None) and are listed in ``harness/assemble.BUILTIN_LAYERS``; a layer of your own, given in
    ``Scenario(layers=[...])``, may be just this: a ``name`` and ``attach(trial) -> LayerTrial | None``.
    """

    name: str

    def attach(self, trial: TrialPort) -> LayerTrial | None: ...


class CampaignLayer(Protocol):
    """A built-in layer: ``for_campaign`` gives the part that is on for this campaign (None: off)."""

    name: str

    def for_campaign(self, scenario: Scenario, run: RunSettings) -> HarnessLayer | None: ...

"""``TrialContext``: one trial's harness state (world, plan, clock, trace, meter, counters) and the hooks of
the layers attached to it (``harness/layer.py``). It is the ``TrialPort`` layers see.

Layers get the context through a weak proxy, so nothing a layer holds keeps a finished trial alive: it is
freed by reference counting the moment the runner drops it, not by the cyclic collector. Once the trial
has been ended (``abort``), an abandoned agent thread that keeps calling tools gets ``TrialAborted`` and
changes nothing.
"""

from __future__ import annotations

import numbers
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, Escalated, TrialAborted, hide_own_frames
from ..process.trial_random import HARNESS, TOOLS, TrialRandom, drawn_from
from ..records import not_json
from ..stable_repr import exact_str
from ..vtime.clock import TrialClock
from .layer import HOOKS, LayerTrial
from .meter import TokenMeter, Usage
from .secrets import mask_secret_keys, redact_short
from .trace import LONG_ARGUMENT_CHARS, PLAIN, Trace, shown_repr

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    from ..plan import FaultPlan
    from ..settings.prices import Price
    from ..settings.tools import ToolSpec

#: Tool-call outcomes of calls that never reached the tool: not counted as tool calls.
NOT_REACHED = frozenset({"blocked", "denied_scope", "bad_arguments"})
#: Tool-call outcomes whose tool ran (its result is traced).
RAN = frozenset({"ok", "malformed", "empty"})
#: The longest escalation reason kept (in the record, the trace and the reports): an agent's words, cut.
REASON_LIMIT = 2000
#: Seconds ``TrialContext.abort`` waits for the context's lock before deciding without it (an agent holding it)
ABORT_LOCK_WAIT_S = 1.0


def _cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, redacted before it is cut (a secret at the cut is never half shown)."""
    return text if len(text) <= limit else redact_short(text, limit, f"... ({len(text):,} characters)")


def _safe_str(value: Any) -> str:
    """``str`` of an agent's object, which may raise (a hostile ``__str__`` escalates with its type's name)."""
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__} whose str() raised>"


def _nothing() -> None:
    pass


_NO_HOOKS: dict[str, tuple[Callable[..., Any], ...]] = dict.fromkeys(HOOKS, ())  # (copied: one per trial)
_OVERRIDES: dict[type, tuple[tuple[str, ...], bool, bool, bool]] = {}


def _overrides(cls: type) -> tuple[tuple[str, ...], bool, bool, bool]:
    """The hooks (``HOOKS``) a ``LayerTrial`` class overrides, and whether it overrides ``on_usage``,
    ``wrap_agent`` and ``record``: worked out once per class, not per trial (a hook a layer leaves as it is
    is never called)."""
    found = _OVERRIDES.get(cls)
    if found is None:
        found = (tuple(h for h in HOOKS if getattr(cls, h, None) is not getattr(LayerTrial, h)),
                 *(getattr(cls, h, None) is not getattr(LayerTrial, h) for h in ("on_usage", "wrap_agent", "record")))
        if len(_OVERRIDES) < 1024:  # layer classes made on the fly (tests) must not grow it for ever
            _OVERRIDES[cls] = found
    return found


def _weak(ref: weakref.ReferenceType[Any], name: str) -> Callable[..., Any]:
    """The method ``name`` of the context behind ``ref``, called through that weak reference (the clock and
    meter the context owns then hold no reference back to it); does nothing once the context is gone."""

    def call(*args: Any, **kwargs: Any) -> Any:
        ctx = ref()
        return None if ctx is None else getattr(ctx, name)(*args, **kwargs)

    return call


class TrialContext:
    """Everything one trial's harness layers share."""

    def __init__(self, *, scenario: str, index: int, seed: int, world: Any, plan: FaultPlan,
                 prices: Mapping[str, Price], virtual_timeout_s: float | None,
                 clock_source: Callable[[], float] | None = None):
        self.scenario = scenario
        self.index = index
        self.seed = seed
        self.world = world
        self.plan = plan
        #: what the stdlib ``random`` functions draw from while a tool of this trial runs: the tools' own stream,
        #: so an isolated agent's tools (run here) and its own draws (in its process) are never one stream twice
        self.tool_random = TrialRandom(seed, TOOLS)
        self._harness_random: TrialRandom | None = None  # (``harness_random``)
        self._abort: TrialAborted | None = None
        self._late_call: Callable[[], None] | None = None  # set when the trial has been judged (``end``)
        me = weakref.ref(self)  # (one reference for the callbacks)
        self.clock = TrialClock(source=clock_source, limit_s=virtual_timeout_s, on_advance=_weak(me, "check_alive"),
                                on_limit=_weak(me, "abort"), before_advance=_weak(me, "raise_if_ended"))
        self.trace = Trace(self.clock.monotonic, on_full=_weak(me, "_trace_full"))
        self.meter = TokenMeter(prices)
        self.meter.subscribe(_weak(me, "_on_usage"))
        self.tool_calls = 0
        self.tool_failures = 0
        self.destructive_attempts = 0
        self.violations: list[str] = []
        self.unconfirmed_destructive = 0
        self.blocked = 0
        self.escalation: tuple[float, str] | None = None
        self.layers: dict[str, LayerTrial] = {}
        self.wrappers: list[LayerTrial] = []  # the layers that wrap the agent (``wrap_agent``), in order
        self.recorders: list[tuple[str, Callable[[], Any]]] = []  # each layer's ``record``, in the layers' order
        self._services: dict[str, Any] = {}
        self.hooks: dict[str, tuple[Callable[..., Any], ...]] = _NO_HOOKS.copy()
        self._lock = threading.Lock()
        self._usage_traced: threading.local | None = None  # made when a model call is first metered

    @property
    def usage_traced(self) -> threading.local:
        """``.on`` while the HTTP fake or the live boundary meters a call (it writes its own event)."""
        local = self._usage_traced
        if local is None:
            with self._lock:
                if self._usage_traced is None:
                    self._usage_traced = threading.local()
                local = self._usage_traced
        return local

    def tool_random_of(self, active: TrialRandom | None) -> TrialRandom:
        """The tool stream of a tool called where ``active`` is what ``random`` draws from: the trial's
        (``tool_random``), or, in a thread job of the trial (``asyncio.to_thread``), that job's own, as the job's
        other draws are: jobs running at once draw apart, not from one stream in the order their threads run."""
        return self.tool_random.in_job(active.job) if active is not None else self.tool_random

    @property
    def harness_random(self) -> TrialRandom:
        """What ``random`` draws from in the scenario's own layers' code (and, for an isolated agent, in what the
        harness runs for it in the test process): a stream of the trial's own, so that such a layer's draws
        replay with the trial and neither move the agent's nor repeat them, in-process or isolated."""
        found = self._harness_random
        if found is None:
            with self._lock:
                if self._harness_random is None:
                    self._harness_random = TrialRandom(self.seed, HARNESS)
                found = self._harness_random
        return found

    def port(self) -> Any:
        """What a layer gets: a weak proxy of this context."""
        return weakref.proxy(self)

    def add_layer(self, name: str, part: LayerTrial, drawing: TrialRandom | None = None) -> None:
        """Attach a layer's part of this trial: its overridden hooks join the hook lists, in order (``drawing``:
        what ``random`` draws from in them, ``harness_random`` for a layer of the scenario's own)."""
        self.layers[name] = part
        hooks = self.hooks
        overridden, usage, wraps, records = _overrides(type(part))
        for hook in overridden:
            method = getattr(part, hook)
            hooks[hook] = (*hooks[hook], method if drawing is None else drawn_from(drawing, method))
        if usage:
            self.meter.subscribe(part.on_usage if drawing is None else drawn_from(drawing, part.on_usage))
        if wraps:
            self.wrappers.append(part)
        if records:
            # (a layer of the scenario's own: its record checked as made, its ``to_dict`` drawing as its hooks do)
            self.recorders.append((name, part.record if drawing is None
                                   else drawn_from(drawing, _checked_record(name, part.record))))

    def wrap_agent(self, agent: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
        """The callable the trial runs as the agent: ``agent`` wrapped by the layers that wrap it, in order."""
        for part in self.wrappers:
            agent = part.wrap_agent(agent, is_async)
        return agent

    def layer_records(self) -> dict[str, Any]:
        """Every layer's record of the trial (``TrialRecord.layers``), by layer name, in the layers' order."""
        return {name: rec for name, record in self.recorders if (rec := record()) is not None}

    def close_layers(self) -> None:
        """The trial is over: every layer's ``close`` (each at most once, even if called again)."""
        hooks, self.hooks["close"] = self.hooks["close"], ()
        for close in hooks:
            close()

    # -- services ---------------------------------------------------------------------------------------
    def provide(self, name: str, value: Any) -> None:
        """Give the agent (``env``) or other layers ``value`` under ``name``."""
        self._services[name] = value

    def service(self, name: str) -> Any:
        """What a layer provided under ``name``, or None."""
        return self._services.get(name)

    # -- liveness ---------------------------------------------------------------------------------------
    def abort(self, outcome: str, reason: str) -> None:
        """End the trial with this outcome (the first decision wins, and stays: every later harness call of
        the agent raises again, and the trial is judged by it whatever the agent catches).

        Never waits long for the context's lock: the watchdog and the judging thread call this, and an agent
        can reach the lock (``env``) and keep it; held past ``ABORT_LOCK_WAIT_S``, the decision is taken
        without it (the first one still wins unless two arrive in that very moment)."""
        decided = Escalated(reason) if outcome == "escalated" else TrialAborted(outcome, reason)
        lock = self._lock
        if lock.acquire(timeout=ABORT_LOCK_WAIT_S):
            try:
                if self._abort is None:
                    self._abort = decided
            finally:
                lock.release()
        elif self._abort is None:
            self._abort = decided

    def _trace_full(self, reason: str) -> None:
        """The trace holds all the events a trial may trace (``TRACE_EVENTS``): the trial ends as an ``error``."""
        self.abort("error", reason)

    def end(self, late_call: Callable[[], None] | None = None) -> None:
        """The trial has been judged: a harness call made now (from a thread the agent left running) is
        refused, and ``late_call`` is told of it."""
        self._late_call = late_call or _nothing
        self.abort("ended", "the trial has ended: a call from a thread its agent left running")

    def check_alive(self) -> None:
        """Raise ``TrialAborted`` in the agent when the trial has been ended; then the layers' checks."""
        self.raise_if_ended()
        for check in self.hooks["check"]:
            check()

    def stop_if_decided(self) -> None:
        """Raise the trial's decision (``abort``) while the trial still runs; nothing once it has been judged (a
        call that changes nothing, from a thread its agent left: ``env.trace.add``)."""
        if self._abort is not None and self._late_call is None:
            self.raise_if_ended()

    def raise_if_ended(self) -> None:
        """Raise the trial's decision again when one has been taken (``abort``)."""
        if self._abort is not None:
            if self._late_call is not None:
                self._late_call()
            aborted = self._abort
            raise Escalated(aborted.reason) if isinstance(aborted, Escalated) else TrialAborted(aborted.outcome,
                                                                                                 aborted.reason)

    def begin_step(self, kind: str) -> None:
        """A tool (``kind="tool"``) or model (``"model"``) call starts: liveness, then the layers' hooks."""
        if self._abort is not None:  # (``check_alive``, written out: this runs at every call)
            self.raise_if_ended()
        hooks = self.hooks
        for check in hooks["check"]:
            check()
        for hook in hooks["before_step"]:
            hook(kind)

    @property
    def aborted(self) -> TrialAborted | None:
        return self._abort

    def clock_advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    # -- what layers report -------------------------------------------------------------------------------
    def record_tool_call(self, spec: ToolSpec, arguments: Mapping[str, Any], outcome: str, *,
                         result: Any = None, error: str | None = None) -> None:
        """Count and trace one tool call; ``ok``/``malformed``/``empty`` went through, the rest did not."""
        with self._lock:
            if outcome not in NOT_REACHED:
                self.tool_calls += 1
                if outcome != "ok":
                    self.tool_failures += 1
            if spec.destructive:
                self.destructive_attempts += 1
        # a dict of plain arguments (most calls) is held as a copy until the trace is kept; anything else is
        # scrubbed into the trace's own (the error, and the result as traced, are text or numbers)
        if type(arguments) is dict:
            plain, long = True, False
            for value in arguments.values():  # (a loop: cheaper here than PLAIN.issuperset(map(type, ...)))
                cls = type(value)
                if cls not in PLAIN:
                    plain = False
                    break
                if cls is str and len(value) > LONG_ARGUMENT_CHARS:
                    long = True
            held = (self.trace.arguments(arguments, True) if long else arguments.copy()) if plain \
                else self.trace.arguments(arguments, False)
        else:
            plain, held = False, self.trace.arguments(dict(arguments), False)
        data: dict[str, Any] = {"destructive": spec.destructive, "arguments": held}
        if error is not None:
            data["error"] = error
            plain = plain and type(error) is str
        if outcome in RAN and result is not None:
            data["result"] = traced = result if type(result) in _PLAIN_RESULTS else _short(result)
            plain = plain and type(traced) in PLAIN
        if plain:
            self.trace.add_plain("tool_call", spec.name, outcome, data)
        else:
            self.trace.add_data("tool_call", spec.name, outcome, data)
        for hook in self.hooks["on_tool_recorded"]:
            hook(spec, arguments, outcome)

    def record_violation(self, kind: str, tool: str, arguments: Mapping[str, Any], *, blocked: bool,
                         outcome: str | None = None, **data: Any) -> None:
        """Count and trace a violation (``kind:tool`` in the record's violations; ``data`` goes to the trace
        event, whose outcome is ``blocked``/``allowed`` unless given)."""
        with self._lock:
            if kind == "unconfirmed_destructive_call":
                self.unconfirmed_destructive += 1
            if blocked:
                self.blocked += 1
            self.violations.append(f"{kind}:{tool}")
        self.trace.add("violation", tool, outcome or ("blocked" if blocked else "allowed"), kind=kind,
                       arguments=dict(arguments), **data)

    def _on_usage(self, usage: Usage, meter: TokenMeter) -> None:
        quiet = self._usage_traced
        if quiet is not None and getattr(quiet, "on", False):  # the fake model wrote this call's model_call event
            return
        self.trace.add("model_call", usage.model, "ok", input_tokens=usage.input_tokens,
                       output_tokens=usage.output_tokens)

    def before_model_request(self, tokens: int, model: str) -> None:
        """A request of ``tokens`` prompt tokens is about to reach ``model`` (the per-request budget)."""
        for hook in self.hooks["on_model_request"]:
            hook(tokens, model)

    def escalate(self, reason: str) -> None:
        """Hand the task to a human: record when and why, then end the trial (for good: an agent that catches
        the ``Escalated`` gets it again at its next harness call, and the trial is judged escalated)."""
        self.check_alive()
        t = self.clock.monotonic()
        reason = _cut(exact_str(reason if issubclass(type(reason), str) else _safe_str(reason)), REASON_LIMIT)
        with self._lock:
            if self.escalation is None:
                self.escalation = (t, reason)
        self.trace.add("escalation", "human", "escalated", reason=reason)
        self.abort("escalated", reason)
        raise Escalated(reason)

    def report_confidence(self, confidence: Any) -> None:
        """``env.report_confidence``: validate, trace, and let the layers that listen judge it."""
        self.check_alive()
        value = _confidence(confidence)
        self.trace.add("confidence", "agent", "reported", confidence=value)
        listener = self.service("on_confidence")
        if listener is not None:
            listener(value)


def _confidence(confidence: Any) -> float:
    """A reported confidence as an exact float in [0, 1]: an int or float (its own class's, numpy's) or a
    ``Decimal``, read as a float first, so that the range is judged by float comparisons, not the agent's own
    (a float subclass whose comparisons all said yes recorded nan, inf, 5 and -5)."""
    value: float | None = None
    if not isinstance(confidence, bool) and isinstance(confidence, numbers.Number):
        try:
            value = float.__float__(confidence) if isinstance(confidence, float) else float(confidence)
        except (TypeError, ValueError, OverflowError):  # (a complex number, an agent's own that will not say)
            value = None
    if value is not None and 0.0 <= value <= 1.0:  # (exact floats: nan fails both comparisons)
        return value
    shown = repr(confidence) if type(confidence) in (int, float, str, bool, type(None)) else (
        float.__repr__(value) if value is not None else f"<{type(confidence).__name__}>")
    raise ValueError(f"env.report_confidence: confidence={shown} must be a number between 0 and 1")


def _checked_record(layer: str, record: Callable[[], Any]) -> Callable[[], Any]:
    """``record`` of a layer of the scenario's own, checked as it is made: a record the reports cannot write (no
    ``to_dict()``, or one giving more than JSON data) is a ``ConfigError`` naming the layer, at the first trial (the
    session's reports were lost at its end, under a ``TypeError`` from the JSON writer)."""

    def checked() -> Any:
        made = record()
        if made is None:
            return None
        to_dict = getattr(made, "to_dict", None)
        if not callable(to_dict):
            raise ConfigError(f"layer {layer!r}: its record {made!r:.100} has no to_dict(); a layer's record is a "
                              "frozen dataclass whose to_dict() gives its JSON data (pytest_agentops.records."
                              "LayerRecord)")
        data = to_dict()
        found = not_json(data) if isinstance(data, dict) else f"a {type(data).__name__}, not a dict"
        if found:
            raise ConfigError(f"layer {layer!r}: its record's to_dict() gave {found}; the reports hold JSON data "
                              "(a dict of str keys to str, int, float, bool, None, and lists and dicts of them)")
        return made

    return checked


_PLAIN_RESULTS = frozenset({int, float, bool})  # results traced as they are (``_short`` keeps them)


def _short(value: Any, limit: int = 200) -> Any:
    """A tool's result as traced: numbers as they are, anything else as text cut to ``limit`` characters; the value
    of a secret-named key of its dicts masked first (as an argument's is), and the text redacted before it is
    cut (a secret straddling the cut is not left half-shown)."""
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return redact_short(value if isinstance(value, str) else shown_repr(mask_secret_keys(value)), limit)

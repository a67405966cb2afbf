"""The trace of one trial as it is written: ordered events (``records.TraceEvent``) with virtual time, tokens
and outcome, secrets redacted (``harness.secrets``: secret shapes, the environment's secret values, the
values of secret-named keys).

Events carry only values that are a pure function of the trial seed (virtual time, never wall time),
so the same seed gives the same trace and a replayed trial can be compared event by event. An event whose
data are plain is held as added (``PendingEvent``) and scrubbed once, when the trace is read or kept: a
campaign keeps only some passing trials' traces (``Scenario.keep_traces``), and the others are never
scrubbed at all.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .._frozen import FrozenMap, freeze
from ..errors import hide_own_frames
from ..records import TraceEvent
from ..stable_repr import exact_str, stable_repr, without_addresses
from .meter import MOST_TOKENS
from .secrets import REDACTED, SECRET_KEY, is_secret_number, redact, redact_label, redact_short, redact_text

__tracebackhide__ = hide_own_frames

__all__ = ["REDACTED", "Trace", "redact"]


#: ints from here on (in size) are traced as text: ``json`` cannot write them (Python's 4,300-digit limit)
_LONG_INT = 10 ** 4000


def shown_repr(value: Any) -> str:
    """``repr(value)`` the same in every process (``stable_repr``: no addresses, sets in order); a ``repr`` that
    raises ``ValueError`` (a container holding an int beyond Python's 4,300-digit limit) gives a placeholder
    naming the type instead."""
    try:
        return stable_repr(value)
    except ValueError:
        return f"<{type(value).__name__} whose repr() raised ValueError>"


def _number(value: int | float) -> int | float | str:
    """A number as a report can carry it: a float that is not finite (``nan``, ``inf``) and an int too long for
    ``json`` are traced as text, as other values JSON has no form for are."""
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(float(value))
    return value if -_LONG_INT < value < _LONG_INT else f"<int of {int(value).bit_length()} bits>"


def _plain(value: Any) -> Any:
    """A JSON-friendly, deterministic rendering of an event payload value (exact types only: ``exact_str``)."""
    if is_secret_number(value):
        return REDACTED
    if issubclass(type(value), str):
        return without_addresses(exact_str(value))
    if value is None or isinstance(value, bool):
        return value
    if issubclass(type(value), (int, float)):  # (an ``IntEnum`` member as its number, as the JSON report writes it)
        number = int.__int__(value) if issubclass(type(value), int) else float.__float__(value)
        return REDACTED if is_secret_number(number) else _number(number)
    if isinstance(value, Mapping):
        return {_key_text(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        item = value.item()  # (a Python number, bool or str; numpy's long double gives itself: shown as text)
        if type(item) in (int, float):
            return REDACTED if is_secret_number(item) else _number(item)
        return item if item is None or type(item) in (bool, str) else exact_str(shown_repr(item))
    return exact_str(redact_text(stable_repr(value)))  # (an object's repr may show a secret it holds)


def _key_text(key: Any) -> str:
    """A dict key as a trace's (JSON's) key: a string as it is, a tuple or frozenset as its stable ``repr``,
    anything else as its ``str`` without addresses."""
    if type(key) is str:
        return without_addresses(key)
    if issubclass(type(key), str):  # (an agent's own ``str``: its characters, its ``__str__`` not asked)
        return without_addresses(exact_str(key))
    return exact_str(stable_repr(key) if isinstance(key, (tuple, frozenset)) else without_addresses(str(key)))


_secret_keys: dict[str, bool] = {}  # key -> whether it names a secret (a cache: the same few keys recur)


def _scrub(value: Any) -> Any:
    """``freeze(_plain(redact(value)))`` in one pass, with fast paths for the plain values events mostly
    carry: the result is deeply frozen (mappings as ``FrozenMap``, sequences as tuples)."""
    cls = type(value)
    if cls is str:
        return without_addresses(redact_text(value))
    if cls is int:
        return REDACTED if is_secret_number(value) else _number(value)
    if cls is float:
        return REDACTED if is_secret_number(value) else _number(value)
    if value is None or cls is bool:
        return value
    if cls is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str and issubclass(type(k), str):  # (an agent's own ``str`` key: its characters)
                k = exact_str(k)
            if type(k) is str:
                secret = _secret_keys.get(k)
                if secret is None:
                    secret = bool(SECRET_KEY.search(k))
                    if len(_secret_keys) < 4096:
                        _secret_keys[k] = secret
                out[k] = REDACTED if secret else _scrub(v)
            else:
                out[_key_text(k)] = freeze(_plain(redact(v)))
        return FrozenMap(out)
    if cls is list or cls is tuple:
        return tuple(_scrub(v) for v in value)
    return freeze(_plain(redact(value)))  # (``redact`` reads the agent's own containers as built-in ones)


PLAIN = frozenset({str, int, float, bool, type(None)})  #: the types of the values an event holds unscrubbed

#: The most characters of data one event of the agent's own keeps (``env.trace.add``; counted by ``_chars``),
#: and all the agent's events of one trial together: ``Trace.add_agents``
AGENT_EVENT_CHARS = 64 * 1024
AGENT_TRACE_CHARS = 1024 * 1024
#: The longest kind, name or outcome an event of the agent's own keeps (longer: cut, redacted first)
AGENT_LABEL_CHARS = 256
#: Tool-call arguments: a text longer than ``LONG_ARGUMENT_CHARS`` is charged to the trial's share of long texts,
#: ``ARGUMENTS_TRACE_CHARS`` (an event's arguments at most ``AGENT_EVENT_CHARS``); past them it is traced cut to
#: ``LONG_ARGUMENT_CHARS`` (the tool gets it whole). Shorter texts are always traced whole.
LONG_ARGUMENT_CHARS = 256
ARGUMENTS_TRACE_CHARS = 1024 * 1024
_PAST_AN_EVENT = f"more than {AGENT_EVENT_CHARS:,} characters of arguments (an event keeps at most that)"
#: Events one trial's trace keeps (its ``outcome`` event besides): the next one ends the trial (``on_full``) and
#: is kept as a ``trace/events/cut`` note instead; later ones are dropped. A runaway loop of tool calls otherwise
#: grew pytest by ~500 bytes a call for every kept trace (200,000 calls: ~100 MiB).
TRACE_EVENTS = 20_000


def _chars(value: Any, budget: int) -> int:
    """The size of an event's data, counted up to just past ``budget``: a text (or bytes) as its length plus
    one, a container as 1 plus what it holds (keys too), any other value as 8 (its ``repr``, once scrubbed, is
    a text). Subclasses of texts and containers count as their base does, read with the base's own methods
    (their own are not asked). Stops counting past ``budget`` (a container holding itself, 100 MB of text or
    ten million empty ones are not walked in full)."""
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        cls = type(item)
        if issubclass(cls, str):
            total += str.__len__(item) + 1
        elif issubclass(cls, (bytes, bytearray)):
            total += (bytes.__len__(item) if issubclass(cls, bytes) else bytearray.__len__(item)) + 1
        elif issubclass(cls, (dict, FrozenMap)):
            mapping = issubclass(cls, dict)
            total += 1
            if total + (dict.__len__(item) if mapping else len(item)) > budget:  # (each member adds one at least)
                total = budget + 1
                break
            for pair in dict.items(item) if mapping else item.items():
                stack += pair
        elif issubclass(cls, (list, tuple, set, frozenset)):
            base = next(b for b in (list, tuple, set, frozenset) if issubclass(cls, b))
            total += 1
            if total + base.__len__(item) > budget:
                total = budget + 1
                break
            stack.extend(base.__iter__(item))
        else:
            total += 8
        if total > budget:
            break
    return total


def _holdable(data: dict[str, Any]) -> dict[str, Any] | None:
    """``data`` as it can be held unscrubbed until the trace is closed: scalars, and mappings of scalars one
    level down (copied: nothing the agent holds can change them later); None when it holds anything else."""
    out = data
    for k, v in data.items():
        cls = type(v)
        if cls in PLAIN:
            continue
        if cls is not dict:
            return None
        for x in v.values():
            if type(x) not in PLAIN:
                return None
        if out is data:
            out = dict(data)
        out[k] = dict(v)
    return out


class PendingEvent:
    """An event held as it was added, scrubbed only when it becomes a ``TraceEvent`` (``Trace.close``): a
    trial whose trace is not kept (``Scenario.keep_traces``) never pays for the scrubbing. It reads like a
    ``TraceEvent`` (``kind``, ``name``, ``outcome``, ``t``, ``data``) for what the judge needs of it."""

    __slots__ = ("data", "input_tokens", "kind", "name", "outcome", "output_tokens", "seq", "t")

    def __init__(self, seq: int, t: float, kind: str, name: str, outcome: str, input_tokens: int,
                 output_tokens: int, data: dict[str, Any]):
        self.seq, self.t, self.kind, self.name, self.outcome = seq, t, kind, name, outcome
        self.input_tokens, self.output_tokens, self.data = input_tokens, output_tokens, data

    def event(self) -> TraceEvent:
        """The event as the trace keeps it: secrets redacted, values deeply frozen."""
        return TraceEvent(self.seq, self.t, self.kind, self.name, self.outcome, self.input_tokens,
                          self.output_tokens, _scrub(self.data))


def _event(item: TraceEvent | PendingEvent) -> TraceEvent:
    return item.event() if type(item) is PendingEvent else item  # type: ignore[union-attr]


class Trace:
    """Append-only event log of one trial; thread-safe; closed when the trial ends.

    Events whose data are plain (scalars, flat mappings of scalars: most tool calls) are held as added and
    scrubbed when the trace is read or closed; others are scrubbed when added. Either way an event is
    redacted once, and the same seed gives the same events."""

    def __init__(self, now: Any = None, on_full: Callable[[str], None] | None = None):
        self._now = now or (lambda: 0.0)
        self._on_full = on_full  # told once, with a reason, when the trace is full (``TRACE_EVENTS``)
        self._events: list[TraceEvent | PendingEvent] = []
        self._lock = threading.Lock()
        self._closed = False
        self._agent_chars = 0  # characters of data the agent's own events keep (``add_agents``)
        self._argument_chars = 0  # characters of long texts tool-call events keep (``arguments``)

    def add(self, kind: str, name: str = "", outcome: str = "ok", /, *, input_tokens: int = 0,
            output_tokens: int = 0, **data: Any) -> TraceEvent | PendingEvent | None:
        """Record an event (secrets redacted: its kind, name and outcome too, which may be a scenario's name, a
        checkpoint's key, an agent's words); ignored once the trial is over (an abandoned agent thread)."""
        return self.add_data(redact_label(kind), redact_label(name), redact_label(outcome), data, input_tokens,
                             output_tokens)

    def add_data(self, kind: str, name: str, outcome: str, data: dict[str, Any], input_tokens: int = 0,
                 output_tokens: int = 0) -> TraceEvent | PendingEvent | None:
        """``add`` with the event's data as one mapping, which the event may keep as it is: the caller makes a
        fresh one and does not change it afterwards."""
        held = _holdable(data)
        if held is not None:
            return self.add_plain(kind, name, outcome, held, int(input_tokens), int(output_tokens))
        with self._lock:
            if self._closed or (len(self._events) >= TRACE_EVENTS and self._full(kind)):
                return None
            event = TraceEvent(len(self._events), float(self._now()), kind, name, outcome, int(input_tokens),
                               int(output_tokens), _scrub(data))
            self._events.append(event)
            return event

    def add_plain(self, kind: str, name: str, outcome: str, data: dict[str, Any], input_tokens: int = 0,
                  output_tokens: int = 0) -> PendingEvent | None:
        """``add_data`` for data that can be held as they are (``PLAIN`` values, and fresh dicts of them one level
        down): held unscrubbed until the trace is kept. A caller that made them so itself (a tool call's event)
        comes here directly, without ``add_data`` looking them over again."""
        with self._lock:
            if self._closed or (len(self._events) >= TRACE_EVENTS and self._full(kind)):
                return None
            event = PendingEvent(len(self._events), float(self._now()), kind, name, outcome, input_tokens,
                                 output_tokens, data)
            self._events.append(event)
            return event

    def add_agents(self, kind: str, name: str, outcome: str, data: dict[str, Any], input_tokens: int,
                   output_tokens: int) -> TraceEvent | None:
        """``add`` for an event of the agent's own (``env.trace.add``), whose data it keeps within limits: an event
        keeps at most ``AGENT_EVENT_CHARS`` characters of data, and the agent's events of one trial
        ``AGENT_TRACE_CHARS`` in all; past either, the event keeps a note of what was cut instead of its data
        (the same in every run: what the agent sent decides). Without them an agent, isolated or not, grew
        the test process by what it traced, trial after trial, until it ran out of memory."""
        kind, name, outcome = (exact_str(text) for text in (kind, name, outcome))  # (its own ``__len__`` unasked)
        kind, name, outcome = (redact_label(text) if len(text) <= AGENT_LABEL_CHARS
                               else redact_short(text, AGENT_LABEL_CHARS, f"... ({len(text):,} characters)")
                               for text in (kind, name, outcome))
        labels = len(kind) + len(name) + len(outcome)
        size = labels + _chars(data, AGENT_EVENT_CHARS)  # (before scrubbing: 100 MB is not scrubbed to be cut)
        kept = _scrub(data) if size <= AGENT_EVENT_CHARS else None
        if kept is not None:
            size = labels + _chars(kept, AGENT_EVENT_CHARS)  # (as traced: an object's repr counted by its length)
        with self._lock:
            if self._closed or (len(self._events) >= TRACE_EVENTS and self._full(kind)):
                return None
            if size > AGENT_EVENT_CHARS:
                kept = FrozenMap(cut=f"more than {AGENT_EVENT_CHARS:,} characters of data (an event of the agent's "
                                     "keeps at most that)")
            elif self._agent_chars + size > AGENT_TRACE_CHARS:
                kept = FrozenMap(cut=f"{size:,} characters of data: the agent's events of this trial keep "
                                     f"{AGENT_TRACE_CHARS:,} in all, {self._agent_chars:,} used")
            else:
                self._agent_chars += size
            event = TraceEvent(len(self._events), float(self._now()), kind, name, outcome, int(input_tokens),
                               int(output_tokens), kept)
            self._events.append(event)
            return event

    def arguments(self, arguments: dict[str, Any], plain: bool) -> dict[str, Any]:
        """A tool call's arguments as its event keeps them (``plain``: texts and numbers only; ``arguments`` may be
        kept as it is), within limits: a text longer than ``LONG_ARGUMENT_CHARS`` is charged to the trial's
        ``ARGUMENTS_TRACE_CHARS``, and kept cut (redacted first) past them or past ``AGENT_EVENT_CHARS``; other
        arguments larger than ``AGENT_EVENT_CHARS`` (``_chars``) are kept as a note of their size. The tool got
        them whole: only the trace is cut (an agent passing 4 MiB a call grew pytest by every failing trial's)."""
        if not plain:
            size = _chars(arguments, AGENT_EVENT_CHARS)
            if size > AGENT_EVENT_CHARS:
                return {"cut": _PAST_AN_EVENT}
            if size > LONG_ARGUMENT_CHARS and not self._charge_arguments(size):  # (charged as a long text is)
                return {"cut": f"{size:,} characters of arguments: past what the trace keeps of arguments"}
            return arguments
        kept = dict(arguments)
        for key, value in arguments.items():
            if type(value) is str and len(value) > LONG_ARGUMENT_CHARS and not self._charge_arguments(len(value)):
                # (redacted before it is cut: ``redact_short`` reads no more of it than it must)
                kept[key] = redact_short(value, LONG_ARGUMENT_CHARS,
                                         f"... ({len(value):,} characters: past what the trace keeps of arguments)")
        return kept

    def details(self, details: Mapping[str, Any]) -> dict[str, Any]:
        """A mapping of the agent's (``env.confirm``'s details) as an event keeps it, its keys being the agent's to
        choose: charged as a whole (``arguments`` of any kind), and past an event's share with its long texts cut
        and, if that is still past it, as a note (as plain arguments, 3,000 texts of 250 characters an event were
        each kept whole)."""
        if not all(type(value) in PLAIN for value in details.values()) or \
                _chars(details, AGENT_EVENT_CHARS) <= AGENT_EVENT_CHARS:
            return self.arguments(dict(details), False)
        kept = self.arguments(dict(details), True)
        return kept if _chars(kept, AGENT_EVENT_CHARS) <= AGENT_EVENT_CHARS else {"cut": _PAST_AN_EVENT}

    def _charge_arguments(self, size: int) -> bool:
        """Charge ``size`` characters of arguments to the trial's share: whether they fit (an event's share and
        what is left of the trial's, ``ARGUMENTS_TRACE_CHARS``), and are charged."""
        with self._lock:
            fits = size <= AGENT_EVENT_CHARS and self._argument_chars + size <= ARGUMENTS_TRACE_CHARS
            if fits:
                self._argument_chars += size
            return fits

    def _full(self, kind: str) -> bool:
        """(Under the lock, the trace holding ``TRACE_EVENTS`` events.) Whether an event of ``kind`` is dropped: all
        but the trial's ``outcome``. The first one dropped is kept as a note, and the trial is told to end."""
        if kind == "outcome":
            return False
        if len(self._events) == TRACE_EVENTS:
            note = f"more than {TRACE_EVENTS:,} trace events in one trial: later ones are not kept"
            self._events.append(TraceEvent(TRACE_EVENTS, float(self._now()), "trace", "events", "cut",
                                           0, 0, FrozenMap(kept=TRACE_EVENTS, note=note)))
            if self._on_full is not None:  # (a trial still running is ended; one judged already stays as judged)
                self._on_full(f"more than {TRACE_EVENTS:,} trace events in one trial (a runaway loop?): the trial "
                              "was ended at the limit")
        return True

    def close(self) -> tuple[TraceEvent, ...]:
        """Stop recording and return the events."""
        return tuple(_event(e) for e in self.close_pending())

    def close_pending(self) -> tuple[TraceEvent | PendingEvent, ...]:
        """Stop recording and return the events as held: ``PendingEvent``s not scrubbed yet (``settle``)."""
        with self._lock:
            self._closed = True
            return tuple(self._events)

    @staticmethod
    def settle(events: tuple[TraceEvent | PendingEvent, ...]) -> tuple[TraceEvent, ...]:
        """``close_pending``'s events as ``TraceEvent``s (the ones held, scrubbed now)."""
        return tuple(_event(e) for e in events)

    @property
    def closed(self) -> bool:
        return self._closed

    def events(self, kind: str | None = None) -> list[TraceEvent]:
        """The events so far, optionally only those of one kind."""
        with self._lock:
            return [_event(e) for e in self._events if kind is None or e.kind == kind]

    def __iter__(self) -> Iterator[TraceEvent]:
        return iter(self.events())

    def __len__(self) -> int:
        return len(self._events)


#: the kinds of event the harness itself writes, which its verdicts, fault tallies and reports read: an agent's
#: own events (``env.trace.add``) may not take them (a made-up ``fault`` event was counted as an injected fault)
HARNESS_KINDS = frozenset({
    "alert", "budget", "checkpoint", "confidence", "confirmation", "crash", "escalation", "escalation_trigger",
    "fault", "injection", "model_call", "network", "outcome", "resume", "tool_call", "trace", "trajectory",
    "violation"})


def _shown(value: Any) -> str:
    """A value in an error message: short, without addresses, and never raising."""
    text = shown_repr(value) if not isinstance(value, int) or abs(value) < _LONG_INT else "<a very long int>"
    return redact_short(text, 37) if len(text) > 40 else redact_text(text)  # (redacted before it is cut)


class AgentTrace:
    """The trial's trace as the agent sees it (``env.trace``): its events to read, and ``add`` for the agent's own
    events, under a kind of the agent's (``"agent"``, ``"note"``, ...): not one the harness writes."""

    __slots__ = ("_stop", "_trace")

    def __init__(self, trace: Trace, stop_if_decided: Callable[[], None] | None = None):
        self._trace = trace
        self._stop = stop_if_decided  # raises the trial's decision while it runs (``TrialContext.stop_if_decided``)

    def add(self, kind: str, name: str = "", outcome: str = "ok", /, *, input_tokens: int = 0,
            output_tokens: int = 0, **data: Any) -> TraceEvent | PendingEvent | None:
        """Record an event of the agent's own (secrets redacted); ignored once the trial is over. Raises the trial's
        decision while it still runs (its trace full: a loop adding events ends there, as a loop of calls does)."""
        if self._stop is not None:
            self._stop()
        # (an agent's own ``str`` as its characters: its ``__hash__``/``__eq__`` are not asked)
        if not issubclass(type(kind), str) or (kind := exact_str(kind)) in HARNESS_KINDS:
            raise ValueError(f"env.trace.add: kind={kind!r} is not the agent's to write: the harness writes "
                             f"{', '.join(sorted(HARNESS_KINDS))} events itself; give the agent's own events a "
                             "kind of their own, such as 'agent'")
        for label, text in (("name", name), ("outcome", outcome)):
            if not issubclass(type(text), str):
                raise ValueError(f"env.trace.add: {label}={_shown(text)} must be a string")
        for label, count in (("input_tokens", input_tokens), ("output_tokens", output_tokens)):
            if type(count) is not int or not 0 <= count <= MOST_TOKENS:
                raise ValueError(f"env.trace.add: {label}={_shown(count)} must be a whole number of tokens "
                                 f"from 0 to {MOST_TOKENS:,}")
        return self._trace.add_agents(kind, name, outcome, data, input_tokens, output_tokens)

    def events(self, kind: str | None = None) -> list[TraceEvent]:
        """The events so far, optionally only those of one kind."""
        return self._trace.events(kind)

    @property
    def closed(self) -> bool:
        return self._trace.closed

    def __iter__(self) -> Iterator[TraceEvent]:
        return iter(self._trace.events())

    def __len__(self) -> int:
        return len(self._trace)

    def __repr__(self) -> str:
        return f"<trace of {len(self)} events>"

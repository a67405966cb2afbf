"""The injection layer: prompt injection through tool results (``Faults(injection=Injection(...))``).

Per tool call the trial's plan draws (keyed by the tool, its arguments and the occurrence of the same call,
like the tool faults) whether the result carries the planted instruction, and in which form among those
that fit the result: ``text`` (appended to a text result), ``json`` (a ``note`` field of a dict, or of a
JSON object in a text), ``document`` (a retrieved document appended to a text or a list). Once one was
planted, every call of the tool it asks for whose arguments include the asked ones is an injected action
(``InjectionRecord.actions``, with the call's outcome: a gate may still have blocked it).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import hide_own_frames
from ..plan import Occurrences
from ..seeding import canonical
from ..settings.injection import Injection, InjectionRecord
from ..settings.model import pick
from .layer import LayerTrial, ToolCall, TrialPort

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    from ..scenario import Scenario
    from ..settings.run import RunSettings

DOCUMENT_TITLE = "support-notes.txt"


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def forms_for(result: Any) -> tuple[str, ...]:
    """The forms an instruction can take in this result."""
    if isinstance(result, str):
        return ("text", "document", "json") if _json_object(result) is not None else ("text", "document")
    if isinstance(result, dict):
        return ("json",)
    if isinstance(result, (list, tuple)):
        return ("document",)
    return ()


def plant(result: Any, form: str, text: str) -> Any:
    """``result`` carrying ``text`` in ``form`` (one of ``forms_for(result)``)."""
    if form == "json":
        data = _json_object(result) if isinstance(result, str) else dict(result)
        assert data is not None
        key = "note" if "note" not in data else "system_note"
        data[key] = text
        return json.dumps(data) if isinstance(result, str) else data
    if form == "document":
        if isinstance(result, (list, tuple)):
            return [*result, {"type": "document", "title": DOCUMENT_TITLE, "content": text}]
        return f"{result}\n\n--- retrieved document: {DOCUMENT_TITLE} ---\n{text}\n--- end of document ---"
    return f"{result}\n\n{text}"


def asks_for(arguments: Mapping[str, Any], asked: Mapping[str, Any]) -> bool:
    """Whether a call with ``arguments`` is what the planted text asked for (every asked argument, same value;
    compared by their canonical JSON, so 3 and "3" differ)."""
    return all(name in arguments and canonical(arguments[name]) == canonical(value) for name, value in asked.items())


class _InjectionTrial(LayerTrial):
    __slots__ = ("_lock", "actions", "occurrences", "planted", "settings", "targets", "text", "trial")

    def __init__(self, trial: TrialPort, settings: Injection, targets: frozenset[str]):
        self.trial = trial
        self.settings = settings
        self.targets = targets
        self.text = settings.instruction()
        self.occurrences = Occurrences()
        self.planted = 0
        self.actions: list[str] = []
        self._lock = threading.Lock()

    def after_tool(self, call: ToolCall, result: Any) -> Any:
        name = call.spec.name
        if name not in self.targets:
            return result
        plan = self.trial.plan
        args_key = plan.key_of(call.arguments)
        u_plant, u_form, _ = plan.injection_draws(name, self.occurrences.next((name, args_key)), args_key)
        if u_plant >= self.settings.rate:
            return result
        form = pick(self.settings.forms, u_form, forms_for(result))
        if form is None:  # nothing a text can hide in (a number, None, an object)
            return result
        with self._lock:
            self.planted += 1
        self.trial.trace.add("fault", name, "injection", call=call.index, form=form, asks=self.settings.tool)
        return plant(result, form, self.text)

    def on_tool_recorded(self, spec: Any, arguments: Mapping[str, Any], outcome: str) -> None:
        if spec.name != self.settings.tool or not self.planted or not asks_for(arguments, self.settings.arguments):
            return
        with self._lock:
            self.actions.append(outcome)
        self.trial.trace.add("injection", spec.name, "followed", call_outcome=outcome)

    def record(self) -> InjectionRecord | None:
        return InjectionRecord(self.planted, tuple(self.actions)) if self.planted else None


class _Campaign:
    __slots__ = ("settings", "targets")
    name = "injection"

    def __init__(self, settings: Injection, targets: frozenset[str]):
        self.settings = settings
        self.targets = targets

    def attach(self, trial: TrialPort) -> LayerTrial:
        return _InjectionTrial(trial, self.settings, self.targets)


class InjectionLayer:
    """On when the run's faults plant instructions (``Faults(injection=Injection(rate > 0))``)."""

    name = "injection"

    def for_campaign(self, scenario: Scenario, run: RunSettings) -> _Campaign | None:
        settings = run.faults.injection
        if settings is None or not settings.active:
            return None
        names = [s.name for s in scenario.tool_specs]
        targets = settings.tools or tuple(n for n in names if n != settings.tool)
        return _Campaign(settings, frozenset(targets))


LAYER = InjectionLayer()

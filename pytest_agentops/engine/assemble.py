"""The one place a trial is assembled: its world, plan, context, the harness layers, the bound tools, the
``Env`` and the agent callable.

``BUILTIN_LAYERS`` lists the built-in layers in the order their hooks run; the scenario's own layers
(``Scenario(layers=[...])``) come after them. For a campaign, ``CampaignLayers`` asks each layer for its
part (``for_campaign``; None: off), and ``build`` attaches those parts to each trial.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import threading
import traceback
from collections.abc import Callable
from typing import Any

from .._frozen import FrozenMap, Shared
from ..errors import ConfigError, hide_own_frames
from ..harness import (
    budget,
    confirmations,
    crash,
    escalation,
    injection,
    network,
    secrets_layer,
    spend,
    tool_faults,
    trajectory,
)
from ..harness.context import TrialContext
from ..harness.env import Env
from ..harness.layer import HarnessLayer
from ..harness.secrets import redact_text
from ..harness.state import layer as state
from ..harness.tools import ToolTemplate
from ..llm import boundary
from ..plan import FaultPlan
from ..process.time_patch import enter_clock, exit_clock, time_patch
from ..process.trial_random import ACTIVE_RANDOM, HARNESS, TASK, WORLD, TrialRandom, drawing_from
from ..scenario import Scenario, drawn_task
from ..seeding import trial_seed
from ..settings.prices import price_table
from ..settings.run import RunSettings
from ..vtime.clock import VirtualClock

__tracebackhide__ = hide_own_frames

#: how long a harness call made after its trial ended waits before it is refused (off an event loop)
LATE_CALL_PAUSE_S = 0.2

#: The task of a group in the breakdown by task when the task generator gave it none (it raised, or hung)
NO_TASK = "(no task: the task generator gave none)"

#: The built-in layers, in the order their hooks run (``secrets`` has none: it holds the output's redaction).
#: ``trajectory`` follows ``confirmations`` (it sees the approval the gate took) and comes before
#: ``tool_faults`` (a call an injected fault fails was still made) and ``crash`` (a tool run the crash
#: interrupts was still counted).
BUILTIN_LAYERS = (secrets_layer.LAYER, confirmations.LAYER, trajectory.LAYER, budget.LAYER, spend.LAYER,
                  tool_faults.LAYER, injection.LAYER, escalation.LAYER, state.LAYER, crash.LAYER, boundary.LAYER,
                  network.LAYER)


def is_async_agent(agent: Callable[..., Any]) -> bool:
    """Whether the agent is a coroutine function (or an object whose ``__call__`` is one)."""
    return inspect.iscoroutinefunction(agent) or inspect.iscoroutinefunction(type(agent).__call__)


def of_the_trial(role: int, seed: int, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` for user code that is not the agent (the world factory, the check): drawing ``random``'s (and
    numpy's) numbers from a generator of the trial's own for ``role`` (``trial_random.WORLD``, ``CHECK``), so
    that a generated world or a sampled check replays with the trial (and moves no draw of the agent's); on the
    real clock (a world that waits for a real resource, a check that polls one); and outside the trial loop
    though on its thread: as anywhere else, it may run a loop of its own (``asyncio.run(seed_database())``)."""
    random_token = ACTIVE_RANDOM.set(TrialRandom(seed, role))  # (``enter_random``, inlined: twice in every trial)
    try:
        loop = asyncio._get_running_loop()
        if loop is None:
            return fn(*args)
        asyncio._set_running_loop(None)
        try:
            return fn(*args)
        finally:
            asyncio._set_running_loop(loop)
    finally:
        ACTIVE_RANDOM.reset(random_token)


def at_the_epoch(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` on a virtual clock of its own, standing at the trials' epoch (a task generator's): a task
    stamped with ``datetime.now()`` or ``date.today()`` is the same in every run and replay, as the agent's
    clock is (on the real clock, a replay the next day gave another task, and another outcome)."""
    token = enter_clock(VirtualClock())
    try:
        return fn(*args)
    finally:
        exit_clock(token)


class BuiltTrial:
    """What ``CampaignLayers.build`` gives: the trial's context, the env, the task and the agent to call."""

    __slots__ = ("agent", "ctx", "env", "task")

    def __init__(self, ctx: TrialContext, env: Env, task: str, agent: Callable[..., Any]):
        self.ctx = ctx
        self.env = env
        self.task = task
        self.agent = agent


class CampaignLayers:
    """The layers that are on for one campaign, opened when it starts and closed when it ends."""

    def __init__(self, scenario: Scenario, run: RunSettings):
        self.scenario = scenario
        self.run = run
        self.specs = scenario.tool_specs
        self.tool_names = tuple(s.name for s in self.specs)
        self.templates = tuple(ToolTemplate(spec) for spec in self.specs)  # each tool's face, worked out once
        tasks, repeats = scenario.tasks, scenario.repeats  # (``repeats`` parses the expectations: once, here)
        self._tasks = tasks if tasks and not callable(scenario.task) else None  # a list (None: a generator)
        self._repeats = repeats
        self._generated: dict[int, str] = {}  # group -> the task generator's task for it (made once per group)
        self._generating: dict[int, threading.Lock] = {}  # group -> its lock while its task is made (one call)
        self.prices = price_table(scenario.prices)
        self.is_async = is_async_agent(scenario.agent)
        self.layer_maps = Shared()  # (names, ids of the records) -> the map of them: see ``layer_map``
        self.late_calls = 0  # harness calls refused because their trial had ended (threads its agent left)
        self._late_lock = threading.Lock()
        self.parts: list[tuple[str, HarnessLayer]] = []
        self._builtin = 0
        try:
            for layer in BUILTIN_LAYERS:
                part = layer.for_campaign(scenario, run)
                if part is not None:
                    self.parts.append((layer.name, part))
            self._builtin = len(self.parts)  # the parts after these are the scenario's own layers'
            if scenario.layers:
                self._add_own_layers(scenario, run)
        except BaseException:
            with contextlib.suppress(BaseException):  # (the error that stopped the set-up is the one to show)
                self.close()
            raise

    def _add_own_layers(self, scenario: Scenario, run: RunSettings) -> None:
        """The parts of the scenario's own layers, made with ``random``'s functions drawing from a stream of the
        campaign's (its trials' hooks draw from the trial's: ``build``), the stand-ins installed for the while."""
        drawing = TrialRandom(run.seed, HARNESS)
        with time_patch():
            for own in scenario.layers:
                part = drawing_from(drawing, own.for_campaign, scenario, run) if hasattr(own, "for_campaign") else own
                if part is not None:
                    self.parts.append((own.name, part))

    def build(self, index: int, seed: int, clock_source: Callable[[], float] | None = None) -> BuiltTrial:
        """Assemble trial ``index`` (in the thread that will run its agent)."""
        scenario = self.scenario
        try:
            world = of_the_trial(WORLD, seed, scenario.world) if scenario.world is not None else None
        except Exception as exc:  # (its text redacted, and not chained: the original would show it as it was)
            frames = traceback.extract_tb(exc.__traceback__)
            where = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
            raise ConfigError(redact_text(f"trial {index}: world factory {scenario.world!r} raised "
                                          f"{type(exc).__name__}: {exc}{where}")) from None
        ctx = TrialContext(scenario=scenario.name, index=index, seed=seed, world=world,
                           plan=FaultPlan(seed, self.run.faults, self.tool_names, self.run.allowed_faults),
                           prices=self.prices,
                           virtual_timeout_s=scenario.virtual_timeout_s, clock_source=clock_source)
        port = ctx.port()
        try:
            builtin = self._builtin
            for i, (name, part) in enumerate(self.parts):
                if i < builtin:
                    attached = part.attach(port)
                    if attached is not None:
                        ctx.add_layer(name, attached)
                else:  # a layer of the scenario's own: its code draws from the trial's harness stream
                    drawing = ctx.harness_random
                    attached = drawing_from(drawing, part.attach, port)
                    if attached is not None:
                        ctx.add_layer(name, attached, drawing)
            tools = {t.spec.name: t.bind(ctx) for t in self.templates}
            task = self.task_for(index)
            env = Env(ctx, tools, task)
            agent = ctx.wrap_agent(scenario.agent, self.is_async)  # (a wrapper may open the checkpoint store)
        except BaseException:
            ctx.close_layers()  # what the layers attached so far opened (routes, holds)
            raise
        return BuiltTrial(ctx, env, task, agent)

    def layer_map(self, records: dict[str, Any]) -> FrozenMap[str, Any]:
        """``TrialRecord.layers`` of a trial: the same map object as an earlier trial's when its layers gave the
        very same record objects (the built-in layers keep equal records once), so a campaign holds one map per
        distinct set of records. Keyed by the records' ids, which stay theirs: the map kept holds them alive."""
        key = (*records, *map(id, records.values()))
        found = self.layer_maps.get(key)
        return found if found is not None else self.layer_maps.add(key, FrozenMap(records))

    def task_for(self, index: int) -> str:
        """``Scenario.task_for(index, seed)`` of this campaign, without working out the task list (and the
        expectations' k) each time. A
        task generator is called once per group, with ``random``'s and numpy's functions drawing from a
        generator of the group's own (``of_the_trial``, role ``TASK``, seeded as the group's first trial), on a
        virtual clock standing at the trials' epoch (``at_the_epoch``), as
        the task is the same whenever it is asked for: by each trial of the group, its replay, the report."""
        if self._tasks is None:
            group = index // self._repeats
            task = self._generated.get(group)
            if task is None:
                # (a lock of the group's own: a generator slow for one group holds up only that group's trials)
                with self._generating.setdefault(group, threading.Lock()):
                    task = self._generated.get(group)
                    if task is None:
                        first = group * self._repeats
                        task = of_the_trial(TASK, trial_seed(self.run.seed, first), at_the_epoch,
                                            self.scenario.task_for, first, self.run.seed)
                        self._generated[group] = task
                self._generating.pop(group, None)
            return task
        return drawn_task(self._tasks, self.run.seed, index // self._repeats)  # (a keyed draw: ~1 us)

    def task_given(self, index: int) -> str:
        """The task trial ``index`` was given, for the breakdown by task once the campaign is over: a task
        generator is never called again there (it ran in the trials, under their guards: a limit, ``os._exit``
        refused); a group it gave no task to (it raised, or never returned) is named ``NO_TASK``."""
        if self._tasks is None:
            return self._generated.get(index // self._repeats, NO_TASK)
        return self.task_for(index)

    def count_late_call(self) -> None:
        """A harness call came after its trial had ended (refused: the call raises in the agent's thread).
        Off an event loop the refusal waits ``LATE_CALL_PAUSE_S`` first: a thread left behind that catches
        everything and calls again (a worker past its wall-clock limit, in ``time.sleep``) is slowed to a
        few calls a second instead of spinning for the rest of the test run."""
        with self._late_lock:
            self.late_calls += 1
        if asyncio._get_running_loop() is None:  # never block a loop other trials share
            threading.Event().wait(LATE_CALL_PAUSE_S)

    def refuse_discarded_call(self) -> None:
        """A harness call of a trial the campaign discarded (launched past an early stop, or cut off by an
        interrupt): refused, and slowed as a late call is, but not counted: the campaign ended that trial, not
        its agent (and how many such calls land before the campaign is over depends on timing alone)."""
        if asyncio._get_running_loop() is None:
            threading.Event().wait(LATE_CALL_PAUSE_S)

    def close(self) -> None:
        """The campaign is over: release what the layers opened for it (checkpoint files, the interception)."""
        failed: BaseException | None = None
        for _name, part in reversed(self.parts):  # every part is closed, even past one whose close raised
            close = getattr(part, "close", None)
            if close is not None:
                try:
                    close()
                except BaseException as exc:
                    failed = failed or exc
        self.parts.clear()
        if failed is not None:
            raise failed  # (the first one: a part that cannot release its resource fails the campaign)

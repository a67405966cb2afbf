"""``asyncio.all_tasks()`` inside a trial: only that trial's own tasks.

Async trials share one event loop. An agent that cancels "all tasks" (``for t in asyncio.all_tasks():
t.cancel()``, a common shutdown idiom) would otherwise cancel the tasks of the trials running beside it, and
the verdicts would depend on concurrency. So the tasks a trial creates are tagged with it (the loop's task
factory, ``task_factory``), and while campaigns run ``asyncio.all_tasks`` is a stand-in (installed with the
time stand-ins) that, inside a trial, lists only that trial's tasks; outside trials it is the real function.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Coroutine, Iterable
from typing import Any

from ..errors import hide_own_frames
from .time_patch import register_stand_ins

__tracebackhide__ = hide_own_frames

_real_all_tasks = asyncio.all_tasks
_trial: contextvars.ContextVar[object | None] = contextvars.ContextVar("pytest_agentops_trial", default=None)
_owner: weakref.WeakKeyDictionary[asyncio.Task[Any], object] = weakref.WeakKeyDictionary()  # tasks trials made
# each trial's main task while the trial runs in it (a plain dict: entered and left once per trial, which a weak
# dictionary makes costly: a weak reference with a callback per trial, and the callback when the task goes)
_main: dict[object, asyncio.Task[Any]] = {}
_NO_TASK: Any = object()


def enter_trial(trial: object, task: asyncio.Task[Any] | None = _NO_TASK) -> contextvars.Token[object | None]:
    """Mark the current task (a trial's main task; the caller may give it) and the context as the trial's (undo
    with ``exit_trial``)."""
    if task is _NO_TASK:
        task = asyncio.current_task()
    if task is not None:
        _main[trial] = task
    return _trial.set(trial)


def exit_trial(token: contextvars.Token[object | None]) -> None:
    _main.pop(_trial.get(), None)
    _trial.reset(token)


def owner_of(task: asyncio.Task[Any] | None) -> object | None:
    """The trial a task belongs to: the trial it is the main task of, or the one that created it (None: no
    trial's, or no task)."""
    if task is None:
        return None
    owner = _owner.get(task)
    if owner is not None:
        return owner
    return next((trial for trial, main in list(_main.items()) if main is task), None)


def forget_tasks(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Tasks left behind for good (a loop stopped with them pending): their trials never left them, forget them."""
    gone = set(tasks)
    for trial, task in list(_main.items()):
        if task in gone:
            _main.pop(trial, None)


def task_factory(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any],
                 context: contextvars.Context | None = None) -> asyncio.Task[Any]:
    """The loop's task factory: a task created inside a trial belongs to it."""
    extra = {} if context is None else {"context": context}  # (``context`` is new in Python 3.11)
    task = asyncio.Task(coro, loop=loop, **extra)
    owner = _trial.get() if context is None else context.get(_trial)
    if owner is not None:
        _owner[task] = owner
    return task


def _all_tasks(loop: asyncio.AbstractEventLoop | None = None) -> set[asyncio.Task[Any]]:
    tasks = _real_all_tasks(loop)
    trial = _trial.get()
    if trial is None:
        return tasks
    main = _main.get(trial)
    return {task for task in tasks if task is main or _owner.get(task) is trial}


_all_tasks.__doc__ = _real_all_tasks.__doc__
_all_tasks.__name__ = _all_tasks.__qualname__ = "all_tasks"
register_stand_ins(asyncio, {"all_tasks": _all_tasks})

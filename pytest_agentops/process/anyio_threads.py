"""anyio's worker threads as outside work of the virtual-time loop, while campaigns run.

Frameworks built on anyio (pydantic-ai runs sync tools this way, so do Starlette and others) hand blocking
calls to ``anyio.to_thread.run_sync``, whose worker threads call back with ``call_soon_threadsafe``: the
virtual-time loop cannot see them, and with only timers left it would jump to the next one (a trial's
virtual deadline, say) while the thread still works. While campaigns run, anyio's asyncio backend is
wrapped so that each such call counts as outside work of a ``VirtualTimeLoop`` (the loop waits for real
meanwhile, as for ``run_in_executor``), draws from a ``random`` of its own, as a ``run_in_executor`` job
does (``trial_random.random_for_job``), and waits for its trial's turn as such a job does (``vtime.lanes``).
Other loops are unaffected; the wrapper goes when the last running campaign ends. Nothing happens when anyio
is not imported.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from typing import Any

from ..errors import hide_own_frames
from ..vtime.lanes import JOB_LANE, lane_on
from ..vtime.loop import VirtualTimeLoop
from .patch import ProcessPatch
from .trial_random import exit_random, random_for_job

__tracebackhide__ = hide_own_frames

_ATTRIBUTE = "run_sync_in_worker_thread"


def _install() -> tuple[type, Any] | None:
    """Wrap the backend's method, if anyio is in use; returns (class, original attribute) to restore."""
    if "anyio" not in sys.modules:
        return None
    try:
        backend = importlib.import_module("anyio._backends._asyncio")
    except ImportError:
        return None
    cls = getattr(backend, "AsyncIOBackend", None)
    original = None if cls is None else cls.__dict__.get(_ATTRIBUTE)
    if not isinstance(original, classmethod):  # an anyio this wrapper does not know: leave it alone
        return None
    run = original.__func__

    async def run_sync_in_worker_thread(backend_cls: type, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        if not isinstance(loop, VirtualTimeLoop):
            return await run(backend_cls, *args, **kwargs)
        token = random_for_job()  # (the worker runs in a copy of this context, made in ``run``: the job's own)
        lane = lane_on(loop)
        untethered = None
        try:
            if lane is not None:
                await lane.turn(loop)  # (the trial's jobs one at a time, in the order handed over: ``vtime.lanes``)
                if args and callable(args[0]):
                    args = (lane.timed(args[0]), *args[1:])
                # (the worker's copy of this context: what it calls back into the loop hands its own jobs over
                # without waiting for this one's turn)
                untethered = JOB_LANE.set(None)
            with loop.outside_work(lane):
                return await run(backend_cls, *args, **kwargs)
        finally:  # (anyio waits for the thread, even when cancelled: its end is seen here)
            if untethered is not None:
                JOB_LANE.reset(untethered)
                lane.ended(loop.hand_over)  # type: ignore[union-attr]
            if token is not None:
                exit_random(token)

    run_sync_in_worker_thread.__doc__ = run.__doc__
    setattr(cls, _ATTRIBUTE, classmethod(run_sync_in_worker_thread))
    return cls, original


def _uninstall(installed: tuple[type, Any]) -> None:
    cls, original = installed
    setattr(cls, _ATTRIBUTE, original)


#: ``with track_anyio_threads():`` holds the wrapper for the duration (nestable, thread-safe; a no-op
#: without anyio).
track_anyio_threads = ProcessPatch("anyio", _install, _uninstall,
                                   what="anyio worker threads counted as outside work of a VirtualTimeLoop")

"""Where agent code runs: worker threads for sync agents, one event-loop thread for async agents.

An agent that hangs or busy-loops must never hang the session. The runner waits with a wall-clock
deadline; past it the trial is abandoned: a ``TrialAbandoned`` is raised asynchronously in the worker
thread (which stops a pure-Python busy loop at its next bytecode), and the worker is retired and
replaced, so a thread stuck in a blocking C call only leaks a daemon thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import ctypes
import queue
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from .harness.clock import VirtualTimeLoop


class TrialAbandoned(BaseException):
    """Raised asynchronously inside an agent that ran past its wall-clock limit."""


def raise_in_thread(thread: threading.Thread, exc_type: type[BaseException] = TrialAbandoned) -> bool:
    """Ask CPython to raise ``exc_type`` in ``thread`` at its next bytecode; True when delivered."""
    ident = thread.ident
    if ident is None or not thread.is_alive():
        return False
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exc_type))
    if done > 1:  # should not happen: undo
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)
        return False
    return done == 1


class ThreadWorker:
    """A daemon thread that runs submitted callables one at a time."""

    def __init__(self, name: str):
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], cf.Future[Any]] | None] = queue.SimpleQueue()
        self.retired = False
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with contextlib.suppress(TrialAbandoned):  # abandoned just as its job ended: it is retired anyway
            self._serve()

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # the agent's failure is data, not a crash
                future.set_exception(exc)
            if self.retired:
                return

    def has_queued(self) -> bool:
        """Whether more jobs wait in this worker's queue."""
        return not self._jobs.empty()

    def submit(self, fn: Callable[[], Any]) -> cf.Future[Any]:
        future: cf.Future[Any] = cf.Future()
        self._jobs.put((fn, future))
        return future

    def abandon(self) -> None:
        """Give up on the running job: interrupt it if possible and never reuse this worker."""
        self.retired = True
        raise_in_thread(self.thread)
        self._jobs.put(None)

    def close(self) -> None:
        self.retired = True
        self._jobs.put(None)


class LoopWorker:
    """A daemon thread running one virtual-time event loop for async agents (concurrent trials share it)."""

    def __init__(self, name: str = "agentops-loop"):
        self.loop = VirtualTimeLoop()
        self.retired = False
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        # an abandoned trial's async exception can land here: the loop is then retired
        with contextlib.suppress(BaseException):
            self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, Any]) -> cf.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def responsive(self, wait_s: float = 0.25) -> bool:
        """Whether the loop runs callbacks (a busy-looping coroutine blocks it)."""
        if not self.thread.is_alive():
            return False
        ran = threading.Event()
        try:
            self.loop.call_soon_threadsafe(ran.set)
        except RuntimeError:
            return False
        return ran.wait(wait_s)

    def abandon(self) -> None:
        """Interrupt a blocked loop thread and retire this worker."""
        self.retired = True
        raise_in_thread(self.thread)
        self.close()

    def close(self) -> None:
        self.retired = True
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.loop.stop)

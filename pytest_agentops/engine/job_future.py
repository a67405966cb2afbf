"""``JobFuture``: the future of one job queued on a worker (``ThreadWorker``, ``LoopWorker``), lighter than
``concurrent.futures.Future``.

A campaign makes one future per trial, created by the main thread and completed on a worker thread or the loop.
``concurrent.futures.Future`` builds a ``Condition`` (and its ``RLock``) per future and takes it on every
call; a job future shares one plain lock with the other futures of its worker and keeps only a state, a
result and its callbacks. It is a drop-in for what the runner and the loop use: ``cancel``, ``cancelled``,
``done``, ``running``, ``result`` / ``exception`` (waiting, if asked to, on an event made only then: the
runner waits through callbacks), ``add_done_callback``, and the ``set_*`` methods of the executor side.
A callback common to all the futures of a loop is given when each is made (``on_done``): no callback list, nor
lock taken to add one, per future.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from collections.abc import Callable
from typing import Any

from ..errors import hide_own_frames

__tracebackhide__ = hide_own_frames

_PENDING, _RUNNING, _CANCELLED, _FINISHED = 0, 1, 2, 3


class JobFuture(cf.Future):  # type: ignore[type-arg]
    """A future whose lock is shared (``lock``); callbacks run outside it, in the thread that completed it."""

    __slots__ = ("_callbacks", "_done_event", "_error", "_lock", "_on_done", "_result", "_state")

    def __init__(self, lock: threading.Lock, on_done: Callable[[cf.Future[Any]], object] | None = None) -> None:
        # (no ``super().__init__``: no Condition of its own)
        self._lock = lock
        self._on_done = on_done  # called first when done, like a callback added before any other
        self._state = _PENDING
        self._result: Any = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[cf.Future[Any]], object]] | None = None
        self._done_event: threading.Event | None = None  # made by a caller that waits

    def __repr__(self) -> str:
        return f"<JobFuture state={('pending', 'running', 'cancelled', 'finished')[self._state]}>"

    def cancel(self) -> bool:
        """Cancel a job that has not started (False once it runs or ended; True if cancelled already)."""
        with self._lock:
            if self._state in (_RUNNING, _FINISHED):
                return False
            if self._state == _CANCELLED:
                return True
            self._state = _CANCELLED
        self._invoke()
        return True

    def cancelled(self) -> bool:
        return self._state == _CANCELLED

    def running(self) -> bool:
        return self._state == _RUNNING

    def done(self) -> bool:
        return self._state >= _CANCELLED

    def _wait(self, timeout: float | None) -> int:
        """The state once done, or after ``timeout`` seconds."""
        if self._state < _CANCELLED:
            with self._lock:
                if self._state < _CANCELLED and self._done_event is None:
                    self._done_event = threading.Event()
                event = self._done_event
            if event is not None:
                event.wait(timeout)
        return self._state

    def result(self, timeout: float | None = None) -> Any:
        """The job's result, waiting up to ``timeout`` seconds; raises its exception, ``CancelledError``, or
        ``TimeoutError``."""
        state = self._wait(timeout)
        if state == _CANCELLED:
            raise cf.CancelledError()
        if state != _FINISHED:
            raise cf.TimeoutError()
        if self._error is not None:
            raise self._error
        return self._result

    def exception(self, timeout: float | None = None) -> BaseException | None:
        state = self._wait(timeout)
        if state == _CANCELLED:
            raise cf.CancelledError()
        if state != _FINISHED:
            raise cf.TimeoutError()
        return self._error

    def add_done_callback(self, fn: Callable[[cf.Future[Any]], object]) -> None:
        """Call ``fn(self)`` when done (at once, here, if done already)."""
        with self._lock:
            if self._state < _CANCELLED:
                if self._callbacks is None:
                    self._callbacks = [fn]
                else:
                    self._callbacks.append(fn)
                return
        fn(self)

    def set_running_or_notify_cancel(self) -> bool:
        """Mark the job started; False if it was cancelled (its callbacks ran then)."""
        with self._lock:
            if self._state == _CANCELLED:
                return False
            if self._state != _PENDING:
                raise RuntimeError(f"future in unexpected state: {self!r}")
            self._state = _RUNNING
            return True

    def set_result(self, result: Any) -> None:
        with self._lock:  # (``_finish`` and ``_invoke``, inlined: once per job)
            if self._state >= _CANCELLED:
                raise cf.InvalidStateError(f"{self!r} is done already")
            self._result, self._state = result, _FINISHED
        if self._done_event is not None:
            self._done_event.set()
        on_done = self._on_done
        if on_done is not None:
            self._on_done = None
            try:
                on_done(self)
            except Exception:
                cf._base.LOGGER.exception("exception calling callback for %r", self)
        if self._callbacks is not None:
            self._invoke()

    def set_exception(self, exception: BaseException | None) -> None:
        self._finish(None, exception)

    def _finish(self, result: Any, error: BaseException | None) -> None:
        with self._lock:
            if self._state >= _CANCELLED:
                raise cf.InvalidStateError(f"{self!r} is done already")
            self._result, self._error, self._state = result, error, _FINISHED
        self._invoke()

    def _invoke(self) -> None:
        if self._done_event is not None:
            self._done_event.set()
        on_done, self._on_done = self._on_done, None
        if on_done is not None:
            try:
                on_done(self)
            except Exception:
                cf._base.LOGGER.exception("exception calling callback for %r", self)
        if self._callbacks is None:
            return
        callbacks, self._callbacks = self._callbacks, None
        for fn in callbacks:
            try:
                fn(self)
            except Exception:  # as concurrent.futures does: a failing callback does not stop the others
                cf._base.LOGGER.exception("exception calling callback for %r", self)

"""``python -m pytest_agentops.harness.child FD``: a child process running one attempt of an agent."""

import gc
import os
import select
import sys
from collections.abc import Callable
from typing import Any

from pytest_agentops.process.confine import fence_in
from pytest_agentops.process.keeper import keep


def leave_after(seconds: float, real_exit: Callable[[int], None], wait: Callable[..., Any]) -> None:
    """Start two daemon threads (none may start once the interpreter is shutting down): after ``seconds`` of real
    time (``wait``: ``select.select``, taken before the agent ran), one flushes what was written (Python's
    streams, the C library's) and the other exits once it has, or 0.5 s later (a stream's ``flush`` may hang)."""
    import contextlib
    import threading

    def flush() -> None:
        wait([], [], [], seconds)
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            with contextlib.suppress(Exception):  # (a stream the agent closed or replaced)
                stream.flush()  # type: ignore[union-attr]
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None).fflush(None)

    def leave() -> None:
        wait([], [], [], seconds)
        flushing.join(0.5)
        real_exit(0)

    flushing = threading.Thread(target=flush, daemon=True)
    flushing.start()
    threading.Thread(target=leave, daemon=True).start()


if __name__ == "__main__":
    real_exit, real_wait = os._exit, select.select  # (taken before anything of the agent's runs: it may replace
    # ``os._exit`` or ``select.select``)
    test_process = os.getppid()
    # first, while the process has one thread (numpy starts its BLAS threads when imported): a keeper stays behind
    # as this process's parent (nothing the agent starts outlives it, however it ends), and from here on no signal
    # or ptrace of the agent's process or of what it starts reaches pytest or the keeper, whatever the agent calls
    keeper = keep(int(sys.argv[1]))
    unfenced = fence_in()
    from pytest_agentops.harness.child.child_side import main

    # what is loaded so far (the child's harness; not numpy, which comes with the agent's first import of it:
    # ``process.after_import``) lives as long as the process: frozen before anything of the agent's is imported,
    # it is left out of every collection, as a campaign freezes what existed before it in the test process
    # (``process.gc_hold``); the teardown at the exit collected it again and again (``bench_isolated_exit.py``).
    # The agent's own objects are collected and finalized as before.
    gc.freeze()
    main(test_process=test_process, keeper=keeper, unfenced=unfenced)
    # the result is sent: the process exits as any does (its files flushed, the agent's exit handlers and thread
    # pools' work run), but a thread the agent left running (not a daemon) holds it at most 2 s, as pytest would
    # not wait for it in-process (the parent waited 10 s, then killed it: a shorter timeout timed the trial out)
    leave_after(2.0, real_exit, real_wait)

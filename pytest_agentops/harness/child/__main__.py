"""``python -m pytest_agentops.harness.child FD``: a child process running one attempt of an agent."""

import os
import select
import sys
from collections.abc import Callable
from typing import Any

from pytest_agentops.process.confine import fence_in
from pytest_agentops.process.keeper import keep


def leave_after(seconds: float, real_exit: Callable[[int], None], wait: Callable[..., Any]) -> None:
    """After ``seconds`` of real time (``wait``: ``select.select``, taken before the agent ran): flush what was
    written (Python's streams, the C library's; at most 0.5 s more: a stream's ``flush`` may hang) and exit."""
    import contextlib
    import threading

    wait([], [], [], seconds)

    def flush() -> None:
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            with contextlib.suppress(Exception):  # (a stream the agent closed or replaced)
                stream.flush()  # type: ignore[union-attr]
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None).fflush(None)

    flushing = threading.Thread(target=flush, daemon=True)
    flushing.start()
    flushing.join(0.5)
    real_exit(0)


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

    main(test_process=test_process, keeper=keeper, unfenced=unfenced)
    # the result is sent: the process exits as any does (its files flushed, the agent's exit handlers and thread
    # pools' work run), but a thread the agent left running (not a daemon) holds it at most 2 s, as pytest would
    # not wait for it in-process (the parent waited 10 s, then killed it: a shorter timeout timed the trial out)
    import threading

    threading.Thread(target=leave_after, args=(2.0, real_exit, real_wait), daemon=True).start()

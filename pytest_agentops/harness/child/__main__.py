"""``python -m pytest_agentops.harness.child FD``: a child process running one attempt of an agent."""

import os
import sys

from pytest_agentops.process.confine import fence_in
from pytest_agentops.process.keeper import keep

if __name__ == "__main__":
    test_process = os.getppid()
    # first, while the process has one thread (numpy starts its BLAS threads when imported): a keeper stays behind
    # as this process's parent (nothing the agent starts outlives it, however it ends), and from here on no signal
    # or ptrace of the agent's process or of what it starts reaches pytest or the keeper, whatever the agent calls
    keeper = keep(int(sys.argv[1]))
    unfenced = fence_in()
    from pytest_agentops.harness.child.child_side import main

    main(test_process=test_process, keeper=keeper, unfenced=unfenced)
    # the result is sent: a thread the agent left running (not a daemon) does not hold the process, as pytest
    # would not wait for it in-process (the parent waited 10 s, then killed it); the agent's exit handlers run
    import atexit
    import contextlib

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # (a stream the agent closed or replaced)
            stream.flush()
    os._exit(0)

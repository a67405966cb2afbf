"""``python -m pytest_agentops.harness.child FD``: a child process running one attempt of an agent."""

from pytest_agentops.process.confine import fence_in

if __name__ == "__main__":
    # first, while the process has one thread (numpy starts its BLAS threads when imported): from here on no
    # signal or ptrace of this process or of what it starts reaches pytest, whatever the agent calls
    fence_in()
    from pytest_agentops.harness.child.child_side import main

    main()

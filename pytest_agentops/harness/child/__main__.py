"""``python -m pytest_agentops.harness.child FD``: a child process running one attempt of an agent."""

from pytest_agentops.harness.child.child_side import main

if __name__ == "__main__":
    main()

"""Real crashes: the agent runs in a child process that is killed with SIGKILL at the planned step.

The design, chosen as the simplest honest one: the parent (the runner's trial thread or task) owns everything
that must outlive the agent's process (the world, the fault plan, the trace, the meter, the gate and
the virtual clock), as a real deployment's payment API and database outlive the agent's worker. The
child process runs only the agent. Its ``env`` looks like the in-process ``Env``, but every tool call,
confirmation, usage report, clock read and trace event is a request over a pipe that the parent serves
through the same harness layers as in-process. The one thing the child owns is its checkpoint store:
it opens the campaign's SQLite file (or Redis server) itself and writes its checkpoints there, so
what survives the kill is exactly what the agent committed.

At the planned tool call the parent runs the tool (``after``) or not (``before``), then sends SIGKILL
instead of the result: the child dies mid-step, between the side effect and its checkpoint. The parent
then starts a new child on the same world and store, up to ``crash_restarts`` times. A child that dies
on its own (``os._exit``, a segfault) is a crash too and is restarted the same way.

Each child is a fresh interpreter running this module (``python -m pytest_agentops.harness.child FD``),
never a ``fork`` of the runner's threaded process; parent and child talk over a socket pair, one
length-prefixed pickle per message (between a process and its own child: checkpoints stay JSON). The
child takes the parent's ``sys.path`` and imports the agent by reference, so the agent must be importable
(a module-level function or an instance of a module-level class).

An async agent runs in the child on a ``VirtualTimeLoop`` of its own, whose jumps to the next timer advance
the trial's clock in the parent (``asyncio.sleep(30)`` in the child is 30 virtual seconds of the trial). In
the parent its attempts are tasks on the trial loop that await the child's requests, so the watchdog and the
virtual deadline end them by cancelling the task, which kills the child.
"""

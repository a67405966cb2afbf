"""Process isolation: each trial's agent in a child process of its own (``isolation="process"``).

What in-process containment cannot catch is contained here: ``os._exit``, runaway memory, a busy loop, and
processes the agent starts, which die with it, even when pytest itself is killed.
"""

from __future__ import annotations

import ast
import contextlib
import os
import platform
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pytest_agentops import ConfigError, Faults, Scenario, run_campaign
from pytest_agentops.precedence import resolve_run
from pytest_agentops.process.confine import why_not_fenced
from pytest_agentops.process.patch import installed
from pytest_agentops.vtime.real import real_sleep

import isolation_support

pytestmark = pytest.mark.skipif(os.name != "posix", reason="process groups and rlimits are POSIX")


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie waiting for init to reap it counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False


def _wait_gone(*pids: int, within_s: float = 15.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if all(_gone(p) for p in pids):
            return True
        real_sleep(0.05)
    return False


def test_exit_memory_and_busy_loops_are_contained_in_their_own_trials():
    result = run_campaign(Scenario(name="iso", agent=isolation_support.hostile, trials=5, seed=1, early_stop=False,
                                   concurrency=5, timeout_s=4.0, faults="none", isolation="process",
                                   memory_limit_mb=1024,
                                   check=lambda world, out: out != str(os.getpid())))
    by_index = {r.index: r for r in result.records}
    assert by_index[1].outcome == "error"
    assert by_index[1].reason == "AgentProcessDied: agent process exited with code 3 without a result"
    assert by_index[2].outcome == "error" and by_index[2].reason.startswith("MemoryError")
    assert by_index[3].outcome == "timed_out" and "wall-clock limit of 4s" in by_index[3].reason
    assert by_index[0].outcome == by_index[4].outcome == "completed"  # in processes other than this one
    assert by_index[0].output != by_index[4].output
    assert installed() == []  # the watchdog went with the campaign


def test_processes_an_agent_starts_end_with_its_trial(tmp_path):
    path = tmp_path / "pids"
    result = run_campaign(Scenario(name="spawn", agent=isolation_support.spawner, task=f"{path} return", trials=1,
                                   seed=1, faults="none", isolation="process"))
    assert result.records[0].outcome == "completed"
    agent_pid, grandchild = map(int, path.read_text().split())
    assert _wait_gone(agent_pid, grandchild)


def test_nothing_an_isolated_agent_started_outlives_a_killed_pytest(pytester, quiet_children):
    """``kill -9`` of pytest mid-campaign: the watchdog kills the agent's process group (the agent and the
    process it started)."""
    pids = pytester.path / "pids"
    pytester.syspathinsert(Path(isolation_support.__file__).parent)
    pytester.makepyfile(test_hang=textwrap.dedent(f"""
        from pytest_agentops import Scenario, run_campaign
        import isolation_support

        def test_campaign():
            run_campaign(Scenario(name="hang", agent=isolation_support.spawner, task={str(pids) + " hang"!r},
                                  trials=1, seed=1, timeout_s=300, faults="none", isolation="process"))
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(isolation_support.__file__).parent),
                                                       os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_hang.py"],
                            cwd=pytester.path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not pids.exists() and proc.poll() is None and time.monotonic() < deadline:
            real_sleep(0.05)
        assert pids.exists(), "the agent never started"
        agent_pid, grandchild = map(int, pids.read_text().split())
        assert not _gone(agent_pid) and not _gone(grandchild)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert _wait_gone(agent_pid, grandchild)


def test_isolation_needs_an_agent_a_child_process_can_import():
    with pytest.raises(ConfigError, match=r"isolation='process' runs the agent in a child process, so "
                                          r"agent=.* must be importable"):
        run_campaign(Scenario(name="lambda", agent=lambda task, env: "x", trials=1, seed=1, isolation="process"))
    with pytest.raises(ConfigError, match=r"isolation='container' must be one of none, process"):
        Scenario(name="bad", agent=isolation_support.hostile, isolation="container")


@pytest.mark.parametrize("agent", ["agent", "functools.partial(agent, retries=2)", "Agent()"])
def test_an_agent_defined_in_the_script_being_run_is_refused_before_any_trial(tmp_path, agent):
    """An agent defined in a script run as ``python script.py`` pickles (by reference to ``__main__``), but the
    agent's process, whose ``__main__`` is the harness's, cannot find it: every trial was an ``error`` ("agent
    process exited with code 1 without a result") under a child's traceback ending in ``AttributeError: Can't get
    attribute 'agent'``, once per trial. The campaign is refused before any trial, naming the script."""
    script = tmp_path / "my_script.py"
    script.write_text(textwrap.dedent(f"""
        import functools
        from pytest_agentops import ConfigError, Scenario, run_campaign

        def agent(task, env, retries=0):
            return "done"

        class Agent:
            def __call__(self, task, env):
                return "done"

        try:
            run_campaign(Scenario(name="script", agent={agent}, trials=3, seed=1, isolation="process"))
        except ConfigError as exc:
            print("REFUSED", exc)
        else:
            print("RAN")
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    name = "Agent" if agent == "Agent()" else "agent"
    assert done.stdout.startswith(f"REFUSED isolation='process' runs the agent in a child process, which cannot "
                                  f"import __main__.{name} (of agent="), done.stdout + done.stderr
    assert "defined in the script being run (my_script.py)" in done.stdout and "Traceback" not in done.stderr


def test_the_command_line_isolates_every_campaign(pytester):
    pytester.makepyfile(test_cli="""
        import os
        from pytest_agentops import Scenario
        import isolation_support

        def test_campaign(agent_chaos):
            result = agent_chaos.run(Scenario(name="cli", agent=isolation_support.spawner, task="pids return",
                                              trials=2, seed=1, faults="none"))
            assert result.outcome_counts == {"completed": 2}
            pid = int(open("pids").read().split()[0])
            assert pid != os.getpid()
    """)
    result = pytester.runpytest("--agent-chaos", "--agent-chaos-isolation=process", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*isolation=process (repeat this run with *--agent-chaos-isolation=process)*"])
    bad = pytester.runpytest("--agent-chaos-isolation=vm")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--agent-chaos-isolation='vm' must be one of none, process*"])


@pytest.mark.parametrize("agent", ["sync_agent", "async_streaming_agent"])
def test_an_isolated_agent_reaches_its_trials_fake_model_as_in_process(agent):
    """``env.llm`` was None in a child process: an SDK agent could not run isolated. The child's requests to the
    trial's model host are answered by the parent's fake, so the trials are those of the agent run in-process:
    outcomes, outputs, tokens, model faults (a cut stream, a timeout, 5xx) and the trace event for event."""
    from client_agents import FAULTS, POLICY, need

    need("openai")
    import isolated_llm_support

    from pytest_agentops.llm import FakeLLM

    from conftest import ORDER_TOOLS, Orders

    def campaign(isolation):
        return run_campaign(Scenario(
            name=f"iso-llm-{agent}", agent=getattr(isolated_llm_support, agent), task="Refund order 42",
            world=Orders, tools=ORDER_TOOLS, check=lambda world, out: 42 in world.refunded, faults=FAULTS,
            llm=FakeLLM(POLICY, model="gpt-4o-mini", latency_s=0.5), trials=4, seed=23, concurrency=4,
            early_stop=False, isolation=isolation))

    def seen(result):
        return [(r.outcome, r.reason, r.output, r.input_tokens, r.output_tokens, r.faults, r.tool_calls,
                 [(e.kind, e.name, e.outcome, round(e.t, 6)) for e in r.trace]) for r in result.records]

    isolated, in_process = campaign("process"), campaign("none")
    assert seen(isolated) == seen(in_process)
    assert all(r.input_tokens > 0 for r in isolated.records) and any(r.faults for r in isolated.records)
    assert sum(r.outcome == "completed" for r in isolated.records) > 0


def test_an_isolated_async_agents_virtual_time_leaves_out_its_process_start_up():
    """An async trial's clock follows the loop it runs on, which went on while the parent waited for the child
    process: its start-up (0.2-1.4 s of real time here) showed in the trial's virtual time, so outputs and traces
    changed run to run and with the concurrency. Now only what happens in virtual time counts: the child's
    sleep and the async tool's 5 s, exactly; and a failure names where the child raised it, as in-process."""
    seen = set()
    for concurrency in (1, 3):
        result = run_campaign(Scenario(name="iso-clock", agent=isolation_support.sleeper, trials=3, seed=1,
                                       faults="none", isolation="process", concurrency=concurrency,
                                       tools=[isolation_support.slow_lookup], early_stop=False))
        seen.add(tuple((r.outcome, r.reason, r.output, tuple((e.kind, e.t) for e in r.trace))
                       for r in result.records))
    assert len(seen) == 1
    (first, second, third), = seen
    assert first[:3] == third[:3] == ("completed", "", "6.000000")
    raised_at = next(n for n, line in enumerate(Path(isolation_support.__file__).read_text().splitlines(), 1)
                     if 'raise ValueError("no such order")' in line)
    assert second[:2] == ("error", f"ValueError: no such order at isolation_support.py:{raised_at}")
    assert [t for _, t in first[3]] == [6.0, 6.0]  # (the tool call ended at 6 s; the outcome)


def test_an_isolated_async_agents_real_io_counts_in_its_virtual_time_as_in_process():
    """Leaving the child's start-up out of the clock left its real socket I/O out too (0.0 s against 0.5 s
    in-process): real I/O is what virtual time follows."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(30)

    def answer_slowly():
        for _ in range(2):
            conn, _ = server.accept()
            conn.recv(4)
            real_sleep(0.6)  # (virtual time follows the I/O wait, not the CPU time around it: on a loaded
            conn.sendall(b"pong")  # machine the agent may start waiting 50 ms late, so the bound below has room)
            conn.close()

    answering = threading.Thread(target=answer_slowly, daemon=True)
    answering.start()
    try:
        seen = [run_campaign(Scenario(name="slow-io", agent=isolation_support.reads_a_slow_server,
                                      task=str(server.getsockname()[1]), trials=1, seed=1, faults="none",
                                      isolation=isolation, network="allow")).records[0]
                for isolation in ("none", "process")]
    finally:
        answering.join(30)
        server.close()
    for record in seen:
        assert record.outcome == "completed" and record.duration_s >= 0.25, record
        assert record.output.startswith("pong 0.") and float(record.output.split()[1]) >= 0.2


def test_isolated_async_trials_reach_a_live_model_in_parallel():
    """The parent answered each child's request to a live model with the blocking call, on the loop all async
    trials share: 6 trials of one 1-s call took 6 s, one after another. The upstream now sees them at once."""
    from client_agents import need
    from live_support import KEY_ENV, UpstreamServer, live_key

    need("openai")
    from pytest_agentops.settings.live import LiveLLM

    server = UpstreamServer(delay=0.5)
    try:
        with live_key():
            result = run_campaign(Scenario(name="iso-live", agent=__import__("isolated_llm_support").one_call,
                                           task="Refund order 42", trials=4, seed=1, concurrency=4, faults="none",
                                           isolation="process", live=LiveLLM(base_url=server.base_url,
                                                                             key_env=KEY_ENV, model="m")))
        stats = server.stats()
    finally:
        server.stop()
    assert dict(result.outcome_counts) == {"completed": 4}
    assert stats["requests"] == 4 and stats["most_in_flight"] >= 2


def test_an_isolated_agents_requests_get_the_trials_http_faults_as_in_process():
    """``Scenario(http=HttpFaults(...))`` faults the hosts an agent calls through the parent's interception: an
    isolated agent's requests went out untouched. The parent now decides each one's fault, as in-process."""
    import http.server
    import threading

    from pytest_agentops import Faults, HttpFaults

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        seen = [[(r.outcome, r.output, r.faults) for r in run_campaign(Scenario(
            name="iso-http", agent=isolation_support.polls_a_server, task=str(server.server_address[1]), trials=3,
            seed=4, network="allow", isolation=isolation, early_stop=False,
            faults=Faults(http=HttpFaults(hosts=["127.0.0.1"], rate=0.4)))).records]
            for isolation in ("none", "process")]
    finally:
        server.shutdown()
        server.server_close()
    assert seen[0] == seen[1]
    outputs = " ".join(output for _, output, _ in seen[0]).split()
    assert 3 < outputs.count("200") < 27 and len(outputs) == 30  # faults fired, and not on every request
    assert all(f.startswith("http:127.0.0.1:") for _, _, faults in seen[0] for f in faults)


def _refund_attempt(agent, task, tmp_path, monkeypatch):
    """The record of one isolated trial of ``agent`` (which never calls the refund tool) given ``task``: an error,
    and ``FAKE_REFUND`` never ran in this process (a child's own copy of an object may run it there)."""
    ran_in = tmp_path / "ran_in"
    monkeypatch.setenv("AGENTOPS_RAN_IN", str(ran_in))
    monkeypatch.setenv("AGENTOPS_TEST_PID", str(os.getpid()))
    result = run_campaign(Scenario(name="refunder", agent=agent, task=task,
                                   world=isolation_support.Orders, tools=[isolation_support.refund_order],
                                   check=lambda world, out: 42 in world.refunded, trials=1, seed=1, faults="none",
                                   isolation="process"))
    (record,) = result.records
    assert record.outcome == "error" and record.tool_calls == 0, record.reason
    assert not ran_in.exists() or ran_in.read_text() != str(os.getpid())
    return record


@pytest.mark.parametrize("where", ["output", "exception", "argument"])
def test_what_an_isolated_agent_sends_is_taken_as_data(tmp_path, monkeypatch, where):
    """An outside review: the test process unpickled what a child sent, so an output (an exception's attribute, a
    tool's argument) whose ``__reduce__`` is ``(exec, (code,))`` ran that code in pytest's process, where it found
    the trial's world and made the refund the check looks for: the trial passed without a tool call."""
    record = _refund_attempt(isolation_support.smuggles, where, tmp_path, monkeypatch)
    if where == "exception":  # (the exception whole could not be taken: its text)
        assert record.reason.startswith("ChildAgentError: RuntimeError: boom"), record.reason
    else:
        assert "builtins.exec: the test process takes data from an agent's process" in record.reason, record.reason


@pytest.mark.parametrize("task", ["setstate", "del", "new", "init", "key", "builtin", "exception"])
def test_no_code_of_an_isolated_agents_own_classes_runs_in_the_test_process(tmp_path, monkeypatch, task):
    """An outside review: an isolated agent returned an object of its own class, and its ``__setstate__`` ran in
    pytest's process as the output was rebuilt there: it found the trial's world and made the refund the check
    looks for (a green campaign for an agent that never called a tool), or killed pytest through ``ctypes``; an
    exception's ``__setattr__`` did the same. Methods the agent's own classes define (or hold: a builtin as
    ``__setstate__``) are never run for a message: such an object is refused, and the trial an error."""
    record = _refund_attempt(isolation_support.forges, task, tmp_path, monkeypatch)
    if task != "exception":
        assert "is the agent's own code, which the test process does not run" in record.reason, record.reason


@pytest.mark.parametrize("task", ["call", "installed_call", "module_getattr", "spoofed_module", "getattr", "dict",
                                  "list", "metaclass", "enum_missing", "key_argument", "state_dict", "class_property",
                                  "exception_text", "exception_argument"])
def test_no_code_of_an_isolated_agents_runs_in_the_test_process_past_the_first_refusals(tmp_path, monkeypatch,
                                                                                         task):
    """A second outside review ran the agent's code in pytest (and passed the trial with no tool call) past the
    refusals above: an object of its class called (its ``__call__``) or an installed one
    (``argparse.FileType("w")(path)`` emptied a file), a module's ``__getattr__``, a class saying
    ``__module__ = "json"``, ``__getattr__`` asked for ``__setstate__``, a dict's ``__setitem__`` and a list's
    ``extend`` of its own, a metaclass's ``__getattribute__``, an enum's ``_missing_``, a key hashed as a call's
    argument, a state dict's ``items``, a ``__class__`` property ``isinstance`` reads, an exception's ``__str__``.
    Each is refused now (an exception's text is the one the child made)."""
    import forging_support

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    monkeypatch.setenv("AGENTOPS_VICTIM", str(victim))
    record = _refund_attempt(forging_support.forges_more, task, tmp_path, monkeypatch)
    assert victim.read_text() == "precious"
    if task in ("exception_text", "exception_argument"):
        assert record.reason.startswith("ChildAgentError: "), record.reason
    else:
        assert record.reason.startswith("AgentMessageRefused: "), record.reason


def test_a_message_runs_no_code_of_the_agents_through_the_values_it_rebuilds(tmp_path, monkeypatch):
    """The same review, for messages fed to the unpickler directly: a generic alias of a class of the agent's
    (its ``__class_getitem__``), a union of one with a metaclass of its own (its ``__or__``), the size of a bytes
    subclass given by an object's ``__index__``; and a third review's: objects of the agent's own as a call's
    arguments, a generic alias's forwarding, a slot state's ``__class__``."""
    import argparse
    import array
    import collections
    import configparser
    import copyreg
    import decimal
    import graphlib
    import http.cookies
    import operator
    import pickle
    import types

    import forging_support

    from pytest_agentops.harness.child.child_data import data_loads

    f = forging_support
    ran_in = tmp_path / "ran_in"
    monkeypatch.setenv("AGENTOPS_RAN_IN", str(ran_in))
    for function, args in ((operator.getitem, (f.Generic, int)), (operator.or_, (f.WithOr, int)),
                           (f.OwnBytes, (f.Index(),)),
                           # a third review: an object of the agent's own as a call's argument, which the call asks
                           (complex, (f.AsComplex(),)), (complex, (1, f.AsComplex())),
                           (collections.deque, (f.Iterated(),)), (collections.Counter, (f.Iterated(),)),
                           (collections.UserList, (f.Iterated(),)), (collections.OrderedDict, (f.Keyed(),)),
                           (f.Colour, (f.Key(),)),
                           (operator.getitem, (types.GenericAlias(list, (f.Substituted(),)), int)),
                           # a fourth review: the same one level down (in a list, a tuple, a dict's value)
                           (array.array, ("b", [f.Index()])), (collections.OrderedDict, ([[f.Key(), 1]],)),
                           (collections.Counter, ([(1, f.Key())],)),
                           (graphlib.TopologicalSorter, ({"a": [f.Key()]},)),
                           (configparser.ConfigParser, ({"a": f.Stringed()},)),
                           (decimal.Context, (None,) * 7 + ({decimal.Inexact: f.Truthy()},)),
                           # a sixth review: inside an installed object given as the argument (a ``UserList``)
                           (collections.Counter, (collections.UserList([f.Key()]),)),
                           (array.array, ("b", collections.UserList([f.Index()])))):
        with pytest.raises(pickle.UnpicklingError):
            data_loads(pickle.dumps(f.Reduces(function, args), protocol=4))
    # a generic alias of a class of the agent's as an object to set (its attributes are its origin's), and a
    # slot state setting ``__class__`` (the class swapped after every check)
    # a seventh review: the installation's building code reaching what a subclass of the agent's overrides (given
    # as they pickle), an installed hash of what an agent's subclass holds, an enum called with a value
    own_key = f.OwnUserString("")
    own_key.data = (f.Key(),)
    monkeypatch.setenv("AGENTOPS_RAN_IN", str(tmp_path / "made"))  # (made here: their overrides run here, once)
    made = (f.OwnRandom(1), f.OwnCounter("ab"), {own_key: 1}, f.Reduces(f.ValuedByObject, (5,)))
    monkeypatch.setenv("AGENTOPS_RAN_IN", str(ran_in))
    for value in made:
        with pytest.raises(pickle.UnpicklingError):
            data_loads(pickle.dumps(value, protocol=4))
    # an eighth review: an installed function put on a class of the agent's (``__setstate__ = subprocess.call`` ran
    # a shell command), a dunder reached unnamed (``Counter.update``'s ``if self:``), a C base filling through an
    # override, the state an installed ``__setstate__`` of the agent's subclass reads (``UUID``'s ``is_safe``)
    directory = tmp_path / "made-by-a-message"
    for function, args, state in ((f.MakesDirectories, (), str(directory)),
                                  (f.TruthyCounter, ({"a": 1},), None), (f.OwnOrderedDict, ({"a": 1},), None),
                                  (copyreg._reconstructor, (f.OwnUUID, object, None),
                                   {"int": 5, "is_safe": f.Key()})):
        with pytest.raises(pickle.UnpicklingError):
            data_loads(pickle.dumps(f.Builds(function, args, state), protocol=4))
    assert not directory.exists()
    # a ninth review: code disguised as attrs's generated ``__setstate__`` (its file and name rewritten), a field's
    # setter a dataclass's generated ``__setstate__`` runs (a subclass redefining it as a property)
    for value in (f.Builds(copyreg._reconstructor, (f.Disguised, object, None), {"x": 1}),
                  object.__new__(f.PointWithSetter),
                  # a tenth review: a setter held by a property subclass of the agent's, or an installed descriptor
                  f.Builds(copyreg._reconstructor, (f.SetByOwnProperty, object, None), (None, {"x": 1})),
                  f.Builds(copyreg._reconstructor, (f.SetByInstalledDescriptor, object, None), (None, {"x": 1})),
                  # an eleventh review: a class of the agent's given to an installed constructor that calls it
                  f.Reduces(argparse.ArgumentParser, ("p", None, None, None, [], f.Formatter))):
        with pytest.raises(pickle.UnpicklingError):
            data_loads(pickle.dumps(value, protocol=4))
    cookie = http.cookies.SimpleCookie()
    dict.__setitem__(cookie, "k", f.Stringed())  # (pickled as the class, then its items: ``__setitem__`` each)
    with pytest.raises(pickle.UnpicklingError):
        data_loads(pickle.dumps(cookie, protocol=4))
    import ipaddress
    import uuid

    for function, args, state in ((types.GenericAlias, (f.Setter, (int,)), {"x": 1}),
                                  (copyreg._reconstructor, (f.Plain, object, None), (None, {"__class__": f.Evil})),
                                  # a fifth review: an object of the agent's own held by an installed object, whose
                                  # methods use it (a ``UserString``'s hash, a ``UUID``'s, an address's ``_ip``)
                                  (copyreg._reconstructor, (collections.UserString, object, None),
                                   {"data": f.Key()}),
                                  (copyreg._reconstructor, (collections.UserDict, object, None),
                                   {"data": f.Iterated()}),
                                  (copyreg._reconstructor, (uuid.UUID, object, None), {"int": f.Key()}),
                                  (copyreg._reconstructor, (ipaddress.IPv4Address, object, None),
                                   (None, {"_ip": f.Index()})),
                                  # a sixth review: one level further in (hashed through the tuple)
                                  (copyreg._reconstructor, (collections.UserString, object, None),
                                   {"data": (f.Key(),)})):
        with pytest.raises(pickle.UnpicklingError):
            data_loads(pickle.dumps(f.Builds(function, args, state), protocol=4))
    # an exception's class, as the harness rebuilds it (``thaw``), with a property it sets (``args``), and an
    # exception sent with ``__class__`` among its attributes (the class swapped after the checks)
    from pytest_agentops.engine.trial import describe
    from pytest_agentops.errors import ChildAgentError
    from pytest_agentops.harness.child.protocol import thaw

    for cls, attrs in ((f.ArgsSetter, {}), (f.Stringed2, {"__class__": f.Oops}), (f.WrapsAnObject, {}),
                       (f.ReplacesItsTraceback, {})):
        frozen = ("exc", pickle.dumps((cls, ("x",), attrs)), "an exception")
        thawed = thaw(frozen, data_loads)
        assert type(thawed) is ChildAgentError
        assert describe(thawed).startswith("ChildAgentError: an exception")  # (shown as the harness shows it)
    assert not ran_in.exists()


def test_values_of_the_agents_own_classes_without_such_methods_still_come_back():
    """Dataclasses (frozen, with slots), named tuples, enums and plain classes of the project's own files are
    rebuilt as before: none runs code of the agent's while rebuilt."""
    import pickle

    from pytest_agentops.harness.child.child_data import data_loads

    for value in (isolation_support.Reply("hi", 2), isolation_support.FrozenReply("hi", 2),
                  isolation_support.SlottedReply("hi", 2), isolation_support.Pair(1, "a"),
                  isolation_support.Colour.RED, isolation_support.Level.HIGH,
                  isolation_support.Perm.R | isolation_support.Perm.W,
                  {isolation_support.Colour.RED: isolation_support.Pair(1, "a")}):
        assert data_loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)) == value, value
        assert data_loads(pickle.dumps(value, protocol=3)) == value, value


def test_keys_made_to_share_a_hash_are_refused_at_once():
    """An outside review: a 3.3 MB frozenset of ints ``k * (2**61 - 1)`` (all hash to 0) made each insertion walk
    all the others, in C with the GIL held: pytest hung past the trial's limit (killed after 120 s). More than
    ``MAX_SAME_HASH`` keys of one dict or set sharing a hash are refused before any goes in."""
    import collections
    import pickle

    from pytest_agentops.harness.child.child_data import MAX_SAME_HASH, data_loads

    colliding = [k * (2**61 - 1) for k in range(1, 3_001)]  # (this process builds them as a set: quadratic)
    for value in (frozenset(colliding), set(colliding), dict.fromkeys(colliding),
                  collections.Counter(dict.fromkeys(colliding[:1000], 1))):
        with pytest.raises(pickle.UnpicklingError, match="share a hash"):
            data_loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    few = frozenset(colliding[:MAX_SAME_HASH])
    assert data_loads(pickle.dumps(few)) == few
    assert data_loads(pickle.dumps(dict.fromkeys(range(100_000)))) == dict.fromkeys(range(100_000))


def test_the_test_process_takes_no_message_larger_than_the_limit():
    """A child that announced a 1 TiB message and streamed it grew pytest's memory by what it sent (2 GiB in the
    review), past the child's own memory limit."""
    from pytest_agentops.harness.child.protocol import MAX_MESSAGE_BYTES

    (record,) = run_campaign(Scenario(name="flood", agent=isolation_support.floods, trials=1, seed=1, faults="none",
                                      isolation="process")).records
    assert record.outcome == "error"
    assert record.reason == (f"AgentMessageRefused: the agent's process sent a message of {1 << 40:,} bytes, more "
                             f"than the {MAX_MESSAGE_BYTES:,} one may have")


def test_the_test_process_takes_no_more_than_the_limit_from_an_attempt_in_all():
    """Each message under the limit, but the same 100 MB trace event sent 20 times grew pytest by 2 GB in 14 s
    (a review), the child's own memory flat: 40 events of 8 MiB (320 MiB) end the attempt; one does not."""
    from pytest_agentops.harness.child.protocol import MAX_ATTEMPT_BYTES

    records = [run_campaign(Scenario(name="traces", agent=isolation_support.traces_over_and_over, task=str(n),
                                     trials=1, seed=1, faults="none", isolation="process", keep_traces=0,
                                     check=lambda world, out: True)).records[0] for n in (1, 40)]
    assert [r.outcome for r in records] == ["completed", "error"], [r.reason for r in records]
    assert records[1].reason == (f"AgentMessageRefused: the agent's process sent more than the {MAX_ATTEMPT_BYTES:,} "
                                 "bytes its messages may hold in all")


def test_the_test_process_builds_no_more_than_the_limit_from_an_attempts_messages():
    """Each byte an opcode making an object: 100 MB of empty sets (``EMPTY_SET``, 216 bytes each in pytest)
    would have grown pytest by 21 GB (a review). What an attempt's messages build beyond their bytes is at most
    ``MAX_ATTEMPT_BUILT_BYTES``: one set more ends it. Ordinary data is far from it (a first version counted
    every opcode, and ended attempts of 200,000 clock calls or a million short strings)."""
    import pickle

    from pytest_agentops.harness.child.child_data import MAX_ATTEMPT_BUILT_BYTES, data_loads_counted

    (record,) = run_campaign(Scenario(name="sets", agent=isolation_support.sends_empty_sets, trials=1, seed=1,
                                      task=str(MAX_ATTEMPT_BUILT_BYTES // 216 + 1), faults="none",
                                      isolation="process")).records
    assert record.outcome == "error"
    assert record.reason == (f"AgentMessageRefused: the agent's process sent messages that build more than "
                             f"{MAX_ATTEMPT_BUILT_BYTES:,} bytes in the test process beyond their own (empty "
                             "containers, memo entries, references, objects its calls make: "
                             "MAX_ATTEMPT_BUILT_BYTES)")
    randoms = b"\x80\x04crandom\nRandom\n\x94" + b"h\x00)\x81" * 1000 + b"."  # (NEWOBJ: 2,560 bytes each)
    with pytest.raises(pickle.UnpicklingError, match="MAX_ATTEMPT_BUILT_BYTES"):  # (a review: 515 bytes built
        data_loads_counted(randoms, 2**20)  # per byte sent, charged 8; a 1 MiB budget here, 1 KiB of references)
    strings = [f"s{i}" for i in range(110_000)]  # (a tenth of a million: what it builds, times ten)
    value, left = data_loads_counted(pickle.dumps(strings, protocol=5), MAX_ATTEMPT_BUILT_BYTES)
    assert value == strings and (MAX_ATTEMPT_BUILT_BYTES - left) * 10 < MAX_ATTEMPT_BUILT_BYTES * 0.2
    _, left = data_loads_counted(pickle.dumps(("call", "sleep", 0.01), protocol=5), MAX_ATTEMPT_BUILT_BYTES)
    assert (MAX_ATTEMPT_BUILT_BYTES - left) * 200_000 < MAX_ATTEMPT_BUILT_BYTES * 0.2


def test_an_isolated_agents_memory_limit_is_its_hard_limit_too_and_a_crash_is_named_as_in_process():
    """The soft limit alone was set, so an agent lifted it (``setrlimit(RLIMIT_AS, (INF, INF))``) and allocated
    3 GiB under a limit of 512 MiB. And an agent's ``sys.exit`` was recorded with the child's whole traceback
    (absolute paths: a report that depended on where the project was checked out)."""
    (limits,) = [r.output for r in run_campaign(Scenario(
        name="limits", agent=isolation_support.its_memory_limit, trials=1, seed=1, faults="none", isolation="process",
        memory_limit_mb=512, check=lambda world, out: True)).records]
    assert limits == str((512 * 2**20, 512 * 2**20))
    (record,) = run_campaign(Scenario(name="exits", agent=isolation_support.exits, trials=1, seed=1, faults="none",
                                      isolation="process")).records
    assert record.reason.startswith("AgentProcessDied: agent process raised SystemExit: 0 at isolation_support.py:")
    assert "Traceback" not in record.reason and "\n" not in record.reason


@pytest.mark.parametrize("target", ["pid", "group", "everyone", "keeper", "posix", "numpy", "pidfd"])
def test_an_isolated_agent_cannot_signal_the_test_process(target):
    """``os.kill(os.getppid(), SIGKILL)`` from an isolated agent ended pytest (status 137, the later tests never
    ran), and SIGSTOP froze the run. Refused now, as in-process, and the trial is an error whatever the agent
    caught. (SIGCONT here: were it not refused, pytest would go on.)"""
    agent = (isolation_support.signals_the_test_process if target in ("pid", "group", "everyone", "keeper")
             else isolation_support.signals_past_os_kill)  # (a second review's ways past the first guard)
    (record,) = run_campaign(Scenario(name="signals", agent=agent, task=f"{target} {os.getpid()}", trials=1, seed=1,
                                      faults="none", isolation="process")).records
    assert record.outcome == "error", record.reason
    assert "in an isolated trial is refused: it signals the test process" in record.reason


def test_a_refusal_stays_an_error_whatever_the_agent_clears():
    """The first refusal was kept in a list of the child module's: an agent that caught the ``PermissionError``
    and cleared the list passed its trial (a review). It is kept out of the reach of a module's name now."""
    (record,) = run_campaign(Scenario(name="undo", agent=isolation_support.refused_then_undone, task=str(os.getpid()),
                                      trials=1, seed=1, faults="none", isolation="process",
                                      check=lambda world, out: True)).records
    assert record.outcome == "error", record.reason
    assert "in an isolated trial is refused: it signals the test process" in record.reason


def test_what_an_agent_left_to_its_process_exit_is_done(tmp_path):
    """Once the child exited with ``os._exit`` after its result (a review): a file the agent left open lost what
    was buffered, and work it left in a thread pool never ran. The child exits as any process does."""
    path = tmp_path / "out.txt"
    (record,) = run_campaign(Scenario(name="left", agent=isolation_support.leaves_a_file_open, task=str(path),
                                      trials=1, seed=1, faults="none", isolation="process",
                                      check=lambda world, out: True)).records
    assert record.outcome == "completed", record.reason
    assert path.read_text() == "written pooled"


def test_files_an_agent_leaves_open_through_reference_cycles_are_written_at_its_process_exit(tmp_path):
    """The child freezes what it loaded before the agent's code (its harness: its exit collected it again and
    again, 62 ms against 11 ms frozen, measured while the harness still loaded numpy). A first version froze
    everything after the agent's last exit handler: a file held by a class attribute, or by an object holding a
    thread of its own method (reference cycles), was never closed, and what was written to it was lost (a
    review). The agent's objects are collected as before."""
    (record,) = run_campaign(Scenario(name="cycles", agent=isolation_support.leaves_files_in_cycles,
                                      task=str(tmp_path), trials=1, seed=1, faults="none", isolation="process",
                                      check=lambda world, out: True)).records
    assert record.outcome == "completed", record.reason
    assert (tmp_path / "class.txt").read_text() == "class attribute"
    assert (tmp_path / "cycle.txt").read_text() == "cycle"
    assert record.output == "frozen"  # (what the child loaded before the agent ran)


def test_a_thread_an_agent_leaves_running_does_not_hold_its_finished_trial():
    """A thread the agent started and left running (not a daemon) kept the child alive after its result was
    sent: the parent waited 10 s for it, then killed it, and a trial with a shorter timeout timed out (a
    review). The child exits once its result is sent, as pytest would not wait for such a thread in-process."""
    (record,) = run_campaign(Scenario(name="thread", agent=isolation_support.leaves_a_thread_running, trials=1,
                                      seed=1, faults="none", isolation="process", timeout_s=5.0,
                                      check=lambda world, out: True)).records
    assert record.outcome == "completed", record.reason


@pytest.mark.skipif(why_not_fenced() is not None, reason=f"the kernel's fence is not here: {why_not_fenced()}")
def test_no_signal_or_memory_write_of_an_isolated_agent_reaches_the_test_process():
    """Past every name the child refuses (``ctypes``, from a thread too, a fresh ``posix``, a shell's ``kill``)
    SIGSTOP froze pytest and SIGKILL ended it; as root, ``/proc/PPID/mem`` opened for writing would let the agent
    rewrite pytest. The kernel refuses them now (Landlock): SIGURG here, counted as it arrives (were it let
    through, pytest would count it and go on)."""
    arrived = []
    previous = signal.signal(signal.SIGURG, lambda signum, frame: arrived.append(signum))
    try:
        (record,) = run_campaign(Scenario(name="fenced", agent=isolation_support.signals_past_every_name, trials=1,
                                          task=f"pytest {os.getpid()}", seed=1, faults="none", isolation="process",
                                          check=lambda world, out: True)).records
        real_sleep(0.2)  # (a signal sent is handled at the next bytecode: given time to arrive)
    finally:
        signal.signal(signal.SIGURG, previous)
    assert record.outcome == "completed", record.reason
    found = ast.literal_eval(record.output)  # (a record keeps an output's repr)
    assert found.pop("memory") == "Permission denied"
    assert found.pop("shell").endswith("Operation not permitted")  # (the shell's own words before it)
    assert found == {"ctypes": "Operation not permitted", "thread": "Operation not permitted",
                     "posix": "Operation not permitted"}
    assert arrived == []


@pytest.mark.skipif(why_not_fenced() is not None, reason=f"the kernel's fence is not here: {why_not_fenced()}")
def test_nothing_an_isolated_agent_calls_acts_on_the_test_process_or_the_installation(tmp_path):
    """A review got past the signal fence with no signal: ``prlimit64`` set pytest's ``RLIMIT_CPU`` to 1 s (the
    kernel killed it, no root needed); ``PTRACE_TRACEME`` made the agent's parent its tracer; as root, pytest
    moved into a cgroup and killed, its timer slack set to 2 s, its threads at ``SCHED_IDLE`` and nice 19, its
    ``oom_score_adj`` at 1000, ``TIOCSTI`` typing into the user's shell; a ``sitecustomize`` planted for the next
    child. Each is refused now (here each call would leave things as they were; the cgroup made is removed), and
    ordinary files still work."""
    (record,) = run_campaign(Scenario(name="fenced", agent=isolation_support.reaches_past_signals, trials=1, seed=1,
                                      task=f"pytest {os.getpid()} {tmp_path / 'scratch'}", faults="none",
                                      isolation="process", check=lambda world, out: True)).records
    assert record.outcome == "completed", record.reason
    assert record.output == ("prlimit=EPERM setpriority=EPERM affinity=EPERM oom_score_adj=EACCES traceme=EPERM "
                             "tiocsti=EPERM cgroup=EACCES files=kept")


@pytest.mark.skipif(os.geteuid() != 0 or platform.machine() != "x86_64", reason="root's capabilities, on x86-64")
def test_a_root_agent_keeps_no_capability_that_reaches_past_the_fence():
    """As root, a review reached pytest past the fence through capabilities: a BPF program sending it signals, a
    CPU-wide perf event raising ``SIGTRAP``, fanotify permission events stalling its ``open`` calls, a
    ``SCHED_FIFO`` busy loop starving it. The agent's process keeps only the capabilities acting on files and
    users, in every set (its programs get no more back); each of those calls is refused."""
    from pytest_agentops.process.capabilities import KEPT

    (record,) = run_campaign(Scenario(name="root", agent=isolation_support.reaches_past_the_fence_as_root, trials=1,
                                      seed=1, faults="none", isolation="process",
                                      check=lambda world, out: True)).records
    assert record.outcome == "completed", record.reason
    found = dict(item.split("=") for item in record.output.split())
    with open("/proc/self/status") as status:  # (what pytest has: the agent keeps KEPT of it)
        had = {line.split()[0].rstrip(":"): int(line.split()[1], 16) for line in status if line.startswith("Cap")}
    kept = sum(1 << c for c in KEPT)
    assert {k: int(found.pop(k), 16) for k in ("CapEff", "CapBnd", "CapInh", "CapAmb")} == {
        "CapEff": had["CapEff"] & kept, "CapBnd": had["CapBnd"] & kept, "CapInh": 0, "CapAmb": 0}
    assert found == {"bpf": "EPERM", "perf": "EACCES", "fanotify": "EPERM", "fifo": "EPERM", "other_user": "done"}


@pytest.mark.skipif(why_not_fenced() is not None, reason=f"the kernel's fence is not here: {why_not_fenced()}")
def test_the_fence_goes_up_when_the_capabilities_cannot_be_dropped():
    """Capabilities that could not be dropped (the first version knew the system call only on two
    architectures) skipped the whole fence: no signal scope, ``/proc`` writable. The fence goes up anyway, and
    both reasons are told."""
    code = ("import os\n"
            "from pytest_agentops.process import capabilities, confine\n"
            "capabilities.drop = lambda libc, scoped: 'capset: refused'\n"
            "print(confine.fence_in())\n"
            "try:\n    os.kill(os.getppid(), 0)\n    print('reached')\n"
            "except PermissionError:\n    print('refused')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split("\n")[:2] == ["capset: refused", "refused"], out


@pytest.mark.skipif(os.geteuid() != 0, reason="root's capabilities")
def test_without_the_fences_signal_scope_a_root_agent_keeps_no_kill_capability():
    """``CAP_KILL`` is kept for the agent's own processes run as another user, which the fence's signal scope
    keeps to them; on a kernel without the scope it reached every user's processes (a review)."""
    code = ("from pytest_agentops.process import capabilities, confine\n"
            "confine.why_not_fenced = lambda: 'no Landlock here'\n"
            "print(confine.fence_in())\n"
            "print([line.split()[1] for line in open('/proc/self/status') if line.startswith('CapEff')][0])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    reason, effective = out.stdout.split("\n")[:2]
    assert reason == "no Landlock here"
    assert not int(effective, 16) & (1 << 5) and int(effective, 16) & 1, effective  # (no KILL; CHOWN kept)


def test_the_fence_leaves_every_path_writable_but_the_views_of_processes_and_the_system(tmp_path):
    """What the Landlock rules grant: each entry of ``/`` whole but ``/proc`` and ``/sys`` (and links); and a proc,
    sysfs or cgroup file system mounted elsewhere (``/host/proc`` in a container: a review wrote another
    process's ``oom_score_adj`` through one) is fenced off too, its ancestors granted entry by entry."""
    from pytest_agentops.process.confine import FENCED_OFF, fenced_off, writable_roots

    roots = dict(writable_roots(fenced_off()))
    assert "/proc" not in roots and "/sys" not in roots and all(not os.path.islink(r) for r in roots)
    assert any(str(tmp_path.resolve()).startswith(root + "/") for root in roots)
    assert {"/" + name for name in os.listdir("/")} - set(roots) == {
        path for path in FENCED_OFF if os.path.exists(path)} | {
        "/" + name for name in os.listdir("/") if os.path.islink("/" + name)}
    view = tmp_path / "host" / "proc"
    view.mkdir(parents=True)
    (tmp_path / "host" / "data").mkdir()
    table = tmp_path / "mountinfo"
    table.write_text("22 1 0:5 / /proc rw - proc proc rw\n23 1 0:6 / /sys rw - sysfs sysfs rw\n"
                     f"24 1 0:5 / {view} rw - proc proc rw\n25 1 8:1 / {tmp_path / 'host' / 'data'} rw - ext4 x rw\n")
    off = fenced_off(str(table))
    assert off == tuple(sorted({"/proc", "/sys", str(view)}))
    roots = dict(writable_roots(off))
    assert str(view) not in roots and not any(str(view).startswith(r + "/") for r in roots)
    assert str(tmp_path / "host" / "data") in roots  # (the view's siblings are granted one by one)


def test_code_an_agent_plants_on_the_path_runs_in_no_later_child_before_its_fence(tmp_path, monkeypatch):
    """A ``sitecustomize.py`` an agent wrote in a directory of pytest's ``sys.path`` ran in every later child at its
    start (a review: before its fence, so it could signal pytest), and a ``platform.py`` written in the working
    directory shadowed the standard library's there (``-m`` put the working directory first). A child now starts
    on the installation alone (no PYTHONPATH, ``-P``), and takes pytest's ``sys.path`` once fenced in."""
    on_path, cwd = tmp_path / "on_path", tmp_path / "cwd"
    on_path.mkdir()
    cwd.mkdir()
    monkeypatch.syspath_prepend(str(on_path))
    monkeypatch.chdir(cwd)
    result = run_campaign(Scenario(name="plants", agent=isolation_support.plants_code, task=f"{on_path};{cwd}",
                                   trials=3, seed=1, faults="none", isolation="process",
                                   check=lambda world, out: out == "planted"))
    assert result.outcome_counts == {"completed": 3}
    ran = {p.name: p.read_text().split() for p in tmp_path.glob("*/ran-*")}
    assert all(flag == "1" for flags in ran.values() for flag in flags), ran  # (never before the fence)


@pytest.mark.parametrize("why", [None, "Landlock ABI 5 has no scopes (6+)"])
def test_isolation_without_the_kernels_fence_is_said_once(monkeypatch, why):
    """The child threw away why it could not fence itself in (a review): a machine without Landlock scopes ran
    isolated agents that could still reach pytest with ctypes, without a word. Said once per process now,
    before the first child (the kernel's answer), at the test's line."""
    import warnings

    from pytest_agentops import IsolationUnfenced
    from pytest_agentops.harness import crash
    from pytest_agentops.harness.child import unfenced
    from pytest_agentops.process import confine

    monkeypatch.setattr(confine, "why_not_fenced", lambda: why)
    monkeypatch.setattr(unfenced, "_UNFENCED_WARNED", [])
    scenario = Scenario(name="said", agent=isolation_support.spawner, trials=1, seed=1, faults="none",
                        isolation="process")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for _ in range(2):
            crash.LAYER.for_campaign(scenario, resolve_run(scenario, ())).close()
    said = [w for w in seen if issubclass(w.category, IsolationUnfenced)]
    assert [str(w.message) for w in said] == ([] if why is None else [
        f"isolation='process' without the kernel's fence ({why}): an isolated agent's ctypes, a fresh posix module "
        "or a shell's kill can still signal pytest or change its limits (docs/harness.md, \"Hostile agents and "
        "process isolation\")"])
    assert all(w.filename == __file__ for w in said)


def test_a_child_that_could_not_fence_itself_in_is_said_once(monkeypatch):
    """The kernel has Landlock scopes, but a child could not fence itself in for another reason (a failed call, a
    32-bit interpreter: no system call table): the child says why, and the test process warns once."""
    import warnings

    from pytest_agentops import IsolationUnfenced
    from pytest_agentops.harness.child import unfenced

    monkeypatch.setattr(unfenced, "_UNFENCED_WARNED", [""])  # (the kernel's answer: fenced)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        records = run_campaign(Scenario(name="told", agent=isolation_support.says_it_is_unfenced, trials=2, seed=1,
                                        task="no system call table for riscv64", faults="none", isolation="process",
                                        check=lambda world, out: out == "told")).records
    assert [r.outcome for r in records] == ["completed", "completed"]
    said = [str(w.message) for w in seen if issubclass(w.category, IsolationUnfenced)]
    assert len(said) == 1 and "(no system call table for riscv64)" in said[0], said


@pytest.mark.parametrize("ending", ["return", "exit", "sigkill", "segfault"])
def test_processes_an_agent_starts_in_sessions_of_their_own_end_with_its_trial(tmp_path, ending):
    """A process started with ``start_new_session=True`` (or orphaned by a shell that started it and exited)
    left the agent's process group and outlived the campaign and pytest; so did one the agent made its
    parent's child (``clone(CLONE_PARENT)``), and every such process of an agent that died by a signal (its
    clean-up at exit never ran): the keeper ends them all."""
    path = tmp_path / "pids"
    (record,) = run_campaign(Scenario(name="leaves", agent=isolation_support.leaves_processes_behind,
                                      task=f"{path} {ending}", trials=1, seed=1, faults="none", isolation="process",
                                      check=lambda world, out: True)).records
    pids = [int(p) for p in path.read_text().split()]
    try:
        assert len(pids) == (3 if platform.machine() == "x86_64" else 2) and _wait_gone(*pids), pids
    finally:
        for pid in pids:  # (were they left running: not for the 300 s of their sleep)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    assert record.outcome == ("completed" if ending == "return" else "error")
    if ending in ("sigkill", "segfault"):  # (the keeper exits as the agent's process did)
        signal_name = "SIGKILL" if ending == "sigkill" else "SIGSEGV"
        assert f"was killed by {signal_name}" in record.reason, record.reason


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the hopper's raw fork is x86-64's")
@pytest.mark.parametrize("ending", ["return", "timeout"])
def test_a_process_hopping_from_pid_to_pid_ends_with_its_trial(tmp_path, ending):
    """A process forking and exiting in a loop, in a new session, outran the clean-up's rounds of reading
    ``/proc`` and killing what it found (a review): it outlived the trial, its campaign and pytest. It ends with
    the trial now, whether the agent returned or its attempt was killed at the timeout (the keeper's one
    ``kill(-1)`` in its signal scope), and a process of the test's own, outside that scope, lives on."""
    beat = tmp_path / "hops"
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (record,) = run_campaign(Scenario(name="hops", agent=isolation_support.hops_pids, task=f"{beat} "
                                          f"{'hang' if ending == 'timeout' else 'return'}", trials=1, seed=1,
                                          faults="none", isolation="process",
                                          # (the agent that returns has time for a slow start on a loaded machine)
                                          timeout_s=3.0 if ending == "timeout" else 15.0,
                                          check=lambda world, out: True)).records
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
    assert record.outcome == ("completed" if ending == "return" else "timed_out"), record.reason
    deadline, hops = time.monotonic() + 3, None
    while time.monotonic() < deadline:  # (until its count stops moving)
        real_sleep(0.3)
        hops, before = beat.read_text(), hops
        if hops == before:
            break
    assert hops == before and int(hops) > 0, "the hopper outlived its trial"


def _values():
    import collections
    import datetime
    import decimal
    import typing
    import urllib.parse
    import uuid
    import zoneinfo

    import numpy as np

    return [
        None, 1, 2.5, "text", b"bytes", bytearray(b"b"), [1, (2, 3)], {"a": {1, 2}}, frozenset({3}), complex(1, 2),
        ..., NotImplemented, collections.OrderedDict(a=1), collections.deque([1]), collections.Counter("aab"),
        datetime.datetime(2026, 1, 1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")), datetime.timedelta(seconds=3),
        decimal.Decimal("1.5"), uuid.UUID(int=7), urllib.parse.urlparse("http://h/p?q=1"),
        isolation_support.Orders.__new__(isolation_support.Orders), int | None, typing.List[int], KeyError("k"),  # noqa: UP006
        np.arange(3), np.arange(12).reshape(3, 4)[:, 1], np.array([1, "x"], dtype=object), np.float64(2.5),
        SHADE.DARK, list[int], dict[str, int],
    ]


class SHADE(__import__("enum").Enum):
    DARK = 1


def test_what_the_test_process_takes_from_a_child_includes_every_ordinary_value():
    """The data a child sends back as it did before the restricted unpickler: containers, numbers, dates with
    their time zone, decimals, UUIDs, parse results, enums, typing's generics, numpy arrays, exceptions, objects of
    the user's classes."""
    import pickle

    import numpy as np

    from pytest_agentops.harness.child.child_data import data_loads

    for value in _values():
        back = data_loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        if isinstance(value, np.ndarray):
            assert (back == value).all()
        elif isinstance(value, BaseException):
            assert type(back) is type(value) and back.args == value.args
        elif type(value).__module__ == "isolation_support":
            assert type(back) is type(value)
        else:
            assert back == value, value


def test_nothing_is_imported_for_a_childs_message(tmp_path, monkeypatch):
    """A class of a module the test process has imported comes back; one of a module it has not is refused, not
    imported (a module the child wrote into a folder on ``sys.path``, or a project file that acts when imported,
    ran in pytest: a third review), nor ``antigravity`` (which opens a browser)."""
    import pickle
    import sys

    from pytest_agentops.harness.child.child_data import data_loads

    (tmp_path / "agentpkg").mkdir()
    (tmp_path / "agentpkg" / "__init__.py").write_text("")
    (tmp_path / "agentpkg" / "late.py").write_text(
        "class Reply:\n    def __init__(self, text):\n        self.text = text\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import agentpkg.late

    data = pickle.dumps(agentpkg.late.Reply("hi"))
    assert data_loads(data).text == "hi"
    monkeypatch.delitem(sys.modules, "agentpkg.late")
    monkeypatch.delattr(sys.modules["agentpkg"], "late")
    with pytest.raises(pickle.UnpicklingError, match="not a module loaded in the test process"):
        data_loads(data)
    assert "agentpkg.late" not in sys.modules
    with pytest.raises(pickle.UnpicklingError, match="not a module loaded in the test process"):
        data_loads(b"cantigravity\nfly\n.")
    assert "antigravity" not in sys.modules


class _Sized:
    """Pickles as ``bytearray(2**29)``: 40 bytes that grew pytest to 4.7 GiB."""

    def __reduce__(self):
        return (bytearray, (2**29,))


@pytest.mark.parametrize(("data", "why"), [
    # (a class reached through a module another module imported: io.FileIO through pathlib on 3.11)
    (b"cisolation_support\nsubprocess.Popen\n.", "names a module's attribute through another"),
    (b"cisolation_support\nos.system\n.", "names a module's attribute through another"),
    (b"cos\nsystem\n.", "not a function or a class that acts on the system"),
    ("sized", r"bytearray\(...\): the test process calls no builtin type for a message"),
    ("endless", "itertools.count: the test process takes data from an agent's process"),
], ids=["through-a-module", "socket-through-a-module", "function", "sized", "endless"])
def test_a_message_cannot_reach_past_the_data_it_may_hold(data, why):
    """A second review's ways past the first version of the restricted unpickler: a dotted name that went through
    another module (``numpy._core._internal`` + ``ctypes.CDLL`` ran ``system`` in pytest), a class called with
    a size (``bytearray(2**29)``: 4.7 GiB of pytest's memory from 40 bytes), an endless iterable."""
    import pickle

    from pytest_agentops.harness.child.child_data import data_loads

    data = {"sized": lambda: pickle.dumps(_Sized(), protocol=5),  # (collections.deque(itertools.count()): endless)
            "endless": lambda: b"ccollections\ndeque\n(citertools\ncount\n(tRtR."}.get(data, lambda: data)()
    with pytest.raises(pickle.UnpicklingError, match=why):
        data_loads(data)


def _call(callable_pickle: bytes, *args: bytes) -> bytes:
    """A protocol-0 pickle calling what ``callable_pickle`` pushes with ``args`` (each a pushed value)."""
    return callable_pickle + b"(" + b"".join(args) + b"tR"


@pytest.mark.parametrize(("data", "why"), [
    # typing.__builtins__["exec"](...): a third review's 152 bytes that ran a shell command in pytest
    (_call(b"c_operator\ngetitem\n", b"ctyping\n__builtins__\n", b"Vexec\n") + b".",
     "typing.__builtins__: the test process takes data"),
    # BUILD on a class pushed by GLOBAL: pathlib.PurePath.__eq__ = slice for the rest of the session
    (b"cpathlib\nPurePath\n(dV__eq__\ncbuiltins\nslice\nsb.", "not a function or a class that acts|sets no attribute"),
    # __newobj_ex__(bytes, (2**29,), {}): past the first size check
    (_call(b"ccopyreg\n__newobj_ex__\n", b"cbuiltins\nbytes\n", b"(I536870912\nt", b"(d") + b".",
     "calls no builtin type|as large as a number"),
    # an IntFlag's method through getattr: to_bytes(0, 2**27)
    (_call(_call(b"cbuiltins\ngetattr\n", b"cre\nRegexFlag\n", b"Vto_bytes\n"), b"I0\n", b"I134217728\n") + b".",
     "an enum's member by its name"),
    # int(Decimal("1e1200000")): 24 s of CPU with the GIL held
    (_call(b"cbuiltins\nint\n", _call(b"cdecimal\nDecimal\n", b"V1e1200000\n")) + b".", "calls no builtin type"),
    # codecs.encode(..., "hex"): doubles at each level
    (_call(b"c_codecs\nencode\n", b"Vab\n", b"Vhex\n") + b".", "encodes text in latin-1"),
    # a tuple nested a million deep, put in a set: CPython's hash recursed in C and pytest died of a segfault
    (b"\x80\x02\x8f()" + b"\x85" * 5000 + b"\x90.", "tuples nested more than 1000 deep"),
    # a hostile-agent review: deque((deque((... deque([]) ...)),)) 300,000 deep, written by hand (pickle.dumps
    # recurses); CPython frees a deque recursively in C: pytest died of a segfault when the output was dropped
    (b"\x80\x04\x8c\x0bcollections\x8c\x05deque\x93\x94" + b"h\x00" * 299_999 + b"]\x85R"
     + b"\x85\x85R" * 299_999 + b".", "nested more than 1000 deep"),
    # the same chain by appends: deque() then APPEND of the one inside, 1,500 deep
    (b"\x80\x04\x8c\x0bcollections\x8c\x05deque\x93\x94" + b"h\x00)R" * 1500 + b"a" * 1499 + b".",
     "objects nested more than 1000 deep"),
    # a defaultdict chain by SETITEM: d1, "k", d2, "k", ..., d1500, then d1499["k"] = d1500, ...
    (b"\x80\x04\x8c\x0bcollections\x8c\x0bdefaultdict\x93\x94h\x00)R" + b"\x8c\x01kh\x00)R" * 1499
     + b"s" * 1499 + b".", "objects nested more than 1000 deep"),
], ids=["typing-builtins", "build-on-a-class", "newobj-ex-size", "enum-method", "decimal-int", "codecs-hex",
        "deep-tuple", "deep-deque", "deque-by-appends", "defaultdict-by-setitem"])
def test_a_message_reaches_no_callable_past_the_values_it_rebuilds(data, why):
    """A third review's ways past the second version: each refused, none run."""
    import pathlib
    import pickle

    from pytest_agentops.harness.child.child_data import data_loads

    with pytest.raises(pickle.UnpicklingError, match=why):
        data_loads(data)
    assert pathlib.PurePath("a") != pathlib.PurePath("b")


@pytest.mark.parametrize("agent", ["draws_beside_its_tool", "draws_beside_its_tool_async"])
def test_an_isolated_agents_tools_draw_apart_from_it_and_as_in_process(agent):
    """An outside review: the test process served an isolated agent's tool calls under a ``random`` seeded as the
    agent's own, so a tool's first draw was the agent's first draw (``quote=10.180219 mine=0.180219`` on every
    trial), and the trials differed from in-process ones. A tool draws from the trial's tool stream in both."""
    def campaign(isolation, concurrency):
        return run_campaign(Scenario(
            name=f"draws-{isolation}", agent=getattr(isolation_support, agent), task="price a book",
            tools=[isolation_support.quote], check=lambda world, out: True, faults=Faults.none(), trials=6, seed=5,
            concurrency=concurrency, early_stop=False, isolation=isolation))

    outputs = {(isolation, c): [r.output for r in campaign(isolation, c).records]
               for isolation in ("process", "none") for c in (1, 3)}
    assert all(r == outputs["none", 1] for r in outputs.values()), outputs
    draws = [float(x) for out in outputs["none", 1] for x in out.strip("()").split(", ")]
    mine, prices, after = draws[0::3], draws[1::3], draws[2::3]
    assert not {round(p - 10, 6) for p in prices} & {*mine, *after}  # no draw of the tool repeats the agent's
    assert len(set(mine)) == len(mine) and len(set(prices)) == len(prices)  # and each trial's are its own


def test_an_isolated_agent_that_never_imports_numpy_runs_without_it_and_one_that_does_draws_as_in_process():
    """numpy was the largest part of an isolated agent's process start-up (~0.13 s of ~0.45 s importing its
    harness on the CI machine); its stand-ins are registered when the agent first imports ``numpy.random``, here inside
    its trial, while the stand-ins are in: its draws are the trial's, the same isolated as in-process and on a
    second run, and they differ from trial to trial."""
    def campaign(isolation):
        return run_campaign(Scenario(
            name=f"numpy-{isolation}", agent=isolation_support.imports_numpy_and_draws, task="draw",
            check=lambda world, out: True, faults=Faults.none(), trials=4, seed=9, early_stop=False,
            isolation=isolation))

    isolated, again, inproc = campaign("process"), campaign("process"), campaign("none")
    assert all(r.outcome == "completed" for r in (*isolated.records, *inproc.records)), isolated.records
    loaded = [ast.literal_eval(r.output)[0] for r in isolated.records]
    assert loaded == [False] * 4  # the agent's process had not loaded numpy before the agent did
    draws = [ast.literal_eval(r.output)[1] for r in isolated.records]
    assert draws == [ast.literal_eval(r.output)[1] for r in again.records]
    assert draws == [ast.literal_eval(r.output)[1] for r in inproc.records]
    assert len({d[0] for d in draws}) == 4 and all(len(set(d[1:])) == 3 for d in draws)


def test_an_isolated_agents_process_loads_neither_freezegun_nor_the_model_package_unless_its_trial_needs_it():
    """The child's harness imported freezegun (with ``dateutil``, ~50 ms of each attempt's start-up) to learn the real
    clock functions, ``importlib.abc`` for the import watch (~10 ms) and the ``llm`` package for ``env.llm`` (~10 ms)
    whether or not the trial had a fake model. Now none of them for an agent without a fake model; with one, the
    ``llm`` package, and ``env.llm`` is the trial's endpoint."""
    from pytest_agentops.llm import FakeLLM, call_tools_then_answer

    def campaign(**extra):
        return run_campaign(Scenario(name="modules", agent=isolation_support.reports_the_modules_its_harness_loaded,
                                     task="look", check=lambda world, out: True, faults=Faults.none(), trials=2,
                                     seed=3, isolation="process", **extra))

    plain, with_model = campaign(), campaign(llm=FakeLLM(policy=call_tools_then_answer("done")))
    assert [r.outcome for r in (*plain.records, *with_model.records)] == ["completed"] * 4, plain.records[0].reason
    names = isolation_support.HARNESS_ONCE_LOADED
    assert {ast.literal_eval(r.output) for r in plain.records} == {((False,) * len(names), "NoneType")}
    loaded, endpoint = ast.literal_eval(with_model.records[0].output)
    assert dict(zip(names, loaded, strict=True))["pytest_agentops.llm"] and endpoint == "LLMEndpoint"


def test_numpy_imported_past_the_harness_watch_is_caught_up_before_the_trial_and_an_error_inside_it():
    """A review: an import hook of the agent's ahead of the harness's watch (instrumentation hooks find modules
    themselves) loaded ``numpy.random`` without numpy's stand-ins, and the isolated trial drew unseeded numbers,
    different every run, and passed. Loaded so at the agent module's import, the stand-ins are registered before
    the trial starts (the same draws as in-process); loaded so inside the trial, the trial is an error saying why."""
    import numpy_hook_agent

    def campaign(agent, task, isolation):
        return run_campaign(Scenario(name=f"hook-{isolation}", agent=agent, task=task, check=lambda w, o: True,
                                     faults=Faults.none(), trials=3, seed=9, early_stop=False, isolation=isolation))

    records = campaign(numpy_hook_agent.agent, "draw", "process").records
    assert {r.outcome for r in records} == {"completed"}, records[0].reason
    at_import = [ast.literal_eval(r.output) for r in records]
    inproc = campaign(isolation_support.imports_numpy_and_draws, "draw", "none")
    assert {(before, after) for before, after, _ in at_import} == {(False, False)}  # imported past the watch
    assert [drawn[1] for _, _, drawn in at_import] == [ast.literal_eval(r.output)[1] for r in inproc.records]
    in_trial = campaign(isolation_support.imports_numpy_past_the_watch, "in trial", "process")
    assert {r.outcome for r in in_trial.records} == {"error"}
    assert all("past the harness's import watch" in r.reason for r in in_trial.records), in_trial.records[0].reason


def test_an_isolated_agents_fake_model_policy_draws_apart_from_it_and_as_in_process():
    """The same for a fake model's policy drawing from ``random``: served in the test process for an isolated
    agent, it repeated the agent's draws; it draws from a stream of its own in both modes."""
    from client_agents import need

    need("openai")
    from pytest_agentops.llm import FakeLLM

    def campaign(isolation):
        return run_campaign(Scenario(
            name=f"policy-draws-{isolation}", agent=isolation_support.draws_beside_its_model, task="a number",
            check=lambda world, out: True, llm=FakeLLM(isolation_support.drawing_policy, model="gpt-4o-mini"),
            faults=Faults.none(), trials=4, seed=9, concurrency=2, early_stop=False, isolation=isolation))

    isolated, in_process = campaign("process"), campaign("none")
    assert [r.output for r in isolated.records] == [r.output for r in in_process.records]
    for output in (r.output for r in in_process.records):
        mine, said, after = output.strip("()").split(", ")
        assert said.strip("'") not in (mine, after), output


def test_a_scenarios_own_layer_draws_from_a_stream_of_the_trials_own_in_process_and_isolated():
    """A layer of the scenario's own drawing from ``random``: in-process its hooks drew from the agent's stream
    (the agent's later draws moved: its output differed from an isolated run's), and its campaign part, ``attach``
    and ``record`` from the process-wide generator (its record differed in every run). Its code draws from the
    trial's harness stream now (its campaign part from the campaign's): the same records in every run, in both
    modes and at any concurrency, and the agent draws as it does without the layer."""
    def campaign(isolation, concurrency, layered=True):
        layers = (isolation_support.DiceLayer(),) if layered else ()
        return run_campaign(Scenario(
            name="dice", agent=isolation_support.draws_beside_its_tool, task="price a book",
            tools=[isolation_support.quote], check=lambda world, out: True, faults=Faults.none(), trials=6, seed=5,
            concurrency=concurrency, early_stop=False, isolation=isolation, layers=layers))

    def seen(result):
        return [(r.output, r.layers["dice"]) for r in result.records]

    runs = {(isolation, c): seen(campaign(isolation, c)) for isolation in ("process", "none") for c in (1, 3)}
    first = runs["none", 1]
    assert all(run == first for run in runs.values()), runs
    assert seen(campaign("none", 1)) == first  # (and again)
    alone = campaign("none", 1, layered=False)  # the agent's draws as without the layer
    assert [out for out, _ in first] == [r.output for r in alone.records]
    records = [record for _, record in first]
    assert len({r.campaign for r in records}) == 1 and len({r.attached for r in records}) == len(records)
    agents = {float(x) for out, _ in first for x in out.strip("()").split(", ")}
    drawn = {x for r in records for x in (r.attached, *r.calls, r.recorded)}
    assert all(len(r.calls) == 1 for r in records) and not drawn & agents


@pytest.mark.parametrize("payload", [b"\x80\x04X\x02\x00\x00\x00\xff\xfe.", b"I12x\n.", b"\x80\x05K", b""],
                         ids=["bad-utf8", "bad-int", "cut-short", "empty"])
def test_a_frame_that_is_no_pickle_is_a_refused_message_not_the_agents_exception(payload):
    """A review: a frame the unpickler fails on with its own ``ValueError``, ``UnicodeDecodeError``, ``IndexError``
    was raised in the trial as if the agent had raised it (``... at pickle.py:1276``), and an empty one waited 10 s
    for a death that never came. Each is a refused message now."""
    import isolation_support

    (record,) = run_campaign(Scenario(name="raw", agent=isolation_support.SendsRawFrame(payload), trials=1, seed=1,
                                      faults="none", isolation="process", check=lambda world, out: True)).records
    assert record.outcome == "error"
    assert record.reason.startswith("AgentMessageRefused: the agent's process sent a message that is not one ("), \
        record.reason

"""Traces a pytest session moves out of memory (``trace_spill``, ``RecordStore.spill_traces``): read back equal,
never read for what needs no trace, and the session's reports the same bytes whether or not they were moved."""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import subprocess
import sys

import pytest

from pytest_agentops import Faults, Scenario, run_campaign
from pytest_agentops._frozen import FrozenMap
from pytest_agentops.demo import TOOLS, Shop, naive_agent, refund_done
from pytest_agentops.record_store import RecordStore
from pytest_agentops.records import TraceEvent, TrialRecord
from pytest_agentops.result import CampaignResult
from pytest_agentops.trace_spill import SpilledTrace, TraceSpill


def _shop_result(trials: int = 40) -> CampaignResult:
    """A campaign of the reference shop under faults, every trace kept: model calls, faults, tool calls with
    nested arguments and results, violations and escalations in its events."""
    return run_campaign(Scenario(name="spill", agent=naive_agent, task="Refund order 42", world=Shop, tools=TOOLS,
                                 check=refund_done, faults=Faults.profile("high"), trials=trials, seed=5,
                                 early_stop=False, keep_traces=None))


def _as_read(store: RecordStore) -> tuple[list[str], list[dict], list]:
    return ([repr(r) for r in store], [r.to_dict(with_trace=True) for r in store],
            [(r.index, n) for r, n in store.grouped("outcome", "layers", "skeleton")])


def test_moved_traces_read_back_equal_by_index_iteration_column_and_pickle():
    result = _shop_result()
    store = result.records
    before, records = _as_read(store), list(store)
    traces, events = store.column("trace"), store.kept_events
    assert events > 500 and len({len(t) for t in traces}) > 3  # (traces of many lengths and kinds)
    spill = TraceSpill()
    assert store.spill_traces(spill) == events and spill.size > 0
    assert all(type(t) is SpilledTrace for t in store._traces.values())
    assert store.spill_traces(spill) == 0  # (moved once)
    assert _as_read(store) == before and store == records and list(store) == records
    assert [store[i] for i in range(len(store))] == records and store[-1] == records[-1]
    assert store.column("trace") == traces and store.kept_events == events
    assert list(store.not_ok()) == [r for r in records if not r.ok]
    assert pickle.loads(pickle.dumps(store)) == records
    light = [dataclasses.replace(r, trace=()) for r in records]
    assert list(store.without_traces()) == light == [store.without_trace(j) for j in range(len(store))]
    assert list(store.failing_traces()) == [r if not r.ok else dataclasses.replace(r, trace=()) for r in records]
    # the file has no name on disk: a killed run leaves nothing behind
    assert os.fstat(spill._file.fileno()).st_nlink == 0


def test_choosing_the_worst_trials_reads_no_moved_trace(monkeypatch):
    result = _shop_result()
    worst = result.worst_trials(5)
    assert worst and all(r.trace for r in worst)
    fresh = _shop_result()  # (the same campaign, its choice not made yet)
    fresh.records.spill_traces(TraceSpill())
    reads = []
    real_read = TraceSpill.read
    monkeypatch.setattr(TraceSpill, "read", lambda self, *a: reads.append(a) or real_read(self, *a))
    light = fresh.worst_trials(5, traces=False)
    assert reads == [] and [r.trace for r in light] == [()] * len(worst)
    assert [r.index for r in light] == [r.index for r in worst]
    assert fresh.summary() == result.summary()  # (the failure message lists them too)
    assert reads == []
    assert fresh.worst_trials(5) == worst and len(reads) == len(worst)


def test_a_record_kept_whole_moves_nothing_and_reads_without_its_trace_alike():
    trace = (TraceEvent(0, 0.0, "tool_call", "t0", "ok", data=FrozenMap(arguments=FrozenMap(x=1))),)
    odd = TrialRecord(scenario="s", index=0, seed=1, outcome="failed", tool_calls=True, trace=trace)  # (a bool)
    store = RecordStore.of([odd, TrialRecord(scenario="s", index=1, seed=2, outcome="error", trace=trace)])
    assert store.spill_traces(TraceSpill()) == 1  # (the record kept whole keeps its trace in memory)
    assert list(store) == [odd, dataclasses.replace(odd, index=1, seed=2, outcome="error", tool_calls=0)]
    assert [r.trace for r in store.without_traces()] == [(), ()] == [store.without_trace(j).trace for j in (0, 1)]
    assert store.without_trace(0).tool_calls is True


def test_a_failed_read_names_the_missing_bytes():
    spill = TraceSpill()
    trace = (TraceEvent(0, 0.0, "agent", "note", "ok"), TraceEvent(1, 0.5, "agent", "note", "ok"))
    (moved,) = spill.put([trace])
    assert moved.load() == trace and len(moved) == 2
    spill._file.truncate(moved.length - 1)
    with pytest.raises(OSError, match="ended 1 bytes early at offset 0"):
        moved.load()


_PROJECT = '''
from enum import IntEnum

import pytest
from pytest_agentops import Faults, Scenario, tool
from pytest_agentops.demo import TOOLS, Shop, naive_agent, refund_done


def test_own_values(agent_chaos):  # (a tool argument of a class of the test's own: its trace is never pickled)
    class Priority(IntEnum):
        HIGH = 2

    @tool
    def open_ticket(world, priority: int = 0) -> int:
        return int(priority)

    def agent(task, env):
        return env.tools["open_ticket"](priority=Priority.HIGH)

    agent_chaos.run(Scenario(name="own", agent=agent, tools=[open_ticket], trials=5, seed=1, faults="none",
                             check=lambda world, output: False, early_stop=False))

@pytest.mark.parametrize("seed", [1, 2, 3])
def test_shop(agent_chaos, seed):
    agent_chaos.run(Scenario(name=f"shop-{seed}", agent=naive_agent, task="Refund order 42", world=Shop,
                             tools=TOOLS, check=refund_done, faults=Faults.profile("high"), trials=30, seed=seed,
                             early_stop=False))
'''

_CONFTEST = '''
import pytest_agentops.pytest_plugin.campaigns as campaigns
from pytest_agentops.pytest_plugin.options import spill_key
campaigns.SESSION_TRACE_EVENTS = {budget}

def pytest_unconfigure(config):
    traces = config.stash.get(spill_key, None)
    spill = traces.spill if traces is not None else None
    print("SPILLED", 0 if spill is None else spill.size)
'''


def _session(tmp_path, budget: int | None, *args: str) -> tuple[bytes, bytes, bytes, str, int]:
    """The project run in a process of its own (the budget is lowered there only); its reports, JUnit XML, the
    agent chaos section of its output, and the bytes it moved to its spill file."""
    folder = tmp_path / ("default" if budget is None else f"budget-{budget}{''.join(args)}")
    folder.mkdir()
    (folder / "test_shop.py").write_text(_PROJECT)
    (folder / "conftest.py").write_text(_CONFTEST.format(budget="campaigns.SESSION_TRACE_EVENTS" if budget is None
                                                         else budget))
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly",
                           "--agent-chaos", "--agent-chaos-report=r.json", "--agent-chaos-html=r.html",
                           "--junitxml=j.xml", "-s", *args], cwd=folder, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    section = out[out.index("agent chaos"):out.rindex("SPILLED")]
    section = section[:section.rindex("\n=")]  # (pytest's last line holds the run's time)
    spilled = int(out[out.rindex("SPILLED"):].split()[1])
    xml = re.sub(rb' (time|timestamp|hostname)="[^"]*"', b"", (folder / "j.xml").read_bytes())  # (when, where)
    return (folder / "r.json").read_bytes(), (folder / "r.html").read_bytes(), xml, section, spilled


def test_a_session_whose_traces_are_moved_writes_the_same_reports(tmp_path):
    kept = _session(tmp_path, None)
    assert kept[4] == 0  # (three small campaigns: within the session's budget, nothing moved)
    one_in_memory = _session(tmp_path, 1)  # (past it at once: every campaign's traces moved)
    assert one_in_memory[4] > 10_000
    assert one_in_memory[:4] == kept[:4]
    under_xdist = _session(tmp_path, 1, "-n", "2")  # (each worker moves its campaigns' traces after handing them on)
    assert under_xdist[:2] == kept[:2]
    assert b'"trace": [' in kept[0] and b"timeline" in kept[1].lower()


def test_the_reports_read_each_moved_trace_they_show_once_and_write_the_same_bytes(tmp_path, monkeypatch):
    from pytest_agentops.report.attribution import fault_delivery
    from pytest_agentops.report.campaign_data import campaign_data, json_form
    from pytest_agentops.report.html import write_html
    from pytest_agentops.report.json_report import write_report

    def reports(result: CampaignResult, folder: str) -> tuple[bytes, bytes]:
        data = campaign_data(result, series=True)
        out = tmp_path / folder
        json_path = write_report(out / "r.json", [json_form(data)])
        html_path = write_html(out / "r.html", [data])
        return json_path.read_bytes(), html_path.read_bytes()

    expected = reports(_shop_result(), "in-memory")
    moved = _shop_result()
    fault_delivery(moved)  # (tallied before the traces move, as the pytest plugin does)
    moved.records.spill_traces(TraceSpill())
    failing = len(moved.records.not_ok_rows())
    assert 0 < failing < 100  # (the HTML report shows up to 100 traces: every failing trial's here)
    reads = []
    real_read = TraceSpill.read
    monkeypatch.setattr(TraceSpill, "read", lambda self, *a: reads.append(a) or real_read(self, *a))
    data = campaign_data(moved, series=True)  # (the per-trial series read no trace)
    assert reads == []
    json_bytes = write_report(tmp_path / "m.json", [json_form(data)]).read_bytes()
    assert len(reads) == failing  # (the JSON report keeps the failing trials' traces)
    html_bytes = write_html(tmp_path / "m.html", [data]).read_bytes()
    assert len(reads) == 2 * failing  # (the page's timelines; its table of trials reads none)
    assert (json_bytes, html_bytes) == expected
    table = data["records"].traceless()
    assert [{k: v for k, v in e.items() if k not in ("trace", "trace_kept")} for e in data["records"]] == \
        list(table) == table[0:len(table)] == [table[i] for i in range(len(table))]
    assert all("trace" not in e for e in table)


class _Hostile(int):
    """An agent's own ``int``: its pickling would end the process (what an agent can put in a tool argument)."""

    def __reduce_ex__(self, protocol):
        os._exit(3)


def test_a_trace_holding_an_agents_own_values_stays_in_memory_and_none_of_their_methods_runs():
    plain = (TraceEvent(0, 0.0, "tool_call", "t0", "ok", data=FrozenMap(arguments=FrozenMap(x=1))),)
    own = (TraceEvent(0, 0.0, "tool_call", "t0", "ok", data=FrozenMap(arguments=FrozenMap(x=_Hostile(1)))),)
    named = (TraceEvent(0, 0.0, "tool_call", _Label("t0"), "ok"),)
    spill = TraceSpill()
    moved = spill.put([plain, own, named])
    assert moved[1:] == [None, None] and moved[0].load() == plain  # (and the process is still here)
    records = [TrialRecord(scenario="s", index=i, seed=i, outcome="failed", trace=t)
               for i, t in enumerate((plain, own))]
    store = RecordStore.of(records)
    assert store.spill_traces(spill) == 1 and type(store._traces[1]) is tuple
    assert list(store) == records and type(store[1].trace[0].data["arguments"]["x"]) is _Hostile


class _Label(str):
    pass


def test_the_terminal_table_reads_no_moved_trace(monkeypatch):
    from pytest_agentops.report.attribution import fault_delivery
    from pytest_agentops.report.terminal import campaign_table

    expected = campaign_table(_shop_result())
    moved = _shop_result()
    fault_delivery(moved)  # (as the plugin tallies before it moves the traces)
    moved.records.spill_traces(TraceSpill())
    reads = []
    real_read = TraceSpill.read
    monkeypatch.setattr(TraceSpill, "read", lambda self, *a: reads.append(a) or real_read(self, *a))
    assert campaign_table(moved) == expected and reads == []


def test_a_trace_file_that_cannot_be_written_keeps_the_traces_in_memory_and_says_so_once(pytester, monkeypatch):
    import pytest_agentops.pytest_plugin.campaigns as campaigns

    def full(self, traces):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(campaigns, "SESSION_TRACE_EVENTS", 0)
    monkeypatch.setattr(TraceSpill, "put", full)
    pytester.makepyfile(test_full='''
        import pytest
        from pytest_agentops import Faults, Scenario
        from pytest_agentops.demo import TOOLS, Shop, naive_agent, refund_done

        @pytest.mark.parametrize("seed", [1, 2])
        def test_shop(agent_chaos, seed):
            result = agent_chaos.run(Scenario(name=f"shop-{seed}", agent=naive_agent, task="Refund order 42",
                                              world=Shop, tools=TOOLS, check=refund_done, trials=10, seed=seed,
                                              faults=Faults.profile("high"), early_stop=False, keep_traces=None))
            assert all(record.trace for record in result.records)
    ''')
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--agent-chaos", "--agent-chaos-report=r.json")
    result.assert_outcomes(passed=2)
    said = [line for line in result.outlines if "could not be moved" in line]
    assert said == ["agentops: the session's traces could not be moved to a temporary file ([Errno 28] No space "
                    "left on device): they stay in memory"]


class _Loud(str):
    """An agent's own ``str`` whose methods end the process: none may run once its trial is over."""

    def __repr__(self):
        os._exit(5)

    __format__ = __str__ = __reduce_ex__ = __repr__


class _Level(int):
    def __repr__(self):
        os._exit(6)

    __format__ = __str__ = __reduce_ex__ = __repr__


def test_a_trace_keeps_an_agents_own_strings_and_numbers_as_plain_ones(tmp_path):
    from pytest_agentops import tool
    from pytest_agentops.report.campaign_data import campaign_data, json_form
    from pytest_agentops.report.html import write_html
    from pytest_agentops.report.json_report import write_report

    @tool
    def note(world, text: str = "", level: int = 0) -> int:
        """Takes the agent's values as they are."""
        return level

    def agent(task, env):
        env.tools["note"](_Loud.__new__(_Loud, "hello"), level=int.__new__(_Level, 3))
        env.tools["note"](text=_Loud.__new__(_Loud, "again"), level=_Level.__new__(_Level, 4))
        return "done"

    result = run_campaign(Scenario(name="own-values", agent=agent, tools=[note], trials=3, seed=1, faults="none",
                                   check=lambda world, output: False, early_stop=False))
    events = [e for r in result.records for e in r.trace if e.kind == "tool_call"]
    assert [dict(e.data["arguments"]) for e in events[:2]] == [{"text": "hello", "level": 3},
                                                               {"text": "again", "level": 4}]
    kinds = {type(v) for e in events for v in (*e.data["arguments"].values(), e.data["result"])}
    assert kinds == {str, int}
    data = campaign_data(result, series=True)  # (the reports run no method of the agent's values)
    write_report(tmp_path / "r.json", [json_form(data)])
    assert "note(level=3, text=&#x27;hello&#x27;)" in write_html(tmp_path / "r.html", [data]).read_text()
    spill = TraceSpill()
    assert result.records.spill_traces(spill) == result.records.kept_events  # (plain: every trace moved)


def test_the_session_keeps_its_comparisons_without_their_traces(pytester):
    from pytest_agentops.pytest_plugin.options import comparisons_key

    pytester.makepyfile(test_compare='''
        from pytest_agentops import Faults, Scenario
        from pytest_agentops.demo import TOOLS, Shop, careful_agent, naive_agent, refund_done

        def test_candidate(agent_chaos):
            base = Scenario(name="careful", agent=careful_agent, task="Refund order 42", world=Shop, tools=TOOLS,
                            check=refund_done, faults=Faults.profile("high"), trials=20, seed=3)
            result = agent_chaos.compare(base, base.replace(name="naive", agent=naive_agent))
            assert any(r.trace for r in result.candidate_records + result.baseline_records)  # (the test's own)
    ''')
    reprec = pytester.inline_run("-p", "no:cacheprovider", "--agent-chaos", "--agent-chaos-report=r.json")
    reprec.assertoutcome(passed=1)
    config = reprec.getcalls("pytest_sessionfinish")[0].session.config
    ((_, kept),) = config.stash[comparisons_key]
    assert kept.pairs == 20 and not any(r.trace for r in kept.baseline_records + kept.candidate_records)
    assert '"comparisons": [' in (pytester.path / "r.json").read_text()


_FULL_DISK = '''
import resource, signal
from pytest_agentops._frozen import FrozenMap
from pytest_agentops.records import TraceEvent
from pytest_agentops.trace_spill import TraceSpill
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # (past the size limit a write fails with EFBIG instead)
def trace(n, text):
    return tuple(TraceEvent(i, 0.0, "tool_call", "t", "ok", 0, 0, FrozenMap(a=text)) for i in range(n))
spill = TraceSpill()
first = spill.put([trace(3, "x" * 10)])[0]
resource.setrlimit(resource.RLIMIT_FSIZE, (spill.size + 1000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    spill.put([trace(3, "y" * 100)] * 5)  # (a small campaign: it would have fitted a write buffer)
except OSError as exc:
    print("refused:", exc.errno)
print("read back:", first.load() == trace(3, "x" * 10))
'''


def test_a_write_the_disk_refuses_leaves_the_traces_moved_before_readable():
    done = subprocess.run([sys.executable, "-c", _FULL_DISK], capture_output=True, text=True, timeout=60)
    assert done.stdout.split("\n")[:2] == ["refused: 27", "read back: True"], done.stdout + done.stderr
    assert done.returncode == 0 and "Traceback" not in done.stderr


def test_an_agents_own_numbers_and_key_names_are_redacted_as_plain_ones(monkeypatch):
    import enum

    import numpy as np

    from pytest_agentops.harness import secrets
    from pytest_agentops.harness.trace import _scrub

    monkeypatch.setenv("AGENTOPS_PIN_PASSWORD", "73918264")
    secrets.refresh()

    class Pin(int):
        pass

    class Code(enum.IntEnum):
        ADMIN = 73918264

    class Field(enum.StrEnum):
        PASSWORD = "password"

    for value in (73918264, Pin(73918264), Code.ADMIN, np.int64(73918264)):
        out = _scrub({"pin": value, "nested": {"x": value}, "list": [value]})
        assert dict(out) == {"pin": "[redacted]", "nested": {"x": "[redacted]"}, "list": ("[redacted]",)}, value
    out = _scrub({Field.PASSWORD: "hunter2-not-in-env", "user": "alice"})
    assert dict(out) == {"password": "[redacted]", "user": "alice"} and all(type(k) is str for k in out)
    monkeypatch.delenv("AGENTOPS_PIN_PASSWORD")
    secrets.refresh()


class _Lying(str):
    def __len__(self):
        return 1


def test_an_agents_own_label_is_held_once_within_the_label_limit_and_cannot_forge_a_harness_kind():
    from pytest_agentops import tool

    @tool
    def lookup(world, x: int = 0) -> int:
        """An instant tool."""
        return x

    long_label = _Lying("n" * 100_000)

    def agent(task, env):
        for _ in range(20):
            env.trace.add("agent", long_label, "ok")
        try:
            env.trace.add(_Lying("fault"), "lookup", "timeout")
        except ValueError:
            return "refused"
        return "forged"

    result = run_campaign(Scenario(name="labels", agent=agent, tools=[lookup], trials=1, seed=1, faults="none",
                                   check=lambda world, output: output == "refused", early_stop=False,
                                   keep_traces=None))
    (record,) = result.records
    names = [e.name for e in record.trace if e.kind == "agent"]
    assert record.outcome == "completed" and record.faults == () and len(names) == 20
    assert all(type(n) is str and len(n) < 300 for n in names)


def test_a_records_reason_and_model_names_are_plain_strings_and_counts_plain_ints():
    from pytest_agentops import tool

    @tool
    def lookup(world, x: int = 0) -> int:
        """An instant tool."""
        return x

    class Count(int):
        pass

    class Shown:
        def __repr__(self):
            return _Label("shown")

    def agent(task, env):
        env.record_usage(Count(120), Count(30), model=_Label("house-model"))
        if env.trial_id == "trial-0":
            return _Label("done")
        if env.trial_id == "trial-1":
            return Shown()
        env.escalate(_Label("a human decides"))

    result = run_campaign(Scenario(name="plain-fields", agent=agent, tools=[lookup], trials=3, seed=1,
                                   faults="none", early_stop=False))
    assert [(r.outcome, r.reason, r.output) for r in result.records] == [
        ("completed", "", "done"), ("completed", "", "shown"), ("escalated", "a human decides", "")]
    for record in result.records:
        assert type(record.reason) is str and type(record.output) is str
        assert [type(m) for m in record.default_priced] == [str]
        assert type(record.input_tokens) is int and record.tokens == 150


def test_an_object_that_only_claims_to_be_a_str_is_traced_as_before_and_bad_usage_is_a_clear_error():
    from unittest import mock

    from pytest_agentops import Budget

    key = mock.NonCallableMock(spec=str)  # (``isinstance(key, str)`` holds; its type is no ``str``)

    class Lenient(int):
        def __lt__(self, other):
            return False

    def agent(task, env):
        env.trace.add("agent", "lookup", arguments={key: "v"})
        if env.trial_id == "trial-1":
            env.record_usage(input_tokens=Lenient(-10 ** 6))  # (its own ``__lt__`` may not pass it)
        if env.trial_id == "trial-2":
            env.record_usage(output_tokens=10 ** 400)
        if env.trial_id == "trial-3":
            env.record_usage(3, 4, model=5)
        return "ok"

    result = run_campaign(Scenario(name="claims", agent=agent, trials=4, seed=1, early_stop=False, faults="none",
                                   budget=Budget(per_task_tokens=10_000)))
    assert [(r.outcome, r.reason.split(" at ")[0]) for r in result.records] == [
        ("completed", ""),
        ("error", "ConfigError: record_usage: input_tokens=-1000000 must be from 0 to 1,000,000,000,000"),
        ("error", "ConfigError: record_usage: output_tokens=an int of 1329 bits must be from 0 to "
                  "1,000,000,000,000"),
        ("error", "ConfigError: record_usage: model must be a str, got int")]


def test_model_names_an_agent_makes_up_are_cut_and_counted_within_limits(pytester):
    """A review: ``env.record_usage(model=...)`` kept any name: 1 MB names, ten a trial, made a passing run's
    terminal line and JSON report 50 MB each (1 GB at 20 trials of 50 calls). A name keeps at most
    ``MODEL_NAME_CHARS`` characters (cut, redacted first), a trial at most ``UNPRICED_KEPT`` names priced at the
    default, and the table lists ``UNPRICED_SHOWN`` of them and how many more."""
    from pytest_agentops.harness.meter import MODEL_NAME_CHARS, UNPRICED_KEPT
    from pytest_agentops.report.terminal import UNPRICED_SHOWN

    pytester.makepyfile(test_models="""
from pytest_agentops import Scenario

def agent(task, env):
    for i in range(50):
        env.record_usage(input_tokens=1, output_tokens=1, model=f"{env.seed}-{i}-" + "m" * 1_000_000)
    return "ok"

def test_models(agent_chaos):
    agent_chaos.run(Scenario(name="models", agent=agent, trials=5, seed=1, faults="none")).check()
""")
    result = pytester.runpytest("--agent-chaos", "--agent-chaos-report=report.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    [line] = [x for x in result.outlines if "priced at the default '*' price" in x]
    assert line.endswith(f" and {5 * UNPRICED_KEPT - UNPRICED_SHOWN:,} more") and len(line) < 4000, line[:300]
    import json

    report = json.loads((pytester.path / "report.json").read_text())
    names = [r["default_priced_models"] for r in report["campaigns"][0]["records"]]
    assert [len(n) for n in names] == [UNPRICED_KEPT] * 5
    assert all(len(name) <= MODEL_NAME_CHARS + 30 and name.endswith(" characters)") for n in names for name in n)
    assert (pytester.path / "report.json").stat().st_size < 200_000

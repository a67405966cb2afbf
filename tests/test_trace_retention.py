"""A campaign keeps the trace of every failing trial and of the first ``keep_traces`` trials; a passing
trial past them keeps only its skeleton (each event's kind, name and outcome), from which the fault
tallies are the same as from whole traces. ``keep_traces=None`` keeps every trace; a replayed trial always
keeps its own."""

from __future__ import annotations

import dataclasses

import pytest

from pytest_agentops import ConfigError, Faults, LayerTrial, Scenario, replay_trial, run_campaign, tool
from pytest_agentops.report.attribution import fault_delivery

from conftest import lookup, two_lookups

SCENARIO = Scenario(name="keep", agent=two_lookups, tools=[lookup], faults=Faults(rate=0.3, outage=0.05), trials=60,
                    seed=5, early_stop=False, check=lambda world, out: out == 2, keep_traces=20)


def test_failing_trials_and_the_first_n_keep_their_traces_the_rest_their_skeletons():
    result = run_campaign(SCENARIO)
    failing = [r for r in result.records if not r.ok]
    assert failing and any(r.ok and r.index >= 20 for r in result.records)
    for r in result.records:
        kept = not r.ok or r.index < 20
        assert r.trace_kept is kept
        assert bool(r.trace) is kept and bool(r.skeleton) is not kept
    dropped = next(r for r in result.records if not r.trace_kept)
    assert dropped.skeleton[-1][:3] == ("outcome", "keep", "completed")
    data = dropped.to_dict(with_trace=True)
    assert data["trace"] == [] and data["trace_kept"] is False
    assert "trace_kept" not in failing[0].to_dict(with_trace=True)


def test_the_fault_tallies_do_not_depend_on_which_traces_were_kept():
    some = run_campaign(SCENARIO)
    every = run_campaign(dataclasses.replace(SCENARIO, keep_traces=None))
    assert all(r.trace_kept for r in every.records)
    assert fault_delivery(some) == fault_delivery(every)
    assert [dataclasses.replace(r, trace=(), skeleton=()) for r in some.records] == \
        [dataclasses.replace(r, trace=(), skeleton=()) for r in every.records]


def test_a_replayed_trial_keeps_its_trace():
    result = run_campaign(SCENARIO)
    index = next(r.index for r in result.records if not r.trace_kept)
    replayed = replay_trial(SCENARIO, index)
    assert replayed.trace_kept and replayed.trace
    kept = run_campaign(dataclasses.replace(SCENARIO, keep_traces=None)).records[index]
    assert replayed.trace == kept.trace


@pytest.mark.parametrize("value", [-1, 1.5, "all", True])
def test_keep_traces_must_be_a_whole_number_or_none(value):
    with pytest.raises(ConfigError, match="keep_traces="):
        dataclasses.replace(SCENARIO, keep_traces=value)


@tool
def remember(world, note: dict | None = None, key: str = "") -> str:
    """A tool whose arguments the agent changes after the call."""
    return "noted"


def test_an_event_held_until_the_trace_is_kept_shows_the_call_as_made_and_redacted():
    def mutating_agent(task, env):
        note = {"n": 1}
        env.tools["remember"](note, key="sk-proj-abcdefghijklmnopqrstuvwxyz0123456789")
        note["n"] = 2  # after the call: the trace still shows 1
        return "ok"

    result = run_campaign(Scenario(name="held", agent=mutating_agent, tools=[remember], faults="none", trials=1,
                                   seed=1))
    (call,) = [e for e in result.records[0].trace if e.kind == "tool_call"]
    assert call.data["arguments"]["note"] == {"n": 1}
    assert "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789" not in repr(call.data)


# --- found in review of the per-trial fast paths -----------------------------------------------------------

def _lookup(order_id: str) -> str:
    """Look up an order."""
    return "ok"


def test_what_an_agent_sets_on_a_tool_stays_in_its_trial():
    """Each trial's tools are its own objects, attributes included: state an agent (or a framework) leaves on
    the function it was given does not reach the next trial, so a trial replays alone as it ran."""
    def agent(task, env):
        f = env.tools["_lookup"]
        seen = getattr(f, "memo", None)
        f.memo = env.trial_id
        f.__annotations__["leak"] = int
        f("1")
        return "done" if seen is None and "leak" not in _lookup.__annotations__ else "saw another trial"

    scenario = Scenario(name="memo", agent=agent, task="t", tools=[_lookup], check=lambda w, o: o == "done",
                        trials=6, seed=3, early_stop=False, faults="none")
    assert {r.outcome for r in run_campaign(scenario, concurrency=1).records} == {"completed"}
    assert run_campaign(scenario, replay=3).records[0].outcome == "completed"


def test_a_smoke_trial_keeps_its_trace_whatever_keep_traces_says():
    def agent(task, env):
        env.tools["_lookup"](order_id="1")
        return "done"

    scenario = Scenario(name="smoke", agent=agent, task="t", tools=[_lookup], check=lambda w, o: o == "done",
                        trials=5, seed=5, keep_traces=0)
    record = run_campaign(scenario, smoke=True).records[0]
    assert record.trace and record.trace_kept
    assert run_campaign(scenario, replay=2).records[0].trace


def test_keep_traces_says_what_none_means():
    with pytest.raises(ConfigError, match=r"keep_traces=-1 must be a whole number >= 0 \(or None to keep every "
                                          r"trace\)"):
        Scenario(name="s", agent=lambda t, e: "ok", keep_traces=-1)


def test_the_streamed_report_orders_campaigns_as_report_dict_does_when_a_name_is_redacted(tmp_path):
    import json

    from pytest_agentops.report.json_report import report_dict, write_report

    results = [run_campaign(Scenario(name=name, agent=lambda t, e: "ok", trials=3, seed=5, faults="none"))
               for name in ("zeta", "sk-ABCDEFGHIJKLMNOP", "alpha")]
    streamed = write_report(tmp_path / "r.json", results).read_text()
    assert streamed == json.dumps(report_dict(results), indent=2, sort_keys=True, allow_nan=False) + "\n"
    assert "sk-ABCDEFGHIJKLMNOP" not in streamed


class _Scribbler(LayerTrial):
    """A user layer that changes the arguments it is shown once the call has been recorded."""

    def on_tool_recorded(self, spec, arguments, outcome):
        arguments["key"] = "changed by a layer"


class _ScribblerLayer:
    name = "scribbler"

    def attach(self, trial):
        return _Scribbler()


def test_a_call_of_plain_arguments_is_held_as_a_copy_and_redacted_when_kept():
    """Scalar arguments (the common call) are held unscrubbed until the trace is kept: a copy, so what a layer
    does to the call's arguments afterwards is not what the trace shows, and a secret among them is redacted."""
    def agent(task, env):
        env.tools["remember"](key="sk-proj-abcdefghijklmnopqrstuvwxyz0123456789")
        env.tools["remember"](key="plain")
        return "ok"

    result = run_campaign(Scenario(name="plain", agent=agent, tools=[remember], faults="none", trials=1, seed=1,
                                   layers=[_ScribblerLayer()]))
    first, second = [e for e in result.records[0].trace if e.kind == "tool_call"]
    assert second.data["arguments"] == {"note": None, "key": "plain"}
    assert "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789" not in repr(first.data)
    assert first.data["arguments"]["key"] != "changed by a layer"
    assert first.data["result"] == "noted"


@pytest.mark.parametrize("isolation", ["none", "process"])
def test_an_agents_own_events_keep_a_bounded_share_of_data_in_every_trial(isolation):
    """An outside review: an isolated agent tracing 100 events of 1 MiB per trial grew pytest until it died of
    ``MemoryError`` at trial 37 of 60 (records keep failing and early trials' traces); in-process, the same.
    An event of the agent's keeps at most ``AGENT_EVENT_CHARS`` characters of data, and the agent's events of a
    trial ``AGENT_TRACE_CHARS`` in all; past them the event keeps a note of what was cut."""
    from pytest_agentops.harness.trace import AGENT_EVENT_CHARS, AGENT_TRACE_CHARS

    import isolation_support

    result = run_campaign(Scenario(name="traced", agent=isolation_support.traces_a_lot, task="30", trials=3,
                                   seed=1, faults="none", isolation=isolation, check=lambda world, out: True))
    # (its kind, name and outcome; the map, its key, its text: as ``Trace.add_agents`` counts them)
    each = len("note") + len("blob") + len("ok") + 1 + len("blob") + 1 + 49152 + 1
    assert each <= AGENT_EVENT_CHARS and AGENT_TRACE_CHARS // each == 21
    for record in result.records:
        notes = [e for e in record.trace if e.kind == "note"]
        assert [e.name for e in notes] == ["blob"] * 30 + ["small"]
        kept = [e for e in notes[:-1] if "blob" in e.data]
        assert kept == notes[:21] and all(len(e.data["blob"]) == 49152 for e in kept)
        assert all(e.data == {"cut": f"{each:,} characters of data: the agent's events of this trial keep "
                                     f"{AGENT_TRACE_CHARS:,} in all, {21 * each:,} used"} for e in notes[21:-1])
        assert notes[-1].data["blob"] == "y" * 1024  # (within the budget still: a small one is kept)


def test_an_agents_event_larger_than_an_event_keeps_is_cut_whatever_it_holds():
    from pytest_agentops.harness.trace import AGENT_EVENT_CHARS, AgentTrace, Trace

    trace = Trace()
    agent = AgentTrace(trace)
    cycle: list = [1]
    cycle.append(cycle)
    agent.add("note", "text", blob="x" * (AGENT_EVENT_CHARS + 1))
    agent.add("note", "many", blob=[""] * AGENT_EVENT_CHARS)
    agent.add("note", "cycle", blob=cycle)
    agent.add("note", "fits", blob="x" * (AGENT_EVENT_CHARS - 20))
    events = trace.close()
    for event in events[:3]:
        assert event.data == {"cut": f"more than {AGENT_EVENT_CHARS:,} characters of data (an event of the agent's "
                                     "keeps at most that)"}
    assert len(events[3].data["blob"]) == AGENT_EVENT_CHARS - 20


def test_an_agents_event_counts_its_labels_and_subclassed_values_too():
    """A second review got past the first version three ways: a ``str`` subclass (``np.str_``) was counted as 8
    characters, a list subclass as 8 (ten million items scrubbed: 10.6 s an event), and an event's name and
    outcome not at all: 20 failing trials of each grew pytest past 860 MiB."""
    import numpy as np

    from pytest_agentops.harness.trace import AGENT_EVENT_CHARS, AGENT_LABEL_CHARS, AgentTrace, Trace

    class Items(list):
        pass

    trace = Trace()
    agent = AgentTrace(trace)
    looped = Items([1])
    looped.append(looped)
    agent.add("note", "str subclass", blob=np.str_("x" * (AGENT_EVENT_CHARS + 1)))
    agent.add("note", "list subclass", blob=Items([0] * 10_000_000))
    agent.add("note", "looped", blob=looped)
    agent.add("note", "n" * 10_000_000, "o" * 10_000_000)
    events = trace.close()
    assert all(set(e.data) == {"cut"} for e in events[:3])
    assert len(events[3].name) <= AGENT_LABEL_CHARS + 40 and events[3].name.endswith("(10,000,000 characters)")
    assert len(events[3].outcome) <= AGENT_LABEL_CHARS + 40


def test_a_tool_calls_long_text_arguments_are_traced_within_a_share_of_the_trial():
    """The same review: a ``tool_call`` event kept its arguments whole (10 calls of 4 MiB a trial grew pytest by
    every failing trial's). A text longer than ``LONG_ARGUMENT_CHARS`` is charged to the trial's
    ``ARGUMENTS_TRACE_CHARS`` and traced cut past it (or past an event's share); the tool gets it whole."""
    from pytest_agentops.harness.trace import ARGUMENTS_TRACE_CHARS, LONG_ARGUMENT_CHARS

    got = []

    @tool
    def save(text: str, tag: str = "") -> int:
        """Save a text."""
        got.append(len(text))
        return len(text)

    def agent(task, env):
        for size in (100, 60_000, 60_000, 2**20, *[60_000] * 20):
            env.tools["save"]("y" * size, tag="t")
        env.tools["save"](["z" * 1000] * 100)
        return "saved"

    (record,) = run_campaign(Scenario(name="args", agent=agent, tools=[save], trials=1, seed=1, faults="none",
                                      check=lambda world, out: True)).records
    assert got[:4] == [100, 60_000, 60_000, 2**20]  # (the tool got each whole)
    sizes = [len(e.data["arguments"].get("text", "")) for e in record.trace if e.kind == "tool_call"]
    kept_whole = (ARGUMENTS_TRACE_CHARS - 120_000) // 60_000
    assert sizes[:4] == [100, 60_000, 60_000, sizes[3]] and sizes[3] < LONG_ARGUMENT_CHARS + 80
    assert sizes[4:4 + kept_whole] == [60_000] * kept_whole
    assert all(size < LONG_ARGUMENT_CHARS + 80 for size in sizes[4 + kept_whole:-1])
    assert dict(record.trace[-2].data["arguments"]) == {"cut": "more than 65,536 characters of arguments (an event "
                                                                "keeps at most that)"}


def test_a_secret_across_the_cut_of_a_long_argument_is_not_shown_in_part(monkeypatch):
    """A third review: a long argument was redacted from a 512-character prefix, then cut: 11 copies of a secret
    shrank to ``[redacted]`` and the 12th, across the prefix's end, showed its first 20 characters."""
    from pytest_agentops.harness import secrets

    secret = "Zq8" * 13 + "x"
    monkeypatch.setenv("MY_SERVICE_API_KEY", secret)
    secrets.refresh()

    @tool
    def save(text: str) -> int:
        """Save a text."""
        return len(text)

    def agent(task, env):
        env.tools["save"]((secret + " ") * 11 + "x" * 41 + secret + "y" * 70_000)
        return "done"

    (record,) = run_campaign(Scenario(name="straddle", agent=agent, tools=[save], trials=1, seed=1, faults="none",
                                      check=lambda world, out: True)).records
    (event,) = [e for e in record.trace if e.kind == "tool_call"]
    assert "Zq8Zq8" not in event.data["arguments"]["text"]


# --- how many events a trial keeps ---------------------------------------------------------------------------


async def _calls_for_ever_async(task, env):
    """``isolation_support.calls_for_ever`` as an async agent (its trial on the event loop)."""
    import isolation_support

    return isolation_support.calls_for_ever(task, env)


@pytest.mark.parametrize("agent", ["sync", "async", "isolated"])
def test_a_trial_that_traces_more_events_than_a_trace_keeps_ends_at_the_limit_the_same_in_every_run(agent,
                                                                                                   monkeypatch):
    """A runaway loop of tool calls traced every call: 200,000 calls a trial grew pytest by ~100 MiB for each
    kept trace, and every failing trial's is kept. A trace keeps ``TRACE_EVENTS`` events (lowered here so that
    the test is quick; the next test runs the real one): the next one ends the trial as an ``error`` and is kept as
    a note, later ones are dropped, the trial's ``outcome`` event is kept. Where the trial ends depends on the
    seed alone: the records are the same at any concurrency, and a replay gives the same trial."""
    from pytest_agentops.harness import trace

    import isolation_support

    monkeypatch.setattr(trace, "TRACE_EVENTS", 301)
    function = {"sync": isolation_support.calls_for_ever, "async": _calls_for_ever_async,
                "isolated": isolation_support.calls_for_ever}[agent]
    scenario = Scenario(name="runaway", agent=function, task="1000", tools=[lookup], trials=3, seed=2,
                        faults=Faults(rate=0.2), check=lambda world, out: True,
                        isolation="process" if agent == "isolated" else "none")
    result = run_campaign(scenario)
    reason = "more than 301 trace events in one trial (a runaway loop?): the trial was ended at the limit"
    note = "more than 301 trace events in one trial: later ones are not kept"
    for record in result.records:
        assert (record.outcome, record.reason) == ("error", reason)
        assert len(record.trace) == 303 and [e.seq for e in record.trace[:-1]] == list(range(302))
        cut, last = record.trace[-2:]
        assert (cut.kind, cut.name, cut.outcome, dict(cut.data)) == ("trace", "events", "cut",
                                                                    {"kept": 301, "note": note})
        assert (last.kind, last.outcome) == ("outcome", "error")
        # (in-process it returned, and what it returned did not decide; an isolated one was ended with its trial)
        assert record.output.endswith(" turns") if agent != "isolated" else record.output == ""
    assert run_campaign(dataclasses.replace(scenario, concurrency=3)).records == result.records
    assert replay_trial(scenario, 1) == result.records[1]


@pytest.mark.parametrize("isolation", ["none", "process"])
def test_a_runaway_loop_of_the_agents_own_events_is_ended_at_the_limit(isolation, monkeypatch):
    """A review: past the limit ``env.trace.add`` returned None and the trial was told to end, but nothing told
    the agent: a loop of its own events alone ran on until the wall-clock limit (30 s a trial, 2.5 million calls,
    against 0.3 s for a loop of tool calls). The next ``env.trace.add`` raises the trial's decision, as a tool
    call does."""
    from pytest_agentops.harness import trace

    import isolation_support

    monkeypatch.setattr(trace, "TRACE_EVENTS", 301)
    isolation_support.TRACED.clear()
    result = run_campaign(Scenario(name="notes", agent=isolation_support.traces_for_ever, task="t", trials=2,
                                   seed=1, faults="none", timeout_s=60, isolation=isolation))
    reason = "more than 301 trace events in one trial (a runaway loop?): the trial was ended at the limit"
    assert [(r.outcome, r.reason) for r in result.records] == [("error", reason)] * 2
    if isolation == "none":  # (the events it added: 301 kept and the one past the limit, each trial)
        assert len(isolation_support.TRACED) == 2 * 301 + 2


@pytest.mark.parametrize("isolation", ["none", "process"])
def test_a_runaway_loop_of_checkpoints_is_ended_at_the_limit_isolated_or_not(isolation, monkeypatch):
    """A review: an isolated agent's checkpoints were traced by the test process without asking whether its trial
    was still running, so a loop of saves went on (2,000 of 2,000 taken) until the wall-clock limit; in-process the
    302nd save ended it. Isolated, the child is now ended as an in-process agent's harness call is."""
    from pytest_agentops.harness import trace

    import isolation_support

    monkeypatch.setattr(trace, "TRACE_EVENTS", 301)
    (record,) = run_campaign(Scenario(name="saves", agent=isolation_support.saves_for_ever, task="2000", trials=1,
                                      seed=1, faults="none", isolation=isolation, timeout_s=20,
                                      check=lambda world, out: True)).records
    assert (record.outcome, record.reason) == ("error", "more than 301 trace events in one trial (a runaway loop?): "
                                                        "the trial was ended at the limit")
    assert record.output == ("ok=302 raised=1698" if isolation == "none" else "")
    assert [e.kind for e in record.trace[-3:]] == ["checkpoint", "trace", "outcome"]


def test_a_runaway_trial_keeps_its_first_trace_events_and_no_more():
    """The real limit: 100,000 calls a trial (a call and a note each), their trials failing, keep
    ``TRACE_EVENTS`` events and the two notes each."""
    from pytest_agentops.harness.trace import TRACE_EVENTS

    import isolation_support

    result = run_campaign(Scenario(name="runaway", agent=isolation_support.calls_for_ever, task="100000",
                                   tools=[lookup], trials=2, seed=1, faults="none", check=lambda world, out: False))
    for record in result.records:
        assert record.outcome == "error" and record.tool_calls == TRACE_EVENTS // 2 + 1
        assert len(record.trace) == TRACE_EVENTS + 2 and record.trace[-2].outcome == "cut"


def test_an_agent_may_not_write_the_trace_cut_note_of_the_harness():
    from pytest_agentops.harness.trace import AgentTrace, Trace

    with pytest.raises(ValueError, match="trace"):
        AgentTrace(Trace()).add("trace", "events", "cut")


def test_the_details_an_agent_gives_a_confirmation_are_traced_within_the_limits_of_a_calls_arguments():
    """``env.confirm(action, **details)`` traced its details whole (an agent asking with a 50 MB detail grew pytest
    by each failing trial's); a detail named ``latency_s`` raised ``TypeError`` in the agent, and one named
    ``input_tokens`` was counted as the event's tokens. The details are traced as a tool call's arguments are."""
    from pytest_agentops.harness.trace import AGENT_EVENT_CHARS, LONG_ARGUMENT_CHARS

    @tool(destructive=True)
    def drop(world, table: str = "") -> str:
        """Drop a table."""
        return "dropped"

    def agent(task, env):
        asked = [env.confirm("drop", table="users", latency_s=99, input_tokens=10**12)]
        asked.append(env.confirm("drop", table="users", blob="x" * (AGENT_EVENT_CHARS + 1)))
        asked.append(env.confirm("drop", table="users", rows=[["y" * 1000] * 100]))
        asked.append(env.confirm("drop", **{f"k{i}": "z" * 250 for i in range(3000)}))  # (short, but many)
        env.tools["drop"](table="users")
        return asked

    (record,) = run_campaign(Scenario(name="asks", agent=agent, tools=[drop], trials=1, seed=1, faults="none",
                                      check=lambda world, out: True)).records
    assert record.outcome == "completed" and record.output == "[True, True, True, True]"
    first, long, large, many = [e for e in record.trace if e.kind == "confirmation"]
    assert first.input_tokens == 0 and dict(first.data) == {"latency_s": 0.0, "table": "users",
                                                             "input_tokens": 10**12}
    assert long.data["table"] == "users" and len(long.data["blob"]) < LONG_ARGUMENT_CHARS + 80
    assert dict(large.data) == dict(many.data) == {"latency_s": 0.0, "cut": "more than 65,536 characters of "
                                                                            "arguments (an event keeps at most that)"}


def test_the_memo_of_argument_keys_keeps_only_small_mappings(monkeypatch):
    """A review: the process-wide memo of argument keys (``plan._ARG_KEYS``) remembered any mapping of short plain
    values however many: an agent's 300 confirmations of 3,000 details of 256 characters kept 337 MiB after its
    campaign (8.5 MiB now). It remembers a few short names, texts and numbers a mapping, and no more mappings than
    its size; the keys are the same remembered or not."""
    from pytest_agentops import plan

    monkeypatch.setattr(plan, "_ARG_KEYS", {})

    @tool(destructive=True)
    def put(world, key: str = "", n: int = 0) -> str:
        """Put a value."""
        return "ok"

    def agent(task, env):
        for i in range(20):
            env.confirm("put", **{f"k{j}": f"{i:06d}" + "y" * 250 for j in range(100)})
            env.confirm("put", key="z" * 200)
            env.tools["put"](key=str(i), n=10 ** 100 + i)
            env.tools["put"](key="short", n=i)
        return "done"

    scenario = Scenario(name="memo", agent=agent, tools=[put], trials=2, seed=1, faults="low",
                        check=lambda world, out: True)
    remembered = run_campaign(scenario).records
    memo = plan._ARG_KEYS
    assert memo and all(len(flat) <= 3 * plan._MEMO_ITEMS for flat in memo)
    assert all(len(v) <= plan._MEMO_CHARS for flat in memo for v in flat if type(v) is str)
    assert all(v.bit_length() <= 64 for flat in memo for v in flat if type(v) is int)
    monkeypatch.setattr(plan, "_MEMO_SIZE", 0)  # (nothing remembered: the same keys, the same records)
    monkeypatch.setattr(plan, "_ARG_KEYS", {})
    assert run_campaign(scenario).records == remembered and not plan._ARG_KEYS


def test_a_campaign_keeps_traces_up_to_its_budget_in_launch_order_and_skeletons_after(monkeypatch):
    """A trial keeps at most ``TRACE_EVENTS`` events, but every failing trial's trace was kept: 100 failing
    runaway trials kept 1.3 GB (30 of them 380 MiB; 120 MiB now, and 120 MiB for 60). Records keep traces up to
    ``CAMPAIGN_TRACE_EVENTS`` events in all, in launch order; past it a record keeps its skeleton (the fault
    tallies are the same), so which ones keep theirs depends on the seed alone, not on the concurrency."""
    from pytest_agentops.engine import trial

    every = run_campaign(dataclasses.replace(SCENARIO, keep_traces=None))
    sizes = [len(r.trace) for r in every.records]
    assert all(sizes) and len(sizes) == 60
    budget = sum(sizes[:25]) + 1  # (the 26th would go past it)
    monkeypatch.setattr(trial, "CAMPAIGN_TRACE_EVENTS", budget)
    # (every trial within ``keep_traces``: the budget alone decides; ``None`` would ask for every trace)
    runs = [run_campaign(dataclasses.replace(SCENARIO, keep_traces=60, concurrency=c)) for c in (1, 8)]
    assert runs[0].records == runs[1].records
    records = runs[0].records
    assert [r.trace_kept for r in records] == [True] * 25 + [False] * 35
    assert all(r.trace == e.trace for r, e in zip(records[:25], every.records[:25], strict=True))
    assert all(list(r.event_keys()) == list(e.event_keys()) for r, e in zip(records, every.records, strict=True))
    assert fault_delivery(runs[0]) == fault_delivery(every)
    assert [dataclasses.replace(r, trace=(), skeleton=()) for r in records] == \
        [dataclasses.replace(r, trace=(), skeleton=()) for r in every.records]


def test_past_the_trace_budget_the_shrinker_runs_the_trial_again_and_a_replay_keeps_its_trace(monkeypatch):
    """A review of the budget: the shrinker read a failing record's fault ids from its trace, so a record past the
    budget (its skeleton kept) was said to fail "with no fault at all"; a replay had its trace cut. Now the
    shrinker runs such a trial again, and a replay keeps its trace. ``keep_traces=None`` (as an OpenTelemetry
    export asks) stays within the budget: the JSON report is the same whichever reports are asked for."""
    from pytest_agentops import replay_trial
    from pytest_agentops.engine import trial

    failing = dataclasses.replace(SCENARIO, expect={"completion_rate": ">= 0.99"}, keep_traces=20)
    whole = run_campaign(failing)
    assert whole.minimal_faults and whole.minimal_faults[0].faults
    monkeypatch.setattr(trial, "CAMPAIGN_TRACE_EVENTS", 1)
    cut = run_campaign(failing)
    assert not any(r.trace_kept for r in cut.records)
    assert cut.minimal_faults == whole.minimal_faults
    every = run_campaign(dataclasses.replace(SCENARIO, keep_traces=None))  # (as an OpenTelemetry export asks)
    assert not any(r.trace_kept for r in every.records)  # (the budget holds: the JSON report is the same)
    assert replay_trial(failing, 3).trace_kept


def test_an_ab_comparison_keeps_its_records_traces_by_one_budget_a_side_whatever_its_blocks(monkeypatch):
    """The same review: a comparison runs its pairs in blocks of ``max(25, 4 x concurrency)`` trials, one runner
    each, and each block started the budget again: which records kept traces depended on the concurrency, and
    the campaign kept more than the budget. One budget a side, counted in pair order."""
    from pytest_agentops.engine import trial
    from pytest_agentops.engine.compare import compare_campaigns

    monkeypatch.setattr(trial, "CAMPAIGN_TRACE_EVENTS", 150)
    candidate = dataclasses.replace(SCENARIO, name="keep-b")
    runs = [compare_campaigns(SCENARIO, candidate, concurrency=c, early_stop=False) for c in (1, 8)]
    kept = [[r.trace_kept for r in run.baseline_records] for run in runs]
    assert kept[0] == kept[1] and True in kept[0] and False in kept[0]
    assert sum(len(r.trace) for r in runs[0].baseline_records) <= 150
    assert runs[0].baseline_records == runs[1].baseline_records


def test_a_trial_whose_trace_was_not_kept_says_so_where_its_timeline_would_be():
    """A review: ``--agent-chaos-show`` of a failing trial past the campaign's trace budget printed an empty
    timeline (``timeline (virtual time):`` and nothing)."""
    from pytest_agentops.report.timeline import timeline_lines

    record = {"id": "trial-3", "index": 3, "seed": 1, "outcome": "failed", "reason": "", "trace": [],
              "trace_kept": False, "output": "x"}
    lines = timeline_lines("s", record, replay="pytest t.py --agent-chaos-replay=s/trial-3")
    assert "  (its trace was not kept: past the traces the campaign keeps; replay this one to see its timeline)" \
        in lines and "  timeline (virtual time):" not in lines


def test_the_html_report_says_a_trace_was_not_kept_and_what_makes_it_again(tmp_path, monkeypatch):
    """The same review: the HTML report showed such a trial's timeline as "(no trace in the report)"."""
    from pytest_agentops.engine import trial
    from pytest_agentops.report.html import write_html
    from pytest_agentops.report.timeline import NOT_KEPT

    monkeypatch.setattr(trial, "CAMPAIGN_TRACE_EVENTS", 1)
    result = run_campaign(dataclasses.replace(SCENARIO, expect={"completion_rate": ">= 0.99"}))
    assert not any(r.trace_kept for r in result.records) and not result.passed
    write_html(tmp_path / "r.html", [result.to_dict(with_traces=True)])
    html = (tmp_path / "r.html").read_text()
    assert f"({NOT_KEPT}: its replay command makes it again)" in html and "(no trace in the report)" not in html

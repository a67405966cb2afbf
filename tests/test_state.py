"""The state layer: checkpoint stores (memory, SQLite, Redis), crash injection, resume, and their metrics."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_agentops import ConfigError, Faults, Scenario, replay_trial, run_campaign
from pytest_agentops.errors import AgentCrash, TrialAborted
from pytest_agentops.harness.state import (
    REDIS_PREFIX,
    CampaignState,
    CheckpointError,
    CheckpointStore,
    MemoryStore,
    SQLiteStore,
    StateSpec,
    open_store,
)
from pytest_agentops.metrics import collect
from pytest_agentops.plan import FaultPlan
from pytest_agentops.records import TrialRecord
from pytest_agentops.settings.faults import CrashRecord

import crash_support as cs

CI = os.environ.get("CI", "").lower() in ("true", "1")
SCENARIOS = Path(__file__).parent.parent / "scenarios"


# --- a real redis-server on a free loopback port -----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """A redis-server started for these tests (skipped without the binary, except under CI=true: fails)."""
    binary = shutil.which("redis-server")
    missing = None if binary else "redis-server is not installed (.ci/run installs it with apt-get)"
    try:
        import redis
    except ImportError:
        missing = missing or "the redis package is not installed (pip install -e '.[test]')"
    if missing:
        if CI:
            pytest.fail(f"CI=true: the Redis store test must run against a real server, but {missing}")
        pytest.skip(missing)
    workdir = tmp_path_factory.mktemp("redis")
    for _ in range(3):  # another process may take the free port first: try a few
        port = _free_port()
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", str(workdir)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            proc.kill()
            proc.wait()
            client.close()
            continue
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            client.close()
            proc.terminate()
            proc.wait(10)
        return
    pytest.fail("redis-server did not start on a loopback port")


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request, tmp_path) -> CheckpointStore:
    if request.param == "memory":
        s: CheckpointStore = MemoryStore("trial-a")
    elif request.param == "sqlite":
        s = SQLiteStore(tmp_path / "ckpt.sqlite3", "trial-a")
    else:
        s = open_store(StateSpec.parse(request.getfixturevalue("redis_url")), "trial-a")
        s.clear()
    yield s
    s.clear()
    s.close()


# --- the stores ----------------------------------------------------------------------------------------


def test_store_round_trips_json_values(store):
    assert isinstance(store, CheckpointStore)
    assert store.load("progress") is None and store.load("progress", {"done": []}) == {"done": []}
    value = {"done": ["lookup", "refund"], "amount": 30, "rate": 0.5, "ok": True, "note": None, "ü": "ß"}
    store.save("progress", value)
    value["done"].append("mutated after save")
    assert store.load("progress") == {"done": ["lookup", "refund"], "amount": 30, "rate": 0.5, "ok": True,
                                      "note": None, "ü": "ß"}
    store.save("step", 2)
    store.save("step", 3)  # overwrite
    assert store.keys() == ["progress", "step"] and store.load("step") == 3
    store.delete("step")
    store.delete("never-saved")
    assert store.keys() == ["progress"]
    store.clear()
    assert store.keys() == []


@pytest.mark.parametrize(("value", "message"), [
    ((1, 2), r"value of 'k'=\(1, 2\) must be JSON data .* got tuple"),
    ({"a": {1, 2}}, r"value of 'k'\['a'\]=\{1, 2\} must be JSON data .* got set"),
    ({1: "x"}, r"value of 'k' has key 1: JSON object keys must be strings"),
    ([1, float("nan")], r"value of 'k'\[1\]=nan must be JSON data: NaN"),
    (object(), r"got object; checkpoints are JSON, never pickled"),
])
def test_store_takes_json_values_only(store, value, message):
    with pytest.raises(CheckpointError, match=message):
        store.save("k", value)
    assert store.keys() == []
    with pytest.raises(CheckpointError, match=r"key=3 must be a non-empty string"):
        store.save(3, "x")  # type: ignore[arg-type]


class _Text(str):
    pass


class _Number(int):
    pass


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=3)
    | st.builds(_Text, st.text(max_size=3)) | st.builds(_Number, st.integers()) | st.tuples(st.integers())
    | st.sets(st.integers(), max_size=2) | st.just(b"x"),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(max_size=3) | st.builds(_Text, st.text(max_size=2)) | st.integers() | st.none(), inner, max_size=3),
    max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(_JSONISH)
def test_the_quick_json_check_agrees_with_the_full_one(value):
    """``encode`` checks plain values without building element paths; it accepts and refuses exactly what the
    full check (which names the bad element) does: NaN and infinity, non-string keys, tuples, sets, bytes
    refused; subclasses of str and int passed."""
    from pytest_agentops.harness.state.protocol import _check_json, _plainly_json, encode

    try:
        _check_json(value, "value of 'k'")
    except CheckpointError as exc:
        refused: str | None = str(exc)
    else:
        refused = None
    if _plainly_json(value):
        assert refused is None
    if refused is None:
        assert json.loads(encode("k", value)) == json.loads(json.dumps(value))
    else:
        with pytest.raises(CheckpointError) as raised:
            encode("k", value)
        assert str(raised.value) == refused


def test_a_checkpoint_nested_deeper_than_the_quick_checks_recursion_is_checked_in_full():
    """Nested 900 deep (the quick check recurses twice per level of a dict or a list in ``all(map(...))``): the
    full check decides, as before the quick one, instead of a ``RecursionError``."""
    from pytest_agentops.harness.state.protocol import encode

    value: object = 1
    for i in range(900):
        value = [value] if i % 2 else {"k": value}
    assert json.loads(encode("k", value)) == value


def test_namespaces_isolate(store):
    other = store.namespaced("trial-b")
    store.save("progress", "a")
    other.save("progress", "b")
    other.save("extra", 1)
    assert store.load("progress") == "a" and other.load("progress") == "b"
    assert store.keys() == ["progress"] and other.keys() == ["extra", "progress"]
    other.clear()
    assert other.keys() == [] and store.load("progress") == "a"


def test_sqlite_checkpoint_survives_a_sigkill_of_the_writer(tmp_path):
    """A checkpoint saved just before the process is killed with SIGKILL is there for the next process."""
    path = tmp_path / "ckpt.sqlite3"
    script = textwrap.dedent(f"""
        import os, signal
        from pytest_agentops.harness.state import SQLiteStore
        store = SQLiteStore({str(path)!r}, "trial-1")
        store.save("progress", {{"done": ["lookup", "refund"]}})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert SQLiteStore(path, "trial-1").load("progress") == {"done": ["lookup", "refund"]}
    rows = sqlite3.connect(path).execute("SELECT namespace, key, value FROM checkpoints").fetchall()
    assert rows == [("trial-1", "progress", '{"done":["lookup","refund"]}')]  # JSON text, no pickle


@pytest.mark.parametrize(("text", "spec"), [
    ("memory", StateSpec("memory")),
    ("sqlite", StateSpec("sqlite")),
    ("sqlite:/tmp/x.db", StateSpec("sqlite", "/tmp/x.db")),
    ("sqlite:///tmp/x.db", StateSpec("sqlite", "/tmp/x.db")),
    ("sqlite:rel/x.db", StateSpec("sqlite", "rel/x.db")),
    ("redis://127.0.0.1:6379/0", StateSpec("redis", "redis://127.0.0.1:6379/0")),
])
def test_state_spec_parses_the_scenario_setting(text, spec):
    assert StateSpec.parse(text) == spec
    assert StateSpec.parse(str(spec)) == spec


@pytest.mark.parametrize("bad", ["postgres://x", "sqlite:", "", 3, "memory:x"])
def test_bad_state_setting_is_a_clear_error(bad):
    with pytest.raises(ConfigError, match=r"state=.* must be 'memory', 'sqlite', 'sqlite:PATH' or a Redis URL"):
        Scenario(name="s", agent=cs.careful_agent, state=bad)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"crash": 1.5}, r"crash=1.5 must be between 0 and 1"),
    ({"crash_point": "middle"}, r"crash_point='middle' must be one of after, before, any"),
    ({"crash_steps": (3, 1)}, r"crash_steps=\(3, 1\) must be a step k >= 1 or a range \[low, high\]"),
    ({"crash_steps": 0}, r"crash_steps=0 must be a step k >= 1"),
    ({"crash_mode": "fork"}, r"crash_mode='fork' must be one of in_process, sigkill"),
    ({"crash_restarts": -1}, r"crash_restarts=-1 must be a whole number >= 0"),
])
def test_bad_crash_settings_are_clear_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Faults(**kwargs)


def test_crash_steps_take_one_step_or_a_range():
    assert Faults(crash_steps=2).crash_steps == (2, 2)
    assert Faults(crash_steps=[1, 4]).crash_steps == (1, 4)
    assert Faults(crash=0.1).active and not Faults().active


# --- campaigns: trials never see each other's checkpoints ---------------------------------------------------


def _peek_agent(task, env):
    """Records what the trial's store held when it started, then leaves a checkpoint behind."""
    before = env.state.keys()
    env.state.save(f"mine-{env.seed}", env.trial_id)
    env.state.save("shared-name", env.trial_id)
    return "clean" if before == [] and env.state.keys() == [f"mine-{env.seed}", "shared-name"] else repr(before)


@pytest.mark.parametrize("state", ["memory", "sqlite", "file", "redis"])
def test_trials_get_their_own_empty_namespace(state, tmp_path, request):
    if state == "file":
        state = f"sqlite:{tmp_path / 'shared.sqlite3'}"
    elif state == "redis":
        state = request.getfixturevalue("redis_url")
    scenario = Scenario(name="peek", agent=_peek_agent, check=lambda w, out: out == "clean", trials=30, seed=4,
                        concurrency=4, faults=Faults.none(), state=state)
    for _ in range(2):  # the second run of the same seeds finds the first run's checkpoints cleared
        result = run_campaign(scenario)
        assert result.outcome_counts == {"completed": 30}
        assert [e.name for e in result.records[0].trace if e.kind == "checkpoint"] == [
            f"mine-{result.records[0].seed}", "shared-name"]
    if state.startswith("sqlite:"):  # a persistent file: each trial's checkpoints went when it ended
        rows = sqlite3.connect(tmp_path / "shared.sqlite3").execute(
            "SELECT COUNT(DISTINCT namespace), COUNT(*) FROM checkpoints").fetchone()
        assert rows == (0, 0)
    if state.startswith("redis:"):
        import redis

        client = redis.Redis.from_url(state)
        assert [k for k in client.keys(REDIS_PREFIX + "*") if b"/peek/" in k] == []
        client.close()


@pytest.mark.parametrize("state", ["memory", "file"])
def test_a_store_is_opened_only_by_the_trials_that_use_it(state, tmp_path, monkeypatch):
    """A trial's namespace is opened (emptied first) at its agent's first use of ``env.state``, and released
    when it ends; a trial whose agent never touches it costs the campaign nothing there."""
    from pytest_agentops.harness.state.campaign import CampaignState

    if state == "file":
        state = f"sqlite:{tmp_path / 'lazy.sqlite3'}"
    opened: list[str] = []
    trial_store = CampaignState.trial_store

    def spy(self, scenario, seed):
        opened.append(f"{scenario}/{seed}")
        return trial_store(self, scenario, seed)

    monkeypatch.setattr(CampaignState, "trial_store", spy)

    def agent(task, env):
        if env.seed % 2:
            return "untouched"
        return _peek_agent(task, env)

    scenario = Scenario(name="lazy", agent=agent, check=lambda w, out: out in ("clean", "untouched"), trials=20,
                        seed=4, concurrency=4, faults=Faults.none(), state=state)
    result = run_campaign(scenario)
    assert result.outcome_counts == {"completed": 20}
    assert sorted(opened) == sorted(f"lazy/{r.seed}" for r in result.records if r.seed % 2 == 0)
    assert 0 < len(opened) < 20
    if state.startswith("sqlite:"):  # every opened namespace was released when its trial ended
        rows = sqlite3.connect(tmp_path / "lazy.sqlite3").execute("SELECT COUNT(*) FROM checkpoints").fetchone()
        assert rows == (0,)


def test_a_store_opened_at_first_use_is_opened_once_whichever_thread_comes_first():
    import threading

    from pytest_agentops.harness.state.campaign import TrialStore

    opened, start = [], threading.Barrier(8)

    def opener():
        opened.append(threading.get_ident())
        time.sleep(0.01)  # (real time: a slow server) the other threads arrive meanwhile
        return MemoryStore("t")

    store = TrialStore(opener=opener)
    assert not store.opened

    def first_use():
        start.wait(5)
        store.save(f"k{threading.get_ident()}", 1)

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(opened) == 1 and store.opened and len(store.keys()) == 8  # no save lost to a second opening
    with pytest.raises(TypeError, match="not both"):
        TrialStore(MemoryStore("t"), opener=opener)
    with pytest.raises(TypeError, match="not both"):
        TrialStore()


def test_an_agent_holding_its_store_after_its_trial_opens_nothing():
    """The output's repr (taken after the trial's layers closed) does not open the store, and a late use of
    ``namespace`` is refused like any other."""
    from pytest_agentops.harness.state.campaign import CampaignState

    kept = []
    opened: list[str] = []
    trial_store = CampaignState.trial_store

    def agent(task, env):
        kept.append(env.state)
        return {"store": env.state}

    scenario = Scenario(name="holder", agent=agent, trials=2, seed=4, faults=Faults.none())
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(CampaignState, "trial_store", lambda self, sc, seed: opened.append(seed) or trial_store(self, sc,
                                                                                                        seed))
        result = run_campaign(scenario)
    assert opened == [] and all("not opened yet" in r.output for r in result.records), result.records[0].output
    with pytest.raises(TrialAborted, match="trial has ended"):  # (its context is gone already)
        kept[0].namespace  # noqa: B018 (a late use)
    with pytest.raises(TrialAborted, match="trial has ended"):
        kept[1].save("late", 1)
    assert opened == []


@pytest.mark.parametrize("concurrency", [1, 2])
def test_an_agent_cannot_reach_the_campaigns_store_through_its_own(concurrency):
    """Found by an outside review: ``env.state.inner.namespaced(...)`` (a public property) opened another trial's
    namespace, and trial 1 overwrote trial 0's checkpoint at concurrency 2 only. The agent's store has no such
    attribute now, and ``namespaced`` is refused as before: the same outputs at any concurrency."""
    async def agent(task, env):
        env.state.save("plan", "mine")
        reached = [name for name in ("inner", "backend", "store") if hasattr(env.state, name)]
        with contextlib.suppress(Exception):
            env.state.namespaced("another").save("plan", "poisoned")
        await asyncio.sleep(1)
        return (env.state.load("plan"), reached)

    result = run_campaign(Scenario(name="reach", agent=agent, trials=2, seed=5, faults="none", early_stop=False),
                          concurrency=concurrency)
    assert [r.output for r in result.records] == ["('mine', [])"] * 2


def test_a_store_that_cannot_be_opened_makes_the_trial_an_error_even_if_the_agent_swallows_it(monkeypatch):
    from pytest_agentops.harness.state.campaign import CampaignState

    def broken(self, scenario, seed):
        raise OSError("the server went away")

    monkeypatch.setattr(CampaignState, "trial_store", broken)

    def agent(task, env):
        try:
            env.state.save("step", 1)
        except Exception:
            return "carried on"
        return "saved"

    result = run_campaign(Scenario(name="gone", agent=agent, trials=3, seed=1, faults=Faults.none()))
    assert result.outcome_counts == {"error": 3}
    assert "checkpoint store could not be opened: OSError: the server went away" in result.records[0].reason


def test_a_store_an_agent_thread_opens_as_its_trial_ends_is_emptied_by_the_campaign(tmp_path, monkeypatch):
    """The trial's end does not wait for an opening under way in a thread its agent left running (that would
    stall the scheduler, or the event loop, a second per trial): the namespace stays on the campaign's books,
    and the campaign's close empties it, with the save that thread made after the trial ended."""
    import threading

    from pytest_agentops.harness.state.campaign import CampaignState

    started, saved = threading.Event(), threading.Event()
    trial_store = CampaignState.trial_store

    class SlowToSave:
        """The trial's store, whose saves take 0.1 s (a busy server): the save lands well after the opening."""

        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def save(self, key, value):
            threading.Event().wait(0.1)
            self.inner.save(key, value)

    def slow_open(self, scenario, seed):
        started.set()
        threading.Event().wait(0.3)  # real wall time (the time module is virtual inside a trial)
        return SlowToSave(trial_store(self, scenario, seed))

    monkeypatch.setattr(CampaignState, "trial_store", slow_open)

    def agent(task, env):
        if env.trial_id == "trial-0":
            def save():
                env.state.save("progress", 1)  # (its guard passed before the opening: it lands after the end)
                saved.set()

            threading.Thread(target=save, daemon=True).start()
            started.wait(5)  # the thread is opening the store: the trial ends meanwhile
        else:
            saved.wait(5)  # the campaign goes on until that save has landed
        return "done"

    path = tmp_path / "racing.sqlite3"
    result = run_campaign(Scenario(name="racing", agent=agent, trials=2, seed=1, faults=Faults.none(),
                                   state=f"sqlite:{path}"))
    assert result.outcome_counts == {"completed": 2} and saved.is_set()
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM checkpoints").fetchone() == (0,)


def test_a_bad_checkpoint_value_is_a_recorded_error_not_a_crash():
    def agent(task, env):
        env.state.save("progress", {"when": time})  # a module object: not JSON
    result = run_campaign(Scenario(name="bad-ckpt", agent=agent, trials=2, seed=1, faults=Faults.none()))
    assert result.outcome_counts == {"error": 2}
    assert "CheckpointError: value of 'progress'['when']=<module 'time'" in result.records[0].reason


# --- in-process crashes: the plan, resume, duplicates ------------------------------------------------------


def _scenario(agent, name=None, **faults):
    settings = dict(crash=0.3, crash_steps=(1, 3))
    settings.update(faults)
    return Scenario(name=name or f"crash-{agent.__name__}", agent=agent, task="Refund order 42", world=cs.Shop,
                    tools=cs.TOOLS, check=cs.check, faults=Faults(**settings), trials=600, seed=8, early_stop=False,
                    expect={"duplicate_side_effects": "== 0", "resume_success_rate": ">= 0.95"})


def test_crashes_follow_the_plan_statistically():
    """30% of trials crash, at a step uniform in 1..3, before or after (50/50), exactly where the plan says."""
    # every trial's trace: each crash event is checked against the plan
    result = run_campaign(dataclasses.replace(_scenario(cs.careful_agent, crash_point="any"), keep_traces=None))
    crashed = [r for r in result.records if r.extra.get("crashes")]
    assert scipy.stats.binomtest(len(crashed), result.n, 0.3).pvalue > 1e-3
    steps = [r.extra["crash_step"] for r in crashed]
    assert scipy.stats.chisquare([steps.count(k) for k in (1, 2, 3)]).pvalue > 1e-3
    after = sum(r.extra["crash_point"] == "after" for r in crashed)
    assert scipy.stats.binomtest(after, len(crashed), 0.5).pvalue > 1e-3
    faults = _scenario(cs.careful_agent, crash_point="any").faults
    for r in result.records:
        draw = FaultPlan.draw(r.seed, faults, ()).crash()
        events = [e for e in r.trace if e.kind == "crash"]
        if draw is None:
            assert not events and "crashes" not in r.extra
        else:
            (event,) = events
            assert (event.data["step"], event.outcome, r.extra["restarts"]) == (draw.step, draw.point, 1)
            assert [e.kind for e in r.trace].count("resume") == 1


def test_careful_agent_resumes_from_its_checkpoint_without_duplicates():
    result = run_campaign(_scenario(cs.careful_agent))
    assert [v.verdict for v in result.verdicts] == ["pass", "pass"]
    assert result.outcome_counts == {"completed": 600}
    data = collect(result.records, ["resume_success_rate", "duplicate_side_effects"])
    assert data["resume_success_rate"].k == data["resume_success_rate"].n > 150
    # every trial refunds: each had the chance to repeat a side effect, crashed or not
    assert data["duplicate_side_effects"].n == 600 and data["duplicate_side_effects"].k == 0
    resumed = next(r for r in result.records if r.extra.get("crash_step") == 2)
    kinds = [(e.kind, e.name) for e in resumed.trace if e.kind in ("tool_call", "crash", "resume")]
    assert kinds == [("tool_call", "get_order"), ("tool_call", "refund"), ("crash", "refund"),
                     ("resume", resumed.scenario), ("tool_call", "get_refunds"), ("tool_call", "sent_emails"),
                     ("tool_call", "send_email")]  # resumed after the look-up, checked before acting again


def test_naive_agent_repeats_the_side_effect_a_crash_interrupted():
    """A crash after the refund (step 2) or the e-mail (step 3) makes the naive agent do it twice: about
    2/3 of its crashed trials fail, 1/3 (crash after the look-up) resume cleanly."""
    result = run_campaign(_scenario(cs.naive_agent))
    verdicts = {v.key: v.verdict for v in result.verdicts}
    assert verdicts == {"duplicate_side_effects": "fail", "resume_success_rate": "fail"}
    data = collect(result.records, ["resume_success_rate", "duplicate_side_effects"])
    rate = data["resume_success_rate"]
    assert scipy.stats.binomtest(rate.k, rate.n, 1 / 3).pvalue > 1e-3
    by_step = {k: [r for r in result.records if r.extra.get("crash_step") == k] for k in (1, 2, 3)}
    assert {r.extra["duplicate_side_effects"] for r in by_step[1]} == {0}
    assert {r.extra["duplicate_side_effects"] for r in by_step[2]} == {1}
    assert {r.extra["duplicate_side_effects"] for r in by_step[3]} == {2}  # refund and e-mail again
    assert "duplicate_side_effect:refund" in by_step[2][0].violations and not by_step[2][0].ok
    # a crash before a tool runs loses no effect of that call: only the refund done before a crash at the
    # e-mail (step 3) is repeated
    before = run_campaign(_scenario(cs.naive_agent, crash_point="before"))
    for k, duplicates in ((1, {0}), (2, {0}), (3, {1})):
        assert {r.extra["duplicate_side_effects"] for r in before.records if r.extra.get("crash_step") == k} == \
            duplicates


def test_no_restart_left_means_outcome_crashed():
    result = run_campaign(_scenario(cs.careful_agent, crash=1.0, crash_restarts=0).replace(trials=20))
    assert result.outcome_counts == {"crashed": 20}
    assert "did not finish after crash_restarts=0 restart(s)" in result.records[0].reason
    assert result.metrics["resume_success_rate"].estimate == 0.0


def test_an_agent_that_swallows_the_crash_is_restarted_anyway():
    def stubborn(task, env):
        for name, args in (("get_order", (42,)), ("refund", (42, 30)), ("send_email", (cs.CUSTOMER, "hi"))):
            with contextlib.suppress(BaseException):  # swallows even the crash: the attempt stays dead
                env.tools[name](*args)
        return "done"

    assert not issubclass(AgentCrash, Exception)
    result = run_campaign(_scenario(stubborn, crash=1.0, crash_steps=(1, 1)).replace(trials=5))
    record = result.records[0]
    assert record.extra["restarts"] == 1 and record.extra["crashes"] == 1
    calls = [(e.name, e.outcome) for e in record.trace if e.kind == "tool_call"]
    assert calls == [("get_order", "ok"), ("get_order", "ok"), ("refund", "ok"), ("send_email", "ok")]


def test_async_agents_crash_and_resume_on_the_loop():
    async def careful_async(task, env):
        await asyncio.sleep(1)  # virtual
        return cs.careful_agent(task, env)

    result = run_campaign(_scenario(careful_async).replace(trials=100))
    assert result.outcome_counts == {"completed": 100}
    assert result.metrics["resume_success_rate"].estimate == 1.0
    assert result.metrics["duplicate_side_effects"].total == 0
    assert sum(r.extra.get("restarts", 0) for r in result.records) > 15


def test_a_crashed_trial_replays_exactly():
    scenario = _scenario(cs.naive_agent).replace(trials=40)
    result = run_campaign(scenario)
    index = next(r.index for r in result.records if r.extra.get("duplicate_side_effects"))
    again = replay_trial(scenario, index)
    assert again.trace == result.records[index].trace and again.extra == result.records[index].extra


def test_resume_saves_tokens_against_a_restart_from_scratch():
    """The same crashes, an agent that resumes and one that starts over: tokens spent after the crash."""
    resume = run_campaign(_scenario(cs.careful_agent))
    restart = run_campaign(_scenario(cs.restart_agent))
    assert restart.outcome_counts == resume.outcome_counts == {"completed": 600}
    after_resume = resume.metrics["tokens_after_crash"]
    after_restart = restart.metrics["tokens_after_crash"]
    assert after_resume.n == after_restart.n > 150  # the same crashed trials (same seeds, same plan)
    ratio = after_restart.mean / after_resume.mean
    print(f"tokens after a crash: restart {after_restart.mean:.0f} / resume {after_resume.mean:.0f} = {ratio:.2f}x")
    assert ratio > 1.15  # 5160 / ~4130 expected: a crash after the look-up saves nothing (not checkpointed yet)


def test_crash_metrics_from_records():
    def record(i, outcome, **crash):
        layers = {"crash": CrashRecord(**crash)} if crash else {}
        return TrialRecord(scenario="s", index=i, seed=i, outcome=outcome, input_tokens=900, output_tokens=100,
                           layers=layers)

    records = [record(0, "completed"),  # no crash: counts for none of the three
               record(1, "completed", crashes=1, duplicate_side_effects=0, tokens_at_crash=400),
               record(2, "failed", crashes=1, duplicate_side_effects=2, tokens_at_crash=1000),
               record(3, "completed", crashes=1, duplicate_side_effects=1, tokens_at_crash=0),
               record(4, "crashed", crashes=1, duplicate_side_effects=0, tokens_at_crash=250)]
    data = collect(records, ["resume_success_rate", "duplicate_side_effects", "tokens_after_crash"])
    assert (data["resume_success_rate"].k, data["resume_success_rate"].n) == (1, 4)
    assert (data["duplicate_side_effects"].k, data["duplicate_side_effects"].n) == (3, 4)
    assert data["tokens_after_crash"].samples == (600.0, 0.0, 1000.0, 750.0)


# --- real crashes: a child process killed with SIGKILL ------------------------------------------------------


def _sigkill(agent, tmp_path, trials=2, state=None, **faults):
    settings = dict(crash=1.0, crash_steps=(2, 2), crash_mode="sigkill")
    settings.update(faults)
    if not settings["crash"]:  # (no planned crash: no step for it, which would be an ``UnusedSetting``)
        del settings["crash_steps"]
    return Scenario(name=f"kill-{agent.__name__}", agent=agent, task="Refund order 42", world=cs.Shop,
                    tools=cs.TOOLS, check=cs.check, faults=Faults(**settings), trials=trials, seed=2,
                    early_stop=False, state=state or f"sqlite:{tmp_path / 'ckpt.sqlite3'}", timeout_s=60,
                    expect={"duplicate_side_effects": "== 0"})


def test_sigkill_mid_task_resumes_from_sqlite_without_a_duplicate_refund(tmp_path):
    """The agent's process is SIGKILLed right after the refund, before its checkpoint; a new process reads
    the killed one's checkpoints from the SQLite file, checks, and finishes: one refund, one e-mail."""
    result = run_campaign(_sigkill(cs.pid_agent, tmp_path, trials=3).replace(concurrency=3))
    assert result.outcome_counts == {"completed": 3} and [v.verdict for v in result.verdicts] == ["pass"]
    for record in result.records:
        assert record.extra["exit_codes"] == [-signal.SIGKILL, 0]
        assert record.extra["duplicate_side_effects"] == 0 and record.extra["restarts"] == 1
        calls = [e.name for e in record.trace if e.kind == "tool_call"]
        # get_order ran once: the second process resumed from the first one's checkpoint
        assert calls == ["get_order", "refund", "get_refunds", "sent_emails", "send_email"]
        (crash,) = [e for e in record.trace if e.kind == "crash"]
        assert (crash.name, crash.outcome, crash.data["mode"]) == ("refund", "after", "sigkill")
        # the second process found what the first saved: the trial's namespace came from the parent
        stored = json.loads(record.output)
        assert len(stored["pids"]) == 2 and stored["pids"][0] != stored["pids"][1]
        assert os.getpid() not in stored["pids"] and stored["done"] == ["lookup", "refund", "email"]
    # each trial's checkpoints went when it ended
    assert sqlite3.connect(tmp_path / "ckpt.sqlite3").execute("SELECT COUNT(*) FROM checkpoints").fetchone() == (0,)


def test_sigkill_of_a_naive_agent_shows_the_duplicate_refund(tmp_path):
    result = run_campaign(_sigkill(cs.naive_agent, tmp_path, trials=1, crash_mode="sigkill"))
    assert result.outcome_counts == {"failed": 1} and [v.verdict for v in result.verdicts] == ["fail"]
    assert result.records[0].extra["duplicate_side_effects"] == 1


def test_a_child_that_dies_on_its_own_is_restarted(tmp_path):
    result = run_campaign(_sigkill(cs.suicidal_agent, tmp_path, trials=1, crash=0.0))
    record = result.records[0]
    assert record.outcome == "completed" and record.extra["exit_codes"] == [3, 0]
    (crash,) = [e for e in record.trace if e.kind == "crash"]
    assert crash.outcome == "died" and "exited with code 3" in crash.data["reason"]
    assert record.extra["duplicate_side_effects"] == 0


@pytest.mark.parametrize("agent", [cs.hanging_agent, cs.async_hanging_agent])
def test_a_hanging_child_is_killed_at_the_wall_clock_limit(tmp_path, agent, monkeypatch):
    """A child process that hangs is killed at the trial's wall-clock limit: the trial is timed_out, not
    before the limit, and the child is killed and reaped (no process is left behind).

    The limit counts from the trial's start, so it also covers starting the child, a fresh interpreter that
    imports the package, which a loaded machine can stretch past any small limit. The child signals that it
    is ready (saves its pid) just before it hangs; a run whose limit ran out before that has not tested a
    hanging child (only a starting one), so it is repeated with the limit doubled, up to 16 s.
    """
    pids = tmp_path / "pids"  # the child writes its pid here too (the trial's store is emptied when it ends)
    pids.mkdir()
    monkeypatch.setenv("CRASH_SUPPORT_PIDS", str(pids))
    for limit in (1.0, 2.0, 4.0, 8.0, 16.0):  # a child that saved its pid after its run ended must be gone too
        path = tmp_path / f"limit-{limit:g}"
        path.mkdir()
        result = run_campaign(_sigkill(agent, path, trials=1, crash=0.0).replace(timeout_s=limit))
        (record,) = result.records
        assert record.outcome == "timed_out" and "wall-clock limit" in record.reason, record.reason
        assert result.wall_s >= limit
        if list(pids.iterdir()):
            break
    else:
        pytest.fail("the child never got as far as hanging before a 16 s wall-clock limit")
    deadline = time.monotonic() + 30  # the abandoned trial's thread kills and reaps its child just after
    for pid in [int(p.read_text()) for p in pids.iterdir()]:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # killed and reaped, not leaked


def test_escalation_from_a_child_process_ends_the_trial(tmp_path):
    result = run_campaign(_sigkill(cs.escalating_agent, tmp_path, trials=1, crash=0.0))
    record = result.records[0]
    assert record.outcome == "escalated" and record.extra["exit_codes"] == [-signal.SIGKILL]
    assert [e.name for e in record.trace if e.kind == "tool_call"] == ["get_order"]


def test_sigkill_mode_needs_durable_state_and_an_importable_agent(tmp_path):
    with pytest.raises(ConfigError, match=r"state='memory' does not survive a process kill"):
        run_campaign(_sigkill(cs.careful_agent, tmp_path, state="memory"))
    with pytest.raises(ConfigError, match=r"agent=.* must be importable"):
        run_campaign(_sigkill(lambda task, env: None, tmp_path))

    async def local_async_agent(task, env):
        return None
    with pytest.raises(ConfigError, match=r"agent=.* must be importable"):
        run_campaign(_sigkill(local_async_agent, tmp_path))


def test_sigkill_of_an_async_agent_resumes_and_its_virtual_sleeps_count(tmp_path):
    """The async agent runs on a virtual-time loop in its child process; its sleeps advance the trial's
    clock in the parent; the process is killed after the refund and the next one resumes."""
    result = run_campaign(_sigkill(cs.async_careful_agent, tmp_path, trials=3).replace(concurrency=3))
    assert result.outcome_counts == {"completed": 3} and [v.verdict for v in result.verdicts] == ["pass"]
    for record in result.records:
        assert record.extra["exit_codes"] == [-signal.SIGKILL, 0]
        assert record.extra["duplicate_side_effects"] == 0
        assert [e.name for e in record.trace if e.kind == "tool_call"] == \
            ["get_order", "refund", "get_refunds", "sent_emails", "send_email"]
        assert record.duration_s >= 40.0  # 10 s before each of 4 steps (2 in each process), all virtual
    pids = json.loads(result.records[0].output)["pids"]  # both processes' pids, from the trial's store
    assert len(pids) == 2 and os.getpid() not in pids


def test_sigkill_defaults_to_a_temporary_sqlite_file(tmp_path):
    scenario = _sigkill(cs.careful_agent, tmp_path, trials=1).replace(state=None)
    assert scenario.state is None
    result = run_campaign(scenario)
    assert result.outcome_counts == {"completed": 1}
    assert result.records[0].extra["exit_codes"] == [-signal.SIGKILL, 0]


# --- Redis, end to end --------------------------------------------------------------------------------------


def test_redis_store_serves_in_process_and_sigkill_resumes(redis_url, tmp_path):
    scenario = _scenario(cs.careful_agent).replace(trials=60, state=redis_url)
    result = run_campaign(scenario)
    assert result.outcome_counts == {"completed": 60}
    assert result.metrics["resume_success_rate"].estimate == 1.0
    killed = run_campaign(_sigkill(cs.pid_agent, tmp_path, trials=1, state=redis_url))
    assert killed.outcome_counts == {"completed": 1}
    assert killed.records[0].extra["exit_codes"] == [-signal.SIGKILL, 0]
    stored = json.loads(killed.records[0].output)  # the restarted process read the killed one's checkpoints
    assert len(stored["pids"]) == 2 and stored["done"] == ["lookup", "refund", "email"]
    import redis

    client = redis.Redis.from_url(redis_url)
    assert [k for k in client.keys(REDIS_PREFIX + "*") if b"/kill-" in k or b"/crash-" in k] == []  # all cleared
    client.close()



# --- the bundled demo and its scenario file ------------------------------------------------------------------


def test_crash_resume_scenario_file_reads_the_crash_and_state_keys():
    from pytest_agentops.scenario_file import load_scenarios

    careful, naive = load_scenarios(SCENARIOS / "crash_resume.yaml")
    assert careful.state == StateSpec("sqlite") and careful.faults.crash == 0.4
    assert (careful.faults.crash_point, careful.faults.crash_steps, careful.faults.crash_mode) == \
        ("after", (1, 2), "in_process")
    assert naive.xfail and careful.expect["duplicate_side_effects"] == "== 0"


def test_demo_agents_under_sigkill(tmp_path):
    """The bundled agents in a child process killed right after the refund: the careful one checks and
    finishes with one refund; the naive one replays the refund."""
    from pytest_agentops.demo import TOOLS, Shop, careful_agent, naive_agent, refund_done

    def scenario(agent):
        return Scenario(name=f"demo-kill-{agent.__name__}", agent=agent, task="Refund order 42", world=Shop,
                        tools=TOOLS, check=refund_done, trials=1, seed=3, timeout_s=60,
                        faults=Faults(crash=1.0, crash_steps=2, crash_mode="sigkill"))

    careful = run_campaign(scenario(careful_agent)).records[0]
    assert careful.outcome == "completed" and careful.extra["exit_codes"] == [-signal.SIGKILL, 0]
    assert [e.name for e in careful.trace if e.kind == "tool_call"] == ["lookup_order", "refund_order",
                                                                         "lookup_order"]
    naive = run_campaign(scenario(naive_agent)).records[0]
    assert naive.outcome == "failed" and naive.extra["duplicate_side_effects"] == 1


# --- shared stores: a campaign's namespaces are its own; an unreachable store fails the campaign at once ------


def test_each_campaign_has_namespaces_of_its_own_and_leaves_nothing_behind(tmp_path, monkeypatch):
    spec = StateSpec.parse(f"sqlite:{tmp_path / 'shared.sqlite3'}")
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    one, two = CampaignState(spec), CampaignState(spec)
    assert one.run != two.run and one.run.startswith("gw3-") and len(one.run) == len("gw3-") + 12
    assert one.namespace("refund", 7) == f"{one.run}/refund/7"
    mine, theirs = one.trial_store("refund", 7), two.trial_store("refund", 7)
    mine.save("owner", "one")
    assert theirs.keys() == [] and theirs.load("owner") is None  # same scenario, same seed: not the same data
    theirs.save("owner", "two")
    assert mine.load("owner") == "one"
    one.release(mine)  # the trial ended: its checkpoints go
    assert one.trial_store("refund", 7).keys() == []
    left = two.trial_store("refund", 8)
    left.save("k", 1)
    two.close()  # trials not released (never ended) are emptied with the campaign
    one.close()
    assert sqlite3.connect(tmp_path / "shared.sqlite3").execute("SELECT COUNT(*) FROM checkpoints").fetchone() == (0,)
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert "-" not in CampaignState(StateSpec("memory")).run


SHARED_CAMPAIGN = """
import json, os, sys, threading, time
from pathlib import Path
from pytest_agentops import Faults, Scenario, run_campaign

def agent(task, env):
    before = env.state.keys()
    env.state.save("owner", os.getpid())
    threading.Event().wait(0.02)  # real time: the other process's trial of the same seed runs meanwhile
    mine = env.state.load("owner") == os.getpid() and env.state.keys() == ["owner"]
    return json.dumps({"clean": before == [] and mine, "namespace": env.state.namespace})

def scenario(trials, state):
    return Scenario(name="shared", agent=agent, trials=trials, seed=9, concurrency=4, early_stop=False,
                    faults=Faults.none(), state=state)

run_campaign(scenario(1, "memory"))  # everything imported and warm before the start
go = Path(sys.argv[2])
deadline = time.monotonic() + 60
while not go.exists() and time.monotonic() < deadline:  # both processes start their campaign together
    time.sleep(0.005)
result = run_campaign(scenario(40, sys.argv[1]))
outputs = [json.loads(r.output) for r in result.records]
print(json.dumps({"outcomes": dict(result.outcome_counts), "clean": sum(o["clean"] for o in outputs),
                  "namespaces": sorted({o["namespace"].rsplit("/", 2)[0] for o in outputs})}))
"""


@pytest.mark.parametrize("backend", ["redis", "sqlite file"])
def test_two_processes_running_the_same_scenario_on_one_store_never_see_each_others_checkpoints(
        backend, tmp_path, request):
    """Two real processes (as two pytest-xdist workers, or two CI jobs on one Redis) run the same scenario
    with the same seeds, at the same time, on one store: every trial sees only its own checkpoints."""
    state = request.getfixturevalue("redis_url") if backend == "redis" else f"sqlite:{tmp_path / 'one.sqlite3'}"
    script = tmp_path / "campaign.py"
    script.write_text(SHARED_CAMPAIGN)
    go = tmp_path / "go"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    procs = [subprocess.Popen([sys.executable, str(script), state, str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=dict(env, PYTEST_XDIST_WORKER=worker))
             for worker in ("gw0", "gw1")]
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    for worker, result in zip(("gw0", "gw1"), results, strict=True):
        assert result["outcomes"] == {"completed": 40}
        assert result["clean"] == 40, result  # no trial read the other process's checkpoint
        (run,) = result["namespaces"]  # one run identity per campaign, after the worker id
        assert run.startswith(f"{worker}-")
    if backend == "redis":
        import redis

        client = redis.Redis.from_url(state)
        assert [k for k in client.keys(REDIS_PREFIX + "*") if b"/shared/" in k] == []
        client.close()


def test_an_unreachable_store_fails_the_campaign_before_any_trial():
    pytest.importorskip("redis")
    calls = []

    def agent(task, env):
        calls.append(task)

    url = f"redis://127.0.0.1:{_free_port()}/0"  # nothing listens there
    with pytest.raises(ConfigError) as info:
        run_campaign(Scenario(name="down", agent=agent, trials=5, faults=Faults.none(), state=url))
    assert str(info.value).startswith(f"state={url!r}: the checkpoint store cannot be reached (ConnectionError: ")
    assert "is the server running and the URL right?" in str(info.value)
    assert calls == []  # not one trial

"""Virtual time through a cassette: a live call moves its trial's clock by its latency as the cassette keeps it
(whole milliseconds), when recording and when replaying, never by the real time the upstream or a lookup
took. So two replays of a cassette give the same records and traces to the digit, both the recorded run's,
and the printed replay command of one trial gives that trial of the full replay. Against a real server on
loopback (``upstream_server.py``, a few milliseconds per answer), shut down before the replays.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from pytest_agentops import Faults, run_campaign
from pytest_agentops.errors import ConfigError
from pytest_agentops.llm import cassette as cassette_module
from pytest_agentops.llm.cassette import Cassette, Recorded
from pytest_agentops.settings.live import LiveLLM
from pytest_agentops.vtime import real

from client_agents import openai_async_streaming_agent, openai_sync_agent, scenario
from live_support import KEY_ENV, SECRET, UpstreamServer, live_key

DELAY_S = 0.003  # the server's own wait per answer: every forwarded call takes a few real milliseconds
#: The scenarios recorded once for the module: with the client agents' faults (retries, drift, perturbed replies:
#: retry-after waits on the clock beside the calls' latencies), and without faults (the calls' latencies only).
MADE = {"faulted-sync": (openai_sync_agent, {}), "faulted-async-stream": (openai_async_streaming_agent, {}),
        "plain-sync": (openai_sync_agent, {"faults": Faults(), "expect": {}}),
        "plain-async-stream": (openai_async_streaming_agent, {"faults": Faults(), "expect": {}})}


def live_scenario(name: str, base_url: str) -> Any:
    agent, extra = MADE[name]
    return scenario(name, agent, llm=None, live=LiveLLM(base_url=base_url, key_env=KEY_ENV, model="gpt-4o-mini"),
                    trials=6, concurrency=3, **extra)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """The scenarios recorded against the server (then shut down): the cassettes' directory, the scenarios and
    their recorded results as dicts (traces included)."""
    directory = tmp_path_factory.mktemp("cassettes")
    server = UpstreamServer(delay=DELAY_S)
    try:
        with live_key():
            made = {name: live_scenario(name, server.base_url) for name in MADE}
            results = {name: run_campaign(s, record=str(directory)).to_dict(with_traces=True)
                       for name, s in made.items()}
    finally:
        server.stop()
    return directory, made, results


def entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def as_text(result: dict[str, Any]) -> str:
    return json.dumps(result, sort_keys=True, allow_nan=False)


def times(result: dict[str, Any]) -> list[tuple[str, float, list[float]]]:
    """Each record's virtual times: its duration and its trace events' ``t`` (what a failure shows first)."""
    return [(r["id"], r["duration_s"], [e["t"] for e in r["trace"]]) for r in result["records"]]


def forwarded(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A record's model calls that reached the upstream (or the cassette): the ones with the upstream's status."""
    return [e for e in record["trace"] if e["kind"] == "model_call" and "fault" not in e["data"]
            and e["data"].get("status") is not None]


def test_two_replays_of_a_cassette_are_the_recorded_campaign_to_the_digit(recorded):
    directory, made, results = recorded
    assert SECRET not in "".join(p.read_text() for p in directory.iterdir())  # (the redaction still holds)
    for name, s in made.items():
        lines = entries(directory / f"{name}.jsonl")
        assert lines and all(isinstance(e["latency_ms"], int) and e["latency_ms"] >= 0 for e in lines)
        first = run_campaign(s, cassette=str(directory)).to_dict(with_traces=True)  # no key, no server
        second = run_campaign(s, cassette=str(directory)).to_dict(with_traces=True)
        assert times(first) == times(second) == times(results[name]), name
        assert as_text(first) == as_text(second) == as_text(results[name]), name


def test_without_faults_a_trials_time_is_the_sum_of_its_calls_latencies_as_the_cassette_keeps_them(recorded):
    """The clock moves by each call's latency as kept in whole milliseconds, recording and replaying alike: a
    trial whose only time is its model calls lasts exactly their sum, and each call ends where the sum says."""
    directory, made, results = recorded
    for name in ("plain-sync", "plain-async-stream"):
        kept: dict[int, list[float]] = {}
        for entry in entries(directory / f"{name}.jsonl"):
            kept.setdefault(entry["trial"], []).append(entry["latency_ms"] / 1000)
        replayed = run_campaign(made[name], cassette=str(directory)).to_dict(with_traces=True)
        for result in (results[name], replayed):
            for record in result["records"]:
                latencies = kept[record["index"]]
                assert sum(latencies) >= DELAY_S * len(latencies)  # the server's real wait was measured
                ends, total = [], 0.0
                for latency in latencies:
                    total += latency
                    ends.append(round(total, 6))
                assert [e["t"] for e in forwarded(record)] == ends, (name, record["id"])
                assert record["duration_s"] == ends[-1]


def test_a_replay_moves_the_clock_by_the_cassettes_latency_never_by_a_lookups_real_time(recorded, tmp_path,
                                                                                        monkeypatch):
    directory, made, _results = recorded
    lookups: list[float] = []

    def slow_find(self: Cassette, seed: int, key: str, occurrence: int) -> Recorded | None:
        started = real.real_monotonic()
        real.real_sleep(0.02)  # a slow disk, a loaded machine: 20 ms of real time per lookup
        lookups.append(real.real_monotonic() - started)
        return original(self, seed, key, occurrence)

    original = Cassette.find
    monkeypatch.setattr(Cassette, "find", slow_find)
    for name in ("plain-sync", "plain-async-stream"):
        lines = entries(directory / f"{name}.jsonl")
        for i, entry in enumerate(lines):  # latencies chosen by hand: 0.125 s, 0.25 s, 0.375 s, ... per line
            entry["latency_ms"] = 125 * (1 + i % 3)
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
        kept: dict[int, list[float]] = {}
        for entry in lines:
            kept.setdefault(entry["trial"], []).append(entry["latency_ms"] / 1000)
        for _ in range(2):
            result = run_campaign(made[name], cassette=str(tmp_path)).to_dict(with_traces=True)
            for record in result["records"]:
                ends = [sum(kept[record["index"]][: n + 1]) for n in range(len(kept[record["index"]]))]
                assert [e["t"] for e in forwarded(record)] == ends, (name, record["id"])
                assert record["duration_s"] == ends[-1]
    assert lookups and min(lookups) >= 0.02  # the lookups did take real time, which no clock shows


def test_an_old_or_hand_written_entry_replays_and_a_broken_latency_is_named(tmp_path):
    from pytest_agentops.llm.cassette import recorded_latency

    def line(**changes: Any) -> str:
        entry = {"trial": 0, "seed": 1, "key": "k", "occurrence": 0, "method": "POST", "path": "/chat/completions",
                 "api": "chat", "model": "m", "last_message": "hi", "request": {}, "status": 200,
                 "headers": {"content-type": "application/json"}, "body": "{}", "latency_ms": 12}
        entry.update(changes)
        return json.dumps({k: v for k, v in entry.items() if v is not ...}) + "\n"

    path = tmp_path / "old.jsonl"
    path.write_text(line() + line(key="none", latency_ms=...) + line(key="null", latency_ms=None))
    loaded = Cassette.load(path)
    assert loaded.find(1, "k", 0).latency_s == 0.012 == recorded_latency(0.0123)
    assert loaded.find(1, "none", 0).latency_s == 0.0 == loaded.find(1, "null", 0).latency_s
    for bad in ("slow", -1, True, [5]):
        broken = tmp_path / "broken.jsonl"
        broken.write_text(line() + line(latency_ms=bad))
        with pytest.raises(ConfigError, match=r"broken.jsonl:2: not a cassette entry \(latency_ms="):
            cassette_module.Cassette.load(broken)
        broken.unlink()
    for measured in (0.0, 0.0004, 0.0005, 0.0015, 0.0123, 0.9996, 12.3456789):  # recording and replay agree
        kept = recorded_latency(measured)
        assert kept == round(kept * 1000) / 1000 == recorded_latency(kept)


PROJECT = '''
from pytest_agentops.settings.live import LiveLLM

from client_agents import openai_sync_agent, scenario


def test_refund_live(agent_chaos):
    agent_chaos.run(scenario("refund-live", openai_sync_agent, llm=None, trials=6, concurrency=3,
                             live=LiveLLM(base_url=BASE_URL, key_env=KEY_ENV, model="gpt-4o-mini"),
                             check=lambda world, output: False, expect={"completion_rate": ">= 0.9"})).check()
'''


def records_of(report: Path) -> dict[int, dict[str, Any]]:
    (campaign,) = json.loads(report.read_text())["campaigns"]
    return {r["index"]: r for r in campaign["records"]}


def test_the_printed_replay_of_a_trial_is_that_trial_of_the_full_replay(pytester, monkeypatch):
    """As a user runs it: record with ``--agent-chaos-record``, replay the whole campaign from the cassette twice,
    then paste each failing trial's printed command: the same record and trace times each time."""
    server = UpstreamServer(delay=DELAY_S)
    try:
        source = f"BASE_URL = {server.base_url!r}\nKEY_ENV = {KEY_ENV!r}\n{PROJECT}"
        pytester.makepyfile(test_cassette_timing_project=source)  # (a name no module of tests/ has)
        monkeypatch.setenv(KEY_ENV, SECRET)
        cassettes = pytester.path / "cassettes"
        live = pytester.runpytest("--agent-chaos", f"--agent-chaos-record={cassettes}", "-p", "no:cacheprovider",
                                  f"--agent-chaos-report={pytester.path / 'live.json'}")
    finally:
        server.stop()
    monkeypatch.delenv(KEY_ENV)  # a replay needs no key (and the server is gone)
    assert live.ret == 1, live.stdout.str()
    assert SECRET not in (cassettes / "refund-live.jsonl").read_text()
    full = []
    for n in (1, 2):
        result = pytester.runpytest("--agent-chaos", f"--agent-chaos-cassette={cassettes}", "-p", "no:cacheprovider",
                                    f"--agent-chaos-report={pytester.path / f'replay{n}.json'}")
        assert result.ret == 1, result.stdout.str()
        full.append(records_of(pytester.path / f"replay{n}.json"))
    recorded = records_of(pytester.path / "live.json")
    assert full[0] == full[1] == recorded
    commands = re.findall(r"^(?:E)?\s+(pytest .*--agent-chaos-replay=.*)$", live.stdout.str(), re.M)
    assert commands and all(f"--agent-chaos-cassette={cassettes}" in c for c in commands)
    for i, command in enumerate(commands):
        words = shlex.split(command)
        report = pytester.path / f"single{i}.json"
        again = pytester.runpytest(*words[1:], "-p", "no:cacheprovider", f"--agent-chaos-report={report}")
        assert again.ret == 1, again.stdout.str()
        ((index, single),) = records_of(report).items()
        assert single["trace"] and [e["t"] for e in single["trace"]] == [e["t"] for e in full[0][index]["trace"]]
        assert single == full[0][index] == recorded[index]

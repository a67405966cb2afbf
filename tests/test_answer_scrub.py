"""A live answer's secrets are taken out as its text reads, not only where its raw bytes spell them: across a
stream's deltas, inside JSON numbers; and a recorded campaign's agent gets the answer as the cassette keeps it,
so that its replay is the recording, to the digit (``llm/answer_scrub.py``)."""

from __future__ import annotations

import json

import pytest

from pytest_agentops.llm import replies, wire
from pytest_agentops.llm.answer_scrub import scrub_answer
from pytest_agentops.llm.cassette import Recorded

from live_support import UpstreamServer

SECRET = "sk-live-UPSTREAMKEY-123456789"  # (29 characters: a stream's 16-character deltas split it)


def _scrub(text: str) -> str:
    return text.replace(SECRET, "[REDACTED]").replace("73915482", "[redacted]")


@pytest.mark.parametrize("api", ["chat", "messages", "responses"])
def test_a_secret_a_streams_deltas_spell_is_taken_out_of_the_message_they_make(api):
    message = {"role": "assistant", "content": f"Your key is {SECRET}, kept.",
               "tool_calls": [{"id": "c1", "type": "function",
                               "function": {"name": "save", "arguments": json.dumps({"key": SECRET})}}]}
    body = b"".join(replies.render(api, message, replies.Reply(message, (10, 5), {"id": "r1", "model": "m"}),
                                   stream=True, include_usage=True, model="m"))
    if api != "responses":  # (its last event repeats the whole response)
        assert SECRET.encode() not in body  # (what the raw bytes' check looked for: no chunk holds it whole)
    assert SECRET in json.dumps(replies.read_reply(api, body, True).message)
    scrubbed = scrub_answer(Recorded(200, (), body, 0.25), api, True, _scrub, "m")
    read = replies.read_reply(api, scrubbed.body, True)
    assert SECRET not in json.dumps(read.message) and SECRET.encode() not in scrubbed.body
    assert read.message["content"] == "Your key is [REDACTED], kept."
    assert json.loads(read.message["tool_calls"][0]["function"]["arguments"]) == {"key": "[REDACTED]"}
    assert read.usage == (10, 5) and scrubbed.latency_s == 0.25


def test_a_secret_number_in_a_json_answer_leaves_it_json():
    body = json.dumps({"content": [{"type": "tool_use", "id": "t1", "name": "unlock", "input": {"pin": 73915482}}],
                       "usage": {"input_tokens": 3, "output_tokens": 4}}).encode()
    scrubbed = scrub_answer(Recorded(200, (), body, 0.0), "messages", False, _scrub)
    assert json.loads(scrubbed.body)["content"][0]["input"] == {"pin": "[redacted]"}
    assert json.loads(scrubbed.body)["usage"] == {"input_tokens": 3, "output_tokens": 4}


def test_an_answer_with_nothing_to_take_out_is_the_same_bytes():
    plain = Recorded(200, (), b'{"id": "x",  "n": 1}', 0.0)
    assert scrub_answer(plain, "chat", False, _scrub) is plain
    stream = Recorded(200, (), b"".join(wire.chat_sse({"role": "assistant", "content": "hello there, all of you"},
                                                      rid="r", model="m", created=1, usage=(1, 2),
                                                      include_usage=True)), 0.0)
    assert scrub_answer(stream, "chat", True, _scrub) is stream
    text = Recorded(500, (), f"upstream broke: {SECRET}".encode(), 0.0)
    assert scrub_answer(text, "chat", False, _scrub).body == b"upstream broke: [REDACTED]"


VAULT = '''
import os
from pytest_agentops import Faults, Scenario, tool
from pytest_agentops.llm import LiveLLM

LIVE = LiveLLM(base_url={base_url!r}, key_env="AGENTOPS_TEST_UPSTREAM_KEY", model="m")


class World:
    def __init__(self):
        self.unlocked = False


@tool
def get_pin(world) -> str:
    """The vault's PIN."""
    return os.environ["VAULT_PASSWORD"]


@tool
def unlock(world, pin: int) -> str:
    """Unlock the vault."""
    world.unlocked = str(pin) == os.environ["VAULT_PASSWORD"]
    return "ok" if world.unlocked else "error: wrong pin"


TOOLS = [{{"name": "get_pin", "input_schema": {{"type": "object", "properties": {{}}}}}},
         {{"name": "unlock", "input_schema": {{"type": "object", "properties": {{"pin": {{"type": "integer"}}}}}}}}]


def vault_agent(task, env):
    import anthropic  # (each run imports the one SDK it uses)

    client = anthropic.Anthropic(base_url=env.llm.root_url, api_key=env.llm.api_key, max_retries=0)
    messages = [{{"role": "user", "content": task}}]
    for _ in range(4):
        reply = client.messages.create(model="m", max_tokens=100, messages=messages, tools=TOOLS)
        uses = [b for b in reply.content if b.type == "tool_use"]
        if not uses:
            return "".join(b.text for b in reply.content if b.type == "text")
        messages.append({{"role": "assistant", "content": [b.model_dump() for b in reply.content]}})
        messages.append({{"role": "user", "content": [{{"type": "tool_result", "tool_use_id": b.id,
                                                      "content": str(env.tools[b.name](**b.input))}}
                                                     for b in uses]}})


def echo_agent(task, env):
    import openai

    client = openai.OpenAI(base_url=env.llm.base_url, api_key=env.llm.api_key, max_retries=0)
    stream = client.chat.completions.create(model="m", stream=True, messages=[{{"role": "user", "content": task}}])
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def test_vault(agent_chaos):
    agent_chaos.run(Scenario(name="vault", agent=vault_agent, task="unlock the vault", world=World,
                             tools=[get_pin, unlock], check=lambda w, o: w.unlocked, faults=Faults(), live=LIVE,
                             trials=3, seed=3, early_stop=False, expect={{"completion_rate": ">= 0.1"}}))


def test_echo(agent_chaos):
    agent_chaos.run(Scenario(name="echo", agent=echo_agent, task="Remember " + os.environ["DB_PASSWORD"],
                             faults=Faults(), live=LIVE, trials=2, seed=3, early_stop=False))
'''


def _decoded_deltas(cassette) -> str:
    """The text a cassette's streamed answers spell, their deltas joined."""
    text = ""
    for line in cassette.read_text().splitlines():
        entry = json.loads(line)
        reply = replies.read_reply("chat", entry["body"].encode(), True)
        text += reply.message.get("content") or ""
    return text


@pytest.mark.parametrize("policy", ["live_support:PIN_POLICY", "live_support:ECHO_POLICY"])
def test_a_recorded_campaign_whose_answers_held_secrets_replays_to_the_digit(pytester, monkeypatch, policy):
    """An outside review: a PIN (an environment secret) a model passed on as a number made the cassette's body
    invalid JSON (every replayed trial an error); a password passed on as a string was written redacted, so the
    replay's tool got ``[redacted]``, failed, and the next request missed (``FAIL 0/5`` against ``PASS 5/5``,
    blamed on a stale cassette); an environment secret a stream echoed in 16-character deltas was in the
    cassette, spelt across them. The recording's agent now gets what the cassette keeps."""
    monkeypatch.setenv("VAULT_PASSWORD", "73915482")
    monkeypatch.setenv("DB_PASSWORD", "Pg-S3cretPassw0rd-xyz")
    monkeypatch.setenv("AGENTOPS_TEST_UPSTREAM_KEY", SECRET)
    server = UpstreamServer(policy, key=SECRET)
    test = "test_vault" if policy.endswith("PIN_POLICY") else "test_echo"
    try:
        pytester.makepyfile(test_vault=VAULT.format(base_url=server.base_url))
        recorded = pytester.runpytest_subprocess(f"test_vault.py::{test}", "--agent-chaos",
                                                 "--agent-chaos-record=cassettes",
                                                 "--agent-chaos-report=recorded.json", "-p", "no:cacheprovider")
    finally:
        server.stop()
    recorded.assert_outcomes(passed=1)
    monkeypatch.delenv("AGENTOPS_TEST_UPSTREAM_KEY")
    replayed = pytester.runpytest_subprocess(f"test_vault.py::{test}", "--agent-chaos",
                                             "--agent-chaos-cassette=cassettes",
                                             "--agent-chaos-report=replayed.json", "-p", "no:cacheprovider")
    replayed.assert_outcomes(passed=1)
    (cassette,) = (pytester.path / "cassettes").glob("*.jsonl")
    if test == "test_vault":  # (each answer's body still JSON)
        assert all(json.loads(json.loads(line)["body"]) for line in cassette.read_text().splitlines())
    else:
        assert "Pg-S3cretPassw0rd-xyz" not in _decoded_deltas(cassette)
        assert "[redacted]" in _decoded_deltas(cassette)

    def records(name):
        report = json.loads((pytester.path / name).read_text())
        return [(r["outcome"], r["reason"], r["output"]) for c in report["campaigns"] for r in c["records"]]

    assert records("replayed.json") == records("recorded.json")
    assert {o for o, _, _ in records("recorded.json")} <= {"completed", "failed"}

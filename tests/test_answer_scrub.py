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


def _responses_stream(text: str) -> bytes:
    """A responses-API stream shaped as a real one: the text in 4-character ``output_text.delta`` events, then the
    ``done``, ``output_item.done`` and ``response.completed`` events that repeat it whole."""
    resp = {"id": "resp_1", "object": "response", "created_at": 1, "status": "in_progress", "model": "m",
            "output": [], "parallel_tool_calls": True, "tool_choice": "auto", "tools": []}
    item = {"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant", "content": []}
    done = dict(item, status="completed", content=[{"type": "output_text", "text": text, "annotations": []}])
    at = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    events = [("response.created", {"response": resp}),
              ("response.output_item.added", {"output_index": 0, "item": item}),
              ("response.content_part.added", {**at, "part": {"type": "output_text", "text": "", "annotations": []}})]
    events += [("response.output_text.delta", {**at, "delta": text[i:i + 4]}) for i in range(0, len(text), 4)]
    events += [("response.output_text.done", {**at, "text": text}), ("response.output_item.done",
                                                                    {"output_index": 0, "item": done}),
               ("response.completed", {"response": dict(resp, status="completed", output=[done],
                                                        usage={"input_tokens": 3, "output_tokens": 5,
                                                               "total_tokens": 8})})]
    return b"".join(f"event: {kind}\ndata: {json.dumps(dict(data, type=kind, sequence_number=n))}\n\n".encode()
                    for n, (kind, data) in enumerate(events))


def _stream(api: str, message: dict) -> bytes:
    """A stream of ``api`` in 16-character deltas, cut short by the output limit (its finish reason says so)."""
    if api == "responses":
        return _responses_stream(message["content"])
    body = b"".join(replies.render(api, message, replies.Reply(message, (10, 5), {"id": "r1", "model": "m"}),
                                   stream=True, include_usage=True, model="m"))
    return body.replace(b'"finish_reason":"tool_calls"', b'"finish_reason":"length"').replace(
        b'"stop_reason":"tool_use"', b'"stop_reason":"max_tokens"')


def _through_the_deltas(api: str, body: bytes) -> str:
    """What a reader of the stream's deltas puts together (every delta's text, in order)."""
    text = ""
    for event in replies.sse_events(body):
        data = replies.event_data(event)
        if not isinstance(data, dict):
            continue
        if api == "chat":
            for choice in data.get("choices") or ():
                delta = choice.get("delta") or {}
                text += delta.get("content") or ""
                text += "".join(c["function"].get("arguments") or "" for c in delta.get("tool_calls") or ())
        elif api == "messages":
            delta = data.get("delta") or {}
            text += delta.get("text") or delta.get("partial_json") or ""
        elif str(data.get("type")).endswith(".delta"):
            text += data["delta"]
    return text


@pytest.mark.parametrize("api", ["chat", "messages", "responses"])
def test_a_secret_a_streams_deltas_spell_is_taken_out_and_the_rest_of_the_stream_kept(api):
    """Reviews: an upstream echoing the key 4 characters at a time reached the agent and the cassette (no chunk
    holds it whole); the first fix read a responses stream from its last event only (its deltas still spelt the
    key) and wrote streams anew, which lost the finish reason (an answer cut short read as a whole one)."""
    message = {"role": "assistant", "content": f"Your key is {SECRET}, kept.",
               "tool_calls": [{"id": "c1", "type": "function",
                               "function": {"name": "save", "arguments": json.dumps({"key": SECRET})}}]}
    body = _stream(api, message)
    assert SECRET in _through_the_deltas(api, body)
    scrubbed = scrub_answer(Recorded(200, (), body, 0.25), api, True, _scrub)
    assert SECRET.encode() not in scrubbed.body and SECRET not in _through_the_deltas(api, scrubbed.body)
    assert "[REDACTED]" in _through_the_deltas(api, scrubbed.body)
    read = replies.read_reply(api, scrubbed.body, True)
    assert SECRET not in json.dumps(read.message) and "Your key is [REDACTED], kept." in json.dumps(read.message)
    before = [replies.event_data(e) for e in replies.sse_events(body)]
    after = [replies.event_data(e) for e in replies.sse_events(scrubbed.body)]
    assert len(before) == len(after)  # (the same events: only their texts changed)
    for old, new in zip(before, after, strict=True):
        for key in ("finish_reason", "stop_reason", "usage", "id", "type", "model"):
            assert _found(old, key) == _found(new, key)
    assert scrubbed.latency_s == 0.25


def _found(value, key):
    """Every value under ``key`` anywhere in ``value`` (parsed JSON), in order."""
    if isinstance(value, dict):
        return [v for k, v in value.items() if k == key] + [x for v in value.values() for x in _found(v, key)]
    if isinstance(value, list):
        return [x for v in value for x in _found(v, key)]
    return []


def test_a_responses_stream_scrubbed_reads_the_same_through_the_sdk():
    httpx = pytest.importorskip("httpx")
    openai = pytest.importorskip("openai")
    scrubbed = scrub_answer(Recorded(200, (), _responses_stream(f"Your key is {SECRET}, kept."), 0.0), "responses",
                            True, _scrub)
    client = openai.OpenAI(base_url="http://upstream.test/v1", api_key="k", http_client=httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, content=scrubbed.body,
                                                               headers={"content-type": "text/event-stream"}))))
    deltas, final = "", None
    for event in client.responses.create(model="m", input="hi", stream=True):
        if event.type == "response.output_text.delta":
            deltas += event.delta
        if event.type == "response.completed":
            final = event.response.output_text
    assert deltas == final == "Your key is [REDACTED], kept."


def test_a_secret_number_in_a_json_answer_leaves_it_json():
    body = json.dumps({"content": [{"type": "tool_use", "id": "t1", "name": "unlock", "input": {"pin": 73915482}}],
                       "usage": {"input_tokens": 3, "output_tokens": 4}}).encode()
    scrubbed = scrub_answer(Recorded(200, (), body, 0.0), "messages", False, _scrub)
    assert json.loads(scrubbed.body)["content"][0]["input"] == {"pin": "[redacted]"}
    assert json.loads(scrubbed.body)["usage"] == {"input_tokens": 3, "output_tokens": 4}


def test_an_answer_with_nothing_to_take_out_is_the_same_bytes():
    plain = Recorded(200, (), b'{"id": "x",  "n": 1}', 0.0)
    assert scrub_answer(plain, "chat", False, _scrub) is plain
    responses = Recorded(200, (), _responses_stream("nothing to see here, all of it"), 0.0)
    assert scrub_answer(responses, "responses", True, _scrub) is responses
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


def _chat_chunks(deltas: list[dict]) -> bytes:
    """A chat stream of these choice deltas (each with its text's token log-probabilities, as a real one sends)."""
    events = []
    for delta in deltas:
        text = delta.get("content") or ""
        logprobs = {"content": [{"token": text, "logprob": -0.1, "bytes": list(text.encode()), "top_logprobs": []}]}
        events.append({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [{"index": 0, "delta": delta, "logprobs": logprobs if text else None,
                                    "finish_reason": None}]})
    events.append({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]})
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def test_a_streams_refusal_and_token_log_probabilities_do_not_spell_the_secret_either():
    """A third review: the joined ``logprobs`` tokens (and their bytes) of the deltas spelt the key the content no
    longer held; a refusal's deltas were not read at all."""
    pieces = [SECRET[i:i + 4] for i in range(0, len(SECRET), 4)]
    body = _chat_chunks([{"role": "assistant", "content": ""}, *({"content": p} for p in pieces),
                         *({"refusal": p} for p in pieces)])
    scrubbed = scrub_answer(Recorded(200, (), body, 0.0), "chat", True, _scrub).body
    datas = [replies.event_data(e) for e in replies.sse_events(scrubbed)]
    choices = [c for d in datas if isinstance(d, dict) for c in d["choices"]]
    assert "".join(c["delta"].get("content") or "" for c in choices) == "[REDACTED]"
    assert "".join(c["delta"].get("refusal") or "" for c in choices) == "[REDACTED]"
    tokens = "".join(t["token"] for c in choices if c.get("logprobs") for t in c["logprobs"]["content"])
    assert SECRET not in tokens and SECRET.encode() not in scrubbed
    assert [c["finish_reason"] for c in choices][-1] == "stop"


def test_a_responses_summary_part_keeps_its_own_text():
    """A third review: the summary parts of one reasoning item were taken for one text (their events carry a
    ``summary_index``, no ``content_index``): once one part needed scrubbing, both parts' texts went into the first."""
    events = []
    for index, text in enumerate(["first part, nothing secret.", f"second part holds {SECRET} here"]):
        events += [{"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "output_index": 0,
                    "summary_index": index, "delta": text[i:i + 4]} for i in range(0, len(text), 4)]
    body = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)
    scrubbed = scrub_answer(Recorded(200, (), body, 0.0), "responses", True, _scrub).body
    parts: dict[int, str] = {}
    for event in replies.sse_events(scrubbed):
        data = replies.event_data(event)
        parts[data["summary_index"]] = parts.get(data["summary_index"], "") + data["delta"]
    assert parts == {0: "first part, nothing secret.", 1: "second part holds [REDACTED] here"}

"""The JSON report is written streamed, a record at a time, and says exactly what ``report_dict`` says: the
same bytes as ``json.dumps(report_dict(...), indent=2, sort_keys=True)``, secrets redacted in every record."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_agentops import Faults, Scenario, ToolError, run_campaign, tool
from pytest_agentops.report.json_report import report_dict, write_report
from pytest_agentops.report.json_text import write_json


@tool
def flaky(world, x: int = 0) -> int:
    """A tool the faults fail now and then."""
    return x


def agent(task, env):
    done = 0
    for _ in range(3):
        try:
            env.tools["flaky"](1)
            done += 1
        except ToolError:
            pass
    print("token sk-proj-abcdefghijklmnopqrstuvwxyz0123456789")  # (redacted in what the agent prints)
    return f"done {done} with key sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"


def _result():
    return run_campaign(Scenario(name="stream", agent=agent, tools=[flaky], faults=Faults(rate=0.3), trials=40,
                                 seed=3, early_stop=False, check=lambda world, out: out.startswith("done 3"),
                                 expect={"completion_rate": ">= 0.1"}))


def _dumped(data) -> str:
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"


@pytest.mark.parametrize("with_traces", [False, True])
def test_the_streamed_report_is_byte_for_byte_the_report_dict(tmp_path, with_traces):
    result = _result()
    assert 0 < result.outcome_counts.get("failed", 0) < result.n  # failing trials carry traces, passing ones not
    path = write_report(tmp_path / "r.json", [result], with_traces=with_traces, session={"exitstatus": 0})
    text = path.read_text(encoding="utf-8")
    assert text == _dumped(report_dict([result], with_traces=with_traces, session={"exitstatus": 0}))
    assert "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789" not in text


def test_campaigns_given_as_data_stream_the_same_and_keep_their_order(tmp_path):
    result = _result()
    datas = [dict(result.to_dict(), nodeid="b"), dict(result.to_dict(), nodeid="a"),
             {k: v for k, v in result.to_dict().items() if k != "records"}]
    text = write_report(tmp_path / "r.json", datas).read_text(encoding="utf-8")
    assert text == _dumped(report_dict(datas))
    assert [c.get("nodeid") for c in json.loads(text)["campaigns"]] == [None, "a", "b"]


def test_an_empty_report_streams_too(tmp_path):
    assert write_report(tmp_path / "r.json", []).read_text(encoding="utf-8") == _dumped(report_dict([]))


# Plain JSON data as reports hold it: keys of every kind json accepts, unicode, nesting (bounded: small
# trees, each case quick), floats without NaN or infinity (which a report never holds; both writers refuse).
_SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
            | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8))
_KEYS = st.text(max_size=6) | st.integers(min_value=-5, max_value=5)
_DATA = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                     | st.dictionaries(_KEYS, inner, max_size=4), max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(_DATA)
def test_the_json_writer_writes_what_json_dumps_writes(value):
    try:
        expected = json.dumps(value, indent=2, sort_keys=True, allow_nan=False)
    except TypeError:  # keys of mixed types do not sort: the writer refuses them too
        with pytest.raises(TypeError):
            write_json(value, io.StringIO().write)
        return
    out = io.StringIO()
    write_json(value, out.write)
    assert out.getvalue() == expected


@pytest.mark.parametrize("value", [float("nan"), [float("inf")], {"x": object()}])
def test_the_json_writer_refuses_what_json_refuses(value):
    with pytest.raises((ValueError, TypeError)):
        json.dumps(value, indent=2, sort_keys=True, allow_nan=False)
    with pytest.raises((ValueError, TypeError)):
        write_json(value, io.StringIO().write)

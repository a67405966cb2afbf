"""The JSON report is written streamed, a record at a time, and says exactly what ``report_dict`` says: the
same bytes as ``json.dumps(report_dict(...), indent=2, sort_keys=True)``, secrets redacted in every record.

A campaign's report data as the plugin holds it has its records made when read (``campaign_data.RecordDicts``),
never a dict per trial kept; every report written from it is byte for byte the one written from the plain list
of the same dicts (what a pytest-xdist worker hands over). The HTML report picks the failing trials to show in
one pass that keeps at most ``MAX_TRACES`` of them: the same ones as sorting them all (the rule written out
here)."""

from __future__ import annotations

import io
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_agentops import Faults, Scenario, ToolError, run_campaign, tool
from pytest_agentops.report import html
from pytest_agentops.report.campaign_data import RecordDicts, campaign_data, json_form, plain_data
from pytest_agentops.report.json_report import report_dict, write_report
from pytest_agentops.report.json_text import write_json
from pytest_agentops.report.lazy_records import MappedRecords


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
    if done == 0:
        env.escalate("nothing worked")
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


# -- the plugin's report data: records made when read ---------------------------------------------------------
@pytest.fixture(scope="module")
def campaign():
    r = run_campaign(Scenario(name="lazy", agent=agent, tools=[flaky], faults=Faults(rate=0.5), trials=150, seed=5,
                              early_stop=False, keep_traces=20, check=lambda world, out: out.startswith("done 3"),
                              expect={"completion_rate": ">= 0.1", "tokens_per_task.p95": "<= 10"}))
    outcomes = r.outcome_counts
    assert outcomes.get("completed", 0) > 20 and outcomes.get("failed", 0) > 20 and outcomes.get("escalated", 0)
    return r


@pytest.mark.parametrize("all_traces", [False, True])
def test_the_records_are_made_when_read_and_equal_the_list(campaign, all_traces):
    result = campaign
    data = campaign_data(result, series=True, all_traces=all_traces)
    records = data["records"]
    assert isinstance(records, RecordDicts) and len(records) == result.n
    listed = [result.record_dict(r, all_traces) for r in result.records]
    assert records == listed and list(records) == listed and records[3] == listed[3]
    assert records[10:20] == listed[10:20] and records[-1] == listed[-1]
    assert records != listed[:-1] and records != tuple(listed) and "RecordDicts('lazy', 150 records" in repr(records)
    plain = plain_data(data)
    assert type(plain["records"]) is list and plain["records"] == listed
    assert json.loads(json.dumps(plain, allow_nan=False))["records"][0]["id"] == "trial-0"  # (plain JSON data)
    with pytest.raises(TypeError):
        json.dumps(data)  # (the lazy one is not: ``report_dict`` takes the plain one)


def test_the_lean_records_are_the_records_without_their_extra(campaign):
    """What the HTML report walks: the same entries without the layers' ``extra``, which it does not read."""
    records = campaign_data(campaign)["records"]
    lean = records.lean()
    assert isinstance(lean, RecordDicts) and len(lean) == len(records) and "with_extra=False" in repr(lean)
    full = list(records)
    assert sum("extra" in r for r in full) == len(full)  # (every entry has one to leave out)
    assert list(lean) == [{k: v for k, v in r.items() if k != "extra"} for r in full]
    assert lean[5:9] == list(lean)[5:9] and lean.lean() == lean
    mapped = MappedRecords(full, dict)  # (a lazy sequence that cannot leave ``extra`` out, as a spooled one)
    assert mapped.lean() is mapped and "extra" in mapped[0]


@pytest.mark.parametrize("all_traces", [False, True])
def test_reports_from_the_lazy_data_are_byte_identical_to_reports_from_the_plain_list(tmp_path, campaign,
                                                                                     all_traces):
    result = campaign
    lazy = campaign_data(result, series=True, all_traces=all_traces)
    plain = plain_data(campaign_data(result, series=True, all_traces=all_traces))
    assert isinstance(json_form(lazy)["records"], RecordDicts)
    assert json_form(lazy) == json_form(plain)
    one = write_report(tmp_path / "lazy.json", [dict(json_form(lazy), nodeid="t")]).read_bytes()
    two = write_report(tmp_path / "plain.json", [dict(json_form(plain), nodeid="t")]).read_bytes()
    assert one == two and b"sk-proj-abcdefghij" not in one
    assert report_dict([json_form(lazy)]) == report_dict([json_form(plain)])
    page = html.write_html(tmp_path / "lazy.html", [lazy]).read_text(encoding="utf-8")
    assert page == html.write_html(tmp_path / "plain.html", [plain]).read_text(encoding="utf-8")
    assert page == html.html_report([lazy]) and page.count("<tr data-outcome=") == result.n


def _worst_first_then_cut(records, limit):
    """The rule the page follows, written out: the failing trials, the earliest example of each failure class
    first (in the classes' order), then the rest in launch order; those with a trace; the first ``limit``."""
    order = {c: i for i, c in enumerate(("error", "failed", "violation", "timed_out", "budget_exceeded", "crashed",
                                         "escalated"))}

    def classes(r):
        own = [] if r["outcome"] == "completed" else [r["outcome"]]
        return own + sorted({"violation:" + v.partition(":")[0] for v in r.get("violations", [])})

    bad = [r for r in records if not (r["outcome"] == "completed" and not r.get("violations"))]
    examples = {}
    for r in bad:
        for cls in classes(r):
            examples.setdefault(cls, r)
    first = []
    for cls in sorted(examples, key=lambda c: (order.get(c.partition(":")[0], 99), c)):
        if not any(examples[cls] is f for f in first):
            first.append(examples[cls])
    ordered = first + [r for r in bad if not any(r is f for f in first)]
    traced = [r for r in ordered if r.get("trace") is not None]
    return traced[:limit], len(traced)


_RECORD = st.fixed_dictionaries(
    {"outcome": st.sampled_from(["completed", "failed", "error", "escalated", "timed_out", "odd"]),
     "violations": st.lists(st.sampled_from(["unconfirmed_destructive_call:a", "scope:b", "loop:c"]), max_size=2),
     "trace": st.sampled_from([None, [], [{"kind": "x"}]]), "tokens": st.integers(0, 9), "cost_usd": st.just(0.0)})


@settings(max_examples=300, deadline=None)
@given(st.lists(_RECORD, max_size=40), st.integers(0, 12))
def test_the_one_pass_choice_of_failing_trials_is_the_sorted_choice_cut(records, limit):
    records = [dict(r, index=i) for i, r in enumerate(records)]
    walk = html._Walk(records, limit)
    want, traced = _worst_first_then_cut(records, limit)
    assert [r["index"] for r in walk.shown] == [r["index"] for r in want]
    assert walk.traced == traced and walk.tokens == [float(r["tokens"]) for r in records]


def test_a_spooled_campaign_reads_back_as_the_plain_list_of_its_records(tmp_path, campaign):
    """What an xdist worker spools (a record per line) reads back at the controller as the records, each read
    when asked for: by index (negative too), block, slice with a step, and in full, as often as asked."""
    from types import SimpleNamespace

    import pytest_agentops.pytest_plugin.spool as spool
    from pytest_agentops.pytest_plugin.spooled import SpooledRecords

    data = campaign_data(campaign, series=True)
    worker = SimpleNamespace(workerinput={spool.SPOOL: str(tmp_path), "workerid": "gw3"}, stash={})
    assert spool.put_campaign(worker, "test_x.py::test_y", data)
    assert spool.put_campaign(worker, "test_x.py::test_z", {k: v for k, v in data.items() if k != "records"})
    controller = SimpleNamespace(stash={spool.spool_key: str(tmp_path)})
    (first, data_back), (_, no_records) = spool.take(controller)["campaign"]
    records = data_back["records"]
    listed = json.loads(json.dumps(plain_data(data)["records"]))
    assert first == "test_x.py::test_y" and isinstance(records, SpooledRecords) and "records" not in no_records
    assert {k: v for k, v in data_back.items() if k != "records"} == json.loads(
        json.dumps({k: v for k, v in data.items() if k != "records"}))
    assert len(records) == campaign.n and records == listed and list(records) == listed
    assert records[0] == listed[0] and records[-1] == listed[-1] and records[7] == listed[7]
    assert records[10:30] == listed[10:30] and records[::7] == listed[::7] and records[5:2] == []
    with pytest.raises(IndexError):
        records[campaign.n]
    assert json_form(data_back) == json.loads(json.dumps(json_form(plain_data(data))))
    spool.discard(controller)
    assert not tmp_path.exists()


def test_a_spooled_campaign_cut_short_is_left_out_and_a_failed_spooling_leaves_nothing(tmp_path, campaign):
    from types import SimpleNamespace

    import pytest_agentops.pytest_plugin.spool as spool

    data = campaign_data(campaign)
    worker = SimpleNamespace(workerinput={spool.SPOOL: str(tmp_path), "workerid": "gw0"}, stash={})
    assert spool.put_campaign(worker, "test_x.py::test_whole", data)
    assert spool.put_campaign(worker, "test_x.py::test_cut", data)
    cut = sorted(tmp_path.glob("campaign-*.json"))[1]
    cut.write_bytes(cut.read_bytes()[:-5])  # (damage from outside: the worker writes whole files, then renames)
    controller = SimpleNamespace(stash={spool.spool_key: str(tmp_path)})
    assert [nodeid for nodeid, _ in spool.take(controller)["campaign"]] == ["test_x.py::test_whole"]
    bad = dict(data, records=[{"id": "trial-0", "x": float("nan")}])
    with pytest.raises(ValueError):
        spool.put_campaign(worker, "test_x.py::test_nan", bad)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".json"]


def test_the_html_report_orders_campaigns_of_one_scenario_by_their_tests(campaign):
    """As the JSON report does: whichever process ran them (pytest-xdist workers hand them over in any order)."""
    one = dict(campaign_data(campaign, series=True), nodeid="test_a.py::test_x[2]", passed=True)
    other = dict(campaign_data(campaign, series=True), nodeid="test_a.py::test_x[1]", passed=False)
    page = html.html_report([one, other])
    assert page == html.html_report([other, one])
    assert page.index('badge FAIL">FAIL') < page.index('badge PASS">PASS')  # (test_x[1]'s first)


def test_a_secret_the_environment_holds_when_the_reports_are_written_is_in_none_of_them(tmp_path, monkeypatch):
    """The records were redacted when made; a secret set after the campaign (a later test's key) is redacted
    when each report is written: JSON (as before), HTML and the OpenTelemetry spans."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from pytest_agentops.report.otel import export

    late = "late-secret-value-4242-abcdef"

    @tool
    def note(world, text: str) -> str:
        """Note a text down."""
        return "noted"

    def talker(task, env):
        env.tools["note"](f"my key is {late}")
        return f"my key is {late}"

    result = run_campaign(Scenario(name="late", agent=talker, tools=[note], trials=3, seed=1, early_stop=False,
                                   check=lambda world, out: False))
    assert late in result.records[0].output  # (not a secret when the campaign ran)
    monkeypatch.setenv("LATE_API_TOKEN", late)
    data = campaign_data(result, series=True, all_traces=True)
    assert late not in write_report(tmp_path / "r.json", [json_form(data)]).read_text(encoding="utf-8")
    page = html.write_html(tmp_path / "r.html", [data]).read_text(encoding="utf-8")
    assert late not in page and "my key is [redacted]" in page
    memory = InMemorySpanExporter()
    assert export([data], exporters=[memory]) == 3
    spans = json.dumps([dict(s.attributes or {}) | {e.name: dict(e.attributes or {}) for e in s.events}
                        for s in memory.get_finished_spans()], default=str)
    assert late not in spans and "[redacted]" in spans


def test_a_spooled_record_damaged_in_the_middle_is_an_error_naming_the_file(tmp_path, campaign):
    """Not a traceback from the JSON decoder: the plugin says a report could not be written, naming the file."""
    from types import SimpleNamespace

    import pytest_agentops.pytest_plugin.spool as spool

    worker = SimpleNamespace(workerinput={spool.SPOOL: str(tmp_path), "workerid": "gw0"}, stash={})
    spool.put_campaign(worker, "test_x.py::test_y", campaign_data(campaign))
    file = next(tmp_path.glob("campaign-*.json"))
    text = file.read_bytes()
    middle = text.index(b'"id": "trial-7"')
    file.write_bytes(text[:middle] + b"#" + text[middle + 1:])
    (_, data), = spool.take(SimpleNamespace(stash={spool.spool_key: str(tmp_path)}))["campaign"]
    with pytest.raises(OSError, match="damaged") as caught:
        write_report(tmp_path / "r.json", [json_form(data)])
    assert caught.value.filename == str(file)


def test_the_terminal_summary_names_a_damaged_spooled_campaign_and_goes_on(tmp_path, campaign):
    from types import SimpleNamespace

    import pytest_agentops.pytest_plugin.spool as spool
    from pytest_agentops.pytest_plugin.reports import data_key, terminal_summary

    worker = SimpleNamespace(workerinput={spool.SPOOL: str(tmp_path), "workerid": "gw0"}, stash={})
    spool.put_campaign(worker, "test_x.py::test_damaged", campaign_data(campaign))
    spool.put_campaign(worker, "test_x.py::test_whole", campaign_data(campaign))
    file = sorted(tmp_path.glob("campaign-*.json"))[0]
    text = file.read_bytes()
    file.write_bytes(text.replace(b'"id": "trial-7"', b'#"id": "trial-7', 1))
    spooled = spool.take(SimpleNamespace(stash={spool.spool_key: str(tmp_path)}))["campaign"]
    config = SimpleNamespace(stash={data_key: [(nodeid, data, None) for nodeid, data in spooled]},
                             get_verbosity=lambda: 0)
    lines: list[str] = []
    reporter = SimpleNamespace(section=lambda title: lines.append(f"== {title}"),
                               write_line=lambda line, **kw: lines.append(line))
    terminal_summary(reporter, config)
    assert lines[:3] == ["== agent chaos", "test_x.py::test_damaged",
                         f"ERROR: test_x.py::test_damaged: its records could not be read: {file} "
                         "(a spooled campaign record is damaged)"]
    assert "test_x.py::test_whole" in lines and any("completion_rate" in line for line in lines)


def test_the_series_of_every_judged_metric_come_from_one_pass_and_equal_each_metrics_own(campaign):
    """``metric_series`` reads each record once for all the judged metrics: the same values as one walk per
    metric (a rate as [successes, chances], a distribution's value rounded, None where it does not apply)."""
    import math

    from pytest_agentops.metrics import REGISTRY
    from pytest_agentops.report.campaign_data import metric_series

    def one_metric(name):
        defn = REGISTRY[name]
        values = []
        for record in campaign.records:
            value = defn.extract(record)
            if defn.kind == "distribution":
                values.append(None if value is None else "inf" if math.isinf(value) else round(float(value), 6))
            else:
                values.append([int(value[0]), int(value[1])])
        return {"metric": name, "kind": defn.kind, "values": values}

    series = metric_series(campaign)
    assert [s["metric"] for s in series] == ["completion_rate", "tokens_per_task"]
    assert {s["kind"] for s in series} == {"rate", "distribution"}
    assert series == [one_metric(s["metric"]) for s in series]
    assert all(len(s["values"]) == campaign.n for s in series)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_a_report_gets_the_mode_of_an_ordinary_new_file(tmp_path, mask):
    """Written through a 0600 temporary file and moved into place: the mode an ordinary new file gets under the
    process's umask (read from ``/proc/self/status`` where the system shows it, without setting it)."""
    from pytest_agentops.process.umask import as_ordinary_file, current_umask

    result = run_campaign(Scenario(name="mode", agent=lambda task, env: "ok", trials=2, seed=1, faults="none"))
    before = os.umask(mask)
    try:
        assert current_umask() == mask
        written = write_report(tmp_path / "report.json", [result])
        loose = tmp_path / "loose"
        loose.write_text("")
        loose.chmod(0o600)
        as_ordinary_file(loose)
    finally:
        os.umask(before)
    assert (os.stat(written).st_mode & 0o777) == (os.stat(loose).st_mode & 0o777) == 0o666 & ~mask

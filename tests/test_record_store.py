"""A campaign's records kept as columns (``RecordStore``) read back exactly as they were stored: equal, with
the same repr (what the report writes), whatever the values' types; and a campaign keeps its records there."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_agentops import Budget, Faults, Scenario, run_campaign
from pytest_agentops._frozen import Shared
from pytest_agentops.engine.assemble import CampaignLayers
from pytest_agentops.engine.trial import Trial
from pytest_agentops.precedence import resolve_run
from pytest_agentops.record_store import RecordStore
from pytest_agentops.records import TraceEvent, TrialRecord
from pytest_agentops.settings.run import RunSource
from pytest_agentops.settings.trajectory import TrajectoryRecord

from conftest import lookup, two_lookups
from toy_layer import StepsLayer


@dataclasses.dataclass(frozen=True)
class UserRecord:
    """A layer record of a user's own layer: equal instances may print differently (1 == 1.0 == True)."""

    value: Any

    def to_dict(self) -> dict[str, Any]:
        return {"user_value": self.value}


def _record(i: int, **kwargs: Any) -> TrialRecord:
    fields = dict(scenario="s", index=i, seed=10 ** 18 + i, outcome="completed", tool_calls=3, duration_s=0.5,
                  output="ok")
    fields.update(kwargs)
    return TrialRecord(**fields)


def _same(store: RecordStore, records: list[TrialRecord]) -> None:
    """Equal record for record, and printed the same (the report writes the values as they print)."""
    assert len(store) == len(records)
    assert store == tuple(records) and tuple(records) == store and store == records
    assert [repr(r) for r in store] == [repr(r) for r in records]
    assert [repr(store[i]) for i in range(len(records))] == [repr(r) for r in records]
    assert [r.to_dict(with_trace=True) for r in store] == [r.to_dict(with_trace=True) for r in records]


def test_a_store_reads_back_its_records_by_index_slice_and_iteration():
    trace = (TraceEvent(0, 0.0, "tool_call", "t0", "ok", data={"arguments": {"x": 1}}),)
    records = [_record(0, trace=trace), _record(1, outcome="failed", reason="check returned False",
                                                    violations=("unconfirmed_destructive_call:rm",)),
               _record(2, escalated_at_s=1.5, unrecovered_fault_s=0.25, faults=("t0:timeout",),
                       layers={"trajectory": TrajectoryRecord(steps=4)}),
               _record(3, skeleton=(("tool_call", "t0", "ok", False),))]
    store = RecordStore(records)
    _same(store, records)
    assert store[-1] == records[-1] and store[1:3] == tuple(records[1:3]) and store[::-2] == tuple(records[::-2])
    assert list(reversed(store)) == records[::-1]
    with pytest.raises(IndexError):
        store[4]
    assert store.outcome_counts() == {"completed": 3, "failed": 1}
    assert list(store.not_ok()) == [records[1]]
    assert store.column("escalated_at_s") == [None, None, 1.5, None]
    assert list(store.column("tool_calls")) == [3, 3, 3, 3]
    assert store.columns("outcome", "index") == {"outcome": ["completed", "failed", "completed", "completed"],
                                                 "index": store.column("index")}
    codes, values = store.coded("outcome")
    assert [values[c] for c in codes] == store.column("outcome")
    assert RecordStore([*records, _record(4, tool_calls=True)]).coded("outcome")[1] == ["completed", "failed"]
    assert pickle.loads(pickle.dumps(store)) == store
    assert hash(RecordStore(records[1:])) == hash(store[1:])  # (as a tuple of the same records hashes)
    assert repr(store) == "RecordStore(n=4, completed=3, failed=1)"


def test_values_equal_but_printed_differently_are_never_merged():
    # 1, 1.0 and True are equal, as are 0.0 and -0.0: each trial keeps its own
    records = [_record(0, layers={"user": UserRecord(1)}), _record(1, layers={"user": UserRecord(1.0)}),
               _record(2, layers={"user": UserRecord(True)}), _record(3, layers={"user": UserRecord(-0.0)}),
               _record(4, layers={"user": UserRecord(0.0)}), _record(5, cost_usd=-0.0),
               _record(6, tool_calls=True), _record(7, input_tokens=5.0), _record(8, duration_s=2),
               _record(9, default_priced=("gpt", "gpt")), _record(10, faults=("a:timeout",)),
               _record(11, seed=-(2 ** 70)), _record(12, input_tokens=2 ** 40), _record(13, index=2 ** 65),
               _record(14, violations=["x:y"]), _record(15, layers={"trajectory": TrajectoryRecord(steps=1)}),
               _record(16, layers={"trajectory": TrajectoryRecord(steps=1)}),
               _record(17, layers={"trajectory": TrajectoryRecord(side_effects=[1])})]  # (unhashable)
    _same(RecordStore(records), records)


def test_a_store_shares_equal_values_between_trials():
    records = [_record(i, faults=("t0:timeout",) if i % 2 else (), output=str(i % 3),
                       layers={"trajectory": TrajectoryRecord(steps=5 + i % 2)}) for i in range(2000)]
    store = RecordStore(records)
    _same(store, records)
    assert store[0].layers is store[2].layers and store[1].faults is store[3].faults
    assert store.memory_bytes() < 100 * len(records)  # the columns: tens of bytes per trial


def test_numbers_wider_than_the_column_widen_it_and_keep_every_earlier_row():
    records = [_record(i, input_tokens=i) for i in range(300)]  # past a byte, then past 16 bits
    records += [_record(300, input_tokens=2 ** 20), _record(301, input_tokens=2 ** 40),
                _record(302, input_tokens=2 ** 80), _record(303)]
    _same(RecordStore(records), records)
    many = [_record(i, output=f"out {i}") for i in range(70_000)]  # codes past 16 bits
    store = RecordStore(many)
    assert store[69_999].output == "out 69999" and store[300] == many[300]


def test_a_frozen_store_is_never_changed_and_truncation_keeps_the_first_rows():
    records = [_record(i, trace=(TraceEvent(0, 0.0, "agent"),) if i == 3 else ()) for i in range(5)]
    store = RecordStore(records)
    store.truncate(2)
    assert store == records[:2] and store.column("trace") == [(), ()]
    store.append(records[2])
    assert store == records[:3]
    frozen = RecordStore.of(store)
    assert frozen is store and frozen.frozen
    with pytest.raises(TypeError, match="frozen"):
        frozen.append(records[3])
    assert RecordStore.of(records).frozen


_text = st.text(max_size=5)
_number = st.one_of(st.integers(-(2 ** 70), 2 ** 70), st.floats(allow_nan=False), st.booleans())


@settings(max_examples=60, deadline=None)  # (a few dozen records of every kind: the column types and their mixes)
@given(st.lists(st.builds(
    _record, st.integers(0, 2 ** 66), outcome=st.sampled_from(["completed", "failed", "error"]), reason=_text,
    input_tokens=_number, cost_usd=_number, tool_failures=st.integers(-(2 ** 40), 2 ** 40),
    escalated_at_s=st.one_of(st.none(), st.floats(allow_nan=False)), unrecovered_fault_s=st.none() | _number,
    faults=st.lists(_text, max_size=3).map(tuple), output=_text,
    layers=st.dictionaries(st.sampled_from(["user", "u2"]), st.builds(UserRecord, _number), max_size=2)),
    max_size=30))
def test_any_records_read_back_as_they_were_stored(records):
    _same(RecordStore(records), records)


def test_a_campaign_keeps_its_records_in_a_store_equal_to_the_records_it_made():
    scenario = Scenario(name="store", agent=two_lookups, tools=[lookup], faults=Faults(rate=0.3), trials=80, seed=3,
                        early_stop=False, check=lambda world, out: out == 2, keep_traces=10)
    result = run_campaign(scenario)
    assert isinstance(result.records, RecordStore) and result.records.frozen
    assert result.records == RecordStore(list(result.records)) and result.n == 80
    assert [r.index for r in result.records] == list(range(80))
    assert result.outcome_counts == {"completed": sum(r.ok for r in result.records),
                                     "failed": sum(not r.ok for r in result.records)}
    assert result.worst_trials(100) == sorted((r for r in result.records if not r.ok), key=lambda r: r.index)
    assert dataclasses.replace(result).records is result.records  # a result's store is never copied


def test_grouped_gives_each_traced_or_odd_record_alone_and_one_record_per_group_of_the_rest():
    trace = (TraceEvent(0, 0.0, "tool_call", "t0", "ok"),)
    skeleton = (("tool_call", "t0", "ok", False),)
    records = [_record(0, skeleton=skeleton), _record(1, trace=trace), _record(2, skeleton=skeleton),
               _record(3, outcome="failed", skeleton=skeleton), _record(4, skeleton=skeleton, reason="other"),
               _record(5, skeleton=skeleton, tool_calls=True),  # (a bool count: kept whole, on its own)
               _record(6, outcome="failed", skeleton=skeleton), _record(7)]
    store = RecordStore(records)
    grouped = [(r.index, times) for r, times in store.grouped("outcome", "layers", "skeleton")]
    # 0, 2 and 4 alike (the reason is not asked for); 3 and 6; 1 traced and 5 odd alone; 7 has no skeleton
    assert grouped == [(0, 3), (1, 1), (3, 2), (5, 1), (7, 1)]
    assert [(r.index, n) for r, n in store.grouped("outcome")] == [(0, 4), (1, 1), (3, 2), (5, 1)]
    with pytest.raises(KeyError, match="'tool_calls' is not a coded field"):
        list(store.grouped("outcome", "tool_calls"))


def _trials_as_made(scenario: Scenario, n: int) -> list[TrialRecord]:
    """The records of a campaign's first ``n`` trials as the trials make them (before any store)."""
    layers = CampaignLayers(scenario, resolve_run(scenario, (RunSource("arguments"),)))
    try:
        return [Trial(layers, i, scenario.seed).run_sync() for i in range(n)]
    finally:
        layers.close()


def test_trials_of_a_campaign_share_their_equal_layer_records_and_layer_maps():
    """The built-in layers keep equal records once per campaign, and a trial's ``layers`` map is an earlier
    trial's map when it holds the very same records: equal means the same object, unequal never does. A
    layer of the user's that makes a new record every trial still gets a map of exactly its records."""
    scenario = Scenario(name="shared", agent=two_lookups, task="t", tools=[lookup], faults=Faults(rate=0.4),
                        budget=Budget(per_task_tokens=10_000), layers=[StepsLayer()], trials=60, seed=3,
                        check=lambda world, out: out == 2)
    records = _trials_as_made(scenario, 60)
    for name in ("trajectory", "budget"):
        made = [r.layers[name] for r in records]
        assert all((a == b) == (a is b) for a in made for b in made), name
    assert len({id(r.layers["trajectory"]) for r in records}) >= 2  # (failed calls make trajectories differ)
    maps = [r.layers for r in records]
    assert all(m == {name: m[name] for name in ("trajectory", "budget", "toy_steps")} for m in maps)
    # the toy layer's records are new objects each trial: no two maps are the same object
    assert len({id(m) for m in maps}) == len(maps)
    plain = Scenario(name="plain", agent=two_lookups, task="t", tools=[lookup], faults=Faults(rate=0.4),
                     budget=Budget(per_task_tokens=10_000), trials=60, seed=3, check=lambda world, out: out == 2)
    maps = [r.layers for r in _trials_as_made(plain, 60)]
    assert all((a == b) == (a is b) for a in maps for b in maps)
    assert [r.layers for r in run_campaign(plain).records] == maps


def test_shared_keeps_the_first_value_per_key_up_to_its_limit():
    shared = Shared(limit=2)
    first, equal = ("a",), tuple("a")
    assert shared.add("k", first) is first and shared.add("k", equal) is first  # the value kept wins
    assert shared.get("k") is first
    assert shared.add("j", 2) == 2 and len(shared) == 2
    assert shared.add("over", 3) == 3 and shared.get("over") is None and len(shared) == 2

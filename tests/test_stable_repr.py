"""Sets, addresses and the texts a record keeps (an outside replay review): a set inside a dataclass argument
keyed the fault draws by its hash order, so the printed replay command of a failing trial completed; a set
inside a tool's result, and an object's address inside a text output, made two runs' reports differ."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from collections import namedtuple
from typing import Generic, NamedTuple, TypeVar

import pydantic
from hypothesis import given
from hypothesis import strategies as st

from pytest_agentops.stable_repr import stable_repr

PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=4) | st.lists(inner, max_size=4).map(tuple)
    | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=4),
    max_leaves=20)


@given(PLAIN | st.lists(st.text(alphabet="x at0Xdef", min_size=5), max_size=3))  # (" at 0x" text, as it is)
def test_a_value_without_sets_or_objects_is_exactly_its_repr(value):
    assert stable_repr(value) == repr(value)


@given(st.sets(st.text(max_size=6) | st.integers(), max_size=8))
def test_a_set_lists_its_members_in_the_order_of_their_texts(members):
    expected = "{" + ", ".join(sorted(map(repr, members))) + "}" if members else "set()"
    assert stable_repr(members) == expected
    assert stable_repr(frozenset(members)) == (f"frozenset({expected})" if members else "frozenset()")


@dataclasses.dataclass(frozen=True)
class Filter:
    statuses: frozenset
    limit: int = 10
    hidden: str = dataclasses.field(default="x", repr=False)


@dataclasses.dataclass
class OwnRepr:
    tags: set

    def __repr__(self) -> str:
        return "OwnRepr(...)"


class Pair(NamedTuple):
    left: object
    right: object


class Model(pydantic.BaseModel):
    tags: set[str]
    n: int = 1


class OwnModel(pydantic.BaseModel):
    tags: set[str]

    def __repr__(self) -> str:
        return "OwnModel(...)"


class Text(str):
    pass


class Handle(str):
    def __repr__(self) -> str:
        return f"<Handle {str(self)!r} at {hex(id(self))}>"


T = TypeVar("T")


class Node(pydantic.BaseModel, Generic[T]):
    v: T
    child: object = None


class Looping(pydantic.BaseModel):
    other: object = None


class AnswersAll(dict):
    def __getattr__(self, name: str) -> None:
        return None


def test_dataclasses_named_tuples_and_pydantic_models_show_their_sets_in_order_and_keep_their_own_reprs():
    looped: list[object] = []
    looped.append(looped)
    assert stable_repr(Filter(frozenset({"paid", "shipped", "pending"}))) == (
        "Filter(statuses=frozenset({'paid', 'pending', 'shipped'}), limit=10)")
    assert stable_repr(Pair({"b", "a"}, namedtuple("P", "x")(x={"z", "y"}))) == (
        "Pair(left={'a', 'b'}, right=P(x={'y', 'z'}))")
    assert stable_repr(Model(tags={"vip", "eu", "new"})) == "Model(tags={'eu', 'new', 'vip'}, n=1)"
    assert stable_repr(OwnRepr({"a"})) == "OwnRepr(...)"  # (a repr of its own is the object's say)
    assert stable_repr(OwnModel(tags={"a"})) == "OwnModel(...)"
    assert stable_repr([looped, {"k": {"b", "a"}}]) == "[[[...]], {'k': {'a', 'b'}}]"
    assert stable_repr(object()) == "<object object>"


def test_classes_objects_answering_every_attribute_and_values_holding_themselves_are_shown_as_repr_shows_them():
    """A pydantic model *class* (``output_type=Order``) made every trial an error: its ``__repr_args__`` was
    called unbound; so did an object whose ``__getattr__`` answers every name (munch, addict)."""
    in_tuple: tuple[list[object]] = ([],)
    in_tuple[0].append(in_tuple)
    inner: list[object] = []
    named = Pair(inner, 1)
    inner.append(named)
    deep: list[object] = []
    level = deep
    for _ in range(700):  # (deeper than this walk goes: ``repr`` itself)
        level.append([])
        level = level[0]
    for value in (Model, [Model, Filter], AnswersAll(a=1), in_tuple, named, deep, [Text("kept at 0xbeef")]):
        assert stable_repr(value) == repr(value)
    looping = Looping()
    looping.other = looping
    assert stable_repr(looping) == "Looping(other='<Recursion on Looping>')"  # (pydantic shows an id: left out)
    generic = Node[int](v=1)
    generic.child = generic
    assert stable_repr(generic) == "Node[int](v=1, child='<Recursion on Node[int]>')"
    assert stable_repr([Handle("x")]) == "[<Handle 'x'>]"  # (a str subclass's own repr: addresses left out)


def test_the_standard_librarys_containers_show_their_sets_in_order_and_are_otherwise_their_repr():
    import collections
    import types

    values = [collections.defaultdict(set, {"a": {1}, "b": set()}), collections.defaultdict(list),
              collections.OrderedDict(), collections.OrderedDict(a=1, b=[1, 2]), collections.Counter("abracadabra"),
              collections.Counter(), collections.Counter({"x": 1.5, "y": "z"}), collections.deque([1, (2,)]),
              collections.deque([1], maxlen=3), types.SimpleNamespace(a=1, b="x"), types.MappingProxyType({"a": 1})]
    for value in values:
        assert stable_repr(value) == repr(value)
    tags = {"vip", "eu", "new", "b2b", "late"}
    shown = stable_repr([collections.defaultdict(set, {"k": tags}), collections.OrderedDict(k=tags),
                         collections.deque([tags]), types.SimpleNamespace(flags=tags)])
    assert shown.count("{'b2b', 'eu', 'late', 'new', 'vip'}") == 4, shown
    looping = collections.deque()
    looping.append(looping)
    assert stable_repr(looping) == repr(looping) == "deque([[...]])"


CAMPAIGN = textwrap.dedent("""
    import collections, dataclasses, sys, types
    from pytest_agentops import Scenario, run_campaign, tool
    from pytest_agentops.report.json_report import write_report

    @dataclasses.dataclass(frozen=True)
    class Filter:
        statuses: frozenset

    class Receipt:
        pass

    @tool
    def search(flt: Filter) -> dict:
        "Orders by status."
        return {"id": 42, "tags": {"vip", "eu", "new", "gift", "late"},
                "by": collections.defaultdict(set, {"k": {"vip", "eu", "new", "b2b"}}),
                "meta": types.SimpleNamespace(flags={"vip", "eu", "new", "b2b"})}

    def agent(task, env):
        found = []
        for _ in range(3):
            try:
                found.append(env.tools["search"](Filter(frozenset({"paid", "shipped", "refunded", "pending"}))))
                break
            except Exception as exc:
                found.append(type(exc).__name__)
        return f"{len(found)} tries, receipt {Receipt()}"

    result = run_campaign(Scenario(name="sets", agent=agent, tools=[search], check=lambda w, o: "1 tries" in o,
                                   faults="high", trials=30, seed=7, early_stop=False, keep_traces=None))
    write_report(sys.argv[1], [result])
""")


def test_two_processes_with_different_string_hashing_write_the_same_report(tmp_path):
    """PYTHONHASHSEED differs from process to process unless set: the report of the same seed must not."""
    script = tmp_path / "campaign.py"
    script.write_text(CAMPAIGN)
    reports = []
    for hash_seed in ("1", "2", "3"):
        out = tmp_path / f"r{hash_seed}.json"
        subprocess.run([sys.executable, str(script), str(out)], check=True, timeout=120,
                       env={**os.environ, "PYTHONHASHSEED": hash_seed})
        reports.append(out.read_bytes())
    assert reports[0] == reports[1] == reports[2]
    text = reports[0].decode()
    assert "'tags': {'eu', 'gift', 'late', 'new', 'vip'}" in text and "receipt <__main__.Receipt object>" in text
    # (a review: the standard library's containers showed their sets in hash order: a report differed run to run)
    assert "defaultdict(<class 'set'>, {'k': {'b2b', 'eu', 'new', 'vip'}})" in text
    assert "namespace(flags={'b2b', 'eu', 'new', 'vip'})" in text
    assert '"search:' in text  # (faults were drawn: the keys the set decides were used)



def test_a_model_class_as_a_tools_argument_and_result_is_an_ordinary_trial():
    from pytest_agentops import Faults, Scenario, run_campaign, tool

    @tool
    def parse(schema: type) -> type:
        "Parse into a schema."
        return schema

    def agent(task, env):
        return env.tools["parse"](schema=Model)

    result = run_campaign(Scenario(name="schema", agent=agent, tools=[parse], trials=3, seed=1, faults=Faults.none(),
                                   early_stop=False))
    assert [r.outcome for r in result.records] == ["completed"] * 3

"""``slot_maker``: the engine's constructor of frozen records gives the very record the dataclass would."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from pytest_agentops._frozen import EMPTY, FrozenMap, slot_maker
from pytest_agentops.records import TrialRecord, make_trial_record
from pytest_agentops.settings.trajectory import TrajectoryRecord, make_trajectory_record

FIELDS = dict(scenario="refund", index=7, seed=123456789, outcome="failed", reason="check returned False",
              input_tokens=120, output_tokens=12, cost_usd=0.25, tool_calls=5, tool_failures=1,
              destructive_attempts=1, unconfirmed_destructive=0, blocked_calls=2, escalated_at_s=None,
              unrecovered_fault_s=1.5, duration_s=3.25, faults=("t1:error",), violations=("scope:t2",), output="4",
              default_priced=("gpt-x",),
              layers=FrozenMap({"trajectory": TrajectoryRecord(steps=5, rule_calls=FrozenMap({"r": 1}))}),
              trace=(), skeleton=(("tool_call", "t1", "error", False),))


def test_a_made_record_is_the_record_the_dataclass_makes():
    made, built = make_trial_record(**FIELDS), TrialRecord(**FIELDS)
    assert made == built and hash(made) == hash(built) and repr(made) == repr(built)
    assert type(made) is TrialRecord and pickle.loads(pickle.dumps(made)) == built
    assert dataclasses.asdict(made) == dataclasses.asdict(built)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.outcome = "completed"  # type: ignore[misc]


def test_a_made_trajectory_record_is_the_dataclasss():
    fields = dict(steps=6, model_steps=1, redundant_calls=1, loops=0, rule_calls=FrozenMap({"r": 2}),
                  rule_violations=EMPTY, side_effects=1, duplicate_side_effects=0)
    made = make_trajectory_record(**fields)
    assert made == TrajectoryRecord(**fields) and made.to_dict() == TrajectoryRecord(**fields).to_dict()


def test_every_field_must_be_given():
    fields = dict(FIELDS)
    del fields["seed"]
    with pytest.raises(TypeError, match="seed"):
        make_trial_record(**fields)


def test_only_a_slotted_dataclass_can_have_a_maker():
    @dataclasses.dataclass(frozen=True)
    class Plain:
        x: int = 0

    with pytest.raises(TypeError, match="slots=True"):
        slot_maker(Plain)


def test_any_field_name_works_but_the_makers_own():
    @dataclasses.dataclass(frozen=True, slots=True)
    class Odd:
        made: int
        _new: int
        _cls: str
        make: int

    odd = slot_maker(Odd)(made=1, _new=2, _cls="c", make=3)
    assert odd == Odd(1, 2, "c", 3)

    @dataclasses.dataclass(frozen=True, slots=True)
    class Clash:
        _slot_maker_made: int

    with pytest.raises(TypeError, match="_slot_maker_"):
        slot_maker(Clash)

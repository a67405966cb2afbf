"""The fast paths of ``seeding`` give exactly the numbers of the reference computations they replace, so every
seed keeps its trials: ``trial_seed`` against numpy's ``SeedSequence`` itself, ``Draws`` against ``uniforms``."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_agentops.plan import FaultPlan
from pytest_agentops.seeding import UNIT, Draws, canonical, text_key, trial_seed, uniforms

# Seeds past 2**128 take more than the 4-word pool; trial indices past 2**32 take two spawn-key words.
SEEDS = st.integers(min_value=0, max_value=2**200)
INDICES = st.integers(min_value=0, max_value=2**40)
KEYS = st.lists(st.integers(min_value=-(2**70), max_value=2**70), max_size=9)  # negative and wide: masked


def _numpy_trial_seed(campaign_seed: int, index: int) -> int:
    words = np.random.SeedSequence(campaign_seed, spawn_key=(index,)).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


@settings(max_examples=300, deadline=None)
@given(SEEDS, INDICES)
def test_trial_seed_is_numpys_seed_sequence(campaign_seed, index):
    assert trial_seed(campaign_seed, index) == _numpy_trial_seed(campaign_seed, index)


@pytest.mark.parametrize(("campaign_seed", "index"), [(0, 0), (1, 0), (0, 1), (2**32 - 1, 2**32 - 1), (2**32, 2**32),
                                                       (2**128, 7), (2**64 + 1, 123_456)])
def test_trial_seed_at_the_word_boundaries(campaign_seed, index):
    assert trial_seed(campaign_seed, index) == _numpy_trial_seed(campaign_seed, index)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=2**64 - 1), st.integers(min_value=0, max_value=6), KEYS,
       st.integers(min_value=1, max_value=8))
def test_draws_are_uniforms(seed, which, keys, n):
    assert Draws(seed, which).uniforms(*keys, n=n) == uniforms(seed, which, *keys, n=n)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=2**64 - 1), st.lists(
    st.tuples(st.sampled_from([1, 2]), st.sampled_from([0, 7, 2**64 - 1]), KEYS, st.integers(min_value=1, max_value=4)),
    min_size=1, max_size=30))
def test_one_draws_object_reused_for_many_draws_gives_uniforms(seed, draws):
    """The kept (kind, tool) prefixes: the same numbers however often and in whatever order a pair recurs."""
    made = Draws(seed, 0)
    for kind, tool, rest, n in draws:
        assert made.uniforms(kind, tool, *rest, n=n) == uniforms(seed, 0, kind, tool, *rest, n=n)
        if len(rest) >= 2:
            assert made.three(kind, tool, *rest[:2]) == uniforms(seed, 0, kind, tool, *rest[:2])


def _reference_uniforms(seed, which, *keys, n=3):
    """The draw as first written: one BLAKE2b of the packed words, made with its parameters each time."""
    words = [seed, which, *keys]
    data = struct.pack(f"<{len(words)}Q", *(w & (2**64 - 1) for w in words))
    digest = hashlib.blake2b(data, digest_size=8 * n, person=b"agentops-plan").digest()
    return tuple((w >> 11) / 2**53 for w in struct.unpack(f"<{n}Q", digest))


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=2**64 - 1), st.integers(min_value=0, max_value=6), KEYS,
       st.integers(min_value=1, max_value=8))
def test_uniforms_are_the_reference_draws(seed, which, keys, n):
    """Same seed, same draws as before the short paths: every pinned trial keeps its faults."""
    assert uniforms(seed, which, *keys, n=n) == _reference_uniforms(seed, which, *keys, n=n)
    if len(keys) == 4:
        assert Draws(seed, which).three(*keys) == _reference_uniforms(seed, which, *keys)
        # the words the tool-fault draw reads (each uniform made from its own word, only when it is needed)
        words = Draws(seed, which).words3(*keys)
        assert tuple((w >> 11) * UNIT for w in words) == _reference_uniforms(seed, which, *keys)


def test_a_negative_campaign_seed_is_refused_as_numpy_refuses_it():
    with pytest.raises(ValueError):
        trial_seed(-1, 0)


PLAIN = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.text(max_size=300),
                  st.floats(allow_nan=False), st.lists(st.integers(), max_size=3))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), PLAIN, max_size=5))
def test_the_remembered_argument_keys_are_the_canonical_texts_keys(arguments):
    """``FaultPlan.key_of`` remembers the keys of plain argument mappings: each is the key of the canonical text,
    asked twice (the second time from the memo), and 1 and True (equal in Python) keep their own keys."""
    expected = text_key(canonical(arguments)) if arguments else 0
    assert FaultPlan.key_of(arguments) == expected
    assert FaultPlan.key_of(dict(arguments)) == expected
    assert FaultPlan.key_of({"x": 1}) != FaultPlan.key_of({"x": True})


def test_a_circular_or_very_deep_value_has_a_canonical_text_not_a_recursion_error():
    """A review: ``canonical`` once walked a value to make its containers exact outside the ``try`` that falls back
    to ``stable_repr``, and a tool called with a circular list ended its trial in ``RecursionError``; keyed either
    way (``canonical``, ``canonical_json``) it has a text."""
    from pytest_agentops.seeding import canonical_json

    loop: list = [1]
    loop.append(loop)
    assert canonical(loop) == canonical_json(loop) == "[1, [...]]"
    deep: list = []
    for _ in range(600):  # (past what the exactness walk reaches, within what ``repr`` does)
        deep = [deep]
    assert canonical(deep).startswith("[[[") and canonical_json(deep).startswith("[[[")
    assert canonical({"a": loop}) == "{'a': [1, [...]]}"


def test_a_tool_called_with_a_circular_argument_runs_as_any_other_call():
    from pytest_agentops import Faults, Scenario, run_campaign, tool

    @tool
    def measure(world, x: list) -> int:
        """Count the items."""
        return len(x)

    def agent(task, env):
        a: list = [1]
        a.append(a)
        return env.tools["measure"](a)

    result = run_campaign(Scenario(name="circular", agent=agent, task="t", tools=[measure], trials=4, seed=3,
                                   faults=Faults(rate=0.5), check=lambda world, out: out == 2))
    assert set(result.outcome_counts) <= {"completed", "error"} and "RecursionError" not in str(
        [r.reason for r in result.records])
    assert result.outcome_counts.get("completed", 0) >= 1

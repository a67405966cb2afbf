"""Hypothesis strategies for fault settings and seeds: property-test an agent, and let hypothesis shrink.

A campaign measures rates; a property says what must hold in every trial (never an unconfirmed delete, never
more than N tool calls). With these strategies hypothesis searches fault settings and trial seeds for a
counterexample and shrinks it toward the simplest one it can find (lower rates, fewer fault kinds, seed 0)::

    from hypothesis import given
    from pytest_agentops import replay_trial, strategies

    @given(faults=strategies.faults(tools=["lookup_order", "delete_order"]), seed=strategies.seeds())
    def test_never_deletes_unconfirmed(faults, seed):
        record = replay_trial(scenario, 0, seed=seed, faults=faults)
        assert record.unconfirmed_destructive == 0

Every value drawn is a valid setting (the strategies build ``Faults``, ``ModelFaults`` and ``ToolFaults``
through their constructors), and a failing example is a trial you can replay from its seed and faults.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from hypothesis import strategies as st

from .errors import hide_own_frames
from .settings.faults import DEFAULT_MIX, FAILING_TOOL_FAULTS, Faults, ToolFaults
from .settings.model import API_FAULT_KINDS, OUTPUT_FAULT_KINDS, ModelFaults

__tracebackhide__ = hide_own_frames

__all__ = ["fault_mixes", "faults", "model_faults", "rates", "seeds", "tool_faults"]


def rates(max_rate: float = 0.3) -> st.SearchStrategy[float]:
    """A share in ``[0, max_rate]`` (shrinks toward 0: no fault)."""
    return st.floats(0.0, max_rate, allow_nan=False, allow_infinity=False)


def seeds() -> st.SearchStrategy[int]:
    """A campaign seed (shrinks toward 0)."""
    return st.integers(0, 2**32 - 1)


def fault_mixes(kinds: Sequence[str] = FAILING_TOOL_FAULTS) -> st.SearchStrategy[dict[str, float]]:
    """A mix of one or more fault kinds with positive weights (shrinks toward one kind, weight 1)."""
    return st.dictionaries(st.sampled_from(tuple(kinds)), st.integers(1, 10).map(float), min_size=1,
                           max_size=len(kinds))


def tool_faults(max_rate: float = 0.5) -> st.SearchStrategy[ToolFaults]:
    """One tool's override: its own rate and mix."""
    return st.builds(ToolFaults, rate=rates(max_rate), mix=fault_mixes())


def model_faults(max_rate: float = 0.3) -> st.SearchStrategy[ModelFaults]:
    """Model-API faults and output perturbations of the fake LLM."""
    return st.builds(ModelFaults, rate=rates(max_rate), mix=fault_mixes(API_FAULT_KINDS),
                     output_rate=rates(max_rate), output_mix=fault_mixes(OUTPUT_FAULT_KINDS))


def faults(*, tools: Sequence[str] = (), max_rate: float = 0.3, latency: bool = True, outages: bool = True,
           crashes: bool = False, model: bool = False) -> st.SearchStrategy[Faults]:
    """``Faults`` with tool-fault rate and mix, and optionally latency, outages (of ``tools``), per-tool
    overrides (of ``tools``), crashes (in-process) and model faults. Shrinks toward ``Faults()``: no fault."""
    names = tuple(tools)
    per_tool = st.dictionaries(st.sampled_from(names), tool_faults(max_rate), max_size=len(names)) if names \
        else st.just({})
    return st.builds(
        Faults,
        rate=rates(max_rate),
        mix=fault_mixes(),
        per_tool=per_tool,
        latency=rates(max_rate) if latency else st.just(0.0),
        outage=rates(max_rate) if outages and names else st.just(0.0),
        outage_tools=st.just(names),
        crash=rates(max_rate) if crashes else st.just(0.0),
        model=model_faults(max_rate) if model else st.none(),
    ).map(_in_use)


def _in_use(drawn: Faults) -> Faults:
    """``drawn`` without the settings its rates leave unused (a mix whose rate is 0, outage tools without an
    outage): the same faults fire, and no ``UnusedSetting`` warning for settings the user never wrote."""
    per_tool = {tool: t if t.rate else ToolFaults(t.rate) for tool, t in drawn.per_tool.items()}
    model = drawn.model if drawn.model is None or drawn.model.active else ModelFaults()
    return replace(drawn, mix=drawn.mix if drawn.rate else DEFAULT_MIX, per_tool=per_tool,
                   outage_tools=drawn.outage_tools if drawn.outage else (), model=model)

"""The token meter takes exact counts and model names as they are, and anything else only as the built-in types
read it: an agent's own ``int`` or ``str`` subclass is counted and kept as the exact value, never asked."""

import pytest

from pytest_agentops.errors import ConfigError
from pytest_agentops.harness.meter import MODEL_NAME_CHARS, MOST_TOKENS, TokenMeter


class Hostile(int):
    def __lt__(self, other):
        raise AssertionError("asked")

    __le__ = __gt__ = __ge__ = __add__ = __radd__ = __index__ = __lt__


class Name(str):
    def __len__(self):
        raise AssertionError("asked")


@pytest.mark.parametrize(("given", "kept"), [
    ((120, 12, "gpt-4o-mini"), (120, 12, "gpt-4o-mini")),
    ((0, MOST_TOKENS, "*"), (0, MOST_TOKENS, "*")),
    ((Hostile(7), Hostile(3), Name("gpt-4o")), (7, 3, "gpt-4o")),
    ((1, 2, "m" * MODEL_NAME_CHARS), (1, 2, "m" * MODEL_NAME_CHARS)),
])
def test_a_usage_is_metered_as_exact_values(given, kept):
    meter = TokenMeter()
    usage = meter.record(*given)
    assert (usage.input_tokens, usage.output_tokens, usage.model) == kept
    assert type(usage.input_tokens) is int and type(usage.output_tokens) is int and type(usage.model) is str
    assert (meter.input_tokens, meter.output_tokens, meter.calls) == (kept[0], kept[1], 1)


@pytest.mark.parametrize(("given", "error"), [
    ((True, 1), "input_tokens must be an int, got bool"),
    ((1, 1.0), "output_tokens must be an int, got float"),
    ((-1, 1), "input_tokens=-1 must be from 0"),
    ((1, MOST_TOKENS + 1), f"output_tokens={MOST_TOKENS + 1} must be from 0"),
    ((1, 1, b"gpt"), "model must be a str, got bytes"),
])
def test_a_usage_that_is_not_counts_and_a_name_is_refused(given, error):
    meter = TokenMeter()
    with pytest.raises(ConfigError, match=error):
        meter.record(*given)
    assert meter.calls == 0


def test_a_model_name_past_the_limit_is_cut():
    usage = TokenMeter().record(1, 1, "m" * (MODEL_NAME_CHARS + 1))
    assert usage.model.endswith(f"... ({MODEL_NAME_CHARS + 1:,} characters)")
    assert len(usage.model) <= MODEL_NAME_CHARS + 30

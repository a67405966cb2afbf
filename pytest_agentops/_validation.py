"""The one copy of the validators every setting uses: shares, seconds, counts, mixes, unknown keys.

Each raises ``ConfigError`` in the form ``name=value must be ...`` (plus the fix), so that a message reads
the same whichever setting it comes from.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from typing import Any

from ._frozen import FrozenMap
from .errors import ConfigError, hide_own_frames

__tracebackhide__ = hide_own_frames

#: The most trials a campaign may plan (``trials``): far beyond what any verdict needs, small enough that a
#: typo (``trials: 1.0e+12``) is a clear error, not an attempt.
MAX_TRIALS = 10_000_000
#: The most trials a campaign may run at once (``concurrency``): a sync agent's trials each run in a worker
#: thread of their own, so this also bounds the threads a campaign starts.
MAX_CONCURRENCY = 1_000


def is_number(value: Any) -> bool:
    """An int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_bool(name: str, value: Any, *, optional: bool = False) -> bool | None:
    """A switch, as a bool: True or False (or 1 or 0, or a numpy bool); a string such as ``"false"`` is refused
    (``bool("false")`` is True); None allowed when ``optional``."""
    if value is None and optional:
        return None
    if isinstance(value, bool):
        return value
    if (isinstance(value, int) and value in (0, 1)) or (type(value).__name__ in ("bool_", "bool") and \
            type(value).__module__ == "numpy"):
        return bool(value)
    raise ConfigError(f"{name}={value!r} must be True or False")


def check_share(name: str, value: Any) -> float:
    """A share (of calls, attempts, trials): a finite number in [0, 1], returned as float."""
    if not is_number(value) or not math.isfinite(value):
        raise ConfigError(f"{name}={value!r} must be a number between 0 and 1")
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name}={value!r} must be between 0 and 1 (a share, e.g. 0.08 for 8%)")
    return float(value)


def check_fraction(name: str, value: Any, *, optional: bool = False) -> float | None:
    """A fraction in (0, 1] (a trigger level); None allowed when ``optional`` (the setting is off)."""
    if value is None and optional:
        return None
    if not is_number(value) or not 0 < value <= 1:
        off = " (or None to switch it off)" if optional else ""
        raise ConfigError(f"{name}={value!r} must be a number > 0 and <= 1{off}")
    return float(value)


def check_seconds(name: str, value: Any) -> float:
    """A duration: a finite number of seconds >= 0, returned as float."""
    if not is_number(value) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name}={value!r} must be a number of seconds >= 0")
    return float(value)


def check_positive_seconds(name: str, value: Any, *, optional: bool = False) -> float | None:
    """A duration > 0 (a limit); None allowed when ``optional`` (no limit)."""
    if value is None and optional:
        return None
    if not is_number(value) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name}={value!r} must be a number of seconds > 0")
    return float(value)


def check_whole(name: str, value: Any, minimum: int = 1, *, what: str = "", optional: bool = False,
                maximum: int | None = None, why: str = "", none_means: str = "to switch it off") -> int | None:
    """A whole number >= ``minimum`` (``what`` says of what: ``"tokens"``, ``"users"``), and <= ``maximum``
    when given (``why``: the reason for the maximum, said in the message)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        of = f" of {what}" if what else ""
        off = f" (or None {none_means})" if optional else ""
        raise ConfigError(f"{name}={value!r} must be a whole number{of} >= {minimum}{off}")
    if maximum is not None and value > maximum:
        shown = f"{value:,}" if value < 10**30 else f"~1e{int(math.log10(value))}"
        raise ConfigError(f"{name}={shown} is too large: at most {maximum:,}{why}")
    return value


def check_trials(value: Any) -> int:
    """``trials``: a whole number in [1, ``MAX_TRIALS``]."""
    check_whole("trials", value, 1, maximum=MAX_TRIALS,
                why=" trials per campaign (a campaign stops as soon as every verdict is decided)")
    return int(value)


#: The most digits a seed has: longer ones add nothing (a trial's seed is 64 bits), and the command line, whose replay
#: commands print the seed, refuses them (past 4,300 digits Python refuses to read them).
MAX_SEED_DIGITS = 100


def check_seed(name: str, value: Any) -> int | None:
    """A campaign seed: a whole number >= 0 of at most ``MAX_SEED_DIGITS`` digits, or None (a fresh one, printed
    with the result)."""
    seed = check_whole(name, value, 0, optional=True, none_means="for a fresh seed, printed with the result")
    if seed is not None and seed >= 10**MAX_SEED_DIGITS:
        raise ConfigError(f"{name}=~1e{int(seed.bit_length() * math.log10(2))} has more than {MAX_SEED_DIGITS} "
                          f"digits: a seed has at most {MAX_SEED_DIGITS} (a trial's seed is 64 bits: more add nothing, "
                          "and the replay command printed for it would be refused)")
    return seed


def check_confidence(name: str, value: Any) -> float:
    """A confidence level in [0.5, 1)."""
    if not is_number(value) or math.isnan(value) or not 0.5 <= value < 1:
        raise ConfigError(f"{name}={value!r} must be a number in [0.5, 1), e.g. 0.95")
    return float(value)


def check_concurrency(value: Any) -> int:
    """``concurrency``: a whole number in [1, ``MAX_CONCURRENCY``]."""
    check_whole("concurrency", value, 1, maximum=MAX_CONCURRENCY,
                why=" trials run at once (a sync agent's trial runs in a thread of its own)")
    return int(value)


def check_non_negative(name: str, value: Any) -> float:
    """A finite number >= 0, returned as float."""
    if not is_number(value) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name}={value!r} must be a number >= 0")
    return float(value)


def check_mix(name: str, mix: Any, kinds: tuple[str, ...], *, noun: str = "kind",
              hint: Mapping[str, str] | None = None) -> FrozenMap[str, float]:
    """A mapping of kind -> weight >= 0 over ``kinds``, with at least one positive weight (``hint``: an
    explanation for a kind that is known elsewhere, e.g. latency in a tool-fault mix)."""
    if not isinstance(mix, Mapping) or not mix:
        raise ConfigError(f"{name}={mix!r} must be a non-empty mapping of {noun} to weight; "
                          f"kinds: {', '.join(kinds)}")
    out: dict[str, float] = {}
    for kind, weight in mix.items():
        if kind not in kinds:
            extra = (hint or {}).get(kind, "")
            raise ConfigError(f"{name} has unknown {noun} {kind!r}{extra}; valid kinds: {', '.join(kinds)}")
        if not is_number(weight) or not weight >= 0 or not math.isfinite(weight):
            raise ConfigError(f"{name}[{kind!r}]={weight!r} must be a weight >= 0")
        out[kind] = float(weight)
    if sum(out.values()) <= 0:
        raise ConfigError(f"{name}={mix!r} must have at least one positive weight")
    return FrozenMap(out)


def reject_unknown_keys(data: Mapping[str, Any], known: Iterable[str], where: str) -> None:
    """Raise ConfigError naming every key of ``data`` not in ``known``: a setting is never silently ignored."""
    known = list(known)
    unknown = sorted(str(k) for k in set(data) - set(known))
    if unknown:
        raise ConfigError(f"{where} has unknown key(s) {unknown}; valid keys: {', '.join(known)}")


def did_you_mean(name: Any, options: Iterable[Any]) -> str:
    """`` (did you mean 'x'?)`` for the closest option, or an empty string."""
    close = difflib.get_close_matches(str(name), [str(o) for o in options], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""

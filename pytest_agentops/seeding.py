"""Seeds: campaign seed -> trial seed -> the trial's named random streams.

One ``numpy.random.SeedSequence`` per campaign; trial ``i`` gets the child with spawn key ``(i,)`` (what
``SeedSequence.spawn`` would give), reduced to one 63-bit integer: the trial seed (its words are computed
here, numpy's algorithm with the campaign's part done once: a few microseconds a trial). Trial ``i`` is
therefore the same whatever the trial count or concurrency, and ``replay=i`` re-runs exactly it.

Inside a trial, every random draw comes from a named stream keyed by what it is for: the tool and the
canonical form of its arguments, with how many times that same call occurred before; the model request's
body; the host. Never by the order in which the agent's threads or coroutines happen to reach the harness,
so parallel tool calls get the same faults at any concurrency. Single draws (``uniforms``) are counter-based:
BLAKE2b of (seed, stream, keys) as a keyed pseudo-random function, about 2-4 microseconds each (``Draws``
hashes a trial's (seed, stream) prefix once for the many draws of one stream). Streams that
need a generator's distributions (``env.rng``, the budget's user-day) get a numpy Generator (``stream``).
"""

from __future__ import annotations

import enum
import functools
import hashlib
import json
import struct
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import TYPE_CHECKING, Any

from .entropy import fresh_seed  # noqa: F401  (re-exported: ``seeding.fresh_seed`` as before)
from .errors import hide_own_frames
from .stable_repr import exact_containers, stable_repr

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    import numpy as np

_MASK = (1 << 64) - 1
UNIT = 1.0 / (1 << 53)  #: a draw's 64-bit word ``w`` as a uniform in [0, 1): ``(w >> 11) * UNIT``


class Stream(enum.IntEnum):
    """The independent random streams of one trial (the numbers are part of every trial's identity)."""

    TOOLS = 0  # the outage draw (0), tool-call faults (1, tool, arguments, occurrence), prompt injections (2, ...)
    AGENT = 1  # env.rng, the agent's own randomness
    APPROVER = 2  # the simulated human's answers and latencies, one pair per confirmation asked
    MODEL = 3  # model-API faults (0, attempt), output perturbations (1, call), HTTP faults (2, host, request)
    DRIFT = 4  # context drift, per model call
    CRASH = 5  # whether and where the agent crashes
    BUDGET = 6  # the trial's user and that user's earlier spend today
    TASK = 7  # the task a group of trials draws from a task list (keyed by the campaign seed and the group)


_BASES: dict[int, Any] = {}  # n -> the empty keyed hasher of n-word draws, copied for each draw


def _base(n: int) -> Any:
    base = _BASES.get(n)
    if base is None:
        base = _BASES[n] = hashlib.blake2b(digest_size=8 * n, person=b"agentops-plan")
    return base


_WORDS = [struct.Struct(f"<{k}Q") for k in range(11)]


def _words(k: int) -> struct.Struct:
    return _WORDS[k] if k < len(_WORDS) else struct.Struct(f"<{k}Q")


def uniforms(seed: int, which: Stream | int, *keys: int, n: int = 3) -> tuple[float, ...]:
    """``n`` independent uniforms in [0, 1) for (seed, stream, keys): the same for the same keys, anywhere."""
    h = _base(n).copy()  # (a copy of the empty hasher: cheaper than making one with its parameters)
    words = _words(2 + len(keys))
    try:  # (each number as a 64-bit word: packed as it is when it fits, the common case, else modulo 2**64)
        packed = words.pack(seed, which, *keys)
    except struct.error:
        packed = words.pack(seed & _MASK, int(which) & _MASK, *[k & _MASK for k in keys])
    h.update(packed)
    return tuple((w >> 11) * UNIT for w in _words(n).unpack(h.digest()))


_BASE3 = _base(3)
_SIX = _WORDS[6]
_UNPACK3 = _WORDS[3].unpack


class Draws:
    """``uniforms(seed, which, ...)`` for one (seed, stream), with a short path for the draw of every tool call
    (``three``). The same numbers as ``uniforms``."""

    __slots__ = ("_seed", "_which")

    def __init__(self, seed: int, which: Stream | int):
        self._seed = seed & _MASK
        self._which = int(which) & _MASK

    def uniforms(self, *keys: int, n: int = 3) -> tuple[float, ...]:
        """``uniforms(seed, which, *keys, n=n)``."""
        return uniforms(self._seed, self._which, *keys, n=n)

    def words3(self, kind: int, name: int, key: int, occurrence: int) -> tuple[int, int, int]:
        """The three 64-bit words behind ``three`` (each uniform is ``(word >> 11) * UNIT``), for a caller that
        needs only some of them."""
        h = _BASE3.copy()
        try:  # (as in ``uniforms``: each number packed as it is when it fits in 64 bits, else modulo 2**64)
            packed = _SIX.pack(self._seed, self._which, kind, name, key, occurrence)
        except struct.error:
            packed = _SIX.pack(self._seed, self._which, kind & _MASK, name & _MASK, key & _MASK, occurrence & _MASK)
        h.update(packed)
        return _UNPACK3(h.digest())

    def three(self, kind: int, name: int, key: int, occurrence: int) -> tuple[float, float, float]:
        """``uniforms(kind, name, key, occurrence)`` (n=3) without the general path's packing."""
        a, b, c = self.words3(kind, name, key, occurrence)
        return (a >> 11) * UNIT, (b >> 11) * UNIT, (c >> 11) * UNIT


_NAME_KEYS: dict[str, int] = {}  # the keys of short texts (tool names, hosts) that recur in every trial


def name_key(name: str) -> int:
    """``text_key(name)``, remembered: for the few short names (tools, hosts, actions) every trial keys by."""
    key = _NAME_KEYS.get(name)
    if key is None:
        key = text_key(name)
        if len(name) <= 256 and len(_NAME_KEYS) < 65536:
            _NAME_KEYS[name] = key
    return key


def text_key(text: str | bytes) -> int:
    """A stable 64-bit key for a text (a tool name, a host, a request body): the same in every process."""
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def _encoded(value: Any) -> Any:
    """What the canonical encoder writes for a value JSON cannot hold: a set as the list of its members in the
    order of their canonical texts (its own order follows string hashing, which differs from process to process
    unless ``PYTHONHASHSEED`` is set); anything else as its ``stable_repr`` (no object addresses, and the sets
    inside a dataclass, a named tuple or a pydantic model in order too)."""
    if type(value) is set or type(value) is frozenset:  # (``canonical`` made every set of a subclass an exact one)
        return sorted(value, key=canonical)
    return stable_repr(value)


# One encoder for every call: ``json.dumps`` with options builds a new encoder, and ``JSONEncoder.encode`` a
# new C encoder, each time. The C encoder is made without a circular-reference table (which concurrent
# calls would share): a circular value ends in a RecursionError, caught below like the ValueError it gave.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=_encoded, ensure_ascii=False)
_C_ENCODER = None if c_make_encoder is None else c_make_encoder(
    None, _encoded, encode_basestring, None, ":", ",", True, False, True)


def canonical(value: Any) -> str:
    """A canonical text of a call's arguments (sorted keys, stable reprs for what JSON cannot hold)."""
    try:
        value = exact_containers(value)
    except (TypeError, ValueError, RecursionError):  # (a circular value, one nested past the stack: as below)
        return stable_repr(value)
    return canonical_json(value)


def canonical_json(value: Any) -> str:
    """``canonical`` of a value whose containers are exact already (``json.loads``'s, and dicts and lists built of
    them): the same text, without first walking the whole value to make them exact (there is nothing to make:
    ``exact_containers`` gives such a value back as it is). A model request's body is keyed so at every call.
    (Past ~450 levels of nesting, where that walk ran out of stack and ``canonical`` gave the ``stable_repr``
    text, a depth that depended on the caller's own stack, this gives the JSON text the encoder reaches.)"""
    try:
        if _C_ENCODER is not None:
            return "".join(_C_ENCODER(value, 0))
        return _CANONICAL.encode(value)
    except (TypeError, ValueError, RecursionError):  # keys of mixed types, circular values
        return stable_repr(value)


def trial_seed(campaign_seed: int, index: int) -> int:
    """The seed of trial ``index`` of the campaign seeded ``campaign_seed``: from the first two words of
    ``numpy.random.SeedSequence(campaign_seed, spawn_key=(index,)).generate_state(2, numpy.uint32)``, worked
    out here (``_spawned_words``) with the campaign's part of the mixing done once per campaign."""
    words = _spawned_words(_campaign_pool(campaign_seed), index)
    return (words[0] << 31) ^ words[1]


# numpy's SeedSequence (numpy/random/bit_generator.pyx), for a pool of 4 words: its constants and mixing
_M32 = 0xFFFFFFFF
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = 0xCA01F9DD, 0x4973F715
_POOL = 4
_OUT_1, _OUT_2 = (_INIT_B * _MULT_B) & _M32, (_INIT_B * _MULT_B * _MULT_B) & _M32  # the output hash's constants


def _uint32_words(value: int) -> list[int]:
    """An entropy integer as numpy coerces it: its 32-bit words, least significant first (0: one word)."""
    if value < 0:
        raise ValueError(f"seed={value!r} must be a non-negative integer")
    words = []
    while True:
        words.append(value & _M32)
        value >>= 32
        if not value:
            return words


def _mix(x: int, y: int) -> int:
    r = (_MIX_L * x - _MIX_R * y) & _M32
    return r ^ (r >> 16)


@functools.lru_cache(maxsize=64)
def _campaign_pool(campaign_seed: int) -> tuple[tuple[int, ...], int]:
    """The pool after mixing in the campaign seed (padded to the pool size, as numpy does when a spawn key
    follows), and the hash constant the spawn key's words continue with."""
    entropy = _uint32_words(campaign_seed)
    entropy += [0] * (_POOL - len(entropy))
    const = _INIT_A

    def hashmix(value: int) -> int:
        nonlocal const
        value = (value ^ const) & _M32
        const = (const * _MULT_A) & _M32
        value = (value * const) & _M32
        return value ^ (value >> 16)

    pool = [hashmix(entropy[i]) for i in range(_POOL)]
    for src in range(_POOL):
        for dst in range(_POOL):
            if src != dst:
                pool[dst] = _mix(pool[dst], hashmix(pool[src]))
    for word in entropy[_POOL:]:
        for dst in range(_POOL):
            pool[dst] = _mix(pool[dst], hashmix(word))
    return tuple(pool), const


def _spawned_words(campaign: tuple[tuple[int, ...], int], index: int) -> tuple[int, int]:
    """The first two state words of the campaign's SeedSequence with spawn key ``(index,)``."""
    pool_words, const = campaign
    if 0 <= index <= _M32:  # one spawn-key word (every campaign below 2**32 trials): the loops below, unrolled
        p0, p1, _p2, _p3 = pool_words
        c = (const * _MULT_A) & _M32
        v = ((index ^ const) * c) & _M32
        r = (_MIX_L * p0 - _MIX_R * (v ^ (v >> 16))) & _M32
        p0 = r ^ (r >> 16)
        v = ((index ^ c) * ((c * _MULT_A) & _M32)) & _M32
        r = (_MIX_L * p1 - _MIX_R * (v ^ (v >> 16))) & _M32
        p1 = r ^ (r >> 16)
        v = ((p0 ^ _INIT_B) * _OUT_1) & _M32
        w = ((p1 ^ _OUT_1) * _OUT_2) & _M32
        return v ^ (v >> 16), w ^ (w >> 16)
    pool = list(pool_words)
    for word in _uint32_words(index):
        for dst in range(_POOL):
            value = (word ^ const) & _M32
            const = (const * _MULT_A) & _M32
            value = (value * const) & _M32
            pool[dst] = _mix(pool[dst], value ^ (value >> 16))
    out = []
    const = _INIT_B
    for i in range(2):
        value = (pool[i] ^ const) & _M32
        const = (const * _MULT_B) & _M32
        value = (value * const) & _M32
        out.append(value ^ (value >> 16))
    return out[0], out[1]


def stream(seed: int, which: Stream | int, *keys: int) -> np.random.Generator:
    """An independent numpy Generator for one purpose (``which``, with ``keys``) inside the trial ``seed``."""
    import numpy as np

    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(int(which), *keys))))



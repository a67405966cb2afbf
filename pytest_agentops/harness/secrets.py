"""Secrets never reach a report: what is redacted, and the process-wide redaction of the agent's output.

Redacted (replaced by ``[redacted]``) wherever text is written down (trace events, a trial's reason and
output, the JSON report, and what the agent prints or logs while a campaign runs):

- known secret shapes: API keys ``sk-...`` (eight or more characters after ``sk-``, so the fake model's
  ``sk-agentops-fake-...`` too) and ``Bearer ...`` authorization values;
- the values of environment variables whose names look like they hold a secret: a part of the name (split
  at ``_``, ``-`` and ``.``, case-insensitively) is ``KEY``, ``APIKEY``, ``TOKEN``, ``SECRET``,
  ``PASSWORD``, ``PASSWD``, ``PASS``, ``PASSPHRASE``, ``CREDENTIAL`` or ``CREDENTIALS`` (or the plural of
  ``KEY``, ``APIKEY``, ``SECRET``, ``PASSWORD``: ``OPENAI_API_KEYS``; not ``TOKENS``, a count in ``MAX_TOKENS``),
  or ends with ``APIKEY``, ``TOKEN``, ``SECRET`` or ``PASSWORD`` (or their plurals but ``TOKENS``)
  (``OPENAI_API_KEY``, ``GITHUB_TOKEN``, ``DB_PASSWORD``, ``AWS_SECRET_ACCESS_KEY``, ``GHTOKEN``), with a value
  of at least 8 characters. They are read from the
  environment when a campaign starts and ends (``refresh``) and when a report is written (the package's own
  error messages read it as each is made: ``errors.shown``, by the rule in ``secret_rules``), and a value read once
  stays redacted in the process (a secret a test sets for its campaign alone is redacted in the report too; the
  last 64 values no longer in the environment are kept: a value that is also ordinary text, ``password``, is then
  redacted from later campaigns' text too);
- in mappings (trace event data), the value of a key that names a secret (``api_key``, ``authorization``,
  ``password``, ``secret``, a key ending in ``token``, ``bearer``).

``secrets_layer.SecretsLayer`` is the built-in layer that does the per-campaign part: it reads the
environment's secrets and holds ``redacted_output`` (``sys.stdout``/``sys.stderr`` redacting what is written
to them, log records' messages redacted) for the length of the campaign, so what an agent prints or logs
reaches pytest's captured output, the terminal and JUnit XML redacted. The plugin redacts the warnings pytest
recorded before it shows them (``redact_warning``).
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

# (what a secret is replaced by, and the secret shapes, live in ``errors``, below this: a message is redacted there)
from ..errors import REDACTED, SECRET_SHAPE, hide_own_frames, redact_shapes, show_failures_through
from ..process.kept_state import forget_stream, own_stream
from ..process.patch import ProcessPatch

# (the rule by names lives below this, so that a message made before any campaign is redacted by it: ``errors``)
from ..secret_rules import MIN_SECRET_LENGTH, environment_secrets, name_as_secret, written_forms
from ..secret_rules import is_secret_name as is_secret_name
from ..secret_rules import secret_names as secret_names  # (a trial's child process is given them)
from ..stable_repr import exact_containers, exact_str

__tracebackhide__ = hide_own_frames

#: Mapping keys whose value is a secret (trace event data, headers).
SECRET_KEY = re.compile(r"(api[_-]?key|authorization|secret|password|token$|bearer)", re.IGNORECASE)

_env_pattern: re.Pattern[str] | None = None  # the environment's secret values, longest first
_env_longest = 0
_env_numbers: frozenset[int] = frozenset()  # the environment's secret values that are whole numbers (a PIN)
_env_floats: frozenset[float] = frozenset()  # the same as the floats nearest them


def treat_as_secret(name: str) -> None:
    """Redact the value of environment variable ``name`` from now on, in this process, whatever its name looks
    like (``Live(key_env=...)``: the key a campaign sends is a secret by what it is, not by its name)."""
    if name_as_secret(name):
        refresh()


#: The secret values ``refresh`` read before that are no longer in the environment, the latest last: a value
#: stays redacted once read (a test's ``monkeypatch.setenv`` secret, read when its campaign started, is gone by
#: the time the report is written), the last ``REMEMBERED`` of them (a run whose every test sets another key
#: would make each redaction slower).
_read_before: dict[str, None] = {}
REMEMBERED = 64
_forms: dict[str, frozenset[str]] = {}  # value -> its written forms (worked out once)
_compiled: tuple[frozenset[str], re.Pattern[str] | None, int] | None = None


def refresh(environ: Mapping[str, str] | None = None) -> None:
    """Read the environment's secrets again (a campaign does when it starts and ends; so does writing a report),
    with those read before (``_read_before``)."""
    global _env_pattern, _env_longest, _env_numbers, _env_floats, _compiled
    now = environment_secrets(environ)
    for value in now:
        _read_before.pop(value, None)
        _read_before[value] = None
    while len(_read_before) > REMEMBERED + len(now):
        del _read_before[next(iter(_read_before))]
    values = tuple(_read_before)
    key = frozenset(values)
    if _compiled is not None and _compiled[0] == key:  # (the same values: the same pattern)
        _env_pattern, _env_longest = _compiled[1], _compiled[2]
    else:
        if len(_forms) > 4 * REMEMBERED:
            _forms.clear()
        for value in values:
            if value not in _forms:
                _forms[value] = frozenset(written_forms(value))
        forms = sorted({form for v in values for form in _forms[v]}, key=lambda v: (-len(v), v))
        _env_pattern = re.compile("|".join(re.escape(v) for v in forms)) if forms else None
        _env_longest = len(forms[0]) if forms else 0
        _compiled = (key, _env_pattern, _env_longest)
    # (eight significant digits at least: ``00000001`` would redact every 1)
    _env_numbers = frozenset(int(v) for v in values
                             if v.isascii() and v.isdigit() and len(v.lstrip("0")) >= MIN_SECRET_LENGTH)
    _env_floats = frozenset(float(n) for n in _env_numbers if n < 2 ** 1000)


def is_secret_number(value: Any) -> bool:
    """Whether ``value`` is a whole number written as an environment secret (a PIN passed as an ``int``, or as a
    ``float`` of that whole value: ``73915482.0`` reached the JSON report whole)."""
    if not _env_numbers:
        return False
    cls = type(value)
    if cls is int:
        return value in _env_numbers
    # (as the float nearest each secret: above 2**53 a float holds none exactly, and its digits still show it)
    return cls is float and value.is_integer() and value in _env_floats


#: Names the user gave (test node ids, scenario names) that a secret's shape must not redact where they stand
#: whole (``keep_identifier``): a folder named ``sk-payments-agent`` made every printed replay command unusable.
#: Each is kept as it is written in a command, a JSON report or a command template.
_identifiers: set[str] = set()
#: The parts of a node id's path (folders, the file): kept wherever they stand (a folder's name is no secret)
_path_parts: set[str] = set()


def keep_identifier(name: str, *, node: bool = False) -> None:
    """Leave the secret shapes that lie inside ``name`` (a test's ``node`` id, a scenario's name) where the whole
    name stands in a text: it is the user's own name for a test, and the replay commands must work pasted back.
    A node id's folders and file are left wherever they stand; a shape in its parameters (``test_x[sk-...]``)
    only inside the whole id, so an agent's output holding that key in a later test is redacted. (The
    environment's secret values are redacted in it all the same.)"""
    if ("sk-" in name or "Bearer" in name) and name not in _identifiers and len(_identifiers) < 4096:
        quoted = name.replace("'", "'\"'\"'")
        forms = {name, json.dumps(name)[1:-1], quoted}
        _identifiers.update(forms, (form.replace("{", "{{").replace("}", "}}") for form in forms))
        if node:
            _path_parts.update(part for part in name.partition("::")[0].split("/") if "sk-" in part)
        _labels.clear()  # (remembered before: redacted without it)


def _kept(text: str) -> list[tuple[int, int]]:
    """The spans of ``text`` where a kept name stands (``keep_identifier``)."""
    spans = []
    for name in (*_identifiers, *_path_parts):
        at = text.find(name)
        while at >= 0:
            spans.append((at, at + len(name)))
            at = text.find(name, at + 1)
    return spans


def redact_text(text: str) -> str:
    """``text`` with every known secret replaced by ``[redacted]``."""
    text = redact_environment(text)
    spans = _kept(text) if _identifiers and ("sk-" in text or "Bearer" in text) else None
    if not spans:
        return redact_shapes(text)

    def shape(match: re.Match[str]) -> str:
        start, end = match.span()
        return match.group(0) if any(a <= start and end <= b for a, b in spans) else REDACTED

    return SECRET_SHAPE.sub(shape, text)


show_failures_through(redact_text)  # a campaign's failure message is redacted too (``errors.CampaignFailed``)


def redact_environment(text: str) -> str:
    """``text`` with the environment's secret values replaced (not the secret shapes, which ordinary text may
    match): for what must stay as it was otherwise, a cassette's recorded answers."""
    env = _env_pattern
    return env.sub(REDACTED, text) if env is not None else text


_labels: dict[str, str] = {}  # short texts that recur (events' names) -> redacted, for ``_labels_for``
_labels_for: Any = None  # the environment pattern the remembered labels were redacted with


def redact_label(text: str) -> str:
    """``redact_text`` of a short text that recurs (an event's kind, name or outcome), remembered while the
    environment's secrets stay the same (a trace event's name is redacted on every event)."""
    global _labels_for
    if type(text) is not str and issubclass(type(text), str):  # (an agent's own ``str``: its characters, as a ``str``)
        text = exact_str(text)
    if _labels_for is not _env_pattern:
        _labels.clear()
        _labels_for = _env_pattern
    shown = _labels.get(text)
    if shown is None:
        shown = redact_text(text)
        if len(_labels) < 4096 and len(text) <= 200:
            _labels[text] = shown
    return shown


def redact_short(text: str, limit: int, more: str = "...") -> str:
    """``text`` redacted, then cut to ``limit`` characters (``more`` added when cut): a secret that straddles
    the cut is redacted whole, and a long text costs no more than its first ``limit`` characters and a margin.

    Only a slice is redacted; the last characters of a slice that cut the text (as many as the longest secret,
    or a secret shape's start) are never shown: they may begin a secret the slice cut off. When the redacted
    slice is then shorter than ``limit`` (earlier secrets shrank to ``[redacted]``), a slice twice as long is
    taken (a review: a token at the end of a 200-character output was shown up to 94 of its 95 characters)."""
    tail = max(_env_longest, 16)
    span = limit + max(300, 2 * tail)
    while True:
        if len(text) <= span:
            shown = redact_text(text)
            return shown if len(shown) <= limit else shown[:limit] + more
        shown = redact_text(text[:span])[:-tail]
        if len(shown) > limit:
            return shown[:limit] + more
        span *= 2


#: the most items the redaction reads of a mapping of the agent's own class (not a dict): an endless one
#: grew the process by gigabytes a second until the trial's limit
MAPPING_ITEMS = 100_000


def _mapping_items(value: Mapping[Any, Any]) -> Any:
    """A mapping's items as the redaction reads them: a dict's (of the agent's own class too) as a dict holds them,
    no method of the agent's asked; another mapping's, at most ``MAPPING_ITEMS``."""
    return dict.items(value) if isinstance(value, dict) else itertools.islice(value.items(), MAPPING_ITEMS)


def redact(value: Any) -> Any:
    """``value`` with secrets replaced, recursively: strings, mapping values (a secret-named key's value
    whole), lists and tuples (as lists). Lists, tuples and dicts of the agent's own classes are read as the
    built-in types read them (``exact_containers``: no method of theirs runs), another mapping for at most
    ``MAPPING_ITEMS`` items."""
    return _redact(exact_containers(value))


def _redact(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: (REDACTED if issubclass(type(k), str) and SECRET_KEY.search(k) else _redact(v))
                for k, v in _mapping_items(value)}
    if isinstance(value, (list, tuple)):
        return [_redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    if is_secret_number(value):
        return REDACTED
    return value


def mask_secret_keys(value: Any, depth: int = 0) -> Any:
    """``value`` with the value of every secret-named key of its dicts replaced, as ``redact`` does, but its lists,
    tuples and dicts kept as they are (its ``repr`` unchanged where there is nothing to mask): what a tool
    returned, before it is traced as text. Other objects are left whole (their ``repr`` is still redacted)."""
    if depth > 32:
        return value
    kind = type(value)
    if kind is dict:
        return {k: (REDACTED if issubclass(type(k), str) and SECRET_KEY.search(k) else mask_secret_keys(v, depth + 1))
                for k, v in value.items()}
    if kind is list or kind is tuple:
        return kind(mask_secret_keys(v, depth + 1) for v in value)
    if isinstance(value, Mapping):  # an OrderedDict, a dict or Mapping of the agent's own class
        try:
            items = list(_mapping_items(value))
        except Exception:  # a mapping that cannot be read: its repr, redacted, is all that is shown
            return value
        masked = {k: (REDACTED if issubclass(type(k), str) and SECRET_KEY.search(k) else mask_secret_keys(v, depth + 1))
                  for k, v in items}
        if all(masked[k] is v for k, v in items):
            return value  # nothing to mask: shown as it is
        try:
            return kind(masked)  # (its own class, so its repr reads as before)
        except Exception:
            return masked
    return value


def redact_data(value: Any, numbers: bool = True) -> Any:
    """Plain JSON data (a report) with every string redacted, mapping keys included; other values as they are,
    but for a whole number that is one of the environment's secrets (not with ``numbers=False``: data still to
    be computed with, an xdist worker's spool)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {(redact_text(k) if isinstance(k, str) else k): redact_data(v, numbers) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_data(v, numbers) for v in value]
    if numbers and is_secret_number(value):
        return REDACTED
    return value


def redact_warning(recorded: Any) -> None:
    """A warning pytest recorded (a ``warnings.WarningMessage``) with its message redacted in place, before it
    is shown in the warnings summary: an agent's ``warnings.warn(f"... {api_key}")``. The message stays a
    warning of its class where it can be copied, else becomes a plain ``UserWarning`` with the redacted text
    (the summary still names the warning's category)."""
    message = recorded.message
    try:
        text = str(message)
    except Exception:  # (a message whose str raises: pytest shows what it can of it)
        return
    redacted = redact_text(text)
    if redacted == text:
        return
    if isinstance(message, Warning):
        try:
            copied = copy.copy(message)
            copied.args = (redacted,)
            if str(copied) == redacted:
                recorded.message = copied
                return
        except Exception:  # a class that cannot be copied, or whose str is its own: a plain warning instead
            pass
        recorded.message = UserWarning(redacted)
    else:
        recorded.message = redacted


# --- what the agent prints and logs while a campaign runs ----------------------------------------------------


class RedactingStream:
    """A text stream that redacts what is written to it and passes everything else to the stream it wraps."""

    def __init__(self, stream: Any):
        self._stream = stream
        self.live = True  # False once its campaigns are over: kept by someone who wrapped it, it passes text as is

    def write(self, text: str) -> int:
        self._stream.write(_redact_written_text(text) if self.live else text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


#: a campaign has held the redaction in this process (then the warnings pytest shows are redacted too)
campaign_ran = False
#: how many times campaigns have taken hold of the redaction (the pytest plugin redacts the warnings of a test
#: during which this grew)
campaigns_held = 0


def _redact_written_text(text: Any) -> Any:
    return redact_text(text) if isinstance(text, str) else text


def _redact_written_bytes(data: Any) -> Any:
    """What is written to a text stream's ``buffer`` (``sys.stdout.buffer.write(b"...")``), redacted as UTF-8
    text; the very same object when there is nothing to redact."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return data
    text = bytes(data).decode("utf-8", "surrogateescape")
    redacted = redact_text(text)
    return data if redacted == text else redacted.encode("utf-8", "surrogateescape")


def _redact_in_place(stream: Any, redact: Callable[[Any], Any] = _redact_written_text) -> Any:
    """Make ``stream`` itself redact what is written to it (its own ``write`` and ``writelines``), so that it
    stays redacting when someone swaps it out and puts it back: pytest's capture does around each live log
    line (``log_cli``), and a wrapper put in ``sys.stdout`` was lost at the first one. Returns what undoes it;
    None where the stream takes no attributes of its own (then it is wrapped: ``RedactingStream``)."""
    write = stream.write
    own = getattr(stream, "__dict__", None)
    before = {name: own[name] for name in ("write", "writelines") if own is not None and name in own}
    live = [True]  # cleared by ``undo``: a wrapper an agent put around ours keeps ours, which then redacts nothing

    def redacting_write(text: Any) -> int:
        write(redact(text) if live[0] else text)
        return text.nbytes if isinstance(text, memoryview) else len(text)  # (what the caller gave: bytes)

    def redacting_writelines(lines: Any) -> None:
        for line in lines:
            redacting_write(line)

    try:
        stream.write, stream.writelines = redacting_write, redacting_writelines
    except (AttributeError, TypeError):
        return None

    def undo() -> None:  # what was there before (a tee, a mock of someone's), unless someone else's came since
        live[0] = False
        now = getattr(stream, "__dict__", {})
        for name, ours in (("write", redacting_write), ("writelines", redacting_writelines)):
            if now.get(name) is ours:
                if name in before:
                    setattr(stream, name, before[name])
                else:
                    delattr(stream, name)

    return undo


def _hold_stream(name: str) -> Callable[[], None]:
    """``sys.NAME`` redacting (in place, else wrapped), and its ``buffer`` where it has one that takes it (bytes
    written there skip the text layer); returns what puts them back."""
    stream = getattr(sys, name)
    if stream is None:
        return _nothing
    buffer = getattr(stream, "buffer", None)
    undo_buffer = (_redact_in_place(buffer, _redact_written_bytes) if callable(getattr(buffer, "write", None))
                   else None) or _nothing
    undo = _redact_in_place(stream)
    if undo is not None:
        def put_back() -> None:
            undo()
            undo_buffer()
        return put_back
    wrapped = RedactingStream(stream)
    setattr(sys, name, wrapped)
    own_stream(wrapped, stream)  # (the campaign's check of the streams reads it as ``stream``)

    def unwrap() -> None:
        forget_stream(wrapped)
        wrapped.live = False  # (kept inside someone else's wrapper: it passes text as is from now on)
        if getattr(sys, name) is wrapped:  # (someone else replaced it since: leave theirs)
            setattr(sys, name, stream)
        undo_buffer()

    return unwrap


def _nothing() -> None:
    pass


def _hold_output() -> tuple[list[Callable[[], None]], Any, Any]:
    """Redact what is written to sys.stdout and sys.stderr, and the message of every log record made from now on."""
    global campaign_ran, campaigns_held
    campaign_ran = True
    campaigns_held += 1
    undo = [_hold_stream("stdout")]
    if sys.stderr is not sys.stdout:  # (one stream for both: redacted once)
        undo.append(_hold_stream("stderr"))
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if not factory.live:  # type: ignore[attr-defined]  (kept by an agent's factory after the campaign)
            return record
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it when the record is handled
            return record
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return record

    factory.live = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
    return undo, previous, factory


def _restore_output(held: tuple[list[Callable[[], None]], Any, Any]) -> None:
    undo, previous, factory = held
    factory.live = False  # (an agent's factory set over it keeps calling it: it redacts nothing from now on)
    for put_back in reversed(undo):
        put_back()
    if logging.getLogRecordFactory() is factory:
        logging.setLogRecordFactory(previous)


#: ``with redacted_output():`` while a campaign runs: what is printed or logged reaches its destination redacted.
redacted_output = ProcessPatch("output", _hold_output, _restore_output,
                               what="sys.stdout/sys.stderr redacting and log messages redacted (secrets)")

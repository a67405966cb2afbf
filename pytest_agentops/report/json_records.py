"""A campaign's trial records as the JSON report's text, written fast.

Each record's text is, byte for byte, what ``json_text.write_json`` writes at the record's place in the report
for ``redact_data(CampaignResult.record_dict(record, with_traces))``: the keys sorted, two spaces per level,
every string redacted (``harness.secrets``). What makes it fast, a block of records at a time:

* a record's own fields are written by one f-string of its keys (``TrialRecord.to_dict``'s, sorted), from
  columns of the block's values read together, instead of building the dict, redacting it and walking it;
* a passing trial's text is the text of the first record with the same fields but its id, index and seed (its
  "signature", the same ``extra`` and floats of the same signs): made once, then three values put in it;
* what the layers recorded (``extra``) is written once for all records whose layer records merge to the same
  values of the same types (``CampaignResult.record_extras``: their ``marshal`` bytes), when redaction changes
  none of its strings; the traces of a block's failing trials are written together, event by event from
  columns, each event's data once for all the same ones;
* a string is redacted and encoded once per report (an outcome, a reason, a fault recur), and the ids of a
  block are checked for secrets together: when the patterns match nowhere in them, none of them changes.

Records given as their dicts (a campaign's report data: the pytest plugin's, a pytest-xdist worker's) are
written from the same template (``dict_pieces``). A record with a field of a type the template does not expect
is written the plain way (redact its dict, then walk it: ``Render``, the writer's walk with the redaction done
on the way, for the parts that have no template); so is every record when the keys would not survive
redaction, and every record of a report whose first record the two ways would write differently (the template
would then be out of date with ``TrialRecord.to_dict``: a guard; ``tests/test_post_identical.py`` checks the
two ways agree on every kind of record).
"""

from __future__ import annotations

import functools
import itertools
import json
import marshal
import math
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from .._frozen import FrozenMap
from ..errors import hide_own_frames
from .json_text import _float, _key, write_json

__tracebackhide__ = hide_own_frames


def _unknown(o: object) -> Any:
    """The JSON encoder's fallback: a mapping as a dict (``_frozen.thaw``), anything else not plain data."""
    if type(o) is FrozenMap:
        return o._data  # (its own dict: the same items, in the same order)
    if isinstance(o, Mapping):
        return dict(o.items())
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


if json.encoder.c_make_encoder is not None:  # one C encoder made once (``JSONEncoder.encode`` makes one per call)
    _C_ENCODE = json.encoder.c_make_encoder(None, _unknown, json.encoder.encode_basestring, None, ":", ",", False,
                                            False, True)

    def _ENCODE(value: Any) -> str:
        return "".join(_C_ENCODE(value, 0))
else:  # pragma: no cover (a Python without the C accelerator)
    _ENCODE = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":"),
                               default=_unknown).encode


def compact_json(value: Any) -> str | None:
    """``value`` as compact JSON, in its own key order (C speed; a mapping as a dict, a tuple as a list, as
    ``_frozen.thaw`` makes them), or None when it is not plain data. Two values with the same text are written
    the same by the report's writer so long as redaction changes no string of them (``RecordsText._safe``: no
    secret matches in the text, and the text has no escape that could hide one)."""
    try:
        return _ENCODE(value._data if type(value) is FrozenMap else value)
    except (TypeError, ValueError, RecursionError):
        return None


#: The record's fields the template reads, in this order.
_FIELDS = ("index", "seed", "outcome", "reason", "input_tokens", "output_tokens", "cost_usd", "tool_calls",
           "tool_failures", "destructive_attempts", "unconfirmed_destructive", "blocked_calls", "escalated_at_s",
           "unrecovered_fault_s", "duration_s", "faults", "violations", "output", "default_priced", "layers")
_GET = operator.attrgetter(*_FIELDS)
#: Every key a record's dict may have (``TrialRecord.to_dict``), sorted as the writer sorts them.
KEYS = tuple(sorted(("id", "index", "seed", "outcome", "reason", "input_tokens", "output_tokens", "tokens",
                     "cost_usd", "tool_calls", "tool_failures", "destructive_attempts",
                     "unconfirmed_destructive_calls", "blocked_calls", "escalated_at_s", "unrecovered_fault_s",
                     "duration_s", "faults", "violations", "output", "extra", "default_priced_models", "trace",
                     "trace_kept")))
#: Every key a trace event's dict may have (``TraceEvent.to_dict``).
EVENT_KEYS = ("data", "input_tokens", "kind", "name", "outcome", "output_tokens", "seq", "t")
#: Records written together (their values read as columns, their ids checked for secrets together).
BLOCK = 256


class Render:
    """``json_text``'s walk of ``redact_data(value)`` as text, with each string redacted (and encoded) once:
    a string, a dict's keys and values and a list's items are redacted; a tuple and what it holds are not
    (``redact_data`` leaves tuples as they are)."""

    __slots__ = ("_encoded", "_redact", "redact")

    def __init__(self, redact: Callable[[str], str]):
        self._redact = self.redact = redact
        self._encoded: dict[str, str] = {}  # a string -> its redacted text, encoded

    def string(self, text: str) -> str:
        """``text`` redacted, as a JSON string."""
        encoded = self._encoded.get(text)
        if encoded is None:
            if len(self._encoded) > 100_000:  # (a report of distinct texts: keep the memory of a few)
                self._encoded.clear()
            encoded = self._encoded[text] = encode_basestring_ascii(self._redact(text))
        return encoded

    def untouched(self, value: Any) -> bool:
        """Whether redaction changes no string of ``_thaw(value)`` (keys included)."""
        if isinstance(value, str):
            return self.string(value) == encode_basestring_ascii(value) if type(value) is str else (
                self._redact(value) == value)
        if isinstance(value, Mapping):
            return all(not isinstance(k, str) or self._redact(k) == k for k in value) and all(
                map(self.untouched, value.values()))
        if isinstance(value, (list, tuple)):
            return all(map(self.untouched, value))
        return True

    def value(self, value: Any, newline: str, out: list[str], redact: bool = True) -> None:
        """Append the text of ``value`` at the nesting whose line starts are ``newline``."""
        if isinstance(value, str):
            if not redact:
                out.append(encode_basestring_ascii(value))
            elif type(value) is str:
                out.append(self.string(value))
            else:
                out.append(encode_basestring_ascii(self._redact(value)))
        elif value is None:
            out.append("null")
        elif value is True:
            out.append("true")
        elif value is False:
            out.append("false")
        elif isinstance(value, int):
            out.append(int.__repr__(value))
        elif isinstance(value, float):
            out.append(_float(value))
        elif isinstance(value, (list, tuple)):
            if not value:
                out.append("[]")
                return
            inner = newline + "  "
            separator = "[" + inner
            items_redacted = redact and isinstance(value, list)
            for item in value:
                out.append(separator)
                separator = "," + inner
                self.value(item, inner, out, items_redacted)
            out.append(newline + "]")
        elif isinstance(value, dict):
            if redact:  # as redact_data makes it: keys redacted (two that become one: the later value)
                value = {(self._redact(k) if isinstance(k, str) else k): v for k, v in value.items()}
            if not value:
                out.append("{}")
                return
            inner = newline + "  "
            separator = "{" + inner
            for key, item in sorted(value.items()):
                out.append(separator + encode_basestring_ascii(_key(key)) + ": ")
                separator = "," + inner
                self.value(item, inner, out, redact)
            out.append(newline + "}")
        else:
            raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class RecordsText:
    """The text of a campaign's records (``TrialRecord``), a block at a time (``pieces``)."""

    __slots__ = (
        "_checked",
        "_data_text",
        "_extra_text",
        "_extras",
        "_fast",
        "_plain",
        "_render",
        "_safe_texts",
        "_shared",
        "_signature_texts",
        "_templates",
        "_unshared_blocks",
        "_with_traces",
    )

    def __init__(self, redact: Callable[[str], str], with_traces: bool, plain: Callable[[Any], dict[str, Any]],
                 extras: tuple[list[int], list[dict[str, Any]], list[bytes | None]] | None = None):
        """``redact``: the redaction of one string; ``plain``: a record's redacted dict (the plain way);
        ``extras``: each record's merged layer records as an index into a list of distinct ones
        (``CampaignResult.record_extras``; else each record's own are merged)."""
        self._render = Render(redact)
        self._with_traces = with_traces
        self._plain = plain
        # (a secret inside a key's name: every record the plain way)
        self._fast = all(redact(k) == k for k in KEYS + EVENT_KEYS)
        self._checked = False
        self._templates: dict[Any, str] = {}
        self._extras = extras
        self._extra_text: dict[tuple[int, str], str | None] = {}
        self._data_text: dict[tuple[str, str], str] = {}
        self._safe_texts: dict[str, bool] = {}
        self._signature_texts: dict[str, dict[Any, str | None]] = {}
        self._shared: dict[int | None, bool] = {}
        self._unshared_blocks = 0  # blocks to write whole without looking for signatures in common

    def pieces(self, records: Sequence[Any], newline: str) -> Iterator[str]:
        """The records as the items of a JSON list at ``newline`` (its brackets included)."""
        if not records:
            yield "[]"
            return
        inner = newline + "  "
        between = "," + inner
        extras: Sequence[int | None] = self._extras[0] if self._extras is not None else [None] * len(records)
        for lo in range(0, len(records), BLOCK):
            yield ("[" if lo == 0 else ",") + inner
            yield between.join(self._block(records[lo:lo + BLOCK], extras[lo:lo + BLOCK], inner))
        yield newline + "]"

    def _block(self, records: Sequence[Any], extras: Sequence[int | None], newline: str) -> list[str]:
        if not self._fast:
            return [self._plain_text(r, newline) for r in records]
        if not self._checked:  # the first record both ways: the template must still be TrialRecord.to_dict's
            self._checked = True
            first = self._plain_text(records[0], newline)
            if self._text(records[0], extras[0], newline) != first:
                self._fast = False
                return [first] + [self._plain_text(r, newline) for r in records[1:]]
        if self._unshared_blocks:  # the last blocks had few signatures in common: this one is written whole
            self._unshared_blocks -= 1
            return self._texts(records, extras, newline)
        try:
            signatures = list(map(_SIGNATURE, records))
            index, seed = list(map(_INDEX, records)), list(map(_SEED, records))
        except AttributeError:
            return list(map(self._text, records, extras, itertools.repeat(newline)))
        (outcome, reason, input_tokens, output_tokens, cost, tool_calls, tool_failures, destructive, unconfirmed,
         blocked, escalated, unrecovered, duration, faults, violations, output, priced) = zip(*signatures, strict=False)
        if not (_all(int, index, seed, input_tokens, output_tokens, tool_calls, tool_failures, destructive,
                     unconfirmed, blocked) and _all(str, outcome, reason, output) and _all(float, cost, duration)
                and _all(tuple, faults, violations, priced)
                and _types(escalated) <= _FLOAT_OR_NONE and _types(unrecovered) <= _FLOAT_OR_NONE
                and all(type(x) is str for column in (faults, violations, priced) for items in column for x in items)):
            return list(map(self._text, records, extras, itertools.repeat(newline)))
        ids = self._ids(index)
        # a float's sign tells 0.0 from -0.0 (equal, but written differently)
        signs = zip(map(math.copysign, _ONES, cost), map(math.copysign, _ONES, duration), _signs(escalated),
                    _signs(unrecovered), strict=False)
        templates = self._signature_texts.setdefault(newline, {})
        if len(templates) > 10_000:  # (the memory of a few: a signature seen again is likely a recent one)
            templates.clear()
        shared = self._shared
        whole = not self._with_traces
        found: list[Any] = []  # each record's template (the text around its id, index, seed); None: written whole
        direct: list[int] = []  # the records written whole: with a trace, or with an ``extra`` of their own
        new: dict[Any, int] = {}  # a signature not seen yet -> the first record with it
        pending: list[tuple[int, Any]] = []  # the records with a new signature, and it
        for at, (extra, signature, sign) in enumerate(zip(extras, signatures, signs, strict=False)):
            if (whole and signature[0] == "completed" and not signature[14]
                    and (shared[extra] if extra in shared else self._share(extra))):
                key = (signature, extra, sign)
                template = templates.get(key)
                if template is None:
                    new.setdefault(key, at)
                    pending.append((at, key))
                found.append(template)
            else:
                found.append(None)
                direct.append(at)
        if new and len(new) * 4 > len(records):  # few records share their signature here: each written whole
            for at, _ in pending:
                found[at] = None
                direct.append(at)
            self._unshared_blocks = _UNSHARED_SKIP  # (and the next few blocks without looking)
        elif new:
            made = self._signature_templates([records[at] for at in new.values()],
                                             [extras[at] for at in new.values()], newline)
            templates.update(zip(new, made, strict=True))
            for at, key in pending:
                found[at] = templates[key] or _WHOLE  # (a record the template does not take: written whole)
        texts: dict[int, str] = {}
        if direct:
            texts = dict(zip(direct, self._texts([records[at] for at in direct], [extras[at] for at in direct],
                                                 newline), strict=True))
        out = []
        for at, (template, id_text, i, s) in enumerate(zip(found, ids, index, seed, strict=False)):
            if template is None:
                out.append(texts[at])
            elif template is _WHOLE:
                out.append(self._text(records[at], extras[at], newline))
            else:
                out.append(f"{template[0]}{id_text}{template[1]}{i}{template[2]}{s}{template[3]}")
        return out

    def dict_pieces(self, records: Sequence[Any], newline: str) -> Iterator[str]:
        """``pieces`` of records given as their dicts (``CampaignResult.record_dict``: a campaign's report data,
        from a pytest-xdist worker or the pytest plugin's own), not redacted yet."""
        if not records:
            yield "[]"
            return
        inner = newline + "  "
        between = "," + inner
        for lo in range(0, len(records), BLOCK):
            yield ("[" if lo == 0 else ",") + inner
            yield between.join(self._dict_block(records[lo:lo + BLOCK], inner))
        yield newline + "]"

    def _dict_block(self, records: Sequence[Any], newline: str) -> list[str]:
        if not self._fast:
            return [self._plain_text(r, newline) for r in records]
        if not self._checked:  # the first record both ways (a guard: the walk of its dict is the reference)
            self._checked = True
            first = self._plain_text(records[0], newline)
            if self._dict_text(records[0], newline) != first:
                self._fast = False
                return [first] + [self._plain_text(r, newline) for r in records[1:]]
        columns = self._dict_columns(records, newline)
        if columns is None:
            return [self._dict_text(r, newline) for r in records]
        return list(map(self._writer(newline), *columns))

    def _dict_text(self, record: Any, newline: str) -> str:
        columns = self._dict_columns([record], newline)
        if columns is None:
            return self._plain_text(record, newline)
        return self._writer(newline)(*next(zip(*columns, strict=True)))

    def _dict_columns(self, records: Sequence[Any], newline: str) -> list[Iterable[Any]] | None:
        """The template's values of records given as dicts, column by column (None: not all of them a record's
        dict of the expected types)."""
        if not (_types(records) <= _DICT and all(_REQUIRED <= r.keys() <= _ALL_KEYS for r in records)):
            return None
        (id_, index, seed, outcome, reason, input_tokens, output_tokens, tokens, cost, tool_calls, tool_failures,
         destructive, unconfirmed, blocked, escalated, unrecovered, duration, faults, violations,
         output) = zip(*map(_REQUIRED_GET, records), strict=True)
        if not (_all(int, index, seed, input_tokens, output_tokens, tokens, tool_calls, tool_failures, destructive,
                     unconfirmed, blocked) and _all(str, id_, outcome, reason, output) and _all(float, cost, duration)
                and _all(list, faults, violations)
                and _types(escalated) <= _FLOAT_OR_NONE and _types(unrecovered) <= _FLOAT_OR_NONE
                and all(map(math.isfinite, cost)) and all(map(math.isfinite, duration))
                and all(r.get("trace_kept", False) is False and type(r.get("default_priced_models", [])) is list
                        for r in records)):
            return None
        inner = newline + "  "
        strings = self._strings_of
        joined = "\x00".join(id_)  # (none of the ids changes when their text together does not)
        ids = (list(map(encode_basestring_ascii, id_)) if self._render.redact(joined) == joined
               else strings(id_))
        priced = [("," + inner + '"default_priced_models": ' + self._strings(r["default_priced_models"], inner))
                  if "default_priced_models" in r else "" for r in records]
        extras = [("," + inner + '"extra": ' + self._dict_extra(r["extra"], inner)) if "extra" in r else ""
                  for r in records]
        traces = ["" if "trace" not in r else self._dict_trace(r, inner) for r in records]
        return [blocked, cost, priced, destructive, duration, _optional_floats(escalated), extras,
                self._lists(faults, inner), ids, index, input_tokens, strings(outcome), strings(output),
                output_tokens, strings(reason), seed, tokens, tool_calls, tool_failures, traces, unconfirmed,
                _optional_floats(unrecovered), self._lists(violations, inner)]

    def _dict_extra(self, extra: Any, newline: str) -> str:
        """A record dict's ``extra`` (plain data, redacted) at ``newline``: written once for all the same ones
        (the same ``marshal`` bytes: the same values of the same types) when redaction changes none of it."""
        try:
            key: tuple[bytes, str] | None = (marshal.dumps(extra, 2), newline)
        except (ValueError, TypeError, RecursionError):
            key = None
        if key is not None:
            text = self._extra_text.get(key)  # type: ignore[arg-type]
            if text is not None:
                return text
        out: list[str] = []
        self._render.value(extra, newline, out)
        text = "".join(out)
        if key is not None and self._render.untouched(extra):
            if len(self._extra_text) > 100_000:
                self._extra_text.clear()
            self._extra_text[key] = text  # type: ignore[index]
        return text

    def _dict_trace(self, record: dict[str, Any], newline: str) -> str:
        out = ["," + newline + '"trace": ']
        self._render.value(record["trace"], newline, out)
        if "trace_kept" in record:
            out.append("," + newline + '"trace_kept": false')
        return "".join(out)

    def _ids(self, index: tuple[int, ...]) -> list[str]:
        """Each record's id (``trial-<index>``) as JSON text, redacted."""
        ids = [f"trial-{i}" for i in index]
        joined = "\x00".join(ids)  # (none of them changes when their text together does not)
        if self._render.redact(joined) == joined:
            return [f'"{i}"' for i in ids]
        return list(map(self._render.string, ids))

    def _texts(self, records: Sequence[Any], extras: Sequence[int | None], newline: str) -> list[str]:
        """The records' texts by the template, the whole of each from its values."""
        columns = self._columns(records, extras, newline)
        if columns is None:
            return list(map(self._text, records, extras, itertools.repeat(newline)))
        return list(map(self._writer(newline), *columns))

    def _signature_templates(self, records: Sequence[Any], extras: Sequence[int | None], newline: str
                             ) -> list[tuple[str, ...] | None]:
        """For each record, its text with its id, index and seed left as %-fields: the text of every record with
        the same other fields (a ``_SIGNATURE``, the same shared ``extra`` and floats of the same signs); None
        for one the template does not take."""
        columns = self._columns(records, extras, newline)
        if columns is None:
            return [None] * len(records)
        columns[_ID] = columns[_INDEX_AT] = columns[_SEED_AT] = itertools.repeat(_MARK)  # (no record text has one)
        return [tuple(text.split(_MARK)) for text in map(self._writer(newline), *columns)]

    def _share(self, extra: int | None) -> bool:
        """Whether the records with this ``extra`` index share its text: they have the same values of the same
        types (``CampaignResult.record_extras``), and redaction changes none of their strings."""
        if extra is None:
            return False
        shared = self._shared[extra] = (self._extras[2][extra] is not None  # type: ignore[index]
                                        and self._render.untouched(self._extras[1][extra]))  # type: ignore[index]
        return shared

    def _writer(self, newline: str) -> Callable[..., str]:
        writer = self._templates.get(newline)
        if writer is None:
            writer = self._templates[newline] = _writer(newline)
        return writer

    def _columns(self, records: Sequence[Any], extras: Sequence[int | None], newline: str
                 ) -> list[Iterable[Any]] | None:
        """The values of the template for each record, column by column (None: a field of a type the template
        does not take, or a float it cannot write)."""
        try:
            (index, seed, outcome, reason, input_tokens, output_tokens, cost, tool_calls, tool_failures,
             destructive, unconfirmed, blocked, escalated, unrecovered, duration, faults, violations, output,
             priced, layers) = zip(*map(_GET, records), strict=False)
        except AttributeError:
            return None
        if not (_all(int, index, seed, input_tokens, output_tokens, tool_calls, tool_failures, destructive,
                     unconfirmed, blocked) and _all(str, outcome, reason, output) and _all(float, cost, duration)
                and _all(tuple, faults, violations, priced)
                and _types(escalated) <= _FLOAT_OR_NONE and _types(unrecovered) <= _FLOAT_OR_NONE):
            return None
        cost = tuple(map(round, cost, itertools.repeat(10)))
        duration = tuple(map(round, duration, itertools.repeat(6)))
        if not (all(map(math.isfinite, cost)) and all(map(math.isfinite, duration))):
            return None
        inner = newline + "  "
        n = len(records)
        strings = self._strings_of
        ids = self._ids(index)
        segments_priced = [""] * n if not any(priced) else [
            "" if not p else "," + inner + '"default_priced_models": ' + self._strings(p, inner) for p in priced]
        extra_texts = list(map(self._extra_item, layers, extras, itertools.repeat(inner)))
        traces = [""] * n
        with_traces = self._with_traces
        traced = [i for i, (o, v) in enumerate(zip(outcome, violations, strict=True))
                  if with_traces or not (o == "completed" and not v)]
        if traced:
            for i, text in zip(traced, self._traces([records[i] for i in traced], inner), strict=True):
                traces[i] = text
        return [blocked, cost, segments_priced, destructive, duration, _optional_floats(escalated), extra_texts,
                self._lists(faults, inner), ids, index, input_tokens, strings(outcome), strings(output),
                output_tokens, strings(reason), seed, map(operator.add, input_tokens, output_tokens), tool_calls,
                tool_failures, traces, unconfirmed, _optional_floats(unrecovered), self._lists(violations, inner)]

    def _strings_of(self, column: tuple[str, ...]) -> list[str]:
        """Each string of a column redacted and encoded (each distinct one once)."""
        string = self._render.string
        encoded = {text: string(text) for text in set(column)}
        return list(map(encoded.__getitem__, column))

    def _lists(self, column: tuple[tuple[Any, ...], ...], newline: str) -> list[str]:
        """Each tuple of a column as a list at ``newline`` (most are empty)."""
        if not any(column):
            return ["[]"] * len(column)
        return [self._strings(items, newline) for items in column]

    def _extra_item(self, layers: Any, extra: int | None, newline: str) -> str:
        """A record's ``extra`` with its key (the text after ``escalated_at_s``), or "" when it has none."""
        text = self._extra(layers, extra, newline)
        return "" if text is None else "," + newline + '"extra": ' + text

    def _traces(self, records: Sequence[Any], newline: str) -> list[str]:
        """Each record's trace with its key (the text after ``tool_failures``), ``trace_kept`` too when not kept:
        the events of them all written together."""
        traces = [record.trace for record in records]
        inner = newline + "  "
        events = self._events([e for trace in traces for e in trace], inner)
        out = []
        at = 0
        for record, trace in zip(records, traces, strict=True):
            text = "," + newline + '"trace": '
            if not trace:
                text += "[]"
            else:
                text += "[" + inner + ("," + inner).join(events[at:at + len(trace)]) + newline + "]"
                at += len(trace)
            if record.skeleton:
                text += "," + newline + '"trace_kept": false'
            out.append(text)
        return out

    def _events(self, events: Sequence[Any], newline: str) -> list[str]:
        """Trace events' texts (``TraceEvent.to_dict``) at ``newline``, column by column."""
        if not events:
            return []
        try:
            seq, t, kind, name, outcome, input_tokens, output_tokens, data = zip(*map(_EVENT, events), strict=True)
        except AttributeError:
            return [self._event(e, newline) for e in events]
        if not (_all(int, seq, input_tokens, output_tokens) and _all(float, t) and _all(str, kind, name, outcome)):
            return [self._event(e, newline) for e in events]
        t = tuple(map(round, t, itertools.repeat(6)))
        if not all(map(math.isfinite, t)):
            return [self._event(e, newline) for e in events]
        inner = newline + "  "
        data_texts = [self._data(d, inner) if d else None for d in data]
        tokens = map(operator.or_, input_tokens, output_tokens)  # (ints: nonzero when either is)
        writers = self._event_writers(newline)
        string = self._render.string
        return [writers[(d is not None) * 2 + (k != 0)](d, i, kk, nn, oo, o, q, tt) for d, k, i, kk, nn, oo, o, q, tt
                in zip(data_texts, tokens, input_tokens, map(string, kind), map(string, name), map(string, outcome),
                       output_tokens, seq, map(float.__repr__, t), strict=True)]

    def _event_writers(self, newline: str) -> tuple[Callable[..., str], ...]:
        """The four writers of an event at ``newline`` (with data or not, with tokens or not)."""
        key = ("events", newline)
        writers = self._templates.get(key)
        if writers is None:
            writers = self._templates[key] = tuple(_event_writer(newline, data, tokens)
                                                   for data in (False, True) for tokens in (False, True))
        return writers  # type: ignore[return-value]

    def _event(self, event: Any, newline: str) -> str:
        """A trace event's text (``TraceEvent.to_dict``) at ``newline`` (the plain way for unexpected types)."""
        try:
            seq, t, kind, name, outcome, input_tokens, output_tokens, data = _EVENT(event)
        except AttributeError:
            seq = None
        if not (type(seq) is int and type(t) is float and type(kind) is str and type(name) is str
                and type(outcome) is str and type(input_tokens) is int and type(output_tokens) is int):
            out: list[str] = []
            self._render.value(event.to_dict(), newline, out)
            return "".join(out)
        t = round(t, 6)
        inner = newline + "  "
        tokens = bool(input_tokens or output_tokens)
        key = (newline, bool(data), tokens)
        template = self._templates.get(key)
        if template is None:
            template = self._templates[key] = _event_template(*key)
        string = self._render.string
        args: list[Any] = [self._data(data, inner)] if data else []
        if tokens:
            args.append(input_tokens)
        args += (string(kind), string(name), string(outcome))
        if tokens:
            args.append(output_tokens)
        args += (seq, _float(t))
        return template % tuple(args)

    def _data(self, data: Any, newline: str) -> str:
        """An event's data (thawed, redacted) at ``newline``: written once for all the same ones."""
        compact = compact_json(data)
        if compact is not None and self._safe(compact):
            key = (compact, newline)
            text = self._data_text.get(key)
            if text is None:
                if len(self._data_text) > 100_000:
                    self._data_text.clear()
                out: list[str] = []
                self._render.value(_thaw(data), newline, out)
                text = self._data_text[key] = "".join(out)
            return text
        out = []
        self._render.value(_thaw(data), newline, out)
        return "".join(out)

    def _safe(self, compact: str) -> bool:
        """Whether redaction changes no string of the data with this ``compact_json`` (then the same text is
        written for all of them): no escape in it that could hide a secret, and no secret matches in it."""
        safe = self._safe_texts.get(compact)
        if safe is None:
            if len(self._safe_texts) > 100_000:
                self._safe_texts.clear()
            redact = self._render.redact
            safe = self._safe_texts[compact] = "\\" not in compact and redact(compact) == compact
        return safe

    def _plain_text(self, record: Any, newline: str) -> str:
        out: list[str] = []
        write_json_at(self._plain(record), newline, out.append)
        return "".join(out)

    def _text(self, record: Any, extra: int | None, newline: str) -> str:
        """One record's text by the template (the plain way for a field of an unexpected type)."""
        columns = self._columns([record], [extra], newline)
        if columns is None:
            return self._plain_text(record, newline)
        return self._writer(newline)(*next(zip(*columns, strict=False)))

    def _extra(self, layers: Any, extra: int | None, newline: str) -> str | None:
        """The text of ``record.extra`` at ``newline``, None when it is empty (the record has no ``extra``):
        written once for the records that share theirs (``extras``) when redaction changes nothing in it."""
        shared = False
        if extra is not None:
            key = (extra, newline)
            if key in self._extra_text:
                return self._extra_text[key]
            shared = self._shared[extra] if extra in self._shared else self._share(extra)
        if shared:
            merged = self._extras[1][extra]  # type: ignore[index]
        else:  # the record's own layers, merged (``TrialRecord.extra``)
            merged = {}
            for layer in getattr(layers, "_data", layers).values():
                merged.update(layer.to_dict())
        text = None
        if merged:
            out: list[str] = []
            self._render.value(_thaw(merged), newline, out)
            text = "".join(out)
        if shared:
            self._extra_text[(extra, newline)] = text  # type: ignore[assignment]
        return text

    def _strings(self, items: tuple[Any, ...], newline: str) -> str:
        """A list of strings (the plain way for anything else in it) at ``newline``."""
        if not items:
            return "[]"
        inner = newline + "  "
        if all(type(item) is str for item in items):
            string = self._render.string
            return "[" + inner + ("," + inner).join(map(string, items)) + newline + "]"
        out: list[str] = []
        self._render.value(list(items), newline, out)
        return "".join(out)


#: Each key's value in the template: an int, a float's repr, or text made already; the optional keys come as
#: text after the key before them, empty when the record has none (they sort right after it).
_SPECS = {"blocked_calls": "%d", "cost_usd": "%r%s", "destructive_attempts": "%d", "duration_s": "%r",
          "escalated_at_s": "%s%s", "index": "%d", "input_tokens": "%d", "output_tokens": "%d", "seed": "%d",
          "tokens": "%d", "tool_calls": "%d", "tool_failures": "%d%s", "unconfirmed_destructive_calls": "%d"}
_OPTIONAL = ("default_priced_models", "extra", "trace", "trace_kept")
_FLOAT_OR_NONE = frozenset((float, type(None)))


@functools.lru_cache(maxsize=64)
def _writer(newline: str) -> Callable[..., str]:
    """The function that writes a record at ``newline`` from its values (``_columns``): an f-string of the
    record's keys around them, made once (an f-string joins its pieces at once; a long %-template is parsed at
    every use)."""
    inner = newline + "  "
    keys = [key for key in KEYS if key not in _OPTIONAL]
    pieces: list[str] = []  # the text between the values, a value after each
    fields: list[str] = []
    text = ""
    for i, key in enumerate(keys):
        text += ("{" if i == 0 else ",") + inner + encode_basestring_ascii(key) + ": "
        for spec in _SPECS.get(key, "%s").split("%")[1:]:
            pieces.append(text)
            fields.append("!r" if spec == "r" else "")
            text = ""
    pieces.append(text + newline + "}")
    names = [f"v{i}" for i in range(len(fields))]
    body = "".join(f"{{p{i}}}{{{name}{conversion}}}"
                   for i, (name, conversion) in enumerate(zip(names, fields, strict=True)))
    source = f"lambda {', '.join(names)}: f'{body}{{p{len(fields)}}}'"
    return eval(source, {f"p{i}": piece for i, piece in enumerate(pieces)})


#: The fields of a record that, with its ``extra``, make its text but for its id, index and seed.
_SIGNATURE = operator.attrgetter(
    "outcome", "reason", "input_tokens", "output_tokens", "cost_usd", "tool_calls", "tool_failures",
    "destructive_attempts", "unconfirmed_destructive", "blocked_calls", "escalated_at_s", "unrecovered_fault_s",
    "duration_s", "faults", "violations", "output", "default_priced")
_INDEX, _SEED = operator.attrgetter("index"), operator.attrgetter("seed")
#: Where the id, the index and the seed are among the template's values (``_columns``), and what stands for
#: them in a signature's text (a NUL: JSON text writes none of its own).
_ID, _INDEX_AT, _SEED_AT = 8, 9, 15
_MARK = "\x00"
#: After a block whose records mostly had signatures of their own, this many blocks are written whole.
_UNSHARED_SKIP = 7
_ONES = itertools.repeat(1.0)
_WHOLE = ("whole",)


def _signs(column: tuple[float | None, ...]) -> Iterable[float | None]:
    if column.count(None) == len(column):
        return itertools.repeat(None)
    return [None if v is None else math.copysign(1.0, v) for v in column]


#: The keys every record's dict has (``TrialRecord.to_dict``), read together; and all it may have.
_REQUIRED_KEYS = ("id", "index", "seed", "outcome", "reason", "input_tokens", "output_tokens", "tokens", "cost_usd",
                  "tool_calls", "tool_failures", "destructive_attempts", "unconfirmed_destructive_calls",
                  "blocked_calls", "escalated_at_s", "unrecovered_fault_s", "duration_s", "faults", "violations",
                  "output")
_REQUIRED_GET = operator.itemgetter(*_REQUIRED_KEYS)
_REQUIRED = frozenset(_REQUIRED_KEYS)
_ALL_KEYS = frozenset(KEYS)
_DICT = frozenset((dict,))

_EVENT = operator.attrgetter("seq", "t", "kind", "name", "outcome", "input_tokens", "output_tokens", "data")


#: ``TraceEvent.to_dict``'s keys, sorted: each with its %-spec (``_event_template``) and its argument name in the
#: writer (``_event_writer``); ``data`` and the token counts are left out of an event that has none
_EVENT_KEYS = {"data": ("%s", "d"), "input_tokens": ("%d", "i"), "kind": ("%s", "k"), "name": ("%s", "n"),
               "outcome": ("%s", "o"), "output_tokens": ("%d", "p"), "seq": ("%d", "q"), "t": ("%s", "t")}
_EVENT_OPTIONAL = {"data": 0, "input_tokens": 1, "output_tokens": 1}  # key -> which flag (data, tokens) keeps it


def _event_keys(data: bool, tokens: bool) -> list[str]:
    flags = (data, tokens)
    return [key for key in _EVENT_KEYS if key not in _EVENT_OPTIONAL or flags[_EVENT_OPTIONAL[key]]]


def _event_template(newline: str, data: bool, tokens: bool) -> str:
    """The %-template of a trace event at ``newline`` (``TraceEvent.to_dict``'s keys, sorted)."""
    inner = newline + "  "
    return "".join(("{" if i == 0 else ",") + inner + '"' + key + '": ' + _EVENT_KEYS[key][0]
                   for i, key in enumerate(_event_keys(data, tokens))) + newline + "}"


@functools.lru_cache(maxsize=256)
def _event_writer(newline: str, data: bool, tokens: bool) -> Callable[..., str]:
    """The function that writes an event at ``newline`` from (data text, input tokens, kind, name, outcome,
    output tokens, seq, t text), leaving out data and tokens when it has none (``_event_template``)."""
    inner = newline + "  "
    keys = [(key, _EVENT_KEYS[key][1]) for key in _event_keys(data, tokens)]
    pieces = [("{" if at == 0 else ",") + inner + '"' + key + '": ' for at, (key, _) in enumerate(keys)]
    body = "".join(f"{{s{at}}}{{{name}}}" for at, (_, name) in enumerate(keys))
    source = f"lambda d, i, k, n, o, p, q, t: f'{body}{{e}}'"
    namespace = {f"s{at}": piece for at, piece in enumerate(pieces)} | {"e": newline + "}"}
    return eval(source, namespace)  # (names only: the text is in the namespace)


def _types(column: Iterable[Any]) -> set[type]:
    return set(map(type, column))


def _all(kind: type, *columns: tuple[Any, ...]) -> bool:
    """Whether every value of every column is exactly of type ``kind``."""
    return all(_types(column) <= {kind} for column in columns)


def _optional_floats(column: tuple[float | None, ...]) -> list[str]:
    """None -> null, a float as the writer writes it (a nan or an infinity: its error)."""
    if column.count(None) == len(column):
        return ["null"] * len(column)
    return ["null" if v is None else _float(v) for v in column]


def _thaw(value: Any) -> Any:
    """``_frozen.thaw``: mappings -> dict, tuples and lists -> list, all the way down."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thaw(v) for v in value]
    return value


def write_json_at(value: Any, newline: str, write: Callable[[str], Any]) -> None:
    """``value``'s text as the writer writes it at the nesting whose line starts are ``newline``."""
    from .json_text import _Writer

    writer = _Writer(write)
    writer.value(value, newline)
    writer.flush()


__all__ = ["KEYS", "RecordsText", "Render", "write_json", "write_json_at"]

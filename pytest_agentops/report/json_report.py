"""The JSON report: a versioned schema, written atomically (temp file + rename)."""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import ReportError, hide_own_frames
from ..process.gc_hold import collector_paused
from ..process.umask import as_ordinary_file
from ..result import REPORT_SCHEMA_VERSION, CampaignResult
from .campaign_data import RecordDicts, campaign_order, plain_data
from .json_records import RecordsText
from .json_text import write_json

__tracebackhide__ = hide_own_frames


def report_dict(results: Iterable[CampaignResult | dict[str, Any]], *, with_traces: bool = False,
                comparisons: Iterable[Any] = (), session: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole report as plain data; deterministic for the same seeds (no wall times or dates); secrets
    redacted (``harness.secrets``: the records are redacted when they are made, every string again here).

    ``results`` may mix results and their ``to_dict()`` form (campaigns that ran in xdist workers); so may
    ``comparisons`` (paired comparisons, ``agent_chaos.compare``), listed under ``comparisons`` when any.
    ``session`` (from the pytest plugin): the run's exit status, whether it was interrupted, the campaign tests
    collected and those that never reported a campaign; the gate fails a report that is incomplete."""
    campaigns = sorted((plain_data(r) if isinstance(r, dict) else r.to_dict(with_traces=with_traces) for r in results),
                       key=campaign_order)
    from ..harness import secrets  # (here: the gate reads reports without loading the harness)

    secrets.refresh()  # the environment as it is now: every string of the report is redacted once more
    return _report(secrets.redact_data(campaigns), comparisons, session, secrets.redact_data)


def write_report(path: str | os.PathLike[str], results: Iterable[CampaignResult | dict[str, Any]], *,
                 with_traces: bool = False, comparisons: Iterable[Any] = (),
                 session: dict[str, Any] | None = None) -> Path:
    """Write the report to ``path`` atomically (readers never see a half-written file), streamed: the text
    is the one ``json.dumps(report_dict(...), indent=2, sort_keys=True)`` gives, but neither that string
    nor the report's whole tree is ever held; each trial's record is made, redacted and written in turn,
    so writing a report of 100,000 trials needs the memory of one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        # (no collection walks the campaigns' records while their text is made: ``collector_paused``)
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh, collector_paused():
            write_json(_streamed(results, with_traces, comparisons, session), fh.write)
            fh.write("\n")
        as_ordinary_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


class _Records(list):  # type: ignore[type-arg]
    """A campaign's ``records`` as the JSON writer walks them (``json_text``): each made (and redacted) when it
    is reached, never all at once. (The writer asks a list for its truth and its items, nothing else; or, with
    ``text``, a ``json_records.RecordsText`` of trial records, for the text of them all a block at a time.)"""

    def __init__(self, items: Sequence[Any], make: Callable[[Any], dict[str, Any]],
                 text: RecordsText | None = None, *, dicts: bool = False):
        super().__init__()
        self._items = items
        self._make = make
        if text is not None:  # (records, or their dicts)
            self.json_pieces = functools.partial(text.dict_pieces if dicts else text.pieces, items)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        for item in self._items:
            yield self._make(item)


def _streamed(results: Iterable[CampaignResult | dict[str, Any]], with_traces: bool, comparisons: Iterable[Any],
              session: dict[str, Any] | None) -> dict[str, Any]:
    """``report_dict``'s report with every campaign's records left to be made as they are written."""
    from ..harness import secrets  # (here: the gate reads reports without loading the harness)

    secrets.refresh()  # the environment as it is now: every string of the report is redacted once more
    campaigns = []
    order = []
    for r in results:
        source, traced = r, with_traces
        if isinstance(r, dict):
            head = {k: v for k, v in r.items() if k != "records"}
            records, make = r.get("records", []), secrets.redact_data
            if isinstance(records, RecordDicts):  # a campaign of this process: its records from its columns
                source, traced = records.result, records.with_traces
        else:
            head = r.to_dict(with_traces=with_traces, records=False)
        if isinstance(source, CampaignResult):
            records = source.records
            if not traced:  # (a passing trial's trace is never read back)
                records = records.failing_traces()
            make = functools.partial(_record, redact=secrets.redact_data, with_traces=traced)
        order.append(campaign_order(head))  # the order report_dict gives: sorted before redaction
        head = secrets.redact_data(head)
        if isinstance(source, CampaignResult):
            text = RecordsText(secrets.redact_text, traced, make, source.record_extras())
            head["records"] = _Records(records, make, text)
        elif "records" in r:
            text = RecordsText(secrets.redact_text, with_traces, make)
            head["records"] = _Records(records, make, text, dicts=True)
        campaigns.append(head)
    campaigns = [c for _, c in sorted(zip(order, campaigns, strict=True), key=lambda pair: pair[0])]
    return _report(campaigns, comparisons, session, secrets.redact_data)


def _report(campaigns: list[dict[str, Any]], comparisons: Iterable[Any], session: dict[str, Any] | None,
            redact: Callable[[Any], Any]) -> dict[str, Any]:
    """The report around its (redacted) campaigns: schema, version, the session, the comparisons."""
    out = {"schema": "pytest-agentops/report", "schema_version": REPORT_SCHEMA_VERSION,
           "tool_version": __version__, "campaigns": campaigns}
    if session is not None:
        out["session"] = redact(session)  # (test ids: a parametrized test's id may hold a secret)
    paired = sorted((c if isinstance(c, dict) else c.to_dict() for c in comparisons),
                    key=lambda c: (c["baseline"], c["candidate"], c["seed"]))
    if paired:
        out["comparisons"] = redact(paired)
    return out


def _record(record: Any, *, redact: Callable[[Any], Any], with_traces: bool) -> dict[str, Any]:
    return redact(CampaignResult.record_dict(record, with_traces))


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict, refusing a key given twice (``_DuplicateKey``)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return out


def read_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a report and check its schema version. A key twice in one object, a number too long for Python to
    read and nesting too deep for its JSON reader are ``ReportError``s (a hand-edited report: ``json`` keeps the
    last of two keys without a word, and the others raised Python's own errors)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise ReportError(f"{path}: the key {exc.args[0]!r} is given twice in one object: JSON readers keep one "
                          "of them or the other") from None
    except RecursionError:
        raise ReportError(f"{path}: nested deeper than Python's JSON reader goes: not a pytest-agentops report") \
            from None
    except ValueError as exc:
        if not text.strip():
            raise ReportError(f"{path}: the file is empty (a report that was never written, or cut off)") from None
        if "integer string conversion" not in str(exc):
            raise
        raise ReportError(f"{path}: a number of more than {sys.get_int_max_str_digits()} digits: no field of a "
                          "report holds one") from None
    if not isinstance(data, dict) or data.get("schema") != "pytest-agentops/report":
        raise ReportError(f"{path}: not a pytest-agentops report")
    version = data.get("schema_version")
    if type(version) is not type(REPORT_SCHEMA_VERSION) or version != REPORT_SCHEMA_VERSION:  # (true == 1, 1.0 == 1)
        raise ReportError(f"{path}: schema_version={data.get('schema_version')!r}, "
                         f"this version reads {REPORT_SCHEMA_VERSION}")
    return data

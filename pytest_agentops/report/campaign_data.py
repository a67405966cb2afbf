"""A campaign as every report reads it: ``CampaignResult.to_dict()`` plus what the reports add, computed once,
in the process that ran the campaign (under pytest-xdist, a worker), from the full records and traces:

- ``fault_delivery``: fault delivery and attribution (``report.attribution``);
- ``replay_command``: the template (``{index}``) of the command that re-runs one trial (with the test's node
  id), for the terminal and the HTML report;
- on request, what only the HTML report and the OpenTelemetry export need: ``series`` (each judged
  metric's value per trial, in launch order, for the sequential paths) and every trial's trace.

``json_form`` takes the series, the replay command and the passing trials' traces back out, so that the JSON
report is the same whichever reports were asked for, whether or not the campaign ran in a worker, and whether
it came from a YAML file or a Python test.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ..errors import hide_own_frames
from ..metrics import REGISTRY, builtin_metrics
from ..records import TrialRecord
from ..result import CampaignResult
from .attribution import fault_delivery
from .lazy_records import LazyRecords, MappedRecords

__tracebackhide__ = hide_own_frames


def metric_series(result: CampaignResult) -> list[dict[str, Any]]:
    """Per judged metric, its value for each trial in launch order: a rate ``[successes, chances]``, a count
    ``[violations, had_the_chance]``, a distribution's value (None: not applicable; ``"inf"``: never reached)."""
    names = [n for n in sorted({v.key.partition(".")[0] for v in result.verdicts}) if n in REGISTRY]
    builtin = builtin_metrics().keys()
    columns: list[tuple[Any, bool, list[Any]]] = [(REGISTRY[n].extract, REGISTRY[n].kind == "distribution", [])
                                                   for n in names]
    records: Iterable[TrialRecord] = result.records
    if set(names) <= builtin:  # (they read no trace: none is read back from the session's file)
        records = result.records.without_traces()
    for record in records:  # (one pass for every metric: each record is made once)
        for extract, distribution, values in columns:
            value = extract(record)
            if distribution:
                values.append(None if value is None else "inf" if math.isinf(value) else round(float(value), 6))
            else:
                values.append([int(value[0]), int(value[1])])
    return [{"metric": n, "kind": REGISTRY[n].kind, "values": values}
            for n, (_, _, values) in zip(names, columns, strict=True)]


class RecordDicts(LazyRecords):
    """A campaign's records as report dicts (``CampaignResult.record_dict``), made from the result's columns when
    read: the report data of a campaign run in this process then costs no memory per trial beyond its result's,
    and the JSON report streams the records from the columns (``json_report.write_report``). ``with_extra=False``
    (``lean``): the entries without the layers' ``extra``, which the HTML report does not read (merging and
    thawing it was half the cost of an entry); ``traceless``: without a trace either (the HTML report's table of
    trials: a failing trial's trace was made into dicts, and read back from the session's file, for nothing)."""

    __slots__ = ("no_traces", "result", "with_extra", "with_traces")

    def __init__(self, result: CampaignResult, with_traces: bool, with_extra: bool = True, *,
                 no_traces: bool = False):
        self.result = result
        self.with_traces = with_traces
        self.with_extra = with_extra
        self.no_traces = no_traces

    def __len__(self) -> int:
        return len(self.result.records)

    def _records(self, start: int, stop: int) -> Iterator[TrialRecord]:
        """The records of rows ``start`` to ``stop``, each with its trace where its entry shows it (a trace the
        session moved to disk is read back only then: a passing trial's entry has none unless ``with_traces``)."""
        records = self.result.records  # (always a ``RecordStore``: ``CampaignResult.__post_init__``)
        if self.no_traces:
            light = records.without_traces() if start == 0 and stop == len(records) else \
                map(records.without_trace, range(start, stop))
            yield from light
            return
        shown: Sequence[TrialRecord] = records if self.with_traces else records.failing_traces()
        yield from (shown if start == 0 and stop == len(records) else shown[start:stop])

    def _entry(self, record: TrialRecord) -> dict[str, Any]:
        if self.no_traces:
            return record.to_dict(with_extra=self.with_extra)
        return CampaignResult.record_dict(record, self.with_traces, self.with_extra)

    def _item(self, row: int) -> dict[str, Any]:
        return self._entry(next(self._records(row, row + 1)))

    def _block(self, start: int, count: int) -> list[dict[str, Any]]:
        return list(map(self._entry, self._records(start, start + count)))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return map(self._entry, self._records(0, len(self)))

    def lean(self) -> RecordDicts:
        return RecordDicts(self.result, self.with_traces, with_extra=False, no_traces=self.no_traces)

    def traceless(self) -> RecordDicts:
        return RecordDicts(self.result, self.with_traces, self.with_extra, no_traces=True)

    def __repr__(self) -> str:
        return (f"RecordDicts({self.result.scenario!r}, {len(self)} records, with_traces={self.with_traces}"
                + ("" if self.with_extra else ", with_extra=False") + (", no_traces=True" if self.no_traces else "")
                + ")")


def campaign_data(result: CampaignResult, *, all_traces: bool = False, series: bool = False) -> dict[str, Any]:
    """The campaign's report data (see the module's docstring); the trace of every trial with ``all_traces``
    (a smoke trial's and a replayed trial's always: a single trial is looked at as a whole). Its ``records``
    are a ``RecordDicts``: ``plain_data`` makes them a list."""
    single = result.smoke or result.replay is not None
    data = result.to_dict(with_traces=all_traces or single, records=False)
    data["records"] = RecordDicts(result, all_traces or single)
    if result.skipped is None:
        data["fault_delivery"] = fault_delivery(result)
    if result.replay_command:
        data["replay_command"] = result.replay_command
    if series:
        data["series"] = metric_series(result)
    return data


def json_form(data: dict[str, Any]) -> dict[str, Any]:
    """The JSON report's form of a campaign's report data: no ``series`` or ``replay_command`` (a node id: the
    same campaign run from a YAML file and from a Python test writes the same report), and traces only of the
    trials that did not pass (every trace of a smoke or replay run)."""
    out = {k: v for k, v in data.items() if k not in ("series", "replay_command")}
    single = data.get("smoke") or data.get("replay") is not None
    records = data.get("records", [])
    if isinstance(records, RecordDicts):  # (still made when read: a passing trial's entry without its trace)
        out["records"] = RecordDicts(records.result, bool(single))
    elif not single:
        out["records"] = (MappedRecords(records, _json_entry) if isinstance(records, LazyRecords)
                          else [_json_entry(r) for r in records])
    return out


def _json_entry(record: dict[str, Any]) -> dict[str, Any]:
    """A record's entry in the JSON report: a passing trial's without its trace (``trace_kept`` goes with it: its
    entry is the same whether or not every trace was asked for)."""
    if "trace" not in record or not passed(record):
        return record
    return {k: v for k, v in record.items() if k != "trace" and k != "trace_kept"}


def plain_data(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with its ``records`` as a list (plain JSON data: ``report_dict``'s input)."""
    records = data.get("records")
    return dict(data, records=list(records)) if isinstance(records, LazyRecords) else data


def passed(record: dict[str, Any]) -> bool:
    """Whether a record's entry is a passing trial: completed, and no violation (the reports' one rule)."""
    return record.get("outcome") == "completed" and not record.get("violations")


def campaign_order(c: dict[str, Any]) -> tuple[Any, ...]:
    """The order of campaigns in the reports: scenario, the test's node id (when the data has one), seed, replay."""
    return c["scenario"], c.get("nodeid", ""), c["seed"], c["replay"] if c["replay"] is not None else -1


def replay_hint(data: dict[str, Any], record: dict[str, Any]) -> str:
    """The command that re-runs ``record``'s trial: from the campaign's template (the test's node id), else
    (a campaign read back from a JSON report) the one that runs only that scenario's campaign among the
    collected tests."""
    template = data.get("replay_command")
    if template:
        return str(template).format(index=record["index"], seed=data["seed"], scenario=data["scenario"])
    return " ".join(["pytest --agent-chaos", f"--agent-chaos-seed={data['seed']}",
                     shlex.quote(f"--agent-chaos-replay={data['scenario']}/trial-{record['index']}")])

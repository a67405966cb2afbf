"""The JSON report: a versioned schema, written atomically (temp file + rename)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import ReportError
from ..result import REPORT_SCHEMA_VERSION, CampaignResult


def report_dict(results: Iterable[CampaignResult | dict[str, Any]], *, with_traces: bool = False,
                comparisons: Iterable[Any] = (), session: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole report as plain data; deterministic for the same seeds (no wall times or dates).

    ``results`` may mix results and their ``to_dict()`` form (campaigns that ran in xdist workers); so may
    ``comparisons`` (paired comparisons, ``agent_chaos.compare``), listed under ``comparisons`` when any.
    ``session`` (from the pytest plugin): the run's exit status, whether it was interrupted, the campaign tests
    collected and those that never reported a campaign; the gate fails a report that is incomplete."""
    campaigns = sorted((r if isinstance(r, dict) else r.to_dict(with_traces=with_traces) for r in results),
                       key=lambda c: (c["scenario"], c.get("nodeid", ""), c["seed"],
                                      c["replay"] if c["replay"] is not None else -1))
    out = {"schema": "pytest-agentops/report", "schema_version": REPORT_SCHEMA_VERSION,
           "tool_version": __version__, "campaigns": campaigns}
    if session is not None:
        out["session"] = session
    paired = sorted((c if isinstance(c, dict) else c.to_dict() for c in comparisons),
                    key=lambda c: (c["baseline"], c["candidate"], c["seed"]))
    if paired:
        out["comparisons"] = paired
    return out


def write_report(path: str | os.PathLike[str], results: Iterable[CampaignResult | dict[str, Any]], *,
                 with_traces: bool = False, comparisons: Iterable[Any] = (),
                 session: dict[str, Any] | None = None) -> Path:
    """Write the report to ``path`` atomically: readers never see a half-written file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report_dict(results, with_traces=with_traces, comparisons=comparisons, session=session),
                      indent=2,
                      sort_keys=True, allow_nan=False)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        os.chmod(tmp, 0o666 & ~_umask())  # as an ordinary file would be (mkstemp makes it 0600)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a report and check its schema version."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("schema") != "pytest-agentops/report":
        raise ReportError(f"{path}: not a pytest-agentops report")
    if data.get("schema_version") != REPORT_SCHEMA_VERSION:
        raise ReportError(f"{path}: schema_version={data.get('schema_version')!r}, "
                         f"this version reads {REPORT_SCHEMA_VERSION}")
    return data

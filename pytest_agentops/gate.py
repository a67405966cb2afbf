"""The pre-canary gate: read campaign reports, compare with a baseline run, exit 0 pass / 1 fail / 2 usage.

``agentops-gate report.json [--baseline base.json]`` (or ``python -m pytest_agentops gate ...``).
A campaign fails the gate when a verdict failed, when a verdict is inconclusive (unless
``--allow-inconclusive``), or, against a baseline, when a rate metric regressed significantly
(one-sided Fisher exact test at ``--alpha``) or a token/cost quantile grew by more than ``--max-growth``.
Campaigns marked ``xfail`` are expected to fail and only reported. A markdown summary is printed
(and written to ``--markdown PATH`` if given, and appended to ``$GITHUB_STEP_SUMMARY`` with ``--markdown``)
for the CI job page.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import GateUsageError
from .report.json_report import read_report
from .stats import fisher_less_pvalue

#: rate metrics where lower is worse, compared with the baseline by a one-sided exact test
HIGHER_IS_BETTER = ("completion_rate", "tool_success_rate", "resume_success_rate")
#: quantiles where growth is worse
GROWTH_CHECKED = (("tokens_per_task", "p95"), ("cost_usd_per_task", "p95"))


@dataclass(frozen=True, slots=True)
class GateFinding:
    """One reason a campaign passes or fails the gate."""

    scenario: str
    check: str
    ok: bool
    detail: str


def _campaigns(paths: Sequence[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        try:
            report = read_report(path)
        except FileNotFoundError:
            raise GateUsageError(f"{path}: no such report file") from None
        except ValueError as exc:
            raise GateUsageError(f"{path}: {exc}") from None
        for campaign in report["campaigns"]:
            if campaign.get("replay") is not None or campaign.get("smoke"):
                continue  # a replay or smoke run is no evidence for a gate
            out[campaign["scenario"]] = campaign
    return out


def evaluate_gate(current: dict[str, dict[str, Any]], baseline: dict[str, dict[str, Any]] | None, *,
                  alpha: float = 0.05, max_growth: float = 0.2, allow_inconclusive: bool = False
                  ) -> list[GateFinding]:
    """Every finding for every campaign in ``current`` (pure: no I/O)."""
    findings: list[GateFinding] = []
    for name, campaign in sorted(current.items()):
        expected_failure = bool(campaign.get("xfail"))
        for v in campaign.get("verdicts", []):
            ok = v["verdict"] == "pass" or (v["verdict"] == "inconclusive" and allow_inconclusive)
            detail = f"{v['key']} {v['expression']}: {v['verdict']} (estimate {v['estimate']}, bound {v['bound']})"
            if v.get("trials_needed"):
                detail += f"; about {v['trials_needed']} trials would decide"
            findings.append(GateFinding(name, "verdict", ok or expected_failure,
                                        detail + (" [xfail: expected]" if expected_failure and not ok else "")))
        if baseline is None or name not in baseline or expected_failure:
            continue
        base = baseline[name]
        for metric in HIGHER_IS_BETTER:
            cur_m, base_m = campaign["metrics"].get(metric), base["metrics"].get(metric)
            if not cur_m or not base_m or cur_m.get("k") is None or base_m.get("k") is None:
                continue
            p = fisher_less_pvalue(cur_m["k"], cur_m["n"], base_m["k"], base_m["n"])
            findings.append(GateFinding(
                name, f"regression:{metric}", p >= alpha,
                f"{metric}: {cur_m['k']}/{cur_m['n']} now vs {base_m['k']}/{base_m['n']} baseline, "
                f"one-sided Fisher p={p:.3g} (alpha {alpha:g})"))
        for metric, q in GROWTH_CHECKED:
            cur_v = (campaign["metrics"].get(metric) or {}).get(q)
            base_v = (base["metrics"].get(metric) or {}).get(q)
            if cur_v is None or base_v is None:
                continue
            limit = base_v * (1 + max_growth)
            findings.append(GateFinding(name, f"growth:{metric}.{q}", cur_v <= limit,
                                        f"{metric}.{q}: {cur_v:g} now vs {base_v:g} baseline "
                                        f"(limit +{max_growth:.0%} = {limit:g})"))
    return findings


def markdown(findings: list[GateFinding]) -> str:
    """The gate's summary as a markdown table."""
    passed = all(f.ok for f in findings)
    lines = [f"## Agent reliability gate: {'PASS' if passed else 'FAIL'}", "",
             "| scenario | check | result | detail |", "|---|---|---|---|"]
    for f in findings:
        lines.append(f"| {f.scenario} | {f.check} | {'pass' if f.ok else '**FAIL**'} | {f.detail} |")
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="agentops-gate", description=__doc__.split("\n\n")[0])
    p.add_argument("reports", nargs="+", help="JSON report(s) written by --agent-chaos-report")
    p.add_argument("--baseline", action="append", default=[], help="baseline report(s) to compare with")
    p.add_argument("--alpha", type=float, default=0.05, help="error rate of the regression test (default 0.05)")
    p.add_argument("--max-growth", type=float, default=0.2,
                   help="allowed relative growth of token/cost p95 over the baseline (default 0.2)")
    p.add_argument("--allow-inconclusive", action="store_true", help="let inconclusive verdicts pass")
    p.add_argument("--markdown", nargs="?", const="", metavar="PATH",
                   help="also write the markdown summary to PATH, and append it to $GITHUB_STEP_SUMMARY when that "
                        "is set (the job summary of GitHub Actions)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the gate; returns the exit code (0 pass, 1 fail, 2 usage error)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    try:
        if not 0 < args.alpha < 1:
            raise GateUsageError(f"--alpha={args.alpha} must be in (0, 1)")
        if args.max_growth < 0:
            raise GateUsageError(f"--max-growth={args.max_growth} must be >= 0")
        current = _campaigns(args.reports)
        baseline = _campaigns(args.baseline) if args.baseline else None
        if not current:
            raise GateUsageError("the reports hold no campaign (smoke and replay runs are not evidence)")
    except GateUsageError as exc:
        print(f"agentops-gate: error: {exc}", file=sys.stderr)
        return 2
    findings = evaluate_gate(current, baseline, alpha=args.alpha, max_growth=args.max_growth,
                             allow_inconclusive=args.allow_inconclusive)
    text = markdown(findings)
    print(text, end="")
    if args.markdown:
        Path(args.markdown).write_text(text, encoding="utf-8")
    if args.markdown is not None:
        _append_step_summary(text)
    return 0 if all(f.ok for f in findings) else 1


def _append_step_summary(text: str) -> None:
    """Append to the file ``$GITHUB_STEP_SUMMARY`` names (GitHub Actions shows it on the job's page)."""
    import os

    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

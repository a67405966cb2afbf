"""The cost of the reports of issue 13, side by side with the campaign they describe.

One campaign of the bundled naive HTTP agent under model faults (``scenarios/model_faults.yaml``, about a
quarter of its trials fail, so there are many traces to show), 1,000 trials without early stopping. Measured,
as the median of repeated runs:

- the campaign itself (wall seconds, trials/s), and the fault delivery and attribution computed from its
  records and traces (``report.attribution.fault_delivery``): its share of the campaign's time (goal <= 5%);
- the HTML report for the 1,000 trials: the seconds to build and write it (goal <= 2 s) and its size
  (goal < 2 MB);
- for reference: the JSON report, and the OpenTelemetry export to an OTLP/JSON file (when the ``otel``
  extra is installed).

Usage: ``python tests/benchmarks/bench_reports.py [--quick] [--trials N] [--repeat R]``; exits 1 when a goal
is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pytest_agentops import run_campaign
from pytest_agentops.report.attribution import _fault_delivery
from pytest_agentops.report.campaign_data import campaign_data, json_form
from pytest_agentops.report.html import write_html
from pytest_agentops.report.json_report import write_report
from pytest_agentops.scenario_file import load_scenarios

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios" / "model_faults.yaml"


def median_time(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 trials, 2 repeats")
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    trials, repeat = (200, 2) if args.quick else (args.trials, args.repeat)
    scenario = {s.name: s for s in load_scenarios(SCENARIOS)}["model-faults-naive"]

    def campaign():
        return run_campaign(scenario, trials=trials, early_stop=False, seed=601)

    campaign_s, result = median_time(campaign, max(1, repeat // 2 + 1))
    # (the work itself: ``fault_delivery`` keeps it with the result and hands out copies)
    attribution_s, fd = median_time(lambda: _fault_delivery(result), repeat)
    data = campaign_data(result, series=True)
    failing = sum(1 for r in result.records if not r.ok)
    with tempfile.TemporaryDirectory() as tmp:
        html_path = Path(tmp) / "report.html"
        html_s, _ = median_time(lambda: write_html(html_path, [data]), repeat)
        html_bytes = html_path.stat().st_size
        json_s, _ = median_time(lambda: write_report(Path(tmp) / "r.json", [json_form(campaign_data(result))]), repeat)
        json_bytes = (Path(tmp) / "r.json").stat().st_size
        otel = "otel extra not installed"
        try:
            from pytest_agentops.report.otel import export

            full = campaign_data(result, all_traces=True)
            otel_s, _ = median_time(lambda: export([full], file=Path(tmp) / "spans.jsonl"), max(1, repeat // 2))
            otel = f"{otel_s:.2f} s, {(Path(tmp) / 'spans.jsonl').stat().st_size / 1e6:.1f} MB"
        except ImportError:
            pass
    share = attribution_s / campaign_s
    print(f"campaign: {result.n} trials ({failing} did not pass) in {campaign_s:.2f} s "
          f"({result.n / campaign_s:.0f} trials/s), median of {max(1, repeat // 2 + 1)}")
    print(f"fault attribution: {attribution_s * 1000:.1f} ms = {share:.2%} of the campaign (goal <= 5%); "
          f"{len(fd['kinds'])} kinds")
    print(f"HTML report: {html_s:.3f} s to build and write (goal <= 2 s), {html_bytes / 1e6:.2f} MB (goal < 2 MB)")
    print(f"JSON report: {json_s:.3f} s, {json_bytes / 1e6:.2f} MB; OpenTelemetry OTLP/JSON file: {otel}")
    ok = share <= 0.05 and (args.quick or (html_s <= 2.0 and html_bytes < 2_000_000))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

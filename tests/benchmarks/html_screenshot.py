"""Take the README's screenshot of the HTML report (docs/html-report.png) in headless Chromium.

Runs the bundled model-faults scenarios (careful and naive HTTP agents), writes their HTML report, opens it
from its file:// URL in Debian's Chromium through playwright (no browser download) and saves the top of the
naive agent's campaign section. Usage: ``python tests/benchmarks/html_screenshot.py [OUT.png]``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from pytest_agentops import run_campaign
from pytest_agentops.report.campaign_data import campaign_data
from pytest_agentops.report.html import write_html
from pytest_agentops.scenario_file import load_scenarios

ROOT = Path(__file__).resolve().parents[2]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main(out: str = str(ROOT / "docs" / "html-report.png")) -> None:
    from playwright.sync_api import sync_playwright

    scenarios = load_scenarios(ROOT / "scenarios" / "model_faults.yaml")
    datas = [campaign_data(run_campaign(s, trials=200), series=True) for s in scenarios]
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        html = write_html(Path(tmp) / "report.html", datas)
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1100, "height": 1400}, device_scale_factor=1)
        page.goto(html.as_uri())
        section = page.locator("section.campaign[data-scenario=model-faults-naive]")
        box = section.bounding_box()
        clip = {"x": box["x"], "y": box["y"], "width": box["width"], "height": 1150}
        page.screenshot(path=out, full_page=True, clip=clip)
        browser.close()
    print(out)


if __name__ == "__main__":
    main(*sys.argv[1:])

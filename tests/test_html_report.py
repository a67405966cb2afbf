"""The HTML report (``--agent-chaos-html``) as users meet it: written by the plugin, byte-identical for the same
seeds, then opened from a ``file://`` URL in a real headless Chromium (Debian's package, driven by playwright,
started once for the module): no console error and no request besides the file itself, the charts drawn
(elements present, a screenshot that is not blank), the trial filter and sorting work, an agent's text escaped
and its secrets redacted.

Without Chromium the browser test is skipped, except under CI=true, where it fails (.ci/run installs it).
"""

from __future__ import annotations

import base64
import os
import shutil

import pytest

CI = os.environ.get("CI", "").lower() in ("true", "1")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

CONFTEST = '''
from pytest_agentops import Faults, Scenario, ToolFaults, tool

class Shop:
    def __init__(self):
        self.refunded = 0

@tool
def lookup(world, order_id: int, api_key: str = "") -> dict:
    """Look an order up."""
    return {"id": order_id}

@tool
def refund(world, order_id: int) -> str:
    """Refund an order."""
    world.refunded += 1
    return "refunded"

def agent(task, env):
    env.record_usage(input_tokens=int(200 + 400 * env.rng.random()), output_tokens=30, model="gpt-4o-mini")
    env.tools["lookup"](7, api_key="sk-live-abcdefghijklmnop1234")  # a secret: redacted everywhere
    try:
        env.tools["refund"](7)
    except Exception:
        return "<script>alert('pwned')</script> gave up"
    return "done"

def scenario(name, rate):
    return Scenario(name=name, agent=agent, task="refund", world=Shop, tools=[lookup, refund],
                    check=lambda world, output: world.refunded == 1,
                    faults=Faults(rate=0.05, per_tool={"refund": ToolFaults(rate, {"timeout": 1.0, "error": 1.0})}),
                    trials=40, seed=9, expect={"completion_rate": ">= 0.8", "tokens_per_task.p95": "<= 700"})
'''

TEST = '''
from conftest import scenario

def test_steady(agent_chaos):
    agent_chaos.run(scenario("steady", 0.05))

def test_shaky(agent_chaos):
    agent_chaos.run(scenario("shaky", 0.4))
'''


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if CI:
            pytest.fail("CI=true: the HTML report must be checked in a real browser, but chromium is not installed "
                        "(.ci/run installs Debian's chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def report(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_shop=TEST)
    first = pytester.runpytest("--agent-chaos", "--agent-chaos-html=out/report.html", "-p", "no:cacheprovider")
    first.assert_outcomes(passed=2)
    path = pytester.path / "out" / "report.html"
    text = path.read_text(encoding="utf-8")
    pytester.runpytest("--agent-chaos", "--agent-chaos-html=again.html", "-p", "no:cacheprovider",
                       "--agent-chaos-concurrency=8")
    assert (pytester.path / "again.html").read_text(encoding="utf-8") == text  # same seeds: same bytes
    return path


def _static_checks(report):
    text = report.read_text(encoding="utf-8")
    assert len(text.encode()) < 400_000
    assert "sk-live-abcdefghijklmnop1234" not in text and "[redacted]" in text
    assert "<script>alert" not in text and "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in text
    assert text.count("<script>") == 1 and "src=" not in text and "http://" not in text and "https://" not in text
    assert "Content-Security-Policy" in text


def _pixels_not_background(page, png: bytes) -> int:
    """How many pixels of a screenshot differ from its top-left pixel (decoded by the browser itself)."""
    return page.evaluate("""async (data) => {
        const img = new Image();
        img.src = 'data:image/png;base64,' + data;
        await img.decode();
        const c = document.createElement('canvas');
        c.width = img.width; c.height = img.height;
        const g = c.getContext('2d');
        g.drawImage(img, 0, 0);
        const px = g.getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < px.length; i += 4) {
            if (px[i] !== px[0] || px[i + 1] !== px[1] || px[i + 2] !== px[2]) { n++; }
        }
        return n;
    }""", base64.b64encode(png).decode())


def test_the_report_is_self_contained_and_works_in_a_real_browser(report, browser):
    _static_checks(report)  # escaped, redacted, nothing fetched
    page = browser.new_page(viewport={"width": 1240, "height": 900})
    problems, requests = [], []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: problems.append(f"dialog: {d.message}"))
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    assert problems == [] and requests == [report.as_uri()]

    sections = page.locator("section.campaign")
    assert sections.count() == 2
    shaky = page.locator("section.campaign[data-scenario=shaky]")
    # charts: the sequential path of the rate, tokens and cost distributions, drawn with data
    assert shaky.locator("figure[data-chart='path:completion_rate'] polyline").count() == 3  # estimate, 2 bounds
    assert shaky.locator("figure[data-chart='dist:tokens_per_task'] rect.bar").count() > 3
    assert shaky.locator("figure[data-chart='dist:tokens_per_task'] line.marker.threshold").count() == 1
    chart = shaky.locator("figure[data-chart='path:completion_rate']")
    assert chart.bounding_box()["width"] > 300
    assert _pixels_not_background(page, chart.screenshot()) > 2000
    # fault delivery and attribution
    assert "refund" in shaky.locator("table.fault-targets").inner_text()
    # the trial filter and sort
    rows = shaky.locator("table.trials tbody tr")
    total = rows.count()
    shown = shaky.locator(".filters .count")
    assert shown.inner_text() == f"{total} of {total} trials"
    shaky.locator(".filters select").select_option("not-passed")
    bad = shaky.locator("table.trials tbody tr.bad").count()
    assert 0 < bad < total and shown.inner_text() == f"{bad} of {total} trials"
    assert shaky.locator("table.trials tbody tr:not([hidden])").count() == bad
    assert shaky.locator("table.trials tbody tr.bad[hidden]").count() == 0
    shaky.locator(".filters select").select_option("")
    shaky.locator(".filters input[type=search]").fill("trial-3")
    visible = shaky.locator("table.trials tbody tr:not([hidden]) td:first-child").all_inner_texts()
    assert visible and all("trial-3" in t for t in visible)
    shaky.locator(".filters input[type=search]").fill("")
    shaky.locator("table.trials th", has_text="tokens").click()
    tokens = [int(t) for t in shaky.locator("table.trials tbody tr td:nth-child(5)").all_inner_texts()]
    assert tokens == sorted(tokens)
    # a failing trial's row opens its timeline, with the replay command
    link = shaky.locator("table.trials a.trace-link").first
    target = link.get_attribute("href")[1:]
    link.click()
    details = page.locator(f"details#{target}")
    assert details.get_attribute("open") is not None
    assert "--agent-chaos-replay=shaky/trial-" in details.inner_text() and "FAULT" in details.inner_text()
    assert problems == []
    page.close()

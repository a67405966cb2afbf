"""The README's example is real code: run it as a user would, through pytester. And the documentation
cannot silently fall behind: its links resolve, the options reference names every registered option, and
every public name is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_example_runs_as_smoke_and_as_campaign(pytester):
    example = next(block for block in _python_blocks() if "def test_refund(agent_chaos)" in block)
    pytester.makepyfile(test_readme_example=example)
    pytester.runpytest().assert_outcomes(passed=1)
    result = pytester.runpytest("--agent-chaos", "--agent-chaos-trials=120")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*refund*seed=7*profile=mid*", "*unconfirmed_destructive_calls*pass*"])


# --- the documentation cannot silently fall behind the code ----------------------------------------------------

ROOT = README.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS, ROOT / "CHANGELOG.md"]
_LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)\)")


def _without_code(path: Path, *, spans: bool = True) -> str:
    """A page without its fenced code blocks and (``spans``) inline code: brackets there are not links."""
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    return re.sub(r"`[^`]*`", "", text) if spans else text


def _anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", _without_code(path, spans=False), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


#: Pages written on a branch that may not edit the README: linked from it when the branches are merged (each is
#: linked from other docs pages meanwhile). Empty this once the README links them.
PENDING_README_LINK: set[str] = set()


def test_the_docs_pages_exist_and_the_readme_links_each():
    names = {p.name for p in DOCS}
    assert {"options.md", "metrics.md", "scenario-files.md", "statistics.md", "harness.md", "architecture.md",
            "layers.md"} <= names
    linked = {target.split("#")[0] for target in _LINK.findall(_without_code(README))}
    assert {f"docs/{name}" for name in names - PENDING_README_LINK} <= linked


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_an_existing_file(page):
    for target in _LINK.findall(_without_code(page)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.is_file(), f"{page.name}: link to {target!r}: no file {resolved}"
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(resolved), f"{page.name}: link to {target!r}: no heading with that anchor"


def _registered_options() -> list[str]:
    """The command-line options pytest_plugin/options.py registers, read from its source."""
    source = (ROOT / "pytest_agentops" / "pytest_plugin" / "options.py").read_text(encoding="utf-8")
    return re.findall(r"addoption\(\s*\"(--agent-chaos[\w-]*)\"", source)


def test_the_options_reference_names_every_registered_option_and_ini_key():
    from pytest_agentops.pytest_plugin.options import INI_NAMES

    options, ini = _registered_options(), sorted(INI_NAMES)
    assert "--agent-chaos" in options and len(options) >= 7 and "agentops_scenario_files" in ini
    text = (ROOT / "docs" / "options.md").read_text(encoding="utf-8")
    for name in options:
        assert re.search(rf"`{re.escape(name)}(?![\w-])", text), f"docs/options.md does not document {name}"
    for name in ini:
        assert re.search(rf"`{re.escape(name)}\b", text), f"docs/options.md does not document the ini key {name}"


def test_every_public_name_is_documented():
    import pytest_agentops

    text = "\n".join(p.read_text(encoding="utf-8") for p in [README, *DOCS])
    missing = [name for name in pytest_agentops.__all__ if not re.search(rf"\b{re.escape(name)}\b", text)]
    assert missing == []


def test_the_readme_trace_viewer_example_is_what_the_viewer_prints(pytester):
    """The timeline shown in the README comes from running its bundled scenario and showing the trial."""
    text = README.read_text(encoding="utf-8")
    start = text.index("```\ndestructive-naive[trial-0") + 4
    block = text[start:text.index("```", start)]
    scenario = README.parent / "scenarios" / "destructive_request.yaml"
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / scenario.name).write_text(scenario.read_text(encoding="utf-8"))
    ran = pytester.runpytest("-p", "no:cacheprovider", "--agent-chaos", "--agent-chaos-report=r.json")
    assert ran.ret == 0
    shown = pytester.runpytest("-p", "no:cacheprovider", "--agent-chaos-report=r.json",
                               "--agent-chaos-show=destructive-naive/trial-0").stdout.str()
    for line in block.splitlines():  # a line cut short in the README (...) matches up to the cut
        assert line.split("...")[0].rstrip(" ,{'") in shown, line

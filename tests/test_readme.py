"""The README's example is real code: run it as a user would, through pytester."""

from __future__ import annotations

import re
from pathlib import Path

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

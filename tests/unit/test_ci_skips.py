"""A test whose required service or tool is missing skips on a laptop and fails under CI=true."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

NEEDS_A_MISSING_TOOL = """
from tests.conftest import missing, require_tool

def test_needs_a_tool():
    require_tool("clv-no-such-tool-on-any-path", "apt-get install it")

def test_needs_a_service():
    missing("the service at 127.0.0.1:1 does not answer")

def test_an_ordinary_skip_stays_a_skip():
    import pytest
    pytest.skip("not relevant here")
"""


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_needs=NEEDS_A_MISSING_TOOL)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rsf")


def test_without_ci_a_missing_tool_skips_and_says_why(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(pytester, monkeypatch, ci=None)
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(
        ["*clv-no-such-tool-on-any-path is not on PATH (apt-get install it)*"]
    )


@pytest.mark.parametrize("value", ["true", "TRUE", "1"])
def test_under_ci_a_missing_tool_or_service_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    result = _run(pytester, monkeypatch, ci=value)
    # The ordinary skip (nothing required is missing) is still a skip.
    result.assert_outcomes(failed=2, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*clv-no-such-tool-on-any-path is not on PATH*CI=true*",
            "*127.0.0.1:1 does not answer*CI=true*",
        ],
        consecutive=False,
    )


def test_ci_false_behaves_like_a_laptop(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run(pytester, monkeypatch, ci="false").assert_outcomes(skipped=3)

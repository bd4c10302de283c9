"""The suite cannot pass by skipping under CI=true (tests/support/ci_plugin.py)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SUITE = """
import pytest
from tests.support.ci_plugin import require_executable

def test_passes():
    assert True

def test_needs_a_tool_nobody_has():
    require_executable("no-such-tool-anywhere")

@pytest.mark.skip(reason="a plain skip")
def test_skipped():
    pass
"""


def run_pytest(tmp_path, ci):
    (tmp_path / "test_sample.py").write_text(SUITE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.support.ci_plugin",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_outside_ci_a_missing_tool_and_a_skip_are_skips(tmp_path):
    result = run_pytest(tmp_path, ci=False)
    assert result.returncode == 0, result.stdout
    assert "1 passed, 2 skipped" in result.stdout


def test_under_ci_a_missing_tool_fails_and_any_skip_fails_the_run(tmp_path):
    result = run_pytest(tmp_path, ci=True)
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout
    assert "CI=true: none of no-such-tool-anywhere is installed" in result.stdout
    assert "CI=true: 1 test(s) skipped, which fails the run" in result.stdout
    assert "test_sample.py::test_skipped" in result.stdout

"""Under CI=true a skipped test fails the run: a suite must not pass by skipping.

Locally a missing browser or server skips its tests with a reason; CI installs
everything (scripts/test), so a skip there means a required tool is missing.
"""

import os
import shutil

import pytest


def in_ci():
    return os.environ.get("CI") == "true"


def require_executable(*candidates):
    """Return the first executable found; skip the test without one (fail under CI)."""
    for name in candidates:
        found = shutil.which(name) or (
            name if os.path.isabs(name) and os.access(name, os.X_OK) else None
        )
        if found:
            return found
    message = f"none of {', '.join(candidates)} is installed (scripts/test installs them)"
    if in_ci():
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    if not in_ci():
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        names = "\n".join(f"  {report.nodeid}: {report.longrepr[-1]}" for report in skipped)
        print(f"\nCI=true: {len(skipped)} test(s) skipped, which fails the run:\n{names}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

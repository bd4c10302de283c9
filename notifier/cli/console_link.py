"""`notifier console-link --project P --expires 1h`: print a pre-signed console URL."""

import sys
from typing import Any

from notifier import errors
from notifier.services.console import console_link


def run_console_link(conf: Any, project: str, expires: str) -> int:
    """Print the console URL of ``project``; return the exit status."""
    try:
        print(console_link(conf, project, expires), flush=True)
    except errors.ValidationError as exc:
        print(f"notifier console-link: {exc.field}: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0

"""`notifier console-link` and the console link of `notifier dev`'s ready line."""

import re
import subprocess
import sys

import pytest
import requests

from notifier.cli.redis_server import free_port
from tests.support.dev import DevProcess

CONSOLE_LINE = re.compile(r"Operator console \(project (\S+), 1 day\): (http://\S+/console\?\S+)")


def console_link(*args):
    return subprocess.run(
        [sys.executable, "-m", "notifier.cli", "console-link", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_console_link_prints_a_signed_url(tmp_path):
    conf = tmp_path / "notifier.conf"
    conf.write_text("[signed_url]\nsecret_key = k\n[api]\npublic_url = https://n.example/\n")

    done = console_link("--project", "demo", "--expires", "2h", "--config-file", str(conf))

    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert re.fullmatch(
        r"https://n\.example/console\?project=demo&expires=\S+&signature=[0-9a-f]{64}", url
    )


@pytest.mark.parametrize(
    ("args", "conf_text", "fragment"),
    [
        (["--project", "demo"], "", "secret_key"),
        (
            ["--project", "demo", "--expires", "yesterday"],
            "[signed_url]\nsecret_key = k\n",
            "expires",
        ),
        (["--project", "has space"], "[signed_url]\nsecret_key = k\n", "X-Project-ID"),
    ],
)
def test_console_link_refuses_what_cannot_work(tmp_path, args, conf_text, fragment):
    conf = tmp_path / "notifier.conf"
    conf.write_text(conf_text)

    done = console_link(*args, "--config-file", str(conf))

    assert done.returncode == 2
    assert fragment in done.stderr and done.stdout == ""


@pytest.mark.slow
def test_notifier_devs_ready_line_prints_a_console_link_that_opens(tmp_path):
    argv = [sys.executable, "-m", "notifier.cli", "dev", "--port", str(free_port())]
    proc = DevProcess(argv + ["--concurrency", "1"], cwd=tmp_path)
    try:
        assert proc.wait_ready(), proc.output()
        proc.call("PUT", "/queues/devq")
        found = None
        for _ in range(50):
            found = CONSOLE_LINE.search(proc.output())
            if found:
                break
            import time

            time.sleep(0.1)
        assert found, proc.output()
        page = requests.get(found[2], timeout=5)
        assert page.status_code == 200
        assert "devq" in page.text  # the README's project, "demo"
        proc.stop_with_ctrl_c()
    except BaseException:
        proc.kill()
        raise

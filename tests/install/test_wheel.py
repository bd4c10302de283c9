"""The wheel, installed alone, runs the service: webhooks, e-mail from the shipped templates,
the confirmation page.

Installed the way the Dockerfile installs it: the locked runtime versions
(requirements/runtime.txt, hash-checked), then the wheel with no extras. With
NOTIFIER_INSTALL_FROM=index (the upstream-drift job, scripts/check-upstream)
the wheel's dependencies are resolved afresh to the newest versions instead.
"""

import os
import sys
import zipfile

import pytest

from notifier.cli.redis_server import free_port
from tests.install.conftest import ROOT, clean_env, run
from tests.support.dev import DevProcess
from tests.support.smtp import SMTPServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    build = tmp_path_factory.mktemp("build")
    # Built from a copy-free source tree, as `pip install .` in the image does.
    run(
        [
            os.path.join(os.path.dirname(sys.executable), "pip"),
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(out),
            str(ROOT),
        ],
        cwd=build,
    )
    [path] = out.glob("notifier-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory, base_python):
    venv = tmp_path_factory.mktemp("user") / "venv"
    run([base_python, "-m", "venv", str(venv)], env=clean_env())
    pip = [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
    if os.environ.get("NOTIFIER_INSTALL_FROM") == "index":
        run(pip + [str(wheel)], env=clean_env())
    else:
        run(
            pip + ["--require-hashes", "-r", str(ROOT / "requirements" / "runtime.txt")],
            env=clean_env(),
        )
        run(pip + ["--no-deps", str(wheel)], env=clean_env())
    return venv


def test_the_wheel_ships_the_templates_the_openapi_document_the_lua_scripts_and_py_typed(
    wheel,
):
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {n for n in names if n.startswith("notifier/templates/")}
    shipped = {
        "notifier/templates/" + str(p.relative_to(ROOT / "templates"))
        for p in (ROOT / "templates").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert templates == shipped
    assert {"notifier/api/openapi.yaml", "notifier/py.typed"} <= names
    scripts = {
        "notifier/store/scripts/" + p.name
        for p in (ROOT / "notifier" / "store" / "scripts").glob("*.lua")
    }
    assert scripts and scripts <= names


def test_the_installed_package_runs_from_the_venv_not_the_checkout(installed, tmp_path):
    result = run(
        [
            str(installed / "bin" / "python"),
            "-c",
            "import notifier, notifier.resources as r; print(notifier.__file__); "
            "print(r.packaged('email', 'notification.txt'))",
        ],
        cwd=tmp_path,
        env=clean_env(),
    )
    for line in result.stdout.splitlines():
        assert line.startswith(str(installed)), line


def test_notifier_dev_from_the_wheel_delivers_a_webhook_and_an_email_and_serves_the_page(
    installed, tmp_path, receiver
):
    with SMTPServer() as smtp:
        conf = tmp_path / "smtp.conf"
        conf.write_text(smtp.config_text())
        with DevProcess(
            [
                str(installed / "bin" / "notifier"),
                "dev",
                "--port",
                str(free_port()),
                "--config-file",
                str(conf),
            ],
            cwd=tmp_path,
            env=clean_env(),
        ) as proc:
            assert proc.wait_ready(), proc.output()
            proc.call(
                "POST",
                "/queues/orders/subscriptions",
                body={"subscriber": receiver.url + "/hook", "ttl": 3600, "options": {}},
            )
            proc.call(
                "POST",
                "/queues/orders/subscriptions",
                body={"subscriber": "mailto:ops@example.com", "ttl": 3600, "options": {}},
            )
            proc.call(
                "POST",
                "/queues/orders/messages",
                body={"messages": [{"ttl": 300, "body": {"event": "placed", "id": 42}}]},
            )
            [hook] = receiver.wait_for(1, "/hook")
            assert hook.json()["body"] == {"event": "placed", "id": 42}
            [mail] = smtp.wait_for(1, rcpt="ops@example.com", timeout=60)
            text = mail.message.get_body(("plain",)).get_content()
            # Rendered from the shipped templates/email/notification.txt.
            assert 'A message was posted to the queue "orders" of project demo.' in text
            page = proc.call("GET", "/confirmation")
            assert page.headers["Content-Type"].startswith("text/html")
            assert "<title>Confirm your subscription</title>" in page.text
            proc.stop_with_ctrl_c()

"""A real Keystone (the ``keystone`` package from PyPI) on 127.0.0.1, on SQLite.

Setup takes ~10 s: ``keystone-manage db_sync`` and ``bootstrap`` (fernet and
credential keys are written here, saving two more keystone-manage runs), then
Keystone's own WSGI app is served by a threaded wsgiref server in a child
process. A thin WSGI wrapper appends one JSON line per request to
``requests.jsonl`` (method, path, and for POST /v3/auth/tokens the scope asked
for) so tests can count the calls notifier made.

Users made by ``populate``: ``admin`` (bootstrap), ``alice`` with roles
member (and the implied reader) on project ``demo``, and the trustee
``notifier`` with role service on project ``service``. The catalog gets a
``workflowv2`` service whose public endpoint is the given Mistral URL in
RegionOne and, if given, a dead one in RegionTwo.

Run as a script it serves: ``python -m tests.support.keystone_server CONF PORT LOG``.
"""

import json
import os
import subprocess
import sys
import threading
import time

import requests
from cryptography.fernet import Fernet

from notifier.cli.redis_server import free_port, stop_process

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADMIN_PASSWORD = "admin-secret"
PASSWORDS = {"alice": "alice-secret", "notifier": "notifier-secret"}

CONFIG = """[DEFAULT]
use_stderr = true
[database]
connection = sqlite:///{dir}/keystone.db
[fernet_tokens]
key_repository = {dir}/fernet-keys
[fernet_receipts]
key_repository = {dir}/receipt-keys
[credential]
key_repository = {dir}/credential-keys
[token]
expiration = 3600
"""

MANAGE = "from keystone.cmd.manage import main; main()"


def _write_keys(directory):
    os.makedirs(directory, mode=0o700)
    for index in ("0", "1"):
        with open(os.path.join(directory, index), "wb") as handle:
            handle.write(Fernet.generate_key())


class KeystoneServer:
    """Set up and run a private Keystone; ``with KeystoneServer(dir) as ks``."""

    def __init__(self, directory):
        self.directory = str(directory)
        self.port = free_port()
        self.config = os.path.join(self.directory, "keystone.conf")
        self.record = os.path.join(self.directory, "requests.jsonl")
        self.process = None
        self.ids = {}
        self._admin_token = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/v3"

    def start(self, timeout=60):
        with open(self.config, "w") as handle:
            handle.write(CONFIG.format(dir=self.directory))
        for name in ("fernet-keys", "receipt-keys", "credential-keys"):
            _write_keys(os.path.join(self.directory, name))
        self._manage("db_sync")
        self._manage(
            "bootstrap",
            "--bootstrap-password",
            ADMIN_PASSWORD,
            "--bootstrap-public-url",
            self.url,
            "--bootstrap-region-id",
            "RegionOne",
        )
        log = open(os.path.join(self.directory, "keystone.log"), "ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.keystone_server",
                self.config,
                str(self.port),
                self.record,
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready(timeout)
        return self

    def _manage(self, *args):
        subprocess.run(
            [sys.executable, "-c", MANAGE, "--config-file", self.config, *args],
            check=True,
            capture_output=True,
            cwd=self.directory,
        )

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("keystone exited; see keystone.log")
            try:
                if requests.get(self.url, timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError("keystone did not come up")

    def stop(self):
        stop_process(self.process)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- admin calls ------------------------------------------------------

    def token(self, user, project, password=None):
        """Return (token, body) of a password token of ``user`` on ``project``."""
        password = password or (ADMIN_PASSWORD if user == "admin" else PASSWORDS[user])
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {"name": user, "domain": {"id": "default"}, "password": password}
                    },
                },
                "scope": {"project": {"name": project, "domain": {"id": "default"}}},
            }
        }
        response = requests.post(self.url + "/auth/tokens", json=body, timeout=10)
        response.raise_for_status()
        return response.headers["X-Subject-Token"], response.json()["token"]

    def admin_token(self):
        if self._admin_token is None:
            self._admin_token = self.token("admin", "admin")[0]
        return self._admin_token

    def call(self, method, path, token=None, **kwargs):
        token = token or self.admin_token()
        response = requests.request(
            method, self.url + path, timeout=10, headers={"X-Auth-Token": token}, **kwargs
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def _create(self, token, collection, **fields):
        singular = collection[:-1]
        return self.call("POST", f"/{collection}", token, json={singular: fields})[singular]["id"]

    def populate(self, mistral_url, unreachable_mistral_url=None):
        """Create the projects, users, roles and catalog the tests use."""
        admin = self.admin_token()
        # bootstrap made the roles admin > manager > member > reader and service
        ids = {
            "member": self._role_id(admin, "member"),
            "service_role": self._role_id(admin, "service"),
        }
        for project in ("demo", "service"):
            ids[project] = self._create(admin, "projects", name=project, domain_id="default")
        for user, project, role in (
            ("alice", "demo", "member"),
            ("notifier", "service", "service_role"),
        ):
            ids[user] = self._create(
                admin, "users", name=user, domain_id="default", password=PASSWORDS[user]
            )
            self.call("PUT", f"/projects/{ids[project]}/users/{ids[user]}/roles/{ids[role]}", admin)
        service = self._create(admin, "services", type="workflowv2", name="mistral")
        self._create(
            admin,
            "endpoints",
            service_id=service,
            interface="public",
            url=mistral_url,
            region_id="RegionOne",
        )
        if unreachable_mistral_url:
            self.call("POST", "/regions", admin, json={"region": {"id": "RegionTwo"}})
            self._create(
                admin,
                "endpoints",
                service_id=service,
                interface="public",
                url=unreachable_mistral_url,
                region_id="RegionTwo",
            )
        self.ids = ids
        return ids

    def _role_id(self, token, name):
        return self.call("GET", "/roles", token, params={"name": name})["roles"][0]["id"]

    def validate(self, token):
        """Return Keystone's document of a token, or None if it is not valid."""
        if not token:
            return None
        response = requests.get(
            self.url + "/auth/tokens",
            timeout=10,
            headers={"X-Auth-Token": self.admin_token(), "X-Subject-Token": token},
        )
        return response.json()["token"] if response.status_code == 200 else None

    def revoke(self, token):
        requests.delete(
            self.url + "/auth/tokens",
            timeout=10,
            headers={"X-Auth-Token": self.admin_token(), "X-Subject-Token": token},
        )

    def seen(self):
        """Return the requests Keystone received, oldest first."""
        if not os.path.exists(self.record):
            return []
        with open(self.record) as handle:
            return [json.loads(line) for line in handle]

    def trust_token_requests(self):
        return [r for r in self.seen() if r.get("scope") == "trust"]


def _token_scope(body):
    try:
        scope = json.loads(body)["auth"].get("scope")
    except (ValueError, KeyError, AttributeError):
        return "invalid"
    if not scope:
        return "unscoped"
    if "OS-TRUST:trust" in scope:
        return "trust"
    return next(iter(scope))


def recording(app, path):
    """Wrap a WSGI app so each request appends a JSON line to ``path``."""
    import io

    lock = threading.Lock()

    def wrapped(environ, start_response):
        entry = {"method": environ["REQUEST_METHOD"], "path": environ["PATH_INFO"]}
        if entry["method"] == "POST" and entry["path"].endswith("/auth/tokens"):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            entry["scope"] = _token_scope(body)
        with lock, open(path, "a") as handle:
            handle.write(json.dumps(entry) + "\n")
        return app(environ, start_response)

    return wrapped


def serve(config_file, port, record_path):
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    os.environ["OS_KEYSTONE_CONFIG_DIR"] = os.path.dirname(config_file)
    os.environ["OS_KEYSTONE_CONFIG_FILES"] = os.path.basename(config_file)
    from keystone.server.wsgi import initialize_public_application

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    app = recording(initialize_public_application(), record_path)
    make_server(
        "127.0.0.1", int(port), app, server_class=Server, handler_class=QuietHandler
    ).serve_forever()


if __name__ == "__main__":
    arguments, sys.argv[1:] = sys.argv[1:4], []  # keystone parses sys.argv
    serve(*arguments)

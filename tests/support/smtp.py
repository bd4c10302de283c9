"""A real SMTP server (aiosmtpd) on 127.0.0.1 that records what it receives.

``SMTPServer(security="plain"|"starttls"|"tls", cert=..., auth=(user, pw))``;
DATA replies are scripted like the HTTP receiver's statuses:
``server.script([451, 250])`` answers 451 once, then 250 (the last repeats),
and ``server.refuse("x@example.com", 550)`` refuses one recipient at RCPT.
"""

import email
import email.policy
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from notifier.cli.redis_server import free_port

REPLIES = {
    250: "250 2.0.0 Ok: queued",
    421: "421 4.3.2 Service shutting down",
    451: "451 4.3.0 Try again later",
    452: "452 4.2.2 Mailbox full",
    550: "550 5.7.1 Message rejected",
    554: "554 5.6.0 Transaction failed",
}


def make_self_signed_cert(directory):
    """Write a self-signed cert for localhost/127.0.0.1; return (cert, key) paths."""
    cert, key = Path(directory) / "smtp-cert.pem", Path(directory) / "smtp-key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


def server_tls_context(cert, key):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list
    mail_options: list
    content: bytes
    peer: tuple
    at: float = field(default_factory=time.monotonic)

    @property
    def message(self):
        return email.message_from_bytes(self.content, policy=email.policy.default)


class RecordingHandler:
    def __init__(self):
        self.received = []
        self.data_commands = 0
        self._script = []
        self._refused = {}
        self.arrived = threading.Condition()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self._refused:
            return self._refused[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        with self.arrived:
            self.data_commands += 1
            code = (
                self._script.pop(0)
                if len(self._script) > 1
                else (self._script[0] if self._script else 250)
            )
            if code == 250:
                self.received.append(
                    ReceivedMail(
                        envelope.mail_from,
                        list(envelope.rcpt_tos),
                        list(envelope.mail_options),
                        envelope.original_content,
                        tuple(session.peer),
                    )
                )
            self.arrived.notify_all()
        return REPLIES.get(code, f"{code} scripted reply")


class SMTPServer:
    def __init__(self, security="plain", cert=None, auth=None, smtputf8=True):
        self.security = security
        self.cert = cert
        self.auth = auth
        self.smtputf8 = smtputf8
        self.port = free_port()
        self.handler = RecordingHandler()
        self.logins = []
        self.controller = None

    def start(self):
        kwargs = {"enable_SMTPUTF8": self.smtputf8, "server_hostname": "localhost"}
        if self.security != "plain":
            context = server_tls_context(*self.cert)
            key = "ssl_context" if self.security == "tls" else "tls_context"
            kwargs[key] = context
            kwargs["require_starttls"] = self.security == "starttls"
        if self.auth:
            kwargs.update(
                authenticator=self._authenticate,
                auth_required=True,
                auth_require_tls=self.security != "plain",
            )
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)
        self.controller.start()
        return self

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def restart(self):
        """Drop every open connection and listen again on the same port."""
        self.stop()
        return self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and (auth_data.login.decode(), auth_data.password.decode()) == self.auth
        )
        self.logins.append((mechanism, ok))
        return AuthResult(success=ok, handled=False)  # aiosmtpd replies 535

    # -- scripting and inspection -------------------------------------------

    def script(self, codes):
        self.handler._script = list(codes)

    def refuse(self, address, code=550):
        self.handler._refused[address] = f"{code} {code // 100}.1.1 <{address}> refused"

    def reset(self):
        with self.handler.arrived:
            self.handler.received.clear()
            self.handler.data_commands = 0
            self.handler._script, self.handler._refused = [], {}

    def received(self, rcpt=None):
        """Mails received so far; only those sent to ``rcpt`` if given."""
        with self.handler.arrived:
            return [m for m in self.handler.received if rcpt in (None, *m.rcpt_tos)]

    def wait_for(self, count, rcpt=None, timeout=10):
        """Wait until ``count`` mails arrived (or timeout); return what did."""
        deadline = time.monotonic() + timeout
        with self.handler.arrived:
            while len(self.received(rcpt)) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.handler.arrived.wait(left)
            return self.received(rcpt)

    def options(self):
        """The [notification] options that point notifier at this server."""
        security = {"plain": "none"}.get(self.security, self.security)
        options = {"smtp_host": "127.0.0.1", "smtp_port": self.port, "smtp_security": security}
        if self.cert:
            options["smtp_ca_file"] = self.cert[0]
        if self.auth:
            options["smtp_user_name"], options["smtp_user_password"] = self.auth
        return options

    def config_text(self):
        lines = [f"{name} = {value}" for name, value in self.options().items()]
        return "[notification]\n" + "\n".join(lines) + "\n"

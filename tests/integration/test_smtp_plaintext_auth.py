"""SMTP AUTH without TLS (issue 16, item 13): refused unless
``smtp_allow_plaintext_auth``; allowed, it warns once and never logs the
password. Against a real SMTP server (aiosmtpd) that offers AUTH in clear."""

import logging

import pytest

from notifier import errors
from notifier.sinks import email as email_sink
from tests.integration.test_email_sink import (  # noqa: F401 - fixtures
    PASSWORD,
    USER,
    make_sink,
    notification,
    secret_forms,
)
from tests.support.smtp import SMTPServer


@pytest.fixture
def plain_auth_server():
    with SMTPServer("plain", auth=(USER, PASSWORD)) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_warning(monkeypatch):
    monkeypatch.setattr(email_sink, "_warned_plaintext_auth", False)


def test_a_login_without_tls_is_refused_and_the_password_never_sent(
    plain_auth_server,
    make_sink,  # noqa: F811
):
    with pytest.raises(errors.PermanentDeliveryError) as caught:
        sink = make_sink(**plain_auth_server.options())
        sink.deliver(notification("mailto:ops@example.com"))
    assert caught.value.kind == "config"
    assert "smtp_allow_plaintext_auth" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert plain_auth_server.logins == [] and plain_auth_server.received() == []


def test_an_allowed_login_without_tls_warns_once_without_the_password(
    plain_auth_server,
    make_sink,  # noqa: F811
    caplog,
    capfd,
):
    caplog.set_level(logging.DEBUG)
    options = dict(plain_auth_server.options(), smtp_allow_plaintext_auth=True)
    for _ in range(2):  # two sinks (two connections) in one process: one warning
        sink = make_sink(**options)
        sink.deliver(notification("mailto:ops@example.com"))
    assert len(plain_auth_server.wait_for(2)) == 2
    assert [ok for _, ok in plain_auth_server.logins] == [True, True]
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "notifier.sinks.email" and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1 and "without TLS" in warnings[0] and USER in warnings[0]
    output = "".join(capfd.readouterr())
    ours = " ".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail.log"))
    for secret in secret_forms(USER, PASSWORD):
        assert secret not in output and secret not in ours


def test_no_login_or_tls_needs_no_permission(make_sink):  # noqa: F811
    with SMTPServer() as server:
        make_sink(**server.options()).deliver(notification("mailto:ops@example.com"))
        assert len(server.wait_for(1)) == 1

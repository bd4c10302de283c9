"""The e-mail sink against a real SMTP server (aiosmtpd) and a stand-in sendmail."""

import base64
import email
import email.policy
import json
import logging
import shlex
import sys
from pathlib import Path

import pytest

from notifier import conf as conf_module
from notifier import errors
from notifier.core import payloads
from notifier.sinks import Notification
from notifier.sinks.email import EmailSink
from tests.support.smtp import SMTPServer, make_self_signed_cert

FAKE_SENDMAIL = Path(__file__).resolve().parents[1] / "support" / "fake_sendmail.py"
SOURCE = ["proj-1", "queues", "orders"]
USER, PASSWORD = "mailer", "s3cret-Pa55word"


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return make_self_signed_cert(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture
def make_sink():
    confs, sinks = [], []

    def build(**options):
        conf = conf_module.load_conf([])
        options.setdefault("smtp_from", "notifier@example.net")
        options.setdefault("smtp_timeout_seconds", 3)
        for name, value in options.items():
            conf.set_override(name, value, group="notification")
        confs.append(conf)
        sinks.append(EmailSink(conf))
        return sinks[-1]

    yield build
    for sink in sinks:
        getattr(sink.transport, "close", lambda: None)()
    for conf in confs:
        conf.reset()


@pytest.fixture
def smtp():
    with SMTPServer() as server:
        yield server


def notification(subscriber, options=None, body=None, message_id="m1", **payload):
    message = {
        "id": message_id,
        "body": body if body is not None else {"n": 1},
        "ttl": 300,
        "created": 1700000000.0,
        "source": SOURCE,
    }
    document = payloads.notification_payload(message, "queues", "orders")
    document.update(payload)
    return Notification(
        delivery_id=payloads.delivery_id(message_id, "s1"),
        subscription={
            "id": "s1",
            "source": SOURCE,
            "subscriber": subscriber,
            "options": options or {},
        },
        message=message,
        payload=document,
        attempt=0,
    )


def parts(message):
    return {
        part.get_content_type(): part.get_content().replace("\r\n", "\n")
        for part in message.walk()
        if not part.is_multipart()
    }


def test_a_notification_arrives_with_its_headers_both_parts_and_pretty_json(smtp, make_sink):
    sink = make_sink(**smtp.options())
    report = sink.deliver(
        notification(
            "mailto:ops@example.com?subject=Order%20alert&cc=boss@example.com",
            {"bcc": ["audit@example.com"]},
            body={"order": 42, "note": "<b>urgent</b>"},
        )
    )

    [mail] = smtp.wait_for(1)
    message = mail.message
    assert report.status == 250 and report.response_body.startswith("250 ")
    assert mail.mail_from == "notifier@example.net"
    assert mail.rcpt_tos == ["ops@example.com", "boss@example.com", "audit@example.com"]
    assert (message["From"], message["To"], message["Cc"]) == (
        "notifier@example.net",
        "ops@example.com",
        "boss@example.com",
    )
    assert message["Subject"] == "Order alert" and "Bcc" not in message
    assert message["Message-ID"] == "<msg_m1_s1@example.net>"
    assert message.get_content_type() == "multipart/alternative"
    body = parts(message)
    pretty = json.dumps({"order": 42, "note": "<b>urgent</b>"}, indent=2)
    assert pretty in body["text/plain"]
    assert "&lt;b&gt;urgent&lt;/b&gt;" in body["text/html"]
    assert "<b>urgent" not in body["text/html"]


def test_one_connection_carries_many_messages(smtp, make_sink):
    sink = make_sink(**smtp.options())
    for n in range(3):
        sink.deliver(notification("mailto:ops@example.com", message_id=f"m{n}"))
    assert len({mail.peer for mail in smtp.wait_for(3)}) == 1


@pytest.mark.parametrize("noop_after_idle_seconds", [0, 3600])
def test_a_connection_the_server_dropped_is_replaced_and_the_message_sent(
    smtp, make_sink, noop_after_idle_seconds
):
    sink = make_sink(smtp_noop_after_idle_seconds=noop_after_idle_seconds, **smtp.options())
    sink.deliver(notification("mailto:ops@example.com", message_id="before"))
    smtp.restart()
    sink.deliver(notification("mailto:ops@example.com", message_id="after"))
    mails = smtp.wait_for(2)
    assert len(mails) == 2 and mails[0].peer != mails[1].peer


def test_starttls_and_login_work_and_the_password_is_never_printed_or_logged(
    cert, make_sink, caplog, capfd
):
    caplog.set_level(logging.DEBUG)
    with SMTPServer("starttls", cert=cert, auth=(USER, PASSWORD)) as server:
        sink = make_sink(**server.options())
        sink.deliver(notification("mailto:ops@example.com"))
        assert len(server.wait_for(1)) == 1
        assert [ok for _, ok in server.logins] == [True]
    output = "".join(capfd.readouterr())
    ours = " ".join(
        r.getMessage() for r in caplog.records if not r.name.startswith("mail.log")
    )  # aiosmtpd's own
    for secret in secret_forms(USER, PASSWORD):
        assert secret not in output and secret not in ours


def secret_forms(user, password):
    """The password as it travels: plain, AUTH LOGIN and AUTH PLAIN base64."""
    return [
        password,
        base64.b64encode(password.encode()).decode(),
        base64.b64encode(f"\0{user}\0{password}".encode()).decode(),
    ]


def test_implicit_tls_works(cert, make_sink):
    with SMTPServer("tls", cert=cert) as server:
        make_sink(**server.options()).deliver(notification("mailto:ops@example.com"))
        assert len(server.wait_for(1)) == 1


def test_an_untrusted_certificate_is_a_permanent_tls_failure(cert, make_sink):
    with SMTPServer("starttls", cert=cert) as server:
        options = dict(server.options(), smtp_ca_file=None)
        with pytest.raises(errors.PermanentDeliveryError) as failure:
            make_sink(**options).deliver(notification("mailto:ops@example.com"))
    assert failure.value.kind == "tls" and "smtp_ca_file" in str(failure.value)


def test_starttls_required_but_not_offered_is_permanent(smtp, make_sink):
    sink = make_sink(**dict(smtp.options(), smtp_security="starttls"))
    with pytest.raises(errors.PermanentDeliveryError) as failure:
        sink.deliver(notification("mailto:ops@example.com"))
    assert failure.value.kind == "smtp_unsupported"


def test_a_wrong_password_is_a_permanent_auth_failure(cert, make_sink):
    with SMTPServer("starttls", cert=cert, auth=(USER, PASSWORD)) as server:
        options = dict(server.options(), smtp_user_password="wrong")
        with pytest.raises(errors.PermanentDeliveryError) as failure:
            make_sink(**options).deliver(notification("mailto:ops@example.com"))
    assert failure.value.kind == "smtp_auth" and failure.value.status == 535
    assert "wrong" not in str(failure.value)


@pytest.mark.parametrize(
    "code,error",
    [
        (421, errors.TransientDeliveryError),
        (451, errors.TransientDeliveryError),
        (452, errors.TransientDeliveryError),
        (550, errors.PermanentDeliveryError),
        (554, errors.PermanentDeliveryError),
    ],
)
def test_smtp_4xx_replies_are_transient_and_5xx_permanent(smtp, make_sink, code, error):
    smtp.script([code])
    with pytest.raises(error) as failure:
        make_sink(**smtp.options()).deliver(notification("mailto:ops@example.com"))
    assert failure.value.status == code and failure.value.kind == "smtp"


def test_the_connection_is_reused_after_a_refused_message(smtp, make_sink):
    smtp.script([451, 250])
    sink = make_sink(**smtp.options())
    with pytest.raises(errors.TransientDeliveryError) as failure:
        sink.deliver(notification("mailto:ops@example.com"))
    assert failure.value.status == 451
    sink.deliver(notification("mailto:ops@example.com"))
    assert smtp.handler.data_commands == 2 and len(smtp.wait_for(1)) == 1


def test_every_recipient_refused_is_permanent(smtp, make_sink):
    smtp.refuse("nobody@example.com")
    with pytest.raises(errors.PermanentDeliveryError) as failure:
        make_sink(**smtp.options()).deliver(notification("mailto:nobody@example.com"))
    assert failure.value.kind == "smtp_recipients" and failure.value.status == 550
    assert "nobody@example.com" in str(failure.value)


def test_some_recipients_refused_is_delivered_to_the_others_with_the_refusal_noted(smtp, make_sink):
    smtp.refuse("nobody@example.com")
    report = make_sink(**smtp.options()).deliver(
        notification("mailto:ops@example.com,nobody@example.com")
    )
    [mail] = smtp.wait_for(1)
    assert mail.rcpt_tos == ["ops@example.com"]
    assert "refused: nobody@example.com: 550" in report.response_body


def test_a_server_that_is_down_is_a_transient_connection_failure(smtp, make_sink):
    sink = make_sink(**smtp.options())
    smtp.stop()
    with pytest.raises(errors.TransientDeliveryError) as failure:
        sink.deliver(notification("mailto:ops@example.com"))
    assert failure.value.kind == "connection"


def test_non_ascii_subject_body_and_address_arrive_intact_over_smtputf8(smtp, make_sink):
    make_sink(**smtp.options()).deliver(
        notification(
            "mailto:j%C3%B6rg@b%C3%BCcher.example?subject=Gr%C3%BC%C3%9Fe%20%E2%9C%93",
            body={"text": "Größe ✓ 日本"},
        )
    )
    [mail] = smtp.wait_for(1)
    assert "SMTPUTF8" in mail.mail_options
    assert mail.rcpt_tos == ["jörg@xn--bcher-kva.example"]
    assert mail.message["Subject"] == "Grüße ✓"
    assert "Größe ✓ 日本" in parts(mail.message)["text/plain"]


def test_a_non_ascii_address_without_smtputf8_on_the_server_is_permanent(make_sink):
    with SMTPServer(smtputf8=False) as server:
        with pytest.raises(errors.PermanentDeliveryError) as failure:
            make_sink(**server.options()).deliver(notification("mailto:j%C3%B6rg@example.com"))
    assert "SMTPUTF8" in str(failure.value)


def test_an_ascii_only_mail_keeps_7bit_headers_and_encodes_a_non_ascii_subject(smtp, make_sink):
    make_sink(**smtp.options()).deliver(
        notification("mailto:ops@example.com", {"subject": "Überlauf"})
    )
    [mail] = smtp.wait_for(1)
    assert "SMTPUTF8" not in mail.mail_options
    assert mail.content.isascii() and b"=?utf-8?" in mail.content
    assert mail.message["Subject"] == "Überlauf"


def test_a_from_option_heads_the_mail_and_smtp_from_stays_the_sender(smtp, make_sink):
    make_sink(**smtp.options()).deliver(
        notification("mailto:ops@example.com", {"from": "Shop Alerts <alerts@shop.example>"})
    )
    [mail] = smtp.wait_for(1)
    assert mail.mail_from == "notifier@example.net"
    assert mail.message["From"] == "Shop Alerts <alerts@shop.example>"
    assert mail.message["Sender"] == "notifier@example.net"


def test_a_confirmation_payload_is_rendered_with_the_confirmation_template(smtp, make_sink):
    link = "https://notifier.example/confirm?s=1&sig=abc"
    make_sink(**smtp.options()).deliver(
        notification(
            "mailto:ops@example.com?subject=ignored",
            {"from": "x@example.com"},
            Message_Type="SubscriptionConfirmation",
            confirmation_link=link,
        )
    )
    [mail] = smtp.wait_for(1)
    body = parts(mail.message)
    assert mail.message["Subject"] == "Confirm your subscription to queue orders"
    assert mail.message["From"] == "notifier@example.net"
    assert link in body["text/plain"]
    assert 'href="https://notifier.example/confirm?s=1&amp;sig=abc"' in body["text/html"]


def test_a_zaqar_confirmation_template_option_makes_a_plain_text_mail(smtp, make_sink):
    zaqar = {
        "topic": "Zaqar Notification - Unsubscribe Confirmation",
        "body": "Unsubscribed from {0} of project {1}. Again: {2}",
        "sender": "Zaqar Notifications <no-reply@openstack.org>",
    }
    make_sink(unsubscribe_confirmation_email_template=zaqar, **smtp.options()).deliver(
        notification(
            "mailto:ops@example.com",
            Message_Type="UnsubscribeConfirmation",
            confirmation_link="https://x.example/again",
        )
    )
    [mail] = smtp.wait_for(1)
    assert mail.message["Subject"] == zaqar["topic"]
    assert mail.message["From"] == zaqar["sender"]
    assert mail.message.get_content_type() == "text/plain"
    assert mail.message.get_content().strip() == (
        "Unsubscribed from orders of project proj-1. Again: https://x.example/again"
    )


def test_templates_in_email_template_dir_override_the_packaged_ones_file_by_file(
    smtp, make_sink, tmp_path
):
    (tmp_path / "notification.subject.txt").write_text("[{{ project }}] {{ source_name }}")
    make_sink(email_template_dir=str(tmp_path), **smtp.options()).deliver(
        notification("mailto:ops@example.com")
    )
    [mail] = smtp.wait_for(1)
    assert mail.message["Subject"] == "[proj-1] orders"
    assert "text/html" in parts(mail.message)


def test_a_missing_template_dir_is_a_permanent_config_failure(make_sink, tmp_path):
    with pytest.raises(errors.PermanentDeliveryError) as failure:
        make_sink(email_template_dir=str(tmp_path / "nope"))
    assert failure.value.kind == "config"


# -- third_part: smtp_command ---------------------------------------------------


def sendmail_command(spool, *args, exit_code=0):
    return shlex.join(
        [sys.executable, str(FAKE_SENDMAIL), "--spool", str(spool), "--exit", str(exit_code), *args]
    )


def spooled(spool):
    runs = []
    for eml in sorted(Path(spool).glob("*.eml")):
        args = json.loads(eml.with_suffix(".json").read_text())["args"]
        runs.append((args, eml.read_bytes()))
    return runs


def test_sendmail_t_gets_the_message_with_its_bcc_header_to_extract_recipients(make_sink, tmp_path):
    sink = make_sink(smtp_mode="third_part", smtp_command=sendmail_command(tmp_path, "-t", "-oi"))
    sink.deliver(
        notification(
            "mailto:ops@example.com?cc=boss@example.com",
            {"bcc": "audit@example.com"},
            body={"n": 7},
        )
    )
    [(args, data)] = spooled(tmp_path)
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert args == ["-t", "-oi"]
    assert b"\r\n" not in data  # local line endings for a local program
    assert (message["To"], message["Cc"], message["Bcc"]) == (
        "ops@example.com",
        "boss@example.com",
        "audit@example.com",
    )
    assert '"n": 7' in parts(message)["text/plain"]


def test_a_command_without_t_gets_the_recipients_as_arguments_and_no_bcc_header(
    make_sink, tmp_path
):
    sink = make_sink(smtp_mode="third_part", smtp_command=sendmail_command(tmp_path, "-i"))
    sink.deliver(notification("mailto:ops@example.com", {"bcc": ["audit@example.com"]}))
    [(args, data)] = spooled(tmp_path)
    assert args == ["-i", "ops@example.com", "audit@example.com"]
    assert b"Bcc" not in data


def test_a_missing_sendmail_is_a_permanent_failure_that_says_what_to_do(make_sink):
    sink = make_sink(smtp_mode="third_part", smtp_command="/nonexistent/sendmail -t -oi")
    with pytest.raises(errors.PermanentDeliveryError) as failure:
        sink.deliver(notification("mailto:ops@example.com"))
    assert failure.value.kind == "sendmail_missing"
    assert "/nonexistent/sendmail" in str(failure.value)
    assert "smtp_mode = self_local" in str(failure.value)


@pytest.mark.parametrize(
    "exit_code,error",
    [
        (75, errors.TransientDeliveryError),
        (71, errors.TransientDeliveryError),
        (67, errors.PermanentDeliveryError),
        (78, errors.PermanentDeliveryError),
    ],
)
def test_sendmail_exit_statuses_are_classified_by_sysexits(make_sink, tmp_path, exit_code, error):
    sink = make_sink(
        smtp_mode="third_part", smtp_command=sendmail_command(tmp_path, "-t", exit_code=exit_code)
    )
    with pytest.raises(error) as failure:
        sink.deliver(notification("mailto:ops@example.com"))
    assert f"status {exit_code}" in str(failure.value)
    assert "fake sendmail: failing" in str(failure.value)

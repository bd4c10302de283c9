"""End to end: mailto subscriptions over HTTP, e-mail received by a real SMTP server."""

import json

import pytest
import requests

from tests.e2e.conftest import Fleet
from tests.e2e.test_pipeline import headers, post, subscribe
from tests.support.smtp import SMTPServer
from tests.support.waiting import wait_until

FAST_POLICY = {
    "retries_with_no_delay": 1,
    "minimum_delay_retries": 1,
    "minimum_delay": 1,
    "maximum_delay": 1,
    "backoff_retries": 0,
    "maximum_delay_retries": 0,
}


@pytest.fixture(scope="module")
def smtp():
    with SMTPServer() as server:
        yield server


@pytest.fixture(scope="module")
def mail_fleet(redis_server, tmp_path_factory, smtp):
    extra = smtp.config_text() + "smtp_from = Notifier <notifier@example.net>\n"
    running = Fleet(tmp_path_factory.mktemp("mail-fleet"), redis_server.url, extra)
    running.start("api", "worker", "scheduler")
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def fresh_smtp(smtp):
    smtp.reset()
    yield smtp


def api(fleet, project, path, method="GET", **kwargs):
    return requests.request(
        method, f"{fleet.url}{path}", headers=headers(project), timeout=5, **kwargs
    )


def parts(message):
    return {
        part.get_content_type(): part.get_content().replace("\r\n", "\n")
        for part in message.walk()
        if not part.is_multipart()
    }


def test_a_posted_message_arrives_as_an_email_with_headers_parts_and_pretty_json(
    mail_fleet, smtp, project
):
    ops = f"ops-{project}@example.com"
    subscribe(
        mail_fleet,
        project,
        "orders",
        f"mailto:{ops}?subject=Order%20%E2%9C%93&cc=boss@example.com",
        bcc=["audit@example.com"],
    )
    body = {"order": 42, "note": "Grüße <b>bold</b>"}
    [message_id] = post(mail_fleet, project, "orders", [{"ttl": 300, "body": body}])

    [mail] = smtp.wait_for(1, rcpt=ops, timeout=30)
    message = mail.message
    assert mail.mail_from == "notifier@example.net"
    assert sorted(mail.rcpt_tos) == sorted([ops, "boss@example.com", "audit@example.com"])
    assert message["From"] == "Notifier <notifier@example.net>"
    assert (message["To"], message["Cc"]) == (ops, "boss@example.com")
    assert message["Subject"] == "Order ✓"
    assert "Bcc" not in message and "audit@example.com" not in str(message)
    assert message["Message-ID"].startswith(f"<msg_{message_id}_")
    content = parts(message)
    assert set(content) == {"text/plain", "text/html"}
    assert json.dumps(body, indent=2, ensure_ascii=False) in content["text/plain"]
    assert "Grüße &lt;b&gt;bold&lt;/b&gt;" in content["text/html"]
    assert project in content["text/plain"] and "orders" in content["text/html"]


@pytest.mark.parametrize(
    "subscriber,options,field",
    [
        ("mailto:a@example.com?subject=Hi%0D%0ABcc:%20x@evil.example", {}, "subscriber"),
        ("mailto:a@example.com%0ABcc:x@evil.example", {}, "subscriber"),
        ("mailto:a@example.com?cc=c@example.com%0D%0AX-Evil:%201", {}, "subscriber"),
        ("mailto:a@example.com", {"subject": "Hi\r\nBcc: x@evil.example"}, "options.subject"),
        ("mailto:a@example.com", {"cc": ["c@example.com\nBcc: x@evil.example"]}, "options.cc"),
        ("mailto:a@example.com", {"bcc": "x@evil.example\r\n"}, "options.bcc"),
        (
            "mailto:a@example.com",
            {"from": "Evil\r\nBcc: x@evil.example <a@example.com>"},
            "options.from",
        ),
        ("mailto:not-an-address", {}, "subscriber"),
    ],
)
def test_header_injection_and_bad_addresses_are_a_400_naming_the_field(
    mail_fleet, project, subscriber, options, field
):
    response = api(
        mail_fleet,
        project,
        "/queues/inj/subscriptions",
        "POST",
        json={"subscriber": subscriber, "ttl": 3600, "options": options},
    )
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field


def test_an_injected_subject_is_refused_on_update_too(mail_fleet, project):
    subscription = subscribe(mail_fleet, project, "patch", "mailto:a@example.com")
    response = api(
        mail_fleet,
        project,
        f"/queues/patch/subscriptions/{subscription}",
        "PATCH",
        json={"options": {"subject": "x\r\nBcc: y@evil.example"}},
    )
    assert response.status_code == 400 and response.json()["field"] == "options.subject"


def test_an_smtp_4xx_is_retried_until_the_mail_is_accepted(mail_fleet, smtp, project):
    rcpt = f"retry-{project}@example.com"
    smtp.script([451, 451, 250])
    subscription = subscribe(
        mail_fleet, project, "busy", f"mailto:{rcpt}", _retry_policy=FAST_POLICY
    )
    post(mail_fleet, project, "busy", [{"ttl": 300, "body": "again"}])

    assert len(smtp.wait_for(1, rcpt=rcpt, timeout=30)) == 1
    path = f"/queues/busy/subscriptions/{subscription}/attempts"
    attempts = wait_until(
        lambda: (
            len(api(mail_fleet, project, path).json()["attempts"]) >= 3
            and api(mail_fleet, project, path).json()["attempts"]
        )
    )
    assert [a["outcome"] for a in attempts] == ["delivered", "failed", "failed"]
    assert [a.get("status") for a in attempts] == [250, 451, 451]


def test_a_refused_recipient_is_dead_lettered_without_retries(mail_fleet, smtp, project):
    rcpt = f"gone-{project}@example.com"
    smtp.refuse(rcpt, 550)
    subscription = subscribe(
        mail_fleet, project, "gone", f"mailto:{rcpt}", _retry_policy=FAST_POLICY
    )
    post(mail_fleet, project, "gone", [{"ttl": 300, "body": 1}])
    path = f"/queues/gone/subscriptions/{subscription}"

    letters = wait_until(
        lambda: api(mail_fleet, project, path + "/dead-letters").json()["dead_letters"]
    )
    [letter] = letters
    assert letter["last"]["status"] == 550 and letter["last"]["permanent"] is True
    assert letter["last"]["error"] == "smtp_recipients"
    assert len(api(mail_fleet, project, path + "/attempts").json()["attempts"]) == 1
    assert smtp.received(rcpt) == []

"""End to end: confirmations carry the subscription's portal link when
``[confirmation] include_portal_link`` is on, and not when it is off.

Two fleets (API, worker and scheduler processes, ``require_confirmation``, a
signing key), one with the option and one without; a real receiver takes the
webhook confirmations and a real SMTP server the e-mail ones. The link opens
that subscription's portal (200) and nothing else (403 when altered), and the
owner cannot read it back through the attempt or dead-letter routes.
"""

import re

import pytest
import requests

from tests.e2e.conftest import Fleet
from tests.e2e.test_confirmation import CONFIRMING, confirmation_of, subscribe
from tests.e2e.test_consent import ZERO_RETRIES, api, wait_until
from tests.support.smtp import SMTPServer

WITH_LINKS = "[confirmation]\ninclude_portal_link = true\nportal_link_ttl_seconds = 3600\n"
PORTAL_LINK = re.compile(r"http://127\.0\.0\.1:\d+/portal/\S+")


@pytest.fixture(scope="module")
def smtp():
    with SMTPServer() as server:
        yield server


def start_fleet(redis_server, tmp_path_factory, smtp, extra):
    conf = CONFIRMING + smtp.config_text() + "smtp_from = notifier@example.net\n" + extra
    return Fleet(tmp_path_factory.mktemp("portal-link-fleet"), redis_server.url, conf).start(
        "api", "worker", "scheduler"
    )


@pytest.fixture(scope="module")
def linking_fleet(redis_server, tmp_path_factory, smtp):
    running = start_fleet(redis_server, tmp_path_factory, smtp, WITH_LINKS)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def plain_fleet(redis_server, tmp_path_factory, smtp):
    running = start_fleet(redis_server, tmp_path_factory, smtp, "")
    yield running
    running.stop()


def tampered(url):
    return url[:-1] + ("0" if url[-1] != "0" else "1")


def text_of(mail):
    return "\n".join(
        part.get_content()
        for part in mail.message.walk()
        if part.get_content_type() == "text/plain"
    )


def assert_opens_only(url, subscription_id, other_id):
    """The link opens its subscription's portal, and altered it opens nothing."""
    page = requests.get(url, timeout=5)
    assert page.status_code == 200, page.text
    assert f'<code id="subscription-id">{subscription_id}</code>' in page.text
    assert requests.get(tampered(url), timeout=5).status_code == 403
    assert requests.get(url.replace(subscription_id, other_id), timeout=5).status_code == 403


def test_a_webhook_confirmation_carries_a_portal_link_to_that_subscription(
    linking_fleet, receiver, project
):
    receiver.echo("/hook")  # its reply holds the link: the owner must not see it
    created = subscribe(linking_fleet, project, "linked", receiver.url + "/hook")
    other = subscribe(linking_fleet, project, "linked", receiver.url + "/other")
    sid = created["subscription_id"]

    payload = confirmation_of(receiver, "/hook").json()

    url = payload["PortalURL"]
    assert url.startswith(linking_fleet.url.removesuffix("/v2") + f"/portal/queues/linked/{sid}?")
    assert_opens_only(url, sid, other["subscription_id"])
    signature = url.rsplit("signature=", 1)[1]
    path = f"/queues/linked/subscriptions/{sid}/attempts"
    assert wait_until(lambda: api(linking_fleet, project, path).json()["attempts"])
    for route in (path, f"/queues/linked/subscriptions/{sid}"):
        shown = api(linking_fleet, project, route).text
        assert signature not in shown and "/portal/" not in shown


def test_a_dead_lettered_confirmation_keeps_its_portal_link_from_the_owner(
    linking_fleet, receiver, project
):
    receiver.script("/refuses", [400])
    sid = subscribe(
        linking_fleet, project, "refused", receiver.url + "/refuses", _retry_policy=ZERO_RETRIES
    )["subscription_id"]
    signature = confirmation_of(receiver, "/refuses").json()["PortalURL"].rsplit("=", 1)[1]

    path = f"/queues/refused/subscriptions/{sid}/dead-letters"
    assert wait_until(lambda: api(linking_fleet, project, path).json()["dead_letters"])
    shown = api(linking_fleet, project, path).text
    assert signature not in shown and "/portal/" not in shown


def test_an_email_confirmation_carries_the_portal_link(linking_fleet, smtp, project):
    address = f"link-{project}@example.com"
    created = subscribe(linking_fleet, project, "mailed", f"mailto:{address}")
    other = subscribe(linking_fleet, project, "mailed", f"mailto:other-{project}@example.com")

    [mail] = smtp.wait_for(1, rcpt=address, timeout=30)

    [url] = PORTAL_LINK.findall(text_of(mail))
    assert f"/portal/queues/mailed/{created['subscription_id']}?" in url
    assert_opens_only(url, created["subscription_id"], other["subscription_id"])


def test_without_the_option_no_confirmation_carries_a_portal_link(
    plain_fleet, receiver, smtp, project
):
    subscribe(plain_fleet, project, "plain", receiver.url + "/plain")
    address = f"plain-{project}@example.com"
    subscribe(plain_fleet, project, "plain", f"mailto:{address}")

    payload = confirmation_of(receiver, "/plain").json()
    [mail] = smtp.wait_for(1, rcpt=address, timeout=30)

    assert "PortalURL" not in payload and "/portal/" not in str(payload)
    assert "/portal/" not in mail.message.as_string()
    assert "confirm" in text_of(mail)

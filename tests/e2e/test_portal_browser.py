"""End to end: the subscriber portal in a real headless Chromium.

A portal link is minted through the API, opened in Chromium (the fixtures
and flags of the confirmation page tests), and its buttons drive the real
fleet: a real receiver sees replays, pauses, resumes and rotated secrets.

Set ``PORTAL_SCREENSHOTS=1`` to (re)write ``docs/portal.png`` from this run.
"""

import datetime
import os
import time
import uuid
from pathlib import Path

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from notifier.core import links
from tests.e2e import test_confirmation_browser as confirmation_browser
from tests.e2e.conftest import Fleet
from tests.e2e.test_consent import ZERO_RETRIES
from tests.e2e.test_pipeline import headers, post

KEY = "e2e-portal-key"
DOCS = Path(__file__).resolve().parents[2] / "docs"
ONE_RETRY = dict(ZERO_RETRIES, retries_with_no_delay=1)
# The confirmation page tests' Chromium, chromedriver and flags.
chromium = confirmation_browser.chromium
chromedriver = confirmation_browser.chromedriver
browser = confirmation_browser.browser


@pytest.fixture(scope="module")
def portal_fleet(redis_server, tmp_path_factory):
    running = Fleet(
        tmp_path_factory.mktemp("portal-fleet"),
        redis_server.url,
        f"[signed_url]\nsecret_key = {KEY}\n",
    )
    running.start("api", "worker", "scheduler")
    yield running
    running.stop()


def subscribe(fleet, project, queue, subscriber, policy=ZERO_RETRIES):
    response = requests.post(
        f"{fleet.url}/queues/{queue}/subscriptions",
        json={"subscriber": subscriber, "ttl": 3600, "options": {"_retry_policy": policy}},
        headers=headers(project),
        timeout=5,
    )
    assert response.status_code == 201, response.text
    return response.json()


def portal_url(fleet, project, queue, subscription_id, **body):
    response = requests.post(
        f"{fleet.url}/queues/{queue}/subscriptions/{subscription_id}/portal",
        json=body,
        headers=headers(project),
        timeout=5,
    )
    assert response.status_code == 201, response.text
    return response.json()["url"]


def until_shown(browser, url, text, element_id="attempts", timeout=30):
    """Reload the page until ``text`` is in the element (deliveries are asynchronous)."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while True:
        browser.get(url)
        found = browser.find_elements(By.ID, element_id)
        if found and all(t in found[0].text for t in text):
            return found[0]
        assert time.monotonic() < deadline, browser.page_source
        time.sleep(0.5)


def shot(browser, name="portal"):
    if os.environ.get("PORTAL_SCREENSHOTS"):
        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(1280, min(max(int(height) + 120, 700), 2400))
        browser.save_screenshot(str(DOCS / f"{name}.png"))
        browser.set_window_size(1000, 800)


def click(browser, element_id, accept=False):
    """Press a button and return the notice of the page it leads to."""
    from selenium.webdriver.common.by import By

    browser.find_element(By.ID, element_id).click()
    if accept:
        browser.switch_to.alert.accept()
    return wait_for_notice(browser)


def wait_for_notice(browser):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, 30).until(lambda b: b.find_elements("id", "notice"))[0].text


def test_the_portal_shows_the_attempts_after_a_500_then_a_200(
    portal_fleet, receiver, project, browser
):
    receiver.script("/flaky", [500, 200])
    created = subscribe(portal_fleet, project, "orders", receiver.url + "/flaky", ONE_RETRY)
    post(portal_fleet, project, "orders", [{"ttl": 300, "body": {"n": 1}}])
    receiver.wait_for(2, "/flaky")
    url = portal_url(portal_fleet, project, "orders", created["subscription_id"])

    table = until_shown(browser, url, ["500", "delivered", "failed"])
    response = requests.get(url, timeout=5)
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "<script>" not in response.text  # no inline script
    assert created["secret"] not in response.text  # no secrets in the page
    assert len(table.find_elements("css selector", "tr.attempt")) == 2
    # The last hour's chart: one failure (the 500), one delivery (the 200).
    assert browser.find_element("id", "rates-delivered").text == "1"
    assert browser.find_element("id", "rates-failed").text == "1"
    assert browser.find_element("id", "rates-failure-rate").text == "50.0"
    titles = [
        t.get_attribute("textContent")
        for t in browser.find_elements("css selector", "svg.rates title")
    ]
    assert len(titles) == 12
    assert sum(int(t.split()[0]) for t in titles) == 1  # delivered, across the bars
    assert sum(int(t.split()[2]) for t in titles) == 1  # failed
    shot(browser)


def test_a_dead_letter_replayed_from_the_portal_arrives(portal_fleet, receiver, project, browser):
    receiver.script("/dead", [500, 200])
    created = subscribe(portal_fleet, project, "dead", receiver.url + "/dead")
    [message_id] = post(portal_fleet, project, "dead", [{"ttl": 300, "body": {"n": 2}}])
    receiver.wait_for(1, "/dead")
    url = portal_url(portal_fleet, project, "dead", created["subscription_id"])
    until_shown(browser, url, [message_id], element_id="dead-letters")

    browser.find_element("css selector", f'button[data-message-id="{message_id}"]').click()

    assert "Replayed 1" in wait_for_notice(browser)
    [_, replayed] = receiver.wait_for(2, "/dead")
    assert replayed.json()["message_id"] == message_id


def test_nothing_arrives_while_paused_and_it_arrives_on_resume(
    portal_fleet, receiver, project, browser
):
    created = subscribe(portal_fleet, project, "paused", receiver.url + "/paused")
    browser.get(portal_url(portal_fleet, project, "paused", created["subscription_id"]))

    assert "Paused" in click(browser, "action-pause")
    assert browser.find_element("id", "state").text == "paused"
    [message_id] = post(portal_fleet, project, "paused", [{"ttl": 300, "body": {"n": 3}}])
    assert receiver.wait_for(1, "/paused", timeout=3) == []
    until_shown(browser, browser.current_url, ["1"], element_id="held")

    assert "1 held" in click(browser, "action-resume")
    [arrived] = receiver.wait_for(1, "/paused")
    assert arrived.json()["message_id"] == message_id


def test_a_rotated_secret_signs_the_next_delivery(portal_fleet, receiver, project, browser):
    created = subscribe(portal_fleet, project, "rotated", receiver.url + "/rotated")
    browser.get(portal_url(portal_fleet, project, "rotated", created["subscription_id"]))

    click(browser, "action-rotate", accept=True)
    secret = browser.find_element("id", "new-secret").text
    assert secret.startswith("whsec_") and secret != created["secret"]
    [message_id] = post(portal_fleet, project, "rotated", [{"ttl": 300, "body": {"n": 4}}])

    [arrived] = receiver.wait_for(1, "/rotated")
    assert Webhook(secret).verify(arrived.body, arrived.headers)["message_id"] == message_id


def test_a_test_notification_reaches_only_this_subscriber(portal_fleet, receiver, project, browser):
    created = subscribe(portal_fleet, project, "tested", receiver.url + "/tested")
    subscribe(portal_fleet, project, "tested", receiver.url + "/other")
    browser.get(portal_url(portal_fleet, project, "tested", created["subscription_id"]))

    click(browser, "action-test")

    [arrived] = receiver.wait_for(1, "/tested")
    assert arrived.json()["Message_Type"] == "TestNotification"
    assert receiver.received("/other") == []


def test_a_tampered_or_expired_link_is_refused(portal_fleet, receiver, project, browser):
    created = subscribe(portal_fleet, project, "guarded", receiver.url + "/guarded")
    sid = created["subscription_id"]
    url = portal_url(portal_fleet, project, "guarded", sid)
    base = portal_fleet.url.removesuffix("/v2")
    path = links.portal_path("queues", "guarded", sid)
    signed = links.portal_signed_path("queues", "guarded", sid, receiver.url + "/guarded")
    past = datetime.datetime(2020, 1, 1)
    expired = links.sign_link(KEY, signed, links.PORTAL, project, "1h", now=past)
    other = subscribe(portal_fleet, project, "guarded", receiver.url + "/other")
    refused = {
        "tampered": url[:-1] + ("0" if url[-1] != "0" else "1"),
        "another project": url.replace(f"project={project}", "project=intruder"),
        "another subscription": url.replace(sid, other["subscription_id"]),
        "no signature": url.split("?")[0],
        "expired": f"{base}{path}?{expired.query()}",
    }
    for why, bad in refused.items():
        assert requests.get(bad, timeout=5).status_code == 403, why
        browser.get(bad)
        assert browser.find_elements("id", "error"), why
        assert not browser.find_elements("id", "subscription-id"), why
    assert "expired" in browser.find_element("id", "error").text  # the last one: why


def test_a_form_without_its_csrf_token_is_refused(portal_fleet, receiver, project):
    created = subscribe(portal_fleet, project, "csrf", receiver.url + "/csrf")
    url = portal_url(portal_fleet, project, "csrf", created["subscription_id"])

    response = requests.post(url, data={"action": "pause"}, timeout=5)

    assert response.status_code == 400
    record = requests.get(
        f"{portal_fleet.url}/queues/csrf/subscriptions/{created['subscription_id']}",
        headers=headers(project),
        timeout=5,
    ).json()
    assert record["disabled"] is False


def test_only_the_owner_mints_a_portal_link(portal_fleet, receiver, project):
    created = subscribe(portal_fleet, project, "mine", receiver.url + "/mine")
    outsider = "p" + uuid.uuid4().hex[:8]
    response = requests.post(
        f"{portal_fleet.url}/queues/mine/subscriptions/{created['subscription_id']}/portal",
        json={},
        headers=headers(outsider),
        timeout=5,
    )
    assert response.status_code == 404
    bad = requests.post(
        f"{portal_fleet.url}/queues/mine/subscriptions/{created['subscription_id']}/portal",
        json={"expires": "yesterday"},
        headers=headers(project),
        timeout=5,
    )
    assert bad.status_code == 400
    assert "expires" in bad.text


def test_a_link_opens_nothing_once_the_owner_repoints_the_subscription(
    portal_fleet, receiver, project
):
    created = subscribe(portal_fleet, project, "moved", receiver.url + "/before")
    sid = created["subscription_id"]
    url = portal_url(portal_fleet, project, "moved", sid)
    assert requests.get(url, timeout=5).status_code == 200
    changed = requests.patch(
        f"{portal_fleet.url}/queues/moved/subscriptions/{sid}",
        json={"subscriber": receiver.url + "/after"},
        headers=headers(project),
        timeout=5,
    )
    assert changed.status_code == 204, changed.text
    # the old subscriber's link sees nothing of the new one's deliveries
    assert requests.get(url, timeout=5).status_code == 403
    assert requests.get(portal_url(portal_fleet, project, "moved", sid), timeout=5).ok

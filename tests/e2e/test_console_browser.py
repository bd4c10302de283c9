"""End to end: the operator console in a real headless Chromium.

The link comes from `notifier console-link` (the fleet's own config), the
pages are driven by selenium like the portal's (the confirmation page tests'
Chromium, chromedriver and flags), and the data is the real fleet's: a real
receiver, real fan-out, real attempts.

Set ``CONSOLE_SCREENSHOTS=1`` to (re)write ``docs/console-*.png`` from this run.
"""

import datetime
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from notifier.core import links
from tests.e2e import test_confirmation_browser as confirmation_browser
from tests.e2e.conftest import Fleet
from tests.e2e.test_consent import ZERO_RETRIES
from tests.e2e.test_pipeline import headers, post

KEY = "e2e-console-key"
DOCS = Path(__file__).resolve().parents[2] / "docs"
chromium = confirmation_browser.chromium
chromedriver = confirmation_browser.chromedriver
browser = confirmation_browser.browser


@pytest.fixture(scope="module")
def console_fleet(redis_server, tmp_path_factory):
    running = Fleet(
        tmp_path_factory.mktemp("console-fleet"),
        redis_server.url,
        f"[signed_url]\nsecret_key = {KEY}\n[console]\nenabled = true\n",
    )
    running.start("api", "worker", "scheduler")
    yield running
    running.stop()


def console_link(fleet, project, expires="1h"):
    done = subprocess.run(
        [sys.executable, "-m", "notifier.cli", "console-link", "--project", project]
        + ["--expires", expires, "--config-file", fleet.config],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def shot(browser, name):
    if os.environ.get("CONSOLE_SCREENSHOTS"):
        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(1280, min(max(int(height) + 120, 700), 2400))
        browser.save_screenshot(str(DOCS / f"console-{name}.png"))
        browser.set_window_size(1000, 800)


def subscribe(fleet, project, queue, subscriber, **options):
    response = requests.post(
        f"{fleet.url}/queues/{queue}/subscriptions",
        json={"subscriber": subscriber, "ttl": 3600, "options": options},
        headers=headers(project),
        timeout=5,
    )
    assert response.status_code == 201, response.text
    return response.json()["subscription_id"]


def until(browser, url, css, text="", timeout=30):
    """Reload ``url`` until an element matching ``css`` contains ``text``."""
    deadline = time.monotonic() + timeout
    while True:
        browser.get(url)
        found = [e for e in browser.find_elements("css selector", css) if text in e.text]
        if found:
            return found[0]
        assert time.monotonic() < deadline, browser.page_source
        time.sleep(0.5)


def wait_for(browser, element_id, timeout=30):
    """Return the element once the page after a click shows it."""
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(browser, timeout).until(lambda b: b.find_elements("id", element_id))[0]
    except Exception:
        raise AssertionError(browser.page_source) from None


def with_link(url, path, **params):
    """Return a console page URL carrying the link of ``url``."""
    base, query = url.split("?", 1)
    origin = base.removesuffix(links.CONSOLE_PATH)
    extra = "".join(f"&{k}={v}" for k, v in params.items())
    return f"{origin}{path}?{query}{extra}"


def test_a_console_link_from_the_cli_shows_the_projects_queues(
    console_fleet, receiver, project, browser
):
    subscribe(
        console_fleet, project, "orders", receiver.url + "/orders", _retry_policy=ZERO_RETRIES
    )
    subscribe(
        console_fleet, project, "invoices", receiver.url + "/invoices", _retry_policy=ZERO_RETRIES
    )
    receiver.script("/invoices", [500, 200])
    post(console_fleet, project, "orders", [{"ttl": 300, "body": {"n": 1}}])
    post(console_fleet, project, "invoices", [{"ttl": 300, "body": {"n": i}} for i in range(2)])
    receiver.wait_for(1, "/orders")
    receiver.wait_for(2, "/invoices")
    url = console_link(console_fleet, project)

    row = until(browser, url, 'tr.source[data-source="queues/orders"] td.delivered', "1")

    assert row.text == "1"
    invoices = browser.find_element("css selector", 'tr.source[data-source="queues/invoices"]')
    assert invoices.find_element("css selector", ".failed").text == "1"
    assert invoices.find_element("css selector", ".failure-rate").text == "50.0 %"
    assert invoices.find_element("css selector", ".messages").text == "2"
    names = [e.text for e in browser.find_elements("css selector", "a.source-link")]
    assert names == ["invoices", "orders"]
    response = requests.get(url, timeout=5)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "<script>" not in response.text
    shot(browser, "overview")
    # Navigation keeps the link: the source page, then a subscription.
    browser.find_element("link text", "orders").click()
    browser.find_element("css selector", "a.subscription-link").click()
    assert browser.find_element("id", "subscription-id").text
    assert "signature=" in browser.current_url


def test_explain_shows_the_failing_key_of_a_non_matching_policy(
    console_fleet, receiver, project, browser
):
    body_scope = {"filter_policy_scope": "MessageBody"}
    subscribe(
        console_fleet,
        project,
        "explained",
        receiver.url + "/eu",
        filter_policy={"region": ["eu"]},
        **body_scope,
    )
    subscribe(
        console_fleet,
        project,
        "explained",
        receiver.url + "/big",
        filter_policy={"region": ["us"], "total": [{"numeric": [">", 100]}]},
        **body_scope,
    )
    subscribe(
        console_fleet,
        project,
        "explained",
        receiver.url + "/us",
        filter_policy={"region": ["us"]},
        **body_scope,
    )
    [message_id] = post(
        console_fleet, project, "explained", [{"ttl": 300, "body": {"region": "us", "total": 5}}]
    )
    receiver.wait_for(1, "/us")
    url = console_link(console_fleet, project)
    browser.get(with_link(url, "/console/explain"))

    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", "source")).select_by_value("queues/explained")
    browser.find_element("id", "message_id").send_keys(message_id)
    browser.find_element("id", "explain-id").click()
    wait_for(browser, "explain")

    [match] = browser.find_elements("css selector", "#explain tr.verdict.match")
    assert match.find_element("css selector", ".reason").text == "matches"
    assert "delivered 200" in match.find_element("css selector", ".attempts").text
    rows = browser.find_elements("css selector", "#explain tr.verdict.miss")
    reasons = sorted(r.find_element("css selector", ".reason").text for r in rows)
    assert len(rows) == 2 and all(
        r.find_element("css selector", ".matches").text == "no" for r in rows
    )
    assert "filter policy key 'region'" in reasons[0] and "'us'" in reasons[0]
    assert "filter policy key 'total'" in reasons[1] and "5" in reasons[1]
    assert [k.text for k in browser.find_elements("css selector", ".failed-key")] in (
        ["[region]", "[total]"],
        ["[total]", "[region]"],
    )
    shot(browser, "explain")


def test_a_bad_retry_policy_shows_the_inline_error_and_the_preview_draws_delays(
    console_fleet, receiver, project, browser
):
    sid = subscribe(console_fleet, project, "edited", receiver.url + "/edited")
    url = console_link(console_fleet, project)
    browser.get(with_link(url, f"/console/queues/edited/subscriptions/{sid}"))

    box = browser.find_element("id", "retry_policy")
    box.clear()
    box.send_keys('{"minimum_delay": -5}')
    browser.find_element("id", "action-save").click()

    error = wait_for(browser, "error-retry")
    assert "minimum_delay must be between 0 and 86400, got -5" in error.text
    assert browser.find_element("id", "retry_policy").get_attribute("aria-invalid") == "true"
    record = requests.get(
        f"{console_fleet.url}/queues/edited/subscriptions/{sid}",
        headers=headers(project),
        timeout=5,
    ).json()
    assert "_retry_policy" not in record["options"]

    box = browser.find_element("id", "retry_policy")
    box.clear()
    box.send_keys(
        '{"retries_with_no_delay": 2, "minimum_delay_retries": 1, "minimum_delay": 5, '
        '"backoff_retries": 6, "maximum_delay": 300, "maximum_delay_retries": 2, '
        '"retry_backoff_function": "exponential"}'
    )
    browser.find_element("id", "action-preview").click()
    wait_for(browser, "retry-preview")
    assert len(browser.find_elements("css selector", "#retry-chart rect.retry")) == 11
    assert browser.find_element("id", "retry-delays").text.startswith("0.0, 0.0, 5.0, 5.0")
    shot(browser, "subscription")

    browser.find_element("id", "action-save").click()
    assert wait_for(browser, "notice").text == "Saved."
    record = requests.get(
        f"{console_fleet.url}/queues/edited/subscriptions/{sid}",
        headers=headers(project),
        timeout=5,
    ).json()
    assert record["options"]["_retry_policy"]["retry_backoff_function"] == "exponential"


def test_project_bs_console_cannot_see_or_act_on_project_as_things(
    console_fleet, receiver, project, browser
):
    victim, intruder = project, "b" + uuid.uuid4().hex[:8]
    sid = subscribe(
        console_fleet, victim, "private", receiver.url + "/private", _retry_policy=ZERO_RETRIES
    )
    receiver.script("/private", [500])
    [message_id] = post(console_fleet, victim, "private", [{"ttl": 300, "body": {"n": 1}}])
    victim_url = console_link(console_fleet, victim)
    until(browser, with_link(victim_url, "/console/dead-letters"), "#dead-letters", message_id)

    url = console_link(console_fleet, intruder)
    browser.get(url)
    assert browser.find_elements("id", "no-sources")
    assert "private" not in browser.page_source and sid not in browser.page_source
    browser.get(with_link(url, "/console/dead-letters"))
    assert browser.find_elements("id", "no-dead-letters")
    browser.get(with_link(url, "/console/endpoints"))
    assert sid not in browser.page_source

    # Guessing A's names and ids in URLs: not found, for B.
    guesses = [
        "/console/queues/private",
        f"/console/queues/private/subscriptions/{sid}",
    ]
    for path in guesses:
        browser.get(with_link(url, path))
        assert browser.find_elements("id", "error"), path
        assert requests.get(with_link(url, path), timeout=5).status_code == 404, path
    # ... and in POSTs, with B's own valid CSRF token.
    page = requests.get(with_link(url, "/console/explain"), timeout=5).text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)[1]
    attempts = [
        (f"/console/queues/private/subscriptions/{sid}", {"action": "pause"}),
        (f"/console/queues/private/subscriptions/{sid}", {"action": "edit", "retry_policy": "{}"}),
        (f"/console/queues/private/subscriptions/{sid}", {"action": "replay_since", "since": ""}),
        (
            "/console/dead-letters",
            {"action": "replay", "letter": f"queues/private/{sid}/{message_id}"},
        ),
        ("/console/explain", {"source": "queues/private", "body": "{}"}),
    ]
    for path, fields in attempts:
        response = requests.post(with_link(url, path), data=dict(fields, csrf=csrf), timeout=5)
        assert response.status_code == 404, (path, fields, response.text)
    # B's replay-all replays none of A's dead letters.
    response = requests.post(
        with_link(url, "/console/dead-letters"),
        data={"csrf": csrf, "action": "replay_since", "since": ""},
        timeout=5,
    )
    assert "Replayed 0" in response.text
    # A message id of A's, explained against B's own queue of the same name.
    subscribe(console_fleet, intruder, "private", receiver.url + "/b")
    requests.put(f"{console_fleet.url}/queues/private", headers=headers(intruder), timeout=5)
    response = requests.get(
        with_link(url, "/console/explain", source="queues/private", message_id=message_id),
        timeout=5,
    )
    assert response.status_code == 404
    assert (
        message_id in requests.get(with_link(victim_url, "/console/dead-letters"), timeout=5).text
    )
    record = requests.get(
        f"{console_fleet.url}/queues/private/subscriptions/{sid}",
        headers=headers(victim),
        timeout=5,
    ).json()
    assert record["disabled"] is False


def test_tampered_and_expired_console_links_are_refused(console_fleet, project, browser):
    url = console_link(console_fleet, project)
    base = url.split("?")[0]
    expired = links.sign_link(
        KEY, links.CONSOLE_PATH, links.CONSOLE, project, "1h", now=datetime.datetime(2020, 1, 1)
    )
    portal_scope = links.sign_link(KEY, links.CONSOLE_PATH, links.PORTAL, project, "1h")
    refused = {
        "tampered": url[:-1] + ("0" if url[-1] != "0" else "1"),
        "another project": url.replace(f"project={project}", "project=intruder"),
        "no signature": base,
        "a portal link's signature": f"{base}?{portal_scope.query()}",
        "expired": f"{base}?{expired.query()}",
    }
    for why, bad in refused.items():
        assert requests.get(bad, timeout=5).status_code == 403, why
        browser.get(bad)
        assert browser.find_elements("id", "error"), why
        assert not browser.find_elements("id", "sources"), why
    assert "expired" in browser.find_element("id", "error").text


def test_the_console_is_off_under_noauth_by_default(redis_server, tmp_path, project, browser):
    fleet = Fleet(tmp_path, redis_server.url, f"[signed_url]\nsecret_key = {KEY}\n")
    fleet.start("api")
    try:
        url = console_link(fleet, project)
        assert requests.get(url, timeout=5).status_code == 404
        browser.get(url)
        assert "[console] enabled = true" in browser.find_element("id", "error").text
    finally:
        fleet.stop()

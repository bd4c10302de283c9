"""End to end: the e-mail confirmation flow in a real headless Chromium.

The fleet (``require_confirmation = true``) e-mails the confirmation to a real
SMTP server (aiosmtpd); the link is taken from the e-mail and opened in
Chromium, driven by selenium through Debian's chromedriver; a person's click
confirms, and the next message arrives as e-mail. ``scripts/test`` installs
``chromium`` and ``chromium-driver``; where they cannot be installed these
tests skip, except under CI=true, where they fail.
"""

import re
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests

from tests.e2e.conftest import Fleet
from tests.e2e.test_confirmation import CONFIRMING
from tests.e2e.test_pipeline import post
from tests.support.ci_plugin import require_executable
from tests.support.smtp import SMTPServer

PAGE_FILE = Path(__file__).resolve().parents[2] / "templates" / "confirmation.html"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1000,800",
]


@pytest.fixture(scope="module")
def chromium():
    return require_executable("chromium", "chromium-browser")


@pytest.fixture(scope="module")
def chromedriver():
    return require_executable("chromedriver", "/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def smtp():
    with SMTPServer() as server:
        yield server


@pytest.fixture(scope="module")
def mail_fleet(redis_server, tmp_path_factory, smtp):
    extra = smtp.config_text() + "smtp_from = Notifier <notifier@example.net>\n" + CONFIRMING
    running = Fleet(tmp_path_factory.mktemp("browser-fleet"), redis_server.url, extra)
    running.start("api", "worker", "scheduler")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory, chromium, chromedriver):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(autouse=True)
def fresh_smtp(smtp):
    smtp.reset()


def subscribe_address(fleet, project, queue, address):
    response = requests.post(
        f"{fleet.url}/queues/{queue}/subscriptions",
        json={"subscriber": f"mailto:{address}", "ttl": 3600},
        headers={"X-Project-ID": project},
        timeout=5,
    )
    assert response.status_code == 201, response.text
    return response.json()["subscription_id"]


def parts(mail):
    return {
        part.get_content_type(): part.get_content()
        for part in mail.message.walk()
        if not part.is_multipart()
    }


def link_in(mail):
    """The confirmation link of an e-mail: the same in its text and HTML parts."""
    content = parts(mail)
    [link] = re.findall(r"https?://\S+/v2/confirmation\?\S+", content["text/plain"])
    assert f'href="{link.replace("&", "&amp;")}"' in content["text/html"]
    return link


def click_and_read(browser, button_id, timeout=15):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, timeout)
    wait.until(ec.element_to_be_clickable((By.ID, button_id))).click()
    status = browser.find_element(By.ID, "status")
    wait.until(lambda _: status.get_attribute("class") in ("ok", "error"))
    return status.get_attribute("class"), status.text


def test_a_person_confirms_in_the_browser_and_then_gets_the_messages(
    mail_fleet, smtp, browser, project
):
    address = f"reader-{project}@example.com"
    subscribe_address(mail_fleet, project, "alerts", address)
    [mail] = smtp.wait_for(1, rcpt=address, timeout=30)
    link = link_in(mail)
    assert link.startswith(mail_fleet.url + "/confirmation?")

    browser.get(link)
    assert "alerts" in browser.find_element("id", "source-name").text
    kind, text = click_and_read(browser, "confirm")
    assert (kind, text) == ("ok", "Subscription confirmed. You will now receive its notifications.")

    post(mail_fleet, project, "alerts", [{"ttl": 300, "body": {"disk": "full"}}])
    mails = smtp.wait_for(2, rcpt=address, timeout=30)
    assert len(mails) == 2
    assert '"disk": "full"' in parts(mails[1])["text/plain"]


def test_unsubscribing_in_the_browser_sends_the_unsubscribe_confirmation(
    mail_fleet, smtp, browser, project
):
    address = f"leaver-{project}@example.com"
    subscribe_address(mail_fleet, project, "digest", address)
    [mail] = smtp.wait_for(1, rcpt=address, timeout=30)
    browser.get(link_in(mail))
    assert click_and_read(browser, "confirm")[0] == "ok"
    kind, text = click_and_read(browser, "unsubscribe")
    assert kind == "ok" and text.startswith("You have unsubscribed.")
    mails = smtp.wait_for(2, rcpt=address, timeout=30)
    assert len(mails) == 2
    goodbye = parts(mails[1])["text/plain"]
    assert "You have unsubscribed" in goodbye
    # The e-mail's link subscribes again.
    browser.get(link_in(mails[1]))
    assert click_and_read(browser, "confirm")[0] == "ok"


def test_the_page_says_plainly_why_a_damaged_link_fails(mail_fleet, smtp, browser, project):
    address = f"victim-{project}@example.com"
    subscribe_address(mail_fleet, project, "tamper", address)
    [mail] = smtp.wait_for(1, rcpt=address, timeout=30)
    link = link_in(mail)
    parsed = urlsplit(link)
    params = dict(parse_qsl(parsed.query))
    params["Project"] = "someone-else"
    browser.get(parsed._replace(query=urlencode(params)).geturl())
    kind, text = click_and_read(browser, "confirm")
    assert kind == "error"
    assert text.startswith("Not confirmed (HTTP 401):")
    assert "does not match" in text

    del params["Signature"]
    browser.get(parsed._replace(query=urlencode(params)).geturl())
    status = browser.find_element("id", "status")
    assert "This link is incomplete (missing Signature)" in status.text
    assert not browser.find_element("id", "confirm").is_enabled()


def hosted_page(tmp_path, api_origin):
    """The page as an operator hosts it elsewhere: with the API origin written
    into its notifier-api-origin tag."""
    html = PAGE_FILE.read_text(encoding="utf-8")
    empty = '<meta name="notifier-api-origin" content="">'
    assert empty in html
    page = tmp_path / "confirmation.html"
    page.write_text(html.replace(empty, empty.replace('""', f'"{api_origin}"')), encoding="utf-8")
    return page.as_uri()


def test_the_page_works_standalone_from_another_origin(
    mail_fleet, smtp, browser, project, tmp_path
):
    """The page opened as a local file (another origin than the API) confirms
    through CORS, as it would from the host of external_confirmation_url."""
    address = f"portal-{project}@example.com"
    subscribe_address(mail_fleet, project, "portal", address)
    [mail] = smtp.wait_for(1, rcpt=address, timeout=30)
    query = urlsplit(link_in(mail)).query
    origin = mail_fleet.url[: -len("/v2")]
    browser.get(hosted_page(tmp_path, origin) + "?" + query)
    kind, text = click_and_read(browser, "confirm")
    assert kind == "ok", text
    post(mail_fleet, project, "portal", [{"ttl": 300, "body": "hello"}])
    assert len(smtp.wait_for(2, rcpt=address, timeout=30)) == 2


def foreign_link(link, foreign):
    """The link with its Url pointed at another server (the signed fields kept)."""
    parsed = urlsplit(link)
    params = dict(parse_qsl(parsed.query))
    params["Url"] = foreign + params["Paths"]
    return parsed._replace(query=urlencode(params)).geturl()


def assert_refused_foreign(browser, receiver):
    from selenium.webdriver.common.by import By

    status = browser.find_element(By.ID, "status")
    assert status.get_attribute("class") == "error"
    assert status.text.startswith("This link is not for this service")
    assert not browser.find_element(By.ID, "confirm").is_enabled()
    assert receiver.wait_for(1, timeout=1) == []  # not even a preflight


def test_the_page_sends_the_signed_headers_to_no_other_origin(
    mail_fleet, smtp, browser, project, receiver, tmp_path
):
    """A link whose Url names another server (here a receiver that would
    accept a cross-origin PUT) is refused before anything is sent, by the page
    the API serves and by the page hosted elsewhere."""
    address = f"elsewhere-{project}@example.com"
    subscription_id = subscribe_address(mail_fleet, project, "elsewhere", address)
    [mail] = smtp.wait_for(1, rcpt=address, timeout=30)
    link = foreign_link(link_in(mail), receiver.url)

    browser.get(link)
    assert_refused_foreign(browser, receiver)
    origin = mail_fleet.url[: -len("/v2")]
    browser.get(hosted_page(tmp_path, origin) + "?" + urlsplit(link).query)
    assert_refused_foreign(browser, receiver)
    view = requests.get(
        f"{mail_fleet.url}/queues/elsewhere/subscriptions/{subscription_id}",
        headers={"X-Project-ID": project},
        timeout=5,
    )
    assert view.json()["confirmed"] is False

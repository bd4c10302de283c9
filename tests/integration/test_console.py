"""The operator console through falcon's test client: real Redis, real
services, the dispatcher's tasks run in the test (``MemoryDispatcher``).

Tenancy: a console session (a link or a token) names one project, and every
page and form builds its sources from that project, so another project's
names and ids lead nowhere, by URL or by POST.
"""

import datetime
import re
import uuid

import pytest
from falcon import testing

from notifier.api.app import create_app
from notifier.core import links
from notifier.delivery.service import DeliveryService
from notifier.services.console import console_link
from notifier.web.app import create_pages
from tests.support.dispatch import MemoryDispatcher

KEY = "integration-console-key"
CLIENT = str(uuid.uuid4())


@pytest.fixture
def console_conf(conf):
    conf.set_override("secret_key", KEY, group="signed_url")
    conf.set_override("public_url", "http://notifier.test", group="api")
    conf.set_override("enabled", True, group="console")
    return conf


@pytest.fixture
def dispatcher():
    return MemoryDispatcher()


@pytest.fixture
def delivery(console_conf, storage, dispatcher):
    return DeliveryService(console_conf, storage, dispatcher)


@pytest.fixture
def app(console_conf, storage, dispatcher):
    return create_app(console_conf, storage=storage, dispatcher=dispatcher, pages=create_pages)


@pytest.fixture
def anonymous(app):
    return testing.TestClient(app)


def api(app, project):
    return testing.TestClient(app, headers={"X-Project-ID": project, "Client-ID": CLIENT})


# One signing moment for the module: a link signed "1h from now" on each
# request would change when a second passes, and with it the CSRF token a
# page handed to the form posted next.
LINK_NOW = datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)


def link_query(project, expires="1h", now=None):
    now = LINK_NOW if now is None else now
    link = links.sign_link(KEY, links.CONSOLE_PATH, links.CONSOLE, project, expires, now)
    return link.query()


def page(client, path, project, **params):
    query = link_query(project)
    extra = "".join(f"&{k}={v}" for k, v in params.items())
    return client.simulate_get(path, query_string=query + extra)


def csrf_of(html):
    return re.search(r'name="csrf" value="([0-9a-f]+)"', html)[1]


def post_form(client, path, project, fields, query=None):
    return client.simulate_post(
        path,
        query_string=query or link_query(project),
        body="&".join(f"{k}={v}" for k, v in fields.items()),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def setup_queue(app, project, queue="orders", **options):
    client = api(app, project)
    assert client.simulate_put(f"/v2/queues/{queue}").status_code in (201, 204)
    created = client.simulate_post(
        f"/v2/queues/{queue}/subscriptions",
        json={"subscriber": "http://127.0.0.1:9/hook", "ttl": 3600, "options": options},
    )
    assert created.status_code == 201, created.text
    return created.json["subscription_id"]


def test_a_console_link_opens_the_overview_with_its_projects_queues(app, anonymous, project):
    setup_queue(app, project, "orders")
    setup_queue(app, "other" + project, "secret-queue")

    result = page(anonymous, "/console", project)

    assert result.status_code == 200, result.text
    assert "orders" in result.text and "secret-queue" not in result.text
    policy = result.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    assert result.headers["Referrer-Policy"] == "no-referrer"
    assert "<script>" not in result.text
    # Every link of the page carries the console link.
    assert f"/console/queues/orders?project={project}" in result.text


def test_console_link_prints_a_url_that_opens_the_console(console_conf, anonymous, project):
    url = console_link(console_conf, project, "1h")
    assert url.startswith("http://notifier.test/console?project=")

    result = anonymous.simulate_get("/console", query_string=url.split("?", 1)[1])

    assert result.status_code == 200


@pytest.mark.parametrize("why", ["tampered", "other project", "expired", "portal scope", "none"])
def test_bad_console_links_are_refused(anonymous, project, why):
    query = link_query(project)
    if why == "tampered":
        query = query[:-1] + ("0" if query[-1] != "0" else "1")
    elif why == "other project":
        query = query.replace(f"project={project}", "project=intruder")
    elif why == "expired":
        query = link_query(project, "1h", now=datetime.datetime(2020, 1, 1))
    elif why == "portal scope":
        link = links.sign_link(KEY, links.CONSOLE_PATH, links.PORTAL, project, "1h")
        query = link.query()
    elif why == "none":
        query = ""

    result = anonymous.simulate_get("/console", query_string=query)

    assert result.status_code == 403
    assert 'id="error"' in result.text
    assert "Content-Security-Policy" in result.headers


def test_the_console_is_off_under_noauth_by_default(conf, storage, project):
    conf.set_override("secret_key", KEY, group="signed_url")
    app = create_app(conf, storage=storage, dispatcher=MemoryDispatcher(), pages=create_pages)
    client = testing.TestClient(app)

    result = page(client, "/console", project)

    assert result.status_code == 404
    assert "[console] enabled = true" in result.text


def test_another_projects_ids_lead_nowhere(app, anonymous, project, delivery, dispatcher):
    victim = "victim" + project
    sid = setup_queue(app, victim, "private")
    base = f"/console/queues/private/subscriptions/{sid}"

    assert page(anonymous, base, project).status_code == 404
    assert page(anonymous, "/console/queues/private", project).status_code == 404
    html = page(anonymous, "/console/explain", project).text
    for action in ("pause", "edit", "replay_since"):
        result = post_form(
            anonymous,
            base,
            project,
            {"csrf": csrf_of(html), "action": action, "retry_policy": "{}", "filter_policy": ""},
        )
        assert result.status_code == 404, (action, result.text)
    record = api(app, victim).simulate_get(f"/v2/queues/private/subscriptions/{sid}").json
    assert record["disabled"] is False
    # Dead letters named by another project's ids replay nothing.
    letter = f"queues/private/{sid}/m1"
    result = post_form(
        anonymous,
        "/console/dead-letters",
        project,
        {"csrf": csrf_of(html), "action": "replay", "letter": letter},
    )
    assert result.status_code == 404
    # Explain of another project's message id: not found.
    posted = api(app, victim).simulate_post(
        "/v2/queues/private/messages", json={"messages": [{"ttl": 60, "body": {"a": 1}}]}
    )
    message_id = posted.json["resources"][0].rsplit("/", 1)[1]
    setup_queue(app, project, "private")
    result = page(
        anonymous, "/console/explain", project, source="queues/private", message_id=message_id
    )
    assert result.status_code == 404


def test_a_post_without_the_csrf_token_is_refused(app, anonymous, project):
    sid = setup_queue(app, project)

    result = post_form(
        anonymous, f"/console/queues/orders/subscriptions/{sid}", project, {"action": "pause"}
    )

    assert result.status_code == 400
    assert "CSRF" in result.text


def test_a_bad_retry_policy_shows_the_fields_error_inline(app, anonymous, project):
    sid = setup_queue(app, project)
    path = f"/console/queues/orders/subscriptions/{sid}"
    csrf = csrf_of(page(anonymous, path, project).text)

    result = post_form(
        anonymous,
        path,
        project,
        {
            "csrf": csrf,
            "action": "edit",
            "retry_policy": '{"minimum_delay": -1}',
            "filter_policy": "",
        },
    )

    assert result.status_code == 400
    assert 'id="error-retry"' in result.text
    assert "minimum_delay must be between 0 and" in result.text


def test_a_bad_filter_policy_shows_its_error_and_saves_nothing(app, anonymous, project):
    sid = setup_queue(app, project)
    path = f"/console/queues/orders/subscriptions/{sid}"
    csrf = csrf_of(page(anonymous, path, project).text)

    result = post_form(
        anonymous,
        path,
        project,
        {"csrf": csrf, "action": "edit", "retry_policy": "", "filter_policy": '{"a": "x"}'},
    )

    assert result.status_code == 400
    assert 'id="error-filter"' in result.text
    record = api(app, project).simulate_get(f"/v2/queues/orders/subscriptions/{sid}").json
    assert "filter_policy" not in record["options"]


def test_a_good_edit_is_saved_through_the_subscription_service(app, anonymous, project):
    sid = setup_queue(app, project)
    path = f"/console/queues/orders/subscriptions/{sid}"
    csrf = csrf_of(page(anonymous, path, project).text)

    result = post_form(
        anonymous,
        path,
        project,
        {
            "csrf": csrf,
            "action": "edit",
            "retry_policy": '{"retries_with_no_delay": 1, "backoff_retries": 2}',
            "filter_policy": '{"kind": ["order"]}',
            "filter_policy_scope": "MessageBody",
        },
    )

    assert result.status_code == 200, result.text
    options = (
        api(app, project).simulate_get(f"/v2/queues/orders/subscriptions/{sid}").json["options"]
    )
    assert options["filter_policy"] == {"kind": ["order"]}
    assert options["filter_policy_scope"] == "MessageBody"
    assert options["_retry_policy"]["backoff_retries"] == 2


def test_the_retry_preview_draws_the_schedules_delays(app, anonymous, project):
    sid = setup_queue(app, project)
    path = f"/console/queues/orders/subscriptions/{sid}"
    csrf = csrf_of(page(anonymous, path, project).text)
    policy = (
        '{"retries_with_no_delay": 1, "minimum_delay_retries": 1, "minimum_delay": 2, '
        '"backoff_retries": 3, "maximum_delay": 8, "maximum_delay_retries": 1}'
    )

    result = post_form(
        anonymous, path, project, {"csrf": csrf, "action": "preview", "retry_policy": policy}
    )

    assert result.status_code == 200, result.text
    assert "0.0, 2.0, 2.0, 5.0, 8.0, 8.0" in result.text
    assert result.text.count('class="bar retry"') == 6
    options = (
        api(app, project).simulate_get(f"/v2/queues/orders/subscriptions/{sid}").json["options"]
    )
    assert "_retry_policy" not in options or options["_retry_policy"] == {}  # not saved


def test_explain_names_the_failing_key_and_shows_the_attempts(
    app, anonymous, project, delivery, dispatcher
):
    client = api(app, project)
    client.simulate_put("/v2/queues/orders")
    for policy in ({"kind": ["order"]}, {"kind": ["refund"]}):
        client.simulate_post(
            "/v2/queues/orders/subscriptions",
            json={
                "subscriber": f"http://127.0.0.1:9/{policy['kind'][0]}",
                "ttl": 3600,
                "options": {"filter_policy": policy, "filter_policy_scope": "MessageBody"},
            },
        )
    posted = client.simulate_post(
        "/v2/queues/orders/messages", json={"messages": [{"ttl": 60, "body": {"kind": "order"}}]}
    )
    message_id = posted.json["resources"][0].rsplit("/", 1)[1]
    dispatcher.run(delivery)

    result = page(
        anonymous, "/console/explain", project, source="queues/orders", message_id=message_id
    )

    assert result.status_code == 200, result.text
    assert result.text.count('class="verdict match"') == 1
    assert result.text.count('class="verdict miss"') == 1
    assert "[kind]" in result.text and "&#39;order&#39;" in result.text
    assert "failed" in result.text  # the matching one's attempt (nothing listens on :9)


def test_explain_a_pasted_message(app, anonymous, project):
    setup_queue(
        app,
        project,
        filter_policy={"price": [{"numeric": [">", 10]}]},
        filter_policy_scope="MessageBody",
    )
    html = page(anonymous, "/console/explain", project, source="queues/orders").text

    result = post_form(
        anonymous,
        "/console/explain",
        project,
        {"csrf": csrf_of(html), "source": "queues/orders", "body": '{"price": 3}'},
    )

    assert result.status_code == 200, result.text
    assert "[price]" in result.text

    bad = post_form(
        anonymous,
        "/console/explain",
        project,
        {"csrf": csrf_of(html), "source": "queues/orders", "body": "{nope"},
    )
    assert bad.status_code == 400 and "body: Not valid JSON" in bad.text


def test_the_dead_letters_page_replays_the_chosen(app, anonymous, project, delivery, dispatcher):
    sid = setup_queue(
        app,
        project,
        _retry_policy={
            "retries_with_no_delay": 0,
            "minimum_delay_retries": 0,
            "backoff_retries": 0,
            "maximum_delay_retries": 0,
        },
    )
    posted = api(app, project).simulate_post(
        "/v2/queues/orders/messages", json={"messages": [{"ttl": 60, "body": {"a": 1}}]}
    )
    message_id = posted.json["resources"][0].rsplit("/", 1)[1]
    dispatcher.run(delivery)
    html = page(anonymous, "/console/dead-letters", project).text
    assert message_id in html

    result = post_form(
        anonymous,
        "/console/dead-letters",
        project,
        {"csrf": csrf_of(html), "action": "replay", "letter": f"queues/orders/{sid}/{message_id}"},
    )

    assert result.status_code == 200, result.text
    assert "Replayed 1" in result.text
    assert any(name == "deliver" for name, _ in dispatcher.tasks)


def test_keystone_sessions_come_from_the_middleware(console_conf, storage, project):
    """The console trusts identity headers only from Keystone's middleware
    (a stand-in here): without it a forged header opens nothing."""
    console_conf.set_override("enabled", False, group="console")

    def fake_keystone(inner):
        def middleware(environ, start_response):
            if environ.get("HTTP_X_AUTH_TOKEN") == "good-token":
                environ["HTTP_X_IDENTITY_STATUS"] = "Confirmed"
                environ["HTTP_X_PROJECT_ID"] = project
            else:
                environ["HTTP_X_IDENTITY_STATUS"] = "Invalid"
            return inner(environ, start_response)

        return middleware

    def pages(conf, storage, services, keystone=None):
        return create_pages(conf, storage, services, keystone=fake_keystone)

    from notifier.api import app as api_app

    built = api_app.PathDispatch(
        None,
        pages(console_conf, storage, api_app.Services(console_conf, storage, MemoryDispatcher())),
    )
    client = testing.TestClient(lambda environ, start: built(environ, start))
    forged = client.simulate_get(
        "/console", headers={"X-Identity-Status": "Confirmed", "X-Project-ID": project}
    )
    assert forged.status_code == 401 and "Sign in" in forged.text

    signed_in = client.simulate_post(
        "/console/login",
        body="token=good-token",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert signed_in.status_code == 303
    cookie = signed_in.cookies["notifier_console_token"]
    assert cookie.http_only and cookie.same_site.lower() == "strict"

    opened = client.simulate_get(
        "/console", headers={"Cookie": "notifier_console_token=good-token"}
    )
    assert opened.status_code == 200 and project in opened.text
    refused = client.simulate_get("/console", headers={"Cookie": "notifier_console_token=bad"})
    assert refused.status_code == 401 and "refused" in refused.text


def test_with_keystone_the_console_goes_through_the_real_middleware(console_conf, storage, project):
    """keystonemiddleware (no Keystone runs here) strips forged identity
    headers and, deciding nothing itself, lets the page ask for a token; a
    console link still opens the console."""
    from keystonemiddleware import auth_token

    for group, opts in auth_token.list_opts():
        console_conf.register_opts(opts, group=group)
    console_conf.set_override(
        "www_authenticate_uri", "http://127.0.0.1:9/identity", group="keystone_authtoken"
    )
    console_conf.set_override("auth_strategy", "keystone")
    console_conf.set_override("enabled", False, group="console")
    app = create_app(
        console_conf, storage=storage, dispatcher=MemoryDispatcher(), pages=create_pages
    )
    client = testing.TestClient(lambda environ, start: app(environ, start))
    setup_queue(app.api.app, project, "orders")  # behind the middleware, as it would pass it

    asked = client.simulate_get("/console")
    forged = client.simulate_get(
        "/console", headers={"X-Identity-Status": "Confirmed", "X-Project-ID": project}
    )
    linked = client.simulate_get("/console", query_string=link_query(project))

    assert asked.status_code == 401 and 'action="/console/login"' in asked.text
    assert forged.status_code == 401 and "orders" not in forged.text
    assert linked.status_code == 200 and "orders" in linked.text
    assert client.simulate_get("/v2/queues", headers={"X-Project-ID": project}).status_code == 401

"""A hostile tenant's and an outsider's attacks on the console, the portal
and the dead-letter queues, each shown to fail: real Redis, the real app
through falcon's test client (as tests/integration/test_console.py)."""

import dataclasses
import json
import re
import time

import pytest
from falcon import testing

from notifier.api.app import PathDispatch, Services, create_app
from notifier.core.model import Attempt, DeadLetter, Outcome
from notifier.delivery.dead_letter_queue import DeadLetterQueues
from notifier.delivery.service import DeliveryService
from notifier.store.storage import Source
from notifier.web.app import create_pages
from tests.integration.test_console import (
    KEY,
    api,
    csrf_of,
    link_query,
    page,
    setup_queue,
)
from tests.support.dispatch import MemoryDispatcher

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def console_conf(conf):
    conf.set_override("secret_key", KEY, group="signed_url")
    conf.set_override("public_url", "http://notifier.test", group="api")
    conf.set_override("enabled", True, group="console")
    return conf


@pytest.fixture
def delivery(console_conf, storage):
    return DeliveryService(console_conf, storage, MemoryDispatcher())


@pytest.fixture
def app(console_conf, storage):
    return create_app(
        console_conf, storage=storage, dispatcher=MemoryDispatcher(), pages=create_pages
    )


@pytest.fixture
def anonymous(app):
    return testing.TestClient(app)


def form_body(fields):
    from urllib.parse import urlencode

    return urlencode(fields)


def explain_post(client, project, fields):
    html = page(client, "/console/explain", project).text
    return client.simulate_post(
        "/console/explain",
        query_string=link_query(project),
        body=form_body({"csrf": csrf_of(html), **fields}),
        headers=FORM,
    )


# -- the console ---------------------------------------------------------------


def test_identity_headers_sent_with_a_console_link_change_nothing(app, anonymous, project):
    setup_queue(app, project, "mine")
    setup_queue(app, "victim" + project, "theirs")

    result = anonymous.simulate_get(
        "/console",
        query_string=link_query(project),
        headers={
            "X-Project-ID": "victim" + project,
            "X-Roles": "admin",
            "X-Identity-Status": "Confirmed",
        },
    )

    assert result.status_code == 200
    assert "mine" in result.text and "theirs" not in result.text


def test_identity_headers_alone_open_nothing_under_noauth(anonymous, app, project):
    setup_queue(app, project, "mine")
    result = anonymous.simulate_get(
        "/console", headers={"X-Project-ID": project, "X-Identity-Status": "Confirmed"}
    )
    assert result.status_code == 403 and "mine" not in result.text


@pytest.mark.parametrize(
    "pasted",
    [
        "[" * 5_000 + "]" * 5_000,  # deeper than the parser's recursion
        "[" * 40 + "]" * 40,  # deeper than any API body may nest
        '{"a": NaN}',
    ],
    ids=["recursion", "depth", "nan"],
)
def test_explain_refuses_hostile_pasted_json_with_a_400(app, anonymous, project, pasted):
    setup_queue(app, project, "orders")
    for field in ("body", "attributes"):
        fields = {"source": "queues/orders", "body": '{"ok": 1}', field: pasted}
        if field == "body":
            fields.pop("attributes", None)
        result = explain_post(anonymous, project, fields)
        assert result.status_code == 400, (field, result.status_code, result.text[:300])
        assert "Traceback" not in result.text


def test_explain_spends_at_most_the_fanout_filter_budget(console_conf, app, anonymous, project):
    """A pasted message against many costly policies is charged fan-out's
    filter budget: what would overrun it is not evaluated (and says so)."""
    console_conf.set_override("filter_budget_per_fanout", 10, group="notification")
    setup_queue(app, project, "orders", filter_policy={"k": [{"prefix": "x"}]})
    body = json.dumps({"k": [f"v{i}" for i in range(50)]})

    result = explain_post(
        anonymous, project, {"source": "queues/orders", "body": "{}", "attributes": body}
    )

    assert result.status_code == 200, result.text
    assert "filter_budget_per_fanout" in result.text


def test_html_in_what_tenants_write_is_escaped_everywhere(app, anonymous, project):
    evil = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    sid = setup_queue(
        app,
        project,
        "orders",
        filter_policy={evil: ["x"]},
        _retry_policy={"retries_with_no_delay": 1},
    )
    posted = api(app, project).simulate_post(
        "/v2/queues/orders/messages",
        json={"messages": [{"ttl": 60, "body": {evil: evil}}]},
    )
    message_id = posted.json["resources"][0].rsplit("/", 1)[1]
    pages_seen = [
        page(anonymous, "/console/queues/orders", project),
        page(anonymous, f"/console/queues/orders/subscriptions/{sid}", project),
        page(anonymous, "/console/explain", project, source="queues/orders", message_id=message_id),
        explain_post(
            anonymous,
            project,
            {
                "source": "queues/orders",
                "body": json.dumps({evil: evil}),
                "tags": json.dumps([evil]),
            },
        ),
    ]
    for result in pages_seen:
        assert "<script>alert" not in result.text and "<img src=x" not in result.text
    for result in pages_seen[1:]:  # the pages that show the policy or the body
        assert result.status_code == 200, result.text
        assert "&lt;script&gt;" in result.text or "\\u003cscript" in result.text


def test_no_subscriber_secret_is_on_a_console_page(app, anonymous, project):
    client = api(app, project)
    client.simulate_put("/v2/queues/orders")
    created = client.simulate_post(
        "/v2/queues/orders/subscriptions",
        json={
            "subscriber": "http://user:hunter2pass@127.0.0.1:9/hook",
            "ttl": 3600,
            "options": {
                "post_headers": {"Authorization": "Bearer topsecrettoken"},
                "post_data": '{"k": "postdatasecret"}',
                "secret": "whsec_" + "A" * 44,
            },
        },
    )
    assert created.status_code == 201, created.text
    sid = created.json["subscription_id"]
    shown = [
        page(anonymous, "/console", project).text,
        page(anonymous, "/console/queues/orders", project).text,
        page(anonymous, f"/console/queues/orders/subscriptions/{sid}", project).text,
        page(anonymous, "/console/dead-letters", project).text,
        page(anonymous, "/console/endpoints", project).text,
        explain_post(anonymous, project, {"source": "queues/orders", "body": "{}"}).text,
    ]
    for html in shown:
        for secret in ("hunter2pass", "topsecrettoken", "postdatasecret", "A" * 44):
            assert secret not in html


def test_an_open_redirect_is_not_offered(console_conf, storage, project):
    """Sign-in and sign-out redirect to /console only, whatever is asked."""
    built = keystone_pages(console_conf, storage, project)
    client = testing.TestClient(built)
    for path in ("/console/login?next=https://evil.test", "/console/login"):
        result = client.simulate_post(
            path, body="token=good-token&next=https://evil.test", headers=FORM
        )
        assert result.headers.get("location") in ("/console", None)


# -- Keystone sign-in ------------------------------------------------------------


def keystone_pages(console_conf, storage, project):
    """The pages behind a stand-in for keystonemiddleware (good-token: ``project``)."""
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

    services = Services(console_conf, storage, MemoryDispatcher())
    built = PathDispatch(None, create_pages(console_conf, storage, services, fake_keystone))
    return lambda environ, start: built(environ, start)


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.test"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
    ids=["foreign-origin", "null-origin", "cross-site", "same-site"],
)
def test_a_cross_site_sign_in_is_refused(console_conf, storage, project, headers):
    """Login CSRF: another site must not sign a browser in with the
    attacker's token (the victim would then work in the attacker's project)."""
    client = testing.TestClient(keystone_pages(console_conf, storage, project))

    result = client.simulate_post(
        "/console/login", body="token=good-token", headers={**FORM, **headers}
    )

    assert result.status_code == 403, result.status_code
    assert "notifier_console_token" not in result.cookies


def test_a_same_origin_sign_in_still_works(console_conf, storage, project):
    client = testing.TestClient(keystone_pages(console_conf, storage, project))
    result = client.simulate_post(
        "/console/login",
        body="token=good-token",
        headers={**FORM, "Origin": "http://falconframework.org", "Sec-Fetch-Site": "same-origin"},
    )
    assert result.status_code == 303
    cookie = result.cookies["notifier_console_token"]
    assert cookie.path == "/console" and cookie.http_only
    assert cookie.same_site.lower() == "strict"
    assert not cookie.secure  # http, and an http public URL
    # Behind a proxy the Host may differ: the public URL's origin is the console's.
    proxied = client.simulate_post(
        "/console/login",
        body="token=good-token",
        headers={**FORM, "Origin": "http://notifier.test", "Host": "10.0.0.5:8888"},
    )
    assert proxied.status_code == 303


def test_the_sign_in_cookie_is_secure_behind_an_https_public_url(console_conf, storage, project):
    """TLS usually ends at a proxy: the deployer's https public URL makes
    the token cookie Secure even when the request came in over http."""
    console_conf.set_override("public_url", "https://notifier.example", group="api")
    client = testing.TestClient(keystone_pages(console_conf, storage, project))
    result = client.simulate_post("/console/login", body="token=good-token", headers=FORM)
    assert result.status_code == 303
    assert result.cookies["notifier_console_token"].secure


def test_the_console_cookie_opens_no_api_route(console_conf, storage, project):
    """The token cookie is the console's: the API never reads it."""
    app = create_app(console_conf, storage=storage, dispatcher=MemoryDispatcher(), pages=None)
    client = testing.TestClient(app)
    result = client.simulate_get("/v2/queues", headers={"Cookie": "notifier_console_token=x"})
    # noauth: the API wants its own X-Project-ID; the cookie stands for none.
    assert result.status_code == 400


# -- the portal ------------------------------------------------------------------


def portal_link(app, project, queue, sid):
    result = api(app, project).simulate_post(
        f"/v2/queues/{queue}/subscriptions/{sid}/portal", json={"expires": "1h"}
    )
    assert result.status_code == 201, result.text
    return result.json["url"].split("notifier.test", 1)[1]


@pytest.mark.parametrize("swap", ["subscription", "project", "queue"])
def test_a_portal_link_opens_no_other_subscription(app, anonymous, project, swap):
    mine = setup_queue(app, project, "orders")
    victim = "victim" + project
    theirs = setup_queue(app, victim, "orders")
    other_queue = setup_queue(app, project, "other")
    path, query = portal_link(app, project, "orders", mine).split("?", 1)
    if swap == "subscription":
        path = path.replace(mine, theirs)
        query = query.replace(f"project={project}", f"project={victim}")
    elif swap == "project":
        query = query.replace(f"project={project}", f"project={victim}")
    else:
        path = path.replace("/orders/", "/other/").replace(mine, other_queue)

    assert anonymous.simulate_get(path, query_string=query).status_code in (403, 404)


def test_a_portal_link_replays_no_other_subscriptions_dead_letter(
    app, anonymous, project, storage, delivery
):
    mine = setup_queue(app, project, "orders")
    theirs = setup_queue(app, "victim" + project, "orders")
    storage.dead_letter(
        [
            {
                "message_id": "m-victim",
                "subscription_id": theirs,
                "project": "victim" + project,
                "attempts": 1,
                "last": {"at": time.time(), "message_id": "m-victim", "subscription_id": theirs},
                "died_at": time.time(),
            }
        ]
    )
    path, query = portal_link(app, project, "orders", mine).split("?", 1)
    html = anonymous.simulate_get(path, query_string=query).text
    result = anonymous.simulate_post(
        path,
        query_string=query,
        body=form_body({"csrf": csrf_of(html), "action": "replay", "message_id": "m-victim"}),
        headers=FORM,
    )
    assert "Replayed 0" in result.text
    assert storage.dead_letters(theirs, since=0, limit=10)


# -- dead-letter queues ----------------------------------------------------------


def test_a_dead_letter_queue_name_stays_in_its_project(app, project):
    """Claim-count moves land in the mover's own project, whatever the name."""
    victim = "victim" + project
    api(app, victim).simulate_put("/v2/queues/shared")
    client = api(app, project)
    client.simulate_put(
        "/v2/queues/work",
        json={"_max_claim_count": 1, "_dead_letter_queue": "shared"},
    )
    client.simulate_post("/v2/queues/work/messages", json={"messages": [{"body": 1, "ttl": 60}]})
    first = client.simulate_post("/v2/queues/work/claims", json={"ttl": 60, "grace": 60})
    assert first.status_code == 201
    claim = first.headers["location"].rsplit("/", 1)[1]
    client.simulate_delete(f"/v2/queues/work/claims/{claim}")
    assert client.simulate_post("/v2/queues/work/claims", json={"ttl": 60}).status_code == 204

    theirs = api(app, victim).simulate_get("/v2/queues/shared/stats").json["messages"]
    mine = client.simulate_get("/v2/queues/shared/stats").json["messages"]
    assert theirs["total"] == 0 and mine["total"] == 1


@pytest.mark.parametrize(
    "target", ["", "../x", "x" * 65, "victim:shared", {"q": 1}, "a/b"], ids=repr
)
def test_a_dead_letter_queue_must_be_a_plain_queue_name(app, project, target):
    result = api(app, project).simulate_put("/v2/queues/work", json={"_dead_letter_queue": target})
    assert result.status_code == 400 and result.json["title"]


def notice_letter(source, subscription_project, reply, control=False):
    message = {
        "id": "m1",
        "source": list(source),
        "body": {"hello": 1},
        "ttl": 60,
        "created": time.time(),
    }
    last = Attempt(
        at=time.time(),
        message_id=None if control else "m1",
        subscription_id="s-foreign",
        outcome=Outcome.DEAD_LETTERED,
        attempt=3,
        status=500,
        response_body=reply,
    )
    return DeadLetter(
        message_id=None if control else "m1",
        subscription_id="s-foreign",
        project=subscription_project,
        attempts=3,
        last=last,
        died_at=time.time(),
        message=None if control else message,
        control=control,
    )


def dlq_messages(app, project, queue="dlq"):
    result = api(app, project).simulate_get(
        f"/v2/queues/{queue}/messages", query_string="echo=true&include_delayed=true"
    )
    return [] if result.status_code == 204 else result.json["messages"]


def test_a_topic_names_no_dead_letter_queue(app, project):
    """Notices go to the source's project: a topic (whose subscriptions may
    be other projects') cannot name one, so no project's endpoint replies
    reach a topic owner's queue."""
    result = api(app, project).simulate_put("/v2/topics/news", json={"_dead_letter_queue": "dlq"})
    assert result.status_code == 400 and result.json["field"] == "_dead_letter_queue"


def test_no_notice_is_posted_for_a_confirmation(app, project, storage, console_conf):
    api(app, project).simulate_put("/v2/queues/orders", json={"_dead_letter_queue": "dlq"})
    queues = DeadLetterQueues(console_conf, storage, MemoryDispatcher(), time.time)
    queues.post([notice_letter((project, "queues", "orders"), project, "x", control=True)])
    assert dlq_messages(app, project) == []


def test_a_notice_is_not_noticed_again(app, project, storage, console_conf):
    """A queue that is its own dead-letter queue: a failed notice makes no new one."""
    api(app, project).simulate_put("/v2/queues/dlq", json={"_dead_letter_queue": "dlq"})
    queues = DeadLetterQueues(console_conf, storage, MemoryDispatcher(), time.time)
    queues.post([notice_letter((project, "queues", "dlq"), project, "x")])
    (notice,) = dlq_messages(app, project)
    stored = storage.get_message(Source(project, "queues", "dlq"), notice["id"])
    letter = notice_letter((project, "queues", "dlq"), project, "x")
    queues.post([dataclasses.replace(letter, message=stored)])
    assert len(dlq_messages(app, project)) == 1


def test_a_delayed_message_is_not_in_the_consoles_recent_list(app, anonymous, project):
    setup_queue(app, project, "orders")
    api(app, project).simulate_post(
        "/v2/queues/orders/messages", json={"messages": [{"body": 1, "ttl": 600, "delay": 300}]}
    )
    result = page(anonymous, "/console/explain", project, source="queues/orders")
    assert result.status_code == 200
    assert not re.search(r'class="recent"', result.text)


def test_a_topic_owner_never_reads_a_subscribers_url_password(app, anonymous, project):
    """Another project's subscription on my topic: its post_headers values
    are hidden from me, and so is the password in its URL."""
    owner, subscriber = project, "sub" + project
    api(app, owner).simulate_put(
        "/v2/topics/news", json={"_allowed_subscribe_projects": [subscriber]}
    )
    created = api(app, subscriber).simulate_post(
        "/v2/topics/news/subscriptions",
        json={"subscriber": "http://user:hunter2pass@127.0.0.1:9/hook", "ttl": 3600},
        headers={"X-Topic-Owner": owner},
    )
    assert created.status_code == 201, created.text
    sid = created.json["subscription_id"]
    owner_api = api(app, owner)
    listed = owner_api.simulate_get("/v2/topics/news/subscriptions").text
    one = owner_api.simulate_get(f"/v2/topics/news/subscriptions/{sid}").text
    console = page(anonymous, f"/console/topics/news/subscriptions/{sid}", owner).text
    for shown in (listed, one, console):
        assert "user:" in shown or "127.0.0.1:9/hook" in shown
        assert "hunter2pass" not in shown
    # The subscribing project itself still reads its own URL whole (Zaqar's GET).
    mine = api(app, subscriber).simulate_get(
        f"/v2/topics/news/subscriptions/{sid}", headers={"X-Topic-Owner": owner}
    )
    assert "hunter2pass" in mine.text


def test_a_confirmation_is_read_by_no_consumer_route(app, anonymous, project, storage):
    """A confirmation (its signed ConfirmURL and PortalURL are the
    subscriber's) is no message of its queue: listing, claims, pop, reads by
    id and Explain never hand it to the owner, even by its id."""
    setup_queue(app, project, "orders")
    source = Source(project, "queues", "orders")
    control_id = storage.post_control_message(
        source,
        {"ConfirmURL": "https://x/confirm-secret", "PortalURL": "https://x/portal-secret"},
        600,
    )
    client = api(app, project)
    reads = [
        client.simulate_get(f"/v2/queues/orders/messages/{control_id}"),
        client.simulate_get("/v2/queues/orders/messages", query_string=f"ids={control_id}"),
        client.simulate_get(
            "/v2/queues/orders/messages",
            query_string="echo=true&include_claimed=true&include_delayed=true",
        ),
        client.simulate_post("/v2/queues/orders/claims", json={"ttl": 60, "grace": 60}),
        client.simulate_delete("/v2/queues/orders/messages", query_string="pop=5"),
        page(anonymous, "/console/explain", project, source="queues/orders", message_id=control_id),
        client.simulate_get(f"/v2/queues/orders/messages/{control_id}/attempts"),
    ]
    for result in reads:
        assert "secret" not in result.text, result.text
    assert storage.get_control_messages([control_id])  # still there, for its subscriber


def test_forged_identity_reaches_no_console_route_under_keystone(console_conf, storage, project):
    """Every path the console's routes answer goes through Keystone's
    middleware (which drops forged identity headers), trailing slashes and
    doubled ones included."""
    setup_queue(
        create_app(console_conf, storage=storage, dispatcher=MemoryDispatcher()), project, "orders"
    )
    client = testing.TestClient(keystone_pages(console_conf, storage, project))
    forged = {"X-Identity-Status": "Confirmed", "X-Project-ID": project, "X-Auth-Token": "bad"}
    for path in (
        "/console",
        "/console/",
        "/console//",
        "/console/queues/orders",
        "/console/explain/",
    ):
        result = client.simulate_get(path, headers=forged)
        assert result.status_code in (401, 404), (path, result.status_code)
        assert "orders" not in result.text or result.status_code == 404

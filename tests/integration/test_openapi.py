"""The OpenAPI document (notifier/api/openapi.yaml) against the app it describes.

- it is a valid OpenAPI 3.1 document, served as JSON at /v2/openapi.json;
- its operations are exactly the falcon routes of the app, and the other way
  round (a new route without documentation fails here);
- a property-based fuzz run (schemathesis, in process through its WSGI
  transport) against the app on real Redis finds no 5xx, no response that
  breaks its documented schema and no undocumented status code.

No worker runs here: subscriptions are only stored. Webhook subscribers are
resolved at creation (to refuse private addresses), so name resolution is
stubbed to answer only for loopback: the fuzz run never leaves the machine.
"""

import json
import socket
import uuid

import falcon.inspect
import hypothesis
import pytest
import schemathesis
from falcon import testing
from hypothesis import strategies as st
from openapi_spec_validator import validate as validate_spec
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from notifier.api import openapi
from notifier.api.app import create_app
from notifier.core import signing
from notifier.delivery.service import DeliveryService
from tests.support.dispatch import MemoryDispatcher
from workers.app import CeleryDispatcher, create_celery

PATCH_TYPE = "application/openstack-messaging-v2.0-json-patch"
#: Operations answered by the WSGI layer in front of falcon (notifier.api.signed).
MIDDLEWARE_OPERATIONS = {
    ("OPTIONS", "/v2/queues/{name}/subscriptions/{subscription_id}/confirm"),
    ("OPTIONS", "/v2/topics/{name}/subscriptions/{subscription_id}/confirm"),
    ("OPTIONS", "/v2/queues/{name}/subscriptions/{subscription_id}/confirm/{nonce}"),
    ("OPTIONS", "/v2/topics/{name}/subscriptions/{subscription_id}/confirm/{nonce}"),
}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
#: Fuzz budget: examples per operation and phase. ~50 operations; the whole
#: run stays well under a minute on the 2-core CI machine.
MAX_EXAMPLES = 12
STATEFUL_EXAMPLES = 40
SEED = 20261122


@pytest.fixture
def celery_app(conf):
    app = create_celery(conf)
    yield app
    app.close()


def build_app(conf, storage, celery_app):
    # Pre-signed URLs enabled, so POST .../share answers (else a documented 501).
    conf.set_override("secret_key", "k" * 32, group="signed_url")
    return create_app(conf, storage=storage, dispatcher=CeleryDispatcher(celery_app))


@pytest.fixture
def app(conf, storage, celery_app):
    return build_app(conf, storage, celery_app)


def documented_operations(document):
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def routed_operations(wsgi_app):
    falcon_app = wsgi_app.app  # SignedHeadersAuth wraps the falcon app
    found = set()
    for route in falcon.inspect.inspect_routes(falcon_app):
        for method in route.methods:
            if not method.internal:  # falcon's default OPTIONS and 405 responders
                found.add((method.method, route.path))
    return found


# --- the document ------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1():
    document = openapi.document()
    assert document["openapi"].startswith("3.1.")
    validate_spec(document)


def test_the_document_is_served_as_json(app, project):
    client = testing.TestClient(app)
    result = client.simulate_get("/v2/openapi.json")
    assert result.status_code == 200
    assert result.headers["content-type"] == "application/json"
    assert json.loads(result.content) == openapi.document()


def test_the_document_ships_with_the_package():
    from importlib.resources import files

    assert files("notifier.api").joinpath("openapi.yaml").is_file()


def test_every_route_is_documented_and_every_documented_operation_routed(app):
    documented = documented_operations(openapi.document()) - MIDDLEWARE_OPERATIONS
    routed = routed_operations(app)
    assert routed - documented == set(), "routes missing from openapi.yaml"
    assert documented - routed == set(), "documented operations the app does not serve"


def test_the_middleware_operations_are_served(app):
    client = testing.TestClient(app)
    for method, path in MIDDLEWARE_OPERATIONS:
        path = path.format(name="q", subscription_id=uuid.uuid4().hex, nonce=uuid.uuid4().hex)
        result = client.simulate_request(method, path)
        assert result.status_code == 204, (method, path, result.text)


def _operations(document):
    for path, item in document["paths"].items():
        shared = item.get("parameters", [])
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation, shared + operation.get("parameters", [])


def _resolve(document, ref_or_object):
    while "$ref" in ref_or_object:
        node = document
        for part in ref_or_object["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        ref_or_object = node
    return ref_or_object


def test_every_project_scoped_operation_requires_x_project_id():
    document = openapi.document()
    for path, method, operation, parameters in _operations(document):
        names = {_resolve(document, p)["name"]: _resolve(document, p) for p in parameters}
        if path.startswith(("/v2/queues", "/v2/topics")) and method != "options":
            assert names["X-Project-ID"]["required"], (method, path)
            assert "400" in operation["responses"], (method, path)
            assert "503" in operation["responses"], (method, path)
        if "/messages" in path and method in ("post", "get") and not path.endswith("/attempts"):
            assert names["Client-ID"]["required"], (method, path)
            assert names["Client-ID"]["schema"]["format"] == "uuid"


def test_every_error_response_is_the_json_error_body():
    document = openapi.document()
    error = {"$ref": "#/components/schemas/Error"}
    for path, method, operation, _ in _operations(document):
        if path == "/v2/health":
            continue  # its 503 is the health report itself
        for status, response in operation["responses"].items():
            response = _resolve(document, response)
            if int(status) >= 400 and response.get("content"):
                assert response["content"]["application/json"]["schema"] == error, (
                    method,
                    path,
                    status,
                )
            elif int(status) >= 400:
                assert method == "head", (method, path, status)


def test_the_patch_operations_take_the_json_patch_media_type():
    document = openapi.document()
    for path in ("/v2/queues/{name}", "/v2/topics/{name}"):
        content = document["paths"][path]["patch"]["requestBody"]["content"]
        assert list(content) == [PATCH_TYPE]


# --- the fuzz run ---------------------------------------------------------------


@schemathesis.serializer(PATCH_TYPE)
def _json_patch(ctx, value):
    return json.dumps(value).encode("utf-8")


class _CurrentApp:
    """The WSGI app schemathesis calls: the one the running test built."""

    app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


CURRENT_APP = _CurrentApp()
FUZZ_CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "cache": {"enabled": False},
        "generation": {
            "mode": "all",
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
        },
    }
)
SCHEMA = schemathesis.openapi.from_dict(openapi.document(), config=FUZZ_CONFIG)
SCHEMA.app = CURRENT_APP
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
_real_getaddrinfo = socket.getaddrinfo


def _loopback_only_getaddrinfo(host, *args, **kwargs):
    """Resolve loopback names and literal addresses; every other name fails,
    as if it did not exist (the API then accepts it: see check_destination)."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host in ("localhost", "127.0.0.1", "::1", None):
        return _real_getaddrinfo(host, *args, **kwargs)
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except (OSError, ValueError):
        raise socket.gaierror(socket.EAI_NONAME, "not resolved in the fuzz run") from None
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture
def fuzz_app(conf, storage, celery_app, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", _loopback_only_getaddrinfo)
    CURRENT_APP.app = build_app(conf, storage, celery_app)
    yield CURRENT_APP.app
    CURRENT_APP.app = None


def _overflows(expires):
    try:
        signing._parse_expires(expires)
    except OverflowError:
        return True
    return False


def known_bug(case):
    """Return which reported bug a generated case would hit, else None.

    Each has a strict xfail test in test_bad_input.py; when it is fixed, that
    test fails, and its entry here goes too.
    """
    return None  # none open today


@SCHEMA.hook
def filter_case(context, case):
    return known_bug(case) is None


#: Subscribers the API accepts (names resolve nowhere: see the stub above), so
#: the fuzz run also creates subscriptions and sees them listed and read back.
SUBSCRIBERS = [
    "mailto:ops@example.com",
    "https://hooks.example.com/notify",
    "http://hooks.example.net:8080/in?x=1",
    "mailto:a@example.org,b@example.org",
]


@SCHEMA.hook
def flatmap_body(context, body):
    """Give two thirds of the generated subscription bodies a valid
    subscriber, half of those without options (random options are mostly
    refused: addresses, filter policies, secrets)."""
    if not (
        isinstance(body, dict)
        and isinstance(body.get("subscriber"), str)
        and context.operation.path.endswith("/subscriptions")
    ):
        return st.just(body)
    bare = {k: v for k, v in body.items() if k != "options"}
    return st.one_of(
        st.just(body),
        st.sampled_from(SUBSCRIBERS).map(lambda s: {**body, "subscriber": s}),
        st.sampled_from(SUBSCRIBERS).map(lambda s: {**bare, "subscriber": s}),
    )


@pytest.mark.slow
@SCHEMA.parametrize()
@hypothesis.settings(
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_the_api_conforms_to_its_document(case, fuzz_app):
    case.call_and_validate(checks=CHECKS)


class APIStateMachine(SCHEMA.as_state_machine()):
    """Sequences that follow the document's links: create a queue or topic,
    then read, patch, publish and subscribe to it; subscribe, then read,
    change, replay, enable and delete the subscription. Each scenario starts
    from an empty Redis, so Hypothesis can replay it."""

    redis = None

    def setup(self):
        self.redis.flushall()

    def validate_response(self, response, case, additional_checks=None, **kwargs):
        case.validate_response(response, checks=CHECKS, recorder=self.recorder)


@pytest.mark.slow
def test_linked_sequences_conform_to_the_document(fuzz_app, redis_client):
    APIStateMachine.redis = redis_client
    APIStateMachine.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=8,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )


# --- every operation's success, validated against the document -------------------


class Tour:
    """Calls operations through schemathesis with chosen data and validates
    each response against the document; remembers which operations it saw."""

    def __init__(self, project):
        self.project = project
        self.seen = set()

    def __call__(
        self,
        method,
        path,
        status,
        *,
        headers=None,
        body=None,
        query=None,
        media_type=None,
        project=True,
        **path_parameters,
    ):
        operation = SCHEMA[path][method]
        all_headers = {"X-Project-ID": self.project} if project else {}
        all_headers.update(headers or {})
        kwargs = (
            {} if body is None else {"body": body, "media_type": media_type or "application/json"}
        )
        case = operation.Case(
            path_parameters=path_parameters or None, headers=all_headers, query=query, **kwargs
        )
        response = case.call()
        assert response.status_code == status, (
            method,
            path,
            response.status_code,
            response.text[:500],
        )
        case.validate_response(response, checks=CHECKS)
        self.seen.add((method, path))
        return response


@pytest.fixture
def tour(conf, storage, receiver, project):
    conf.set_override("secret_key", "k" * 32, group="signed_url")
    dispatcher = MemoryDispatcher()
    CURRENT_APP.app = create_app(conf, storage=storage, dispatcher=dispatcher)
    service = DeliveryService(conf, storage, dispatcher)
    tour = Tour(project)
    tour.deliver = lambda: dispatcher.run(service)
    yield tour
    CURRENT_APP.app = None


NO_RETRIES = {
    "retries_with_no_delay": 0,
    "minimum_delay_retries": 0,
    "backoff_retries": 0,
    "maximum_delay_retries": 0,
}


def _tour_source(tour, kind, receiver, conf):
    """Every operation on one queue or topic, each answering its success status."""
    base = f"/v2/{kind}"
    item, name = base + "/{name}", f"tour-{kind}"
    client = {"Client-ID": str(uuid.uuid4())}
    tour(
        "PUT", item, 201, name=name, body={"_retry_policy": NO_RETRIES, "_default_message_ttl": 600}
    )
    tour("PUT", item, 204, name=name, body={"_retry_policy": NO_RETRIES, "colour": "red"})
    tour("GET", base, 200, query={"detailed": True, "limit": 5})
    tour("GET", item, 200, name=name)
    tour(
        "PATCH",
        item,
        200,
        name=name,
        media_type=PATCH_TYPE,
        body=[
            {"op": "add", "path": "/metadata/team", "value": "ops"},
            {"op": "remove", "path": "/metadata/colour"},
        ],
    )

    subs = item + "/subscriptions"
    sub = subs + "/{subscription_id}"
    receiver.script("/tour", [500])
    created = tour(
        "POST",
        subs,
        201,
        name=name,
        body={
            "subscriber": receiver.url + "/tour",
            "ttl": 3600,
            "options": {"_retry_policy": NO_RETRIES, "post_headers": {"X-Tour": "1"}},
        },
    )
    webhook = created.json()["subscription_id"]
    assert created.json()["secret"].startswith("whsec_")
    mail = tour(
        "POST",
        subs,
        201,
        name=name,
        body={
            "subscriber": "mailto:ops@example.com",
            "options": {"filter_policies": ["never"], "subject": "tour"},
        },
    ).json()
    tour("POST", subs, 409, name=name, body={"subscriber": "mailto:ops@example.com"})
    tour("GET", subs, 200, name=name, query={"limit": 1})
    tour("GET", sub, 200, name=name, subscription_id=webhook)
    tour("PATCH", sub, 204, name=name, subscription_id=mail["subscription_id"], body={"ttl": 7200})

    posted = tour(
        "POST",
        item + "/messages",
        201,
        name=name,
        headers=client,
        body={
            "messages": [
                {
                    "body": {"event": "tour"},
                    "ttl": 300,
                    "filter_policies": ["a"],
                    "attributes": {"kind": {"DataType": "String", "StringValue": "tour"}},
                }
            ]
        },
    )
    message_id = posted.json()["resources"][0].rsplit("/", 1)[1]
    tour(
        "GET",
        item + "/messages/{message_id}",
        200,
        name=name,
        message_id=message_id,
        headers=client,
    )
    tour.deliver()  # one failed attempt, dead-lettered at once
    attempts = tour(
        "GET", item + "/messages/{message_id}/attempts", 200, name=name, message_id=message_id
    ).json()["attempts"]
    assert [a["outcome"] for a in attempts] == ["dead_lettered"], attempts
    tour("GET", sub + "/attempts", 200, name=name, subscription_id=webhook, query={"limit": 10})
    letters = tour(
        "GET", sub + "/dead-letters", 200, name=name, subscription_id=webhook, query={"since": 0}
    ).json()["dead_letters"]
    assert len(letters) == 1 and letters[0]["history"], letters
    tour(
        "POST",
        sub + "/replay",
        202,
        name=name,
        subscription_id=webhook,
        body={"message_id": message_id},
    )
    tour("POST", sub + "/enable", 200, name=name, subscription_id=webhook)
    tour("POST", sub + "/secret/rotate", 201, name=name, subscription_id=webhook)
    tour("POST", sub + "/portal", 201, name=name, subscription_id=webhook, body={"expires": "1h"})
    tour(
        "POST",
        item + "/share",
        201,
        name=name,
        body={
            "methods": ["GET", "POST"],
            "paths": ["messages", "subscriptions"],
            "expires": "2100-01-01T00:00:00Z",
        },
    )

    confirm = sub.format(name=name, subscription_id=webhook) + "/confirm"
    ids = {"name": name, "subscription_id": webhook}
    expires = "2100-01-01T00:00:00"
    signature = signing.sign_url(
        conf.signed_url.secret_key, [confirm], ["PUT"], tour.project, expires
    )
    tour("OPTIONS", sub + "/confirm", 204, project=False, name=name, subscription_id=webhook)
    tour(
        "PUT",
        sub + "/confirm",
        204,
        name=name,
        subscription_id=webhook,
        headers={
            "URL-Signature": signature,
            "URL-Expires": expires,
            "URL-Methods": "PUT",
            "URL-Paths": confirm,
        },
        body={"confirmed": True},
    )
    # Stored without require_confirmation, it has no confirmation nonce:
    # a link with one is refused.
    nonce = "0" * 32
    tour("OPTIONS", sub + "/confirm/{nonce}", 204, project=False, **ids, nonce=nonce)
    tour(
        "PUT",
        sub + "/confirm/{nonce}",
        403,
        **ids,
        nonce=nonce,
        headers={
            "URL-Signature": signing.sign_url(
                conf.signed_url.secret_key, [f"{confirm}/{nonce}"], ["PUT"], tour.project, expires
            ),
            "URL-Expires": expires,
            "URL-Methods": "PUT",
            "URL-Paths": f"{confirm}/{nonce}",
        },
        body={"confirmed": True},
    )
    if kind == "queues":
        _tour_consumer(tour, item, name, client)
    tour("DELETE", sub, 204, name=name, subscription_id=mail["subscription_id"])
    tour("DELETE", item, 204, name=name)


def _tour_consumer(tour, item, name, client):
    """A queue's consumer side: listing, claims, pop, stats, purge."""
    messages = item + "/messages"
    posted = tour(
        "POST",
        messages,
        201,
        name=name,
        headers=client,
        body={"messages": [{"body": {"n": n}, "ttl": 300} for n in range(4)]},
    )
    ids = [href.rsplit("/", 1)[1] for href in posted.json()["resources"]]
    listed = tour(
        "GET", messages, 200, name=name, headers=client, query={"echo": True, "limit": 2}
    ).json()
    assert len(listed["messages"]) == 2 and listed["links"], listed
    tour("GET", messages, 200, name=name, headers=client, query={"ids": ",".join(ids[:2])})
    claims = item + "/claims"
    claimed = tour(
        "POST", claims, 201, name=name, headers=client, query={"limit": 1}, body={"ttl": 60}
    )
    [held] = claimed.json()["messages"]
    claim_id = held["href"].rsplit("=", 1)[1]
    claim = claims + "/{claim_id}"
    tour("GET", claim, 200, name=name, claim_id=claim_id, headers=client)
    tour("PATCH", claim, 204, name=name, claim_id=claim_id, headers=client, body={"ttl": 120})
    message = messages + "/{message_id}"
    tour("DELETE", message, 403, name=name, message_id=held["id"], headers=client)
    tour(
        "DELETE",
        message,
        204,
        name=name,
        message_id=held["id"],
        headers=client,
        query={"claim_id": claim_id},
    )
    tour("DELETE", claim, 204, name=name, claim_id=claim_id, headers=client)
    tour("DELETE", messages, 200, name=name, headers=client, query={"pop": 1})
    tour("DELETE", messages, 204, name=name, headers=client, query={"ids": ids[2]})
    tour("GET", item + "/stats", 200, name=name)
    tour("POST", item + "/purge", 204, name=name, body={"resource_types": ["messages"]})


@pytest.mark.slow
def test_every_operation_answers_as_documented(tour, receiver, conf):
    for method, path, status in [
        ("GET", "/v2", 200),
        ("GET", "/v2/ping", 204),
        ("HEAD", "/v2/ping", 204),
        ("GET", "/v2/health", 200),
        ("HEAD", "/v2/health", 200),
        ("GET", "/v2/openapi.json", 200),
        ("GET", "/v2/confirmation", 200),
        ("GET", "/metrics", 200),
    ]:
        tour(method, path, status, project=False)
    _tour_source(tour, "queues", receiver, conf)
    _tour_source(tour, "topics", receiver, conf)
    assert tour.seen == documented_operations(openapi.document())

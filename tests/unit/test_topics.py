"""Unit tests of notifier.core.topics: who may publish and subscribe, and metadata checks."""

import pytest

from notifier.conf import load_conf
from notifier.core import topics
from notifier.errors import ValidationError
from notifier.sinks import RequestContext

OWNER = "owner"
HOOK = "https://example.com/hook"


@pytest.fixture(scope="module")
def conf():
    return load_conf([])


def ctx(project, user=None):
    return RequestContext(project_id=project, user_id=user)


# --- publishing ---------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata, context, allowed",
    [
        pytest.param({}, ctx(OWNER), True, id="owner, no lists"),
        pytest.param({}, ctx("other"), False, id="other project, no lists"),
        pytest.param({}, ctx("other", "u1"), False, id="other project's user, no lists"),
        pytest.param(
            {"_allowed_sending_projects": ["other"]}, ctx("other"), True, id="allowed other project"
        ),
        pytest.param(
            {"_allowed_sending_projects": ["other"]}, ctx("third"), False, id="disallowed project"
        ),
        pytest.param(
            {"_allowed_sending_projects": ["other"]},
            ctx(OWNER),
            False,
            id="owner not listed once a list is set",
        ),
        pytest.param(
            {"_allowed_sending_projects": [OWNER, "other"]}, ctx(OWNER), True, id="owner listed"
        ),
        pytest.param(
            {"_allowed_sending_users": ["u1"]},
            ctx("third", "u1"),
            True,
            id="allowed user of any project",
        ),
        pytest.param(
            {"_allowed_sending_users": ["u1"]}, ctx("third", "u2"), False, id="disallowed user"
        ),
        pytest.param(
            {"_allowed_sending_users": ["u1"]},
            ctx(OWNER),
            False,
            id="owner without user id, users listed",
        ),
        pytest.param(
            {"_allowed_sending_projects": ["p1"], "_allowed_sending_users": ["u1"]},
            ctx("p1", "u9"),
            True,
            id="project match is enough",
        ),
        pytest.param(
            {"_allowed_sending_projects": ["p1"], "_allowed_sending_users": ["u1"]},
            ctx("p9", "u1"),
            True,
            id="user match is enough",
        ),
        pytest.param(
            {"_allowed_sending_projects": []}, ctx(OWNER), False, id="an empty list allows nobody"
        ),
    ],
)
def test_who_may_publish(metadata, context, allowed):
    assert topics.may_publish(metadata, OWNER, context) is allowed
    refusal = topics.publish_refusal(metadata, OWNER, context)
    assert (refusal is None) is allowed


def test_a_publish_refusal_names_the_lists_to_change():
    refusal = topics.publish_refusal({"_allowed_sending_projects": ["a"]}, OWNER, ctx("b", "u"))
    assert "'b'" in refusal and "_allowed_sending_projects" in refusal


# --- subscribing --------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata, context, subscriber, allowed",
    [
        pytest.param({}, ctx(OWNER), HOOK, True, id="owner, no lists"),
        pytest.param({}, ctx("any"), HOOK, True, id="any project, no lists"),
        pytest.param(
            {"_allowed_subscribe_projects": ["other"]},
            ctx("other"),
            HOOK,
            True,
            id="allowed other project",
        ),
        pytest.param(
            {"_allowed_subscribe_projects": ["other"]},
            ctx("third"),
            HOOK,
            False,
            id="disallowed project",
        ),
        pytest.param(
            {"_allowed_subscribe_projects": ["other"]},
            ctx(OWNER),
            HOOK,
            False,
            id="owner not listed once a list is set",
        ),
        pytest.param(
            {"_allowed_subscribe_users": ["u1"]}, ctx("third", "u1"), HOOK, True, id="allowed user"
        ),
        pytest.param(
            {"_allowed_subscribe_users": ["u1"]},
            ctx("third", "u2"),
            HOOK,
            False,
            id="disallowed user",
        ),
        pytest.param(
            {"_allowed_subscribe_users": []},
            ctx(OWNER),
            HOOK,
            False,
            id="an empty list allows nobody",
        ),
        pytest.param(
            {"_allowed_subscribe_protocols": ["email"]},
            ctx(OWNER),
            HOOK,
            False,
            id="disallowed protocol",
        ),
        pytest.param(
            {"_allowed_subscribe_protocols": ["email"]},
            ctx(OWNER),
            "mailto:ops@example.com",
            True,
            id="allowed protocol",
        ),
        pytest.param(
            {"_allowed_subscribe_protocols": []}, ctx(OWNER), HOOK, False, id="no protocol allowed"
        ),
        pytest.param(
            {"_allowed_subscribe_projects": ["other"], "_allowed_subscribe_protocols": ["trust"]},
            ctx("other"),
            HOOK,
            False,
            id="allowed project, disallowed protocol",
        ),
        pytest.param(
            {}, ctx(OWNER), "gopher://example.com/", False, id="a scheme that is no topic protocol"
        ),
    ],
)
def test_who_may_subscribe(metadata, context, subscriber, allowed):
    assert topics.may_subscribe(metadata, OWNER, context, subscriber) is allowed


@pytest.mark.parametrize(
    "subscriber, protocol",
    [
        ("mailto:ops@example.com", "email"),
        ("http://example.com/", "webhook"),
        ("HTTPS://example.com/", "webhook"),
        ("trust+http://example.com/", "trust"),
        ("trust+https://example.com/", "trust"),
        ("ftp://example.com/", None),
        ("no-scheme", None),
    ],
)
def test_subscriber_schemes_map_to_topic_protocols(subscriber, protocol):
    assert topics.protocol_of(subscriber) == protocol


def test_by_default_every_protocol_is_allowed():
    for subscriber in ("mailto:a@example.com", HOOK, "trust+https://example.com/"):
        assert topics.protocol_refusal({}, subscriber) is None


def test_a_protocol_refusal_says_what_the_topic_allows():
    refusal = topics.protocol_refusal({"_allowed_subscribe_protocols": ["email", "trust"]}, HOOK)
    assert "email, trust" in refusal and "webhook" in refusal


# --- metadata -----------------------------------------------------------------


def test_a_topic_takes_every_reserved_attribute_and_free_keys(conf):
    metadata = {
        "_allowed_sending_users": ["u1"],
        "_allowed_sending_projects": ["p1"],
        "_allowed_subscribe_users": [],
        "_allowed_subscribe_projects": ["p2"],
        "_allowed_subscribe_protocols": ["email", "webhook", "trust"],
        "_retry_policy": {"minimum_delay": 1},
        "_default_message_ttl": 600,
        "description": "orders",
    }
    assert topics.validate_topic_metadata(metadata, conf) == metadata


@pytest.mark.parametrize(
    "metadata, field",
    [
        ([], "metadata"),
        ({"_allowed_sending_users": "u1"}, "_allowed_sending_users"),
        ({"_allowed_sending_projects": [1]}, "_allowed_sending_projects"),
        ({"_allowed_subscribe_users": [""]}, "_allowed_subscribe_users"),
        ({"_allowed_subscribe_projects": None}, "_allowed_subscribe_projects"),
        ({"_allowed_subscribe_protocols": ["sms"]}, "_allowed_subscribe_protocols"),
        ({"_allowed_subscribe_protocols": "email"}, "_allowed_subscribe_protocols"),
        ({"_allowed_subscribe_project": ["p"]}, "_allowed_subscribe_project"),
        ({"_retry_policy": {"minimum_delay": -1}}, "_retry_policy.minimum_delay"),
        ({"_retry_policy": "fast"}, "_retry_policy"),
        ({"_default_message_ttl": 30}, "_default_message_ttl"),
        ({"big": "x" * 70000}, "metadata"),
    ],
)
def test_bad_topic_metadata_is_refused_naming_the_attribute(conf, metadata, field):
    with pytest.raises(ValidationError) as caught:
        topics.validate_topic_metadata(metadata, conf)
    assert caught.value.field == field
    assert caught.value.description


def test_the_specs_patch_spelling_of_a_reserved_attribute_is_accepted():
    ops = [
        {"op": "replace", "path": "/metadata/allowed_sending_projects", "value": ["p"]},
        {"op": "add", "path": "/metadata/colour", "value": "red"},
        "not an op",
    ]
    assert topics.canonical_patch_paths(ops) == [
        {"op": "replace", "path": "/metadata/_allowed_sending_projects", "value": ["p"]},
        {"op": "add", "path": "/metadata/colour", "value": "red"},
        "not an op",
    ]

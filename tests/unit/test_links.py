"""The web pages' signed links: what they grant, and what they refuse."""

import datetime

import pytest

from notifier.core import links, signing
from notifier.errors import AuthError, ValidationError

KEY = "unit-key"
NOW = datetime.datetime(2030, 1, 1, 12, 0, 0)
PATH = links.portal_path("queues", "orders", "s1")


def verify(link, path=PATH, scope=links.PORTAL, now=NOW, **changed):
    fields = {"project": link.project, "expires": link.expires, "signature": link.signature}
    fields.update(changed)
    return links.verify_link(KEY, path, scope, now=now, **fields)


def test_a_link_grants_its_own_page():
    link = links.sign_link(KEY, PATH, links.PORTAL, "p1", "1h", now=NOW)
    assert verify(link) == link
    assert link.expires == "2030-01-01T13:00:00"


@pytest.mark.parametrize(
    "why, kwargs",
    [
        ("another page", {"path": links.portal_path("queues", "orders", "s2")}),
        ("another scope", {"scope": links.CONSOLE}),
        ("another project", {"project": "p2"}),
        ("a later expiry", {"expires": "2030-01-02T13:00:00"}),
        ("an altered signature", {"signature": "0" * 64}),
        ("after it expired", {"now": NOW + datetime.timedelta(hours=2)}),
    ],
)
def test_a_link_is_refused_for(why, kwargs):
    link = links.sign_link(KEY, PATH, links.PORTAL, "p1", "1h", now=NOW)
    with pytest.raises(AuthError):
        verify(link, **kwargs)


def test_a_link_authorises_no_api_request_as_signed_headers():
    link = links.sign_link(KEY, PATH, links.PORTAL, "p1", "1h", now=NOW)
    with pytest.raises(AuthError):
        signing.verify_signed_request(
            KEY,
            signature=link.signature,
            expires=link.expires,
            methods="PORTAL",
            paths=PATH,
            project="p1",
            request_method="POST",
            request_path=PATH,
            now=NOW,
        )


@pytest.mark.parametrize(
    "expires, expected",
    [
        (None, NOW + links.DEFAULT_TTL),
        (60, NOW + datetime.timedelta(minutes=1)),
        ("30m", NOW + datetime.timedelta(minutes=30)),
        ("2d", NOW + datetime.timedelta(days=2)),
        ("2030-01-03T00:00:00Z", datetime.datetime(2030, 1, 3)),
    ],
)
def test_expires_reads_durations_and_dates(expires, expected):
    assert links.expires_at(expires, NOW) == expected


@pytest.mark.parametrize("expires", ["yesterday", "2029-01-01T00:00:00", 0, "365d", True])
def test_expires_refuses_the_past_the_far_future_and_nonsense(expires):
    with pytest.raises(ValidationError) as caught:
        links.expires_at(expires, NOW)
    assert caught.value.field == "expires"


def test_a_csrf_token_belongs_to_one_link():
    one = links.sign_link(KEY, PATH, links.PORTAL, "p1", "1h", now=NOW)
    other = links.sign_link(KEY, PATH, links.PORTAL, "p1", "2h", now=NOW)
    assert links.csrf_valid(KEY, one, links.csrf_token(KEY, one))
    assert not links.csrf_valid(KEY, one, links.csrf_token(KEY, other))
    assert not links.csrf_valid(KEY, one, None)


SUBSCRIBER = "https://hooks.example/a"


def test_a_portal_url_is_the_base_url_the_page_path_and_a_link_for_its_subscriber():
    url = links.portal_url(
        KEY, "https://n.example", ("p1", "topics", "alerts"), "s9", SUBSCRIBER, "2h", now=NOW
    )

    path, _, query = url.removeprefix("https://n.example").partition("?")
    assert path == links.portal_path("topics", "alerts", "s9")
    fields = dict(pair.split("=", 1) for pair in query.split("&"))
    assert fields["project"] == "p1" and fields["expires"] == "2030-01-01T14%3A00%3A00"
    signed = links.portal_signed_path("topics", "alerts", "s9", SUBSCRIBER)
    link = links.sign_link(KEY, signed, links.PORTAL, "p1", "2h", now=NOW)
    assert fields["signature"] == link.signature


def test_a_portal_link_opens_nothing_once_the_subscriber_changed():
    signed = links.portal_signed_path("queues", "orders", "s1", SUBSCRIBER)
    link = links.sign_link(KEY, signed, links.PORTAL, "p1", "1h", now=NOW)
    assert verify(link, path=signed) == link
    for other in ("https://hooks.example/b", "mailto:x@example.com", ""):
        with pytest.raises(AuthError):
            verify(link, path=links.portal_signed_path("queues", "orders", "s1", other))
    with pytest.raises(AuthError):  # nor the unbound page path
        verify(link)

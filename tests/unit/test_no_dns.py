"""The unit-test guard: the system resolver is out of reach (tests/unit/conftest.py)."""

import socket

import pytest

from notifier.conf import load_conf
from notifier.services.subscriptions import checked_fields
from tests.unit.conftest import NameResolutionInUnitTest


@pytest.mark.parametrize(
    "resolve",
    [
        lambda: socket.getaddrinfo("example.org", 80),
        lambda: socket.gethostbyname("example.org"),
        lambda: socket.gethostbyname_ex("example.org"),
    ],
    ids=["getaddrinfo", "gethostbyname", "gethostbyname_ex"],
)
def test_resolving_a_name_fails_the_test(resolve):
    with pytest.raises(NameResolutionInUnitTest, match="example.org"):
        resolve()


def test_subscriber_validation_without_an_injected_resolver_meets_the_guard():
    # check_destination treats an OSError from the resolver as "not known
    # yet" and accepts: the guard must not be one, or this would pass silently.
    with pytest.raises(NameResolutionInUnitTest, match="example.org"):
        checked_fields({"subscriber": "http://example.org/"}, load_conf([]))

"""Unit tests run without the network: no name is resolved.

Code that resolves names takes a resolver (``socket.getaddrinfo``'s
signature); unit tests inject ``tests.support.resolver.FakeResolver``. A call
that still reaches the system resolver fails the test rather than depending
on this machine's DNS.
"""

import socket

import pytest


class NameResolutionInUnitTest(AssertionError):
    """A unit test reached the system resolver.

    Not an OSError on purpose: code that treats a resolver failure as "name
    unknown" must not swallow it and pass.
    """


@pytest.fixture(autouse=True)
def no_dns(monkeypatch):
    def refuse(host, *args, **kwargs):
        raise NameResolutionInUnitTest(
            f"unit tests do no DNS, yet {host!r} was resolved: inject a resolver "
            "(tests.support.resolver.FakeResolver)"
        )

    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
        monkeypatch.setattr(socket, name, refuse)

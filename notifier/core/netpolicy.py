"""Which network addresses a webhook may reach: pure, no I/O.

By default only globally routable unicast addresses are allowed. Refused:
loopback, private (RFC 1918, fc00::/7), link-local (169.254/16, where cloud
metadata lives; fe80::/10), multicast, reserved and unspecified, shared
address space (100.64/10), benchmarking (198.18/15), documentation ranges,
and the IPv6 forms that wrap an IPv4 address (IPv4-mapped ::ffff:0:0/96,
6to4 2002::/16, NAT64 64:ff9b::/96), which are judged by the address inside
or refused outright. Deployers allow specific networks in config.

``parse_http_url`` is the one parser of webhook URLs: subscription
validation, the endpoint keys of the breakers and the connection all read
the host and port it returns.
"""

import functools
import ipaddress
import socket
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import urlsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from notifier.core.schemes import TRUST_PREFIX

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Wrapping forms whose inner IPv4 address could be anything: refuse them all,
# as Svix does, rather than trust the translator on the other side.
ALWAYS_REFUSED = (
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
    ipaddress.ip_network("2002::/16"),
)


def parse_networks(values: Iterable[str] | None) -> tuple[Network, ...]:
    """Parse CIDR strings (config) into networks; ValueError names a bad one."""
    networks: list[Network] = []
    for value in values or ():
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"not a network: {value!r}") from exc
    return tuple(networks)


def host_literal(host: str) -> Address | None:
    """Return the IP address a URL host spells, or None for a host name.

    Accepts the legacy IPv4 spellings resolvers accept too (``2130706433``,
    ``0x7f000001``, ``0177.0.0.1``, ``127.1``), so they can't sneak past.
    """
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not host or not all(c in "0123456789abcdefABCDEFxX." for c in host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _unwrap(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def refusal_reason(
    address: str | int | Address, allowed_networks: Iterable[Network] = ()
) -> str | None:
    """Return why ``address`` may not be reached, or None if it may."""
    unwrapped = _unwrap(ipaddress.ip_address(address))
    if any(unwrapped in network for network in allowed_networks):
        return None
    if any(unwrapped in network for network in ALWAYS_REFUSED):
        return "an IPv6 form wrapping an IPv4 address"
    for attribute, reason in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(unwrapped, attribute):
            return f"{reason} address"
    if not unwrapped.is_global:
        return "not a globally routable address"
    return None


def is_allowed(address: str | int | Address, allowed_networks: Iterable[Network] = ()) -> bool:
    return refusal_reason(address, allowed_networks) is None


# -- the one URL parser of webhook targets --------------------------------------

DEFAULT_PORTS = {"http": 80, "https": 443}


class HttpTarget(NamedTuple):
    """Where an http(s) URL connects: what validation checks, what the
    endpoint key names and what urllib3 opens, all from one parse."""

    scheme: str  # "http" or "https" ("trust+" removed)
    host: str  # lower case, an IPv6 address without brackets
    port: int  # the explicit port or the scheme's default

    @property
    def endpoint(self) -> str:
        """``scheme://host:port``: the key of the endpoint's breaker."""
        return f"{self.scheme}://{self.host}:{self.port}"


def _refused_character(url: str) -> str | None:
    for char in url:
        if char == "\\" or not "!" <= char <= "~":
            return char
    return None


def parse_http_url(url: object, trust: bool = False) -> HttpTarget:
    """Return the :class:`HttpTarget` of an http(s) URL, or raise ValueError.

    urllib3 (``parse_url``) decides where a delivery connects; ``urlsplit``
    is what the rest of Python reads. A URL they read differently is refused
    rather than guessed: ``http://attacker:80\\@victim/`` connects to
    *attacker* but splits to *victim*. So are backslashes, whitespace,
    control and non-ASCII characters anywhere (percent-encode them; spell
    international host names in punycode) and percent signs in the host.
    ``trust`` also accepts the ``trust+http(s)`` schemes.
    """
    if not isinstance(url, str) or not url:
        raise ValueError("the URL is empty")
    char = _refused_character(url)
    if char is not None:
        raise ValueError(
            f"the URL contains {char!r}: backslashes, spaces, control and non-ASCII "
            "characters are refused (percent-encode them in the path)"
        )
    try:
        connects = parse_url(url)
        splits = urlsplit(url)
        split_port = splits.port
    except (LocationParseError, ValueError) as exc:
        raise ValueError(f"the URL does not parse: {exc}") from None
    scheme = (connects.scheme or "").lower()
    plain = scheme.removeprefix(TRUST_PREFIX) if trust else scheme
    if plain not in DEFAULT_PORTS:
        raise ValueError(f"the scheme {scheme!r} is not http(s)")
    host = (connects.host or "").strip("[]").lower()
    if not host:
        raise ValueError("the URL has no host")
    if "%" in (splits.hostname or ""):
        raise ValueError("the host contains '%'")
    if (splits.scheme.lower(), splits.hostname or "", split_port) != (scheme, host, connects.port):
        raise ValueError("the URL's host or port is ambiguous")
    return HttpTarget(plain, host, connects.port or DEFAULT_PORTS[plain])


@functools.lru_cache(maxsize=4096)
def endpoint_key(subscriber: str) -> str | None:
    """Return ``scheme://host:port`` of an http(s) or trust+http(s)
    subscriber as :func:`parse_http_url` reads it, else None (not a network
    subscriber, or one a delivery refuses).

    Memoised: a batch asks it of every delivery several times (admission,
    grouping, breaker updates), and parsing was a tenth of a delivery's
    worker CPU. A pure function of the string, so the cache cannot go stale.
    """
    try:
        return parse_http_url(subscriber, trust=True).endpoint
    except ValueError:
        return None

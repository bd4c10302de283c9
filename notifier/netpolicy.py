"""Which network addresses a webhook may reach: pure, no I/O.

By default only globally routable unicast addresses are allowed. Refused:
loopback, private (RFC 1918, fc00::/7), link-local (169.254/16, where cloud
metadata lives; fe80::/10), multicast, reserved and unspecified, shared
address space (100.64/10), benchmarking (198.18/15), documentation ranges,
and the IPv6 forms that wrap an IPv4 address (IPv4-mapped ::ffff:0:0/96,
6to4 2002::/16, NAT64 64:ff9b::/96), which are judged by the address inside
or refused outright. Deployers allow specific networks in config.
"""

import ipaddress
import socket

# Wrapping forms whose inner IPv4 address could be anything: refuse them all,
# as Svix does, rather than trust the translator on the other side.
ALWAYS_REFUSED = (
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
    ipaddress.ip_network("2002::/16"),
)


def parse_networks(values):
    """Parse CIDR strings (config) into networks; ValueError names a bad one."""
    networks = []
    for value in values or ():
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"not a network: {value!r}") from exc
    return tuple(networks)


def host_literal(host):
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


def _unwrap(address):
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def refusal_reason(address, allowed_networks=()):
    """Return why ``address`` may not be reached, or None if it may."""
    address = _unwrap(ipaddress.ip_address(address))
    if any(address in network for network in allowed_networks):
        return None
    if any(address in network for network in ALWAYS_REFUSED):
        return "an IPv6 form wrapping an IPv4 address"
    for attribute, reason in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(address, attribute):
            return f"{reason} address"
    if not address.is_global:
        return "not a globally routable address"
    return None


def is_allowed(address, allowed_networks=()):
    return refusal_reason(address, allowed_networks) is None

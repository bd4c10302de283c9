"""A resolver with ``socket.getaddrinfo``'s signature over a fixed table.

``FakeResolver({"example.com": ["93.184.215.14"]})`` answers those names
(IPv4 and IPv6 literals alike) and raises ``socket.gaierror`` for any other,
as the system resolver does for a name that does not exist. It records the
names it was asked, so a test can show a name was resolved through it.
"""

import ipaddress
import socket


class FakeResolver:
    def __init__(self, table):
        self.table = {name.lower(): list(addresses) for name, addresses in table.items()}
        self.asked = []

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        self.asked.append(host)
        addresses = self.table.get(str(host).lower())
        if addresses is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        infos = []
        for address in addresses:
            if ipaddress.ip_address(address).version == 6:
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return infos

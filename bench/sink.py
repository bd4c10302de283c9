"""A fast keep-alive HTTP/1.1 sink for the benchmarks (asyncio, stdlib only).

Run as its own process: ``python bench/sink.py --port 9000 [--endpoints N]``
(with ``--endpoints N`` it also listens on N loopback addresses 127.0.1.1 ...,
so N subscribers can each be a distinct endpoint ``host:port``). It answers by the
first segment of the request path and records every POST it receives:

    POST /ok/<run>/<sub>     200 at once
    POST /fail/<run>/<sub>   500 at once
    POST /hang/<run>/<sub>   never answers (the connection stays open until
                             the client gives up)
    POST /ref/<run>/<sub>    200 at once (the raw-client reference loops)

A record is (mode, sub, receive time, post timestamp ``t``, ``seq``): ``t`` and
``seq`` are read from the notification body (the benchmark puts them in each
message's body). Control endpoints (GET, JSON answers):

    /_stats              {run: {mode: [requests, unique (sub, seq) pairs]}}
    /_dump?run=NAME      {"records": [[mode, sub, received, t, seq], ...]}
    /_reset              forget everything
    /_cpu                this process's CPU seconds so far

The parser is deliberately small: request line, headers up to the blank line,
``Content-Length`` body. Enough for urllib3, requests and http.client.
"""

import argparse
import asyncio
import json
import os
import re
import signal
import time
from urllib.parse import parse_qs, urlsplit

T_RE = re.compile(rb'"t":\s*([0-9.eE+-]+)')
SEQ_RE = re.compile(rb'"seq":\s*(\d+)')
CL_RE = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
FAIL = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 4\r\n\r\nfail"
)
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


class State:
    def __init__(self):
        self.reset()

    def reset(self):
        self.records = {}  # run -> list of (mode, sub, received, t, seq)
        self.counts = {}  # (run, mode) -> requests
        self.unique = {}  # (run, mode) -> set of (sub, seq)

    def record(self, mode, run, sub, body):
        received = time.time()
        key = (run, mode)
        self.counts[key] = self.counts.get(key, 0) + 1
        match = T_RE.search(body)
        t = float(match.group(1)) if match else None
        match = SEQ_RE.search(body)
        seq = int(match.group(1)) if match else None
        if seq is not None:
            self.unique.setdefault(key, set()).add((sub, seq))
        self.records.setdefault(run, []).append((mode, sub, received, t, seq))

    def stats(self):
        out = {}
        for (run, mode), count in self.counts.items():
            out.setdefault(run, {})[mode] = [count, len(self.unique.get((run, mode), ()))]
        return out


STATE = State()


def json_response(document):
    body = json.dumps(document, separators=(",", ":")).encode()
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


def control(target):
    parts = urlsplit(target)
    if parts.path == "/_stats":
        return json_response(STATE.stats())
    if parts.path == "/_dump":
        run = parse_qs(parts.query).get("run", [""])[0]
        return json_response({"records": STATE.records.get(run, [])})
    if parts.path == "/_reset":
        STATE.reset()
        return json_response({"reset": True})
    if parts.path == "/_cpu":
        times = os.times()
        return json_response({"cpu": times.user + times.system})
    return NOT_FOUND


class SinkProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""
        self.hung = False

    def data_received(self, data):
        self.buffer += data
        while not self.hung:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            match = CL_RE.search(self.buffer, 0, head_end + 2)
            length = int(match.group(1)) if match else 0
            total = head_end + 4 + length
            if len(self.buffer) < total:
                return
            line_end = self.buffer.find(b"\r\n")
            request_line = self.buffer[:line_end]
            body = self.buffer[head_end + 4 : total]
            self.buffer = self.buffer[total:]
            self.handle(request_line, body)

    def handle(self, request_line, body):
        try:
            method, target, _ = request_line.split(b" ", 2)
        except ValueError:
            self.transport.close()
            return
        target = target.decode("latin-1")
        if method == b"GET":
            self.transport.write(control(target))
            return
        segments = target.split("/", 3)  # ['', mode, run, sub]
        if len(segments) < 4:
            self.transport.write(NOT_FOUND)
            return
        _, mode, run, sub = segments
        STATE.record(mode, run, sub, body)
        if mode == "hang":
            self.hung = True  # never answer; the client times out and closes
        elif mode == "fail":
            self.transport.write(FAIL)
        else:
            self.transport.write(OK)


def endpoint_host(index):
    """The loopback address of subscriber endpoint ``index`` (0-based):
    127.0.1.1, 127.0.1.2, ... 127.0.1.250, 127.0.2.1, ..."""
    return f"127.0.{1 + index // 250}.{1 + index % 250}"


async def serve(host, port, endpoints=0):
    loop = asyncio.get_running_loop()
    hosts = [host] + [endpoint_host(i) for i in range(endpoints)]
    server = await loop.create_server(SinkProtocol, hosts, port, backlog=1024, reuse_address=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"sink listening on {host}:{port} and {endpoints} endpoint address(es)", flush=True)
    async with server:
        await stop.wait()


def raise_fd_limit():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


def main():
    raise_fd_limit()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--endpoints",
        type=int,
        default=0,
        help="also listen on this many distinct loopback "
        "addresses (127.0.1.1 ...), one per subscriber, so "
        "each subscriber is its own endpoint",
    )
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.endpoints))


if __name__ == "__main__":
    main()

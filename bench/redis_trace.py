"""Where Redis's time goes during a scenario, by command and by script.

``SLOWLOG`` with a threshold of 0 logs every command with its duration,
and since Redis 7 also the commands a script calls (client ``?:0``): their
time is counted in the script's, so only top-level entries are summed, and
a script's own commands are listed under it. Logging every command costs
Redis time itself: compare shares, not absolute figures, with a plain run.
"""

import collections
import hashlib
import json
import os
from importlib import resources

from notifier.store import lua

MAX_ENTRIES = 5_000_000


def script_names():
    """{SHA: name} of every script the store registers (libraries are not
    run alone)."""
    libraries = {library for used in lua.LIBRARIES.values() for library in used}
    scripts = resources.files("notifier.store") / "scripts"
    names = [p.name[: -len(".lua")] for p in scripts.iterdir() if p.name.endswith(".lua")]
    return {
        hashlib.sha1(lua.text(name).encode()).hexdigest(): name
        for name in names
        if name not in libraries
    }


def start(client):
    client.config_set("slowlog-log-slower-than", 0)
    client.config_set("slowlog-max-len", MAX_ENTRIES)
    client.slowlog_reset()


def summarise(entries, names):
    """{name: [top-level calls, microseconds, {inner command: [calls, us]}]}."""
    totals = {}
    inner = []
    for entry in sorted(entries, key=lambda e: e[0]):
        _, _, micros, args, client = entry[:5]
        command = str(args[0]).lower()
        if client == "?:0":  # called by the script logged next
            inner.append((command, micros))
            continue
        if command in ("evalsha", "eval") and len(args) > 1:
            command = "script " + names.get(str(args[1]), str(args[1])[:8])
        row = totals.setdefault(command, [0, 0, collections.Counter()])
        row[0] += 1
        row[1] += micros
        for name, spent in inner:
            row[2][name + " calls"] += 1
            row[2][name + " us"] += spent
        inner = []
    return totals


def stop(client, path, tag):
    entries = client.execute_command("SLOWLOG", "GET", "-1")
    client.config_set("slowlog-log-slower-than", 10000)
    client.slowlog_reset()
    totals = summarise(entries, script_names())
    report = {}
    if os.path.exists(path):
        with open(path) as handle:
            report = json.load(handle)
    report[tag] = {
        "entries": len(entries),
        "complete": len(entries) < MAX_ENTRIES,
        "by_command": {
            name: {"calls": calls, "us": micros, "inner": dict(inner)}
            for name, (calls, micros, inner) in sorted(totals.items(), key=lambda kv: -kv[1][1])
        },
    }
    with open(path, "w") as handle:
        json.dump(report, handle, indent=1)

"""bench/redis_trace.py names scripts by their SHA: it must know each
script with the libraries the store registers it with."""

import re
from pathlib import Path

from bench import redis_trace

ROOT = Path(__file__).resolve().parents[2]
REGISTER = re.compile(r'lua\.register\(\s*\w+,\s*"(\w+)"((?:,\s*"\w+")*)\)')


def test_every_registered_script_is_named_with_its_libraries():
    registered = {}
    for path in (ROOT / "notifier").rglob("*.py"):
        for name, libraries in REGISTER.findall(path.read_text()):
            registered[name] = tuple(re.findall(r'"(\w+)"', libraries))
    assert registered == redis_trace.SCRIPTS
    assert len(redis_trace.script_names()) == len(registered)


def test_a_scripts_inner_commands_count_under_it_not_beside_it():
    entries = [
        [1, 0, 5, ["HSET", "k", "f", "v"], "?:0", ""],
        [2, 0, 40, ["EVALSHA", "abc", "1", "k"], "127.0.0.1:1", ""],
        [3, 0, 3, ["GET", "k"], "127.0.0.1:1", ""],
    ]
    totals = redis_trace.summarise(entries, {"abc": "record_attempts"})
    assert totals["script record_attempts"][:2] == [1, 40]
    assert totals["script record_attempts"][2] == {"hset calls": 1, "hset us": 5}
    assert totals["get"][:2] == [1, 3]
    assert "hset" not in totals

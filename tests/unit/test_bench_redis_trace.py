"""bench/redis_trace.py sums a SLOWLOG by top-level command and script."""

from bench import redis_trace


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

"""Dead letters: deliveries that will never be retried, kept for a replay.

Each subscription keeps its newest ``max_dead_letters_per_subscription`` for
``dead_letter_ttl_seconds``; their bytes count against the project's quota.
"""

import time
from collections.abc import Sequence
from typing import Any, cast

from redis import Redis

from notifier.store import keys, lua
from notifier.store.boundary import translate_errors
from notifier.store.records import Limits, Record, dumps, letter_project, loads


@translate_errors
class DeadLetters:
    """Dead letters by subscription, in order of death."""

    def __init__(self, client: Redis, limits: Limits) -> None:
        self.redis = client
        self.limits = limits
        self._dead_letter = lua.register(client, "dead_letter")
        self._remove_dead_letters = lua.register(client, "remove_dead_letters")
        self._purge_dead_letters = lua.register(client, "purge_dead_letters")

    def dead_letter(self, letters: Sequence[Record], now: float | None = None) -> list[Record]:
        """Store dead letters (dicts with subscription_id and project) by time
        of death, keeping each subscription's newest
        ``max_dead_letters_per_subscription`` for ``dead_letter_ttl_seconds``.
        Return the letters not stored: their project is at its byte quota."""
        if not letters:
            return []
        now = time.time() if now is None else now
        limits = self.limits
        script_keys: list[str] = []
        args: list[Any] = [
            repr(now),
            limits.dead_letter_ttl_seconds,
            limits.max_dead_letters_per_subscription,
            limits.max_stored_bytes_per_project,
        ]
        for letter in letters:
            script_keys += [
                keys.dead_letters(letter["subscription_id"]),
                *keys.project_usage(letter_project(letter)),
            ]
            args.append(dumps(letter))
        dropped = cast(list[int], self._dead_letter(keys=script_keys, args=args))
        return [letters[index - 1] for index in dropped]

    def dead_letters(
        self, subscription_id: str, since: float = 0, limit: int = 100, now: float | None = None
    ) -> list[Record]:
        """Return dead letters that died at or after ``since``, oldest first."""
        now = time.time() if now is None else now
        since = max(since, now - self.limits.dead_letter_ttl_seconds)
        members = cast(
            list[str],
            self.redis.zrangebyscore(
                keys.dead_letters(subscription_id), since, "+inf", start=0, num=limit
            ),
        )
        return [loads(m) for m in members]

    def remove_dead_letters(self, subscription_id: str, letters: Sequence[Record]) -> None:
        """Remove dead letters (replayed), taking their bytes back."""
        if not letters:
            return
        script_keys: list[str] = []
        args: list[Any] = [self.limits.dead_letter_ttl_seconds]
        for letter in letters:
            script_keys += [
                keys.dead_letters(subscription_id),
                *keys.project_usage(letter_project(letter)),
            ]
            args.append(dumps(letter))
        self._remove_dead_letters(keys=script_keys, args=args)

    def purge(self, subscription_id: str, project: str | None, chunk: int = 100) -> None:
        """Delete a subscription's dead letters, a chunk at a time (letters
        hold whole messages), taking their bytes back from ``project`` (None:
        they stay counted until their retention passes)."""
        script_keys = [keys.dead_letters(subscription_id)]
        if project:
            script_keys += keys.project_usage(project)
        args = [self.limits.dead_letter_ttl_seconds, chunk]
        while self._purge_dead_letters(keys=script_keys, args=args):
            pass

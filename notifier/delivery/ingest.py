"""Group commit of posted messages: concurrent POSTs share one transaction.

Each API process writes the posts that arrive together in one Redis
transaction, with one fan-out task per source, as databases group their
commits: the first post in line writes itself and every post queued behind
it, the others wait for that write and answer with its outcome. A post that
arrives alone is written at once (no added latency); under load there are
fewer round trips and fewer, larger fan-out tasks for the workers.
"""

import threading
from collections.abc import Sequence
from typing import Any

from notifier.delivery.jobs import Dispatcher
from notifier.store.storage import Storage, new_id


class _Post:
    __slots__ = ("source", "messages", "size", "ids", "done", "error")

    def __init__(self, source: Any, messages: list[dict[str, Any]], size: int) -> None:
        self.source = source
        self.messages = messages
        self.size = size
        self.ids: list[str] = [new_id() for _ in messages]
        self.done = False
        self.error: Exception | None = None


class MessageWriter:
    """Store posted messages and enqueue their fan-out, in groups."""

    def __init__(
        self,
        storage: Storage,
        dispatcher: Dispatcher,
        max_group: int = 64,
        max_group_bytes: int = 1 << 20,
    ) -> None:
        # A group is one Lua script, which Redis runs alone: keep it small
        # enough (posts and bytes) not to stall everyone else's commands.
        self.storage = storage
        self.dispatcher = dispatcher
        self.max_group = max_group
        self.max_group_bytes = max_group_bytes
        self._line: list[_Post] = []
        self._changed = threading.Condition()

    def post(self, source: Any, messages: list[dict[str, Any]], size: int = 0) -> list[str]:
        """Return the new messages' ids once they are stored and their
        fan-out enqueued; raise what the write raised (nothing is stored).
        ``size``: the request body's bytes, to bound a group's."""
        post = _Post(source, messages, size)
        with self._changed:
            self._line.append(post)
            while not post.done and self._line[0] is not post:
                self._changed.wait()
            if not post.done:  # first in line: write the group
                group = self._group()
        if not post.done:
            self._write_group(group)
        if post.error is not None:
            raise post.error
        return post.ids

    def _group(self) -> list[_Post]:
        group: list[_Post] = []
        size = 0
        for post in self._line:
            if group and (len(group) == self.max_group or size + post.size > self.max_group_bytes):
                break
            group.append(post)
            size += post.size
        return group

    def _write_group(self, group: Sequence[_Post]) -> None:
        error: Exception | None = None
        refused: dict[Any, Exception] = {}
        try:
            refused = self._write(group)
        except Exception as exc:  # every post of the group answers with it
            error = exc
        with self._changed:
            for post in group:
                post.done, post.error = True, refused.get(post.source, error)
            del self._line[: len(group)]
            self._changed.notify_all()

    def _write(self, group: Sequence[_Post]) -> dict[Any, Exception]:
        """Write a group; return {source: error} for the sources whose posts
        were refused (their project's quota)."""
        posts: dict[
            Any, tuple[list[dict[str, Any]], list[str]]
        ] = {}  # source -> (messages, ids): one fan-out per source
        for post in group:
            messages, ids = posts.setdefault(post.source, ([], []))
            messages += post.messages
            ids += post.ids
        writes = [
            (source, messages, ids, self.dispatcher.prepare_fanout(source, ids))
            for source, (messages, ids) in posts.items()
        ]
        outcomes = self.storage.store_posts(writes)
        refused: dict[Any, Exception] = {
            w[0]: o for w, o in zip(writes, outcomes) if isinstance(o, Exception)
        }
        try:
            for (_, _, _, task), outcome in zip(writes, outcomes):
                if outcome is True:
                    self.dispatcher.send_prepared(task)
        except Exception:
            # Not enqueued means not accepted: take the messages back so a
            # client retry after the 503 does not deliver them twice.
            self.storage.delete_messages(
                [i for p in group if p.source not in refused for i in p.ids]
            )
            raise
        return refused

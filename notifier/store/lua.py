"""Load the store's Lua scripts from ``scripts/*.lua``.

Each file starts with a comment naming its KEYS and ARGV; the libraries
(``usage.lua``, ``clock.lua``, ``queue_index.lua``) are prepended to the
scripts that use them (``LIBRARIES``).
"""

import functools
from importlib import resources

from redis import Redis
from redis.commands.core import Script


@functools.cache
def source(name: str) -> str:
    """Return the text of ``scripts/NAME.lua``."""
    return (resources.files("notifier.store") / "scripts" / f"{name}.lua").read_text("utf-8")


#: The libraries each script uses, prepended to it in this order.
LIBRARIES: dict[str, tuple[str, ...]] = {
    "admit": ("clock",),
    "record": ("clock",),
    "claim_messages": ("usage", "queue_index"),
    "move_message": ("usage", "queue_index"),
    "remove_messages": ("usage", "queue_index"),
    "renew_claim": ("usage", "queue_index"),
    "store_posts": ("usage", "queue_index"),
    "tidy_queue": ("usage", "queue_index"),
    "release_claim": ("queue_index",),
    "dead_letter": ("usage",),
    "purge_dead_letters": ("usage",),
    "remove_dead_letters": ("usage",),
    "restore_message": ("usage",),
    "settle_pending": ("usage",),
    "unstore_messages": ("usage",),
}


def text(name: str) -> str:
    """Return script ``name`` as Redis runs it: its libraries, then itself."""
    return "".join(source(library) for library in LIBRARIES.get(name, ())) + source(name)


def register(client: "Redis", name: str) -> Script:
    """Register script ``name`` on ``client``, after the libraries it uses."""
    return client.register_script(text(name))

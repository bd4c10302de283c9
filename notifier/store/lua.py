"""Load the store's Lua scripts from ``scripts/*.lua``.

Each file starts with a comment naming its KEYS and ARGV; the libraries
(``usage.lua``, ``clock.lua``) are prepended to the scripts that use them.
"""

import functools
from importlib import resources

from redis import Redis
from redis.commands.core import Script


@functools.cache
def source(name: str) -> str:
    """Return the text of ``scripts/NAME.lua``."""
    return (resources.files("notifier.store") / "scripts" / f"{name}.lua").read_text("utf-8")


def register(client: "Redis", name: str, *libraries: str) -> Script:
    """Register script ``name`` on ``client``, after the ``libraries`` it uses."""
    text = "".join(source(library) for library in libraries) + source(name)
    return client.register_script(text)

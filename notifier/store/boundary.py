"""Redis errors stop here: what means "Redis cannot be reached" becomes
``notifier.errors.UnavailableError``, raised from the Redis exception.

Repositories are wrapped with ``translate_errors``; callers above the store
(the API, the workers, the scheduler) catch ``UnavailableError`` only.
"""

import functools
import inspect
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from redis import exceptions
from redis.sentinel import MasterNotFoundError

from notifier import errors

P = ParamSpec("P")
R = TypeVar("R")
C = TypeVar("C", bound=type)

#: Redis down, restarting, loading its data, a replica after a failover, or
#: no master known to the sentinels (MasterNotFoundError is a ConnectionError;
#: named for the reader).
UNAVAILABLE = (
    exceptions.ConnectionError,
    exceptions.TimeoutError,
    exceptions.BusyLoadingError,
    exceptions.ReadOnlyError,
    MasterNotFoundError,
)

DESCRIPTION = "The storage or the broker cannot be reached; nothing was accepted. Retry shortly."


def translated(func: Callable[P, R]) -> Callable[P, R]:
    """Wrap ``func`` so Redis being unavailable raises UnavailableError."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except UNAVAILABLE as exc:
            raise errors.UnavailableError(DESCRIPTION, retry_after=1, backend="redis") from exc

    return wrapper


def translate_errors(cls: C) -> C:
    """Class decorator: wrap every public method of a repository."""
    for name, attribute in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(attribute):
            setattr(cls, name, translated(attribute))
    return cls

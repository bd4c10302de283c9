"""A worker must outlive Redis going away while it holds unacknowledged tasks.

When the broker connection drops, Celery 5.7 first ``collect()``s the
consumer's connection (which detaches kombu's Redis transport from it) and
then closes it; closing the channel restores the unacknowledged tasks, which
needs a new connection pool, built from the detached transport: an
``AttributeError`` ("'NoneType' object has no attribute 'hostname'") that
Celery does not expect, so the worker exits with "Unrecoverable error". A task
rejected for requeueing meanwhile hits the same error. (The kombu issue
family: celery/kombu#582, #970.) Seen in tests/faults/test_redis_faults.py
whenever a drain task was in flight as Redis stopped.

Nothing needs restoring there and then: kombu keeps every unacknowledged task
in Redis (``unacked``) until it is acknowledged, and any worker's consumer
puts back those older than the visibility timeout. So when the connection is
gone, restoring is skipped, with a warning, and the consumer reconnects.
"""

import functools
import logging
from collections.abc import Callable
from typing import Any

from kombu.transport import redis as kombu_redis

LOG = logging.getLogger(__name__)


def _connection_gone(qos: Any) -> bool:
    transport = getattr(qos.channel, "connection", None)
    return transport is None or getattr(transport, "client", None) is None


def _skip_when_connection_gone(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def guarded(qos: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(qos, *args, **kwargs)
        except AttributeError:
            if not _connection_gone(qos):
                raise
            LOG.warning(
                "broker connection gone: unacknowledged tasks stay in Redis and "
                "are put back after the visibility timeout"
            )
            return None

    return guarded


def survive_lost_broker_connections() -> None:
    """Guard kombu's Redis QoS restore paths (once per process)."""
    qos: Any = kombu_redis.QoS
    if getattr(qos, "_notifier_guarded", False):
        return
    qos.restore_unacked = _skip_when_connection_gone(qos.restore_unacked)
    qos.restore_by_tag = _skip_when_connection_gone(qos.restore_by_tag)
    qos._notifier_guarded = True

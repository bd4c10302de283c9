"""Run inside the side virtualenv that has zaqar (see bench/zaqar_ref.py).

Drives Zaqar's ``NotifierDriver`` directly, in-process, the way its API does
after a post: ``post(queue, messages, ...)`` per 10-message post, with every
subscriber a webhook to the bench sink. Its subscription and queue
controllers are stand-ins holding the subscriptions in memory (no storage).
Prints one JSON line: the epoch time of the first post and the CPU seconds
this process used until every task of its thread pool finished.
"""

import json
import os
import sys
import time


class _Conf:
    class notification:  # noqa: N801 (zaqar reads conf.notification.*)
        require_confirmation = False


class _DataDriver:
    conf = _Conf()


class Subscriptions:
    driver = _DataDriver()

    def __init__(self, subscribers, queue):
        self.subs = [
            {
                "id": f"s{i}",
                "source": queue,
                "subscriber": url,
                "ttl": 3600,
                "options": {},
                "confirmed": True,
            }
            for i, url in enumerate(subscribers)
        ]

    def list(self, queue, project=None, marker=None, **kwargs):
        yield list(self.subs)
        yield None


class Queues:
    def get(self, name, project=None):
        return {}


def main():
    spec = json.loads(sys.stdin.read())
    import logging

    logging.disable(logging.CRITICAL)  # zaqar logs nothing we read
    from zaqar.notification import notifier

    queue = "zaqar-bench"
    driver = notifier.NotifierDriver(
        subscription_controller=Subscriptions(spec["subscribers"], queue),
        queue_controller=Queues(),
        max_notifier_workers=spec["threads"],
    )
    count, batch = spec["count"], spec["batch"]
    cpu0 = os.times()
    start = time.time()
    for first in range(0, count, batch):
        t = time.time()
        messages = [
            {"body": {"event": "order.created", "seq": seq, "t": t}, "ttl": 3600}
            for seq in range(first, min(first + batch, count))
        ]
        driver.post(queue, messages, "3381af92-2b9e-11e3-b191-71861300734c", project="bench")
    driver.executor.shutdown(wait=True)
    end = time.time()
    cpu1 = os.times()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    print(json.dumps({"start": start, "end": end, "cpu": cpu}))


if __name__ == "__main__":
    main()

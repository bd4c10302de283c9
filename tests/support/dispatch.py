"""An in-memory dispatcher: the DeliveryService's task queue, run by the test.

Like dramatiq's StubBroker, a real implementation of the dispatcher
interface, for integration tests of delivery logic in one process (real Redis,
real sinks, real receivers). Worker-process behaviour is tested elsewhere.
"""

from workers.app import PreparedTask


class MemoryDispatcher:
    def __init__(self):
        self.tasks = []
        self.resent = []

    def send_fanout(self, source, message_ids, cursor=None):
        self.tasks.append(("fanout", (list(source), list(message_ids), cursor)))

    def prepare_fanout(self, source, message_ids):
        return PreparedTask("fanout", [list(source), list(message_ids), None])

    def send_prepared(self, task):
        self.tasks.append((task.name, tuple(task.args)))

    def send_deliveries(self, deliveries):
        self.tasks.append(("deliver", (list(deliveries),)))

    def send_drain(self, shard, owner):
        self.tasks.append(("drain", (shard, owner)))

    def take_fanouts(self, limit):
        """Fan-out tasks queued here, oldest first (no outbox entries)."""
        taken = []
        for task in list(self.tasks):
            if task[0] == "fanout" and len(taken) < limit:
                self.tasks.remove(task)
                taken.append((list(task[1]), None))
        return taken

    def resend(self, member):
        """Queue again a task found lost (an outbox entry: ``[name, args]``)."""
        self.resent.append(member)

    def ping(self):
        return True

    def run(self, service, limit=10000):
        """Run queued tasks (and the tasks they queue) in order; return the count."""
        count = 0
        while self.tasks and count < limit:
            name, args = self.tasks.pop(0)
            getattr(service, name)(*args)
            count += 1
        return count

"""Application services: the flows the API runs, free of HTTP.

A resource parses a request, calls one of these and sets the response; a
service orchestrates the store, the sinks' subscription hooks and delivery
(confirmation messages) to do one thing a client asked for.

- ``access``: who is asking (``Access``) and the records they may see;
- ``subscriptions``: create, change, delete a subscription, rotate its
  secret, read its attempts and dead letters;
- ``confirmations``: send (un)subscribe confirmations, confirm;
- ``sources``: change and delete queues and topics;
- ``sharing``: pre-signed URLs for a source.
"""

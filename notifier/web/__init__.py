"""The web pages: the subscriber portal and the operator console.

Server-rendered jinja2 pages from the shipped templates (``templates/web/``),
reached through signed links (``notifier.core.links``); they call the same
services as the API (``notifier.services``, ``notifier.delivery``).
"""

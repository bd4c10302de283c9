"""The subscriber portal: GET shows one subscription, POST runs one action.

``/portal/{kind}/{name}/{subscription_id}?project=&expires=&signature=``:
the link (``notifier.core.links``, scope PORTAL) names the source's project;
it grants this subscription's page and actions and nothing else.
"""

import datetime

from notifier import sinks
from notifier.core import links, validation
from notifier.errors import ValidationError
from notifier.store.storage import Source
from notifier.web import pages
from notifier.web.links import form, verified

ACTIONS = ("replay", "replay_since", "pause", "resume", "test", "rotate", "unsubscribe")
DONE = {
    "pause": "Paused: deliveries are held until you resume.",
    "unsubscribe": "Unsubscribed: nothing more will be delivered.",
    "test": "A test notification is on its way.",
}


def source_of(kind, name, project):
    if kind not in ("queues", "topics"):
        raise ValidationError("No such kind of source.", field="kind")
    return Source(project, kind, validation.source_name(name, kind[:-1]))


def since_epoch(text):
    """Return Unix seconds of a datetime-local field (UTC); empty: 0 (all)."""
    if not text:
        return 0.0
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError("since must be a date and time.", field="since") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


class PortalPage:
    def __init__(self, conf, portal):
        self.conf = conf
        self.portal = portal  # notifier.services.portal.PortalService

    def _open(self, req, kind, name, subscription_id):
        """Verify the link against the subscriber stored now: a link minted
        for an earlier subscriber, or for a subscription that is gone, is
        refused (403) like an altered one."""
        path = links.portal_path(kind, name, subscription_id)
        project = req.get_param("project")
        subscriber = ""
        if isinstance(project, str) and project:
            source = source_of(kind, name, project)
            subscriber = self.portal.subscriber_of(source, subscription_id) or ""
        signed = links.portal_signed_path(kind, name, subscription_id, subscriber)
        link = verified(req, self.portal.key, signed, links.PORTAL)
        return link, source_of(kind, name, link.project), path

    def on_get(self, req, resp, kind, name, subscription_id):
        link, source, path = self._open(req, kind, name, subscription_id)
        self._show(resp, link, source, path, subscription_id)

    def on_post(self, req, resp, kind, name, subscription_id):
        link, source, path = self._open(req, kind, name, subscription_id)
        fields = form(req, self.portal.key, link)
        action = fields.get("action")
        if action not in ACTIONS:
            raise ValidationError("Unknown action.", field="action")
        notice, secret = self._run(action, fields, source, subscription_id)
        self._show(resp, link, source, path, subscription_id, notice=notice, secret=secret)

    def _run(self, action, fields, source, subscription_id):
        portal, secret = self.portal, None
        if action == "replay":
            message_id = fields.get("message_id")
            if not isinstance(message_id, str) or not message_id:
                raise ValidationError("Which dead letter?", field="message_id")
            count = portal.replay(source, subscription_id, message_id=message_id)
            notice = f"Replayed {count} dead letter(s)."
        elif action == "replay_since":
            count = portal.replay(source, subscription_id, since=since_epoch(fields.get("since")))
            notice = f"Replayed {count} dead letter(s)."
        elif action == "pause":
            portal.pause(source, subscription_id)
            notice = DONE["pause"]
        elif action == "resume":
            notice = (
                f"Resumed: {portal.resume(source, subscription_id)} held delivery(ies) released."
            )
        elif action == "test":
            portal.send_test(source, subscription_id)
            notice = DONE["test"]
        elif action == "rotate":
            secret, valid_until = portal.rotate_secret(source, subscription_id)
            notice = (
                "New signing secret below, shown this once. The previous one keeps "
                f"signing until {pages.when(valid_until)}."
            )
        else:
            portal.unsubscribe(source, subscription_id)
            notice = DONE["unsubscribe"]
        return notice, secret

    def _show(self, resp, link, source, path, subscription_id, notice=None, secret=None):
        view = self.portal.overview(source, subscription_id)
        record = view["record"]
        pages.render(
            resp,
            "portal.html",
            action_url=f"{path}?{link.query()}",
            csrf=links.csrf_token(self.portal.key, link),
            source=source,
            subscription=subscription_summary(record),
            endpoint=view["status"],
            attempts=view["attempts"],
            rates=view["rates"],
            dead_letters=view["dead_letters"],
            expires=link.expires,
            notice=notice,
            secret=secret,
        )


def subscription_summary(record):
    """Return what the page shows of a subscription: never its secrets or tokens."""
    options = record.get("options") or {}
    return {
        "id": record["id"],
        "subscriber": sinks.shown_subscriber(record["subscriber"]),
        "filter_policy": options.get("filter_policy"),
        "filter_policies": options.get("filter_policies"),
        "confirmed": bool(record.get("confirmed", True)),
        "disabled": bool(record.get("disabled")),
        "disabled_reason": record.get("disabled_reason"),
        "signs": "secrets" in record,
    }

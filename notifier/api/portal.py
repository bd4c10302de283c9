"""POST /v2/{queues|topics}/{name}/subscriptions/{id}/portal {"expires"} -> {"url"}.

A pre-signed link to the subscription's portal (``notifier.web``), for the
project that owns the subscription.
"""

import falcon

from notifier.api import common
from notifier.api.subscriptions import SubscriptionResource
from notifier.core import validation
from notifier.errors import ValidationError


class PortalLink(SubscriptionResource):
    def __init__(self, conf, subscriptions, portal, kind="queues", scope=None):
        super().__init__(conf, subscriptions, kind, scope)
        self.portal = portal  # notifier.services.portal.PortalService

    def on_post(self, req, resp, name, subscription_id):
        source, access = self._addressed(req, name)
        document = self._body(req) if common.has_body(req) else {}
        validation.obj(document, "body")
        unknown = set(document) - {"expires"}
        if unknown:
            raise ValidationError(
                f"Unknown field(s): {', '.join(sorted(unknown))}; a portal request "
                "has only expires.",
                field=sorted(unknown)[0],
            )
        url = self.portal.link(access, source, subscription_id, document.get("expires"))
        resp.status = falcon.HTTP_201
        resp.media = {"url": url}

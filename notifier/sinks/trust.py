"""Trust sink: trust+http(s) subscribers, served as the subscribing user.

At creation (Keystone auth only) the user's request creates a Keystone trust
to notifier's trustee (``notifier.sinks.keystone``); its id is stored as the URI's
user info, ``trust+https://<trust_id>@host/path``, which the API never shows.
At delivery a trust-scoped token (cached) acts as the user:

- if the URL is the Mistral executions endpoint (the catalog's ``workflowv2``
  URL + ``/executions``, read once), python-mistralclient creates an
  execution of ``options.workflow_id`` with ``options.input`` and
  ``options.params``, whose ``env.notification`` is the message body and
  ``env.notification_id`` the message id;
- otherwise the notification is POSTed as a webhook (WebhookSink, signed the
  same way) with the token in ``X-Auth-Token``.

A cached token a service rejects (401) is dropped and fetched once more.
Deleting the subscription deletes the trust; one that expires (there is no
sweeper) leaves its trust to expire ``trust_expiry_margin_seconds`` later.
keystoneauth1 and python-mistralclient (the ``mistral`` extra) are imported
only when a trust+ subscriber is used.
"""

import json
import time
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from notifier import errors
from notifier.core import schemes
from notifier.core.retry import classify_http_status
from notifier.sinks import DeliveryReport, Notification, RequestContext
from notifier.sinks.webhook import (
    WebhookSink,
    check_destination,
    check_webhook_options,
    http_target,
)

if TYPE_CHECKING:
    from notifier.sinks.keystone import Keystone

PREFIX = schemes.TRUST_PREFIX
# id(conf) -> (weak reference to conf, its Keystone), on first use
_KEYSTONES: dict[int, tuple[Any, "Keystone"]] = {}


def split_subscriber(subscriber: str) -> tuple[str | None, str]:
    """Return (trust id or None, target URL) of a trust+ subscriber."""
    parts = urlsplit(subscriber)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    url = urlunsplit(
        (
            parts.scheme.lower().removeprefix(PREFIX),
            hostport,
            parts.path,
            parts.query,
            parts.fragment,
        )
    )
    return (unquote(userinfo) or None) if at else None, url


def with_trust(subscriber: str, trust_id: str) -> str:
    """Return the subscriber with ``trust_id`` as its user info."""
    parts = urlsplit(subscriber)
    hostport = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(trust_id, safe='')}@{hostport}"))


def public_form(subscriber: str) -> str:
    """Return a subscriber without the trust id (any other URI unchanged)."""
    parts = urlsplit(subscriber)
    if not parts.scheme.lower().startswith(PREFIX):
        return subscriber
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def is_executions_url(url: str, workflow_url: str | None) -> bool:
    """Say whether ``url`` is the Mistral executions endpoint."""
    if not workflow_url:
        return False
    return url.rstrip("/") == workflow_url.rstrip("/") + "/executions"


def mistral_params(params: Mapping[str, Any] | None, body: Any, message_id: str) -> dict[str, Any]:
    """Return execution params: the subscription's, with the notification in env."""
    params = dict(params or {})
    params["env"] = dict(params.get("env") or {}, notification=body, notification_id=message_id)
    return params


def keystone_for(conf: Any) -> "Keystone":
    """Return this process's Keystone helper for ``conf``."""
    entry = _KEYSTONES.get(id(conf))
    if entry is None or entry[0]() is not conf:
        from notifier.sinks.keystone import Keystone

        entry = _KEYSTONES[id(conf)] = (weakref.ref(conf), Keystone(conf))
    return entry[1]


def _require_extras() -> None:
    try:
        import keystoneauth1  # noqa: F401
        import mistralclient  # noqa: F401
    except ImportError as exc:
        raise errors.ValidationError(
            "trust+ subscribers need keystoneauth1 and python-mistralclient "
            "(pip install 'notifier[mistral]').",
            field="subscriber",
        ) from exc


def _require_keystone(context: RequestContext, conf: Any) -> None:
    if (
        conf.auth_strategy != "keystone"
        or not context.authenticated
        or not context.auth_token
        or not context.user_id
    ):
        raise errors.ValidationError(
            "trust+ subscribers need Keystone authentication (auth_strategy = "
            "keystone): notifier creates a Keystone trust with the token of the "
            "request.",
            field="subscriber",
        )


def _check_options(options: Mapping[str, Any]) -> None:
    if "workflow_id" in options and not (
        isinstance(options["workflow_id"], str) and options["workflow_id"]
    ):
        raise errors.ValidationError(
            "options.workflow_id must be a non-empty string.", field="options.workflow_id"
        )
    for key in ("input", "params"):
        if key in options and not isinstance(options[key], dict):
            raise errors.ValidationError(
                f"options.{key} must be an object.", field=f"options.{key}"
            )
    if not isinstance((options.get("params") or {}).get("env", {}), dict):
        raise errors.ValidationError(
            "options.params.env must be an object.", field="options.params.env"
        )
    # The webhook options, for trust+ URLs that are not Mistral's.
    check_webhook_options(options, TrustSink.reserved_headers)


class TokenRejected(Exception):
    """A service answered 401 to a trust-scoped token."""


class TrustSink(WebhookSink):
    """Act for the subscriber's user through a Keystone trust."""

    reserved_headers = ("x-auth-token",)  # the trust-scoped token

    @classmethod
    def validate(
        cls,
        subscriber: str,
        options: Mapping[str, Any],
        conf: Any,
        resolver: Callable[..., Any] | None = None,
    ) -> None:
        # The destination is checked (and resolved) when the trust is made:
        # prepare_subscription, which knows the project's Mistral endpoint.
        _require_extras()
        http_target(subscriber, trust=True, shown=public_form(subscriber))
        _, url = split_subscriber(subscriber)
        http_target(url, shown=public_form(subscriber))
        _check_options(options)

    @classmethod
    def prepare_subscription(
        cls, fields: dict[str, Any], context: RequestContext, conf: Any
    ) -> dict[str, Any]:
        _require_keystone(context, conf)
        trust_id, url = split_subscriber(fields["subscriber"])
        if trust_id is not None:
            raise errors.ValidationError(
                "A trust+ subscriber has no user info: notifier stores the trust id there.",
                field="subscriber",
            )
        keystone = keystone_for(conf)
        if not is_executions_url(url, keystone.workflow_url_for(context.auth_token)):
            target = http_target(url, shown=public_form(fields["subscriber"]))
            check_destination(target.host, target.port, conf)
        fields = super().prepare_subscription(fields, context, conf)
        trust_id = keystone.create_trust(
            context, cls._trust_expiry(time.time() + fields["ttl"], conf)
        )
        return dict(fields, subscriber=with_trust(fields["subscriber"], trust_id))

    @classmethod
    def renew_subscription(
        cls, record: dict[str, Any], before: dict[str, Any], context: RequestContext, conf: Any
    ) -> dict[str, Any]:
        """Keep the stored trust, or make one for a new TTL; the subscriber
        itself cannot change (a user-given trust id is never taken)."""
        if public_form(record["subscriber"]) != public_form(before["subscriber"]):
            raise errors.ValidationError(
                "A trust+ subscriber cannot be changed, nor a subscriber changed "
                "to trust+: delete the subscription and create a new one.",
                field="subscriber",
            )
        record = dict(record, subscriber=before["subscriber"])
        if record["expires"] != before["expires"]:
            _require_keystone(context, conf)
            trust_id = keystone_for(conf).create_trust(
                context, cls._trust_expiry(record["expires"], conf)
            )
            record["subscriber"] = with_trust(before["subscriber"], trust_id)
        return record

    @classmethod
    def release_subscription(cls, record: Mapping[str, Any], conf: Any) -> None:
        trust_id, _ = split_subscriber(record["subscriber"])
        if trust_id:
            keystone_for(conf).delete_trust(trust_id)

    @classmethod
    def public_subscriber(cls, subscriber: str) -> str:
        return public_form(subscriber)

    @staticmethod
    def _trust_expiry(subscription_expires: float, conf: Any) -> float:
        # Our subscriptions always have a TTL; create_trust(None) never expires.
        margin: float = conf.trustee.trust_expiry_margin_seconds
        return subscription_expires + margin

    def __init__(self, conf: Any) -> None:
        _require_extras()
        super().__init__(conf)
        self.keystone = keystone_for(conf)

    def deliver(self, notification: Notification) -> DeliveryReport:
        trust_id, url = split_subscriber(notification.subscription["subscriber"])
        if not trust_id:
            raise errors.PermanentDeliveryError(
                "The subscriber holds no Keystone trust.", kind="trust_invalid"
            )
        while True:
            token, fresh = self.keystone.trust_token(trust_id)
            try:
                return self._send(url, token.token, notification)
            except TokenRejected as exc:
                self.keystone.tokens.forget(trust_id)
                if fresh:
                    raise errors.PermanentDeliveryError(
                        f"{exc} rejected a new trust-scoped token (HTTP 401).",
                        kind="token_rejected",
                        status=401,
                    ) from exc

    def _send(self, url: str, token: str, notification: Notification) -> DeliveryReport:
        if is_executions_url(url, self.keystone.workflow_url):
            return self._execute(url, token, notification)
        try:
            return self.post(notification, url=url, extra_headers={"X-Auth-Token": token})
        except errors.PermanentDeliveryError as exc:
            if exc.status == 401:
                raise TokenRejected("The subscriber") from exc
            raise

    def _execute(self, url: str, token: str, notification: Notification) -> DeliveryReport:
        from keystoneauth1 import exceptions as ks_exceptions
        from mistralclient.api import base as mistral_base
        from mistralclient.api.v2 import client as mistral_client

        options = notification.subscription.get("options") or {}
        if not options.get("workflow_id"):
            raise errors.PermanentDeliveryError(
                "options.workflow_id is needed to start a Mistral workflow.", kind="invalid_options"
            )
        message = notification.message
        params = mistral_params(options.get("params"), message["body"], message["id"])
        client = mistral_client.Client(
            mistral_url=url.rstrip("/").removesuffix("/executions"),
            session=self.keystone.adapter(token),
        )
        try:
            execution = client.executions.create(
                options["workflow_id"], workflow_input=options.get("input"), **params
            )
        except mistral_base.APIException as exc:
            raise _mistral_error(exc) from exc
        except ks_exceptions.ConnectTimeout as exc:
            raise errors.TransientDeliveryError(
                f"Mistral timed out: {exc}", kind="timeout"
            ) from exc
        except ks_exceptions.ClientException as exc:
            raise errors.TransientDeliveryError(
                f"Mistral unreachable: {exc}", kind="connection"
            ) from exc
        return DeliveryReport(
            status=201,
            response_body=json.dumps(
                {"execution_id": execution.id, "state": getattr(execution, "state", None)}
            ),
        )


def _mistral_error(exc: Any) -> Exception:
    status = exc.error_code
    if status == 401:
        return TokenRejected("Mistral")
    verdict = classify_http_status(status) if isinstance(status, int) else "transient"
    cls = errors.TransientDeliveryError if verdict == "transient" else errors.PermanentDeliveryError
    return cls(
        f"Mistral answered {status}: {exc.error_message}",
        kind="http_status",
        status=status if isinstance(status, int) else None,
    )

"""Keystone trusts for trust+http(s) subscribers, through keystoneauth1.

At subscription creation the *user* (with the token of their request) creates
a trust to notifier's trustee user (``[trustee]``): impersonation, the user's
roles on the project, expiring ``trust_expiry_margin_seconds`` after the
subscription (never, if it had no TTL). At delivery the trustee exchanges its
password and the trust id for a trust-scoped token, which acts as the user;
tokens are cached per trust until ``token_expiry_margin_seconds`` before they
expire. The trust is deleted with a token of the trust itself (Keystone lets
a trust's impersonating token delete it), so no user token is needed then.

Trust ids and tokens are secrets: notifier never logs them, and Keystone's
messages are scrubbed of them (``log=False`` on the calls that carry them).
At DEBUG, keystoneauth logs token response bodies (naming the trust) and
urllib3 logs request paths: keep those loggers at INFO in production.

keystoneauth1 is an optional dependency (the ``mistral`` extra): only the
trust sink imports this module.
"""

import collections
import dataclasses
import datetime
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from keystoneauth1 import adapter, loading, plugin, token_endpoint
from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1.access import service_catalog

from notifier import errors

if TYPE_CHECKING:
    from notifier.sinks import RequestContext

LOG = logging.getLogger(__name__)
GROUP = "trustee"
WORKFLOW_SERVICE_TYPE = "workflowv2"
# Overrides that turn the configured trustee login into a trust-scoped one.
NO_OTHER_SCOPE = dict.fromkeys(
    (
        "project_id",
        "project_name",
        "project_domain_id",
        "project_domain_name",
        "domain_id",
        "domain_name",
        "system_scope",
    )
)
REJECTED_TRUST = (
    "The Keystone trust of this subscription has expired or was "
    "deleted; delete the subscription and create it again."
)


def isoformat(epoch_seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch_seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def scrub(text: object, secret: str | None) -> str:
    return str(text).replace(secret, "<trust>") if secret else str(text)


@dataclasses.dataclass(frozen=True)
class TrustToken:
    """A trust-scoped token and when it expires (epoch seconds)."""

    token: str
    expires_at: float


class TokenCache:
    """Trust-scoped tokens by trust id, kept until ``margin_seconds`` before expiry.

    ``get`` returns ``(token, fresh)``; ``fresh`` is False for a cached one,
    which the caller may ``forget`` and fetch again if a service rejects it.
    Least recently used trusts are dropped past ``max_size``.
    """

    def __init__(
        self,
        fetch: Callable[[str], TrustToken],
        margin_seconds: float,
        max_size: int = 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.fetch = fetch
        self.margin_seconds = margin_seconds
        self.max_size = max_size
        self.clock = clock
        self._tokens: collections.OrderedDict[str, TrustToken] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, trust_id: str) -> tuple[TrustToken, bool]:
        with self._lock:
            cached = self._tokens.get(trust_id)
            if cached and cached.expires_at - self.margin_seconds > self.clock():
                self._tokens.move_to_end(trust_id)
                return cached, False
        token = self.fetch(trust_id)
        with self._lock:
            self._tokens[trust_id] = token
            self._tokens.move_to_end(trust_id)
            while len(self._tokens) > self.max_size:
                self._tokens.popitem(last=False)
        return token, True

    def forget(self, trust_id: str) -> None:
        with self._lock:
            self._tokens.pop(trust_id, None)


class Keystone:
    """notifier's trustee at Keystone: one per process and configuration."""

    def __init__(self, conf: Any, clock: Callable[[], float] = time.time) -> None:
        self.options = conf[GROUP]
        self.session = loading.load_session_from_conf_options(conf, GROUP)
        if self.session.timeout is None:
            self.session.timeout = conf.notification.webhook_read_timeout_seconds
        self.trustee = self._password()
        self.tokens = TokenCache(
            self._fetch_token,
            self.options.token_expiry_margin_seconds,
            self.options.token_cache_size,
            clock,
        )
        self._trustee_id: str | None = self.options.user_id
        self.workflow_url: str | None = None  # Mistral's, from the first catalog read
        self._catalog_read = False

    def _password(self, **overrides: Any) -> Any:
        loader: Any = loading.get_plugin_loader("password")
        return loader.load_from_options_getter(lambda opt: self.options[opt.dest], **overrides)

    # -- at subscription creation (API process) ----------------------------

    def identity_url(self) -> str:
        """Return Keystone's v3 URL, found by version discovery of ``auth_url``."""
        endpoint: Any = self.session.get_endpoint(
            auth=self.trustee, version=(3, 0), interface=plugin.AUTH_INTERFACE
        )
        return str(endpoint.rstrip("/"))

    def trustee_id(self) -> str | None:
        if not self._trustee_id:
            self._trustee_id = self.session.get_user_id(auth=self.trustee)
        return self._trustee_id

    def workflow_url_for(self, user_token: str | None) -> str | None:
        """Return the catalog's workflowv2 URL, reading it (once) with a user token."""
        if not self._catalog_read:
            try:
                url = self.identity_url() + "/auth/catalog"
                response = self.session.get(url, auth=token_endpoint.Token(url, user_token))
            except ks_exceptions.ClientException as exc:
                raise _api_error(exc) from exc
            self._note_catalog(service_catalog.ServiceCatalogV3(response.json()["catalog"]))
        return self.workflow_url

    def _note_catalog(self, catalog: Any) -> None:
        if self._catalog_read:
            return
        try:
            self.workflow_url = catalog.url_for(
                service_type=WORKFLOW_SERVICE_TYPE,
                interface=self.options.workflow_endpoint_interface,
                region_name=self.options.region_name,
            )
        except ks_exceptions.EndpointNotFound:
            self.workflow_url = None
        self._catalog_read = True

    def create_trust(self, context: "RequestContext", expires_at: float | None) -> str:
        """Create a trust from the requesting user to the trustee; return its id."""
        body = {
            "trustor_user_id": context.user_id,
            "project_id": context.project_id,
            "impersonation": True,
            "roles": [{"name": r} for r in context.roles],
            "expires_at": None if expires_at is None else isoformat(expires_at),
        }
        try:
            body["trustee_user_id"] = self.trustee_id()
        except ks_exceptions.ClientException as exc:
            raise errors.UnavailableError(
                f"notifier cannot log in to Keystone as its trustee: {exc}"
            ) from exc
        try:
            url = self.identity_url()
            response = self.session.post(
                url + "/OS-TRUST/trusts",
                json={"trust": body},
                log=False,
                auth=token_endpoint.Token(url, context.auth_token),
            )
        except ks_exceptions.ClientException as exc:
            raise _api_error(exc) from exc
        LOG.info(
            "created a Keystone trust for user %s on project %s",
            context.user_id,
            context.project_id,
        )
        trust_id: str = response.json()["trust"]["id"]
        return trust_id

    def delete_trust(self, trust_id: str) -> bool:
        """Delete a trust, acting through it; return False if that failed.

        An already expired or deleted trust counts as deleted. Failures are
        logged, not raised: the trust still expires on its own.
        """
        try:
            token, _ = self.tokens.get(trust_id)
            self.session.delete(
                self.identity_url() + "/OS-TRUST/trusts/" + trust_id,
                log=False,
                auth=token_endpoint.Token(None, token.token),
            )
        except errors.PermanentDeliveryError as exc:
            if exc.kind != "trust_invalid":
                LOG.warning("could not delete a Keystone trust: %s", exc)
                return False
        except errors.DeliveryError as exc:
            LOG.warning("could not delete a Keystone trust, it will expire on its own: %s", exc)
            return False
        except (ks_exceptions.NotFound, ks_exceptions.Unauthorized):
            pass
        except ks_exceptions.ClientException as exc:
            LOG.warning(
                "could not delete a Keystone trust, it will expire on its own: %s",
                scrub(exc, trust_id),
            )
            return False
        finally:
            self.tokens.forget(trust_id)
        return True

    # -- at delivery (worker process) --------------------------------------

    def trust_token(self, trust_id: str) -> tuple[TrustToken, bool]:
        """Return ``(TrustToken, fresh)`` for a trust, from the cache if still good."""
        return self.tokens.get(trust_id)

    def _fetch_token(self, trust_id: str) -> TrustToken:
        auth = self._password(trust_id=trust_id, **NO_OTHER_SCOPE)
        try:
            access = auth.get_access(self.session)
        except (ks_exceptions.Unauthorized, ks_exceptions.NotFound, ks_exceptions.Forbidden) as exc:
            raise self._rejected(exc, trust_id) from exc
        except ks_exceptions.ClientException as exc:
            raise _delivery_error(exc, trust_id) from exc
        self._note_catalog(access.service_catalog)
        return TrustToken(access.auth_token, access.expires.timestamp())

    def adapter(self, token: str) -> Any:
        """Return an HTTP client on this session that sends ``token``."""
        return adapter.Adapter(self.session, auth=token_endpoint.Token(None, token))

    def _rejected(self, exc: Exception, trust_id: str) -> errors.DeliveryError:
        """Tell a dead trust from rejected trustee credentials (both are a 401)."""
        try:
            self._password().get_access(self.session)  # a new login, not a cached one
        except ks_exceptions.Unauthorized:
            return errors.PermanentDeliveryError(
                "Keystone rejected notifier's trustee credentials ([trustee] username/password).",
                kind="trustee_rejected",
                status=401,
            )
        except ks_exceptions.ClientException as check:
            return _delivery_error(check, trust_id)
        return errors.PermanentDeliveryError(
            f"{REJECTED_TRUST} Keystone said: {scrub(exc, trust_id)}",
            kind="trust_invalid",
            status=getattr(exc, "http_status", None),
        )


def _unavailable(exc: Exception) -> bool:
    if isinstance(
        exc,
        (
            ks_exceptions.ConnectionError,
            ks_exceptions.DiscoveryFailure,
            ks_exceptions.RequestTimeout,
        ),
    ):
        return True
    status = getattr(exc, "http_status", None)
    return status is None or status >= 500 or status == 429


def _api_error(exc: Exception) -> errors.NotifierError:
    """Translate a keystoneauth error met while creating a trust."""
    status = getattr(exc, "http_status", None)
    if _unavailable(exc):
        return errors.UnavailableError(f"Keystone cannot be reached to create the trust: {exc}")
    if status == 401:
        return errors.AuthError("Keystone rejected the token of this request.")
    if status == 403:
        return errors.ForbiddenError(f"Keystone refused to create the trust: {exc}")
    return errors.ValidationError(
        f"Keystone refused to create the trust: {exc}", field="subscriber"
    )


def _delivery_error(exc: Exception, trust_id: str) -> errors.DeliveryError:
    """Translate a keystoneauth error met while getting a trust-scoped token."""
    text = scrub(exc, trust_id)
    status = getattr(exc, "http_status", None)
    if _unavailable(exc):
        return errors.TransientDeliveryError(
            f"Keystone unavailable: {text}", kind="keystone_unavailable", status=status
        )
    return errors.PermanentDeliveryError(
        f"Keystone error: {text}", kind="keystone_error", status=status
    )

"""Confirmation drivers: check the ``extra_spec`` of a confirm request.

Zaqar's "extra specs to subscription-confirming": a confirm request may carry
vendor data, e.g. a code the subscriber received by text message::

    PUT /v2/queues/orders/subscriptions/{id}/confirm     (signed headers)
    {"confirmed": true, "extra_spec": {"message_authentication_code": "..."}}

``[notification] confirmation_driver`` names the driver that judges it; it
is called for every confirm request (with ``extra_spec`` None when absent),
after the signed headers were verified and before anything changes.

Writing a driver (for vendors)
------------------------------
A driver is a class; notifier builds one per API process::

    class SmsCodeDriver:
        def __init__(self, conf):
            # oslo.config ConfigOpts; register and read your own options here
            # (a missing setting should raise ValueError: startup then fails).
            ...

        def confirm(self, subscription, confirmed, extra_spec):
            # subscription: the stored record (id, source, subscriber, ...)
            # confirmed: True to confirm, False to unsubscribe
            # extra_spec: the request's dict, or None
            # Return None to accept; raise notifier.errors.ValidationError
            # (400, e.g. a field missing) or ForbiddenError (403, e.g. a
            # wrong code) to refuse. Keep it quick: the API waits for it.
            ...

and is published under the entry point group ``notifier.confirmation_drivers``
of its package's ``pyproject.toml``::

    [project.entry-points."notifier.confirmation_drivers"]
    sms = "my_package.drivers:SmsCodeDriver"

then ``confirmation_driver = sms``. ``extra_spec`` is never stored or logged
by notifier: it may hold secrets.

Shipped drivers: ``noop`` (the default: accepts every confirmation and
ignores ``extra_spec``) and ``mac`` (``MacDriver``).
"""

import hashlib
import hmac
import importlib
from importlib import metadata

from notifier import errors
from notifier.core.confirmation import ConfirmationConfigError

GROUP = "notifier.confirmation_drivers"
BUILTIN_DRIVERS = {
    "noop": "notifier.api.confirm_drivers:NoopDriver",
    "mac": "notifier.api.confirm_drivers:MacDriver",
}
MAC_FIELD = "message_authentication_code"


class NoopDriver:
    """Accept every confirmation; ``extra_spec`` is ignored."""

    def __init__(self, conf):
        pass

    def confirm(self, subscription, confirmed, extra_spec):
        return None


def message_authentication_code(key, subscription_id):
    """Return the code MacDriver expects: hex HMAC-SHA256(key, subscription id)."""
    return hmac.new(
        key.encode("utf-8"), subscription_id.encode("utf-8"), hashlib.sha256
    ).hexdigest()


class MacDriver:
    """Confirming needs ``extra_spec.message_authentication_code``.

    The code is ``message_authentication_code([confirmation_mac] secret_key,
    subscription id)``: the operator's own channel (an SMS gateway, a customer
    portal) computes it and gives it to the subscriber, who proves with it
    that the subscription is theirs. Unsubscribing (``confirmed: false``)
    needs no code: holding the signed URL is enough to stop notifications.
    """

    def __init__(self, conf):
        self.key = conf.confirmation_mac.secret_key
        if not self.key:
            raise ValueError("confirmation_driver = mac needs [confirmation_mac] secret_key.")

    def confirm(self, subscription, confirmed, extra_spec):
        if not confirmed:
            return None
        code = (extra_spec or {}).get(MAC_FIELD)
        field = f"extra_spec.{MAC_FIELD}"
        if not isinstance(code, str) or not code:
            raise errors.ValidationError(
                f"Confirming this subscription needs {field}: the code you were given for it.",
                field=field,
            )
        expected = message_authentication_code(self.key, subscription["id"])
        if not hmac.compare_digest(expected.encode("ascii"), code.strip().lower().encode("utf-8")):
            raise errors.ForbiddenError(
                "The message authentication code does not match this subscription.", field=field
            )
        return None


def driver_class(name):
    """Return the driver class registered as ``name``."""
    for entry in metadata.entry_points(group=GROUP, name=name):
        return entry.load()
    if name in BUILTIN_DRIVERS:
        module_name, _, attribute = BUILTIN_DRIVERS[name].partition(":")
        return getattr(importlib.import_module(module_name), attribute)
    known = sorted({e.name for e in metadata.entry_points(group=GROUP)} | set(BUILTIN_DRIVERS))
    raise ConfirmationConfigError(
        f"[notification] confirmation_driver = {name!r} is not a confirmation "
        f"driver (known: {', '.join(known)})."
    )


def load_driver(conf):
    """Build the configured driver; raise ConfirmationConfigError if it cannot."""
    name = conf.notification.confirmation_driver
    try:
        return driver_class(name)(conf)
    except ConfirmationConfigError:
        raise
    except (ValueError, ImportError, AttributeError) as exc:
        raise ConfirmationConfigError(f"confirmation driver {name!r} cannot start: {exc}") from exc

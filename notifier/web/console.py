"""The operator console: ``/console`` pages for one project.

Who may open it (:class:`Gate`):

* a pre-signed console link (``notifier console-link``, ``notifier.core.links``
  scope CONSOLE on the path ``/console``, bound to one project and an
  expiry). The link's query (``project``, ``expires``, ``signature``) is
  carried on every link and form of the pages: nothing is stored, nothing is
  set in a cookie, and the link stops working everywhere when it expires.
  ``Referrer-Policy: no-referrer`` keeps it from leaking to other sites.
* under ``auth_strategy = keystone``, a Keystone token: an ``X-Auth-Token``
  header, or the token an operator pasted into the login form (kept in an
  HttpOnly, SameSite=Strict cookie scoped to ``/console``; a sign-in posted
  from another site is refused), validated by the API's keystonemiddleware;
  the token's project is the console's.

Under ``noauth`` the console is off (404) unless ``[console] enabled = true``,
and then only console links open it. Every POST carries a CSRF token derived
from the link's signature or the Keystone token.
"""

import dataclasses
import hashlib
import hmac
from typing import Any
from urllib.parse import urlencode, urlsplit

import falcon

from notifier import errors
from notifier.core import links
from notifier.errors import AuthError, NotFoundError, ValidationError
from notifier.services import console as console_service
from notifier.web import pages
from notifier.web.links import form, verified
from notifier.web.portal import since_epoch

COOKIE = "notifier_console_token"
LINK_FIELDS = ("project", "expires", "signature")


class LoginNeeded(AuthError):
    """No console link and no (valid) Keystone token: show the login form."""


@dataclasses.dataclass(frozen=True)
class Session:
    """Who the console is open for: one project."""

    project: str
    csrf: str
    link: links.Link | None = None  # a console link's fields, carried on every URL

    def url(self, path: str, **params: Any) -> str:
        """Return ``path`` with ``params`` and the session's link fields."""
        fields = {k: v for k, v in params.items() if v is not None}
        if self.link is not None:
            fields.update(
                project=self.link.project,
                expires=self.link.expires,
                signature=self.link.signature,
            )
        return f"{path}?{urlencode(fields)}" if fields else path


def token_csrf(token: str) -> str:
    """Return the form token of a Keystone session (derived from its token)."""
    return hmac.new(token.encode(), b"notifier console csrf", hashlib.sha256).hexdigest()


class Gate:
    """Open a console session for a request, or refuse it."""

    def __init__(self, conf: Any, key: str, keystone: bool) -> None:
        self.key = key
        self.keystone = keystone
        self.on = keystone or bool(conf.console.enabled)

    def session(self, req: falcon.Request) -> Session:
        if not self.on:
            raise NotFoundError(
                "The operator console is off. Under auth_strategy = noauth a deployer "
                "turns it on with [console] enabled = true; then console links "
                "(`notifier console-link`) open it."
            )
        if any(req.get_param(name) is not None for name in LINK_FIELDS):
            link = verified(req, self.key, links.CONSOLE_PATH, links.CONSOLE)
            return Session(link.project, links.csrf_token(self.key, link), link)
        if self.keystone:
            env = req.env
            token = env.get("HTTP_X_AUTH_TOKEN")
            project = env.get("HTTP_X_PROJECT_ID")
            if env.get("HTTP_X_IDENTITY_STATUS") == "Confirmed" and token and project:
                return Session(project, token_csrf(token))
            raise LoginNeeded(
                "Sign in with a Keystone token." if not token else "The token was refused."
            )
        raise AuthError("The console needs a console link (`notifier console-link`).")

    def form(self, req: falcon.Request, session: Session) -> dict[str, Any]:
        """Return a POSTed form after checking its CSRF token."""
        if session.link is not None:
            return form(req, self.key, session.link)
        fields = form_fields(req)
        token = fields.get("csrf")
        if not isinstance(token, str) or not hmac.compare_digest(token, session.csrf):
            raise ValidationError(
                "The form's CSRF token is missing or wrong; reload the page.", field="csrf"
            )
        return fields


def form_fields(req: falcon.Request) -> dict[str, Any]:
    from notifier.web.links import MAX_FORM_BYTES

    if req.content_length is not None and req.content_length > MAX_FORM_BYTES:
        raise ValidationError("The form is too large.", field="body")
    media = req.get_media(default_when_empty={}) if req.content_length else {}
    return media if isinstance(media, dict) else {}


def text(fields: dict[str, Any], name: str) -> str | None:
    value = fields.get(name)
    return value if isinstance(value, str) else None


class Page:
    """Base of the console's pages: the gate, the service, rendering."""

    def __init__(self, gate: Gate, console: console_service.ConsoleService) -> None:
        self.gate = gate
        self.console = console

    def render(
        self,
        resp: falcon.Response,
        template: str,
        session: Session,
        status: str = "200 OK",
        **ctx: Any,
    ) -> None:
        pages.render(
            resp,
            template,
            status=status,
            session=session,
            project=session.project,
            url=session.url,
            csrf=session.csrf,
            **ctx,
        )


class Overview(Page):
    """GET /console: the project's queues and topics."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        session = self.gate.session(req)
        rows = self.console.overview(session.project)
        self.render(resp, "console.html", session, rows=rows)


class SourcePage(Page):
    """GET /console/{kind}/{name}: one source's subscriptions."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, kind: str, name: str) -> None:
        session = self.gate.session(req)
        source = self.console.source(session.project, kind, name)
        view = self.console.source_page(session.project, source)
        self.render(resp, "console_source.html", session, source=source, **view)


def field_errors(exc: errors.NotifierError) -> dict[str, str]:
    """Map a validation error to the edit form's field it belongs to."""
    field = exc.field or ""
    if field.startswith(console_service.RETRY_FIELD):
        return {"retry": str(exc)}
    if field.startswith(console_service.SCOPE_FIELD):
        return {"scope": str(exc)}
    if field.startswith(console_service.FILTER_FIELD) or field.startswith("options.filter"):
        return {"filter": str(exc)}
    return {"form": f"{field}: {exc}" if field else str(exc)}


class SubscriptionPage(Page):
    """GET and POST /console/{kind}/{name}/subscriptions/{id}."""

    ACTIONS = ("edit", "preview", "replay", "replay_since", "pause", "resume")

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, kind: str, name: str, subscription_id: str
    ) -> None:
        session = self.gate.session(req)
        source = self.console.source(session.project, kind, name)
        self._show(resp, session, source, subscription_id)

    def on_post(
        self, req: falcon.Request, resp: falcon.Response, kind: str, name: str, subscription_id: str
    ) -> None:
        session = self.gate.session(req)
        source = self.console.source(session.project, kind, name)
        fields = self.gate.form(req, session)
        action = fields.get("action")
        if action not in self.ACTIONS:
            raise ValidationError("Unknown action.", field="action")
        project, console = session.project, self.console
        console.record(project, source, subscription_id)  # exists, and is this project's
        draft = {
            "retry": text(fields, "retry_policy") or "",
            "filter": text(fields, "filter_policy") or "",
            "scope": text(fields, "filter_policy_scope") or "",
        }
        notice = None
        if action in ("edit", "preview"):
            try:
                preview = console_service.retry_preview(
                    console.conf, draft["retry"], console.queue_retry_policy(source)
                )
                if action == "edit":
                    console.update(
                        project,
                        source,
                        subscription_id,
                        draft["retry"],
                        draft["filter"],
                        draft["scope"],
                    )
                    notice = "Saved."
            except errors.ValidationError as exc:
                self._show(
                    resp,
                    session,
                    source,
                    subscription_id,
                    draft=draft,
                    problems=field_errors(exc),
                    status=falcon.HTTP_400,
                )
                return
            if action == "preview":
                self._show(resp, session, source, subscription_id, draft=draft, preview=preview)
                return
        elif action == "replay":
            message_id = text(fields, "message_id")
            if not message_id:
                raise ValidationError("Which dead letter?", field="message_id")
            count = console.replay(project, source, subscription_id, message_id=message_id)
            notice = f"Replayed {count} dead letter(s)."
        elif action == "replay_since":
            since = since_epoch(text(fields, "since"))
            count = console.replay(project, source, subscription_id, since=since)
            notice = f"Replayed {count} dead letter(s)."
        elif action == "pause":
            console.pause(project, source, subscription_id)
            notice = "Paused: deliveries are held until it is resumed."
        else:
            released = console.resume(project, source, subscription_id)
            notice = f"Resumed: {released} held delivery(ies) released."
        self._show(resp, session, source, subscription_id, notice=notice)

    def _show(
        self,
        resp: falcon.Response,
        session: Session,
        source: Any,
        subscription_id: str,
        draft: dict[str, str] | None = None,
        problems: dict[str, str] | None = None,
        preview: dict[str, Any] | None = None,
        notice: str | None = None,
        status: str = falcon.HTTP_200,
    ) -> None:
        view = self.console.subscription(session.project, source, subscription_id)
        current = view["subscription"]
        if draft is None:
            draft = {
                "retry": pretty(current["retry_policy"]),
                "filter": pretty(current["filter_policy"]),
                "scope": current["filter_policy_scope"],
            }
        if preview is None and not problems:
            try:
                preview = console_service.retry_preview(
                    self.console.conf, draft["retry"], view["queue_retry_policy"]
                )
            except errors.ValidationError:
                preview = None
        path = f"/console/{source.kind}/{source.name}/subscriptions/{subscription_id}"
        self.render(
            resp,
            "console_subscription.html",
            session,
            status=status,
            source=source,
            action_url=session.url(path),
            draft=draft,
            problems=problems or {},
            preview=preview,
            chart=delay_chart(preview["delays"]) if preview else None,
            notice=notice,
            **view,
        )


def pretty(value: Any) -> str:
    import json

    return "" if value is None else json.dumps(value, indent=2, sort_keys=True)


def delay_chart(delays: list[float], width: int = 600, height: int = 160) -> dict[str, Any]:
    """Return the bars of the retry-delay chart (drawn as inline SVG by the template)."""
    tallest = max(delays, default=0.0) or 1.0
    count = max(len(delays), 1)
    step = width / count
    bars = []
    for index, delay in enumerate(delays):
        bar_height = max(1.0, (height - 20) * delay / tallest) if delay else 1.0
        bars.append(
            {
                "x": round(index * step + 1, 1),
                "y": round(height - bar_height, 1),
                "width": round(max(step - 2, 1.0), 1),
                "height": round(bar_height, 1),
                "retry": index + 1,
                "delay": delay,
            }
        )
    return {"width": width, "height": height, "bars": bars, "tallest": tallest}


class DeadLetters(Page):
    """GET /console/dead-letters; POST replays the chosen ones, or all since a time."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        session = self.gate.session(req)
        self._show(resp, session)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        session = self.gate.session(req)
        fields = self.gate.form(req, session)
        project = session.project
        if fields.get("action") == "replay_since":
            count = self.console.replay_all(project, since=since_epoch(text(fields, "since")))
        else:
            chosen = fields.get("letter") or []
            chosen = [chosen] if isinstance(chosen, str) else chosen
            if not chosen:
                raise ValidationError("Choose the dead letters to replay.", field="letter")
            count = 0
            for item in chosen:
                kind, name, subscription_id, message_id = parse_letter(item)
                source = self.console.source(project, kind, name)
                count += self.console.replay(
                    project, source, subscription_id, message_id=message_id
                )
        self._show(resp, session, notice=f"Replayed {count} dead letter(s).")

    def _show(self, resp: falcon.Response, session: Session, notice: str | None = None) -> None:
        rows = self.console.dead_letters(session.project)
        self.render(resp, "console_dead_letters.html", session, rows=rows, notice=notice)


def parse_letter(item: Any) -> tuple[str, str, str, str]:
    """Split a dead-letter checkbox value: kind/name/subscription id/message id."""
    parts = item.split("/") if isinstance(item, str) else []
    if len(parts) != 4 or not all(parts):
        raise ValidationError("A dead letter is kind/name/subscription/message.", field="letter")
    return parts[0], parts[1], parts[2], parts[3]


class Endpoints(Page):
    """GET /console/endpoints: open breakers and held deliveries."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        session = self.gate.session(req)
        rows = self.console.endpoints(session.project)
        self.render(resp, "console_endpoints.html", session, rows=rows)


class Explain(Page):
    """GET /console/explain?source=kind/name[&message_id=]; POST with a pasted message."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        session = self.gate.session(req)
        fields = {
            "source": req.get_param("source") or "",
            "message_id": req.get_param("message_id") or "",
        }
        self._run(resp, session, fields, bool(fields["message_id"]))

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        session = self.gate.session(req)
        fields = self.gate.form(req, session)
        self._run(resp, session, fields, True)

    def _run(
        self, resp: falcon.Response, session: Session, fields: dict[str, Any], run: bool
    ) -> None:
        project = session.project
        sources = self.console.sources(project)
        chosen = text(fields, "source") or ""
        source = None
        if chosen:
            kind, _, name = chosen.partition("/")
            source = self.console.existing(self.console.source(project, kind, name))
        result, problem, status = None, None, falcon.HTTP_200
        if run and source is not None:
            try:
                result = self.console.explain(
                    project,
                    source,
                    message_id=text(fields, "message_id") or None,
                    body_text=fields.get("body"),
                    attributes_text=fields.get("attributes"),
                    tags_text=fields.get("tags"),
                )
            except errors.ValidationError as exc:
                problem = {"field": exc.field or "", "message": str(exc)}
                status = falcon.HTTP_400
        elif run:
            problem = {"field": "source", "message": "Choose a queue or topic."}
            status = falcon.HTTP_400
        self.render(
            resp,
            "console_explain.html",
            session,
            status=status,
            sources=sources,
            chosen=chosen,
            fields={k: text(fields, k) or "" for k in ("message_id", "body", "attributes", "tags")},
            recent=self.console.recent_message_ids(source) if source else [],
            result=result,
            problem=problem,
        )


class Login(Page):
    """POST /console/login (a Keystone token) and /console/logout."""

    def on_post_login(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self.gate.keystone:
            raise NotFoundError("Signing in needs auth_strategy = keystone.")
        public_url = str(self.console.conf.api.public_url or "")
        if cross_site(req, public_url):
            # Login CSRF: another site would sign the browser in with its
            # own token, and the operator would work in the attacker's project.
            raise errors.ForbiddenError("Sign in from the console's own page.")
        token = text(form_fields(req), "token")
        if not token or len(token) > 8192 or not token.isprintable():
            raise LoginNeeded("Paste a Keystone token.")
        resp.set_cookie(
            COOKIE,
            token.strip(),
            path=links.CONSOLE_PATH,
            # TLS often ends at a proxy: an https public URL means https.
            secure=req.scheme == "https" or public_url.startswith("https:"),
            http_only=True,
            same_site="Strict",
        )
        resp.status = falcon.HTTP_303
        resp.location = links.CONSOLE_PATH
        pages.secure(resp)

    def on_post_logout(self, req: falcon.Request, resp: falcon.Response) -> None:
        session = self.gate.session(req)
        self.gate.form(req, session)
        resp.unset_cookie(COOKIE, path=links.CONSOLE_PATH)
        resp.status = falcon.HTTP_303
        resp.location = links.CONSOLE_PATH
        pages.secure(resp)


def register(
    app: falcon.App, conf: Any, console: console_service.ConsoleService, keystone: bool
) -> None:
    """Route the console's pages on ``app``."""
    gate = Gate(conf, console.key, keystone)
    app.add_route("/console", Overview(gate, console))
    login = Login(gate, console)
    app.add_route("/console/login", login, suffix="login")
    app.add_route("/console/logout", login, suffix="logout")
    app.add_route("/console/dead-letters", DeadLetters(gate, console))
    app.add_route("/console/endpoints", Endpoints(gate, console))
    app.add_route("/console/explain", Explain(gate, console))
    app.add_route("/console/{kind}/{name}", SourcePage(gate, console))
    app.add_route(
        "/console/{kind}/{name}/subscriptions/{subscription_id}", SubscriptionPage(gate, console)
    )

    def login_needed(
        req: falcon.Request, resp: falcon.Response, exc: Exception, params: Any
    ) -> None:
        pages.render(resp, "console_login.html", status=falcon.HTTP_401, message=str(exc))

    app.add_error_handler(LoginNeeded, login_needed)


def cross_site(req: falcon.Request, public_url: str) -> bool:
    """Return whether a browser says a POST comes from another site
    (``Sec-Fetch-Site``, else ``Origin`` against the Host or the public URL)."""
    fetch_site = req.get_header("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = req.get_header("Origin")
    if origin is None:  # not a browser, or one that sends neither: no CSRF
        return False
    netloc = urlsplit(origin).netloc
    allowed = {req.get_header("Host") or req.netloc, urlsplit(public_url).netloc}
    return origin == "null" or netloc not in allowed - {""}


class TokenCookie:
    """WSGI, in front of keystonemiddleware: a console request without an
    ``X-Auth-Token`` header gets the token of its console cookie."""

    IDENTITY = ("HTTP_X_IDENTITY_STATUS", "HTTP_X_PROJECT_ID", "HTTP_X_ROLES", "HTTP_X_USER_ID")

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        for name in self.IDENTITY:  # only the middleware says who is asking
            environ.pop(name, None)
        if not environ.get("HTTP_X_AUTH_TOKEN"):
            token = cookie_value(environ.get("HTTP_COOKIE") or "", COOKIE)
            if token:
                environ["HTTP_X_AUTH_TOKEN"] = token
        return self.app(environ, start_response)


def cookie_value(header: str, name: str) -> str | None:
    from http.cookies import CookieError, SimpleCookie

    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel else None

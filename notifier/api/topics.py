"""Topic resources: queues' resources with the permission checks of topics.

A topic lives in its owner's project. Another project addresses it by
sending ``X-Topic-Owner: <owner project id>`` with its own ``X-Project-ID``;
without the header the requester's project is the owner. Only the owner
reads and changes the topic itself; who may publish and subscribe is the
topic's metadata (``notifier.core.topics``).
"""

from notifier import errors
from notifier.api import common
from notifier.api.queues import ProjectScope
from notifier.core import topics, validation
from notifier.services.access import without_replies
from notifier.store.storage import Source

OWNER_HEADER = "X-Topic-Owner"


def owner_project(req):
    """Return the project that owns the addressed topic."""
    requester = common.project(req)
    owner = req.get_header(OWNER_HEADER)
    if owner is None:
        return requester
    if not validation.PROJECT_RE.match(owner):
        raise errors.ValidationError(
            f"The header {OWNER_HEADER} must be a project "
            "id: 1 to 256 printable ASCII characters "
            "without ':' or spaces.",
            field=OWNER_HEADER,
        )
    return owner


class TopicScope(ProjectScope):
    """Who may do what with a topic: the owner manages it, its metadata says
    who publishes and subscribes, each project manages its own subscriptions."""

    def __init__(self, storage):
        super().__init__("topics")
        self.storage = storage

    def source(self, req, name):
        return Source(owner_project(req), self.kind, validation.source_name(name, "topic"))

    def list_project(self, req):
        self._require_owner(req, owner_project(req))
        return common.project(req)

    def before_manage(self, req, source):
        self._require_owner(req, source.project)

    def before_publish(self, req, source):
        metadata = self.storage.get_source_metadata(source)
        self._refuse(topics.publish_refusal(metadata, source.project, common.context(req)))

    def before_subscribe(self, req, source, subscriber, record=None):
        metadata = self.storage.get_source_metadata(source)
        if record is None:
            refusal = topics.subscribe_refusal(
                metadata, source.project, common.context(req), subscriber
            )
        else:  # a new subscriber URI: who subscribed was checked at creation
            refusal = topics.protocol_refusal(metadata, subscriber)
        self._refuse(refusal)

    def subscriber_project(self, req, source):
        return common.project(req)

    def sees(self, req, source, record):
        requester = common.project(req)
        return requester in (source.project, record.get("project"))

    def owns(self, req, source, record):
        # A subscription belongs to the project that subscribed, not to the
        # topic's owner, who sees it (and may delete it) without its tokens.
        return common.project(req) == record.get("project", source.project)

    def index_key(self, project, subscriber):
        # Unique per subscribing project: no project can take a subscriber
        # URL on a topic away from another (project ids have no ':').
        return f"{project}:{subscriber}"

    def shown_attempts(self, req, source, attempts):
        """The owner sees every attempt of its message, but what other
        projects' endpoints answered only their projects see."""
        requester = common.project(req)
        ids = {a["subscription_id"] for a in attempts}
        projects = {
            i: r.get("project", source.project)
            for i, r in self.storage.get_subscriptions(list(ids)).items()
        }
        return [
            a if projects.get(a["subscription_id"]) == requester else without_replies(a)
            for a in attempts
        ]

    @staticmethod
    def _require_owner(req, owner):
        if owner != common.project(req):
            raise errors.ForbiddenError(
                f"Only the owner project ({owner!r}) may list, read or change its "
                "topics; other projects may only publish and subscribe as the "
                "topic allows."
            )

    @staticmethod
    def _refuse(refusal):
        if refusal:
            raise errors.ForbiddenError(refusal)

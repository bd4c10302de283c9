"""`notifier api`: the HTTP API under gunicorn, wired with the Celery dispatcher."""

from typing import Any

from notifier.api import server
from notifier.api.app import create_app


def build_app(conf: Any) -> Any:
    """Return the WSGI app as production runs it: storage, the Celery
    dispatcher and its queue names wired in."""
    from notifier.store.storage import Storage
    from notifier.web.app import create_pages
    from workers.app import TASK_QUEUES, create_dispatcher

    storage = Storage.from_conf(conf)
    return create_app(
        conf, storage, create_dispatcher(conf, storage), TASK_QUEUES, pages=create_pages
    )


def run_api(conf: Any) -> None:
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{conf.api.bind_host}:{conf.api.bind_port}")
            self.cfg.set("workers", conf.api.workers)
            self.cfg.set("worker_class", server.worker_class(conf))  # gthread, with deadlines
            self.cfg.set("threads", 8)
            self.cfg.set("accesslog", None)
            self.cfg.set("graceful_timeout", 20)
            # gunicorn >= 25.1 opens a control socket at one path per user
            # ($HOME/.gunicorn/gunicorn.ctl): a second API on the host would
            # take it over. notifier does not use it.
            if "control_socket_disable" in self.cfg.settings:
                self.cfg.set("control_socket_disable", True)

        def load(self) -> Any:
            return build_app(conf)

    Server().run()

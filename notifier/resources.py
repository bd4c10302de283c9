"""Files shipped inside the package.

The top-level ``templates/`` folder is installed as the resource package
``notifier.templates`` (a ``package-dir`` mapping in pyproject.toml), so a
wheel, an editable install and the Docker image all read the same files
through importlib.resources: no path probing.
"""

from importlib import resources
from importlib.resources.abc import Traversable

PACKAGE = "notifier.templates"


def packaged(*parts: str) -> Traversable:
    """Return the shipped resource at ``templates/<parts>``."""
    return resources.files(PACKAGE).joinpath(*parts)


def read_packaged(*parts: str) -> str | None:
    """Return the text of ``templates/<parts>``, or None if it is not shipped."""
    resource = packaged(*parts)
    return resource.read_text(encoding="utf-8") if resource.is_file() else None

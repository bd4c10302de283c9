"""GET /v2/openapi.json: the hand-written OpenAPI document, as JSON.

The document is ``openapi.yaml`` beside this module (YAML, so it can carry
comments); it is parsed and serialised once, on first use, and every request
gets the same bytes.
"""

import functools
import json
from pathlib import Path

import yaml

DOCUMENT_PATH = Path(__file__).with_name("openapi.yaml")


@functools.cache
def document():
    """Return the OpenAPI document as a dict (parsed once per process)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with DOCUMENT_PATH.open(encoding="utf-8") as stream:
        return yaml.load(stream, Loader=loader)  # noqa: S506 - a safe loader


@functools.cache
def document_bytes():
    return json.dumps(
        document(), separators=(",", ":"), ensure_ascii=False, sort_keys=False
    ).encode("utf-8")


class OpenAPIDocument:
    def on_get(self, req, resp):
        resp.content_type = "application/json"
        resp.data = document_bytes()

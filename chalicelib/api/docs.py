"""The API's contract: the OpenAPI document at ``/openapi.json`` and Swagger UI at ``/docs``.

The document is ``openapi.json`` beside this module, the one source of the
contract (tests check the app against it). Swagger UI's files come from the
npm package ``swagger-ui-dist``, copied into ``docs_page/swagger-ui/`` by
``make docs-ui``, and are served from here rather than a CDN: the page works
where the API works, with nothing loaded from elsewhere.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

from chalice import Response

from chalicelib.access.control import Access, Caller
from chalicelib.api.routing import ApiBlueprint
from chalicelib.errors import DocsUnavailable, NotFound

SPEC_PATH = Path(__file__).with_name("openapi.json")
DOCS_DIRECTORY = Path(__file__).with_name("docs_page")
#: File name -> (where it lies under the docs directory, its media type). Nothing else is served.
DOCS_ASSETS = {
    "docs.js": ("docs.js", "text/javascript; charset=utf-8"),
    "swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    "swagger-ui.css": ("swagger-ui/swagger-ui.css", "text/css; charset=utf-8"),
}
#: The page loads only its own files; the try-it-out calls go to this API.
DOCS_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}
ASSET_CACHE_SECONDS = 3600

blueprint = ApiBlueprint(__name__)


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of this API, as committed."""
    return json.loads(SPEC_PATH.read_text(encoding="utf-8"))


def served_document(request_path: str) -> dict[str, Any]:
    """The document with ``servers`` pointing at the deployment that serves it.

    Behind API Gateway the request path carries the stage (``/api/openapi.json``),
    so the API's base is what precedes ``/openapi.json``.
    """
    document = copy.copy(openapi_document())
    base = request_path[: -len("/openapi.json")] if request_path.endswith("/openapi.json") else ""
    document["servers"] = [{"url": base or "/", "description": "this deployment"}]
    return document


class DocsPage:
    """The files of the documentation page, read once per warm instance."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._files: dict[str, str] = {}

    def page(self) -> tuple[str, str]:
        """The HTML page and its media type."""
        return self._read("index.html"), "text/html; charset=utf-8"

    def asset(self, name: str) -> tuple[str, str]:
        """The text and media type of the page's file *name* (a :data:`DOCS_ASSETS` key).

        Raises
        ------
        NotFound
            *name* is not a file of the page.
        DocsUnavailable
            The Swagger UI files were not copied into this bundle.
        """
        if name not in DOCS_ASSETS:
            raise NotFound(f"the documentation page has no file {name[:80]!r}")
        relative, media_type = DOCS_ASSETS[name]
        return self._read(relative), media_type

    def _read(self, relative: str) -> str:
        if relative not in self._files:
            try:
                self._files[relative] = (self._directory / relative).read_text(encoding="utf-8")
            except FileNotFoundError:
                raise DocsUnavailable("the Swagger UI files are not in this bundle; run `make docs-ui` before "
                                      "packaging") from None
        return self._files[relative]


@functools.cache
def docs_page() -> DocsPage:
    """The page bundled with the app."""
    return DocsPage(DOCS_DIRECTORY)


def _file_response(text: str, media_type: str, cache_seconds: int) -> Response:
    headers = {"Content-Type": media_type, "Cache-Control": f"public, max-age={cache_seconds}",
               **DOCS_SECURITY_HEADERS}
    return Response(body=text, status_code=200, headers=headers)


@blueprint.route("/openapi.json", access=Access.PUBLIC)
def openapi_json(caller: Caller) -> dict[str, Any]:
    return served_document(blueprint.current_request.context.get("path", ""))


@blueprint.route("/docs", access=Access.PUBLIC)
def docs(caller: Caller) -> Response:
    return _file_response(*docs_page().page(), cache_seconds=0)


@blueprint.route("/docs/{asset}", access=Access.PUBLIC)
def docs_asset(caller: Caller, asset: str) -> Response:
    return _file_response(*docs_page().asset(asset), cache_seconds=ASSET_CACHE_SECONDS)

"""The website widget: ``/widget.js`` for other sites' pages, and ``/demo``, a page using it on this API.

``widget.js`` (in ``widget_page/`` beside this module, plain JavaScript with no
build step) renders "Recommended for you" and "More like this" blocks and
reports clicks, and the view of a "More like this" block's own item, to ``POST /events``. Sites load it from here,
cross-origin: its answer carries nothing that would stop that. The demo page
loads only its own files, under a strict Content-Security-Policy; its key,
user and token come from the URL fragment, which never reaches a server.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from chalice import Response

from chalicelib.access.control import Access, Caller
from chalicelib.api.routing import ApiBlueprint
from chalicelib.errors import NotFound

WIDGET_DIRECTORY = Path(__file__).with_name("widget_page")
#: A new widget reaches the sites that load it within this time.
SCRIPT_CACHE_SECONDS = 600

#: The script is for other sites' pages: a ``<script src>`` from anywhere (with ``crossorigin`` and
#: ``integrity`` too), and pages whose own policy asks for Cross-Origin-Resource-Policy. A
#: Content-Security-Policy governs documents, not the scripts they load: the script gets none.
SCRIPT_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "cross-origin",
    "Access-Control-Allow-Origin": "*",
}
#: The demo page runs only its own scripts and calls only this API; images may come from anywhere.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src * data:; base-uri 'none'; form-action 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class WidgetFile:
    """How one file of ``widget_page/`` is answered."""

    media_type: str
    headers: dict[str, str]
    cache_seconds: int


#: File name -> how it is answered. Nothing else is served.
WIDGET_FILES = {
    "widget.js": WidgetFile("text/javascript; charset=utf-8", SCRIPT_HEADERS, SCRIPT_CACHE_SECONDS),
    "demo.html": WidgetFile("text/html; charset=utf-8", PAGE_HEADERS, 0),
    "demo.js": WidgetFile("text/javascript; charset=utf-8", PAGE_HEADERS, SCRIPT_CACHE_SECONDS),
}

blueprint = ApiBlueprint(__name__)


class WidgetFiles:
    """The files of the widget and its demo page, read once per warm instance."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._texts: dict[str, str] = {}

    def response(self, name: str) -> Response:
        """The answer serving file *name* (a :data:`WIDGET_FILES` key) with its media type and headers.

        Raises
        ------
        NotFound
            *name* is not a file of the widget.
        """
        if name not in WIDGET_FILES:
            raise NotFound(f"the widget has no file {name[:80]!r}")
        served = WIDGET_FILES[name]
        if name not in self._texts:
            self._texts[name] = (self._directory / name).read_text(encoding="utf-8")
        headers = {"Content-Type": served.media_type, "Cache-Control": f"public, max-age={served.cache_seconds}",
                   **served.headers}
        return Response(body=self._texts[name], status_code=200, headers=headers)


@functools.cache
def widget_files() -> WidgetFiles:
    """The files bundled with the app."""
    return WidgetFiles(WIDGET_DIRECTORY)


@blueprint.route("/widget.js", access=Access.PUBLIC)
def widget_script(caller: Caller) -> Response:
    return widget_files().response("widget.js")


@blueprint.route("/demo", access=Access.PUBLIC)
def demo_page(caller: Caller) -> Response:
    return widget_files().response("demo.html")


@blueprint.route("/demo.js", access=Access.PUBLIC)
def demo_script(caller: Caller) -> Response:
    return widget_files().response("demo.js")

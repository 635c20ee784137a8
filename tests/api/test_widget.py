"""The website widget and its demo page: what is served, with which types and policies.

The widget in a browser, against a served model and catalog, is ``tests/test_browser.py``.
"""

from __future__ import annotations

import re

import pytest

from chalicelib.api.widget import WIDGET_DIRECTORY, WIDGET_FILES, WidgetFiles
from chalicelib.errors import NotFound
from tests.support import client_for

SHOP_PAGE = {"origin": "https://elsewhere.example"}  # an origin no key of the test stage allows


@pytest.fixture
def client(settings, tmp_path):
    # No key: a <script src> or a browser opening /demo sends none.
    with client_for(settings, tmp_path, headers={}) as client:
        yield client


@pytest.mark.parametrize("path, name, media_type", [
    ("/widget.js", "widget.js", "text/javascript"),
    ("/demo", "demo.html", "text/html"),
    ("/demo.js", "demo.js", "text/javascript"),
])
def test_each_file_is_served_as_committed_with_its_type_and_cache(client, path, name, media_type):
    response = client.http.get(path)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == f"{media_type}; charset=utf-8"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.body == (WIDGET_DIRECTORY / name).read_bytes()
    assert response.headers["Cache-Control"] == f"public, max-age={WIDGET_FILES[name].cache_seconds}"


def test_the_demo_page_runs_only_its_own_scripts_and_shows_images_from_anywhere(client):
    response = client.http.get("/demo")
    policy = dict(part.strip().split(" ", 1) for part in response.headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'self'"  # scripts, styles and API calls: this API only
    assert policy["img-src"] == "* data:"
    assert policy["frame-ancestors"] == "'none'"
    assert "script-src" not in policy and "connect-src" not in policy and "style-src" not in policy
    page = response.body.decode()
    assert re.findall(r'(?:src|href)="([^"]+)"', page) == ["widget.js", "demo.js"]  # relative: works under a stage
    assert re.search(r"<script>|<script [^>]*>[^<]|\son\w+=|<style", page) is None  # nothing inline to allow


def test_the_page_is_the_page_wherever_it_is_asked_from(client):
    assert client.http.get("/demo", headers=SHOP_PAGE).status_code == 200


def test_other_sites_may_load_the_script(client):
    """A <script src> from any page, with crossorigin and integrity too, and pages that require CORP."""
    response = client.http.get("/widget.js", headers=SHOP_PAGE)
    assert response.status_code == 200
    assert "Content-Security-Policy" not in response.headers
    assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_the_script_builds_the_page_without_html_from_the_api():
    script = (WIDGET_DIRECTORY / "widget.js").read_text()
    assert re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function", script) is None
    assert "encodeURIComponent(settings.itemId)" in script and "encodeURIComponent(settings.userId)" in script
    assert "keepalive: true" in script
    assert "window.RecommenderWidget" in script


@pytest.mark.parametrize("path", ["/demo.html", "/demo.css", "/widget_page/widget.js", "/widget.js/x",
                                  "/docs/widget.js", "/docs/demo.js"])
def test_no_other_file_is_served(client, path):
    response = client.http.get(path)
    assert response.status_code in (403, 404), path  # API Gateway answers an unrouted path with a 403
    assert b"RecommenderWidget" not in response.body


def test_only_the_listed_files_are_read(tmp_path):
    (tmp_path / "widget.js").write_text("// ours")
    (tmp_path / "secret.txt").write_text("not served")
    files = WidgetFiles(tmp_path)
    assert files.response("widget.js").body == "// ours"
    for name in ("secret.txt", "../widget.js", "widget.py", ""):
        with pytest.raises(NotFound):
            files.response(name)

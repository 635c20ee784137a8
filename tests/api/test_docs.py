"""The contract: the OpenAPI document matches the app's routes and access, and /docs serves Swagger UI.

That every answer of the suite conforms to the document is checked on each
request, by ``tests.support.HeadersByDefault``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from openapi_spec_validator import validate

import app
from chalicelib.access.control import Access
from chalicelib.api.docs import DOCS_ASSETS, DocsPage, openapi_document, served_document
from chalicelib.api.routing import ROUTE_ACCESS, ROUTE_QUERY
from chalicelib.errors import DocsUnavailable, NotFound
from tests.support import client_for

ROOT = Path(__file__).resolve().parents[2]
#: What the document's ``security`` must say for each kind of route ({} = no key needed).
SECURITY_OF = {
    Access.PUBLIC: [{}, {"publishableKey": []}, {"secretKey": []}],
    Access.ANY_KEY: [{"publishableKey": []}, {"secretKey": []}],
    Access.USER: [{"publishableKey": [], "userToken": []}, {"secretKey": []}],
    Access.SECRET: [{"secretKey": []}],
}
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def documented_operations() -> dict[tuple[str, str], dict]:
    return {
        (path, method.upper()): operation
        for path, item in openapi_document()["paths"].items()
        for method, operation in item.items() if method in HTTP_METHODS
    }


def test_the_document_is_valid_openapi_3_1():
    validate(openapi_document())
    assert openapi_document()["openapi"].startswith("3.1.")


def test_every_route_of_the_app_is_documented_and_every_documented_operation_is_a_route():
    served = {(path, method) for path, methods in app.app.routes.items() for method in methods if method != "OPTIONS"}
    assert served == set(documented_operations())


def test_every_path_answers_preflights_as_the_document_says():
    assert "OPTIONS" in openapi_document()["info"]["description"]
    assert all("OPTIONS" in methods for methods in app.app.routes.values())


def test_each_operation_asks_for_the_keys_its_route_enforces():
    wrong = {operation: (spec["security"], SECURITY_OF[ROUTE_ACCESS[operation]])
             for operation, spec in documented_operations().items()
             if spec["security"] != SECURITY_OF[ROUTE_ACCESS[operation]]}
    assert wrong == {}


def test_every_operation_documents_its_refusals():
    for (path, method), operation in documented_operations().items():
        codes = set(operation["responses"])
        assert {"403", "500"} <= codes, (method, path)
        if ROUTE_ACCESS[(path, method)] is not Access.PUBLIC:
            assert {"400", "401"} <= codes, (method, path)


# Regression: unknown query parameters are refused with a 400 on every route, which the public
# routes did not document.
def test_every_operation_documents_the_400_and_exactly_the_query_parameters_its_route_accepts():
    for (path, method), operation in documented_operations().items():
        assert "400" in operation["responses"], (method, path)
        parameters = [*openapi_document()["paths"][path].get("parameters", []), *operation.get("parameters", [])]
        shared = openapi_document()["components"].get("parameters", {})
        parameters = [shared[p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p for p in parameters]
        documented = sorted(p["name"] for p in parameters if p["in"] == "query")
        assert documented == sorted(ROUTE_QUERY[(path, method)]), (method, path)


def test_the_version_is_the_package_version():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{openapi_document()["info"]["version"]}"' in pyproject


@pytest.fixture
def client(settings, tmp_path):
    # No key: the contract and its page are public.
    with client_for(settings, tmp_path, headers={}) as client:
        yield client


def test_the_document_is_served_with_this_deployment_as_its_server(client):
    response = client.http.get("/openapi.json")
    assert response.status_code == 200
    served = json.loads(response.body)
    assert served["servers"] == [{"url": "/", "description": "this deployment"}]
    assert {k: v for k, v in served.items() if k != "servers"} == {
        k: v for k, v in openapi_document().items() if k != "servers"}


def test_behind_an_api_gateway_stage_the_server_is_the_stage():
    assert served_document("/api/openapi.json")["servers"][0]["url"] == "/api"
    assert openapi_document()["servers"][0]["url"] == "http://127.0.0.1:8000"  # the committed one is untouched


def test_the_docs_page_loads_swagger_ui_and_the_document_from_this_api_only(client):
    response = client.http.get("/docs")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    page = response.body.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources == ["docs/swagger-ui.css", "docs/swagger-ui-bundle.js", "docs/docs.js"]
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert "<script>" not in page  # no inline script: the policy forbids them
    script = client.http.get("/docs/docs.js").body.decode()
    assert 'url: "openapi.json"' in script


def test_the_swagger_ui_files_are_the_npm_packages(client):
    package = json.loads((ROOT / "node_modules/swagger-ui-dist/package.json").read_text())
    assert package["version"] == json.loads((ROOT / "package.json").read_text())["dependencies"]["swagger-ui-dist"]
    for name, media_type in (("swagger-ui-bundle.js", "text/javascript"), ("swagger-ui.css", "text/css")):
        response = client.http.get(f"/docs/{name}")
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith(media_type)
        assert response.body == (ROOT / "node_modules/swagger-ui-dist" / name).read_bytes()
        assert "max-age" in response.headers["Cache-Control"]


def test_no_other_file_is_served(client):
    for name in ("index.html", "..%2Fopenapi.json", "swagger-ui.js", "LICENSE"):
        response = client.http.get(f"/docs/{name}")
        assert response.status_code == 404, name
        assert json.loads(response.body)["error"] == "not_found"


def test_a_bundle_without_the_swagger_ui_files_says_how_to_add_them(tmp_path):
    (tmp_path / "docs.js").write_text("// ours")
    page = DocsPage(tmp_path)
    assert page.asset("docs.js") == ("// ours", DOCS_ASSETS["docs.js"][1])
    with pytest.raises(DocsUnavailable, match="make docs-ui"):
        page.asset("swagger-ui-bundle.js")
    with pytest.raises(NotFound):
        page.asset("../docs.js")

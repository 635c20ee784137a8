"""Read routes: health, a user's recommendations, similar items, popular items, a session's recommendations."""

from __future__ import annotations

from typing import Any

from chalice import Response

from chalicelib.access.control import Access, Caller
from chalicelib.api.routing import ApiBlueprint
from chalicelib.api.validation import parse_count_query, parse_path_id, parse_session_request
from chalicelib.resources import app_resources
from chalicelib.serving.presenter import present

blueprint = ApiBlueprint(__name__)


@blueprint.route("/health", access=Access.PUBLIC)
def health(caller: Caller) -> Response:
    status, body = app_resources().live_model.health(details=caller.is_secret)
    return Response(body=body, status_code=status)


@blueprint.route("/users/{user_id}/recommendations", access=Access.USER, query=("n",))
def user_recommendations(caller: Caller, user_id: str) -> dict[str, Any]:
    n = parse_count_query(blueprint.current_request.query_params)
    user_id = parse_path_id(user_id, "user_id")
    caller.require_user(user_id)
    resources = app_resources()
    return present(resources.personalizer.recommend(user_id, n), resources.catalog_cache, user_id=user_id)


@blueprint.route("/items/{item_id}/similar", access=Access.ANY_KEY, query=("n",))
def similar_items(caller: Caller, item_id: str) -> dict[str, Any]:
    n = parse_count_query(blueprint.current_request.query_params)
    item_id = parse_path_id(item_id, "item_id")
    resources = app_resources()
    return present(resources.live_model.recommender().similar_items(item_id, n), resources.catalog_cache,
                   item_id=item_id)


@blueprint.route("/popular", access=Access.ANY_KEY, query=("n",))
def popular(caller: Caller) -> dict[str, Any]:
    n = parse_count_query(blueprint.current_request.query_params)
    resources = app_resources()
    return present(resources.live_model.recommender().popular(n), resources.catalog_cache)


@blueprint.route("/recommendations", access=Access.ANY_KEY, methods=["POST"])
def session_recommendations(caller: Caller) -> dict[str, Any]:
    item_ids, n = parse_session_request(blueprint.current_request.raw_body)
    resources = app_resources()
    return present(resources.live_model.recommender().recommend_for_session(item_ids, n), resources.catalog_cache)

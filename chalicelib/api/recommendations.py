"""Read routes: health, a user's recommendations, similar items, popular items, a session's recommendations,
and ranking a caller's own candidates."""

from __future__ import annotations

from typing import Any

from chalice import Response

from chalicelib.access.control import Access, Caller
from chalicelib.api.routing import ApiBlueprint
from chalicelib.api.validation import (
    FILTER_QUERY,
    parse_count_query,
    parse_filter_query,
    parse_path_id,
    parse_rank_request,
    parse_session_request,
)
from chalicelib.resources import app_resources

blueprint = ApiBlueprint(__name__)

#: What a filtered read route accepts in its query string.
READ_QUERY = ("n", *FILTER_QUERY)


@blueprint.route("/health", access=Access.PUBLIC)
def health(caller: Caller) -> Response:
    status, body = app_resources().live_model.health(details=caller.is_secret)
    return Response(body=body, status_code=status)


@blueprint.route("/users/{user_id}/recommendations", access=Access.USER, query=READ_QUERY)
def user_recommendations(caller: Caller, user_id: str) -> dict[str, Any]:
    query = blueprint.current_request.query_params
    n = parse_count_query(query)
    item_filter, explain = parse_filter_query(query)
    user_id = parse_path_id(user_id, "user_id")
    caller.require_user(user_id)
    return app_resources().answers.for_user(user_id, n, item_filter, explain)


@blueprint.route("/items/{item_id}/similar", access=Access.ANY_KEY, query=READ_QUERY)
def similar_items(caller: Caller, item_id: str) -> dict[str, Any]:
    query = blueprint.current_request.query_params
    n = parse_count_query(query)
    item_filter, explain = parse_filter_query(query)
    item_id = parse_path_id(item_id, "item_id")
    return app_resources().answers.similar(item_id, n, item_filter, explain)


@blueprint.route("/popular", access=Access.ANY_KEY, query=READ_QUERY)
def popular(caller: Caller) -> dict[str, Any]:
    query = blueprint.current_request.query_params
    n = parse_count_query(query)
    item_filter, explain = parse_filter_query(query)
    return app_resources().answers.popular(n, item_filter, explain)


@blueprint.route("/recommendations", access=Access.ANY_KEY, methods=["POST"])
def session_recommendations(caller: Caller) -> dict[str, Any]:
    item_ids, n, item_filter, explain = parse_session_request(blueprint.current_request.raw_body)
    return app_resources().answers.for_session(item_ids, n, item_filter, explain)


@blueprint.route("/rank", access=Access.ANY_KEY, methods=["POST"])
def rank(caller: Caller) -> dict[str, Any]:
    candidates, user_id, session_item_ids = parse_rank_request(blueprint.current_request.raw_body)
    if user_id is not None:
        caller.require_user(user_id)
    return app_resources().answers.rank(candidates, user_id, session_item_ids)

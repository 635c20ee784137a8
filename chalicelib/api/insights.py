"""Marketing insight routes: the target audience of an item or of a category, audience segments, content
performance (secret key), and trending items (any key)."""

from __future__ import annotations

from typing import Any

from chalicelib.access.control import Access, Caller
from chalicelib.api.routing import ApiBlueprint
from chalicelib.api.validation import (
    INSIGHTS_QUERY,
    parse_audience_query,
    parse_category_query,
    parse_insights_query,
    parse_path_id,
    parse_trending_query,
)
from chalicelib.resources import app_resources

blueprint = ApiBlueprint(__name__)

#: What an audience route accepts in its query string.
AUDIENCE_QUERY = ("n", "include_engaged")


@blueprint.route("/items/{item_id}/audience", access=Access.SECRET, query=AUDIENCE_QUERY)
def item_audience(caller: Caller, item_id: str) -> dict[str, Any]:
    n, include_engaged = parse_audience_query(blueprint.current_request.query_params)
    resources = app_resources()
    return resources.audiences.for_item(parse_path_id(item_id, "item_id"), n, include_engaged,
                                        resources.request_deadline())


@blueprint.route("/audiences", access=Access.SECRET, query=("category", *AUDIENCE_QUERY))
def category_audience(caller: Caller) -> dict[str, Any]:
    query = blueprint.current_request.query_params
    category = parse_category_query(query)
    n, include_engaged = parse_audience_query(query)
    resources = app_resources()
    return resources.audiences.for_category(category, n, include_engaged, resources.request_deadline())


@blueprint.route("/segments", access=Access.SECRET)
def segments(caller: Caller) -> dict[str, Any]:
    return app_resources().segments.all()


@blueprint.route("/users/{user_id}/segment", access=Access.SECRET)
def user_segment(caller: Caller, user_id: str) -> dict[str, Any]:
    resources = app_resources()
    return resources.segments.for_user(parse_path_id(user_id, "user_id"), resources.request_deadline())


@blueprint.route("/insights/items", access=Access.SECRET, query=(*INSIGHTS_QUERY, "category"))
def item_performance(caller: Caller) -> dict[str, Any]:
    return app_resources().insights.content_performance.items(parse_insights_query(blueprint.current_request.query_params))


@blueprint.route("/insights/categories", access=Access.SECRET, query=INSIGHTS_QUERY)
def category_performance(caller: Caller) -> dict[str, Any]:
    query = parse_insights_query(blueprint.current_request.query_params)
    return app_resources().insights.content_performance.categories(query)


@blueprint.route("/trending", access=Access.ANY_KEY, query=("n", "category"))
def trending(caller: Caller) -> dict[str, Any]:
    n, category = parse_trending_query(blueprint.current_request.query_params)
    return app_resources().insights.trending.answer(n, category)

"""Marketing insight routes (secret key): the target audience of an item or of a category, audience segments."""

from __future__ import annotations

from typing import Any

from chalicelib.access.control import Access, Caller
from chalicelib.api.routing import ApiBlueprint
from chalicelib.api.validation import parse_audience_query, parse_category_query, parse_path_id
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

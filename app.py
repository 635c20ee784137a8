"""HTTP routes of the recommendation API: wiring only, logic lives in chalicelib."""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from chalice import Chalice, Response

from chalicelib.artifact import ModelStore
from chalicelib.aws import s3_client
from chalicelib.config import Settings, load_settings
from chalicelib.errors import RecommenderError, error_response
from chalicelib.events import EventLog, event_log_for
from chalicelib.ingest import erase_user, record_events
from chalicelib.live_model import LiveModel
from chalicelib.realtime import UserRecommender
from chalicelib.validation import EventRules, check_id, parse_count_query, parse_event_batch, parse_session_request

app = Chalice(app_name="recommender-api")
# Websites call the API from browsers on their own origin.
app.api.cors = True


@functools.cache
def settings() -> Settings:
    """Stage settings, validated once per process."""
    loaded = load_settings()
    logging.basicConfig(level=loaded.log_level)
    app.log.setLevel(loaded.log_level)
    return loaded


@functools.cache
def live_model() -> LiveModel:
    """The live model, kept for warm invocations."""
    config = settings()
    store = ModelStore(s3_client(config), config.model_bucket, config.model_prefix)
    return LiveModel(store, config.model_refresh_seconds)


@functools.cache
def event_log() -> EventLog:
    """The DynamoDB event log."""
    return event_log_for(settings())


@functools.cache
def event_rules() -> EventRules:
    """What ``POST /events`` accepts, from the stage settings."""
    config = settings()
    return EventRules(
        event_types=frozenset(config.event_weight_map),
        max_age=timedelta(days=config.event_max_age_days),
        max_future=timedelta(seconds=config.event_max_future_seconds),
    )


@functools.cache
def user_recommender() -> UserRecommender:
    """Recommendations for users, following their latest events."""
    config = settings()
    return UserRecommender(live_model(), event_log(), config.event_weight_map, config.realtime_events)


def route(path: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``app.route`` whose view turns our narrow errors into JSON error responses."""

    def register(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return view(*args, **kwargs)
            except RecommenderError as error:
                status, body = error_response(error)
                return Response(body=body, status_code=status)

        return app.route(path, **options)(guarded)

    return register


@route("/health")
def health() -> dict[str, Any]:
    return live_model().health()


@route("/users/{user_id}/recommendations")
def user_recommendations(user_id: str) -> dict[str, Any]:
    n = parse_count_query(app.current_request.query_params)
    user_id = check_id(user_id, "user_id")
    return {"user_id": user_id, **user_recommender().recommend(user_id, n).to_json()}


@route("/items/{item_id}/similar")
def similar_items(item_id: str) -> dict[str, Any]:
    n = parse_count_query(app.current_request.query_params)
    item_id = check_id(item_id, "item_id")
    return {"item_id": item_id, **live_model().recommender().similar_items(item_id, n).to_json()}


@route("/popular")
def popular() -> dict[str, Any]:
    n = parse_count_query(app.current_request.query_params)
    return live_model().recommender().popular(n).to_json()


@route("/recommendations", methods=["POST"])
def session_recommendations() -> dict[str, Any]:
    item_ids, n = parse_session_request(app.current_request.raw_body)
    return live_model().recommender().recommend_for_session(item_ids, n).to_json()


@route("/events", methods=["POST"])
def post_events() -> Response:
    events = parse_event_batch(app.current_request.raw_body, event_rules(), datetime.now(timezone.utc))
    return Response(body=record_events(event_log(), events), status_code=202)


@route("/users/{user_id}", methods=["DELETE"])
def delete_user(user_id: str) -> dict[str, Any]:
    return erase_user(event_log(), check_id(user_id, "user_id"))

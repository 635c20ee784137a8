"""Narrow exceptions of the application and their HTTP mapping.

Code deep in chalicelib raises these; :func:`error_response` is the single
place that turns them into an HTTP status and a JSON body.
"""

from __future__ import annotations

from typing import Any


class RecommenderError(Exception):
    """Base class of every error this application raises on purpose."""

    #: Short machine-readable code placed in the JSON error body.
    code = "error"
    #: Extra fields for the JSON error body.
    details: dict[str, Any] = {}
    #: Extra HTTP headers of the answer (e.g. Retry-After).
    headers: dict[str, str] = {}


class ConfigError(RecommenderError):
    """The stage configuration is missing a setting or holds a malformed one."""

    code = "configuration_error"


class InvalidRequest(RecommenderError):
    """The client sent input that breaks the API contract."""

    code = "invalid_request"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PayloadTooLarge(InvalidRequest):
    """A request carries more entries than the API accepts at once."""

    code = "payload_too_large"


class NotFound(RecommenderError):
    """Nothing at this address (a file of the documentation page, say)."""

    code = "not_found"


class ItemNotFound(NotFound):
    """An item id the live model does not know."""

    code = "item_not_found"

    def __init__(self, item_id: str) -> None:
        super().__init__(f"item {item_id!r} is not in the live model")
        self.item_id = item_id


class CategoryNotFound(NotFound):
    """A category no catalog item of the live model holds."""

    code = "category_not_found"

    def __init__(self, category: str) -> None:
        super().__init__(f"no item of the live model is in category {category!r} in the catalog")
        self.category = category


class UserNotFound(NotFound):
    """A user id the live model does not know (or one erased since it was trained)."""

    code = "user_not_found"

    def __init__(self, user_id: str) -> None:
        super().__init__(f"user {user_id!r} is not in the live model")
        self.user_id = user_id


class SegmentsUnavailable(RecommenderError):
    """The live model was published without audience segments (before they existed, or with none asked for)."""

    code = "segments_unavailable"


class DocsUnavailable(RecommenderError):
    """The Swagger UI files were not copied into this bundle (``make docs-ui``)."""

    code = "docs_unavailable"


class ArtifactError(RecommenderError):
    """A model artifact is missing, corrupted or inconsistent."""

    code = "invalid_artifact"


#: Seconds a client should wait before retrying after AWS did not answer in time (503).
RETRY_AFTER_SECONDS = 1


class ModelUnavailable(RecommenderError):
    """No model could be loaded, so nothing can be recommended."""

    code = "model_unavailable"
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}


class EventLogUnavailable(RecommenderError):
    """DynamoDB did not answer (in time) for the event log."""

    code = "event_log_unavailable"
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}


class CatalogUnavailable(RecommenderError):
    """DynamoDB did not answer (in time) for the catalog."""

    code = "catalog_unavailable"
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}


class InsightsUnavailable(RecommenderError):
    """DynamoDB did not answer (in time) for the insight counters."""

    code = "insights_unavailable"
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}


class InsightCountersNotUpdated(InsightsUnavailable):
    """Some insight counter items of a stream batch were not updated: the batch must be delivered again."""

    code = "insight_counters_not_updated"


class CatalogItemNotFound(NotFound):
    """An item id the catalog does not hold."""

    code = "catalog_item_not_found"


class EventsNotStored(RecommenderError):
    """Some events of a batch could not be stored after every retry or before the request's deadline."""

    code = "events_not_stored"
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.details = details


class MissingApiKey(RecommenderError):
    """The request carries no API key (``x-api-key``) and the route needs one."""

    code = "missing_api_key"


class AccessDenied(RecommenderError):
    """The caller is known or named, but may not do this: each subclass says why."""

    code = "access_denied"


class InvalidApiKey(AccessDenied):
    """The API key is not one the stage knows (wrong, revoked, or of another stage)."""

    code = "invalid_api_key"


class OriginNotAllowed(AccessDenied):
    """A browser page on an origin the publishable key does not list."""

    code = "origin_not_allowed"


class KeyNotAllowed(AccessDenied):
    """The route needs a secret key; a publishable one was sent."""

    code = "key_not_allowed"


class UserTokenRequired(AccessDenied):
    """A per-user route called with a publishable key but no user token (``x-user-token``)."""

    code = "user_token_required"


class InvalidUserToken(AccessDenied):
    """The user token is malformed, badly signed, or signed with an unknown secret."""

    code = "invalid_user_token"


class ExpiredUserToken(AccessDenied):
    """The user token's expiry has passed."""

    code = "expired_user_token"


class TokenUserMismatch(AccessDenied):
    """The user token is another user's than the one the request is for."""

    code = "token_user_mismatch"


class RateLimited(RecommenderError):
    """Too many events for a key or a user; retry after the seconds given."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.details = {"retry_after_seconds": retry_after}
        self.headers = {"Retry-After": str(retry_after)}


class TrainingError(RecommenderError):
    """Training cannot go on with the data or options it was given.

    Never raised while serving, so never an HTTP answer: the CLIs print it
    and exit with status 2.
    """

    code = "training_error"


class NoInteractions(TrainingError):
    """The events read hold no interaction to train on."""


class ExportUnreadable(TrainingError):
    """A DynamoDB export in S3 is missing, incomplete, or in a form this code cannot read."""


class RatingsUnreadable(TrainingError):
    """A MovieLens ratings file is malformed."""


class InvalidTrainingOptions(TrainingError):
    """Training options out of their allowed values (an unknown split, for instance)."""


class WebhookError(RecommenderError):
    """A chat's incoming webhook did not take a message; each subclass says how."""

    code = "webhook_error"


class WebhookRejected(WebhookError):
    """The webhook refused the message (HTTP 4xx other than 429): retrying would not help."""

    code = "webhook_rejected"


class WebhookUnavailable(WebhookError):
    """The webhook kept failing (5xx, 429, timeouts, connection errors) until the attempts ran out."""

    code = "webhook_unavailable"


class RetrainJobNotStarted(RecommenderError):
    """The scheduled retraining job could not be started (AWS refused or did not answer)."""


_HTTP_STATUS: dict[type[RecommenderError], int] = {
    MissingApiKey: 401,
    AccessDenied: 403,
    RateLimited: 429,
    PayloadTooLarge: 413,
    InvalidRequest: 400,
    NotFound: 404,
    SegmentsUnavailable: 409,
    DocsUnavailable: 503,
    ModelUnavailable: 503,
    EventLogUnavailable: 503,
    CatalogUnavailable: 503,
    InsightsUnavailable: 503,
    EventsNotStored: 503,
    ArtifactError: 503,
    ConfigError: 500,
}


def http_status(error: RecommenderError) -> int:
    """HTTP status code for *error* (500 for anything not mapped)."""
    for error_type in type(error).__mro__:
        if error_type in _HTTP_STATUS:
            return _HTTP_STATUS[error_type]
    return 500


def error_body(error: RecommenderError) -> dict[str, Any]:
    """JSON body describing *error*: ``{"error": code, "message": text[, "field": name]}``."""
    body: dict[str, Any] = {"error": error.code, "message": str(error)}
    field = getattr(error, "field", None)
    if field is not None:
        body["field"] = field
    body.update(error.details)
    return body


def error_response(error: RecommenderError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Status code, JSON body and extra headers for *error*."""
    return http_status(error), error_body(error), dict(error.headers)

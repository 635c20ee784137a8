"""The edge of every route: who may call it, errors as JSON, CORS for the pages a key allows, and
one log line and one set of metrics per request.

Routes are declared on an :class:`ApiBlueprint` with their :class:`Access` and
the query parameters they accept; any other is refused before the view runs.
Each view receives the :class:`Caller` first, then its path parameters.
Errors are answered inside the view rather than by Chalice middleware, which
only sees ``ChaliceUnhandledError`` and would answer without CORS headers.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Callable

from chalice import Blueprint, Response
from chalice.app import Request

from chalicelib import telemetry
from chalicelib.access.control import Access, Caller
from chalicelib.api.validation import check_query, parse_path_id
from chalicelib.errors import InvalidRequest, RecommenderError, error_response
from chalicelib.resources import Resources, app_resources

#: Path -> the methods its routes serve, whichever blueprint declared them (for preflights).
_PATH_METHODS: dict[str, set[str]] = {}
#: (path, method) -> the access its route asks for: what the OpenAPI document's security must say.
ROUTE_ACCESS: dict[tuple[str, str], Access] = {}
#: (path, method) -> the query parameters its route accepts: what the OpenAPI document's parameters must say.
ROUTE_QUERY: dict[tuple[str, str], tuple[str, ...]] = {}
#: Derives metrics of one route from its request and answer (e.g. events accepted).
Observer = Callable[[Request, Response], None]


def error_answer(error: RecommenderError) -> Response:
    """*error* as its HTTP status, JSON body and headers."""
    status, body, headers = error_response(error)
    return Response(body=body, status_code=status, headers=headers)


class ApiBlueprint(Blueprint):
    """A Chalice blueprint whose routes are authorized, answer errors as JSON, carry CORS headers,
    and are logged and measured.

    Every path also gets an ``OPTIONS`` route answering browsers' CORS
    preflights for the origins of the publishable keys.
    """

    def route(self, path: str, access: Access = Access.ANY_KEY, observe: Observer | None = None,
              query: tuple[str, ...] = (), **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Declare a route (Chalice's arguments in *kwargs*).

        Parameters
        ----------
        access: who may call it.
        observe: derives the route's own metrics from each request and answer.
        query: the names of the query parameters it accepts; a request with
            any other, or with one of these twice, gets a 400 before the view runs.
        """
        register = super().route(path, **kwargs)
        if path not in _PATH_METHODS:
            _PATH_METHODS[path] = set()
            super().route(path, methods=["OPTIONS"])(self._preflight(path))
        methods = kwargs.get("methods", ["GET"])
        _PATH_METHODS[path].update(methods)
        ROUTE_ACCESS.update({(path, method): access for method in methods})
        ROUTE_QUERY.update({(path, method): tuple(query) for method in methods})

        def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
            register(self._guard(view, access, path, observe, tuple(query)))
            return view

        return decorator

    def _guard(self, view: Callable[..., Any], access: Access, path: str,
               observe: Observer | None, query: tuple[str, ...]) -> Callable[..., Any]:
        @functools.wraps(view)
        def guarded(**path_parameters: str) -> Response:
            started = time.perf_counter()
            request = self.current_request
            origin = request.headers.get("origin")
            caller: Caller | None = None
            resources: Resources | None = None
            try:
                resources = app_resources()
                caller = resources.access.authorize(access, request.headers.get("x-api-key"),
                                                    request.headers.get("x-user-token"), origin)
                check_query(request.query_params, query)
                answer = view(caller, **path_parameters)
                response = answer if isinstance(answer, Response) else Response(body=answer)
            except RecommenderError as error:
                response = error_answer(error)
            except Exception:  # noqa: BLE001 - a bug still answers JSON, and is logged whole
                telemetry.logger.exception("unhandled error")
                response = Response(body={"error": "internal_error", "message": "an internal error occurred"},
                                    status_code=500)
            if isinstance(response.body, dict):
                response.headers.setdefault("Content-Type", "application/json")
            if resources is not None:
                response.headers.update(resources.access.cors_headers(origin, caller))
            self._observe(request, path, response, caller, path_parameters, resources, observe, started)
            return response

        return guarded

    def _observe(self, request: Request, path: str, response: Response, caller: Caller | None,
                 path_parameters: dict[str, str], resources: Resources | None, observe: Observer | None,
                 started: float) -> None:
        body = response.body if isinstance(response.body, dict) else {}
        status = response.status_code
        strategy = body.get("strategy")
        if observe is not None:
            observe(request, response)
        if status in (401, 403):
            telemetry.count("AuthFailures")
        elif status == 429:
            telemetry.count("RateLimited")
        elif status >= 500:
            telemetry.count("ServerErrors")
        if isinstance(strategy, str) and strategy.endswith("_model_only"):
            telemetry.count("ModelOnlyAnswers")
        latency_ms = (time.perf_counter() - started) * 1000
        telemetry.log_request(
            request_id=_request_id(self, request), method=request.method, route=path, status=status,
            latency_ms=round(latency_ms, 3), caller=caller.kind if caller else None,
            key_id=caller.key_id if caller else None,
            user=_user_reference(path_parameters.get("user_id") or (caller.token_user if caller else None),
                                 resources),
            model_version=body.get("model_version"), strategy=strategy,
            error=body.get("error") if status >= 400 else None,
        )
        telemetry.flush_request_metrics(f"{request.method} {path}", latency_ms)

    def _preflight(self, path: str) -> Callable[..., Any]:
        def preflight(**path_parameters: str) -> Response:
            try:
                headers = app_resources().access.preflight_headers(
                    self.current_request.headers.get("origin"), sorted(_PATH_METHODS[path]))
            except RecommenderError as error:
                return error_answer(error)
            return Response(body="", status_code=204, headers=headers)

        preflight.__name__ = f"preflight_{len(_PATH_METHODS)}"
        return preflight


def _request_id(blueprint: Blueprint, request: Request) -> str | None:
    context = getattr(blueprint, "lambda_context", None)
    return getattr(context, "aws_request_id", None) or request.context.get("requestId")


def _user_reference(user_id: str | None, resources: Resources | None) -> str | None:
    if user_id is None or resources is None:
        return None
    try:  # the id as the view read it, so one user has one reference whatever encoded the path
        user_id = parse_path_id(user_id, "user_id")
    except InvalidRequest:
        pass  # a refused id is still hashed, never logged
    try:
        return telemetry.user_reference(user_id, resources.log_user_key)
    except RecommenderError:
        return "unavailable"  # the signing secret cannot be read: say so rather than log the id

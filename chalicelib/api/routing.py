"""The edge of every route: who may call it, errors as JSON, and CORS for the pages a key allows.

Routes are declared on an :class:`ApiBlueprint` with their :class:`Access`.
Each view receives the :class:`Caller` first, then its path parameters.
Errors are answered inside the view rather than by Chalice middleware, which
only sees ``ChaliceUnhandledError`` and would answer without CORS headers.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from chalice import Blueprint, Response

from chalicelib.access.control import Access, Caller
from chalicelib.errors import RecommenderError, error_response
from chalicelib.resources import app_resources

#: Path -> the methods its routes serve, whichever blueprint declared them (for preflights).
_PATH_METHODS: dict[str, set[str]] = {}


def error_answer(error: RecommenderError) -> Response:
    """*error* as its HTTP status, JSON body and headers."""
    status, body, headers = error_response(error)
    return Response(body=body, status_code=status, headers=headers)


class ApiBlueprint(Blueprint):
    """A Chalice blueprint whose routes are authorized, answer errors as JSON and carry CORS headers.

    Every path also gets an ``OPTIONS`` route answering browsers' CORS
    preflights for the origins of the publishable keys.
    """

    def route(self, path: str, access: Access = Access.ANY_KEY,
              **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        register = super().route(path, **kwargs)
        if path not in _PATH_METHODS:
            _PATH_METHODS[path] = set()
            super().route(path, methods=["OPTIONS"])(self._preflight(path))
        _PATH_METHODS[path].update(kwargs.get("methods", ["GET"]))

        def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
            register(self._guard(view, access))
            return view

        return decorator

    def _guard(self, view: Callable[..., Any], access: Access) -> Callable[..., Any]:
        @functools.wraps(view)
        def guarded(**path_parameters: str) -> Response:
            headers = self.current_request.headers
            origin = headers.get("origin")
            caller: Caller | None = None
            control = None
            try:
                control = app_resources().access
                caller = control.authorize(access, headers.get("x-api-key"), headers.get("x-user-token"), origin)
                answer = view(caller, **path_parameters)
                response = answer if isinstance(answer, Response) else Response(body=answer)
            except RecommenderError as error:
                response = error_answer(error)
            if control is not None:
                response.headers.update(control.cors_headers(origin, caller))
            return response

        return guarded

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

"""Blueprints whose routes answer our narrow errors as JSON, the one place errors meet HTTP."""

from __future__ import annotations

import functools
from typing import Any, Callable

from chalice import Blueprint, Response

from chalicelib.errors import RecommenderError, error_response


def answer_errors(view: Callable[..., Any]) -> Callable[..., Any]:
    """*view*, answering a :class:`RecommenderError` it raises with its status and JSON body.

    Inside the view rather than as Chalice middleware, so that error answers
    carry the route's CORS headers like any other.
    """

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except RecommenderError as error:
            status, body = error_response(error)
            return Response(body=body, status_code=status)

    return guarded


class ApiBlueprint(Blueprint):
    """A Chalice blueprint whose every route goes through :func:`answer_errors`."""

    def route(self, path: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        register = super().route(path, **kwargs)

        def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
            register(answer_errors(view))
            return view

        return decorator

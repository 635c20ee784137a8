"""Chatbot route: ``POST /chat/suggestions``, a few items for a conversation and a reply ready to send.

The request's JSON Schema (``schemas/chat_suggestions.json``) doubles as the
tool definition an LLM-based chatbot is given.
"""

from __future__ import annotations

from typing import Any

from chalicelib.access.control import Access, Caller
from chalicelib.api.routing import ApiBlueprint
from chalicelib.api.validation import parse_chat_request
from chalicelib.resources import app_resources

blueprint = ApiBlueprint(__name__)


@blueprint.route("/chat/suggestions", access=Access.ANY_KEY, methods=["POST"])
def chat_suggestions(caller: Caller) -> dict[str, Any]:
    request = parse_chat_request(blueprint.current_request.raw_body)
    if request.user_id is not None:
        caller.require_user(request.user_id)
    return app_resources().answers.chat(request)

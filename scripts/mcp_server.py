"""An MCP server that lets an LLM chatbot use the recommendation API as tools (stdio transport).

  RECOMMENDER_API_KEY=sk_... python scripts/mcp_server.py                     # API on http://127.0.0.1:8000
  RECOMMENDER_API_URL=https://abc.execute-api.eu-west-1.amazonaws.com/api/ RECOMMENDER_API_KEY=sk_... \\
      python scripts/mcp_server.py

A chat application (the MCP client) starts this process and talks to it over stdin and
stdout. Its tools call the API over HTTP with one API key, a secret key normally: the bot is
a server acting for the people it talks to. Tools: suggest_products (POST /chat/suggestions),
similar_items (GET /items/{id}/similar), popular_items (GET /popular) and record_feedback
(POST /events). An error answer of the API, or an API that cannot be reached in time,
becomes a tool error carrying the reason; the server itself keeps running.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import httpx
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

#: The input of suggest_products: the very schema ``POST /chat/suggestions`` validates.
SUGGESTIONS_SCHEMA_PATH = Path(__file__).resolve().parents[1] / "chalicelib" / "api" / "schemas" / "chat_suggestions.json"
DEFAULT_API_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_SECONDS = 10.0

_ID = {"type": "string", "minLength": 1, "maxLength": 256}
_COUNT = {"type": "integer", "minimum": 1, "maximum": 20, "default": 5, "description": "How many items (default 5)."}


class ApiError(Exception):
    """The API refused a call or could not be reached; the message is what the model reads."""


class RecommenderApi:
    """The routes the tools use, called over HTTP with one API key and a timeout on every call."""

    def __init__(self, base_url: str, api_key: str, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url, headers={"x-api-key": api_key},
            timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 3.0)))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        """GET *path* with the query *params* that are not None; the JSON answer."""
        return await self._call("GET", path, params={k: v for k, v in params.items() if v is not None})

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST *body* as JSON to *path*; the JSON answer."""
        return await self._call("POST", path, json=body)

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:  # refused, unresolvable, timed out, cut
            raise ApiError(f"cannot reach the recommendation API at {self._client.base_url}: "
                           f"{str(exc) or type(exc).__name__}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_error:
            raise ApiError(_error_text(response, body))
        if not isinstance(body, dict):
            raise ApiError(f"the recommendation API answered HTTP {response.status_code} without a JSON object")
        return body


def _error_text(response: httpx.Response, body: Any) -> str:
    """The API's own words for a refused call: ``{"error": code, "message": ...}`` and any Retry-After."""
    if isinstance(body, dict) and "message" in body:
        code = " ".join(str(part) for part in (response.status_code, body.get("error")) if part is not None)
        text = f"the recommendation API refused the call ({code}): {body['message']}"
    else:
        text = f"the recommendation API answered HTTP {response.status_code} {response.reason_phrase}"
    if "retry-after" in response.headers:
        text += f" (retry after {response.headers['retry-after']} s)"
    return text


def tool_definitions() -> list[types.Tool]:
    """The four tools, each with the exact JSON Schema of its arguments."""
    suggestions_schema = json.loads(SUGGESTIONS_SCHEMA_PATH.read_text(encoding="utf-8"))
    read_only = types.ToolAnnotations(readOnlyHint=True, openWorldHint=False)
    return [
        types.Tool(
            name="suggest_products", description=suggestions_schema["description"],
            inputSchema=suggestions_schema, annotations=read_only),
        types.Tool(
            name="similar_items",
            description="Items similar to one catalog item (people who liked it also liked these), best first, "
                        "with title, link, categories, price and availability when the catalog has them. Use it "
                        "when the person names or shows interest in a specific item and wants more like it.",
            inputSchema={"type": "object", "additionalProperties": False, "required": ["item_id"], "properties": {
                "item_id": {**_ID, "description": "Id of the item to find similar items for (an item_id from an "
                                                  "earlier answer)."},
                "n": _COUNT,
                "category": {**_ID, "description": "Only items in this category (e.g. 'Comedy')."},
            }},
            annotations=read_only),
        types.Tool(
            name="popular_items",
            description="The most popular catalog items, best first, with title, link, categories, price and "
                        "availability when the catalog has them. Use it when nothing is known yet about what the "
                        "person likes, or they ask what is popular (optionally in one category).",
            inputSchema={"type": "object", "additionalProperties": False, "properties": {
                "category": {**_ID, "description": "Only items in this category (e.g. 'Comedy')."},
                "n": _COUNT,
            }},
            annotations=read_only),
        types.Tool(
            name="record_feedback",
            description="Record that a person likes or dislikes an item, when they say so in the conversation. "
                        "Their next recommendations take it into account at once. Needs the person's user id on "
                        "this site.",
            inputSchema={"type": "object", "additionalProperties": False,
                         "required": ["user_id", "item_id", "feedback"], "properties": {
                             "user_id": {**_ID, "description": "The person's id on this site."},
                             "item_id": {**_ID, "description": "Id of the item the feedback is about."},
                             "feedback": {"type": "string", "enum": ["like", "dislike"],
                                          "description": "'like' or 'dislike'."},
                         }},
            annotations=types.ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False,
                                              openWorldHint=False)),
    ]


async def suggest_products(api: RecommenderApi, arguments: dict[str, Any]) -> types.CallToolResult:
    answer = await api.post("/chat/suggestions", arguments)
    # The message is ready to send to the person; the items (ids, links, reasons) are for follow-up calls.
    content = [_text(answer.get("message") or "No suggestion fits."), _text(_json({"items": answer.get("items", [])}))]
    return types.CallToolResult(content=content, structuredContent=answer)


async def similar_items(api: RecommenderApi, arguments: dict[str, Any]) -> types.CallToolResult:
    path = f"/items/{quote(arguments['item_id'], safe='')}/similar"
    answer = await api.get(path, {"n": arguments.get("n", 5), "category": arguments.get("category")})
    return types.CallToolResult(content=[_text(_json({"items": answer.get("items", [])}))], structuredContent=answer)


async def popular_items(api: RecommenderApi, arguments: dict[str, Any]) -> types.CallToolResult:
    answer = await api.get("/popular", {"n": arguments.get("n", 5), "category": arguments.get("category")})
    return types.CallToolResult(content=[_text(_json({"items": answer.get("items", [])}))], structuredContent=answer)


async def record_feedback(api: RecommenderApi, arguments: dict[str, Any]) -> types.CallToolResult:
    user_id, item_id, feedback = arguments["user_id"], arguments["item_id"], arguments["feedback"]
    event = {"user_id": user_id, "item_id": item_id, "event_type": feedback, "source": "chatbot"}
    receipt = await api.post("/events", {"events": [event]})
    if receipt.get("accepted"):
        return _result(f"Recorded: user {user_id} {feedback}s item {item_id}.")
    if receipt.get("duplicates"):
        return _result(f"Already recorded: user {user_id} {feedback}s item {item_id}.")
    return _result(f"The feedback was not stored (the API answered {_json(receipt)}).", is_error=True)


TOOLS = {tool.__name__: tool for tool in (suggest_products, similar_items, popular_items, record_feedback)}


async def call_tool(api: RecommenderApi, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
    """Run tool *name* (arguments already checked against its schema); API errors become error results."""
    if name not in TOOLS:
        return _result(f"unknown tool {name!r}; the tools are {', '.join(TOOLS)}", is_error=True)
    try:
        return await TOOLS[name](api, arguments)
    except ApiError as exc:
        return _result(str(exc), is_error=True)


def build_server(api: RecommenderApi) -> Server:
    """The MCP server of the four tools, calling *api*."""
    server: Server = Server(
        "recommender-api",
        instructions="Catalog recommendations: suggest items that fit a conversation, find items similar to one, "
                     "list popular items, and record what a person likes or dislikes.")
    tools = tool_definitions()

    @server.list_tools()
    async def list_tools() -> list[types.Tool]:
        return tools

    @server.call_tool()  # validates the arguments against the tool's inputSchema before calling
    async def run_tool(name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        return await call_tool(api, name, arguments)

    return server


async def serve(api_url: str, api_key: str, timeout_seconds: float) -> None:
    """Serve the tools over stdin/stdout until the client closes them."""
    api = RecommenderApi(api_url, api_key, timeout_seconds)
    try:
        server = build_server(api)
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        await api.aclose()


def _text(text: str) -> types.TextContent:
    return types.TextContent(type="text", text=text)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _result(text: str, is_error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(content=[_text(text)], isError=is_error)


def main(argv: list[str] | None = None) -> int:
    """Parse the configuration and serve; 2 when it is incomplete."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api-url", default=os.environ.get("RECOMMENDER_API_URL") or DEFAULT_API_URL,
                        help=f"base URL of the API (env RECOMMENDER_API_URL; default {DEFAULT_API_URL})")
    parser.add_argument("--api-key", default=os.environ.get("RECOMMENDER_API_KEY"),
                        help="API key sent as x-api-key (env RECOMMENDER_API_KEY, preferred: arguments show in ps)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS,
                        help=f"seconds each API call may take (default {DEFAULT_TIMEOUT_SECONDS:g})")
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error("an API key is needed: set RECOMMENDER_API_KEY or pass --api-key")
    if not args.api_url.startswith(("http://", "https://")):
        parser.error(f"--api-url must be an http:// or https:// URL, not {args.api_url!r}")
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    anyio.run(serve, args.api_url, args.api_key, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""scripts/mcp_server.py: the MCP server, driven as a chat application drives it.

The SDK's own stdio client starts the script as a subprocess and calls its tools; the tools
call the sample API over real HTTP (``served_sample``: ``chalice local``). One server runs
for the module (anyio's pytest plugin keeps the session open across tests); the tests of a
wrong configuration start their own.
"""

from __future__ import annotations

import json
import sys
import uuid
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import AsyncIterator

import pytest
import requests
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from local_aws.stack import free_port
from tests.support import SECRET_KEY, load_script

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "mcp_server.py"
SUGGESTIONS_SCHEMA = Path(__file__).resolve().parents[2] / "chalicelib" / "api" / "schemas" / "chat_suggestions.json"

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def connect(env: dict[str, str], args: tuple[str, ...] = ()) -> AsyncIterator[ClientSession]:
    """An initialised MCP session with ``scripts/mcp_server.py`` started with *env* and *args*."""
    params = StdioServerParameters(command=sys.executable, args=[str(SCRIPT), *args], env=env)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, read_timeout_seconds=timedelta(seconds=30)) as session:
            await session.initialize()
            yield session


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def mcp(served_sample) -> AsyncIterator[ClientSession]:
    """The server of this module, configured by its environment as a chat application's config does."""
    async with connect({"RECOMMENDER_API_URL": served_sample.base_url, "RECOMMENDER_API_KEY": SECRET_KEY}) as session:
        yield session


def items_of(result) -> list[dict]:
    """The items a successful tool result carries, checked to be the same in its text and structured content."""
    assert not result.isError, result.content
    items = json.loads(result.content[-1].text)["items"]
    assert items == result.structuredContent["items"]
    return items


def api_error(served_sample, path: str, key: str = SECRET_KEY) -> dict:
    """The error body the API itself answers for GET *path*."""
    response = requests.get(served_sample.base_url + path, headers={"x-api-key": key}, timeout=10)
    assert response.status_code >= 400
    return response.json()


async def test_lists_the_four_tools_with_their_schemas(mcp):
    tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}

    assert sorted(tools) == ["popular_items", "record_feedback", "similar_items", "suggest_products"]
    assert tools["suggest_products"].inputSchema == json.loads(SUGGESTIONS_SCHEMA.read_text(encoding="utf-8"))
    assert tools["similar_items"].inputSchema["required"] == ["item_id"]
    assert tools["record_feedback"].inputSchema["properties"]["feedback"]["enum"] == ["like", "dislike"]
    assert all(tool.description for tool in tools.values())


async def test_similar_items_of_star_wars_have_titles(mcp):
    items = items_of(await mcp.call_tool("similar_items", {"item_id": "50", "n": 3}))

    assert len(items) == 3 and "50" not in [item["item_id"] for item in items]
    assert all(item["title"] and item["url"] for item in items)
    assert "Return of the Jedi (1983)" in [item["title"] for item in items]


async def test_popular_items_default_to_five(mcp):
    items = items_of(await mcp.call_tool("popular_items", {}))

    assert len(items) == 5
    assert items[0]["title"] == "Star Wars (1977)"
    assert [item["score"] for item in items] == sorted((item["score"] for item in items), reverse=True)


async def test_popular_items_of_a_category(mcp):
    """Waits for ``GET /popular?category=`` (until then the API refuses the parameter)."""
    items = items_of(await mcp.call_tool("popular_items", {"category": "Comedy", "n": 4}))

    assert len(items) == 4
    assert all("Comedy" in item["categories"] for item in items)


async def test_record_feedback_stores_a_like(mcp, served_sample):
    user_id = f"chat-{uuid.uuid4().hex[:8]}"

    result = await mcp.call_tool("record_feedback", {"user_id": user_id, "item_id": "50", "feedback": "like"})

    assert not result.isError, result.content
    assert result.content[0].text == f"Recorded: user {user_id} likes item 50."
    events = served_sample.resources.event_log.recent(user_id, 10).events
    assert [(e.item_id, e.event_type, e.source) for e in events] == [("50", "like", "chatbot")]


async def test_an_unknown_item_is_a_tool_error_with_the_api_message(mcp, served_sample):
    result = await mcp.call_tool("similar_items", {"item_id": "no/such item"})

    assert result.isError
    expected = api_error(served_sample, "/items/no%2Fsuch%20item/similar")
    assert expected["error"] == "item_not_found"
    assert expected["message"] in result.content[0].text and "404" in result.content[0].text
    assert not (await mcp.call_tool("popular_items", {"n": 1})).isError  # the server is still up


async def test_arguments_outside_the_schema_are_refused_before_any_call(mcp):
    for name, arguments in [("popular_items", {"n": 21}), ("similar_items", {}),
                            ("record_feedback", {"user_id": "u", "item_id": "50", "feedback": "love"}),
                            ("suggest_products", {"n": 3, "colour": "red"})]:
        result = await mcp.call_tool(name, arguments)
        assert result.isError and "validation error" in result.content[0].text, (name, result.content)


async def test_suggest_products_answers_a_message_and_items(mcp):
    """Waits for ``POST /chat/suggestions``."""
    result = await mcp.call_tool("suggest_products", {"liked_item_ids": ["50"], "n": 3})

    assert not result.isError, result.content
    message, items = result.content[0].text, items_of(result)
    assert message and message == result.structuredContent["message"]
    assert 1 <= len(items) <= 3 and "50" not in [item["item_id"] for item in items]
    assert all(item["item_id"] and item["reason"] for item in items)


async def test_a_bad_api_key_is_a_tool_error(served_sample):
    args = ("--api-url", served_sample.base_url, "--api-key", "sk_wrong_0123456789abcdefghijklmnopqrstuv")
    async with connect({}, args) as session:
        result = await session.call_tool("popular_items", {"n": 1})

    assert result.isError
    expected = api_error(served_sample, "/popular?n=1", key="sk_wrong_0123456789abcdefghijklmnopqrstuv")
    assert expected["message"] in result.content[0].text


async def test_an_unreachable_api_is_a_tool_error():
    url = f"http://127.0.0.1:{free_port()}"
    async with connect({"RECOMMENDER_API_URL": url, "RECOMMENDER_API_KEY": SECRET_KEY}) as session:
        result = await session.call_tool("similar_items", {"item_id": "50"})

    assert result.isError
    assert result.content[0].text.startswith(f"cannot reach the recommendation API at {url}")


def test_without_a_key_it_exits_with_a_message(monkeypatch, capsys):
    monkeypatch.delenv("RECOMMENDER_API_KEY", raising=False)

    with pytest.raises(SystemExit) as exit_info:
        load_script("mcp_server").main([])

    assert exit_info.value.code == 2
    assert "set RECOMMENDER_API_KEY or pass --api-key" in capsys.readouterr().err

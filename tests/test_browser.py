"""The website widget end to end: its demo page in headless Chromium, against `chalice local` serving
the sample model and the MovieLens catalog, DynamoDB behind it.

The browser is Debian's chromium, driven by Playwright from PyPI; Playwright never downloads one.
`make test` installs it where it can (the Makefile's ``browser`` target); without it this test
skips saying how to install it, except in CI, where it fails.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlencode

import pytest

from tests.support import PUBLISHABLE_KEY, skip_unless_ci

CHROMIUM = Path("/usr/bin/chromium")
#: Headless, as root, on a machine whose only network is loopback: nothing of Chromium's own calls out.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
USER = "196"
#: How long the page may take to show an answer (the first one loads the model in `chalice local`).
WAIT_MS = 20_000


def browser_unavailable_reason() -> str | None:
    if not CHROMIUM.exists():
        return (f"no Chromium at {CHROMIUM}: install Debian's package as root with "
                "`apt-get install -y --no-install-recommends chromium` (`make browser` does it)")
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed: `pip install -e '.[dev]'` (`make venv` does it)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    skip_unless_ci("the browser test", browser_unavailable_reason())
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def shown_items(page: Any, block: str) -> list[tuple[str, str]]:
    """(item id, title) of each item the block ``#<block>`` shows, in order."""
    return page.eval_on_selector_all(
        f"#{block} .rw-item",
        "items => items.map(item => [item.dataset.itemId, item.querySelector('.rw-item-title').textContent])")


def test_the_demo_page_shows_recommendations_and_a_click_changes_them_at_once(browser, served_sample):
    origin = served_sample.origin
    context = browser.new_context()
    outside: list[str] = []

    def local_only(route: Any) -> None:  # the page calls this API only; an item's link is never followed
        if route.request.url.startswith(f"{origin}/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", local_only)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    fragment = urlencode({"key": PUBLISHABLE_KEY, "user": USER, "token": served_sample.token_for(USER)})
    page.goto(f"{origin}/demo#{fragment}")

    # "Recommended for you": real titles, the catalog's.
    first = page.wait_for_selector("#recommended .rw-block[data-state=ready]", timeout=WAIT_MS)
    assert first.query_selector(".rw-title").text_content() == "Recommended for you"
    before = shown_items(page, "recommended")
    assert len(before) == 8
    catalog = served_sample.resources.catalog.get_many([item_id for item_id, _ in before])
    assert [title for _, title in before] == [catalog[item_id].title for item_id, _ in before]
    assert page.is_hidden("#help")

    # A click: sent as an event, the page stays, "More like this" shows, "Recommended for you" is asked again.
    clicked_id, clicked_title = before[0]
    page.click(f"#recommended .rw-item[data-item-id='{clicked_id}'] .rw-link")
    similar = page.wait_for_selector("#similar .rw-block[data-state=ready]", timeout=WAIT_MS)
    page.wait_for_function("old => !old.isConnected", arg=first, timeout=WAIT_MS)  # replaced by a new answer
    again = page.wait_for_selector("#recommended .rw-block[data-state=ready]", timeout=WAIT_MS)

    assert page.url.startswith(f"{origin}/demo#")
    assert similar.query_selector(".rw-title").text_content() == f"More like this: {clicked_title}"
    similar_ids = [item_id for item_id, _ in shown_items(page, "similar")]
    assert similar_ids and clicked_id not in similar_ids
    assert again.get_attribute("data-strategy") == "realtime"  # the click folded into the answer
    after = [item_id for item_id, _ in shown_items(page, "recommended")]
    assert after and clicked_id not in after

    stored = served_sample.resources.event_log.recent(USER, 50).events
    clicks = [event for event in stored if event.event_type == "click" and event.item_id == clicked_id]
    assert [event.source for event in clicks] == ["web"]  # sent once
    # Shown items are not viewed; the item whose "More like this" opened is (the page's own item).
    assert {event.item_id for event in stored if event.event_type == "view"} == {clicked_id}

    assert errors == [] and outside == []
    context.close()


# --- the widget alone, on another site's page, against answers made here -------------------------------

WIDGET_JS = Path(__file__).resolve().parents[1] / "chalicelib/api/widget_page/widget.js"
SITE, API = "https://shop.example", "https://api.example"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e226059b0000000049454e44ae426082")
HOSTILE_TITLE = '<img src=x onerror="window.pwned=1">Hostile'


def test_another_sites_page_gets_text_and_checked_links_only_and_reports_clicks_and_page_views(browser):
    """The script from the API's origin on a shop's page; the API's answers are made here, so they can
    hold what a careless catalog might: markup in a title, a javascript: link, no title at all."""
    answers = {
        "/users/u%2F1/recommendations?n=3": (200, {"user_id": "u/1", "model_version": "v", "strategy": "personalized",
                                                   "items": [
            {"item_id": "1", "score": 0.9, "title": HOSTILE_TITLE, "url": "https://shop.example/1",
             "image_url": "https://images.example/1.png"},
            {"item_id": "2", "score": 0.8, "title": "Linkless", "url": "javascript:window.pwned=2",
             "image_url": "javascript:window.pwned=3"},
            {"item_id": "3", "score": 0.7},
        ]}),
        "/items/1/similar?n=3": (200, {"item_id": "1", "model_version": "v", "strategy": "similar", "items": [
            {"item_id": "4", "score": 0.5, "title": "Four"}]}),
        "/items/a%2Fb%3Fc/similar?n=10": (404, {"error": "item_not_found", "message": "item 'a/b?c' is not known"}),
    }
    posted: list[dict] = []
    cors = {"Access-Control-Allow-Origin": SITE, "Access-Control-Allow-Headers": "content-type,x-api-key,x-user-token",
            "Access-Control-Allow-Methods": "GET,POST,OPTIONS"}

    def serve(route: Any) -> None:
        request, url = route.request, route.request.url
        if url == f"{SITE}/":
            route.fulfill(content_type="text/html", body=f'<div id="a"></div><div id="b"></div>'
                                                         f'<script src="{API}/widget.js"></script>')
        elif url == f"{API}/widget.js":
            route.fulfill(content_type="text/javascript", body=WIDGET_JS.read_text())
        elif url == "https://images.example/1.png":
            route.fulfill(content_type="image/png", body=PNG)
        elif url.startswith(API) and request.method == "OPTIONS":
            route.fulfill(status=204, headers=cors)
        elif url == f"{API}/events":
            posted.append({"headers": request.headers, "body": request.post_data_json})
            route.fulfill(status=202, headers=cors, json={"accepted": 1})
        elif url.startswith(API) and url[len(API):] in answers:
            assert request.headers["x-api-key"] == "pk_shop" and request.headers["x-user-token"] == "token-1"
            status, body = answers[url[len(API):]]
            route.fulfill(status=status, headers=cors, json=body)
        else:
            route.abort()

    context = browser.new_context()
    context.route("**/*", serve)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    page.goto(f"{SITE}/")
    visitor = {"apiKey": "pk_shop", "userId": "u/1", "userToken": "token-1"}

    # apiBase by default: where the script came from.
    answer = page.evaluate("o => RecommenderWidget.render(document.getElementById('a'), o)", {**visitor, "n": 3})
    assert answer["strategy"] == "personalized"
    items = page.eval_on_selector_all("#a .rw-item", """items => items.map(item => {
        const link = item.querySelector('.rw-link');
        return [item.dataset.itemId, link.tagName, link.getAttribute('href'), item.querySelector('.rw-item-title').textContent,
                Array.from(item.querySelectorAll('img')).map(img => img.getAttribute('src'))];
    })""")
    assert items == [
        ["1", "A", "https://shop.example/1", HOSTILE_TITLE, ["https://images.example/1.png"]],
        ["2", "BUTTON", None, "Linkless", []],  # neither link nor image: not http(s)
        ["3", "BUTTON", None, "3", []],  # no title: its id
    ]
    assert page.evaluate("window.pwned") is None and page.query_selector("img[src=x]") is None
    assert page.eval_on_selector("#a .rw-image", "img => img.complete && img.naturalWidth") == 1
    assert posted == []  # shown is not viewed

    # The response, not the request: the handler records the event before it answers, and a request
    # can be seen before the handler has run (it failed CI once that way).
    with page.expect_response(f"{API}/events"):
        page.click("#a .rw-item[data-item-id='2'] .rw-link")
    assert posted[0]["body"]["events"] == [{"user_id": "u/1", "item_id": "2", "event_type": "click", "source": "web"}]
    assert posted[0]["headers"]["x-api-key"] == "pk_shop" and posted[0]["headers"]["x-user-token"] == "token-1"

    # "More like this" on item 1's page: a view of item 1 is reported.
    page.evaluate("o => RecommenderWidget.render(document.getElementById('b'), o)",
                  {**visitor, "kind": "similar", "itemId": "1", "n": 3})
    for _ in range(100):  # the report is sent after the render resolves
        if len(posted) > 1:
            break
        page.wait_for_timeout(20)
    assert posted[1]["body"] == {"events": [{"user_id": "u/1", "item_id": "1", "event_type": "view", "source": "web"}]}

    # An error answer: a plain message; the id went into the path encoded.
    answer = page.evaluate("o => RecommenderWidget.render(document.getElementById('b'), o)",
                           {**visitor, "kind": "similar", "itemId": "a/b?c"})
    assert answer is None
    assert page.get_attribute("#b .rw-block", "data-state") == "error"
    assert page.text_content("#b .rw-message") == "Recommendations are unavailable: item 'a/b?c' is not known."
    assert dialogs == [] and len(posted) == 2
    context.close()

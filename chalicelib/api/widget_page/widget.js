/*
 * Recommender widget: "Recommended for you" and "More like this" blocks from this API, with their
 * views and clicks reported to POST /events. Plain JavaScript (ES2017), no dependency, no build step.
 *
 *   <script src="https://API/widget.js"></script>
 *   <div id="for-you"></div>
 *   <script>
 *     RecommenderWidget.render(document.getElementById("for-you"), {
 *       apiKey: "pk_...", userId: "196", userToken: "<the visitor's token from your backend>",
 *       kind: "user", n: 8,
 *     });
 *   </script>
 *
 * Options of render(element, options):
 *   apiBase      where the API is; by default where this script was loaded from
 *   apiKey       a publishable key (x-api-key) that allows the page's origin
 *   userId       the visitor; with userToken (x-user-token), needed for "user" and to report events
 *   userToken    the visitor's token, made by the site's backend
 *   kind         "user" (recommended for the visitor, the default) or "similar" (more like itemId)
 *   itemId       the item of a "similar" block
 *   n            how many items, 1 to 100 (default 10)
 *   title        the heading (default "Recommended for you" or "More like this")
 *   unstyled     true: no inline styles, only the rw-* class names for the site's own CSS
 *   onItemClick  called as onItemClick(item, event, reported) on a click, after the click event has
 *                been sent; return false and the link is not followed. reported is a Promise of
 *                {ok, status} that settles when the API has answered the event.
 *
 * render returns a Promise of the API's answer (null when it failed, the message then shown in the
 * block). The block is a <section class="rw-block"> with data-kind, data-state ("ready" or "error"),
 * data-strategy and data-model-version; each item an <li class="rw-item" data-item-id>.
 *
 * What comes from the API is put in the page as text and checked URLs only, never as HTML.
 */
(function () {
  "use strict";

  const MAX_EVENTS_PER_REQUEST = 100;
  const DEFAULT_COUNT = 10;
  const DEFAULT_TITLES = { user: "Recommended for you", similar: "More like this" };

  // Only while this script first runs does document.currentScript name it; behind an API Gateway stage
  // the API's base is the script's URL less "/widget.js" (https://host/api), not just its origin.
  const ownScript = document.currentScript;
  const SCRIPT_BASE = ownScript && ownScript.src ? ownScript.src.replace(/\/widget\.js(?:[?#].*)?$/, "") : "";

  // The latest render into each element: an older answer arriving later is dropped.
  const latestRender = new WeakMap();

  const STYLES = {
    block: { fontFamily: "inherit", margin: "1em 0" },
    title: { fontSize: "1.2em", margin: "0 0 0.5em" },
    list: { display: "flex", flexWrap: "wrap", gap: "12px", listStyle: "none", margin: "0", padding: "0" },
    item: { width: "10em", border: "1px solid #ddd", borderRadius: "6px", padding: "8px", boxSizing: "border-box" },
    link: { display: "block", color: "inherit", textDecoration: "none", cursor: "pointer", font: "inherit",
            background: "none", border: "0", padding: "0", textAlign: "left", width: "100%" },
    image: { display: "block", width: "100%", height: "auto", marginBottom: "6px", borderRadius: "4px" },
    message: { margin: "0.5em 0", color: "#555" },
  };

  function element(tag, className, options, style) {
    const node = document.createElement(tag);
    node.className = className;
    if (!options.unstyled && style) Object.assign(node.style, style);  // CSSOM: allowed by strict CSPs
    return node;
  }

  // An http(s) URL, absolute, or null: a javascript: or data: link from a catalog never becomes a link.
  function safeUrl(value) {
    if (typeof value !== "string" || value === "") return null;
    try {
      const url = new URL(value);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch (error) {
      return null;
    }
  }

  function settingsOf(options) {
    if (!options || typeof options.apiKey !== "string" || options.apiKey === "") {
      throw new TypeError("RecommenderWidget.render: options.apiKey (a publishable key) is required");
    }
    const kind = options.kind || "user";
    if (kind !== "user" && kind !== "similar") {
      throw new TypeError(`RecommenderWidget.render: options.kind must be "user" or "similar", got ${kind}`);
    }
    if (kind === "user" && !(options.userId && options.userToken)) {
      throw new TypeError('RecommenderWidget.render: kind "user" needs options.userId and options.userToken');
    }
    if (kind === "similar" && !options.itemId) {
      throw new TypeError('RecommenderWidget.render: kind "similar" needs options.itemId');
    }
    const n = options.n === undefined ? DEFAULT_COUNT : Number(options.n);
    if (!Number.isInteger(n) || n < 1 || n > 100) {
      throw new TypeError(`RecommenderWidget.render: options.n must be an integer from 1 to 100, got ${options.n}`);
    }
    const apiBase = String(options.apiBase || SCRIPT_BASE).replace(/\/+$/, "");
    if (!apiBase) {
      throw new TypeError("RecommenderWidget.render: options.apiBase is required when the script's URL is unknown");
    }
    return Object.assign({}, options, { kind, n, apiBase, title: options.title || DEFAULT_TITLES[kind] });
  }

  function headersOf(settings, json) {
    const headers = { "x-api-key": settings.apiKey };
    if (settings.userToken) headers["x-user-token"] = settings.userToken;
    if (json) headers["Content-Type"] = "application/json";
    return headers;
  }

  function answerPath(settings) {
    const n = `?n=${settings.n}`;
    if (settings.kind === "similar") return `/items/${encodeURIComponent(settings.itemId)}/similar${n}`;
    return `/users/${encodeURIComponent(settings.userId)}/recommendations${n}`;
  }

  // The API's answer as {ok, status, body}; a network failure is status 0.
  async function call(url, init) {
    let response;
    try {
      response = await fetch(url, Object.assign({ credentials: "omit", cache: "no-store" }, init));
    } catch (error) {
      return { ok: false, status: 0, body: null };
    }
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = null;  // not JSON (a gateway's page): the status says enough
    }
    return { ok: response.ok, status: response.status, body };
  }

  function failureMessage(answer) {
    if (answer.status === 0) return "Recommendations are unavailable: the service could not be reached.";
    const said = answer.body && typeof answer.body.message === "string" ? answer.body.message : `HTTP ${answer.status}`;
    return `Recommendations are unavailable: ${said}.`;
  }

  /**
   * Report events to POST /events, at most 100 a request, with keepalive so that a click survives the
   * navigation it starts. Resolves to {ok, status} (ok only if every request was accepted); never rejects.
   */
  async function report(settings, type, items) {
    if (!settings.userId || !settings.userToken || items.length === 0) return { ok: false, status: 0 };
    const events = items.map((item) => ({ user_id: String(settings.userId), item_id: String(item.item_id),
                                          event_type: type, source: "web" }));
    const requests = [];
    for (let start = 0; start < events.length; start += MAX_EVENTS_PER_REQUEST) {
      requests.push(call(`${settings.apiBase}/events`, {
        method: "POST", keepalive: true, headers: headersOf(settings, true),
        body: JSON.stringify({ events: events.slice(start, start + MAX_EVENTS_PER_REQUEST) }),
      }));
    }
    const answers = await Promise.all(requests);
    const failed = answers.find((answer) => !answer.ok);
    if (failed) {
      console.warn(`RecommenderWidget: ${type} events not recorded (${failureMessage(failed)})`);
      return { ok: false, status: failed.status };
    }
    return { ok: true, status: answers[0].status };
  }

  function itemNode(item, settings) {
    const node = element("li", "rw-item", settings, STYLES.item);
    node.dataset.itemId = String(item.item_id);
    const url = safeUrl(item.url);
    let target;
    if (url) {
      target = element("a", "rw-link", settings, STYLES.link);
      target.href = url;
    } else {
      target = element("button", "rw-link", settings, STYLES.link);
      target.type = "button";
    }
    const image = safeUrl(item.image_url);
    if (image) {
      const img = element("img", "rw-image", settings, STYLES.image);
      img.alt = "";  // the title beside it says what it is
      img.loading = "lazy";
      img.decoding = "async";
      img.referrerPolicy = "no-referrer";
      img.addEventListener("error", () => img.remove());  // a broken image leaves the title alone
      img.src = image;
      target.appendChild(img);
    }
    const title = element("span", "rw-item-title", settings, null);
    title.textContent = typeof item.title === "string" && item.title !== "" ? item.title : String(item.item_id);
    target.appendChild(title);
    target.addEventListener("click", (event) => {
      const reported = report(settings, "click", [item]);
      if (typeof settings.onItemClick === "function" && settings.onItemClick(item, event, reported) === false) {
        event.preventDefault();
      }
    });
    target.addEventListener("auxclick", (event) => {  // a middle click opens the link elsewhere: still a click
      if (event.button === 1 && url) report(settings, "click", [item]);
    });
    node.appendChild(target);
    return node;
  }

  function blockNode(settings, answer) {
    const block = element("section", "rw-block", settings, STYLES.block);
    block.dataset.kind = settings.kind;
    const heading = element("h2", "rw-title", settings, STYLES.title);
    heading.textContent = settings.title;
    block.appendChild(heading);
    if (!answer.ok) {
      block.dataset.state = "error";
      const message = element("p", "rw-message", settings, STYLES.message);
      message.setAttribute("role", "status");
      message.textContent = failureMessage(answer);
      block.appendChild(message);
      return block;
    }
    block.dataset.state = "ready";
    block.dataset.strategy = String(answer.body.strategy || "");
    block.dataset.modelVersion = String(answer.body.model_version || "");
    const items = Array.isArray(answer.body.items) ? answer.body.items : [];
    if (items.length === 0) {
      const message = element("p", "rw-message", settings, STYLES.message);
      message.textContent = "Nothing to recommend yet.";
      block.appendChild(message);
      return block;
    }
    const list = element("ul", "rw-items", settings, STYLES.list);
    for (const item of items) list.appendChild(itemNode(item, settings));
    block.appendChild(list);
    return block;
  }

  /**
   * Render a block of recommendations into element, replacing what it held; a "similar" block reports a
   * view of its own item (the page's). Returns a Promise of the API's answer, or of null on an error answer.
   */
  async function render(target, options) {
    if (!target || typeof target.appendChild !== "function") {
      throw new TypeError("RecommenderWidget.render: the first argument must be a DOM element");
    }
    const settings = settingsOf(options);
    const token = {};
    latestRender.set(target, token);
    target.setAttribute("aria-busy", "true");
    if (!target.querySelector(".rw-block")) {
      const loading = element("p", "rw-message", settings, STYLES.message);
      loading.textContent = "Loading recommendations…";
      target.replaceChildren(loading);
    }
    const answer = await call(settings.apiBase + answerPath(settings), { headers: headersOf(settings, false) });
    if (latestRender.get(target) !== token) return answer.ok ? answer.body : null;  // a newer render owns it
    target.replaceChildren(blockNode(settings, answer));
    target.removeAttribute("aria-busy");
    if (!answer.ok) return null;
    // A "More like this" block sits on the page of its item: the visitor is viewing that item. The
    // recommended items are only shown, not viewed: reporting them would count as interest in each
    // and leave them out of the next answer.
    if (settings.kind === "similar" && settings.userId) report(settings, "view", [{ item_id: settings.itemId }]);
    return answer.body;
  }

  window.RecommenderWidget = Object.freeze({ render, version: "1" });
})();

// The widget's demo page: the visitor's "Recommended for you", and "More like this" for what they click.
// The key, user and token come from the URL fragment (#key=...&user=...&token=...), which the browser
// never sends to a server. A separate file rather than an inline script, so the page's
// Content-Security-Policy can forbid inline scripts.
(function () {
  "use strict";

  const fragment = new URLSearchParams(window.location.hash.slice(1));
  const apiKey = fragment.get("key");
  const userId = fragment.get("user");
  const userToken = fragment.get("token");
  const n = Number(fragment.get("n") || 8);

  // A new fragment is another visitor: start again.
  window.addEventListener("hashchange", () => window.location.reload());

  if (!apiKey || !userId || !userToken) {
    return;  // the page's explanation stays
  }
  document.getElementById("help").hidden = true;
  const status = document.getElementById("status");
  const recommended = document.getElementById("recommended");
  const similar = document.getElementById("similar");
  const visitor = { apiKey, userId, userToken, n, onItemClick: showClicked };

  function showRecommended() {
    return RecommenderWidget.render(recommended, Object.assign({}, visitor, { kind: "user" }));
  }

  // The click has been sent (reported settles when the API has stored it); stay on the page and show
  // what follows from it.
  function showClicked(item, event, reported) {
    const title = item.title || item.item_id;
    status.textContent = `You clicked ${title}.`;
    RecommenderWidget.render(similar, Object.assign({}, visitor, {
      kind: "similar", itemId: item.item_id, title: `More like this: ${title}`,
    }));
    // Asked again once the click is stored: the API folds it into the answer and leaves the item out.
    reported.then(showRecommended);
    return false;
  }

  showRecommended();
})();

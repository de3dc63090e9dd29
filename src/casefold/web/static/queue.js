// Live queue: every few seconds, ask for cases opened since the newest one shown that match the
// same filters. On the first page of a recency-sorted queue they are slotted in at the top and
// the scroll position is kept, so the analyst's place (and selection) stays put; elsewhere a
// notice offers to go to the first page. Without JavaScript the queue is still complete.
(function () {
  "use strict";
  var table = document.getElementById("queue");
  var notice = document.getElementById("live");
  if (!table || !notice) { return; }
  var liveUrl = table.getAttribute("data-live");
  var maxId = parseInt(table.getAttribute("data-max-id"), 10) || 0;
  var insert = table.getAttribute("data-insert") === "yes";
  var body = table.tBodies[0];
  var waiting = 0;
  var delay = 5000;

  function announce(count) {
    waiting += count;
    notice.textContent = "";
    var link = document.createElement("a");
    link.href = table.getAttribute("data-first") || "/";
    link.textContent = waiting + (waiting === 1 ? " new case" : " new cases") + ": show";
    notice.appendChild(link);
    notice.hidden = false;
  }

  function slotIn(rowsHtml, count) {
    var before = document.documentElement.scrollHeight;
    var scrolled = window.scrollY > 0;
    body.insertAdjacentHTML("afterbegin", rowsHtml);
    for (var i = 0; i < count && i < body.rows.length; i++) { body.rows[i].classList.add("fresh"); }
    if (scrolled) { window.scrollBy(0, document.documentElement.scrollHeight - before); }
    var empty = document.querySelector("p.empty");
    if (empty) { empty.remove(); }
    notice.textContent = count + (count === 1 ? " new case" : " new cases") + " added at the top.";
    notice.hidden = false;
  }

  function poll() {
    if (document.hidden) { return schedule(); }
    var url = liveUrl + (liveUrl.indexOf("?") < 0 ? "?" : "&") + "after_id=" + maxId;
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        // Signed out (redirected to the sign-in page) or refused: stop asking.
        if (!r.ok || (r.headers.get("content-type") || "").indexOf("json") < 0) { throw new Error("stop"); }
        return r.json();
      })
      .then(function (data) {
        if (data.count > 0) {
          maxId = Math.max(maxId, data.max_id);
          if (insert && !data.more) { slotIn(data.rows, data.count); } else { announce(data.count); }
        }
        schedule();
      })
      .catch(function (e) { if (e.message !== "stop") { schedule(); } });
  }

  function schedule() { window.setTimeout(poll, delay); }
  schedule();
}());

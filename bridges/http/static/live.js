/* burstbus live pages: follow the log's event stream and refresh the page's results in place.
 *
 * A page that can update itself carries data-live on <main>, with
 *   data-stream     the stream's URL (relative: the pages work under any base path)
 *   data-types      the event types it shows (comma-separated)
 *   data-after      the log seq the page reflects (the stream resumes there: nothing is missed
 *                   between rendering and connecting)
 *   data-projected  "1": the page reads projections, so wait until the stream's
 *                   `event: projected` says they reached the event's seq before re-fetching
 *                   (else the fetch could race the projection runner and miss it)
 *   data-match      optional JSON {"burst_id": id}: only events of that burst
 * On a relevant event it re-fetches the same URL (same filters) with fragment=results and
 * swaps the #results section, marking rows that were not there before. No framework.
 */
(function () {
  "use strict";
  var main = document.getElementById("main");
  var badge = document.getElementById("live-state");
  if (!main || !main.hasAttribute("data-live") || !window.EventSource || !window.fetch) return;

  var types = (main.getAttribute("data-types") || "").split(",").filter(Boolean);
  var waitProjected = main.getAttribute("data-projected") === "1";
  var match = null;
  try { match = JSON.parse(main.getAttribute("data-match") || "null"); } catch (e) { match = null; }
  var after = parseInt(main.getAttribute("data-after") || "0", 10) || 0;

  var wanted = 0;      // highest seq of a relevant event not yet shown
  var projected = 0;   // highest seq the projections have applied (from the stream)
  var busy = false;
  var again = false;
  var fallback = null;
  var resync = false;  // re-fetch once the stream is back (events may have been missed)

  function setState(on, text) {
    if (!badge) return;
    badge.hidden = false;
    badge.className = "live-state " + (on ? "on" : "off");
    badge.textContent = text;
  }

  function relevant(ev) {
    if (!match || !match.burst_id) return true;
    var data = ev.data || {};
    return ev.stream === match.burst_id || data.burst_id === match.burst_id;
  }

  function keys(root) {
    var seen = {};
    var nodes = root.querySelectorAll("[data-key]");
    for (var i = 0; i < nodes.length; i++) seen[nodes[i].getAttribute("data-key")] = true;
    return seen;
  }

  function fragmentUrl() {
    var url = new URL(window.location.href);
    url.searchParams.set("fragment", "results");
    url.hash = "";
    return url.toString();
  }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    var target = wanted;
    fetch(fragmentUrl(), { headers: { "Accept": "text/html" }, cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok && response.status !== 400) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        var current = document.getElementById("results");
        if (!current) return;
        var holder = document.createElement("div");
        holder.innerHTML = html;
        var fresh = holder.querySelector("#results");
        if (!fresh) return;
        var before = keys(current);
        var nodes = fresh.querySelectorAll("[data-key]");
        for (var i = 0; i < nodes.length; i++) {
          if (!before[nodes[i].getAttribute("data-key")]) nodes[i].classList.add("fresh");
        }
        current.replaceWith(fresh);
        if (wanted <= target) wanted = 0;
        document.dispatchEvent(new CustomEvent("burstbus:refreshed", { detail: { seq: target } }));
      })
      .catch(function () { /* the next event or the fallback timer tries again */ })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  function maybeRefresh() {
    if (!wanted) return;
    if (!waitProjected || projected >= wanted) {
      if (fallback) { clearTimeout(fallback); fallback = null; }
      refresh();
    }
  }

  function onEvent(message) {
    var ev;
    try { ev = JSON.parse(message.data); } catch (e) { return; }
    var seq = ev.seq || parseInt(message.lastEventId, 10) || 0;
    if (seq > after) after = seq;
    if (!relevant(ev)) return;
    if (seq > wanted) wanted = seq;
    maybeRefresh();
    // If the projections' progress never reaches us (a stream without `projected`), refresh anyway.
    if (waitProjected && !fallback) {
      fallback = setTimeout(function () { fallback = null; if (wanted) refresh(); }, 8000);
    }
  }

  var source = null;

  function connect() {
    if (source) source.close();
    var url = new URL(main.getAttribute("data-stream"), window.location.href);
    if (after >= 0) url.searchParams.set("after", String(after));
    if (types.length) url.searchParams.set("type", types.join(","));
    var opened = new EventSource(url.toString());
    source = opened;
    opened.onopen = function () {
      setState(true, "live");
      if (resync) { resync = false; wanted = wanted || 1; refresh(); }
    };
    opened.onerror = function () {
      if (source !== opened) return;
      setState(false, opened.readyState === EventSource.CLOSED ? "offline" : "reconnecting");
      if (opened.readyState === EventSource.CLOSED) {
        // The browser gave up (an HTTP error, e.g. too far behind to replay): retry from the
        // head instead, and re-fetch the results once connected to cover what was missed.
        after = -1;
        resync = true;
        setTimeout(function () { if (source === opened) connect(); }, 5000);
      }
    };
    types.forEach(function (type) { opened.addEventListener(type, onEvent); });
    opened.addEventListener("projected", function (message) {
      try {
        var seq = JSON.parse(message.data).seq || 0;
        if (seq > projected) projected = seq;
      } catch (e) { return; }
      maybeRefresh();
    });
  }

  // A page kept in the back/forward cache must not keep its stream open: browsers allow six
  // connections per host over HTTP/1.1, and six cached pages would block every request.
  window.addEventListener("pagehide", function () {
    if (source) { source.close(); source = null; }
  });
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) { setState(false, "connecting"); connect(); }
  });

  setState(false, "connecting");
  connect();
})();

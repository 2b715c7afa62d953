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
 * When the stream is lost for more than a few seconds the page says so (#stale-banner) and
 * greys its data (main.stale) until it is back. It also keeps "12 min ago" texts current and
 * folds the filter forms on a phone.
 */
(function () {
  "use strict";
  /* Relative times ("12 min ago", beside the UTC time): rendered by the server, kept current
   * here, with the server's wording (ui_queries.relative_time). */
  function ago(text) {
    var when = Date.parse(text);
    if (isNaN(when)) return null;
    var seconds = (Date.now() - when) / 1000;
    var ahead = seconds < 0;
    seconds = Math.abs(seconds);
    if (seconds < 60) return "just now";
    var minutes = Math.floor(seconds / 60), out;
    if (minutes < 90) out = minutes + " min";
    else if (minutes < 6 * 60) out = Math.floor(minutes / 60) + " h " + String(minutes % 60).padStart(2, "0") + " min";
    else if (minutes < 48 * 60) out = Math.floor(minutes / 60) + " h";
    else out = Math.floor(minutes / 1440) + " d";
    return ahead ? "in " + out : out + " ago";
  }
  function tick() {
    var nodes = document.querySelectorAll("[data-ago]");
    for (var i = 0; i < nodes.length; i++) {
      var text = ago(nodes[i].getAttribute("data-ago"));
      if (text !== null && nodes[i].textContent !== text) nodes[i].textContent = text;
    }
  }
  tick();
  setInterval(tick, 20000);
  document.addEventListener("burstbus:refreshed", tick);

  /* On a phone the results come first: fold the filters (left open after a mistake), also
   * when a window narrows to a phone's width. */
  function fold() {
    var folds = document.querySelectorAll("details.fold[open]");
    for (var f = 0; f < folds.length; f++) {
      if (!folds[f].hasAttribute("data-keep-open")) folds[f].open = false;
    }
  }
  if (window.matchMedia) {
    var phone = window.matchMedia("(max-width: 720px)");
    if (phone.matches) fold();
    if (phone.addEventListener) phone.addEventListener("change", function (e) { if (e.matches) fold(); });
  }
})();

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

  var staleTimer = null;
  var everLive = false;

  function setState(on, text) {
    if (badge) {
      badge.hidden = false;
      badge.className = "live-state " + (on ? "on" : "off");
      badge.textContent = text;
    }
    if (on) {
      everLive = true;
      if (staleTimer) { clearTimeout(staleTimer); staleTimer = null; }
      setStale(false);
    } else if (!staleTimer && !main.classList.contains("stale")) {
      // A blip is not news; a stream gone for seconds is: grey the data and say so.
      staleTimer = setTimeout(function () { staleTimer = null; setStale(true); }, everLive ? 2500 : 8000);
    }
  }

  /* The stale banner (base.html): the page's data greyed, and why, until the stream is back. */
  function setStale(on) {
    var banner = document.getElementById("stale-banner");
    if (on === main.classList.contains("stale")) return;
    main.classList.toggle("stale", on);
    document.body.classList.toggle("is-stale", on);
    if (!banner) return;
    banner.hidden = !on;
    var since = banner.querySelector(".stale-since");
    if (on && since) since.textContent = "Since " + new Date().toISOString().slice(11, 19) + " UTC; reconnecting.";
  }

  function relevant(ev) {
    if (!match || !match.burst_id) return true;
    var data = ev.data || {};
    return ev.stream === match.burst_id || data.burst_id === match.burst_id;
  }

  //: How long a row stays marked new: the length of the `fresh` animation in burstbus.css.
  var FRESH_MS = 4000;
  //: data-key → when its row first appeared (ms), while it is new.
  var freshSince = {};

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
        var now = Date.now();
        for (var i = 0; i < nodes.length; i++) {
          var key = nodes[i].getAttribute("data-key");
          if (!before[key]) freshSince[key] = now;
          var age = freshSince[key] === undefined ? FRESH_MS : now - freshSince[key];
          if (age < FRESH_MS) {
            // Still new: a refresh right after (the burst decision that follows a notice) keeps
            // the mark, its highlight carried on from where it was rather than cut short.
            nodes[i].classList.add("fresh");
            nodes[i].style.animationDelay = -age + "ms";
          }
        }
        for (var k in freshSince) { if (now - freshSince[k] >= FRESH_MS) delete freshSince[k]; }
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
    if (staleTimer) { clearTimeout(staleTimer); staleTimer = null; }
  });
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) { setState(false, "connecting"); connect(); }
  });

  setState(false, "connecting");
  connect();
})();

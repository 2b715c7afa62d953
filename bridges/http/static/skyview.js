/* burstbus sky view: CDS's Aladin Lite over the page's error circles, when it can be had.
 *
 * The server draws the sky as SVG (bridges/http/sky.py) inside #skyview, with the circles as
 * JSON (.sky-markers) and, when the widget was vendored at build time
 * (python -m burstbus.bridges.http.vendor), its local URL in data-aladin. This script:
 *   1. imports the vendored module (our own /static/: no CDN) and waits for its WebAssembly
 *      core (A.init; needs WebGL2);
 *   2. asks the survey for its `properties` (a few hundred bytes, 5 s at most): the tiles come
 *      from CDS, so without the network the widget would show an empty black sky;
 *   3. only then builds the widget in .sky-slot, draws the circles, and hides the SVG.
 * Any step failing leaves the SVG as it is and says why in .sky-note; nothing throws out of
 * here. The state is on <html data-sky="…"> (absent, loading, probing, no-webgl, failed, no-tiles,
 * aladin) and on #skyview's data-state. The live script replaces #results; the widget is kept
 * and moved into the new slot, with the new circles (event burstbus:refreshed).
 */
(function () {
  "use strict";
  var root = document.documentElement;
  var state = "svg";
  var reason = "";
  var widget = null;   // {aladin, overlay, box, A}
  var started = false;

  function view() { return document.getElementById("skyview"); }

  function markers(el) {
    var node = el && el.querySelector(".sky-markers");
    if (!node) return [];
    try { return JSON.parse(node.textContent || "[]") || []; } catch (e) { return []; }
  }

  function show(newState, why) {
    state = newState;
    if (why !== undefined) reason = why;
    root.setAttribute("data-sky", state);
    var el = view();
    if (!el) return;
    el.setAttribute("data-state", state);
    el.classList.toggle("aladin-on", state === "aladin");
    var note = el.querySelector(".sky-note");
    if (note) {
      note.hidden = !reason;
      note.textContent = reason;
    }
  }

  function withTimeout(promise, ms, what) {
    return new Promise(function (resolve, reject) {
      var timer = setTimeout(function () { reject(new Error(what + " took longer than " + ms / 1000 + " s")); }, ms);
      promise.then(function (v) { clearTimeout(timer); resolve(v); }, function (e) { clearTimeout(timer); reject(e); });
    });
  }

  function reachable(survey) {
    var controller = window.AbortController ? new AbortController() : null;
    var timer = setTimeout(function () { if (controller) controller.abort(); }, 5000);
    return fetch(survey.replace(/\/$/, "") + "/properties", {
      mode: "cors", cache: "no-store", credentials: "omit", signal: controller ? controller.signal : undefined
    }).then(function (response) {
      clearTimeout(timer);
      return response.ok;
    }, function () { clearTimeout(timer); return false; });
  }

  // Great-circle distance in degrees.
  function separation(a, b) {
    var r = Math.PI / 180;
    var s = Math.sin((b.dec - a.dec) * r / 2), t = Math.sin((b.ra - a.ra) * r / 2);
    var h = s * s + Math.cos(a.dec * r) * Math.cos(b.dec * r) * t * t;
    return 2 * Math.asin(Math.min(1, Math.sqrt(h))) / r;
  }

  // Where to look and how wide: the best position (else the first), wide enough for all.
  function frame(list) {
    var centre = list[list.length - 1];
    for (var i = 0; i < list.length; i++) if (list[i].best) centre = list[i];
    var spread = centre.err || 0.01;
    for (var j = 0; j < list.length; j++) {
      spread = Math.max(spread, separation(centre, list[j]) + (list[j].err || 0));
    }
    var fov = Math.min(Math.max(2.6 * spread, 0.02), 360);
    return { ra: centre.ra, dec: centre.dec, fov: fov, allSky: fov > 120 };
  }

  function draw(list) {
    if (!widget) return;
    var A = widget.A;
    try {
      widget.overlay.removeAll();
      var centres = [];
      for (var i = 0; i < list.length; i++) {
        var m = list[i];
        var radius = m.err && m.err > 0 ? m.err : 0.005;
        widget.overlay.add(A.circle(m.ra, m.dec, radius, {
          color: m.best ? "#ffc83d" : "#f85149", lineWidth: m.best ? 3 : 2
        }));
        // A mark at each centre too: an arcsecond circle is invisible at a degree's field.
        if (widget.catalog) centres.push(A.source(m.ra, m.dec, { label: m.label }));
      }
      if (widget.catalog) {
        widget.catalog.removeAll();
        widget.catalog.addSources(centres);
      }
      if (list.length) {
        var f = frame(list);
        widget.aladin.gotoRaDec(f.ra, f.dec);
        widget.aladin.setFoV(f.fov);
      }
    } catch (e) {
      show(state, "The sky view could not draw the circles (" + e + ").");
    }
  }

  function build(A, el, survey) {
    var list = markers(el);
    var f = frame(list);
    var box = document.createElement("div");
    box.className = "aladin-box";
    el.querySelector(".sky-slot").appendChild(box);
    var aladin = A.aladin(box, {
      survey: survey, fov: f.fov, target: f.ra.toFixed(6) + " " + f.dec.toFixed(6),
      projection: f.allSky ? "AIT" : "SIN", cooFrame: "ICRS", showReticle: false,
      showLayersControl: false, showGotoControl: false, showShareControl: false,
      showSettingsControl: false, showSimbadPointerControl: false, showCooGridControl: true,
      showFullscreenControl: true, showFrame: true
    });
    var overlay = A.graphicOverlay({ name: "error circles", color: "#f85149", lineWidth: 2 });
    aladin.addOverlay(overlay);
    var catalog = null;
    if (typeof A.catalog === "function" && typeof A.source === "function") {
      catalog = A.catalog({ name: "positions", shape: "plus", sourceSize: 14, color: "#ffc83d" });
      aladin.addCatalog(catalog);
    }
    widget = { A: A, aladin: aladin, overlay: overlay, catalog: catalog, box: box };
    draw(list);
  }

  function start() {
    var el = view();
    if (!el || started) return;
    started = true;
    var url = el.getAttribute("data-aladin");
    var survey = el.getAttribute("data-survey");
    if (!url || !survey || !markers(el).length) { show("absent", ""); return; }
    if (!window.WebGL2RenderingContext) {
      show("no-webgl", "This browser has no WebGL2 for the interactive sky view: the chart is drawn by burstbus.");
      return;
    }
    show("loading", "");
    var A = null;
    withTimeout(import(new URL(url, document.baseURI).href), 30000, "loading the sky view")
      .then(function (module) {
        A = module && (module.default || module);
        if (!A || typeof A.aladin !== "function") throw new Error("not the Aladin Lite module");
        return withTimeout(Promise.resolve(A.init), 30000, "starting the sky view");
      })
      .then(function () {
        show("probing", "");  // the code runs here; now the survey
        root.setAttribute("data-sky-code", "ready");
        return reachable(survey);
      }, function (error) {
        var text = String(error && error.message || error);
        show(/webgl/i.test(text) ? "no-webgl" : "failed",
             "The interactive sky view could not start (" + text + "): the chart is drawn by burstbus.");
        return null;
      })
      .then(function (ok) {
        if (ok === null) return;
        if (!ok) {
          show("no-tiles", "The sky survey (CDS) cannot be reached from this browser: the chart is drawn by burstbus.");
          return;
        }
        var current = view();
        if (!current) return;
        build(A, current, survey);
        show("aladin", "");
      })
      .catch(function (error) {
        show("failed", "The interactive sky view failed (" + (error && error.message || error) + "): the chart is drawn by burstbus.");
        if (widget && widget.box && widget.box.parentNode) widget.box.parentNode.removeChild(widget.box);
        widget = null;
      });
  }

  // The live script swapped #results: keep the widget, in the new slot, with the new circles.
  document.addEventListener("burstbus:refreshed", function () {
    var el = view();
    if (!el) return;
    if (!started) { start(); return; }
    if (widget) {
      var slot = el.querySelector(".sky-slot");
      if (slot && widget.box.parentNode !== slot) slot.appendChild(widget.box);
      draw(markers(el));
    }
    show(state);
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

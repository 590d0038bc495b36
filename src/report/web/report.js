/* fxscreen triage report: builds the page from the JSON in #fx-data.
 * Text goes in through textContent only (paths and error messages are
 * data, never markup).  The worklist draws only the rows in sight (fixed
 * row height, a spacer for the rest), so 10,000 rows scroll, filter and
 * sort at once; thumbnails are set as a row is drawn, so pictures are
 * decoded lazily. */
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("fx-data").textContent);
  var ROW_H = 88, OVERSCAN = 6;
  var classes = (D.run.classes || "").split(",").filter(function (s) { return s.length; });
  var posIdx = typeof D.run.positive_class === "number" ? D.run.positive_class : 1;
  var posName = classes[posIdx] || "positive";
  var negName = classes.length === 2 ? classes[1 - posIdx] : "not " + posName;

  function el(tag, attrs) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "cls") e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c == null) continue;
      e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return e;
  }
  function fmt(v, d) { return typeof v === "number" && isFinite(v) ? v.toFixed(d) : "n/a"; }
  function int(v) { return typeof v === "number" && isFinite(v) ? String(Math.round(v)) : "n/a"; }
  function predName(r) { return r.pred === 1 ? posName : negName; }
  function conf(r) { return r.pred === 1 ? r.p : 1 - r.p; }
  function boxText(b) { return b && b.every(function (v) { return typeof v === "number"; }) ? b.map(int).join(", ") : "none"; }

  /* ---- summary ---------------------------------------------------------- */
  var rows = D.rows, nErr = 0, nPos = 0;
  rows.forEach(function (r) { if (r.status !== "ok") nErr++; else if (r.pred === 1) nPos++; });
  var run = D.run;
  var started = run.start_time ? Date.parse(run.start_time) : NaN, ended = run.end_time ? Date.parse(run.end_time) : NaN;
  var secs = isFinite(started) && isFinite(ended) ? (ended - started) / 1000 : NaN;
  var model = (run.model || "").split("/").pop();
  var header = el("header", null,
    el("h1", { text: D.title }),
    el("div", { cls: "muted", text: "Made " + D.created + " by fxscreen report from " + D.dir }),
    el("p", { cls: "notice", text: "Research use only: not for clinical use. A model's score is not a diagnosis." }));
  var cards = el("div", { cls: "cards", id: "cards" });
  [["Rows", rows.length], ["Predicted " + posName, nPos], ["Predicted " + negName, rows.length - nErr - nPos],
   ["Errors", nErr], ["Threshold", fmt(run.threshold, 3)],
   ["Run time", isFinite(secs) ? secs.toFixed(0) + " s" : "n/a"]].forEach(function (c) {
    cards.appendChild(el("div", { cls: "card" }, el("b", { text: String(c[1]) }), el("span", { text: c[0] })));
  });
  var kv = el("dl", { cls: "kv" });
  function addKv(k, v) { if (v == null || v === "") return; kv.appendChild(el("dt", { text: k })); kv.appendChild(el("dd", { text: String(v) })); }
  addKv("Model", model);
  addKv("Model SHA-256", run.model_sha256);
  addKv("Classes", classes.join(", "));
  addKv("Grad-CAM", (run.cam_method || "") + (run.cam_layer ? " at " + run.cam_layer : ""));
  addKv("Sources", (run.sources || []).join(", "));
  addKv("Started", run.start_time);
  addKv("Ended", run.end_time);
  addKv("Device", run.device + (run.precision && run.precision !== "default" ? " (" + run.precision + ")" : ""));
  if (run.shard) addKv("Shard", JSON.stringify(run.shard));
  addKv("fxscreen", run.fxscreen_version);
  var summary = el("section", { id: "summary", "aria-labelledby": "h-summary" },
    el("h2", { id: "h-summary", text: "Run" }), cards, kv,
    el("details", null, el("summary", { text: "Effective configuration" }), el("pre", { text: run.effective_config || "" })));

  /* ---- evaluation --------------------------------------------------------- */
  var evalSec = null;
  if (D.eval) {
    var E = D.eval, t = el("table", { cls: "metrics", id: "metrics" });
    var B = E.bootstrap || null;
    t.appendChild(el("tr", null, el("th", { text: "Metric" }), el("th", { text: "Value" }), el("th", { text: "95% CI" }),
      el("th", { text: "Method" }), el("th", { text: B ? "Bootstrap 95% CI (" + B.replicates + ")" : "" })));
    function ciText(ci) { return ci ? fmt(ci[0], 3) + " to " + fmt(ci[1], 3) : ""; }
    function metric(name, m, key) {
      if (typeof m === "number") m = { value: m };
      if (!m || typeof m.value !== "number") return;
      var b = B && key && B[key] ? ciText(B[key].ci95) : "";
      t.appendChild(el("tr", null, el("td", { text: name }), el("td", { cls: "num", text: fmt(m.value, 3) }),
        el("td", { cls: "num", text: ciText(m.ci95) }), el("td", { cls: "muted", text: m.ci_method || "" }), el("td", { cls: "num", text: b })));
    }
    metric("AUROC", E.auroc, "auroc");
    metric("Sensitivity", E.sensitivity, "sensitivity");
    metric("Specificity", E.specificity, "specificity");
    metric("PPV", E.ppv, "ppv");
    metric("NPV", E.npv, "npv");
    metric("Accuracy", E.accuracy);
    metric("Cohen's kappa", E.kappa, "kappa");
    if (E.calibration) {
      metric("Brier score", { value: E.calibration.brier });
      metric("Expected calibration error", { value: E.calibration.ece });
    }
    if (E.pointing_game) metric("Pointing game hit rate", { value: E.pointing_game.rate });
    var cnt = E.counts || {};
    evalSec = el("section", { id: "eval", "aria-labelledby": "h-eval" },
      el("h2", { id: "h-eval", text: "Evaluation against labels" }),
      el("div", { cls: "muted", text: (cnt.evaluated != null ? cnt.evaluated + " rows evaluated (" + cnt.positives + " positive, " + cnt.negatives + " negative)" : "") +
        (E.inputs && E.inputs.labels_csv ? "; labels " + E.inputs.labels_csv : "") }), el("div", { cls: "tablewrap" }, t));
  }
  if (D.eval && D.eval.faithfulness) {
    var F = D.eval.faithfulness, ft = el("table", { cls: "metrics", id: "faith" });
    ft.appendChild(el("tr", null, el("th", { text: "Percentile kept" }), el("th", { text: "MoRF, CAM" }),
      el("th", { text: "MoRF, random" }), el("th", { text: "LeRF, CAM" }), el("th", { text: "LeRF, random" })));
    (F.percentiles || []).forEach(function (pc, i) {
      ft.appendChild(el("tr", null, el("td", { text: String(pc) }), el("td", { cls: "num", text: fmt(F.cam.morf[i], 4) }),
        el("td", { cls: "num", text: fmt(F.random.morf[i], 4) }), el("td", { cls: "num", text: fmt(F.cam.lerf[i], 4) }),
        el("td", { cls: "num", text: fmt(F.random.lerf[i], 4) })));
    });
    evalSec.appendChild(el("h2", { text: "CAM faithfulness (ROAD)" }));
    evalSec.appendChild(el("div", { cls: "muted", text: F.images + " images; change of the " + posName +
      " probability when the most (MoRF) or least (LeRF) relevant pixels are removed; ROAD combined " +
      fmt(F.cam.combined, 4) + " (random map " + fmt(F.random.combined, 4) + ", higher is more faithful)" }));
    evalSec.appendChild(el("div", { cls: "tablewrap" }, ft));
  }
  var plotNames = { roc: "ROC curve", pr: "Precision-recall curve", reliability: "Reliability diagram", histogram: "Score histograms" };
  var plotKeys = Object.keys(D.plots || {});
  if (plotKeys.length) {
    var pl = el("div", { cls: "plots", id: "plots" });
    plotKeys.forEach(function (k) {
      pl.appendChild(el("figure", null, el("img", { src: D.plots[k], alt: plotNames[k] || k }), el("figcaption", { text: plotNames[k] || k })));
    });
    if (!evalSec) evalSec = el("section", { id: "eval" }, el("h2", { text: "Evaluation plots" }));
    evalSec.appendChild(pl);
  }

  /* ---- worklist ------------------------------------------------------------ */
  var filterSel = el("select", { id: "filter", "aria-label": "Show rows" },
    el("option", { value: "all", text: "All rows" }), el("option", { value: "pos", text: "Predicted " + posName }),
    el("option", { value: "neg", text: "Predicted " + negName }), el("option", { value: "err", text: "Errors" }));
  var search = el("input", { id: "search", type: "search", placeholder: "Search path", "aria-label": "Search by path" });
  var sortSel = el("select", { id: "sort", "aria-label": "Sort by" },
    el("option", { value: "p-desc", text: "Probability, highest first" }), el("option", { value: "p-asc", text: "Probability, lowest first" }),
    el("option", { value: "path", text: "Path" }), el("option", { value: "row", text: "Input order" }));
  var count = el("span", { id: "count", cls: "muted", "aria-live": "polite" });
  var toolbar = el("div", { cls: "toolbar", role: "search" },
    el("label", null, "Show ", filterSel), el("label", null, "Sort ", sortSel), search, count,
    el("span", { cls: "muted", text: "Keys: \u2191/\u2193 or j/k move, Enter opens, Esc closes, \u2190/\u2192 previous/next" }));
  function headBtn(text, key) {
    var b = el("button", { type: "button", text: text });
    b.addEventListener("click", function () { sortSel.value = sortSel.value === key ? (key === "p-desc" ? "p-asc" : key) : key; apply(); });
    return b;
  }
  var head = el("div", { cls: "listhead", role: "row" },
    el("span", null, headBtn("#", "row")), el("span", { text: "Overlay" }), el("span", null, headBtn("Path", "path")),
    el("span", { text: "Prediction" }), el("span", null, headBtn("Probability", "p-desc")),
    el("span", { text: "Confidence" }), el("span", { text: "Peak (x, y)" }), el("span", { text: "Box (x0, y0, x1, y1)" }));
  var spacer = el("div", { id: "spacer" });
  var list = el("div", { id: "list", tabindex: "0", role: "listbox", "aria-label": "Worklist" }, spacer);
  var listwrap = el("div", { id: "listwrap" }, head, list);
  var work = el("section", { id: "worklist", "aria-labelledby": "h-work" }, el("h2", { id: "h-work", text: "Worklist" }), toolbar, listwrap);

  var errSec = null;
  if (nErr) {
    var ul = el("ul", { id: "errors" });
    rows.forEach(function (r) {
      if (r.status === "ok") return;
      ul.appendChild(el("li", null, el("code", { text: r.path }), ": ", el("span", { cls: "st-error", text: r.error || "error" })));
    });
    errSec = el("section", { id: "errsec", "aria-labelledby": "h-err" }, el("h2", { id: "h-err", text: "Error rows (" + nErr + ")" }), ul);
  }

  var main = el("main", null, summary, evalSec, work, errSec, el("table", { id: "printlist" }));
  document.body.appendChild(header);
  document.body.appendChild(main);

  var view = [], sel = -1, drawn = {};
  function apply() {
    var f = filterSel.value, q = search.value.toLowerCase(), s = sortSel.value;
    view = rows.filter(function (r) {
      if (f === "err" ? r.status === "ok" : f !== "all" && (r.status !== "ok" || r.pred !== (f === "pos" ? 1 : 0))) return false;
      return !q || r.path.toLowerCase().indexOf(q) >= 0;
    });
    var okFirst = function (a, b) { return (a.status === "ok" ? 0 : 1) - (b.status === "ok" ? 0 : 1); };
    view.sort(function (a, b) {
      if (s === "row") return a.row - b.row;
      if (s === "path") return a.path < b.path ? -1 : a.path > b.path ? 1 : a.row - b.row;
      var e = okFirst(a, b);
      if (e) return e;
      var d = s === "p-asc" ? a.p - b.p : b.p - a.p;
      return d || a.row - b.row;
    });
    count.textContent = view.length + " of " + rows.length + " rows";
    spacer.style.height = view.length * ROW_H + "px";
    sel = view.length ? 0 : -1;
    list.scrollTop = 0;
    redraw(true);
  }
  function rowEl(i) {
    var r = view[i];
    var e = el("div", { cls: "row" + (i === sel ? " sel" : ""), role: "option", id: "r" + i, "aria-selected": i === sel ? "true" : "false", "data-row": r.row });
    e.style.top = i * ROW_H + "px";
    var pic = r.thumb ? el("img", { src: r.thumb, alt: "Grad-CAM overlay of " + r.path, decoding: "async" })
                      : el("div", { cls: "nopic", text: r.status === "ok" ? "no picture" : "error", title: r.nopic || "" });
    e.appendChild(el("span", { cls: "num c-row", text: String(r.row + 1) }));
    e.appendChild(pic);
    e.appendChild(el("span", { cls: "path", title: r.path }, el("span", { text: r.path })));
    if (r.status === "ok") {
      e.appendChild(el("span", { cls: "pred-" + r.pred, text: predName(r) }));
      e.appendChild(el("span", { cls: "num", text: fmt(r.p, 3) }));
      e.appendChild(el("span", { cls: "num c-conf", text: fmt(conf(r), 3) }));
      e.appendChild(el("span", { cls: "num c-peak", text: r.peak ? r.peak.map(int).join(", ") : "n/a" }));
      e.appendChild(el("span", { cls: "num c-box", text: boxText(r.bbox) }));
    } else {
      e.appendChild(el("span", { cls: "errtext st-error", title: r.error || "", text: "error: " + (r.error || "") }));
    }
    e.addEventListener("click", function () { select(i); openView(); });
    return e;
  }
  function redraw(all) {
    var h = list.clientHeight || 600, top = list.scrollTop;
    var a = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN), b = Math.min(view.length, Math.ceil((top + h) / ROW_H) + OVERSCAN);
    if (all) { spacer.textContent = ""; drawn = {}; }
    for (var k in drawn) if (k < a || k >= b) { spacer.removeChild(drawn[k]); delete drawn[k]; }
    for (var i = a; i < b; i++) if (!drawn[i]) { drawn[i] = rowEl(i); spacer.appendChild(drawn[i]); }
    if (sel >= 0) list.setAttribute("aria-activedescendant", "r" + sel); else list.removeAttribute("aria-activedescendant");
  }
  function select(i) {
    if (i < 0 || i >= view.length) return;
    if (drawn[sel]) { drawn[sel].classList.remove("sel"); drawn[sel].setAttribute("aria-selected", "false"); }
    sel = i;
    var top = i * ROW_H;
    if (top < list.scrollTop) list.scrollTop = top;
    else if (top + ROW_H > list.scrollTop + list.clientHeight) list.scrollTop = top + ROW_H - list.clientHeight;
    redraw(false);
    if (drawn[sel]) { drawn[sel].classList.add("sel"); drawn[sel].setAttribute("aria-selected", "true"); }
  }
  var pending = false;
  list.addEventListener("scroll", function () {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () { pending = false; redraw(false); });
  });
  list.addEventListener("keydown", function (ev) {
    var page = Math.max(1, Math.floor(list.clientHeight / ROW_H) - 1), k = ev.key;
    if (k === "ArrowDown" || k === "j") select(sel + 1);
    else if (k === "ArrowUp" || k === "k") select(sel - 1);
    else if (k === "PageDown") select(Math.min(view.length - 1, sel + page));
    else if (k === "PageUp") select(Math.max(0, sel - page));
    else if (k === "Home") select(0);
    else if (k === "End") select(view.length - 1);
    else if (k === "Enter" || k === " ") openView();
    else return;
    ev.preventDefault();
  });
  filterSel.addEventListener("change", apply);
  sortSel.addEventListener("change", apply);
  var typing = null;
  search.addEventListener("input", function () { clearTimeout(typing); typing = setTimeout(apply, 120); });
  window.addEventListener("resize", function () { redraw(false); });

  /* ---- the full-size view ---------------------------------------------------- */
  var vtitle = el("h2", { id: "vtitle" });
  var prev = el("button", { type: "button", id: "vprev", text: "\u2190 Previous" });
  var next = el("button", { type: "button", id: "vnext", text: "Next \u2192" });
  var close = el("button", { type: "button", id: "vclose", text: "Close" });
  var pair = el("div", { cls: "pair", id: "vpair" });
  var vinfo = el("dl", { cls: "kv vinfo", id: "vinfo" });
  var dlg = el("dialog", { id: "viewer", "aria-labelledby": "vtitle" }, el("div", { cls: "vhead" }, vtitle, prev, next, close), pair, vinfo);
  document.body.appendChild(dlg);
  function fill() {
    var r = view[sel];
    vtitle.textContent = r.path;
    pair.textContent = "";
    vinfo.textContent = "";
    function info(k, v) { vinfo.appendChild(el("dt", { text: k })); vinfo.appendChild(el("dd", { text: v })); }
    info("Row", String(r.row + 1) + " of " + rows.length + " (" + (sel + 1) + " of " + view.length + " shown)");
    if (r.status !== "ok") { info("Error", r.error || "error"); return; }
    if (r.overlay) {
      pair.appendChild(el("figure", null, el("img", { id: "vover", src: r.overlay, alt: "Grad-CAM overlay, full size" }), el("figcaption", { text: "Grad-CAM overlay (box in cyan)" })));
      pair.appendChild(el("figure", null, el("img", { id: "vorig", src: r.original, alt: "Original, windowed as the model saw it" }), el("figcaption", { text: "Original (windowed as the model saw it)" })));
    } else if (r.thumb) {
      pair.appendChild(el("figure", null, el("img", { id: "vover", src: r.thumb, alt: "Grad-CAM overlay thumbnail" }),
        el("figcaption", { text: "Thumbnail only: this row's full-size view was not embedded (fxscreen report --views)" })));
    } else {
      pair.appendChild(el("p", { cls: "muted", text: "No picture: " + (r.nopic || "the original could not be read again") }));
    }
    info("Prediction", predName(r));
    info("Probability of " + posName, fmt(r.p, 4));
    info("Confidence", fmt(conf(r), 4));
    info("Peak (x, y)", r.peak ? r.peak.map(int).join(", ") : "n/a");
    info("Box (x0, y0, x1, y1)", boxText(r.bbox));
  }
  function openView() {
    if (sel < 0) return;
    fill();
    if (!dlg.open) dlg.showModal();
    close.focus();
  }
  function step(d) { if (sel + d >= 0 && sel + d < view.length) { select(sel + d); fill(); } }
  prev.addEventListener("click", function () { step(-1); });
  next.addEventListener("click", function () { step(1); });
  close.addEventListener("click", function () { dlg.close(); });
  dlg.addEventListener("close", function () { list.focus(); });
  dlg.addEventListener("keydown", function (ev) {
    if (ev.key === "ArrowLeft" || ev.key === "k") { step(-1); ev.preventDefault(); }
    else if (ev.key === "ArrowRight" || ev.key === "j") { step(1); ev.preventDefault(); }
  });

  /* ---- print: the filtered rows as a plain table (pictures for the first 300) */
  var printlist = document.getElementById("printlist");
  window.addEventListener("beforeprint", function () {
    printlist.textContent = "";
    printlist.appendChild(el("tr", null, el("th", { text: "#" }), el("th", { text: "Overlay" }), el("th", { text: "Path" }),
      el("th", { text: "Prediction" }), el("th", { text: "Probability" }), el("th", { text: "Box" })));
    view.forEach(function (r, i) {
      var pic = r.thumb && i < 300 ? el("img", { src: r.thumb, alt: "" }) : null;
      printlist.appendChild(el("tr", null, el("td", { text: String(r.row + 1) }), el("td", null, pic), el("td", { text: r.path }),
        el("td", { text: r.status === "ok" ? predName(r) : "error: " + (r.error || "") }),
        el("td", { text: r.status === "ok" ? fmt(r.p, 3) : "" }), el("td", { text: r.status === "ok" ? boxText(r.bbox) : "" })));
    });
  });
  window.addEventListener("afterprint", function () { printlist.textContent = ""; });

  apply();
  window.fxReport = { rows: rows.length, shown: function () { return view.length; }, selected: function () { return sel >= 0 ? view[sel].row : -1; } };
})();

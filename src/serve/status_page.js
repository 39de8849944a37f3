// flowprobe /status page: draws the JSON document of the same URL and refreshes it in place.
// Everything from the document goes in through textContent or SVG attributes, never as markup.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const REFRESH_MS = 2000;
  const state = { doc: null, open: {}, label: "", location: "", error: null, updates: 0 };

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") e.textContent = v;
      else if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c) e.append(c);
    return e;
  }
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v;
      else e.setAttribute(k, String(v));
    }
    for (const c of children) if (c) e.append(c);
    return e;
  }
  function ms(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const m = seconds * 1000;
    if (m < 1) return m.toFixed(2) + " ms";
    if (m < 1000) return Math.round(m) + " ms";
    return (seconds).toFixed(2) + " s";
  }
  function pct(r) {
    return r === null || r === undefined ? "–" : (r * 100).toFixed(r === 1 ? 0 : 1) + "%";
  }
  function when(unix) {
    return new Date(unix * 1000).toISOString().replace(".000Z", "Z");
  }
  function quantile(values, q) {
    if (!values.length) return null;
    const s = values.slice().sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor(q * s.length))];
  }
  function location(sc, doc) {
    return (sc.labels && sc.labels.location) || (doc.labels && doc.labels.location) || "";
  }
  function labelPairs(sc, doc) {
    const all = Object.assign({}, doc.labels || {}, sc.labels || {});
    return Object.entries(all).map(([k, v]) => k + "=" + v);
  }

  function header(doc) {
    const inst = Object.entries(doc.labels || {}).map(([k, v]) => k + "=" + v).join(", ");
    const bits = [
      "flowprobe " + doc.version,
      doc.ready ? "ready" : "not ready",
      "started " + doc.started_at,
      doc.shard ? "shard " + doc.shard : "",
      inst,
    ].filter(Boolean);
    const up = el("p", { id: "updated", class: "muted", text: "updated " + doc.generated_at +
      (state.error ? " · refresh failed: " + state.error : "") });
    up.dataset.updates = String(state.updates);
    const reload = doc.last_reload
      ? el("p", { class: doc.last_reload.success ? "" : "bad",
        text: "last reload " + doc.last_reload.at + ": " + (doc.last_reload.success ? "applied" :
          "rejected, the previous scenarios keep running") })
      : null;
    return el("header", {}, el("h1", { text: "flowprobe status" }),
      el("p", { text: bits.join(" · ") }), up, reload);
  }

  function filters(doc) {
    const labels = new Set(), locations = new Set();
    for (const sc of doc.scenarios) {
      labelPairs(sc, doc).forEach((p) => labels.add(p));
      const l = location(sc, doc);
      if (l) locations.add(l);
    }
    const select = (id, title, values, current, set) => {
      const s = el("select", { id, "aria-label": "filter by " + title,
        onchange: (e) => { set(e.target.value); render(); } },
      el("option", { value: "", text: "all " + title + "s" }));
      for (const v of [...values].sort()) s.append(el("option", { value: v, text: v, selected: v === current }));
      return el("label", {}, title + " ", s);
    };
    return el("nav", { class: "filters", "aria-label": "filters" },
      select("filter-label", "label", labels, state.label, (v) => { state.label = v; }),
      select("filter-location", "location", locations, state.location, (v) => { state.location = v; }));
  }

  function visible(sc, doc) {
    if (state.label && !labelPairs(sc, doc).includes(state.label)) return false;
    if (state.location && location(sc, doc) !== state.location) return false;
    return true;
  }

  function verdict(run) {
    return run.success ? "passed" : "failed" + (run.reason ? " (" + run.reason + ")" : "");
  }

  function ticks(sc) {
    const row = el("div", { class: "ticks", role: "list",
      "aria-label": "last " + sc.history.length + " runs of " + sc.name + ", oldest first" });
    for (const run of sc.history) {
      const key = sc.name + "#" + run.seq;
      const label = "run " + run.seq + " " + verdict(run) + " at " + when(run.started_at) + " in " + ms(run.duration);
      row.append(el("button", {
        type: "button", role: "listitem", class: "tick " + (run.success ? "pass" : "fail") + (state.open[sc.name] === key ? " open" : ""),
        "aria-label": label, title: label, "aria-expanded": String(state.open[sc.name] === key),
        "data-seq": String(run.seq), text: run.success ? "" : "!",
        onclick: () => { state.open[sc.name] = state.open[sc.name] === key ? null : key; render(); },
      }));
    }
    if (!sc.history.length) row.append(el("span", { class: "muted", text: "no runs yet" }));
    return row;
  }

  function runDetail(sc) {
    const key = state.open[sc.name];
    const run = key && sc.history.find((r) => sc.name + "#" + r.seq === key);
    if (!run) return null;
    const rows = run.steps.map((s) => el("tr", { class: s.status },
      el("td", { text: s.name }), el("td", { text: s.status }), el("td", { text: s.reason || "" }),
      el("td", { text: ms(s.duration) }), el("td", {}, el("pre", { text: s.message || "" }))));
    return el("section", { class: "run-detail", "aria-label": "run " + run.seq + " of " + sc.name },
      el("h4", { text: "run " + run.seq + ": " + verdict(run) }),
      el("p", { text: "started " + when(run.started_at) + " · took " + ms(run.duration) +
        (run.run_id ? " · run id " + run.run_id : "") + (run.trace_id ? " · trace id " + run.trace_id : "") }),
      run.message ? el("pre", { class: "bad", text: run.message }) : null,
      el("table", {}, el("thead", {}, el("tr", {}, ...["step", "result", "reason", "duration", "message"]
        .map((h) => el("th", { text: h })))), el("tbody", {}, ...rows)));
  }

  function sparklines(sc) {
    const names = [...new Set(sc.history.flatMap((r) => r.steps.map((s) => s.name)))];
    if (!names.length) return null;
    const list = el("div", { class: "sparks" });
    for (const name of names) {
      const vals = sc.history.map((r) => (r.steps.find((s) => s.name === name) || {}).duration)
        .filter((v) => typeof v === "number");
      const p50 = quantile(vals, 0.5), p95 = quantile(vals, 0.95);
      const max = Math.max(...vals, 1e-6), w = 200, h = 30;
      const pts = vals.map((v, i) => (vals.length < 2 ? w : (i * w) / (vals.length - 1)).toFixed(1) + "," +
        (h - 2 - (v / max) * (h - 4)).toFixed(1)).join(" ");
      const text = name + ": p50 " + ms(p50) + " · p95 " + ms(p95) + " · max " + ms(max) + " over " + vals.length + " runs";
      list.append(el("figure", { class: "spark" },
        svg("svg", { viewBox: "0 0 " + w + " " + h, width: w, height: h, role: "img", "aria-label": "latency of " + text },
          svg("title", { text: "latency of " + text }),
          svg("line", { x1: 0, x2: w, y1: h - 2 - (p95 / max) * (h - 4), y2: h - 2 - (p95 / max) * (h - 4), class: "p95" }),
          svg("polyline", { points: pts, class: "line" })),
        el("figcaption", { text })));
    }
    return list;
  }

  function waterfall(title, run, cls) {
    if (!run) return null;
    const total = Math.max(run.steps.reduce((a, s) => a + s.duration, 0), 1e-6);
    const w = 600, rowH = 22, labelW = 0;
    const chart = svg("svg", { viewBox: "0 0 " + w + " " + (run.steps.length * rowH + 2), width: "100%",
      role: "img", "aria-label": title + " waterfall", class: "waterfall-chart" });
    const items = el("ol", { class: "waterfall-steps" });
    let at = 0;
    run.steps.forEach((s, i) => {
      const x = labelW + (at / total) * (w - labelW), bw = Math.max((s.duration / total) * (w - labelW), 1);
      const g = svg("g", { class: "wf-step " + s.status, "data-step": s.name });
      g.append(svg("title", { text: s.name + " " + s.status + " " + ms(s.duration) }));
      g.append(svg("rect", { x, y: i * rowH + 2, width: bw, height: rowH - 6, class: "bar " + s.status }));
      let px = x;
      for (const p of s.phases || []) {
        const pw = (p.duration / total) * (w - labelW);
        g.append(svg("rect", { x: px, y: i * rowH + 6, width: Math.max(pw, 0.5), height: rowH - 14,
          class: "phase phase-" + p.name.replace(/[^a-z0-9_]/gi, "_") }, svg("title", { text: s.name + " / " + p.name + " " + ms(p.duration) })));
        px += pw;
      }
      chart.append(g);
      const phases = (s.phases || []).map((p) => p.name + " " + ms(p.duration)).join(", ");
      items.append(el("li", { class: "wf-item " + s.status, "data-step": s.name,
        text: s.name + " (" + s.kind + "): " + s.status + (s.reason ? " · " + s.reason : "") + " · " + ms(s.duration) +
          " · starts at " + ms(at) + (phases ? " · " + phases : "") + (s.span_id ? " · span " + s.span_id : "") +
          (s.message ? " · " + s.message : "") }));
      at += s.duration;
    });
    return el("section", { class: "waterfall " + cls, "aria-label": title },
      el("h4", { text: title + ": " + verdict(run) + " at " + when(run.started_at) + " in " + ms(run.duration) }),
      run.trace_id ? el("p", { class: "trace", text: "trace id " + run.trace_id }) : null,
      run.message ? el("pre", { class: "bad", text: run.message }) : null, chart, items);
  }

  function scenario(sc, doc) {
    const last = sc.last_run;
    const status = !last ? "never run" : last.success ? "passed" : "failed";
    const u = sc.uptime;
    return el("section", { class: "scenario", id: "sc-" + sc.name, "data-scenario": sc.name },
      el("h2", {}, el("span", { class: "badge " + status.replace(" ", "-"), text: status }), " " + sc.name + (sc.running ? " (running)" : "")),
      el("p", { class: "muted", text: sc.file + " · every " + sc.interval_seconds + " s · " +
        labelPairs(sc, doc).join(", ") + " · runs " + sc.runs.success + " ok / " + sc.runs.failure + " failed / " + sc.runs.skipped + " skipped" }),
      el("p", { class: "uptime", text: "uptime " + pct(u.window) + " over the last " + u.window_runs + " runs · " +
        pct(u.last_hour) + " in the last hour (" + u.last_hour_runs + " runs)" }),
      ticks(sc), runDetail(sc), sparklines(sc),
      el("div", { class: "waterfalls" }, waterfall("last run", last, "last-run"),
        waterfall("last failure", sc.last_failure, "last-failure")));
  }

  function render() {
    const doc = state.doc;
    if (!doc) return;
    const app = document.getElementById("app");
    const shown = doc.scenarios.filter((sc) => visible(sc, doc));
    const body = [header(doc), filters(doc),
      el("p", { class: "muted", id: "shown", text: shown.length + " of " + doc.scenarios.length + " scenarios" }),
      ...shown.map((sc) => scenario(sc, doc))];
    app.replaceChildren(...body);
    app.hidden = false;
    const st = document.getElementById("static");
    if (st) st.hidden = true;
  }

  async function refresh() {
    try {
      const r = await fetch(window.location.pathname, { headers: { Accept: "application/json" }, cache: "no-store" });
      if (!r.ok) throw new Error("HTTP " + r.status);
      state.doc = await r.json();
      state.updates += 1;
      state.error = null;
    } catch (e) {
      state.error = String(e && e.message ? e.message : e);
    }
    render();
    setTimeout(refresh, REFRESH_MS);
  }

  document.addEventListener("DOMContentLoaded", refresh);
})();

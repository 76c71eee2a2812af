// The dashboard's script. Served from /dashboard/app.js because the page's Content-Security-Policy
// allows no inline script. Every value from the API is inserted as text (textContent), never
// as HTML. The admin's session is an HttpOnly, SameSite=Strict cookie set by POST
// /dashboard/session: no token is ever in a URL or readable by this script.
"use strict";
const WINDOW = 300;                        // points kept: 5 minutes at one frame a second
const COLORS = { graph: "#2563eb", cache: "#dc2626", timeseries: "#16a34a" };
const state = { source: null, history: {} };
window.campusDashboard = state;            // read by the end-to-end test

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function keyValueRows(tbody, rows) {
  tbody.replaceChildren(...rows.map(([k, v]) => {
    const tr = el("tr");
    tr.append(el("th", k));
    const td = el("td");
    td.append(...(Array.isArray(v) ? v : [document.createTextNode(String(v ?? "—"))]));
    tr.append(td);
    return tr;
  }));
}

function lineChart(id, label) {
  return new Chart(document.getElementById(id), {
    type: "line",
    data: { labels: [], datasets: [] },
    options: { animation: false, responsive: true, scales: { y: { beginAtZero: true, title: { display: true, text: label } } },
               elements: { point: { radius: 0 } } },
  });
}
const lagChart = lineChart("lagChart", "records");
const staleChart = lineChart("staleChart", "seconds");
const analyticsChart = new Chart(document.getElementById("analyticsChart"), {
  type: "bar", data: { labels: [], datasets: [{ label: "events", data: [], backgroundColor: "#6366f1" }] },
  options: { animation: false, scales: { y: { beginAtZero: true } } },
});

function push(chart, name, t, value) {
  let ds = chart.data.datasets.find((d) => d.label === name);
  if (!ds) {
    ds = { label: name, data: [], borderColor: COLORS[name] || "#555", tension: 0.2 };
    chart.data.datasets.push(ds);
  }
  ds.data.push({ x: t, y: value });
  if (ds.data.length > WINDOW) ds.data.shift();
}

function render(frame) {
  const t = new Date(frame.t * 1000).toLocaleTimeString();
  lagChart.data.labels.push(t); staleChart.data.labels.push(t);
  if (lagChart.data.labels.length > WINDOW) { lagChart.data.labels.shift(); staleChart.data.labels.shift(); }
  const rows = [];
  for (const p of frame.projections) {
    const lag = p.total_lag ?? 0;
    (state.history[p.name] ||= []).push(lag);
    if (state.history[p.name].length > WINDOW) state.history[p.name].shift();
    push(lagChart, p.name, t, lag);
    push(staleChart, p.name, t, p.staleness_s ?? 0);
    const tr = el("tr");
    tr.dataset.projection = p.name; tr.dataset.lag = lag;
    const action = p.state === "paused" ? "resume" : "pause";
    const stateClass = ["paused", "running"].includes(p.state) ? p.state : "bad";
    tr.append(el("td", p.name), el("td", p.service), el("td", p.state, stateClass), el("td", lag, "lag"),
              el("td", p.time_lag_s ?? "—"), el("td", p.staleness_s ?? "—"));
    const button = el("button", action);
    button.dataset.name = p.name; button.dataset.action = action;
    const cell = el("td"); cell.append(button); tr.append(cell);
    rows.push(tr);
  }
  document.querySelector("#projections tbody").replaceChildren(...rows);
  lagChart.update(); staleChart.update();
  const slow = [];
  for (const p of frame.projections) {
    for (const w of p.slowest_writes || []) {
      const tr = el("tr");
      tr.dataset.projection = p.name;
      const link = el("a", String(w.trace_id).slice(0, 12) + "…");
      link.href = `${frame.zipkin_url}/traces/${encodeURIComponent(w.trace_id)}`;
      link.target = "_blank"; link.rel = "noopener";
      const cell = el("td"); cell.append(link);
      tr.append(el("td", p.name), el("td", w.topic), el("td", w.key), el("td", w.in_kafka_s), cell);
      slow.push(tr);
    }
  }
  if (!slow.length) {
    const td = el("td", "no traced writes yet", "muted"); td.colSpan = 5;
    const tr = el("tr"); tr.append(td); slow.push(tr);
  }
  document.querySelector("#slowest tbody").replaceChildren(...slow);
  const c = frame.connector;
  const cdc = [["connector " + c.name, [el("span", c.state, c.state === "RUNNING" ? "running" : "bad"),
                                        document.createTextNode(" tasks: " + (c.tasks || []).join(", "))]]];
  for (const s of frame.slots) {
    cdc.push(["slot " + s.slot_name, [el("span", s.active ? "active" : "inactive", s.active ? "" : "bad"),
                                       document.createTextNode(`, lag ${s.lag_bytes} B, WAL retained ${s.retained_bytes} B`)]]);
  }
  keyValueRows(document.querySelector("#cdc tbody"), cdc);
}

document.querySelector("#projections").addEventListener("click", async (ev) => {
  const btn = ev.target.closest("button");
  if (!btn) return;
  const name = encodeURIComponent(btn.dataset.name), action = encodeURIComponent(btn.dataset.action);
  await fetch(`/dashboard/data/consumers/${name}/${action}`, { method: "POST", credentials: "same-origin" });
});

function connect() {
  if (state.source) state.source.close();
  state.source = new EventSource("/dashboard/stream");
  state.source.onmessage = (ev) => { document.getElementById("status").textContent = "live"; render(JSON.parse(ev.data)); };
  state.source.onerror = () => {
    // A refused stream (401/403: not signed in) closes for good; a dropped one reconnects.
    const closed = state.source.readyState === EventSource.CLOSED;
    document.getElementById("status").textContent = closed ? "signed out" : "reconnecting…";
  };
}

document.getElementById("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new URLSearchParams({ username: document.getElementById("email").value,
                                     password: document.getElementById("password").value });
  const r = await fetch("/dashboard/session", { method: "POST", body: form, credentials: "same-origin" });
  if (!r.ok) { document.getElementById("status").textContent = "sign-in failed"; return; }
  connect();
  refreshGraph(); refreshCache();
});

let network = null;
async function refreshGraph() {
  try {
    const r = await fetch("/dashboard/data/graph?limit=80", { credentials: "same-origin" });
    if (!r.ok) return;
    const g = await r.json();
    // A fresh stack holds only the admin account: no group, at most one user. Say what to run.
    const groups = g.nodes.filter((n) => n.kind === "group").length;
    document.getElementById("emptyState").hidden = groups > 0 || g.nodes.length > 1;
    // vis-network renders labels on a canvas as text, not HTML.
    const nodes = g.nodes.map((n) => ({ id: n.id, label: String(n.label || n.id),
      shape: n.kind === "group" ? "box" : "dot", color: n.kind === "group" ? "#fde68a" : "#bfdbfe" }));
    const edges = g.edges.map((e) => ({ from: e.source, to: e.target, label: e.type, arrows: e.type === "FOLLOWS" ? "to" : "",
      color: { color: e.type === "FRIEND" ? "#2563eb" : e.type === "FOLLOWS" ? "#9333ea" : "#ca8a04" }, font: { size: 8 } }));
    const data = { nodes: new vis.DataSet(nodes), edges: new vis.DataSet(edges) };
    if (!network) network = new vis.Network(document.getElementById("graph"), data, { physics: { stabilization: { iterations: 80 } } });
    else network.setData(data);
  } catch (e) { /* the graph service may be down: the next refresh tries again */ }
}

async function refreshAnalytics() {
  try {
    const a = await (await fetch("/analytics")).json();
    const buckets = a.last_hour || [];
    analyticsChart.data.labels = buckets.map((b) => new Date(b.bucket || b.time).toLocaleTimeString());
    analyticsChart.data.datasets[0].data = buckets.map((b) => b.events);
    analyticsChart.update();
    document.getElementById("analyticsSummary").textContent =
      `total ${a.total_events} events; storage: ${a.storage}; newest: ${a.newest_event_at ?? "—"}`;
  } catch (e) { /* time-series service down */ }
}

async function refreshCache() {
  try {
    const r = await fetch("/dashboard/data/cache-status", { credentials: "same-origin" });
    if (!r.ok) return;
    const c = await r.json();
    const redis = c.redis || {};
    const prefixes = (redis.keys && redis.keys.by_prefix) || {};
    keyValueRows(document.querySelector("#cache tbody"), [
      ["redis", redis.status], ["hit ratio", redis.hit_ratio], ["hits / misses", `${redis.hits} / ${redis.misses}`],
      ["memory", redis.memory ? redis.memory.used_human : "—"],
      ["keys per prefix", Object.entries(prefixes).map(([k, v]) => `${k}: ${v}`).join(", ")],
      ["cache projection lag", c.projection ? c.projection.total_lag : "—"]]);
  } catch (e) { /* Redis down */ }
}

connect();
refreshGraph(); refreshAnalytics(); refreshCache();
setInterval(refreshGraph, 10000); setInterval(refreshAnalytics, 5000); setInterval(refreshCache, 5000);

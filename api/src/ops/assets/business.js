// Mingus Jobs business page: reads /ops/business/metrics once (the facts change nightly) and draws
// SVG charts with plain DOM calls (text only: never innerHTML with data).
"use strict";
// el() and niceCeiling() come from dom.js, loaded first.

const NS = "http://www.w3.org/2000/svg";
const MOVES = [["new", "New"], ["expansion", "Expansion"], ["reactivation", "Reactivation"],
  ["contraction", "Contraction"], ["churn", "Churn"]];
const TIERS = [["essentials", "Essentials"], ["professional", "Professional"], ["executive", "Executive"]];

function svg(tag, attrs, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

const money = (n, currency) => new Intl.NumberFormat(undefined, { style: "currency", currency, maximumFractionDigits: 0 }).format(n);
const pct = (x) => (x === null || x === undefined ? "—" : `${(x * 100).toFixed(1)}%`);
const month = (d) => d.slice(0, 7);

// A frame with a y axis from `min` to `max`; returns the root and a y() mapping.
function frame(min, max, format) {
  const width = 640, height = 180, left = 56, bottom = 22, top = 8;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none" });
  const plotH = height - bottom - top;
  const y = (v) => top + plotH * (1 - (v - min) / (max - min));
  for (const v of min < 0 ? [min, 0, max] : [0, max / 2, max]) {
    root.append(svg("line", { x1: left, x2: width, y1: y(v), y2: y(v), class: "grid" }));
    root.append(svg("text", { x: left - 6, y: y(v) + 3, "text-anchor": "end", class: "axis" }, format(v)));
  }
  return { root, y, left, width, height };
}

function xLabels(f, labels) {
  if (!labels.length) return;
  const slot = (f.width - f.left) / labels.length;
  const picks = labels.length > 1 ? [0, labels.length - 1] : [0];
  for (const i of picks) {
    f.root.append(svg("text", { x: f.left + i * slot + slot / 2, y: f.height - 4,
      "text-anchor": i === 0 ? "start" : "end", class: "axis" }, labels[i]));
  }
}

function legend(id, series) {
  const box = document.getElementById(id);
  box.replaceChildren(...series.map(([key, label]) => {
    const swatch = svg("svg", { width: 10, height: 10, class: "swatch" });
    swatch.append(svg("rect", { width: 10, height: 10, class: `s-${key}` }));
    return el("span", {}, swatch, ` ${label}`);
  }));
}

function mrrChart(data) {
  const days = data.daily;
  const f = frame(0, niceCeiling(Math.max(1, ...days.map((d) => d.mrr))), (v) => money(v, data.currency));
  const slot = (f.width - f.left) / Math.max(1, days.length);
  const points = days.map((d, i) => `${f.left + i * slot + slot / 2},${f.y(d.mrr)}`).join(" ");
  const line = svg("polyline", { points, class: "line" });
  line.append(svg("title", {}, `MRR ${days.length ? money(days[days.length - 1].mrr, data.currency) : ""}`));
  f.root.append(line);
  xLabels(f, days.map((d) => d.day));
  document.getElementById("mrr-chart").replaceChildren(f.root);
}

// Stacked bars: positive series up from 0, negative ones down.
function stackedBars(id, rows, series, label, format) {
  const up = rows.map((r) => series.filter(([k]) => r[k] > 0).reduce((s, [k]) => s + r[k], 0));
  const down = rows.map((r) => series.filter(([k]) => r[k] < 0).reduce((s, [k]) => s + r[k], 0));
  const max = niceCeiling(Math.max(1, ...up));
  const min = Math.min(...down, 0) < 0 ? -niceCeiling(-Math.min(...down)) : 0;
  const f = frame(min, max, format);
  const slot = (f.width - f.left) / Math.max(1, rows.length);
  rows.forEach((r, i) => {
    let pos = 0, neg = 0;
    const x = f.left + i * slot + 1, w = Math.max(1, slot - 2);
    for (const [key, name] of series) {
      const v = r[key];
      if (!v) continue;
      const from = v > 0 ? pos : neg, to = from + v;
      if (v > 0) pos = to; else neg = to;
      const bar = svg("rect", { x, y: Math.min(f.y(from), f.y(to)), width: w,
        height: Math.abs(f.y(from) - f.y(to)), class: `s-${key}`, "data-series": key });
      bar.append(svg("title", {}, `${label(r)} · ${name}: ${format(v)}`));
      f.root.append(bar);
    }
  });
  xLabels(f, rows.map(label));
  document.getElementById(id).replaceChildren(f.root);
}

function cards(data) {
  const t = data.targets;
  const target = (key, name) => {
    const m = t[key];
    const status = m.met === null ? "" : m.met ? "pass" : "fail";
    return el("div", { class: `card ${status}`, "data-metric": key, title: m.definition },
      el("span", { class: "label" }, name),
      el("span", { class: "value" }, pct(m.value)),
      el("span", { class: "target" }, `target ${pct(m.target)} · ${m.met === null ? "no data" : m.met ? "PASS" : "FAIL"}`));
  };
  document.getElementById("targets").replaceChildren(
    target("conversion", "Trial → paid conversion (30 days)"),
    target("revenue_growth", "Revenue growth (month over month)"),
    target("retention", "Monthly retention (30 days)"));
  const others = data.currencies.map((c) => `${money(c.mrr, c.currency)} MRR`).join(", ");
  document.getElementById("headline").replaceChildren(
    el("div", { class: "card" }, el("span", { class: "label" }, "MRR"), el("span", { class: "value", id: "mrr" }, money(data.mrr, data.currency))),
    el("div", { class: "card" }, el("span", { class: "label" }, "ARR"), el("span", { class: "value" }, money(data.arr, data.currency))),
    el("div", { class: "card" }, el("span", { class: "label" }, "Paying customers"), el("span", { class: "value" }, data.customers)),
    el("div", { class: "card" }, el("span", { class: "label" }, "Other currencies (not converted)"), el("span", { class: "target" }, others || "none")));
}

function monthsTable(data) {
  const rows = data.months.slice().reverse().map((m) => el("tr", {},
    el("td", {}, month(m.month)),
    ...[m.mrr_start, m.new, m.expansion, m.reactivated, m.contraction, m.churned, m.mrr_end]
      .map((v) => el("td", { class: "num" }, money(v, data.currency))),
    el("td", { class: "num" }, pct(m.logo_churn)),
    el("td", { class: "num" }, pct(m.revenue_churn)),
    el("td", { class: "num" }, `${money(m.refunds, data.currency)} (${m.refund_count})`),
    el("td", { class: "num" }, m.failed_invoices),
    el("td", { class: "num" }, `${m.recovered_invoices} (${pct(m.recovery_rate)})`)));
  document.querySelector("#months tbody").replaceChildren(...rows);
}

function cohortGrid(data) {
  const width = Math.max(0, ...data.cohorts.map((c) => c.retained.length));
  const head = el("tr", {}, el("th", {}, "Cohort"), el("th", { class: "num" }, "Customers"),
    ...Array.from({ length: width }, (_, k) => el("th", { class: "num" }, `M${k}`)));
  document.querySelector("#cohorts thead").replaceChildren(head);
  const rows = data.cohorts.slice().reverse().map((c) => el("tr", { "data-cohort": c.cohort },
    el("td", {}, month(c.cohort)), el("td", { class: "num" }, c.customers),
    ...c.retained.map((r) => {
      const share = c.customers ? r / c.customers : 0;
      const cell = el("td", { class: "cell", title: `${r} of ${c.customers}` }, pct(share));
      cell.style.background = `rgba(59, 91, 219, ${(0.08 + share * 0.6).toFixed(2)})`;
      return cell;
    })));
  document.querySelector("#cohorts tbody").replaceChildren(...rows);
}

function render(data) {
  document.getElementById("as-of").textContent = data.as_of ? `as of ${data.as_of} (UTC)` : "";
  document.getElementById("no-data").hidden = Boolean(data.as_of);
  const select = document.getElementById("currency");
  const codes = [data.currency, ...data.currencies.map((c) => c.currency)];
  if (select.options.length !== codes.length) {
    select.replaceChildren(...codes.map((c) => el("option", { value: c, selected: c === data.currency }, c)));
  }
  cards(data);
  mrrChart(data);
  const moves = data.months.map((m) => ({ month: month(m.month), new: m.new, expansion: m.expansion,
    reactivation: m.reactivated, contraction: -m.contraction, churn: -m.churned }));
  stackedBars("moves-chart", moves, MOVES, (r) => r.month, (v) => money(v, data.currency));
  legend("moves-legend", MOVES);
  stackedBars("tiers-chart", data.tiers, TIERS, (r) => r.day, (v) => String(Math.round(v)));
  legend("tiers-legend", TIERS);
  const conversion = data.months.map((m) => ({ month: month(m.month), conversion: (m.trial_conversion ?? 0) * 100 }));
  stackedBars("conversion-chart", conversion, [["conversion", "Converted"]], (r) => r.month, (v) => `${v.toFixed(0)}%`);
  monthsTable(data);
  cohortGrid(data);
  document.body.dataset.loaded = "true";
}

async function load() {
  const currency = document.getElementById("currency").value || "USD";
  const response = await fetch(`/ops/business/metrics?currency=${encodeURIComponent(currency)}`,
    { credentials: "same-origin", headers: { accept: "application/json" } });
  if (response.status === 401) { window.location.assign("/ops"); return; }
  const data = await response.json();
  if (!response.ok) throw new Error((data.error && data.error.message) || response.statusText);
  render(data);
}

function start() {
  const fail = (err) => {
    const box = document.getElementById("load-error");
    box.textContent = `Could not load the figures: ${err.message}`;
    box.hidden = false;
  };
  document.getElementById("currency").addEventListener("change", () => load().catch(fail));
  load().catch(fail);
}

document.addEventListener("DOMContentLoaded", start);

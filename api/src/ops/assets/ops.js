// Mingus Jobs operator dashboard: polls the /ops JSON routes every 2 s and renders them with plain DOM
// calls (text only: never innerHTML with data). Changes send the x-mingus-ops header the server requires
// of cookie sessions.
"use strict";
// el() and niceCeiling() come from dom.js, loaded first.

const POLL_MS = 2000;
// The database panel reads catalog statistics: every 10 s is plenty.
const DB_POLL_MS = 10000;
const state = { detail: null, event: null, eventPending: false, search: { q: "", status: "" }, schedules: true };
// The Stripe events that need an operator, and those a replay leaves alone unless forced (API only).
const STRIPE_EVENTS_PATH = "/ops/stripe-events?status=failed,unparseable,quarantined&per_page=25";
const PROTECTED = ["unparseable", "quarantined"];
const EVENT_STATUSES = ["received", "processed", "ignored", "failed", "unparseable", "quarantined"];

async function api(method, path, body) {
  const options = { method, credentials: "same-origin", headers: { "x-mingus-ops": "1", "accept": "application/json" } };
  if (body !== undefined) {
    options.headers["content-type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (response.status === 401) { window.location.reload(); throw new Error("signed out"); }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error((data.error && data.error.message) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return data;
}

function fmtNumber(n) { return (n ?? 0).toLocaleString("en-US", { maximumFractionDigits: 1 }); }
function fmtAge(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}
function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}
function fmtMs(ms) { return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`; }
// Job ids are UUIDv7: the first digits are a timestamp, the last ones tell jobs apart.
function short(id) { return "…" + String(id).slice(-8); }
function pill(text) { return el("span", { class: `pill ${text}` }, text); }
function jobLink(id) { return el("a", { class: "job", href: `#job=${id}`, "data-action": "open-job", "data-job-id": id, title: id }, short(id)); }
function eventLink(id) {
  const text = id.length > 28 ? `${id.slice(0, 24)}…` : id;
  return el("a", { class: "job", href: "#event", "data-action": "open-event", "data-event-id": id, title: id }, text);
}
function fill(tbody, rows, emptyId) {
  tbody.replaceChildren(...rows);
  if (emptyId) document.getElementById(emptyId).hidden = rows.length > 0;
}

function flash(message, bad) {
  const box = document.getElementById("flash");
  box.textContent = message;
  box.className = bad ? "flash bad" : "flash";
  box.hidden = false;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { box.hidden = true; }, 5000);
}

function renderQueues(data) {
  const totals = { waiting: 0, delayed: 0, in_flight: 0, dead: 0, per_minute: 0, processed: 0, failed: 0 };
  const rows = data.queues.map((q) => {
    for (const key of ["waiting", "delayed", "in_flight", "dead"]) totals[key] += q[key];
    totals.per_minute += q.last_5m.per_minute;
    totals.processed += q.last_5m.processed;
    totals.failed += q.last_5m.failed;
    const action = q.paused ? "resume" : "pause";
    return el("tr", { "data-queue": q.queue },
      el("td", { class: "name" }, q.queue),
      el("td", {}, pill(q.paused ? "paused" : "running")),
      el("td", { class: "num" }, fmtNumber(q.waiting)),
      el("td", { class: "num" }, fmtNumber(q.delayed)),
      el("td", { class: "num" }, fmtNumber(q.in_flight)),
      el("td", { class: q.dead > 0 ? "num bad" : "num" }, fmtNumber(q.dead)),
      el("td", { class: "num" }, fmtAge(q.oldest_waiting_age_secs)),
      el("td", { class: "num" }, fmtNumber(q.last_5m.per_minute)),
      el("td", { class: "num" }, `${(q.last_5m.failure_rate * 100).toFixed(1)}%`),
      el("td", { class: "num" }, fmtNumber(q.workers)),
      el("td", {}, el("button", { type: "button", class: "small", "data-action": action, "data-queue": q.queue },
        q.paused ? "Resume" : "Pause")));
  });
  fill(document.querySelector("#queues tbody"), rows);
  for (const key of ["waiting", "delayed", "in_flight", "dead"]) {
    document.getElementById(`total-${key}`).textContent = fmtNumber(totals[key]);
  }
  document.getElementById("total-per_minute").textContent = totals.per_minute.toFixed(1);
  const rate = totals.processed ? (totals.failed / totals.processed) * 100 : 0;
  document.getElementById("total-failure_rate").textContent = `${rate.toFixed(1)}%`;
}

function renderChart(stats) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  };
  const width = 720, height = 160, left = 36, bottom = 18, top = 8;
  const minutes = stats.minutes;
  const max = niceCeiling(Math.max(1, ...minutes.map((m) => m.succeeded + m.failed)));
  const plotH = height - bottom - top, slot = (width - left) / minutes.length;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none" });
  for (const frac of [0, 0.5, 1]) {
    const y = top + plotH * (1 - frac);
    root.append(svg("line", { x1: left, x2: width, y1: y, y2: y, class: "grid" }));
    const label = svg("text", { x: left - 6, y: y + 3, "text-anchor": "end", class: "axis" });
    label.textContent = fmtNumber(max * frac);
    root.append(label);
  }
  minutes.forEach((m, i) => {
    const x = left + i * slot + 1, w = Math.max(1, slot - 2);
    const okH = (m.succeeded / max) * plotH, failH = (m.failed / max) * plotH;
    const title = svg("title", {});
    title.textContent = `${new Date(m.at).toLocaleTimeString()}: ${m.succeeded} succeeded, ${m.failed} failed`;
    const bar = svg("rect", { x, y: top + plotH - okH, width: w, height: okH, class: "ok" });
    bar.append(title);
    root.append(bar, svg("rect", { x, y: top + plotH - okH - failH, width: w, height: failH, class: "fail" }));
  });
  for (const [i, text] of [[0, "−60 min"], [30, "−30 min"], [59, "now"]]) {
    const label = svg("text", { x: left + i * slot + slot / 2, y: height - 4, "text-anchor": i === 59 ? "end" : "middle", class: "axis" });
    label.textContent = text;
    root.append(label);
  }
  document.getElementById("chart").replaceChildren(root);
}

function renderDead(data) {
  const rows = data.items.map((d) => el("tr", { "data-job-id": d.job_id },
    el("td", {}, jobLink(d.job_id)),
    el("td", {}, d.queue),
    el("td", { class: "mono" }, d.kind),
    el("td", { class: "num" }, `${d.attempts}/${d.max_attempts}`),
    el("td", { class: "error" }, d.last_error),
    el("td", {}, fmtTime(d.died_at)),
    el("td", {}, el("div", { class: "actions" },
      el("button", { type: "button", class: "small", "data-action": "retry", "data-job-id": d.job_id }, "Retry"),
      el("button", { type: "button", class: "small danger", "data-action": "delete", "data-job-id": d.job_id }, "Delete")))));
  fill(document.querySelector("#dead tbody"), rows, "dead-empty");
  document.getElementById("retry-all").disabled = rows.length === 0;
}

function renderRuns(data) {
  const rows = data.items.map((r) => el("tr", {},
    el("td", {}, fmtTime(r.finished_at)),
    el("td", {}, jobLink(r.job_id)),
    el("td", {}, r.queue),
    el("td", { class: "mono" }, r.kind),
    el("td", { class: "num" }, r.attempt),
    el("td", {}, pill(r.status)),
    el("td", { class: "num" }, fmtMs(r.duration_ms)),
    r.error ? el("td", { class: "error" }, r.error) : el("td", { class: "args mono" }, r.args_summary)));
  fill(document.querySelector("#runs tbody"), rows);
}

function renderWorkers(data) {
  const rows = data.workers.map((w) => el("tr", {},
    el("td", { class: "mono", title: w.name }, w.host ? `${w.host}:${w.pid}` : w.name),
    el("td", {}, w.queue),
    el("td", { class: "num" }, w.busy),
    el("td", { class: "num" }, fmtAge(w.heartbeat_age_secs)),
    el("td", {}, pill(w.stale ? "stale" : "live"))));
  fill(document.querySelector("#workers tbody"), rows, "workers-empty");
}

function renderSchedules(data) {
  const rows = (data.schedules || []).map((s) => {
    const last = s.last_run;
    const lastCell = last
      ? el("td", {}, fmtTime(last.created_at), " ", pill(last.outcome), last.manual ? " manual" : "")
      : el("td", { class: "muted" }, "never");
    return el("tr", { "data-schedule": s.name },
      el("td", { class: "name" }, s.name, s.enabled ? "" : " ", s.enabled ? "" : pill("disabled")),
      el("td", { class: "mono", title: `runs ${s.job_kind} on ${s.queue}` }, `${s.expression} (${s.time_zone})`),
      lastCell,
      el("td", {}, s.next_tick ? fmtTime(s.next_tick.at) : "—"),
      el("td", {}, el("button", { type: "button", class: "small ghost", "data-action": "run-schedule", "data-schedule": s.name }, "Run now")));
  });
  fill(document.querySelector("#schedules tbody"), rows, "schedules-empty");
}

function fmtBytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0, v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

function renderDb(db) {
  const states = db.connections.by_state.map((s) => `${s.state} ${s.count}`).join(", ") || "none";
  const ratio = db.cache_hit_ratio === null ? "—" : `${(db.cache_hit_ratio * 100).toFixed(2)}%`;
  const facts = [["Database", `${db.database.name} (PostgreSQL ${db.database.server_version})`],
    ["Connections", `${states} · server ${db.connections.server_total}/${db.connections.max_connections}`],
    ["This API's pool", `${db.pool.size} open, ${db.pool.idle} idle, max ${db.pool.max}`],
    ["Cache hit ratio", ratio]];
  document.getElementById("db-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  fill(document.querySelector("#db-tables tbody"), db.tables.slice(0, 12).map((t) => el("tr", {},
    el("td", { class: "mono" }, t.table, t.partitioned ? " " : "", t.partitioned ? pill("partitioned") : ""),
    el("td", { class: "num" }, fmtBytes(t.total_bytes)),
    el("td", { class: "num" }, fmtBytes(t.index_bytes)),
    el("td", { class: "num" }, fmtNumber(t.rows_estimate)))));
  fill(document.querySelector("#db-partitions tbody"), db.partitions.map((p) => el("tr", {},
    el("td", { class: "mono" }, p.partition),
    el("td", { class: "mono" }, p.default ? "DEFAULT" : p.bounds.replace("FOR VALUES ", "")),
    el("td", { class: p.default && p.rows > 0 ? "num bad" : "num", title: p.rows_exact ? "exact" : "estimate" },
      p.default && !p.rows_exact ? `${fmtNumber(p.rows)}+` : fmtNumber(p.rows)),
    el("td", { class: "num" }, fmtBytes(p.bytes)))));
  const waits = db.long_running_transactions.map((t) => el("tr", {},
    el("td", { class: "num" }, t.pid), el("td", {}, pill("transaction")), el("td", { class: "num" }, fmtAge(t.age_secs)),
    el("td", {}, [t.state, t.application, t.wait_event].filter(Boolean).join(" · ")),
    el("td", { class: "mono args" }, t.query || ""))).concat(db.waiting_locks.map((l) => el("tr", {},
    el("td", { class: "num" }, l.pid), el("td", {}, pill("waiting")), el("td", { class: "num" }, fmtAge(l.waiting_secs)),
    el("td", {}, `${l.mode} on ${l.relation || l.lock_type}${l.blocked_by.length ? `, blocked by ${l.blocked_by.join(", ")}` : ""}`),
    el("td", { class: "mono args" }, l.query || ""))));
  fill(document.querySelector("#db-waits tbody"), waits, "db-waits-empty");
  const statements = db.slow_statements;
  const note = document.getElementById("db-statements-unavailable");
  note.hidden = statements.available;
  note.textContent = statements.available ? "" : `Unavailable: ${statements.reason}`;
  document.getElementById("db-statements").hidden = !statements.available;
  fill(document.querySelector("#db-statements tbody"), statements.items.map((s) => el("tr", {},
    el("td", { class: "mono args", title: s.query || "" }, s.query || ""),
    el("td", { class: "num" }, fmtNumber(s.calls)),
    el("td", { class: "num" }, fmtMs(s.mean_ms)),
    el("td", { class: "num" }, fmtMs(s.total_ms)),
    el("td", { class: "num" }, fmtNumber(s.rows)))));
  document.getElementById("db-updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

function renderDetail(job) {
  const panel = document.getElementById("job-detail");
  document.getElementById("job-title").textContent = `Job ${job.job_id}`;
  const facts = [["State", pill(job.state)], ["Queue", job.queue], ["Kind", job.kind], ["Generation", job.generation ?? 0],
    ["Summary", job.summary || "—"]];
  if (job.dead_letter) {
    const life = job.dead_letter.generation;
    facts.push([`Died (generation ${life})`, fmtTime(job.dead_letter.died_at)], ["Last error", job.dead_letter.last_error]);
    if (job.dead_letter.retried_at) facts.push(["Retried", fmtTime(job.dead_letter.retried_at)]);
  }
  if (job.outbox) facts.push(["Outbox", job.outbox.outcome || (job.outbox.completed_at ? "completed" : "open")]);
  document.getElementById("job-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  document.getElementById("job-args").textContent = job.args === null ? "(not kept)" : JSON.stringify(job.args, null, 2);
  const rows = job.attempts.map((a) => el("tr", {},
    el("td", { class: "num" }, a.generation ?? 0),
    el("td", { class: "num" }, a.attempt),
    el("td", {}, pill(a.status)),
    el("td", {}, fmtTime(a.started_at)),
    el("td", { class: "num" }, fmtMs(a.duration_ms)),
    el("td", { class: "mono" }, a.worker),
    el("td", { class: "error" }, a.error || "")));
  fill(document.querySelector("#job-attempts tbody"), rows);
  const actions = panel.querySelector(".panel-head");
  actions.querySelectorAll("[data-action=retry]").forEach((b) => b.remove());
  if (job.state === "dead") {
    actions.insertBefore(el("button", { type: "button", class: "small", "data-action": "retry", "data-job-id": job.job_id }, "Retry"),
      actions.lastElementChild);
  }
  panel.hidden = false;
}

function renderStripe(data) {
  const counts = EVENT_STATUSES.map((status) => [status, data.counts[status] ?? 0]).map(([status, n]) =>
    el("span", { class: "count", "data-status": status },
      pill(status), " ", el("b", {}, n >= data.counts_capped_at ? `${fmtNumber(n)}+` : fmtNumber(n))));
  document.getElementById("stripe-counts").replaceChildren(...counts);
  const rows = data.items.map((e) => {
    const locked = PROTECTED.includes(e.status);
    const why = `${e.status} events are replayed only through the API with {"force": true}: processing would refuse them again`;
    return el("tr", { "data-event-id": e.id },
      el("td", {}, fmtTime(e.received_at)),
      el("td", {}, eventLink(e.id)),
      el("td", { class: "mono" }, e.type || "—"),
      el("td", {}, pill(e.status)),
      el("td", { class: "num" }, e.attempts),
      el("td", { class: "error" }, e.last_error || ""),
      el("td", {}, el("button", { type: "button", class: "small", "data-action": "replay-event", "data-event-id": e.id,
        disabled: locked, title: locked ? why : "Process this event again" }, "Replay")));
  });
  fill(document.querySelector("#stripe-events tbody"), rows, "stripe-empty");
  document.getElementById("replay-failed").disabled = !data.counts.failed;
  renderDrift(data.drift || []);
}

// The nightly drift reports (local, and against Stripe's API when a key is configured): 0 expected.
function renderDrift(reports) {
  const parts = reports.map((r) => el("span", { class: "count", "data-drift-source": r.source },
    `${r.source === "stripe" ? "Against Stripe" : "Local"} drift `,
    el("b", { class: r.drift_count ? "bad" : "" }, fmtNumber(r.drift_count)),
    ` of ${fmtNumber(r.checked)} checked · ${fmtTime(r.ran_at)}`,
    r.items.length ? el("span", { class: "error" }, " — " + r.items.slice(0, 3).map((i) => `${i.kind} ${i.id}`).join(", ")) : ""));
  document.getElementById("stripe-drift").replaceChildren(
    ...(parts.length ? parts : [el("span", { class: "empty" }, "No drift report yet (the reconciliation runs nightly).")]));
}

// Re-read while the event or its processing job is unfinished, so the panel shows how a replay ended
// (the ledger records the job just after the event's status changes).
function renderEvent(e) {
  state.eventPending = e.status === "received" || (e.job !== null && ["pending", "retrying"].includes(e.job.state));
  document.getElementById("event-title").textContent = `Stripe event ${e.id}`;
  const facts = [["Status", pill(e.status)], ["Type", e.type || "—"], ["Attempts", e.attempts],
    ["Received", fmtTime(e.received_at)], ["Created", fmtTime(e.created)], ["API version", e.api_version || "—"],
    ["Mode", e.livemode ? "live" : "test"], ["Object", e.object_id ? `${e.object_type || "object"} ${e.object_id}` : "—"],
    ["Processed", fmtTime(e.processed_at)], ["Last error", el("span", { class: "bad" }, e.last_error || "—")],
    ["Waits for", e.waits_for || "—"], ["Ordering", e.order_decision || "—"]];
  if (e.job) facts.push(["Processing job", el("span", {}, jobLink(e.job.job_id), " ", pill(e.job.state))]);
  document.getElementById("event-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  const parsed = e.payload !== null;
  document.getElementById("event-body-title").textContent = parsed ? "Payload" : "Raw body (did not parse)";
  document.getElementById("event-payload").textContent = parsed
    ? JSON.stringify(e.payload, null, 2)
    : `${e.raw_body ?? "(no body)"}${e.raw_body_truncated ? "\n… (truncated)" : ""}`;
  document.getElementById("event-detail").hidden = false;
}

function compact(value) { return value === null || value === undefined ? "—" : JSON.stringify(value); }

function renderAudit(data) {
  const rows = (data.items || []).map((a) => el("tr", { "data-audit-id": String(a.id) },
    el("td", {}, fmtTime(a.at)), el("td", { class: "name" }, `${a.actor} (${a.actor_role})`),
    el("td", {}, a.action), el("td", {}, a.target ?? "—"), el("td", {}, pill(a.outcome)),
    el("td", { class: "change" }, `${compact(a.before)} → ${compact(a.after)}`),
    el("td", { title: a.request_id ?? "" }, a.request_id ? short(a.request_id) : "—")));
  fill(document.querySelector("#audit tbody"), rows, "audit-empty");
}

function replayed(what, result) {
  const more = result.truncated ? " More remain: replay again." : "";
  const push = result.redis_reachable ? "" : " Redis did not answer: the outbox sweep will push the jobs.";
  return `${what}: ${result.replayed} event(s) replayed.${more}${push}`;
}

function runsPath() {
  const params = new URLSearchParams({ per_page: "25" });
  if (state.search.q) params.set("q", state.search.q);
  if (state.search.status) params.set("status", state.search.status);
  return `/ops/jobs?${params}`;
}

async function refresh() {
  const status = document.getElementById("live-status");
  try {
    const [queues, stats, dead, workers, runs, stripe] = await Promise.all([
      api("GET", "/ops/queues"), api("GET", "/ops/stats"), api("GET", "/ops/dead?per_page=50"),
      api("GET", "/ops/workers"), api("GET", runsPath()), api("GET", STRIPE_EVENTS_PATH)]);
    renderQueues(queues); renderChart(stats); renderDead(dead); renderWorkers(workers); renderRuns(runs);
    renderStripe(stripe);
    renderAudit(await api("GET", "/ops/audit?per_page=25"));
    if (state.schedules) {
      try { renderSchedules(await api("GET", "/ops/schedules")); }
      catch (e) { if (e.status === 404) { state.schedules = false; renderSchedules({}); } else throw e; }
    }
    if (Date.now() - (state.dbAt || 0) >= DB_POLL_MS) {
      state.dbAt = Date.now();
      renderDb(await api("GET", "/ops/db"));
    }
    if (state.detail) renderDetail(await api("GET", `/ops/jobs/${state.detail}`));
    if (state.event && state.eventPending) renderEvent(await api("GET", `/ops/stripe-events/${encodeURIComponent(state.event)}`));
    status.textContent = `live · updated ${new Date().toLocaleTimeString()}`;
    status.className = "live";
  } catch (e) {
    status.textContent = `offline · ${e.message}`;
    status.className = "live stale";
  }
}

async function poll() {
  await refresh();
  setTimeout(poll, POLL_MS);
}

async function act(button) {
  const action = button.dataset.action, id = button.dataset.jobId, queue = button.dataset.queue;
  const eventId = button.dataset.eventId, eventPath = `/ops/stripe-events/${encodeURIComponent(eventId)}`;
  try {
    if (action === "pause" || action === "resume") {
      await api("POST", `/ops/queues/${encodeURIComponent(queue)}/${action}`);
      flash(`Queue ${queue} ${action === "pause" ? "paused" : "resumed"}.`);
    } else if (action === "retry") {
      const result = await api("POST", `/ops/jobs/${id}/retry`);
      flash(`Job ${short(id)} retried (generation ${result.generation}).`);
    } else if (action === "delete") {
      if (!window.confirm(`Delete dead job ${id}? It will not run again.`)) return;
      await api("DELETE", `/ops/jobs/${id}`);
      flash(`Job ${short(id)} deleted.`);
    } else if (action === "retry-all") {
      if (!window.confirm("Retry every dead job?")) return;
      const result = await api("POST", "/ops/dead/retry", {});
      flash(`${result.retried} dead job(s) retried.`);
    } else if (action === "replay-event") {
      flash(replayed(`Event ${eventId}`, await api("POST", `${eventPath}/replay`)));
      if (state.event === eventId) renderEvent(await api("GET", eventPath));
    } else if (action === "replay-failed") {
      if (!window.confirm("Replay every failed Stripe event?")) return;
      flash(replayed("Failed events", await api("POST", "/ops/stripe-events/replay", { status: "failed" })));
    } else if (action === "open-event") {
      state.event = eventId;
      renderEvent(await api("GET", eventPath));
      document.getElementById("event-detail").scrollIntoView({ behavior: "smooth", block: "start" });
      return;
    } else if (action === "close-event") {
      state.event = null;
      document.getElementById("event-detail").hidden = true;
      return;
    } else if (action === "open-customer") {
      renderCustomer(await api("GET", `/ops/customers/${encodeURIComponent(button.dataset.customerId)}`));
      document.getElementById("customer-detail").scrollIntoView({ behavior: "smooth", block: "start" });
      return;
    } else if (action === "close-customer") {
      document.getElementById("customer-detail").hidden = true;
      hideConfirm();
      return;
    } else if (action === "cx-cancel") {
      hideConfirm();
      return;
    } else if (action === "cx-confirm") {
      await confirmCustomerAction();
    } else if (action.startsWith("cx-")) {
      prepareCustomerAction(action, button);
      return;
    } else if (action === "run-schedule") {
      await api("POST", `/ops/schedules/${encodeURIComponent(button.dataset.schedule)}/run`);
      flash(`Schedule ${button.dataset.schedule} triggered.`);
    } else if (action === "open-job") {
      state.detail = id;
      renderDetail(await api("GET", `/ops/jobs/${id}`));
      document.getElementById("job-detail").scrollIntoView({ behavior: "smooth", block: "start" });
      return;
    } else if (action === "close-detail") {
      state.detail = null;
      document.getElementById("job-detail").hidden = true;
      history.replaceState(null, "", "/ops");
      return;
    }
  } catch (e) {
    flash(e.message, true);
  }
  await refresh();
}

document.addEventListener("click", (event) => {
  const target = event.target.closest("[data-action]");
  if (!target) return;
  event.preventDefault();
  if (target.disabled) return;
  target.disabled = true;
  act(target).finally(() => { target.disabled = false; });
});

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("search").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    state.search = { q: String(form.get("q") || "").trim(), status: String(form.get("status") || "") };
    refresh();
  });
  document.getElementById("customer-search").addEventListener("submit", async (event) => {
    event.preventDefault();
    const q = String(new FormData(event.target).get("q") || "").trim();
    try { renderCustomers(await api("GET", `/ops/customers?q=${encodeURIComponent(q)}`)); }
    catch (e) { flash(e.message, true); }
  });
  document.getElementById("promotion-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const feature = String(form.get("feature") || ""), level = String(form.get("access_level") || "");
    const day = String(form.get("expires") || "");
    if (!state.customer || !feature || !day) return;
    // The promotion ends at the end of the chosen day, UTC.
    const expires = `${day}T23:59:59Z`;
    askConfirm(`Grant ${feature} at ${level} to ${state.customer.customer.email} until ${day} (UTC)?`,
      customerPath("/promotions"), { feature, access_level: level, expires_at: expires });
  });
  document.getElementById("trial-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const trial = state.customer && localTrial(state.customer);
    if (!trial) return;
    const days = Number(new FormData(event.target).get("days"));
    askConfirm(`Extend the trial of ${state.customer.customer.email} by ${days} day(s)?`, customerPath("/trial/extend"),
      { subscription_id: trial.id, days, expected_trial_end: trial.trial_end ?? trial.current_period_end });
  });
  const match = /^#job=([0-9a-f-]{36})$/i.exec(window.location.hash);
  if (match) state.detail = match[1];
  poll();
});

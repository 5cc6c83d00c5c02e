// Mingus Jobs operator dashboard, the customer view: search, one customer's page (timeline, Stripe
// events, invoices, features, usage, e-mails, jobs) and the customer actions with their confirm step.
// Loaded after ops.js, whose helpers (el, api, fill, pill, fmtTime, flash, state) it uses.
"use strict";

function customerLink(c) {
  return el("a", { class: "job", href: "#customer", "data-action": "open-customer", "data-customer-id": c.id, title: c.id }, c.email);
}

function renderCustomers(data) {
  const rows = (data.items || []).map((c) => el("tr", { "data-customer-id": c.id },
    el("td", {}, customerLink(c)), el("td", {}, c.full_name ?? "—"), el("td", {}, c.plan_tier ?? "—"),
    el("td", {}, c.subscription_status ? pill(c.subscription_status) : "—"), el("td", {}, fmtTime(c.created_at))));
  fill(document.querySelector("#customers tbody"), rows, "customers-empty");
}

function renderCustomer(page) {
  const c = page.customer;
  document.getElementById("customer-title").textContent = `Customer ${c.email}`;
  const facts = [["User id", c.id], ["Name", c.full_name ?? "—"], ["Tier", page.tier ?? "none"],
    ["Active", c.is_active ? "yes" : "no"], ["Stripe customer", c.stripe_customer_id ?? "—"], ["Since", fmtTime(c.created_at)]];
  document.getElementById("customer-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  fill(document.querySelector("#customer-features tbody"), page.features.map((f) => el("tr", { "data-feature": f.feature },
    el("td", { class: "name" }, f.feature), el("td", {}, pill(f.access ? "yes" : "no")), el("td", {}, f.reason ?? ""),
    el("td", {}, f.access_level ?? ""), el("td", { class: "num" }, f.usage ?? ""), el("td", { class: "num" }, f.limit ?? ""),
    el("td", {}, f.resets_at ? fmtTime(f.resets_at) : ""))));
  fill(document.querySelector("#customer-subscriptions tbody"), page.subscriptions.map((s) => el("tr", {},
    el("td", {}, fmtTime(s.created_at)), el("td", {}, s.plan_tier), el("td", {}, s.billing_cycle), el("td", {}, pill(s.status)),
    el("td", { title: s.stripe_subscription_id ?? "" }, s.stripe_status ?? "—"),
    el("td", {}, `${fmtTime(s.current_period_start)} → ${fmtTime(s.current_period_end)}`),
    el("td", {}, s.trial_end ? fmtTime(s.trial_end) : "—"), el("td", {}, s.cancelled_at ? fmtTime(s.cancelled_at) : "—"))));
  fill(document.querySelector("#customer-timeline tbody"), page.timeline.map((t) => el("tr", { "data-source": t.source },
    el("td", {}, fmtTime(t.changed_at)), el("td", { class: "mono", title: t.subscription_id }, t.subscription_id.slice(0, 8)),
    el("td", {}, pill(t.status), t.stripe_status ? ` ${t.stripe_status}` : "", t.cancel_at_period_end ? " · cancels at period end" : ""),
    el("td", {}, `${t.plan_tier} ${t.billing_cycle} ${t.plan_price} ${t.currency}`),
    el("td", { class: "mono" }, t.source), el("td", {}, t.order_decision ?? ""))));
  fill(document.querySelector("#customer-events tbody"), page.stripe_events.map((e) => el("tr", {},
    el("td", {}, fmtTime(e.created ?? e.received_at)), el("td", {}, eventLink(e.id)), el("td", {}, e.type),
    el("td", {}, pill(e.status)), el("td", {}, e.order_decision ?? ""), el("td", { class: "error" }, e.last_error ?? ""))));
  fill(document.querySelector("#customer-invoices tbody"), page.invoices.map((i) => el("tr", {},
    el("td", {}, fmtTime(i.created_at)), el("td", { class: "mono" }, i.transaction_id ?? "—"),
    el("td", { class: "num" }, `${i.amount} ${i.currency}`), el("td", {}, pill(i.status)))));
  fill(document.querySelector("#customer-emails tbody"), page.emails.map((m) => el("tr", { "data-delivery-id": m.id },
    el("td", {}, fmtTime(m.created_at)), el("td", {}, m.resent_from ? `${m.template} (resend)` : m.template),
    el("td", {}, pill(m.status)), el("td", { class: "error" }, m.last_error ?? ""),
    el("td", {}, m.status === "sent" || m.status === "failed"
      ? el("button", { type: "button", class: "small", "data-action": "cx-resend", "data-delivery-id": m.id }, "Resend…") : ""))));
  document.getElementById("customer-suppressions").textContent = page.email_suppressions.length
    ? `Suppressed: ${page.email_suppressions.map((x) => `${x.category} (${x.source})`).join(", ")}` : "";
  const other = [
    ...page.api_keys.map((k) => ["API key", `${k.name} · ${k.prefix}…`, k.active ? "active" : "inactive", k.created_at]),
    ...page.team.map((t) => ["Team member", `${t.email} (${t.role})`, t.status, t.invited_at]),
    ...page.reports.map((r) => ["Report", `${r.kind} ${r.period_start} → ${r.period_end}`, r.status, r.created_at])];
  fill(document.querySelector("#customer-other tbody"), other.map(([what, name, status, at]) => el("tr", {},
    el("td", {}, what), el("td", {}, name), el("td", {}, pill(status)), el("td", {}, fmtTime(at)))));
  renderCustomerWork(page);
  renderCustomerActions(page);
  document.getElementById("customer-detail").hidden = false;
}

function renderCustomerWork(page) {
  fill(document.querySelector("#customer-jobs tbody"), page.jobs.map((j) => el("tr", {},
    el("td", {}, fmtTime(j.finished_at)), el("td", {}, jobLink(j.job_id)), el("td", {}, j.kind),
    el("td", {}, pill(j.status)), el("td", { class: "error" }, j.error ?? ""))));
  fill(document.querySelector("#customer-dead tbody"), page.dead_letters.map((d) => el("tr", {},
    el("td", {}, fmtTime(d.died_at)), el("td", {}, jobLink(d.job_id)), el("td", {}, d.kind),
    el("td", { class: "error" }, d.last_error))));
}

// The customer's local trial (no Stripe subscription): the only kind the page extends.
function localTrial(page) {
  return page.subscriptions.find((s) => s.status === "trial" && !s.stripe_subscription_id);
}

function renderCustomerActions(page) {
  state.customer = page;
  hideConfirm();
  const select = document.querySelector("#promotion-form select[name=feature]");
  const chosen = select.value;
  select.replaceChildren(...page.features.map((f) => el("option", { value: f.feature }, f.feature)));
  if (chosen) select.value = chosen;
  fill(document.querySelector("#customer-grants tbody"), page.grants.map((g) => el("tr", { "data-feature": g.feature },
    el("td", { class: "name" }, g.feature), el("td", {}, g.access_level), el("td", {}, g.granted_by),
    el("td", {}, g.expires_at ? fmtTime(g.expires_at) : "never"),
    el("td", {}, el("button", { type: "button", class: "small", "data-action": "cx-revoke", "data-feature": g.feature }, "Revoke…")))));
  fill(document.querySelector("#customer-usage tbody"), page.usage.filter((u) => u.kind === "per_period").map((u) =>
    el("tr", { "data-metric": u.metric },
      el("td", { class: "name" }, u.metric), el("td", { class: "num" }, u.usage ?? 0), el("td", { class: "num" }, u.limit ?? "∞"),
      el("td", {}, u.resets_at ? fmtTime(u.resets_at) : "—"),
      el("td", {}, u.usage ? el("button", { type: "button", class: "small", "data-action": "cx-reset", "data-metric": u.metric }, "Reset…") : ""))));
  const trial = localTrial(page);
  document.querySelector("#trial-form button").disabled = !trial;
  document.getElementById("trial-note").textContent = trial
    ? `trial ends ${fmtTime(trial.trial_end ?? trial.current_period_end)}`
    : "no local trial (Stripe-managed trials are extended in Stripe)";
}

// Customer actions: a button or form only prepares the request and says what it will do; the POST goes
// out when the operator presses Confirm.
function askConfirm(text, path, body) {
  state.pending = { text, path, body };
  document.getElementById("customer-confirm-text").textContent = text;
  const box = document.getElementById("customer-confirm");
  box.hidden = false;
  box.scrollIntoView({ behavior: "smooth", block: "center" });
}

function hideConfirm() {
  state.pending = null;
  document.getElementById("customer-confirm").hidden = true;
}

function customerPath(suffix) {
  return `/ops/customers/${encodeURIComponent(state.customer.customer.id)}${suffix}`;
}

async function confirmCustomerAction() {
  const pending = state.pending;
  hideConfirm();
  if (!pending) return;
  const result = await api("POST", pending.path, pending.body);
  flash(result.changed ? `Done: ${pending.text}` : `Nothing to change: ${pending.text}`);
  renderCustomer(await api("GET", customerPath("")));
}

function prepareCustomerAction(action, button) {
  const who = state.customer.customer.email;
  if (action === "cx-revoke") {
    const feature = button.dataset.feature;
    askConfirm(`Revoke the ${feature} grant of ${who}?`, customerPath(`/promotions/${encodeURIComponent(feature)}/revoke`));
  } else if (action === "cx-reset") {
    const metric = button.dataset.metric;
    askConfirm(`Reset ${metric} of ${who} to 0 for this period?`, customerPath(`/usage/${encodeURIComponent(metric)}/reset`));
  } else if (action === "cx-resend") {
    askConfirm(`Resend e-mail ${short(button.dataset.deliveryId)} to ${who}?`,
      customerPath(`/emails/${encodeURIComponent(button.dataset.deliveryId)}/resend`));
  } else if (action === "cx-replay") {
    askConfirm(`Replay the failed Stripe events of ${who}?`, customerPath("/stripe-events/replay"));
  } else if (action === "cx-recompute") {
    askConfirm(`Recompute the feature access of ${who}?`, customerPath("/access/recompute"));
  }
}

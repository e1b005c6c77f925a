// isekai-gen review pages: plain JavaScript, no build step, no network beyond this server.
"use strict";

const PAGE_SIZE = 100;
// One id per browser tab: `u` undoes this tab's decisions only, never another tab's.
const CLIENT = sessionStorage.getItem("isekai-review-client") ||
  (() => { const id = Math.random().toString(36).slice(2) + Date.now().toString(36);
           sessionStorage.setItem("isekai-review-client", id); return id; })();

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

async function api(path, body) {
  const options = body === undefined ? {} :
    { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
  if (!response.ok) { const error = new Error(data.error || response.statusText); error.data = data; error.status = response.status; throw error; }
  return data;
}

const thumb = (jobId, sha) => `/thumb/${encodeURIComponent(jobId)}?v=${sha}`;
const fmt = (value) => typeof value === "number" ? value.toFixed(3) : (value === null || value === undefined ? "–" : String(value));
const percent = (rate) => `${Math.round(rate * 100)}%`;

function renderBanners(data) {
  const box = document.getElementById("banners");
  box.replaceChildren();
  if (data.smoke_test) {
    box.append(el("div", { class: "banner smoke", id: "smoke-banner" },
      `Smoke-test build: ${data.smoke_test} images were made with random weights; they are noise.`));
  }
  if (data.pending_count) {
    box.append(el("div", { class: "banner pending", id: "pending-banner" },
      `${data.pending_count} decision${data.pending_count === 1 ? "" : "s"} pending a rebuild ` +
      `(${data.pending.reject.length} to reject, ${data.pending.restore.length} to restore); run `,
      el("code", {}, data.rebuild)));
  } else {
    box.append(el("div", { class: "banner clean", id: "pending-banner" }, "No decisions pending a rebuild."));
  }
  if (failed.length) {
    box.append(el("div", { class: "banner smoke", id: "failed-banner" },
      `${failed.length} decision${failed.length === 1 ? "" : "s"} not saved yet, retrying every ${RETRY_MS / 1000} s: ` +
      failed.map((f) => `${f.action} ${f.job_ids.length > 3 ? `${f.job_ids.length} images` : f.job_ids.join(", ")}`).join("; ")));
  }
  if (notice) box.append(el("div", { class: "banner smoke", id: "error-banner" }, notice));
}

// ---- live state: every tab polls the decision state, so other tabs' decisions show within a second

const POLL_MS = 1000, RETRY_MS = 2000;
const failed = [];   // decisions the server did not confirm, retried in order until it does
let notice = null;   // the last refusal (an undo another tab overtook), shown until the next decision
let onState = () => {};

function poll() {
  setInterval(async () => {
    try {
      const known = view.state ? `?version=${encodeURIComponent(view.state.version)}` : "";
      const data = await api(`/api/state${known}`);
      if (!data.unchanged) onState(data);
    } catch (error) { /* the server is down: the failed-decisions banner says what is waiting */ }
  }, POLL_MS);
}

// ---- overview ---------------------------------------------------------------------------------

async function overviewPage() {
  await renderOverview();
  onState = renderOverview;
  poll();
}

async function renderOverview() {
  const data = await api("/api/overview");
  view.state = data;
  renderBanners(data);
  document.getElementById("totals").textContent =
    `${data.out_dir}: ${data.kept} kept of ${data.generated} generated (${percent(data.generated ? data.kept / data.generated : 0)}) · ` +
    `${data.reviewed.length.toLocaleString("en")} of ${data.reviewable.toLocaleString("en")} reviewed`;
  const groups = data.groups.map((group) => el("section", { class: "group", "data-group": group.group },
    el("h2", {}, group.group),
    el("div", { class: "pair" }, group.concepts.map((c) => el("div", { class: "concept", "data-concept": c.id },
      el("h3", {}, el("a", { href: `/concept/${encodeURIComponent(c.id)}` }, `${c.label} (${c.id})`), " ",
        el("span", { class: `world ${c.world}` }, c.world)),
      el("p", { class: "counts" }, `kept ${c.kept}${c.kept_after === c.kept ? "" : ` (${c.kept_after} once the pending ` +
        "decisions are applied)"} / ${c.generated} generated · pass rate ${percent(c.pass_rate)}`),
      el("p", { class: "progress" }, `reviewed ${c.reviewed} / ${c.reviewable}`),
      el("p", { class: "rejects" }, Object.entries(c.rejects).map(([r, n]) => `${r}: ${n}`).join(", ") || "no rejects"),
      el("div", { class: "strip" }, c.strip.map(([job, sha]) =>
        el("a", { href: `/concept/${encodeURIComponent(c.id)}` }, el("img", { src: thumb(job, sha), alt: job, title: job })))),
    )))));
  document.getElementById("groups").replaceChildren(...groups);
}

// ---- concept page -----------------------------------------------------------------------------

const view = { data: null, state: null, manual: new Set(), reviewed: new Set(), reasons: {}, reasonChoices: [], shown: [], page: 0, current: 0, selected: new Set() };

// Shift-click selects the range from the current image; `x`/`r` then decide on all of it at once.
function click(position, event) {
  if (event.shiftKey) {
    const items = pageItems();
    const [from, to] = [Math.min(view.current, position), Math.max(view.current, position)];
    items.slice(from, to + 1).forEach((item) => view.selected.add(item.job_id));
  } else {
    view.selected.clear();
  }
  select(position);
  refreshTiles();
}

// What a tile shows: the manifest's verdict, overlaid with decisions not yet applied by a build.
function stateOf(item) {
  if (!item.image || item.verdict === "broken" || item.verdict === "failed") return "broken";
  const listed = view.manual.has(item.job_id);
  if (listed) return item.verdict === "manual_reject" ? "manual_reject" : "manual_reject (pending)";
  if (item.verdict === "manual_reject") return "restored (pending)";
  return item.verdict;
}

const isRejected = (state) => state !== "kept" && state !== "restored (pending)" && state !== "not scored";

function sortKey(item, key) {
  if (key === "index") return item.index;
  const value = item.scores[key];
  return typeof value === "number" ? value : null;
}

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  for (const id of ["sort", "order", "filter"]) {
    const select = document.getElementById(id), value = params.get(id);
    if ([...select.options].some((o) => o.value === value)) select.value = value;  // a choice that still exists
  }
  view.page = Math.max(0, parseInt(params.get("page") || "0", 10) || 0);
}

function writeHash() {
  const params = new URLSearchParams();
  for (const id of ["sort", "order", "filter"]) params.set(id, document.getElementById(id).value);
  params.set("page", view.page);
  history.replaceState(null, "", "#" + params.toString());
}

function applyState(data) {
  view.state = data;
  view.manual = new Set(data.manual);
  view.reviewed = new Set(data.reviewed);
  view.reasons = data.reasons;
  view.reasonChoices = data.reason_choices;
  renderBanners(data);
  if (view.data) { renderCounts(); fillFilter(); }
}

// Counts with this tab's and other tabs' decisions applied, beside what the manifest says.
function renderCounts() {
  const c = view.data.concept;
  const kept = view.data.items.filter((item) => ["kept", "restored (pending)"].includes(stateOf(item))).length;
  const after = kept === c.kept ? "" : ` (${kept} once the pending decisions are applied)`;
  document.getElementById("counts").textContent =
    `kept ${c.kept}${after} / ${c.generated} generated · pass rate ${percent(c.pass_rate)} · group ${c.group}`;
  const mine = view.data.items.filter((item) => view.reviewed.has(item.job_id)).length;
  document.getElementById("progress").textContent = `${mine} of ${c.reviewable} reviewed here · ` +
    `${view.state.reviewed.length.toLocaleString("en")} of ${view.state.reviewable.toLocaleString("en")} in the build`;
}

function fillFilter() {
  const select = document.getElementById("filter");
  const wanted = select.value;
  const states = [...new Set(view.data.items.map(stateOf))].sort();
  select.replaceChildren(el("option", { value: "all" }, "all"), el("option", { value: "rejected" }, "any reject"),
    el("option", { value: "unreviewed" }, "not reviewed yet"),
    ...states.map((s) => el("option", { value: s }, s)));
  select.value = [...select.options].some((o) => o.value === wanted) ? wanted : "all";
}

// Near-duplicate clusters as groups: each survivor followed by the images removed as its duplicates.
function clustered(items) {
  const shown = new Set(items.map((item) => item.job_id));
  const members = new Map();
  for (const item of items) {
    if (item.duplicate_of && shown.has(item.duplicate_of)) {
      if (!members.has(item.duplicate_of)) members.set(item.duplicate_of, []);
      members.get(item.duplicate_of).push(item);
    }
  }
  return items.filter((item) => !(item.duplicate_of && shown.has(item.duplicate_of)))
    .flatMap((item) => [item, ...(members.get(item.job_id) || [])]);
}

function arrange() {
  const key = document.getElementById("sort").value;
  const sign = document.getElementById("order").value === "asc" ? 1 : -1;
  const filter = document.getElementById("filter").value;
  const items = view.data.items.filter((item) => filter === "all" ||
    (filter === "rejected" ? isRejected(stateOf(item)) :
      filter === "unreviewed" ? item.image && !view.reviewed.has(item.job_id) : stateOf(item) === filter));
  items.sort((a, b) => {
    const x = sortKey(a, key), y = sortKey(b, key);
    if (x === null || y === null) return (x === null) - (y === null) || a.index - b.index;  // unscored last
    return sign * (x - y) || a.index - b.index;
  });
  view.shown = document.getElementById("group-dups").checked ? clustered(items) : items;
  const pages = Math.max(1, Math.ceil(items.length / PAGE_SIZE));
  view.page = Math.min(view.page, pages - 1);
}

function tile(item, position) {
  const state = stateOf(item);
  const s = item.scores;
  const title = `${item.job_id}\n${item.prompt}\nseed ${item.seed}\n` +
    `alignment ${fmt(s.alignment)} margin ${fmt(s.margin)} zero-shot ${fmt(s.zeroshot_prob)}`;
  const classes = ["tile", isRejected(state) ? "rejected" : "ok", state.includes("pending") ? "pending" : "",
    position === view.current ? "current" : "", view.selected.has(item.job_id) ? "selected" : "",
    view.reviewed.has(item.job_id) ? "reviewed" : ""].join(" ");
  const toggle = state === "broken" ? null : el("button", {
    type: "button", class: "toggle", title: view.manual.has(item.job_id) ? "restore" : "reject",
    onclick: (event) => { event.stopPropagation(); view.selected.clear(); select(position); decide(view.manual.has(item.job_id) ? "restore" : "reject"); },
  }, view.manual.has(item.job_id) ? "↺" : "✕");
  return el("div", { class: classes, "data-job": item.job_id, "data-state": state, title, onclick: (event) => click(position, event) },
    item.image ? el("img", { src: thumb(item.job_id, item.sha), alt: item.job_id, loading: "lazy" }) : el("div", { class: "noimage" }, "failed"),
    el("div", { class: "cap" }, `${view.reviewed.has(item.job_id) ? "✓ " : ""}${item.job_id} a=${fmt(s.alignment)}`),
    item.duplicate_of ? el("div", { class: "cluster" }, `≈ ${item.duplicate_of}`) : null,
    el("div", { class: "verdict" }, state, view.reasons[item.job_id] ? ` · ${view.reasons[item.job_id]}` : ""), toggle);
}

function pageItems() {
  return view.shown.slice(view.page * PAGE_SIZE, (view.page + 1) * PAGE_SIZE);
}

function renderGrid() {
  const items = pageItems();
  view.current = Math.min(view.current, Math.max(0, items.length - 1));
  document.getElementById("grid").replaceChildren(...items.map(tile));
  const pages = Math.max(1, Math.ceil(view.shown.length / PAGE_SIZE));
  document.getElementById("pageinfo").textContent = `page ${view.page + 1} of ${pages} (${view.shown.length} images)`;
  document.getElementById("prev").disabled = view.page === 0;
  document.getElementById("next").disabled = view.page >= pages - 1;
  renderDetails();
  writeHash();
}

// The survivor is a candidate of the same concept; its sha keys the cached thumbnail's URL.
const survivorSha = (jobId) => (view.data.items.find((other) => other.job_id === jobId) || {}).sha || "";

function renderDetails() {
  const item = pageItems()[view.current];
  const box = document.getElementById("details");
  if (!item) { box.replaceChildren(el("p", {}, "No image matches this filter.")); return; }
  const s = item.scores;
  const survivors = view.data.items.filter((other) => other.duplicate_of === item.job_id).map((other) => other.job_id);
  box.replaceChildren(el("div", {},
    el("h2", { id: "detail-job" }, item.job_id),
    el("p", {}, el("strong", {}, stateOf(item))),
    el("p", { id: "detail-prompt" }, "prompt: ", item.prompt),
    item.negative_prompt ? el("p", {}, "negative: ", item.negative_prompt) : null,
    el("table", {},
      [["seed", item.seed], ["attempt", item.attempt], ["round", item.round], ["alignment", fmt(s.alignment)],
       ["margin", fmt(s.margin)], ["zero-shot prob", fmt(s.zeroshot_prob)], ["partner cosine", fmt(s.partner_cosine)],
       ["top-1", fmt(s.top1)], ["size", `${item.width}×${item.height}`]].map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, v)))),
    item.duplicate_of ? el("p", { id: "detail-duplicate" }, "near-duplicate of survivor ",
      el("a", { href: `/image/${encodeURIComponent(item.duplicate_of)}`, target: "_blank" }, item.duplicate_of),
      el("br"), el("img", { src: thumb(item.duplicate_of, survivorSha(item.duplicate_of)), alt: item.duplicate_of })) : null,
    survivors.length ? el("p", {}, `survivor of ${survivors.length} near-duplicate(s): ${survivors.join(", ")}`) : null,
    item.image ? el("a", { href: `/image/${encodeURIComponent(item.job_id)}`, target: "_blank", id: "detail-full" },
      el("img", { class: "full", src: `/image/${encodeURIComponent(item.job_id)}`, alt: `${item.job_id} full size` })) : null,
  ));
}

function select(position) {
  const tiles = document.querySelectorAll("#grid .tile");
  if (tiles[view.current]) tiles[view.current].classList.remove("current");
  view.current = position;
  if (tiles[position]) { tiles[position].classList.add("current"); tiles[position].scrollIntoView({ block: "nearest" }); }
  renderDetails();
}

function move(step) {
  const target = view.current + step;
  const count = pageItems().length;
  const pages = Math.max(1, Math.ceil(view.shown.length / PAGE_SIZE));
  if (target >= count && view.page < pages - 1) { view.page += 1; view.current = 0; renderGrid(); }
  else if (target < 0 && view.page > 0) { view.page -= 1; view.current = PAGE_SIZE - 1; renderGrid(); }
  else select(Math.max(0, Math.min(count - 1, target)));
}

function columns() {
  const tiles = [...document.querySelectorAll("#grid .tile")];
  const top = tiles.length ? tiles[0].offsetTop : 0;
  return Math.max(1, tiles.filter((t) => t.offsetTop === top).length);
}

function refreshTiles() {
  const items = pageItems();
  const tiles = document.querySelectorAll("#grid .tile");
  items.forEach((item, i) => { if (tiles[i]) tiles[i].replaceWith(tile(item, i)); });
  renderDetails();
}

let busy = Promise.resolve();  // decisions go one after another, in key order

function send(action, jobIds, reason) {
  const entry = { action, job_ids: jobIds, reason };
  busy = busy.then(() => save(entry));
  return busy;
}

async function save(entry) {
  try {
    applyState(await api("/api/decide", { ...entry, client: CLIENT }));
    notice = null;
    const index = failed.indexOf(entry);
    if (index >= 0) failed.splice(index, 1);
  } catch (error) {
    if (error.status && error.status < 500) {  // refused by the server (a 4xx): retrying cannot help
      notice = `decision not saved (${entry.action} ${entry.job_ids.join(", ")}): ${error.message}`;
    } else if (!failed.includes(entry)) {
      failed.push(entry);
      setTimeout(retry, RETRY_MS);
    }
  }
  renderBanners(view.state);
  refreshTiles();
}

function retry() {
  if (!failed.length) return;
  const waiting = failed.slice();
  busy = busy.then(async () => {
    for (const entry of waiting) {
      if (failed.includes(entry)) await save(entry);
      if (failed.includes(entry)) break;  // still down: keep the order, try again later
    }
    if (failed.length) setTimeout(retry, RETRY_MS);
  });
}

function decide(action, reason) {
  // Images are chosen, and the selection moves on, at the key press: the next key already
  // applies to the next image while this decision is still being saved.
  if (action === "undo") return undo();
  if (view.selected.size) {
    const ids = [...view.selected];
    view.selected.clear();
    return send(action, ids, reason);
  }
  const item = pageItems()[view.current];
  if (!item || stateOf(item) === "broken") return busy;
  move(1);
  return send(action, [item.job_id], reason);
}

function undo() {
  busy = busy.then(async () => {
    let data;
    try {
      data = await api("/api/undo", { client: CLIENT });
      notice = null;
    } catch (error) {
      if (error.status !== 409) { notice = `undo not saved: ${error.message}`; renderBanners(view.state); return; }
      data = error.data;  // refused: changed since by another tab; the answer carries the current state
      notice = error.message;
    }
    applyState(data);
    refreshTiles();
    const position = data.record ? pageItems().findIndex((i) => data.record.job_ids.includes(i.job_id)) : -1;
    if (position >= 0) select(position);
  });
  return busy;
}

function bulk(action, items, what) {
  const ids = items.filter((item) => stateOf(item) !== "broken").map((item) => item.job_id);
  if (!ids.length) { notice = `no image to ${action}: ${what}`; renderBanners(view.state); return busy; }
  return send(action, ids);  // one decision: one `u` reverts it whole
}

function rejectBelow() {
  const threshold = parseFloat(document.getElementById("below").value);
  if (Number.isNaN(threshold)) { notice = "give an alignment threshold"; renderBanners(view.state); return busy; }
  return bulk("reject", view.data.items.filter((item) => typeof item.scores.alignment === "number" &&
    item.scores.alignment < threshold && !view.manual.has(item.job_id)), `none below alignment ${threshold}`);
}

async function loadConcept() {
  const id = decodeURIComponent(location.pathname.split("/").pop());
  const data = await api(`/api/concept/${encodeURIComponent(id)}`);
  view.data = data;
  applyState(data);
  const c = data.concept;
  document.title = `review: ${c.id}`;
  document.getElementById("title").replaceChildren(`${c.label} (${c.id}) `, el("span", { class: `world ${c.world}` }, c.world));
  renderCounts();
  const partner = data.partner;
  document.getElementById("partner-title").replaceChildren(partner ?
    el("span", {}, "kept images of the partner ", el("a", { href: `/concept/${encodeURIComponent(partner.id)}`, id: "partner-link" },
      `${partner.label} (${partner.id})`), ` (${partner.kept} kept)`) : "no partner concept in this build");
  document.getElementById("partner-strip").replaceChildren(...data.partner_kept.slice(0, 48).map(([job, sha]) =>
    el("img", { src: thumb(job, sha), alt: job, title: job, loading: "lazy" })));
  fillFilter();
}

async function conceptPage() {
  await loadConcept();  // fills the filter's options, so the address's choice can be set
  readHash();
  arrange();
  renderGrid();
  for (const id of ["sort", "order", "filter", "group-dups"]) {
    document.getElementById(id).addEventListener("change", () => { view.page = 0; view.current = 0; arrange(); renderGrid(); });
  }
  document.getElementById("prev").addEventListener("click", () => { view.page -= 1; view.current = 0; renderGrid(); });
  document.getElementById("next").addEventListener("click", () => { view.page += 1; view.current = 0; renderGrid(); });
  document.getElementById("reject-shown").addEventListener("click", () => bulk("reject", view.shown, "none shown"));
  document.getElementById("reviewed-page").addEventListener("click", () => bulk("reviewed", pageItems(), "none on this page"));
  document.getElementById("reject-below").addEventListener("click", rejectBelow);
  document.addEventListener("keydown", (event) => {
    if (["SELECT", "INPUT"].includes(event.target.tagName) || event.ctrlKey || event.metaKey || event.altKey) return;
    const go = (id) => { if (id) location.href = `/concept/${encodeURIComponent(id)}`; };
    const actions = {
      ArrowRight: () => move(1), ArrowLeft: () => move(-1), ArrowDown: () => move(columns()), ArrowUp: () => move(-columns()),
      x: () => decide("reject"), r: () => decide("restore"), k: () => decide("reviewed"), u: () => decide("undo"),
      n: () => go(view.data.next), p: () => go(view.data.previous),
      "?": () => toggleHelp(), Escape: () => { toggleHelp(false); view.selected.clear(); refreshTiles(); },
    };
    const reason = view.reasonChoices[parseInt(event.key, 10) - 1];  // 1-4: reject for a reason
    if (reason) { event.preventDefault(); decide("reject", reason); }
    if (actions[event.key]) { event.preventDefault(); actions[event.key](); }
  });
  onState = (data) => { applyState(data); refreshTiles(); };
  poll();
}

function toggleHelp(show) {
  document.getElementById("help").hidden = show === undefined ? !document.getElementById("help").hidden : !show;
}

document.addEventListener("DOMContentLoaded", () => {
  const run = document.body.dataset.page === "overview" ? overviewPage : conceptPage;
  run().then(() => { document.body.dataset.ready = "1"; },
    (error) => { document.body.prepend(el("div", { class: "banner smoke", id: "error-banner" }, `error: ${error.message}`)); });
});

// The Racklet dashboard: one page, one live stream (/ui/v1/watch), views drawn from the store's
// objects. Plain ES modules, no framework; uPlot draws the charts. Every action goes to the
// same /api/v1 the CLI uses, with the session cookie and the CSRF token; the server decides.
// uPlot (145 KB, the bulk of the page's code) is imported when a view first draws a chart,
// not before the rack view's first render, which has none.
let uPlotLoading = null;
const loadUPlot = () => (uPlotLoading ||= (() => {
  // Its stylesheet too: no view without a chart waits for it.
  document.head.append(el("link", { rel: "stylesheet", href: "/vendor/uPlot.min.css" }));
  return import("/vendor/uPlot.esm.js").then((m) => m.default);
})());

const HOUR = 3600;
const $ = (id) => document.getElementById(id);
const state = {
  session: null, objects: {}, version: null, source: null, history: {}, rackHistory: [],
  charts: [], connected: false,
};

// -- small helpers ------------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
const num = (v, digits) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
const list = (plural) => Object.values(state.objects[plural] || {});
const canAct = (unit) => {
  const s = state.session;
  if (!s || s.role === "viewer") return false;
  return s.role === "admin" || !s.units.length || s.units.includes(unit);
};
const isAdmin = () => state.session && state.session.role === "admin";
function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (state.session && state.session.csrf) headers["X-Racklet-CSRF"] = state.session.csrf;
  if (body !== undefined) headers["Content-Type"] = method === "PATCH" ? "application/merge-patch+json" : "application/json";
  const response = await fetch(path, {
    method, headers, credentials: "same-origin", cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (response.status === 401) { loggedOut(); throw new Error(data.message || "log in again"); }
  if (!response.ok) throw new Error(data.message || `HTTP ${response.status}`);
  return data;
}

async function act(what, method, path, body) {
  try {
    await api(method, path, body);
    showError("");
  } catch (err) {
    showError(`${what}: ${err.message}`);
  }
}

// Resolves true (or, with ``typed``, the text typed) when confirmed, false when cancelled.
// With ``typed`` the Confirm button stays disabled until the word is typed exactly; the
// server checks the word again (a factory reset's body carries it).
function confirmAction(text, typed) {
  const dialog = $("confirm");
  const input = $("confirm-input");
  $("confirm-text").textContent = text;
  $("confirm-typed").hidden = !typed;
  $("confirm-word").textContent = typed || "";
  input.value = "";
  $("confirm-ok").disabled = Boolean(typed);
  input.oninput = () => { $("confirm-ok").disabled = Boolean(typed) && input.value !== typed; };
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const ok = dialog.returnValue === "ok" && (!typed || input.value === typed);
      resolve(ok && typed ? input.value : ok);
    }, { once: true });
    dialog.showModal();
    (typed ? input : $("confirm-cancel")).focus();
  });
}

// -- session and live data ----------------------------------------------------------------------
function loggedOut() {
  if (state.source) state.source.close();
  state.source = null;
  state.session = null;
  $("nav").hidden = true;
  $("who").hidden = true;
  $("banner").hidden = true;
  $("view").replaceChildren();
  $("login").hidden = false;
  $("login-token").focus();
}

async function loggedIn(session, prefetched) {
  state.session = session;
  $("login").hidden = true;
  $("nav").hidden = false;
  $("who").hidden = false;
  $("who-name").textContent = `${session.principal} (${session.role})`;
  $("nav-audit").hidden = session.role !== "admin";
  $("rack-name").textContent = session.rack || "";
  await snapshot(prefetched);
}

async function login(body) {
  const response = await fetch("/ui/v1/login", {
    method: "POST", headers: { "Content-Type": "application/json" }, credentials: "same-origin",
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) { $("login-error").textContent = data.message || "login refused"; return; }
  $("login-error").textContent = "";
  $("login-token").value = "";
  await loggedIn(data);
}

async function snapshot(prefetched) {
  const data = (prefetched && (await prefetched)) || (await api("GET", "/ui/v1/snapshot"));
  state.objects = {};
  for (const [plural, items] of Object.entries(data.items)) {
    state.objects[plural] = {};
    for (const obj of items) state.objects[plural][obj.metadata.name] = obj;
  }
  state.version = data.resourceVersion;
  sample();
  watch();
  render();
  // For the benchmark (bench/dashboard.py): when the first view was in the DOM.
  if (!performance.getEntriesByName("racklet-first-render").length) performance.mark("racklet-first-render");
}

function watch() {
  if (state.source) state.source.close();
  const source = new EventSource(`/ui/v1/watch?resourceVersion=${encodeURIComponent(state.version)}`);
  state.source = source;
  source.addEventListener("open", () => setConnected(true));
  source.addEventListener("change", (event) => {
    state.version = event.lastEventId || state.version;
    apply(JSON.parse(event.data));
  });
  source.addEventListener("bookmark", (event) => { state.version = event.lastEventId || state.version; });
  source.addEventListener("error", (event) => {
    if (event.data) { // the stream said why it ended (e.g. 410: our version is too old)
      source.close();
      setTimeout(() => snapshot().catch(() => setConnected(false)), 500);
      return;
    }
    setConnected(false);
    if (source.readyState === EventSource.CLOSED) reconnect();
  });
}

async function reconnect() {
  // EventSource gave up (the controller answered with an error while restarting): ask again.
  for (;;) {
    await new Promise((r) => setTimeout(r, 1000));
    if (!state.session) return;
    try {
      await api("GET", "/ui/v1/session");
      const stop = new AbortController();
      const probe = await fetch(`/ui/v1/watch?resourceVersion=${encodeURIComponent(state.version)}`, { signal: stop.signal }).catch(() => null);
      stop.abort();
      if (probe && probe.status === 410) { await snapshot(); return; }
      watch();
      return;
    } catch (err) { /* still gone */ }
  }
}

function setConnected(on) {
  state.connected = on;
  $("banner").hidden = on || !state.session;
  document.body.dataset.live = on ? "true" : "false";
}

// A live update rebuilds the view; one landing between a button's pointerdown and its click
// would move the button away from under the pointer and the click would be lost. So while
// a pointer is down the re-render waits for its release.
let pending = false;
let pointerDown = false;
let deferred = false;
function liveRender() {
  if (pointerDown) { deferred = true; return; }
  deferred = false;
  render();
}
document.addEventListener("pointerdown", () => { pointerDown = true; }, true);
for (const type of ["pointerup", "pointercancel"]) {
  document.addEventListener(type, () => {
    pointerDown = false;
    if (deferred) setTimeout(liveRender, 0); // after the click this release completes
  }, true);
}
function apply(change) {
  const obj = change.object;
  const plural = pluralOf(obj.kind);
  const table = (state.objects[plural] ||= {});
  const known = table[obj.metadata.name];
  if (change.type === "DELETED") delete table[obj.metadata.name];
  else if (!known || Number(obj.metadata.resourceVersion) >= Number(known.metadata.resourceVersion)) table[obj.metadata.name] = obj;
  if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; sample(); liveRender(); }); }
}
const pluralOf = (kind) => ({ Rack: "racks", ComputeUnit: "computeunits", Release: "releases", Rollout: "rollouts", GitSource: "gitsources", Fault: "faults" })[kind] || `${kind.toLowerCase()}s`;

function sample() {
  // The charts' history: what this page has seen (one point per change), after the last
  // hour's samples the controller kept (loadHistory).
  const t = Date.now() / 1000;
  for (const unit of list("computeunits")) {
    const s = unit.status || {};
    const h = (state.history[unit.metadata.name] ||= []);
    h.push([t, s.powerWatts ?? null, s.temperatureCelsius ?? null, s.cpuLoad ?? null, s.energyJoules ?? null]);
    while (h.length && h[0][0] < t - HOUR) h.shift();
  }
  const rack = list("racks")[0];
  if (rack) {
    state.rackHistory.push([t, rack.status?.powerWatts ?? 0, rack.status?.energyJoules ?? 0]);
    while (state.rackHistory.length && state.rackHistory[0][0] < t - HOUR) state.rackHistory.shift();
  }
}

// The last hour before the page opened: the controller keeps a bounded ring of samples per
// unit and for the rack (/ui/v1/history); a view asks for what it charts, once, and the
// older samples go in front of the ones this page saw itself.
const historyAsked = new Set();
async function loadHistory(names, rack) {
  const units = names.filter((n) => !historyAsked.has(n));
  const withRack = rack && !historyAsked.has("#rack");
  if (!units.length && !withRack) return;
  for (const n of units) historyAsked.add(n);
  if (withRack) historyAsked.add("#rack");
  try {
    const d = await api("GET", `/ui/v1/history?units=${units.map(encodeURIComponent).join(",")}${withRack ? "&rack=true" : ""}`);
    const before = (h, rows) => { const first = h.length ? h[0][0] : Infinity; h.unshift(...rows.filter((r) => r[0] < first)); };
    for (const [name, rows] of Object.entries(d.units)) before((state.history[name] ||= []), rows);
    if (withRack) before(state.rackHistory, d.rack);
    liveRender();
  } catch (err) {
    for (const n of units) historyAsked.delete(n);
    if (withRack) historyAsked.delete("#rack");
  }
}

// -- routing ------------------------------------------------------------------------------------
function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [page, arg] = hash.split("/");
  return { page: page || "rack", arg: arg ? decodeURIComponent(arg) : "" };
}

function render() {
  if (!state.session) return;
  const { page, arg } = route();
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === `#/${page}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const views = { rack: rackView, unit: unitView, rollouts: rolloutsView, energy: energyView, audit: auditView };
  // Read before the view is built: building it moves the fault form (kept across renders)
  // out of the document, which takes the focus from the field being typed in.
  const focus = document.activeElement && document.activeElement.id;
  const view = (views[page] || rackView)(arg);
  for (const chart of state.charts) chart.destroy();
  state.charts = [];
  $("view").replaceChildren(view);
  for (const draw of view.querySelectorAll("[data-chart]")) drawChart(draw);
  if (focus && $(focus)) $(focus).focus();
}

// -- rack view ----------------------------------------------------------------------------------
function faultsOn(target) {
  return list("faults").filter((f) => JSON.stringify(f.spec || {}).includes(`"${target}"`) && (f.status?.phase || "Active") !== "Cleared");
}

function unitTray(unit) {
  const s = unit.status || {};
  const name = unit.metadata.name;
  const phase = s.phase || "Unknown";
  const powerOn = unit.spec.power === "On";
  const absent = phase === "Absent";
  const actions = canAct(name) || isAdmin() ? el("div", { class: "actions" },
    canAct(name) && !absent ? el("button", { type: "button", id: `power-${name}`, "aria-label": `Power ${powerOn ? "off" : "on"} ${name}`,
      onclick: () => powerAction(name, powerOn ? "Off" : "On") }, powerOn ? "Power off" : "Power on") : null,
    isAdmin() ? el("button", { type: "button", id: `slot-${name}`, "aria-label": `${absent ? "Insert" : "Pull"} the board of ${name} (slot ${unit.spec.slot})`,
      onclick: () => slotAction(unit, absent ? "insert" : "pull") }, absent ? "Insert" : "Pull") : null) : null;
  return el("li", { class: `tray unit phase-${phase}`, id: `tile-${name}`, "data-phase": phase },
    el("a", { href: `#/unit/${encodeURIComponent(name)}` }, name),
    el("div", { class: "facts" },
      el("span", { class: `phase phase-${phase}`, "data-role": "phase" }, phase),
      el("span", { title: "power" }, `${num(s.powerWatts, 2)} W`),
      s.cpuLoad !== undefined && s.cpuLoad !== null ? el("span", { title: "CPU load" }, `load ${num(s.cpuLoad * 100, 0)} %`) : null,
      el("span", { title: "temperature" }, `${num(s.temperatureCelsius, 1)} °C`),
      el("span", { class: "muted" }, `slot ${unit.spec.slot}`),
      s.osVersion ? el("span", { title: "OS version" }, `OS ${s.osVersion}`) : null,
      s.bootSlot ? el("span", { title: "boot slot" }, `boot ${s.bootSlot}`) : null,
      s.locate ? el("span", { class: "locate", "data-role": "locate", title: "the tray's locate LED is lit" }, "locate LED on") : null,
      faultsOn(name).map((f) => el("span", { class: "badge", title: "active fault" }, `fault: ${f.spec.type || f.metadata.name}`))),
    actions);
}

async function slotAction(unit, verb) {
  // Through the hardware side's control endpoint, as racklet slot pull|insert does.
  const slot = unit.spec.slot;
  if (verb === "pull" && !(await confirmAction(`Pull the board of ${unit.metadata.name} out of slot ${slot}? It loses power at once.`))) return;
  await act(`${verb} slot ${slot}`, "POST", `/api/v1/slots/${slot}/${verb}`);
}

async function factoryReset(rack) {
  const typed = await confirmAction(`Factory reset of ${rack}: a new CA, new identities and a new TUF root; every unit's disk and every BMC's state is wiped; every session and token stops working.`, rack);
  if (!typed) return;
  try {
    await api("POST", `/api/v1/racks/${encodeURIComponent(rack)}/factory-reset`, { confirm: typed });
    showError("");
    $("view").replaceChildren(el("p", { role: "status" }, `Factory reset of ${rack} started: log in again with the new token or login URL.`));
  } catch (err) { showError(`factory reset: ${err.message}`); }
}

async function powerAction(name, power) {
  const verb = power === "Off" ? "power off" : "power on";
  if (!(await confirmAction(`Really ${verb} ${name}?`))) return;
  await act(`${verb} ${name}`, "PATCH", `/api/v1/computeunits/${encodeURIComponent(name)}`, { spec: { power } });
}

function rackView() {
  const rack = list("racks")[0];
  const units = list("computeunits").sort((a, b) => a.spec.slot - b.spec.slot);
  const bySlot = new Map(units.map((u) => [u.spec.slot, u]));
  const slots = Math.max(rack?.spec?.slots || 0, ...units.map((u) => u.spec.slot), 1);
  const trays = [el("li", { class: "tray" }, el("span", { class: "label" }, "Switch"), el("span", {}, "uplink and one port per unit"),
    faultsOn("switch").map((f) => el("span", { class: "badge" }, `fault: ${f.spec.type}`)))];
  const rmc = rack?.status?.rmc;
  trays.push(el("li", { class: "tray" }, el("span", { class: "label" }, "RMC"),
    el("span", {}, rmc?.display ? `display: ${rmc.display}` : "rack management controller"),
    (rmc?.fans || []).map((f) => el("span", {}, `${f.name}: ${num(f.rpm, 0)} rpm`))));
  for (let slot = 1; slot <= slots; slot++) {
    const unit = bySlot.get(slot);
    trays.push(unit ? unitTray(unit) : el("li", { class: "tray empty" }, el("span", { class: "label" }, `Slot ${slot}`), "empty"));
  }
  const watts = rack?.status?.powerWatts ?? 0;
  const budget = rack?.spec?.psuRatedWatts ?? 0;
  const share = budget ? Math.min(100, (100 * watts) / budget) : 0;
  trays.push(el("li", { class: "tray psu", id: "busbar" }, el("span", { class: "label" }, "PSU"),
    el("span", {}, `busbar ${num(watts, 1)} W of ${num(budget, 0)} W`),
    el("div", { class: `gauge${share > 100 ? " over" : share > 80 ? " high" : ""}`, role: "meter", "aria-label": "busbar load against budget",
      "aria-valuemin": "0", "aria-valuemax": String(budget), "aria-valuenow": String(Math.round(watts)) },
    gaugeBar(share))));
  const running = units.filter((u) => u.status?.phase === "Running").length;
  return el("section", { "aria-labelledby": "rack-title" },
    el("h2", { id: "rack-title" }, `Rack ${rack?.metadata?.name || ""}: ${running} of ${units.length} units running`),
    el("div", { class: "layout" },
      el("ol", { class: "rack", "aria-label": "rack front elevation, top to bottom" }, trays),
      el("div", {}, faultPanel(), summaryTable(units), isAdmin() && rack ? el("div", { class: "card", id: "reset" }, el("h3", {}, "Factory reset"),
        el("p", {}, "New trust for the whole rack and wiped units, re-provisioned from the declared state (racklet reset --factory)."),
        el("button", { type: "button", id: "factory-reset", class: "danger", onclick: () => factoryReset(rack.metadata.name) }, "Factory reset…")) : null)));
}

function gaugeBar(share) {
  const bar = el("span");
  bar.style.width = `${share}%`; // through the CSSOM: the page's CSP allows no style attributes
  return bar;
}

function summaryTable(units) {
  return el("div", { class: "card" }, el("h3", {}, "Units"),
    el("table", {}, el("thead", {}, el("tr", {}, ["Unit", "Phase", "Power (W)", "Temp (°C)", "Reason"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, units.map((u) => {
        const ready = (u.status?.conditions || []).find((c) => c.type === "Ready");
        return el("tr", {}, el("td", {}, el("a", { href: `#/unit/${u.metadata.name}` }, u.metadata.name)),
          el("td", {}, u.status?.phase || "Unknown"), el("td", { class: "num" }, num(u.status?.powerWatts, 2)),
          el("td", { class: "num" }, num(u.status?.temperatureCelsius, 1)),
          el("td", {}, ready && ready.status !== "True" ? ready.message : ""));
      }))));
}

// -- faults: the form is built from the Fault kind's schema -------------------------------------
let faultSchema = null;
function faultPanel() {
  if (!state.session.kinds.includes("faults")) {
    return el("div", { class: "card", id: "faults" }, el("h3", {}, "Faults"), el("p", { class: "muted" }, "This controller has no Fault kind yet."));
  }
  const active = list("faults");
  const card = el("div", { class: "card", id: "faults" }, el("h3", {}, "Faults"),
    active.length ? el("ul", {}, active.map((f) => el("li", {}, `${f.metadata.name}: ${JSON.stringify(f.spec)} `,
      isAdmin() ? el("button", { type: "button", onclick: () => act("clear fault", "DELETE", `/api/v1/faults/${f.metadata.name}`) }, `Clear ${f.metadata.name}`) : null)))
      : el("p", { class: "muted" }, "No active faults."));
  if (isAdmin()) card.append(faultForm());
  return card;
}

let faultFormNode = null;
function faultForm() {
  // Built once and moved into each new view: what the user typed survives live updates.
  if (faultFormNode) return faultFormNode;
  const form = el("form", { class: "fields", id: "fault-form" });
  if (!faultSchema) {
    api("GET", "/ui/v1/schemas?kinds=faults").then((s) => { faultSchema = s.faults; liveRender(); }).catch((e) => showError(e.message));
    return form;
  }
  const defs = faultSchema.$defs || {};
  const resolve = (s) => (s && s.$ref ? defs[s.$ref.split("/").pop()] : s);
  const spec = resolve(faultSchema.properties.spec);
  const required = new Set(spec.required || []);
  form.append(el("label", { for: "fault-name" }, "name"), el("input", { id: "fault-name", required: true, pattern: "[a-z0-9]([-a-z0-9]*[a-z0-9])?" }));
  for (const [key, raw] of Object.entries(spec.properties || {})) {
    const prop = resolve(raw.anyOf ? raw.anyOf.find((x) => x.type !== "null") : raw) || {};
    const id = `fault-${key}`;
    let input;
    if (prop.enum) input = el("select", { id, name: key }, prop.enum.map((v) => el("option", { value: v }, v)));
    else if (prop.type === "boolean") input = el("input", { id, name: key, type: "checkbox" });
    else if (prop.type === "number" || prop.type === "integer") input = el("input", { id, name: key, type: "number", step: prop.type === "integer" ? "1" : "any" });
    else if (prop.type === "string") input = el("input", { id, name: key });
    else continue; // nested values: the CLI (racklet fault) takes them
    if (required.has(key)) input.required = true;
    form.append(el("label", { for: id }, key), input);
  }
  // The selector is nested; its most common form, unit names, gets a field of its own.
  form.append(el("label", { for: "fault-units" }, "units (comma-separated; empty: whole rack)"), el("input", { id: "fault-units", name: "units" }));
  form.append(el("span"), el("button", { type: "submit" }, "Inject fault"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const specBody = {};
    for (const field of form.querySelectorAll("[name]")) {
      if (field.name === "units") {
        const names = field.value.split(",").map((n) => n.trim()).filter(Boolean);
        if (names.length) specBody.selector = { names };
      } else if (field.type === "checkbox") specBody[field.name] = field.checked;
      else if (field.value !== "") specBody[field.name] = field.type === "number" ? Number(field.value) : field.value;
    }
    const name = $("fault-name").value;
    if (!(await confirmAction(`Inject fault ${name}?`))) return;
    await act("inject fault", "POST", "/api/v1/faults", { apiVersion: "racklet.dev/v1alpha1", kind: "Fault", metadata: { name }, spec: specBody });
  });
  faultFormNode = form;
  return form;
}

// -- unit view ----------------------------------------------------------------------------------
const unitExtras = {};
function unitView(name) {
  const unit = (state.objects.computeunits || {})[name];
  if (!unit) {
    return el("section", {}, el("h2", {}, `Unit ${name}`), el("p", { role: "alert" }, `There is no unit ${name} in this rack.`), el("a", { href: "#/rack" }, "Back to the rack"));
  }
  const s = unit.status || {};
  loadUnitExtras(unit);
  loadHistory([name], false);
  const extras = unitExtras[name] || {};
  const facts = [["phase", s.phase], ["power state", s.powerState], ["boot progress", s.bootProgress], ["power", `${num(s.powerWatts, 2)} W`],
    ["energy", `${num((s.energyJoules ?? 0) / 3600, 3)} Wh`], ["temperature", `${num(s.temperatureCelsius, 1)} °C`], ["CPU load", s.cpuLoad === undefined || s.cpuLoad === null ? "–" : `${num(s.cpuLoad * 100, 0)} %`],
    ["OS version", s.osVersion || "–"], ["boot slot", s.bootSlot || "–"], ["slot", unit.spec.slot], ["BMC", unit.spec.bmc.url],
    ["locate LED", s.locate === undefined || s.locate === null ? "–" : s.locate ? "on" : "off"],
    ["boot override", s.bootOverride ? `${s.bootOverride.target} (${s.bootOverride.enabled})` : "–"],
    ["last heartbeat", s.lastHeartbeatTime || "–"], ["last power cycle", s.lastPowerCycle || "–"]];
  const actions = canAct(name) ? el("div", { class: "card" }, el("h3", {}, "Actions"),
    el("div", { class: "buttons start" },
      el("button", { type: "button", id: "unit-power-on", onclick: () => powerAction(name, "On") }, "Power on"),
      el("button", { type: "button", id: "unit-power-off", onclick: () => powerAction(name, "Off") }, "Power off"),
      el("button", { type: "button", id: "unit-power-cycle", onclick: async () => {
        if (await confirmAction(`Really power-cycle ${name}?`)) await act(`power-cycle ${name}`, "POST", `/api/v1/computeunits/${encodeURIComponent(name)}/power-cycle`);
      } }, "Power cycle"),
      el("button", { type: "button", id: "unit-locate", "aria-pressed": String(Boolean(unit.spec.locate)), onclick: () => act(`locate LED of ${name}`, "PATCH",
        `/api/v1/computeunits/${encodeURIComponent(name)}`, { spec: { locate: !unit.spec.locate } }) }, unit.spec.locate ? "Locate LED off" : "Locate LED on")),
    bootOverrideForm(unit, extras.redfish)) : null;
  return el("section", { "aria-labelledby": "unit-title" },
    el("h2", { id: "unit-title" }, `Unit ${name} `, el("span", { class: `phase phase-${s.phase}`, id: "unit-phase" }, s.phase || "Unknown")),
    el("div", { class: "layout" },
      el("div", {},
        el("div", { class: "card" }, el("h3", {}, "Facts"), el("dl", { class: "facts" }, facts.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "–")]))),
        el("div", { class: "card", id: "redfish" }, el("h3", {}, "Redfish (read from its BMC now)"),
          extras.redfish ? el("dl", { class: "facts" }, Object.entries(extras.redfish).filter(([k]) => k !== "IdentityCertificate").map(([k, v]) => [el("dt", {}, k), el("dd", {}, typeof v === "object" ? JSON.stringify(v) : String(v))]))
            : el("p", { class: "muted" }, extras.redfishError || "asking the BMC…")),
        osSlotsCard(s),
        identityCard(extras.redfish && extras.redfish.IdentityCertificate),
        actions,
        el("div", { class: "card" }, el("h3", {}, "Conditions"), conditionsTable(s.conditions || [])),
        el("div", { class: "card" }, el("h3", {}, "Phase timeline"), el("ol", { class: "timeline" }, (extras.events || []).filter((e) => e.reason).slice(0, 12).reverse().map((e) => el("li", { class: "phase" }, `${e.lastTimestamp?.slice(11, 19) || ""} ${e.reason}`))))),
      el("div", {},
        el("div", { class: "card" }, el("h3", {}, "Power (W), last hour"), el("div", { class: "chart", "data-chart": "power", "data-unit": name, id: "chart-power" })),
        el("div", { class: "card" }, el("h3", {}, "Temperature (°C) and load"), el("div", { class: "chart", "data-chart": "temperature", "data-unit": name })),
        consoleCard(name),
        el("div", { class: "card" }, el("h3", {}, "Events"), eventsTable(extras.events || [])))));
}

// The unit's A/B OS slots and its rollback floor, as the controller last read them from the
// unit's BMC (status.osSlots: once per boot, and at each look while a trial is on), so a
// page view costs the BMC nothing. A rollout writes the slot not booted, try-boots it once
// (trial) and commits it after the health check; the floor then rises to its version.
function osSlotsCard(s) {
  const slots = s.osSlots || [];
  const role = (slot) => [slot.booted ? "booted" : null, slot.trial ? "trial" : null].filter(Boolean).join(", ") || "–";
  return el("div", { class: "card", id: "os-slots" }, el("h3", {}, "OS slots (A/B)"),
    slots.length ? el("table", {},
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "slot"), el("th", { scope: "col" }, "OS version"), el("th", { scope: "col" }, "state"), el("th", { scope: "col" }, "the BMC says"))),
      el("tbody", {}, slots.map((slot) => el("tr", { id: `os-slot-${slot.name}`, class: slot.booted ? "booted" : "", "data-booted": String(slot.booted), "data-trial": String(slot.trial) },
        el("th", { scope: "row" }, slot.name), el("td", { class: "version" }, slot.version || "empty"),
        el("td", { class: "role" }, role(slot)), el("td", { class: "muted" }, slot.note || "–")))))
      : el("p", { class: "muted" }, "not read from the BMC yet"),
    el("dl", { class: "facts" }, el("dt", {}, "rollback floor"),
      el("dd", { id: "rollback-floor", title: "no release below this version is accepted by the unit" }, s.rollbackFloor || "–")));
}

// The unit's identity certificate, as its BMC holds it: whose, by whom, and until when (the
// controller renews it before it expires; docs/pki.md).
function identityCard(cert) {
  if (!cert) return el("div", { class: "card", id: "identity" }, el("h3", {}, "Identity certificate"), el("p", { class: "muted" }, "not read yet"));
  const until = Date.parse(cert.ValidNotAfter);
  const days = Number.isNaN(until) ? null : (until - Date.now()) / 86400000;
  const name = (n) => (n && (n.CommonName || JSON.stringify(n))) || "–";
  return el("div", { class: "card", id: "identity" }, el("h3", {}, "Identity certificate"),
    el("dl", { class: "facts" },
      el("dt", {}, "subject"), el("dd", {}, name(cert.Subject)),
      el("dt", {}, "issuer"), el("dd", {}, name(cert.Issuer)),
      el("dt", {}, "valid from"), el("dd", {}, cert.ValidNotBefore || "–"),
      el("dt", {}, "expires"), el("dd", { id: "identity-expiry", class: days !== null && days < 1 ? "warn" : "" }, `${cert.ValidNotAfter || "–"}${days === null ? "" : ` (in ${num(days, 1)} days)`}`),
      el("dt", {}, "SHA-256"), el("dd", {}, el("code", {}, (cert.Fingerprint || "").slice(0, 23) + "…"))));
}

// The boot override: the targets and modes are the ones the unit's BMC offers (its Redfish
// AllowableValues); the page writes spec.bootOverride and the reconciler PATCHes the BMC.
// Like the fault form, one form per unit is kept across live re-renders (what the user
// picked survives them); it is built again only when the BMC's choices change.
const bootForms = {};
function bootOverrideForm(unit, redfish) {
  const name = unit.metadata.name;
  const boot = (redfish && redfish.Boot) || {};
  const targets = boot["BootSourceOverrideTarget@Redfish.AllowableValues"] || ["None", "Pxe", "UefiHttp", "SDCard", "Usb"];
  const modes = boot["BootSourceOverrideEnabled@Redfish.AllowableValues"] || ["Disabled", "Continuous"];
  const key = JSON.stringify([targets, modes]);
  if (bootForms[name] && bootForms[name].key === key) return bootForms[name].form;
  const want = unit.spec.bootOverride || {};
  const form = el("form", { class: "fields", id: "boot-form", "aria-label": `boot override of ${name}` },
    el("label", { for: "boot-target" }, "boot from"),
    el("select", { id: "boot-target" }, targets.map((t) => el("option", { value: t, selected: t === (want.target || boot.BootSourceOverrideTarget) }, t))),
    el("label", { for: "boot-enabled" }, "override"),
    el("select", { id: "boot-enabled" }, modes.map((m) => el("option", { value: m, selected: m === (want.enabled || boot.BootSourceOverrideEnabled) }, m))),
    el("span"), el("button", { type: "submit", id: "boot-set" }, "Set boot override"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const bootOverride = { target: $("boot-target").value, enabled: $("boot-enabled").value };
    if (!(await confirmAction(`Set the boot override of ${name} to ${bootOverride.target} (${bootOverride.enabled})? It takes effect at its next boot.`))) return;
    await act(`boot override of ${name}`, "PATCH", `/api/v1/computeunits/${encodeURIComponent(name)}`, { spec: { bootOverride } });
  });
  bootForms[name] = { key, form };
  return form;
}

// The console: the controller reads it from the unit's BMC (the browser never talks to a BMC);
// the page asks for the lines after the last one it has, every second, while the view is open.
const consoles = {};
let consoleTimer = null;
function consoleCard(name) {
  const c = (consoles[name] ||= { next: 0, lines: [] });
  pollConsole(name);
  return el("div", { class: "card" }, el("h3", {}, "Console"),
    el("pre", { class: "console", id: "console", tabindex: "0", role: "log", "aria-label": `console of ${name}`, "data-lines": String(c.lines.length) }, c.lines.join("\n")));
}

function pollConsole(name) {
  if (consoleTimer && consoleTimer.name === name) return;
  if (consoleTimer) clearTimeout(consoleTimer.id);
  const tick = async () => {
    const { page, arg } = route();
    if (page !== "unit" || arg !== name || !state.session) { consoleTimer = null; return; }
    const c = consoles[name];
    try {
      const d = await api("GET", `/ui/v1/units/${encodeURIComponent(name)}/console?skip=${c.next}`);
      if (d.lines.length) {
        c.lines.push(...d.lines);
        c.lines.splice(0, Math.max(0, c.lines.length - 500));
        const pre = $("console");
        if (pre) { pre.textContent = c.lines.join("\n"); pre.dataset.lines = String(c.lines.length); pre.scrollTop = pre.scrollHeight; }
      }
      c.next = d.next;
    } catch (err) { /* the banner or the login page says why */ }
    if (consoleTimer && consoleTimer.name === name) consoleTimer.id = setTimeout(tick, 1000);
  };
  consoleTimer = { name, id: setTimeout(tick, 0) };
}

function loadUnitExtras(unit) {
  const name = unit.metadata.name;
  const key = unit.metadata.resourceVersion;
  const known = unitExtras[name];
  if (known && known.key === key) return;
  unitExtras[name] = { ...(known || {}), key };
  unitExtras[name].phase = unit.status?.phase;
  if (!known || known.phase !== unit.status?.phase) { // read the BMC again when the phase moves
    api("GET", `/ui/v1/units/${encodeURIComponent(name)}/redfish`)
      .then((d) => { unitExtras[name].redfish = d; })
      .catch((e) => { unitExtras[name].redfishError = e.message; })
      .finally(() => { if (route().page === "unit") liveRender(); });
  }
  api("GET", `/api/v1/events?kind=ComputeUnit&name=${encodeURIComponent(name)}&limit=50`)
    .then((d) => {
      const before = JSON.stringify(unitExtras[name].events || []);
      unitExtras[name].events = d.items;
      if (JSON.stringify(d.items) !== before && route().page === "unit") liveRender();
    })
    .catch(() => {});
}

function timeCell(stamp) {
  // The time of day (UTC) to read at a glance; the whole timestamp on hover.
  return el("td", { class: "num" }, el("time", { datetime: stamp || "", title: stamp || "" }, (stamp || "").slice(11, 19)));
}

function conditionsTable(conditions) {
  return el("table", {}, el("thead", {}, el("tr", {}, ["Type", "Status", "Reason", "Message", "Since (UTC)"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, conditions.map((c) => el("tr", {}, el("td", {}, c.type), el("td", {}, c.status), el("td", {}, c.reason || ""), el("td", {}, c.message || ""), timeCell(c.lastTransitionTime)))));
}

function eventsTable(events) {
  return el("table", {}, el("thead", {}, el("tr", {}, ["Time (UTC)", "Type", "Reason", "Message"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, events.slice(0, 30).map((e) => el("tr", {}, timeCell(e.lastTimestamp), el("td", {}, e.type), el("td", {}, e.reason), el("td", {}, e.message)))));
}

function drawChart(node) {
  const kind = node.dataset.chart;
  const width = Math.max(280, node.clientWidth || 500);
  let data, series;
  if (kind === "power" || kind === "temperature") {
    const h = state.history[node.dataset.unit] || [];
    if (kind === "power") { data = [h.map((p) => p[0]), h.map((p) => p[1])]; series = [{}, { label: "power (W)", stroke: "#1f4fa3", width: 2 }]; }
    else { data = [h.map((p) => p[0]), h.map((p) => p[2]), h.map((p) => p[3])]; series = [{}, { label: "temperature (°C)", stroke: "#a61b29", width: 2 }, { label: "CPU load (0–1)", stroke: "#1e7a34", width: 2 }]; }
    node.dataset.last = String(data[1].length ? data[1][data[1].length - 1] : "");
    node.dataset.first = String(data[0].length ? data[0][0] : ""); // the oldest sample's time
  } else if (kind === "rack") {
    const h = state.rackHistory;
    data = [h.map((p) => p[0]), h.map((p) => p[1])];
    series = [{}, { label: "rack power (W)", stroke: "#1f4fa3", width: 2 }];
  }
  loadUPlot().then((uPlot) => {
    if (!node.isConnected) return; // a newer render replaced this view meanwhile
    state.charts.push(new uPlot({ width, height: 200, series, cursor: { drag: { x: true, y: false } }, scales: { x: { time: true } } }, data, node));
  }).catch((err) => showError(`charts: ${err.message}`));
}

// -- rollouts, releases, GitOps -----------------------------------------------------------------
function rolloutsView() {
  const releases = list("releases");
  const rollouts = list("rollouts");
  const sources = list("gitsources");
  return el("section", { "aria-labelledby": "rollouts-title" },
    el("h2", { id: "rollouts-title" }, "Rollouts, releases and GitOps"),
    el("div", { class: "card" }, el("h3", {}, "Rollouts"), rollouts.length ? rollouts.map((r) => el("div", { class: "rollout" },
      el("p", {}, el("strong", {}, r.metadata.name), ` → release ${r.spec.release}: `, el("span", { class: "phase" }, r.status?.phase || "Pending"),
        ` batch ${r.status?.currentBatch ?? 0}${r.spec.paused ? " (paused)" : ""} `,
        isAdmin() && !["Complete", "Failed", "RolledBack", "RollingBack"].includes(r.status?.phase) ? el("button", { type: "button", id: `rollout-pause-${r.metadata.name}`, onclick: () => act(`${r.spec.paused ? "resume" : "pause"} rollout`, "PATCH", `/api/v1/rollouts/${r.metadata.name}`, { spec: { paused: !r.spec.paused } }) }, r.spec.paused ? "Resume" : "Pause") : null,
        isAdmin() && ["Progressing", "Paused", "Complete"].includes(r.status?.phase) && !r.spec.rollBack ? el("button", { type: "button", class: "danger", id: `rollout-rollback-${r.metadata.name}`, onclick: async () => {
          if (await confirmAction(`Roll back rollout ${r.metadata.name}? Its channel names the release before it again and units not yet on ${r.spec.release} go back.`)) await act("roll back rollout", "PATCH", `/api/v1/rollouts/${r.metadata.name}`, { spec: { rollBack: true } });
        } }, "Roll back") : null),
      el("ol", { class: "progress", "aria-label": `units of rollout ${r.metadata.name}` }, (r.status?.units || []).map((u) => el("li", { class: u.phase, title: u.message || "" }, `${u.name}: ${u.phase}`))),
      conditionsTable(r.status?.conditions || []))) : el("p", { class: "muted" }, "No rollouts."),
      isAdmin() && releases.length ? rolloutForm(releases) : null),
    el("div", { class: "card" }, el("h3", {}, "Releases by channel"), releases.length ? el("table", {},
      el("thead", {}, el("tr", {}, ["Channel", "Release", "Package and version", "TUF targets", "Phase"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, releases.sort((a, b) => `${a.spec.channel}/${a.spec.version}`.localeCompare(`${b.spec.channel}/${b.spec.version}`)).map((r) => el("tr", {},
        el("td", {}, r.spec.channel), el("td", {}, r.metadata.name), el("td", {}, `${r.spec.package} ${r.spec.version}`),
        el("td", {}, (r.spec.targets || []).map((t) => el("div", {}, el("code", {}, `${t.name || t.path || ""} ${String(t.sha256 || t.digest || "").slice(0, 16)}`)))),
        el("td", {}, r.status?.phase || "Pending"))))) : el("p", { class: "muted" }, "No releases: racklet release publish makes one.")),
    el("div", { class: "card" }, el("h3", {}, "GitOps sources"), sources.length ? el("table", {},
      el("thead", {}, el("tr", {}, ["Source", "Last applied commit", "Drift and conditions"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, sources.map((g) => el("tr", {}, el("td", {}, g.metadata.name), el("td", {}, el("code", {}, g.status?.lastAppliedCommit || "–")),
        el("td", {}, (g.status?.conditions || []).map((c) => `${c.type}=${c.status} ${c.message || ""}`).join("; ")))))) : el("p", { class: "muted" }, "No GitSources.")));
}

let rolloutFormNode = null;
function rolloutForm(releases) {
  // Built once and moved into each new view, like the fault form: typing survives updates.
  const options = () => releases.map((r) => el("option", { value: r.metadata.name }, `${r.metadata.name} (${r.spec.channel}, ${r.spec.package} ${r.spec.version})`));
  if (rolloutFormNode) {
    const select = rolloutFormNode.querySelector("#rollout-release");
    if (select.options.length !== releases.length) { const was = select.value; select.replaceChildren(...options()); select.value = was; }
    return rolloutFormNode;
  }
  const form = el("form", { class: "fields", id: "rollout-form", "aria-label": "start a rollout" },
    el("label", { for: "rollout-name" }, "name"), el("input", { id: "rollout-name", required: true, pattern: "[a-z0-9]([-a-z0-9]*[a-z0-9])?" }),
    el("label", { for: "rollout-release" }, "release"), el("select", { id: "rollout-release" }, options()),
    el("label", { for: "rollout-canary" }, "canary units"), el("input", { id: "rollout-canary", type: "number", min: "0", value: "1" }),
    el("label", { for: "rollout-batch" }, "batch size"), el("input", { id: "rollout-batch", type: "number", min: "1", value: "1" }),
    el("label", { for: "rollout-paused" }, "start paused"), el("input", { id: "rollout-paused", type: "checkbox" }),
    el("span"), el("button", { type: "submit", id: "rollout-start" }, "Start rollout"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("rollout-name").value;
    const spec = { release: $("rollout-release").value, canary: Number($("rollout-canary").value), batchSize: Number($("rollout-batch").value), paused: $("rollout-paused").checked };
    if (!(await confirmAction(`Start rollout ${name} of ${spec.release}? Its units are power-cycled into it, batch by batch.`))) return;
    await act("start rollout", "POST", "/api/v1/rollouts", { apiVersion: "racklet.dev/v1alpha1", kind: "Rollout", metadata: { name }, spec });
  });
  rolloutFormNode = el("div", {}, el("h4", {}, "Start a rollout"), form);
  return rolloutFormNode;
}

// -- energy -------------------------------------------------------------------------------------
function energyView() {
  const rack = list("racks")[0];
  const units = list("computeunits").sort((a, b) => a.spec.slot - b.spec.slot);
  const total = units.reduce((sum, u) => sum + (u.status?.energyJoules || 0), 0);
  loadHistory(units.map((u) => u.metadata.name), true);
  return el("section", { "aria-labelledby": "energy-title" },
    el("h2", { id: "energy-title" }, "Energy"),
    el("p", {}, `Rack: ${num(rack?.status?.powerWatts, 1)} W now, ${num((rack?.status?.energyJoules || 0) / 3600, 3)} Wh so far.`),
    el("div", { class: "card" }, el("h3", {}, "Rack power (W), last hour"), el("div", { class: "chart", "data-chart": "rack" })),
    el("div", { class: "card" }, el("h3", {}, "Per unit"), el("table", {},
      el("thead", {}, el("tr", {}, ["Unit", "Power (W)", "Energy (Wh)", "Wh per wall-clock hour (last hour)", "Share"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, units.map((u) => {
        const e = u.status?.energyJoules || 0;
        const h = state.history[u.metadata.name] || [];
        const span = h.length > 1 ? h[h.length - 1][0] - h[0][0] : 0;
        const rate = span > 0 && h[0][4] !== null ? ((e - h[0][4]) / 3600) / (span / 3600) : null;
        return el("tr", {}, el("td", {}, u.metadata.name), el("td", { class: "num" }, num(u.status?.powerWatts, 2)),
          el("td", { class: "num" }, num(e / 3600, 3)), el("td", { class: "num" }, num(rate, 2)), el("td", { class: "num" }, total ? `${num((100 * e) / total, 1)} %` : "–"));
      }))),
      el("p", {}, el("button", { type: "button", id: "energy-csv", onclick: exportCsv }, "Export CSV"))));
}

function exportCsv() {
  const rows = ["time,unit,power_watts,temperature_celsius,energy_joules"];
  for (const [name, h] of Object.entries(state.history)) {
    for (const p of h) rows.push(`${new Date(p[0] * 1000).toISOString()},${name},${p[1] ?? ""},${p[2] ?? ""},${p[4] ?? ""}`);
  }
  const link = el("a", { href: URL.createObjectURL(new Blob([rows.join("\n") + "\n"], { type: "text/csv" })), download: "racklet-energy.csv" });
  document.body.append(link);
  link.click();
  link.remove();
}

// -- audit (admins) -----------------------------------------------------------------------------
let auditRecords = null;
function auditView() {
  if (!isAdmin()) return el("section", {}, el("h2", {}, "Audit"), el("p", { role: "alert" }, "Only an admin reads the audit log."));
  if (auditRecords === null) {
    auditRecords = [];
    api("GET", "/api/v1/audit?limit=200").then((d) => { auditRecords = d.items.reverse(); render(); })
      .catch((e) => { auditRecords = null; showError(`audit: ${e.message}`); });
  }
  return el("section", { "aria-labelledby": "audit-title" }, el("h2", { id: "audit-title" }, "Audit log (newest first)"),
    el("p", {}, el("button", { type: "button", onclick: () => { auditRecords = null; render(); } }, "Refresh")),
    el("table", {}, el("thead", {}, el("tr", {}, ["Time", "Component", "Principal", "Role", "Source", "Verb", "Object", "Outcome"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, auditRecords.map((r) => el("tr", {}, [r.time, r.component, r.principal, r.role, r.source, r.verb, r.object, `${r.outcome} ${r.status ?? ""}`].map((v) => el("td", {}, v ?? "")))))));
}

// -- start --------------------------------------------------------------------------------------
$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  login({ token: $("login-token").value });
});
$("logout").addEventListener("click", async () => {
  await fetch("/ui/v1/logout", { method: "POST", credentials: "same-origin" });
  loggedOut();
});
window.addEventListener("hashchange", () => { showError(""); render(); $("main").focus(); });

(async function start() {
  const code = new URLSearchParams(location.hash.replace(/^#/, "")).get("code");
  if (code) { history.replaceState(null, "", "#/rack"); await login({ code }); if (state.session) return; }
  // The controller put the session and the snapshot in the page (a logged-in browser): no
  // request before the first render.
  const first = document.getElementById("racklet-first");
  if (first) {
    first.remove();  // taken once: a later login or snapshot asks the controller
    const { session, snapshot: data } = JSON.parse(first.textContent);
    await loggedIn(session, Promise.resolve(data));
    return;
  }
  // No block: no session, or the page was opened from another site's link, which a
  // SameSite=Strict cookie does not go with; this same-site request carries it.
  const response = await fetch("/ui/v1/session", { credentials: "same-origin" });
  if (response.ok) {
    const session = await response.json();
    if (session.csrf) { await loggedIn(session); return; }
  }
  loggedOut();
})();

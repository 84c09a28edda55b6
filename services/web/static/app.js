// The edgeroom config page: plain DOM, only the appliance's HTTP API.
"use strict";

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
};

let csrf = sessionStorage.getItem("csrf") || "";
let status = null;
let events = null;
let refreshTimer = null;
let pollTimer = null;
let currentTab = "status";
let micWatch = null; // the level meter's stream: it keeps the mic open
const REDACTED_HINT = "unchanged";

class HttpError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

async function api(method, path, body) {
  const headers = {};
  const init = { method, headers, credentials: "same-origin" };
  if (method !== "GET") {
    headers["X-CSRF-Token"] = csrf;
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body || {});
  }
  const response = await fetch(path, init);
  let data = null;
  if ((response.headers.get("Content-Type") || "").includes("json")) data = await response.json();
  if (response.status === 401 && path !== "/api/login") {
    showLogin();
    throw new HttpError(401, data);
  }
  if (!response.ok) throw new HttpError(response.status, data);
  return data;
}

// -- login ------------------------------------------------------------------------------

function showLogin(message = "") {
  stopLive();
  stopPreview();
  stopMicWatch();
  $("app-view").hidden = true;
  $("logout").hidden = true;
  $("state-badge").hidden = true;
  $("login-view").hidden = false;
  $("login-error").textContent = message;
  $("password").focus();
}

async function showApp() {
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  $("logout").hidden = false;
  await refreshStatus();
  startLive();
  selectTab(currentTab);
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    const data = await api("POST", "/api/login", { password: $("password").value });
    csrf = data.csrf_token;
    sessionStorage.setItem("csrf", csrf);
    $("password").value = "";
    await showApp();
  } catch (err) {
    const retry = err.status === 429 ? " (locked out for a while)" : "";
    $("login-error").textContent = err.message + retry;
  }
});

$("logout").addEventListener("click", async () => {
  try { await api("POST", "/api/logout", {}); } catch (err) { /* already gone */ }
  sessionStorage.removeItem("csrf");
  csrf = "";
  showLogin();
});

// -- tabs -------------------------------------------------------------------------------

function selectTab(name) {
  currentTab = name;
  for (const button of document.querySelectorAll("nav .tab")) {
    button.classList.toggle("active", button.dataset.tab === name);
  }
  for (const body of document.querySelectorAll(".tab-body")) {
    body.hidden = body.id !== `tab-${name}`;
  }
  if (name === "settings") loadSettings();
  if (name === "logs") loadLogs();
  if (name !== "status") stopPreview(); // the camera runs only while someone watches
  if (name !== "status") stopMicWatch(); // and so does the mic for the level meter
}

for (const button of document.querySelectorAll("nav .tab")) {
  button.addEventListener("click", () => selectTab(button.dataset.tab));
}

// -- live status ------------------------------------------------------------------------

function startLive() {
  stopLive();
  events = new EventSource("/api/events");
  events.onmessage = () => scheduleRefresh();
  const names = ["state", "room-state", "controls", "member-joined", "member-left",
    "member-updated", "talking", "local-talking", "stats", "hand", "message", "room-error",
    "room-warning",
    "action", "action-failed", "config-changed", "subsystem-failed", "subsystem-restarted",
    "entered", "reconnecting", "kicked", "moderated", "device-lost", "password-changed",
    "mic-open", ...(typeof ROOM_FEATURE_EVENTS !== "undefined" ? ROOM_FEATURE_EVENTS : []),
    // playbacks, devices switched live, input sensitivity (live.js)
    "playback-started", "playback-updated", "playback-ended", "devices-updated",
    "sensitivity", "camera-orientation"];
  for (const name of names) {
    events.addEventListener(name, (ev) => onEvent(name, JSON.parse(ev.data)));
  }
  events.onerror = () => {
    if (events && events.readyState === EventSource.CLOSED) {
      setTimeout(() => refreshStatus().then(startLive).catch(() => {}), 2000);
    }
  };
  pollTimer = setInterval(() => {
    if (currentTab === "status") refreshStatus().catch(() => {});
    if (currentTab === "logs") loadLogs();
  }, 2000);
}

function stopLive() {
  if (events) events.close();
  events = null;
  clearInterval(pollTimer);
  pollTimer = null;
}

const QUIET_EVENTS = new Set(["stats", "talking", "local-talking", "controls"]);

function logEvent(name, event) {
  const line = el("li", { textContent: `${new Date(event.ts * 1000).toLocaleTimeString()} ` +
    `${name} ${JSON.stringify(event.data)}` });
  const list = $("events");
  list.prepend(line);
  while (list.children.length > 30) list.lastChild.remove();
}

function onEvent(name, event) {
  if (!QUIET_EVENTS.has(name)) logEvent(name, event);
  if (name === "talking" && status) {
    const dot = document.querySelector(`[data-member="${CSS.escape(String(event.data.id))}"] .dot`);
    if (dot) dot.classList.toggle("talking", !!event.data.talking);
  }
  if ((name === "local-talking" || name === "mic-level")
      && typeof event.data.level_dbfs === "number") {
    showLevel(event.data.level_dbfs);
    $("meter-dot").classList.toggle("talking", !!event.data.talking);
  }
  if (name === "talking" && event.data.id === "local") {
    $("meter-box").hidden = false;
    $("meter-dot").classList.toggle("talking", !!event.data.talking);
  }
  if (name === "controls" && status) {
    status.room.controls = event.data;  // at once, without waiting for the next status
    renderControls(status);
  }
  if (name === "stats") {
    fillTable($("stats"), flatten("", statsView(event.data), []));
    showPlayout(event.data);
    return;
  }
  if (name === "password-changed") return;
  scheduleRefresh();
}

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => refreshStatus().catch(() => {}), 100);
}

async function refreshStatus() {
  status = await api("GET", "/api/status");
  renderStatus(status);
}

function flatten(prefix, value, out) {
  const join = (key) => (prefix ? `${prefix}.${key}` : key);
  if (Array.isArray(value) && value.some((v) => v !== null && typeof v === "object")) {
    value.forEach((sub, i) => flatten(join(sub && (sub.name || sub.id || sub.device) || i), sub, out));
  } else if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [key, sub] of Object.entries(value)) flatten(join(key), sub, out);
  } else {
    out.push([prefix, Array.isArray(value) ? value.join(", ") || "-" : String(value)]);
  }
  return out;
}

function fillTable(table, rows) {
  table.replaceChildren(...rows.map(([k, v]) => el("tr", {}, el("td", { textContent: k }),
    el("td", { textContent: v }))));
  if (!rows.length) table.append(el("tr", {}, el("td", { textContent: "none yet" })));
}

function showLevel(level) {
  $("meter-box").hidden = false;
  $("meter-bar").style.width = `${Math.max(0, Math.min(100, (level + 60) * 100 / 60))}%`;
  $("meter-db").textContent = `${level.toFixed(0)} dBFS`;
}

function micLevel(s) {
  const candidates = [s.media && s.media.mic, s.mic, s.audio && s.audio.mic, s.audio,
                      s.stats && s.stats.up];
  for (const c of candidates) {
    if (c && typeof c.level_dbfs === "number") return c.level_dbfs;
  }
  return null;
}

function renderStatus(s) {
  const badge = $("state-badge");
  badge.hidden = false;
  badge.textContent = s.state.replace("_", " ");
  badge.className = `badge ${s.state}`;
  $("st-state").textContent = s.state;
  $("st-reason").textContent = s.reason || "-";
  $("st-room").textContent = `${s.room.id} (${s.room.backend}), ${s.room.state || "no room client"}`
    + (s.room.video_codec ? `, sending ${s.room.video_codec.toUpperCase()} video` : "");
  const warnings = s.room.warnings || [];
  $("room-warnings").hidden = !warnings.length;
  $("room-warnings").replaceChildren(...warnings.map((w) =>
    el("li", { textContent: `${w.code}: ${w.message}` })));
  $("st-uptime").textContent = `${Math.round(s.uptime)} s`;
  $("st-version").textContent = s.version;
  const members = s.room.members || [];
  $("member-count").textContent = `(${members.length})`;
  $("members").replaceChildren(...members.map(renderMember));
  if (!members.length) $("members").append(el("li", { textContent: "nobody" }));
  fillTable($("stats"), flatten("", statsView(s.stats), []));
  renderDevices(s.devices || {});
  fillTable($("subsystems"), Object.entries(s.subsystems || {}).map(([name, sub]) => [name,
    `${sub.running ? "up" : "DOWN"}, ${sub.restarts} restarts${sub.last_error ? `, ${sub.last_error}` : ""}`]));
  renderMedia(s.media);
  renderMic(s.media && s.media.mic);
  renderHealth(s.health);
  const level = micLevel(s);
  if (level !== null) showLevel(level);
  showCamera(s);
  if (typeof renderScreen === "function") renderScreen(s);
  renderControls(s);
  if (typeof renderRoomFeatures === "function") renderRoomFeatures(s);
  if (typeof renderLive === "function") renderLive(s);  // live.js
}

function statsView(stats) {
  // Per-member stats under the member's name rather than the room's id for them.
  if (!stats || !stats.members || !status) return stats || {};
  const names = new Map((status.room.members || []).map((m) => [String(m.id), m.display || m.id]));
  const members = {};
  for (const [id, values] of Object.entries(stats.members)) members[names.get(id) || id] = values;
  return { ...stats, members };
}

function renderDevices(devices) {
  const rows = [];
  const list = [];
  for (const [kind, entry] of Object.entries(devices)) {
    if (!entry || typeof entry !== "object") continue;
    const present = { true: "present", false: "MISSING" }[entry.present] || "";
    rows.push([kind.replace("_", " "), [entry.backend, entry.configured, present, entry.reason]
      .filter((v) => v !== null && v !== undefined && v !== "").join(", ")]);
    for (const d of entry.devices || []) list.push([kind.replace("_", " "), `${d.id}: ${d.name}`]);
  }
  fillTable($("devices"), rows);
  fillTable($("device-list"), list);
}

function renderMic(mic) {
  // media.mic.open is the capture device itself: open only while something uses it
  if (!mic) { $("st-mic").textContent = "none"; return; }
  $("st-mic").textContent = mic.open
    ? `open (${(mic.users || []).join(", ") || "-"})` : "closed";
  $("st-mic").className = mic.open ? "mic-open" : "";
  if (!mic.open) $("meter-box").hidden = true;
}

function renderHealth(health) {
  if (!health) { $("st-health").textContent = "-"; return; }
  const failing = (health.probes || []).filter((p) => !p.ok).map((p) => p.name);
  $("st-health").textContent = failing.length ? `FAILING: ${failing.join(", ")}`
    : `ok (${(health.probes || []).map((p) => p.name).join(", ")})`;
}

// -- the mic level meter: the mic is open only while this page watches it ----------------

function startMicWatch() {
  stopMicWatch();
  micWatch = new EventSource("/api/mic-level");
  micWatch.addEventListener("mic-level", (ev) => {
    const data = JSON.parse(ev.data).data;
    if (typeof data.level_dbfs === "number") showLevel(data.level_dbfs);
  });
  micWatch.onerror = () => {
    if (micWatch && micWatch.readyState === EventSource.CLOSED) stopMicWatch();
  };
  $("mic-watch").classList.add("on");
  scheduleRefresh();
}

function stopMicWatch() {
  if (micWatch) micWatch.close();
  micWatch = null;
  $("mic-watch").classList.remove("on");
}

$("mic-watch").addEventListener("click", () => (micWatch ? stopMicWatch() : startMicWatch()));
window.addEventListener("pagehide", () => stopMicWatch());
document.addEventListener("visibilitychange", () => {
  if (document.hidden) stopMicWatch();
});

function renderMedia(media) {
  $("media-card").hidden = !media;
  if (!media) return;
  const rows = [];
  if (media.recording) {
    rows.push(["recording", media.recording.recording
      ? `yes, ${Math.round(media.recording.elapsed || 0)} s${media.recording.file ? `, ${media.recording.file}` : ""}`
      : `no${media.recording.stop_reason ? ` (${media.recording.stop_reason})` : ""}`]);
  }
  if (media.stream) {
    rows.push(["live stream", media.stream.streaming
      ? `${media.stream.state}, ${media.stream.bitrate_kbps} kbps, ${media.stream.reconnects} reconnects`
      : `${media.stream.state}${media.stream.last_error ? ` (${media.stream.last_error})` : ""}`]);
  }
  for (const [codec, e] of Object.entries((media.encoder && media.encoder.encodes) || {})) {
    if (!e.subscribers) continue;
    rows.push([`${codec} encoder`, `${e.encoder || "-"}, ${e.bitrate_kbps} kbps, for ${e.subscriber_names.join(", ")}`]);
  }
  fillTable($("media"), rows);
}

function playoutText(p) {
  // What the member's jitter buffer does: its delay against its target, and concealment.
  if (!p || typeof p.delay_ms !== "number") return "";
  return `${Math.round(p.delay_ms)} ms (target ${Math.round(p.target_ms)}), ` +
    `${p.concealed_pct}% concealed`;
}

function showPlayout(stats) {
  for (const [id, p] of Object.entries((stats && stats.members) || {})) {
    const span = document.querySelector(`[data-member="${CSS.escape(String(id))}"] .playout`);
    if (span) span.textContent = playoutText(p);
  }
}

function renderMember(m) {
  const flags = [];
  if (m.audio_muted) flags.push(el("span", { className: "flag muted", textContent: "muted" }));
  else if (m.mic_off) flags.push(el("span", { className: "flag muted", textContent: "mic off" }));
  if (m.locally_muted) flags.push(el("span", { className: "flag muted", textContent: "silenced here" }));
  if (m.hand_raised) flags.push(el("span", { className: "flag", textContent: "hand up" }));
  const mute = el("button", { textContent: m.locally_muted ? "Unmute" : "Mute" });
  mute.addEventListener("click", () => act("POST", `/api/members/${encodeURIComponent(m.id)}/mute`,
    { muted: !m.locally_muted }));
  const playout = el("span", { className: "playout",
    textContent: playoutText(status && status.stats && status.stats.members
      && status.stats.members[String(m.id)]) });
  const li = el("li", {}, el("span", { className: `dot${m.talking ? " talking" : ""}` }),
    el("span", { className: "name", textContent: m.display || m.id }), ...flags, playout,
    ...(typeof pinButton === "function" ? pinButton(m) : []), mute);
  li.dataset.member = m.id;
  return li;
}

// -- controls ---------------------------------------------------------------------------

function setToggle(id, on, label) {
  const b = $(id);
  b.classList.toggle("on", !!on);
  b.classList.toggle("off", !on);
  b.textContent = `${label} ${on ? "on" : "off"}`;
  b.dataset.on = on ? "1" : "";
}

function renderControls(s) {
  const c = s.room.controls;
  for (const id of ["mic", "speaker", "video", "hand", "mic-volume", "speaker-volume"]) {
    $(id).disabled = !c;
  }
  if (c) {
    setToggle("mic", c.mic_enabled, "Mic");
    setToggle("speaker", c.speaker_enabled, "Speaker");
    setToggle("video", c.video_enabled, "Camera");
    setToggle("hand", c.hand_raised, "Hand");
    for (const t of ["mic", "speaker"]) {
      if (document.activeElement !== $(`${t}-volume`)) $(`${t}-volume`).value = c[`${t}_volume`];
      $(`${t}-volume-out`).textContent = c[`${t}_volume`];
    }
  }
  const roles = s.virtual_buttons || [];
  $("buttons-card").hidden = !roles.length;
  const box = $("virtual-buttons");
  if (box.dataset.roles !== roles.join(",")) {
    box.dataset.roles = roles.join(",");
    box.replaceChildren(...roles.map(virtualButton));
  }
}

function virtualButton(role) {
  const b = el("button", { textContent: role.replace("_", " ") });
  b.dataset.role = role;
  // One request at a time, in order: a release must not overtake its press (the
  // appliance debounces the button like a real one).
  let queue = Promise.resolve();
  const send = (action) => {
    queue = queue.then(() => act("POST", `/api/buttons/${role}`, { action }));
  };
  b.addEventListener("pointerdown", (ev) => { ev.preventDefault(); send("press"); });
  b.addEventListener("pointerup", () => send("release"));
  b.addEventListener("pointerleave", (ev) => { if (ev.buttons) send("release"); });
  return b;
}

async function act(method, path, body) {
  $("control-error").textContent = "";
  try {
    const result = await api(method, path, body);
    scheduleRefresh();
    return result;
  } catch (err) {
    if (err.status !== 401) $("control-error").textContent = `${path}: ${err.message}`;
    return null;
  }
}

$("join").addEventListener("click", () => {
  const room = $("join-room").value.trim();
  // a number, or a room's name on a server that names its rooms
  act("POST", "/api/room/join", room ? { room: /^[0-9]+$/.test(room) ? Number(room) : room } : {});
});
$("leave").addEventListener("click", () => act("POST", "/api/room/leave", {}));
$("mic").addEventListener("click", () => act("POST", "/api/audio", { mic_enabled: !$("mic").dataset.on }));
$("speaker").addEventListener("click",
  () => act("POST", "/api/audio", { speaker_enabled: !$("speaker").dataset.on }));
$("video").addEventListener("click", () => act("POST", "/api/video", { enabled: !$("video").dataset.on }));
$("hand").addEventListener("click", () => act("POST", "/api/hand", { raised: !$("hand").dataset.on }));
for (const t of ["mic", "speaker"]) {
  $(`${t}-volume`).addEventListener("change", (ev) =>
    act("POST", "/api/audio", { [`${t}_volume`]: Number(ev.target.value) }));
}
$("message-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (await act("POST", "/api/room/message", { text: $("message-text").value })) {
    $("message-text").value = "";
  }
});
for (const b of document.querySelectorAll("[data-media]")) {
  b.addEventListener("click", () => act("POST", `/api/${b.dataset.media}`, { state: b.dataset.state }));
}

// -- settings ---------------------------------------------------------------------------

let settingsRows = [];
let settingsValues = {};
let redacted = "***";

async function loadSettings() {
  const data = await api("GET", "/api/config");
  settingsRows = data.schema;
  settingsValues = data.config;
  redacted = data.redacted;
  renderSettings();
}

function fieldId(key) { return `cfg-${key.replace(".", "-")}`; }

function renderSettings() {
  const sections = new Map();
  for (const row of settingsRows) {
    const section = row.key.split(".")[0];
    if (!sections.has(section)) sections.set(section, []);
    sections.get(section).push(row);
  }
  const cards = [];
  for (const [section, rows] of sections) {
    // lists of tables ([[link]]) are not edited here: the page has their own API for them
    const values = settingsValues[section];
    if (!values || typeof values !== "object" || Array.isArray(values)) continue;
    cards.push(el("fieldset", { className: "card" }, el("h3", { textContent: section }),
      ...rows.map((row) => renderField(row, settingsValues[section][row.key.split(".")[1]]))));
  }
  $("settings").replaceChildren(...cards);
}

function renderField(row, value) {
  const id = fieldId(row.key);
  let input;
  const base = row.type.replace(" (optional)", "");
  if (base === "boolean") {
    input = el("input", { type: "checkbox", id, checked: !!value });
  } else if (row.choices) {
    input = el("select", { id }, ...row.choices.map((c) => el("option", { value: String(c), textContent: String(c) })));
    input.value = String(value);
    // a key that takes true, false or a word: send the booleans back as booleans
    if (row.choices.some((c) => typeof c === "boolean")) input.dataset.bools = "1";
  } else if (base === "integer" || base === "number") {
    input = el("input", { type: "number", id, step: base === "integer" ? "1" : "any" });
    if (row.minimum !== null && row.minimum !== undefined) input.min = row.minimum;
    if (row.maximum !== null && row.maximum !== undefined) input.max = row.maximum;
    input.value = value === null ? "" : value;
  } else if (base === "table of integers") {
    input = el("input", { id, value: JSON.stringify(value || {}), placeholder: '{"mute": 17}' });
  } else {
    input = el("input", { id, type: row.secret ? "password" : "text", value: value === null ? "" : value,
      autocomplete: "off" });
    if (row.secret && value === redacted) input.placeholder = REDACTED_HINT;
  }
  input.dataset.key = row.key;
  input.dataset.type = base;
  input.dataset.optional = row.type.endsWith("(optional)") ? "1" : "";
  input.dataset.original = JSON.stringify(value === undefined ? null : value);
  const label = el("label", { htmlFor: id, textContent: row.key.split(".")[1] });
  const doc = el("p", { className: "doc", textContent: row.doc });
  const error = el("p", { className: "error", id: `${id}-error` });
  if (base === "boolean") {
    label.prepend(input);
    return el("div", { className: "field bool" }, label, doc, error);
  }
  return el("div", { className: "field" }, label, input, doc, error);
}

function readField(input) {
  const type = input.dataset.type;
  if (type === "boolean") return input.checked;
  const raw = input.value;
  if (input.dataset.bools && (raw === "true" || raw === "false")) return raw === "true";
  if (raw === "" && input.dataset.optional) return null;
  if (type === "integer" || type === "number") return raw === "" ? null : Number(raw);
  // room.room: a number, or a room's name on a server that names its rooms
  if (type === "integer or string") return /^[0-9]+$/.test(raw) ? Number(raw) : raw;
  if (type === "table of integers") {
    try { return JSON.parse(raw || "{}"); } catch (err) { throw new Error("not valid JSON"); }
  }
  return raw;
}

$("settings-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  for (const e of document.querySelectorAll("#settings .error")) e.textContent = "";
  const patch = {};
  let bad = false;
  for (const input of document.querySelectorAll("#settings [data-key]")) {
    let value;
    try { value = readField(input); } catch (err) {
      $(`${input.id}-error`).textContent = err.message;
      bad = true;
      continue;
    }
    if (JSON.stringify(value) === input.dataset.original) continue;
    const [section, key] = input.dataset.key.split(".");
    (patch[section] = patch[section] || {})[key] = value;
  }
  const result = $("settings-result");
  if (bad) { result.textContent = "Fix the fields marked in red."; return; }
  if (!Object.keys(patch).length) { result.textContent = "Nothing changed."; return; }
  try {
    const data = await api("PATCH", "/api/config", patch);
    settingsValues = data.config;
    renderSettings();
    const restarted = data.restart.length ? ` Restarted: ${data.restart.join(", ")}.` : "";
    const moved = data.pending ? " The web server restarts now: if its address or HTTPS changed, " +
      "open the page at the new address." : "";
    result.textContent = `Saved.${restarted}${moved}`;
  } catch (err) {
    const errors = (err.body && err.body.errors) || [];
    for (const issue of errors) {
      const box = $(`${fieldId(issue.key)}-error`);
      if (box) box.textContent = issue.message;
    }
    result.textContent = errors.length ? "Not saved: fix the fields marked in red." : `Not saved: ${err.message}`;
  }
});

$("password-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    const data = await api("POST", "/api/password", { current: $("pw-current").value, new: $("pw-new").value });
    csrf = data.csrf_token;
    sessionStorage.setItem("csrf", csrf);
    $("password-result").textContent = "Password changed; every other session was logged out.";
    $("pw-current").value = "";
    $("pw-new").value = "";
  } catch (err) {
    $("password-result").textContent = `Not changed: ${err.message}`;
  }
});

// -- logs -------------------------------------------------------------------------------

async function loadLogs() {
  try {
    const data = await api("GET", "/api/logs?lines=300");
    const pre = $("log");
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent = data.lines.join("\n");
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  } catch (err) { /* shown by the login view if it was a 401 */ }
}

// -- start ------------------------------------------------------------------------------

(async () => {
  try {
    const session = await api("GET", "/api/session");
    csrf = session.csrf_token;
    sessionStorage.setItem("csrf", csrf);
    await showApp();
  } catch (err) {
    if (err.status !== 401) showLogin(err.message);
  }
})();

// -- camera preview: live over WebRTC, refreshed JPEG snapshots as the fallback ----------

const PREVIEW_CONNECT_MS = 10000;
let previewPc = null;
let webrtcFailed = false; // until the page is reloaded: JPEG snapshots only

function showCamera(s) {
  $("camera-card").hidden = !(s.camera_preview || s.camera_webrtc);
  const live = s.camera_webrtc && !webrtcFailed && typeof RTCPeerConnection === "function";
  $("camera-video").hidden = !live;
  $("camera").hidden = live;
  if (currentTab !== "status") return;
  if (live) {
    if (!previewPc) startPreview().catch((err) => previewFailed(`${err.message || err}`));
  } else if (s.camera_preview) {
    $("camera").src = `/api/camera.jpg?t=${Date.now()}`;
  }
}

function waitIceGathering(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, ms);
  });
}

async function startPreview() {
  const pc = new RTCPeerConnection({ iceServers: [] });
  previewPc = pc;
  pc.addTransceiver("video", { direction: "recvonly" });
  const video = $("camera-video");
  pc.ontrack = (ev) => {
    video.srcObject = ev.streams[0] || new MediaStream([ev.track]);
    video.play().catch(() => {});
  };
  pc.onconnectionstatechange = () => {
    if (previewPc === pc && ["failed", "closed"].includes(pc.connectionState)) {
      previewFailed(`connection ${pc.connectionState}`);
    }
  };
  setTimeout(() => {
    if (previewPc === pc && !(pc.connectionState === "connected" && video.videoWidth > 0)) {
      previewFailed("no video within a few seconds");
    }
  }, PREVIEW_CONNECT_MS);
  await pc.setLocalDescription(await pc.createOffer());
  await waitIceGathering(pc, 2000); // the appliance takes no trickled candidates
  const answer = await api("POST", "/api/camera/offer",
    { sdp: pc.localDescription.sdp, type: "offer" });
  if (previewPc !== pc) return; // stopped meanwhile
  await pc.setRemoteDescription(answer);
}

function previewFailed(reason) {
  console.warn(`camera preview: ${reason}; showing snapshots instead`);
  webrtcFailed = true;
  stopPreview();
  $("camera-video").hidden = true;
  $("camera").hidden = false;
}

function stopPreview() {
  const pc = previewPc;
  previewPc = null;
  if (pc) pc.close(); // the appliance ends its side when the connection closes
  const video = $("camera-video");
  if (video) video.srcObject = null;
}

window.addEventListener("pagehide", stopPreview);

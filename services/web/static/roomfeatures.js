// The room's status, notice and metadata, requests to speak and chat moderation
// (docs/room.md), on the config page; only the appliance's HTTP API.
"use strict";

const ROOM_FEATURE_EVENTS = ["room-meta", "member-meta", "publish-request", "publish-answer",
  "chat-moderation", "moderation-refused"];

function renderRoomFeatures(s) {
  const f = s.room_features;
  $("room-features").hidden = !f;
  if (!f) return;
  const badge = $("rf-status");
  badge.textContent = f.status || "not set";
  badge.className = `badge room-${f.status || "none"}`;
  $("rf-notice").textContent = f.notice || "-";
  $("rf-meta").textContent = JSON.stringify(f.meta || {});
  const muted = f.chat.muted.length ? `; messages hidden from ${f.chat.muted.join(", ")}` : "";
  $("rf-chat").textContent = (f.chat.locked ? "only moderators may post" : "open") + muted;
  const names = new Map((s.room.members || []).map((m) => [String(m.id), m.display || m.id]));
  $("rf-requests").replaceChildren(...f.requests.map((r) => {
    const li = el("li", { textContent: `${names.get(r.id) || r.display || r.id} asks to speak ` });
    li.dataset.request = r.id;
    if (f.moderator) {
      for (const [label, answer] of [["Accept", "accept"], ["Reject", "reject"]]) {
        const b = el("button", { textContent: label });
        b.addEventListener("click", () => act("POST", "/api/actions/speak_answer",
          { id: String(r.id), answer }));
        li.append(b);
      }
    }
    return li;
  }));
  if (!f.requests.length) $("rf-requests").append(el("li", { textContent: "no requests" }));
  const controls = s.room.controls;
  const speak = $("rf-speak");
  speak.hidden = !controls || controls.role !== "listener";
  speak.textContent = f.own_request ? "Withdraw request" : "Ask to speak";
  speak.dataset.pending = f.own_request ? "1" : "";
  $("rf-moderator").hidden = !f.moderator;
  const lock = $("rf-lock");
  lock.dataset.on = f.chat.locked ? "1" : "";
  lock.textContent = f.chat.locked ? "Open chat to all" : "Only moderators may post";
  if (document.activeElement !== $("rf-status-set")) $("rf-status-set").value = f.status || "";
}

$("rf-speak").addEventListener("click", () => act("POST", "/api/actions/speak",
  { state: $("rf-speak").dataset.pending ? "cancel" : "request" }));
$("rf-status-set").addEventListener("change", (ev) => {
  if (ev.target.value) act("POST", "/api/actions/room_status", { status: ev.target.value });
});
$("rf-notice-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const notice = $("rf-notice-text").value.trim() || "-";
  if (await act("POST", "/api/actions/room_notice", { notice })) $("rf-notice-text").value = "";
});
$("rf-lock").addEventListener("click", () => act("POST", "/api/actions/chat_lock",
  { state: $("rf-lock").dataset.on ? "off" : "on" }));
$("rf-meta-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  let meta;
  try {
    meta = JSON.parse($("rf-meta-text").value);
  } catch (err) {
    $("control-error").textContent = `room metadata: not JSON (${err.message})`;
    return;
  }
  if (await act("POST", "/api/actions/meta", { scope: "room", op: "update", meta })) {
    $("rf-meta-text").value = "";
  }
});

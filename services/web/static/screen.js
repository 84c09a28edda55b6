// The room screen on the page: its layout and pinned member, the sim screen's picture,
// and the controls (layout buttons, pin per member). Uses app.js' $, el, act and status.
"use strict";

const LAYOUT_LABELS = { grid: "Grid", speaker: "Speaker", single: "Single" };

function screenShown(s) {
  return !!(s && s.display && s.display.backend && s.display.backend !== "off"
    && s.display.layout);
}

function renderScreen(s) {
  const d = s.display || {};
  const shown = screenShown(s);
  $("screen-card").hidden = !d.backend;
  $("screen-controls").hidden = !shown;
  const focus = (d.tiles || []).find((t) => t.main);
  $("screen-state").textContent = shown
    ? `${d.backend}, ${d.width}x${d.height}, ${d.layout} layout, ${(d.tiles || []).length} tiles`
      + (d.pinned ? `, pinned: ${(focus && focus.name) || d.pinned}` : "")
    : `no screen (${d.reason || "off"})`;
  for (const b of document.querySelectorAll("[data-layout]")) {
    b.classList.toggle("on", b.dataset.layout === d.layout);
  }
  $("screen-unpin").disabled = !d.pinned;
  $("screen").hidden = !(shown && d.backend === "sim");
}

// The sim screen's picture, refreshed twice a second while it is on the page (one request
// at a time: the next only after the last one loaded).
let screenLoading = false;
setInterval(() => {
  const img = $("screen");
  if (img.hidden || screenLoading || currentTab !== "status" || document.hidden) return;
  screenLoading = true;
  img.onload = img.onerror = () => { screenLoading = false; };
  img.src = `/api/display.jpg?t=${Date.now()}`;
}, 500);

function pinButton(m) {
  if (!screenShown(status)) return [];
  const pinned = status.display.pinned === String(m.id);
  const b = el("button", { textContent: pinned ? "Unpin" : "Pin", title: "show large on the screen" });
  b.addEventListener("click", () => act("POST", "/api/actions/pin_member",
    pinned ? {} : { id: String(m.id) }));
  return [b];
}

for (const b of document.querySelectorAll("[data-layout]")) {
  b.textContent = LAYOUT_LABELS[b.dataset.layout] || "Next";
  b.addEventListener("click", () => act("POST", "/api/actions/layout", { layout: b.dataset.layout }));
}
$("screen-unpin").addEventListener("click", () => act("POST", "/api/actions/pin_member", {}));

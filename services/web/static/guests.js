// The admin's guest links on the config page: make one (room membership only, until it
// expires), copy it, see them all, revoke one. Uses app.js' $, el and api.
"use strict";

function guestUrl(path) { return `${location.origin}${path}`; }

async function loadGuestLinks() {
  let data;
  try {
    data = await api("GET", "/api/guest-links");
  } catch (err) {
    $("guests-card").hidden = err.status === 404;  // no room for guests on this box
    return;
  }
  $("guests-card").hidden = false;
  const now = Date.now() / 1000;
  $("guest-links").replaceChildren(...data.links.map((link) => {
    const state = link.revoked ? "revoked" : link.expires <= now ? "expired"
      : `until ${new Date(link.expires * 1000).toLocaleString()}`;
    const li = el("li", {}, el("span", { className: "name",
      textContent: `${link.label || link.id} (${state})` }));
    if (!link.revoked && link.expires > now) {
      const revoke = el("button", { textContent: "Revoke" });
      revoke.addEventListener("click", async () => {
        await act("DELETE", `/api/guest-links/${encodeURIComponent(link.id)}`);
        loadGuestLinks();
      });
      li.append(revoke);
    }
    return li;
  }));
  if (!data.links.length) $("guest-links").append(el("li", { textContent: "none yet" }));
}

$("guest-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const made = await act("POST", "/api/guest-links", {
    label: $("guest-label").value.trim(),
    ttl_seconds: Number($("guest-hours").value) * 3600,
  });
  if (made) {
    $("guest-url").value = guestUrl(made.path);
    $("guest-new").hidden = false;
    loadGuestLinks();
  }
});

$("guest-copy").addEventListener("click", () => {
  $("guest-url").select();
  if (navigator.clipboard) navigator.clipboard.writeText($("guest-url").value).catch(() => {});
});

document.querySelector("nav [data-tab=controls]").addEventListener("click", loadGuestLinks);

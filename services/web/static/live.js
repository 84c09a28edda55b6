// The page's playbacks, devices switched live and input sensitivity (uses app.js's
// api/act/el helpers); renderLive(status) is called on every status refresh.
"use strict";

const SIM_CHOICES = {
  mic: ["tone:440", "tone:660", "tone:880", "silence"],
  speaker: ["speaker.wav", "speaker2.wav"],
  camera: ["pattern"],
};
const INVENTORY = { mic: "microphones", speaker: "speakers", camera: "cameras" };

function renderPlayback(p) {
  const paused = p.state === "paused";
  const toggle = el("button", { textContent: paused ? "Resume" : "Pause" });
  toggle.dataset.op = paused ? "playing" : "paused";
  toggle.addEventListener("click", () =>
    act("PATCH", `/api/playbacks/${p.id}`, { state: toggle.dataset.op }));
  const volume = el("input", { type: "range", min: 0, max: 100, value: p.volume,
    title: "volume" });
  volume.addEventListener("change", () =>
    act("PATCH", `/api/playbacks/${p.id}`, { volume: Number(volume.value) }));
  const stop = el("button", { textContent: "Stop" });
  stop.dataset.stop = p.id;
  stop.addEventListener("click", () => act("DELETE", `/api/playbacks/${p.id}`));
  const label = el("span", {
    className: "playback-label",
    textContent: `${p.id} ${p.kind} ${p.source} → ${p.destination}, ${p.state}` });
  const li = el("li", {}, label, toggle, volume, stop);
  li.dataset.playback = p.id;
  li.dataset.state = p.state;
  return li;
}

function deviceChoices(s, kind) {
  const ids = [];
  const listed = ((s.devices || {})[INVENTORY[kind]] || {}).devices || [];
  for (const d of listed) if (d.id) ids.push(String(d.id));
  if (s.sim) ids.push(...SIM_CHOICES[kind]);
  const inUse = (s.devices_in_use || {})[kind];
  if (inUse && !ids.includes(inUse)) ids.unshift(inUse);
  return { ids: [...new Set(ids)], inUse };
}

function renderLive(s) {
  const list = s.playbacks || [];
  const box = $("playbacks");
  const key = JSON.stringify(list.map((p) => [p.id, p.state, p.volume]));
  if (box.dataset.key !== key) {  // not rebuilt under a slider being moved
    box.dataset.key = key;
    box.replaceChildren(...list.map(renderPlayback));
    if (!list.length) box.append(el("li", { textContent: "nothing playing" }));
  }
  for (const kind of ["mic", "speaker", "camera"]) {
    const select = $(`device-${kind}`);
    const { ids, inUse } = deviceChoices(s, kind);
    if (select.dataset.ids !== ids.join("\n")) {
      select.dataset.ids = ids.join("\n");
      select.replaceChildren(...ids.map((id) => el("option", { value: id, textContent: id })));
    }
    // A choice not yet applied with its Use button stays as the person left it.
    if (!select.dataset.picked && inUse) select.value = inUse;
  }
  const turn = s.camera_orientation;
  $("camera-orientation").hidden = !turn;
  if (turn) {
    $("camera-mirror").checked = !!turn.mirror;
    if (document.activeElement !== $("camera-rotate")) $("camera-rotate").value = String(turn.rotate);
  }
  const sens = s.sensitivity;
  $("sensitivity").disabled = !sens;
  if (sens) {
    if (document.activeElement !== $("sensitivity")) $("sensitivity").value = sens.sensitivity;
    $("sensitivity-out").textContent = `${sens.sensitivity} (${sens.threshold_dbfs} dBFS)`;
  }
}

$("play-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = { [$("play-kind").value]: $("play-source").value,
    destination: $("play-destination").value };
  if (await act("POST", "/api/playbacks", body)) $("play-source").value = "";
});
for (const b of document.querySelectorAll("[data-device]")) {
  const select = $(`device-${b.dataset.device}`);
  select.addEventListener("change", () => { select.dataset.picked = "1"; });
  b.addEventListener("click", async () => {
    await act("POST", "/api/actions/device", { kind: b.dataset.device, id: select.value });
    delete select.dataset.picked;
    scheduleRefresh();
  });
}
$("sensitivity").addEventListener("change", (ev) =>
  act("POST", "/api/actions/sensitivity", { value: Number(ev.target.value) }));
$("camera-mirror").addEventListener("change", (ev) =>
  act("POST", "/api/actions/camera", { mirror: ev.target.checked ? "on" : "off" }));
$("camera-rotate").addEventListener("change", (ev) =>
  act("POST", "/api/actions/camera", { rotate: ev.target.value }));

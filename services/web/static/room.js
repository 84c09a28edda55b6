// The room page: a plain-JavaScript member of the box's room. It speaks the Janus
// WebSocket API to /api/room/ws, which passes only a member's requests on to the box's
// room server (and adds what the guest must not know: secrets, the PIN). Media goes
// straight between this browser and the box's Janus.
"use strict";

const params = new URLSearchParams(location.search);
const GUEST = params.get("guest") || "";
const $ = (id) => document.getElementById(id);

class Signalling {
  constructor() { this.pending = new Map(); this.handlers = new Map(); this.n = 0; }

  open() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${location.host}/api/room/ws` + (GUEST ? `?guest=${encodeURIComponent(GUEST)}` : "");
    return new Promise((resolve, reject) => {
      this.ws = new WebSocket(url, "janus-protocol");
      this.ws.onopen = () => resolve();
      this.ws.onerror = () => reject(new Error("the room cannot be reached (link expired or revoked?)"));
      this.ws.onclose = () => { if (this.onclose) this.onclose(); };
      this.ws.onmessage = (ev) => this.dispatch(JSON.parse(ev.data));
    });
  }

  dispatch(msg) {
    const waiter = msg.transaction && this.pending.get(msg.transaction);
    if (waiter) {
      if (msg.janus === "ack" && waiter.async) return;
      this.pending.delete(msg.transaction);
      if (msg.janus === "error") return waiter.reject(new Error(msg.error.reason));
      const data = msg.plugindata && msg.plugindata.data;
      if (data && data.error_code) return waiter.reject(new Error(data.error));
      return waiter.resolve(msg);
    }
    const handler = msg.sender && this.handlers.get(msg.sender);
    if (handler) handler(msg);
  }

  request(body, async = false) {
    const transaction = `t${++this.n}`;
    return new Promise((resolve, reject) => {
      this.pending.set(transaction, { resolve, reject, async });
      this.ws.send(JSON.stringify({ transaction, ...body }));
    });
  }

  async session() {
    this.sid = (await this.request({ janus: "create" })).data.id;
    this.keepalive = setInterval(() => this.request({ janus: "keepalive", session_id: this.sid })
      .catch(() => {}), 20000);
  }

  async attach(onEvent, plugin = "janus.plugin.videoroom") {
    const r = await this.request({ janus: "attach", plugin, session_id: this.sid });
    this.handlers.set(r.data.id, onEvent);
    return r.data.id;
  }

  message(handle, body, jsep) {
    return this.request({ janus: "message", session_id: this.sid, handle_id: handle, body,
                          ...(jsep ? { jsep } : {}) }, true);
  }
}

const sig = new Signalling();
const members = new Map();  // feed id -> {display, talking, muted}
const subscribed = new Map();  // feed id -> {handle, pc}
let me = null;
let stream = null;
let chat = null;  // the TextRoom data channel: messages and hands
let handUp = false;
const MARKER = "edgeroom";  // custom messages: {"edgeroom": 1, "cmd", "payload"}

function render() {
  $("room-count").textContent = `(${members.size + 1})`;
  const items = [["you", { display: `${$("name").value} (you)`, talking: false, hand: handUp,
                           muted: !stream || !stream.getAudioTracks().every((t) => t.enabled) }],
                 ...members.entries()];
  $("room-members").replaceChildren(...items.map(([id, m]) => {
    const li = document.createElement("li");
    li.dataset.member = id;
    const dot = document.createElement("span");
    dot.className = `dot${m.talking ? " talking" : ""}`;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = m.display || id;
    li.append(dot, name);
    if (m.hand) {
      const flag = document.createElement("span");
      flag.className = "flag";
      flag.textContent = "hand up";
      li.append(flag);
    }
    if (m.muted) {
      const flag = document.createElement("span");
      flag.className = "flag muted";
      flag.textContent = "muted";
      li.append(flag);
    }
    return li;
  }));
}

function waitGathering(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
    setTimeout(resolve, 3000);
  });
}

function publishers(list) {
  for (const p of list || []) {
    const id = String(p.id);
    const audio = (p.streams || []).filter((s) => s.type === "audio");
    const known = members.get(id) || {};
    members.set(id, { ...known, display: p.display || id, talking: !!p.talking,
                      muted: audio.some((s) => s.moderated) });
    if (!subscribed.has(id)) subscribe(p.id).catch((err) => console.warn("subscribe", err));
  }
  render();
}

function gone(feed) {
  const id = String(feed);
  members.delete(id);
  const sub = subscribed.get(id);
  if (sub) { sub.pc.close(); subscribed.delete(id); }
  const box = document.querySelector(`[data-feed="${CSS.escape(id)}"]`);
  if (box) box.remove();
  render();
}

function onPublisherEvent(msg) {
  const data = (msg.plugindata && msg.plugindata.data) || {};
  if (data.publishers) publishers(data.publishers);
  if (data.leaving || data.unpublished) gone(data.leaving || data.unpublished);
  if (data.videoroom === "talking" || data.videoroom === "stopped-talking") {
    const m = members.get(String(data.id));
    if (m) { m.talking = data.videoroom === "talking"; render(); }
  }
  if (msg.jsep && me && me.pc) me.pc.setRemoteDescription(msg.jsep);
}

async function subscribe(feed) {
  const id = String(feed);
  const pc = new RTCPeerConnection({ iceServers: [] });
  const answer = async (msg) => {
    if (!msg.jsep || msg.jsep.type !== "offer") return;
    await pc.setRemoteDescription(msg.jsep);
    await pc.setLocalDescription(await pc.createAnswer());
    await waitGathering(pc);
    await sig.message(handle, { request: "start" }, pc.localDescription.toJSON());
  };
  const handle = await sig.attach(answer);  // offers the server makes on its own
  subscribed.set(id, { handle, pc });
  pc.ontrack = (ev) => {
    let box = document.querySelector(`[data-feed="${CSS.escape(id)}"]`);
    if (!box) {
      box = document.createElement("video");
      box.dataset.feed = id;
      box.autoplay = true;
      box.playsInline = true;
      box.srcObject = new MediaStream();
      $("videos").append(box);
    }
    box.srcObject.addTrack(ev.track);
    box.play().catch(() => {});
  };
  const key = me && me.privateId !== undefined ? { private_id: me.privateId } : {};
  await answer(await sig.message(handle, { request: "join", ptype: "subscriber",
                                            streams: [{ feed }], use_msid: false, ...key }));
}

async function join(name) {
  await sig.open();
  sig.onclose = () => { $("room-error").textContent = "disconnected from the room"; };
  await sig.session();
  const handle = await sig.attach(onPublisherEvent);
  const joined = await sig.message(handle, { request: "join", ptype: "publisher", display: name });
  stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
  const pc = new RTCPeerConnection({ iceServers: [] });
  for (const track of stream.getTracks()) pc.addTrack(track, stream);
  // private_id: a room with require_pvtid takes subscriptions only with it
  me = { handle, pc, id: joined.plugindata.data.id, privateId: joined.plugindata.data.private_id };
  await pc.setLocalDescription(await pc.createOffer());
  await waitGathering(pc);
  const reply = await sig.message(handle, { request: "publish" }, pc.localDescription.toJSON());
  if (reply.jsep) await pc.setRemoteDescription(reply.jsep);
  publishers(joined.plugindata.data.publishers);
  openChat(joined.plugindata.data.room, String(me.id), name)
    .catch((err) => console.warn("messages unavailable:", err));
  $("join-view").hidden = true;
  $("room-view").hidden = false;
  render();
}

// -- messages and hands: TextRoom over a data channel --------------------------------

function showMessage(from, text) {
  const sender = from === "you" ? "you" : ((members.get(from) || {}).display || from);
  const li = document.createElement("li");
  li.textContent = `${sender}: ${text}`;
  $("messages").append(li);
}

function received(msg) {
  if (msg.textroom !== "message") return;
  const from = String(msg.from);
  let custom = null;
  try { custom = msg.text.startsWith("{") ? JSON.parse(msg.text) : null; } catch (e) { custom = null; }
  if (custom && custom[MARKER] === 1) {
    if (custom.cmd === "hand" && members.has(from)) {
      members.get(from).hand = !!(custom.payload && custom.payload.raised);
      render();
    }
    return;
  }
  showMessage(from, msg.text);
}

async function openChat(room, username, display) {
  const handle = await sig.attach((msg) => {}, "janus.plugin.textroom");
  const reply = await sig.message(handle, { request: "setup" });
  const pc = new RTCPeerConnection({ iceServers: [] });
  await pc.setRemoteDescription(reply.jsep);
  const channel = pc.createDataChannel("JanusDataChannel", { ordered: true });
  await pc.setLocalDescription(await pc.createAnswer());
  await waitGathering(pc);
  await sig.message(handle, { request: "ack" }, pc.localDescription.toJSON());
  await new Promise((resolve) => { channel.onopen = resolve; });
  channel.onmessage = (ev) => received(JSON.parse(ev.data));
  channel.send(JSON.stringify({ textroom: "join", transaction: "j", room, username, display }));
  chat = { channel, room, n: 0 };
  $("chat").hidden = false;
}

function say(text) {
  if (!chat) return;
  chat.channel.send(JSON.stringify({ textroom: "message", transaction: `m${++chat.n}`,
                                     room: chat.room, text }));
}

$("message-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = $("message-text").value.trim();
  if (!text) return;
  say(text);
  showMessage("you", text);
  $("message-text").value = "";
});

$("hand").addEventListener("click", () => {
  handUp = !handUp;
  say(JSON.stringify({ [MARKER]: 1, cmd: "hand", payload: { raised: handUp } }));
  $("hand").textContent = handUp ? "Lower hand" : "Raise hand";
  render();
});

$("join-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  $("room-error").textContent = "";
  join($("name").value.trim() || "guest").catch((err) => {
    $("room-error").textContent = String(err.message || err);
  });
});

$("mute").addEventListener("click", () => {
  if (!stream) return;
  const on = !stream.getAudioTracks()[0].enabled;
  for (const t of stream.getAudioTracks()) t.enabled = on;
  $("mute").textContent = on ? "Mic on" : "Mic off";
  render();
});

$("leave").addEventListener("click", () => location.reload());

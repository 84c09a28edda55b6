// Reference peer for the benchmarks: speaks the Janus WebSocket API directly (VideoRoom,
// audio only) and times click onsets on the blocks a MediaStreamTrackProcessor hands
// out, on wall-clock time (performance.timeOrigin + performance.now()), which pages in
// different Chromium processes on one machine share.
'use strict';

const params = new URLSearchParams(location.search);
const ROLE = params.get('role');          // pub | sub | join
const JANUS = params.get('janus');        // ws://host:port
const ROOM = Number(params.get('room'));
const FEED = Number(params.get('feed'));  // publisher id (ours or the pub page's)
const TRIALS = Number(params.get('trials') || 20);

function log(...a) { document.getElementById('log').textContent += a.join(' ') + '\n'; }

async function report(kind, data) {
  await fetch('/report', {method: 'POST', headers: {'content-type': 'application/json'},
                          body: JSON.stringify({role: ROLE, kind, data})});
}

window.addEventListener('error', (e) => report('error', String(e.message)));
window.addEventListener('unhandledrejection', (e) => report('error', String(e.reason)));

// -- a small Janus client ----------------------------------------------------------------

class Janus {
  constructor(url) {
    this.url = url;
    this.pending = new Map();   // transaction -> {resolve, reject, async}
    this.handlers = new Map();  // handle id -> callback(msg)
    this.n = 0;
  }

  open() {
    return new Promise((resolve, reject) => {
      this.ws = new WebSocket(this.url, 'janus-protocol');
      this.ws.onopen = () => resolve();
      this.ws.onerror = () => reject(new Error('websocket error'));
      this.ws.onmessage = (ev) => this.dispatch(JSON.parse(ev.data));
    });
  }

  dispatch(msg) {
    const waiter = msg.transaction && this.pending.get(msg.transaction);
    if (waiter) {
      if (msg.janus === 'ack' && waiter.async) return;
      this.pending.delete(msg.transaction);
      if (msg.janus === 'error') return waiter.reject(new Error(JSON.stringify(msg.error)));
      const data = msg.plugindata && msg.plugindata.data;
      if (data && data.error_code) return waiter.reject(Object.assign(
        new Error(data.error), {code: data.error_code}));
      return waiter.resolve(msg);
    }
    const h = msg.sender && this.handlers.get(msg.sender);
    if (h) h(msg);
  }

  request(body, async = false) {
    const transaction = 't' + (++this.n);
    return new Promise((resolve, reject) => {
      this.pending.set(transaction, {resolve, reject, async});
      this.ws.send(JSON.stringify(Object.assign({transaction}, body)));
    });
  }

  async session() {
    const r = await this.request({janus: 'create'});
    this.sid = r.data.id;
    this.keepalive = setInterval(() => this.request({janus: 'keepalive', session_id: this.sid})
      .catch(() => {}), 20000);
  }

  async attach(onEvent) {
    const r = await this.request({janus: 'attach', plugin: 'janus.plugin.videoroom',
                                  session_id: this.sid});
    const hid = r.data.id;
    if (onEvent) this.handlers.set(hid, onEvent);
    return hid;
  }

  message(hid, body, jsep) {
    const m = {janus: 'message', session_id: this.sid, handle_id: hid, body};
    if (jsep) m.jsep = jsep;
    return this.request(m, true);
  }

  close() {
    clearInterval(this.keepalive);
    try { this.ws.send(JSON.stringify({janus: 'destroy', session_id: this.sid,
                                       transaction: 'bye'})); } catch (e) {}
    this.ws.close();
  }
}

function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') resolve();
    });
  });
}

async function localAudio() {
  return navigator.mediaDevices.getUserMedia({audio: {echoCancellation: false,
    noiseSuppression: false, autoGainControl: false}, video: false});
}

async function publish(janus, stream, id) {
  const hid = await janus.attach();
  const body = {request: 'join', ptype: 'publisher', room: ROOM, display: 'chromium-' + ROLE};
  if (id) body.id = id;
  await janus.message(hid, body);
  const pc = new RTCPeerConnection();
  for (const t of stream.getAudioTracks()) pc.addTransceiver(t, {direction: 'sendonly'});
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const r = await janus.message(hid, {request: 'configure', audio: true, video: false},
    {type: 'offer', sdp: pc.localDescription.sdp, trickle: false});
  await pc.setRemoteDescription(r.jsep);
  return pc;
}

async function subscribe(janus, feed, ontrack) {
  const hid = await janus.attach();
  let r;
  for (;;) {  // the feed may not be published yet
    try {
      r = await janus.message(hid, {request: 'join', ptype: 'subscriber', room: ROOM,
                                    streams: [{feed}]});
      break;
    } catch (e) {
      if (e.code !== 428 && e.code !== 429) throw e;
      await new Promise((ok) => setTimeout(ok, 100));
    }
  }
  const pc = new RTCPeerConnection();
  pc.ontrack = (ev) => ontrack(ev.streams[0] || new MediaStream([ev.track]));
  await pc.setRemoteDescription(r.jsep);
  await pc.setLocalDescription(await pc.createAnswer());
  await gathered(pc);
  await janus.message(hid, {request: 'start'},
    {type: 'answer', sdp: pc.localDescription.sdp, trickle: false});
  return pc;
}

// -- timing ------------------------------------------------------------------------------

function perfToEpochMs(perf) { return performance.timeOrigin + perf; }

// Onsets straight off the track (MediaStreamTrackProcessor). Each block carries its
// timestamp on the page's performance timeline (microseconds): its capture time for the
// local microphone, the time it was handed to the audio renderer for a received track
// (playout-ready). The page may see the block later than that (a busy main thread);
// the timestamp does not move with it.
async function trackDetector(track, threshold, onOnset) {
  const reader = new MediaStreamTrackProcessor({track}).readable.getReader();
  let quietUntil = -Infinity;
  let buf = new Float32Array(0);
  let stopped = false;
  (async () => {
    while (!stopped) {
      const {value, done} = await reader.read();
      if (done) break;
      const n = value.numberOfFrames;
      const rate = value.sampleRate;
      if (buf.length < n) buf = new Float32Array(n);
      value.copyTo(buf, {planeIndex: 0, format: 'f32-planar'});
      value.close();
      const t0 = value.timestamp / 1000;
      for (let i = 0; i < n; i++) {
        const t = t0 + i / rate * 1000;
        if (Math.abs(buf[i]) >= threshold && t >= quietUntil) {
          onOnset(perfToEpochMs(t));
          quietUntil = t + 150;
        }
      }
    }
  })();
  return () => { stopped = true; reader.cancel().catch(() => {}); };
}

function play(stream) {
  // Chromium only renders remote WebRTC audio that is attached to a media element.
  const el = document.getElementById('out');
  el.srcObject = stream;
  el.play().catch((e) => log('play', e));
}

// The level of a sine of HZ in each 20 ms of a received track (a least-squares fit of a
// sine and a cosine, as tests/harness/audio.py does), stamped with the window's start on
// wall-clock time (ms): what the page's audio renderer was handed.
function toneFit(x, hz, rate) {
  let ss = 0, cc = 0, sc = 0, xs = 0, xc = 0;
  for (let i = 0; i < x.length; i++) {
    const w = 2 * Math.PI * hz * i / rate, s = Math.sin(w), c = Math.cos(w);
    ss += s * s; cc += c * c; sc += s * c; xs += x[i] * s; xc += x[i] * c;
  }
  const det = ss * cc - sc * sc;
  return Math.hypot((xs * cc - xc * sc) / det, (xc * ss - xs * sc) / det);
}

async function toneLevels(track, hz, out) {
  const reader = new MediaStreamTrackProcessor({track}).readable.getReader();
  let buf = new Float32Array(0), win = null, fill = 0, winT = 0;
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    const n = value.numberOfFrames, rate = value.sampleRate;
    if (buf.length < n) buf = new Float32Array(n);
    value.copyTo(buf, {planeIndex: 0, format: 'f32-planar'});
    const t0 = perfToEpochMs(value.timestamp / 1000);
    value.close();
    if (!win) win = new Float32Array(Math.round(rate * 0.02));
    for (let i = 0; i < n; i++) {
      if (fill === 0) winT = t0 + i / rate * 1000;
      win[fill++] = buf[i];
      if (fill === win.length) { out.push([winT, toneFit(win, hz, rate)]); fill = 0; }
    }
  }
}

async function receiveStats(pc) {
  for (const s of (await pc.getStats()).values()) {
    if (s.type === 'inbound-rtp' && s.kind === 'audio') {
      return {at: Date.now(), concealed: s.concealedSamples || 0,
              samples: s.totalSamplesReceived || 0, lost: s.packetsLost || 0,
              jb_delay: s.jitterBufferDelay || 0, jb_count: s.jitterBufferEmittedCount || 0,
              jb_target: s.jitterBufferTargetDelay || 0};
    }
  }
  return null;
}

// -- roles -------------------------------------------------------------------------------

async function runPub() {
  const stream = await localAudio();
  const onsets = [];
  await trackDetector(stream.getAudioTracks()[0], 0.12, (t) => onsets.push(t));
  const janus = new Janus(JANUS);
  await janus.open();
  await janus.session();
  await publish(janus, stream, FEED);
  await report('published', {});
  setInterval(() => report('onsets', onsets.splice(0)), 1000);
}

async function runSub() {
  await localAudio();  // without it Chromium hides its addresses behind mDNS names
  const onsets = [];
  const janus = new Janus(JANUS);
  await janus.open();
  await janus.session();
  await subscribe(janus, FEED, async (stream) => {
    play(stream);
    await trackDetector(stream.getAudioTracks()[0], 0.12, (t) => onsets.push(t));
  });
  await report('subscribed', {});
  setInterval(() => report('onsets', onsets.splice(0)), 1000);
}

// Publishes its microphone (a tone) and listens to the other page's feed (OTHER).
async function runTone() {
  const stream = await localAudio();
  const levels = [];
  const janus = new Janus(JANUS);
  await janus.open();
  await janus.session();
  await publish(janus, stream, FEED);
  const pc = await subscribe(janus, Number(params.get('other')), (s) => {
    play(s);
    toneLevels(s.getAudioTracks()[0], Number(params.get('hz')), levels);
  });
  await report('subscribed', {});
  setInterval(async () => {
    await report('levels', levels.splice(0));
    await report('stats', await receiveStats(pc));
  }, 1000);
}

async function runJoin() {
  const stream = await localAudio();
  const times = [];
  for (let i = 0; i < TRIALS; i++) {
    const t0 = performance.now();
    let stop = null;
    let resolveFirst;
    const first = new Promise((ok) => { resolveFirst = ok; });
    const janus = new Janus(JANUS);
    const pcs = [];
    try {
      await janus.open();
      await janus.session();
      pcs.push(await publish(janus, stream, 0));
      pcs.push(await subscribe(janus, FEED, async (s) => {
        play(s);
        stop = await trackDetector(s.getAudioTracks()[0], 0.03, (t) => resolveFirst(t));
      }));
      const t = await Promise.race([first, new Promise((ok) => setTimeout(ok, 10000))]);
      if (t) times.push(t - perfToEpochMs(t0));
    } catch (e) {
      log('trial', i, e);
    }
    if (stop) stop();
    for (const pc of pcs) pc.close();
    janus.close();
    await new Promise((ok) => setTimeout(ok, 300));
  }
  await report('join', times);
}

(async () => {
  try {
    if (ROLE === 'pub') await runPub();
    else if (ROLE === 'sub') await runSub();
    else if (ROLE === 'join') await runJoin();
    else if (ROLE === 'tone') await runTone();
    else throw new Error('unknown role ' + ROLE);
  } catch (e) {
    log(e);
    await report('error', String(e && e.stack || e));
  }
})();

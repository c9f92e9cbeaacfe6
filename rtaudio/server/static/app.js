// rtaudio browser page: microphone -> /v1/stream -> live captions; text -> speech played as it arrives.
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const token = params.get("token");

const state = {          // also read by the end-to-end test (window.rtaudio)
  ws: null, started: null, rate: 16000,
  sentSamples: 0, sendTimes: [],          // [stream seconds sent so far, performance.now()]
  finals: [], partial: "", latencies: [], serverLatencies: [], errors: [],
  tts: { id: null, rate: 0, chunks: 0, requested: 0, firstChunkMs: null, done: [], playhead: 0 },
  ctx: null, mic: null, node: null, source: null,
};
window.rtaudio = state;

function wsUrl() {
  const u = new URL("/v1/stream", location.href);
  u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (token) u.searchParams.set("token", token);
  return u.toString();
}

function setStatus(text, cls) {
  const el = $("status");
  el.textContent = text;
  el.className = "status " + (cls || "");
}

function fmtTime(s, vtt) {
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const ss = sec.toFixed(3).padStart(6, "0");
  return vtt ? `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}:${ss}`
             : `${String(m).padStart(2, "0")}:${sec.toFixed(1).padStart(4, "0")}`;
}

function percentile(xs, q) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

// -- connection -------------------------------------------------------------------------------------
function connect(rate) {
  if (state.ws && state.ws.readyState <= 1 && state.rate === rate && !state.ended) return state.started;
  if (state.ws) state.ws.close();
  state.rate = rate;
  state.sentSamples = 0;
  state.sendTimes = [];
  state.ended = false;
  const ws = new WebSocket(wsUrl());
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  state.started = new Promise((resolve, reject) => {
    ws.onopen = () => ws.send(JSON.stringify({
      type: "session.start",
      config: { audio: { encoding: "pcm_s16le", sample_rate_hz: rate, channels: 1 }, partial_interval_ms: 500 },
    }));
    ws.onmessage = (m) => onMessage(m, resolve, reject);
    ws.onerror = () => { setStatus("connection error", "error"); reject(new Error("websocket error")); };
    ws.onclose = (e) => {
      setStatus(`closed (${e.code}${e.reason ? " " + e.reason : ""})`, e.code === 1000 ? "" : "error");
      reject(new Error("closed"));
    };
  });
  return state.started;
}

function onMessage(m, resolve, reject) {
  if (typeof m.data !== "string") { playChunk(m.data); return; }
  const ev = JSON.parse(m.data);
  switch (ev.type) {
    case "session.started": setStatus(`connected · session ${ev.session_id}`, "live"); resolve(ev); break;
    case "caption": onCaption(ev); break;
    case "audio.ended": state.ended = true; setStatus(`audio ended (${ev.audio_s.toFixed(1)} s captioned)`); break;
    case "tts.started":
      state.tts.id = ev.id; state.tts.rate = ev.sample_rate_hz; state.tts.chunks = 0; state.tts.firstChunkMs = null;
      break;
    case "tts.done":
      state.tts.done.push(ev);
      $("tts-status").textContent = `spoke ${ev.audio_s.toFixed(2)} s in ${ev.chunks} chunks; first chunk ` +
        `${state.tts.firstChunkMs === null ? "–" : state.tts.firstChunkMs.toFixed(0)} ms after the request`;
      break;
    case "error":
      state.errors.push(ev);
      setStatus(`error ${ev.code}: ${ev.message}`, "error");
      if (!ev.fatal && ev.code !== "bad_text") break;
      reject(new Error(ev.message));
      break;
    default: break;
  }
}

// -- captions ---------------------------------------------------------------------------------------
function sendTimeOf(seconds) {
  for (const [s, t] of state.sendTimes) if (s >= seconds - 0.001) return t;
  return null;
}

function onCaption(ev) {
  if (!ev.is_final) {
    const t = sendTimeOf(ev.decoded_until_s);
    if (t !== null) {
      const lat = performance.now() - t;
      state.latencies.push(lat);
      $("lat-last").textContent = lat.toFixed(0);
      $("lat-p50").textContent = percentile(state.latencies, 0.5).toFixed(0);
      $("lat-p95").textContent = percentile(state.latencies, 0.95).toFixed(0);
      $("lat-n").textContent = state.latencies.length;
    }
    state.serverLatencies.push(ev.server_latency_ms);
    $("lat-server").textContent = ev.server_latency_ms.toFixed(0);
    state.partial = ev.text;
    $("partial").textContent = ev.text ? ev.text + " …" : "";
    return;
  }
  state.partial = "";
  $("partial").textContent = "";
  if (!ev.text) return;
  state.finals.push({ start: ev.start_s, end: ev.end_s, text: ev.text });
  const p = document.createElement("p");
  p.className = "final";
  const time = document.createElement("time");
  time.textContent = fmtTime(ev.start_s, false);
  p.append(time, document.createTextNode(ev.text));
  $("finals").append(p);
  p.scrollIntoView({ block: "end" });
  $("vtt").disabled = false;
}

function toVtt() {
  const cues = state.finals.map((c, i) =>
    `${i + 1}\n${fmtTime(c.start, true)} --> ${fmtTime(Math.max(c.end, c.start + 0.5), true)}\n${c.text}\n`);
  return "WEBVTT\n\n" + cues.join("\n");
}
window.rtaudioVtt = toVtt;

// -- audio in ----------------------------------------------------------------------------------------
function sendBlock(block) {
  const ws = state.ws;
  if (!ws || ws.readyState !== 1 || state.ended) return;
  const pcm = new Int16Array(block.length);
  for (let i = 0; i < block.length; i++) {
    const v = Math.max(-1, Math.min(1, block[i]));
    pcm[i] = v < 0 ? v * 32768 : v * 32767;
  }
  ws.send(pcm.buffer);
  state.sentSamples += block.length;
  state.sendTimes.push([state.sentSamples / state.rate, performance.now()]);
  if (state.sendTimes.length > 3000) state.sendTimes.splice(0, 1000);
  $("sent-s").textContent = (state.sentSamples / state.rate).toFixed(1);
}

async function audioContext() {
  if (!state.ctx) {
    state.ctx = new AudioContext();
    await state.ctx.audioWorklet.addModule("/static/worklet.js");
  }
  if (state.ctx.state === "suspended") await state.ctx.resume();
  return state.ctx;
}

async function startCapture(makeSource) {
  $("mic").disabled = true; $("demo").disabled = true; $("stop").disabled = false;
  try {
    const ctx = await audioContext();
    await connect(ctx.sampleRate);
    const node = new AudioWorkletNode(ctx, "capture-processor");
    node.port.onmessage = (e) => sendBlock(e.data);
    const silent = ctx.createGain();
    silent.gain.value = 0;
    node.connect(silent).connect(ctx.destination);
    state.node = node;
    state.source = await makeSource(ctx, node);
  } catch (e) {
    setStatus(`cannot start: ${e.message}`, "error");
    $("mic").disabled = false; $("demo").disabled = false; $("stop").disabled = true;
  }
}

async function startMic() {
  await startCapture(async (ctx, node) => {
    state.mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
    });
    const src = ctx.createMediaStreamSource(state.mic);
    src.connect(node);
    return src;
  });
}

async function startDemo() {
  await startCapture(async (ctx, node) => {
    const data = await (await fetch("/demo.wav")).arrayBuffer();
    const buffer = await ctx.decodeAudioData(data);
    const src = ctx.createBufferSource();
    src.buffer = buffer;
    src.connect(node);
    src.connect(ctx.destination);
    src.onended = () => stop();
    src.start();
    return src;
  });
}

function stop() {
  if (state.mic) state.mic.getTracks().forEach((t) => t.stop());
  if (state.source) state.source.disconnect();
  if (state.node) state.node.disconnect();
  state.mic = state.source = state.node = null;
  if (state.ws && state.ws.readyState === 1 && !state.ended) state.ws.send(JSON.stringify({ type: "audio.end" }));
  $("mic").disabled = false; $("demo").disabled = false; $("stop").disabled = true;
}

// -- speech out ---------------------------------------------------------------------------------------
function playChunk(buf) {
  const tts = state.tts;
  tts.chunks += 1;
  if (tts.firstChunkMs === null) tts.firstChunkMs = performance.now() - tts.requested;
  const pcm = new Int16Array(buf);
  const ctx = state.ctx;
  if (!ctx || !tts.rate || !pcm.length) return;
  const audio = ctx.createBuffer(1, pcm.length, tts.rate);
  const ch = audio.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) ch[i] = pcm[i] / 32768;
  const src = ctx.createBufferSource();
  src.buffer = audio;
  src.connect(ctx.destination);
  tts.playhead = Math.max(tts.playhead, ctx.currentTime + 0.05);
  src.start(tts.playhead);
  tts.playhead += audio.duration;
}

async function say() {
  const text = $("text").value.trim();
  if (!text) return;
  try {
    const ctx = await audioContext();
    if (!state.ws || state.ws.readyState > 1) await connect(ctx.sampleRate);
    await state.started;
    state.tts.requested = performance.now();
    $("tts-status").textContent = "synthesizing…";
    state.ws.send(JSON.stringify({ type: "tts.speak", id: `web-${Date.now()}`, text }));
  } catch (e) {
    $("tts-status").textContent = `cannot speak: ${e.message}`;
  }
}

function downloadVtt() {
  const blob = new Blob([toVtt()], { type: "text/vtt" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = "captions.vtt";
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

$("mic").onclick = startMic;
$("demo").onclick = startDemo;
$("stop").onclick = stop;
$("say").onclick = say;
$("vtt").onclick = downloadVtt;
$("text").addEventListener("keydown", (e) => { if (e.key === "Enter") say(); });
fetch("/demo.wav", { method: "HEAD" }).then((r) => { $("demo").hidden = !r.ok; }).catch(() => {});

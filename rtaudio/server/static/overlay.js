// Caption overlay for an OBS Browser Source: follows one caption channel read-only over /v1/stream
// ("captions.subscribe", PROTOCOL.md) and shows the last lines, the partial line in italics.
// URL parameters: channel, token, font, size, color, outline, position (top|bottom), lines, chars,
// align, clear (seconds of silence before the text fades; 0 keeps it), bg (a preview background).
"use strict";

const params = new URLSearchParams(location.search);
const num = (name, fallback, lo, hi) => {
  const v = Number(params.get(name));
  return params.has(name) && Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : fallback;
};
const opts = {
  channel: params.get("channel") || "main",
  token: params.get("token"),
  lines: Math.round(num("lines", 2, 1, 6)),
  chars: Math.round(num("chars", 42, 10, 200)),
  clearS: num("clear", 8, 0, 3600),
  position: params.get("position") === "top" ? "top" : "bottom",
};
const KEEP_WORDS = 200;  // finals kept for wrapping: far more than any overlay shows
const PING_MS = 20000;   // below the server's idle timeout (60 s)
const KEEP_SHOWN = 1000; // caption log kept for inspection: bounded, a stream runs for hours

const box = document.getElementById("captions");
const root = document.body.style;
if (params.get("font")) root.setProperty("--font", params.get("font"));
if (params.has("size")) root.setProperty("--size", `${num("size", 48, 8, 400)}px`);
if (params.get("color")) root.setProperty("--color", params.get("color"));
if (params.get("outline")) root.setProperty("--outline", params.get("outline"));
if (["left", "center", "right"].includes(params.get("align"))) root.setProperty("--align", params.get("align"));
if (params.get("bg")) document.documentElement.style.background = params.get("bg");
box.classList.add(opts.position);

// What tests (and curious streamers, in the devtools console) can read.
const overlay = window.overlay = {
  options: opts, connects: 0, subscribed: false, errors: [], shown: [],
  finals: [], partial: [],
};

// Greedy word wrap into lines of at most `chars` characters; each word keeps its partial flag.
function wrap(words, chars) {
  const lines = [];
  let line = [], len = 0;
  for (const w of words) {
    const add = (line.length ? 1 : 0) + w.text.length;
    if (line.length && len + add > chars) {
      lines.push(line);
      line = [];
      len = 0;
    }
    line.push(w);
    len += (line.length > 1 ? 1 : 0) + w.text.length;
  }
  if (line.length) lines.push(line);
  return lines;
}

let fadeTimer = null;

function render() {
  const words = [...overlay.finals.map(text => ({text, partial: false})),
                 ...overlay.partial.map(text => ({text, partial: true}))];
  const lines = wrap(words, opts.chars).slice(-opts.lines);
  box.replaceChildren(...lines.map(line => {
    const div = document.createElement("div");
    div.className = "line";
    line.forEach((w, i) => {
      const span = document.createElement("span");
      if (w.partial) span.className = "partial";
      span.textContent = (i ? " " : "") + w.text;
      div.appendChild(span);
    });
    return div;
  }));
  box.classList.remove("faded");
  clearTimeout(fadeTimer);
  if (opts.clearS > 0) fadeTimer = setTimeout(() => box.classList.add("faded"), opts.clearS * 1000);
}

function onCaption(msg) {
  const words = msg.text.split(/\s+/).filter(Boolean);
  if (msg.is_final) {
    overlay.finals = overlay.finals.concat(words).slice(-KEEP_WORDS);
    overlay.partial = [];
  } else {
    overlay.partial = words;
  }
  render();
  // when each caption reached the screen (wall clock ms, comparable with the server's server_time_ms)
  overlay.shown.push({t_ms: Date.now(), sent_ms: msg.server_time_ms, final: msg.is_final,
                      segment_id: msg.segment_id, text: msg.text,
                      words: (msg.words || []).map(w => ({text: w.text.trim(), end_s: w.end_s}))});
  if (overlay.shown.length > KEEP_SHOWN) overlay.shown.splice(0, overlay.shown.length - KEEP_SHOWN);
}

function wsUrl() {
  const u = new URL("/v1/stream", location.href);
  u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (opts.token) u.searchParams.set("token", opts.token);
  return u.toString();
}

let attempt = 0;

function connect() {
  const ws = new WebSocket(wsUrl());
  let pinger = null;
  ws.onopen = () => {
    overlay.connects += 1;
    ws.send(JSON.stringify({type: "captions.subscribe", channel: opts.channel}));
    pinger = setInterval(() => ws.send(JSON.stringify({type: "ping"})), PING_MS);
  };
  ws.onmessage = (ev) => {
    if (typeof ev.data !== "string") return;
    const msg = JSON.parse(ev.data);
    if (msg.type === "captions.subscribed") {
      attempt = 0;
      overlay.subscribed = true;
      overlay.finals = [];  // the server replays the channel's recent captions next
      overlay.partial = [];
      render();
    } else if (msg.type === "caption") {
      onCaption(msg);
    } else if (msg.type === "error") {
      overlay.errors.push(msg);
      console.warn("rtaudio overlay:", msg.code, msg.message);
    }
  };
  ws.onclose = () => {
    clearInterval(pinger);
    overlay.subscribed = false;
    // the server restarted or the network blinked: back off 0.25 s, 0.5 s, 1 s ... 5 s, with jitter
    const delay = Math.min(5000, 250 * 2 ** attempt) * (0.8 + 0.4 * Math.random());
    attempt += 1;
    setTimeout(connect, delay);
  };
}

connect();

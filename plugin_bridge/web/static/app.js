// plugin-bridge web app: plain JavaScript, no build step, nothing fetched from the internet.
// All versions (A original, B mix preview, REF) play together through their own gain; switching
// changes which gain is open, so the switch lands at the same position by construction.
"use strict";

const pb = {
  info: null, sid: null, st: null, files: [],
  ctx: null, buffers: {}, sources: {}, gains: {},
  playing: false, startTime: 0, offset: 0, current: "a", matched: true,
  wave: null, drag: null, busy: 0,
};
window.pb = pb;

const $ = (id) => document.getElementById(id);
const fmt = (v, nd = 1) => (v === null || v === undefined || !isFinite(v) ? "-" : Number(v).toFixed(nd));

function status(text, error = false) {
  const el = $("status");
  el.textContent = text || "";
  el.className = error ? "error" : "";
}

async function call(method, url, body) {
  const opts = { method, headers: {} };
  if (body instanceof Blob) { opts.body = body; }
  else if (body !== undefined) { opts.body = JSON.stringify(body); opts.headers["Content-Type"] = "application/json"; }
  let resp;
  try { resp = await fetch(url, opts); } catch (e) { throw new Error("the server does not answer (" + e.message + ")"); }
  const text = await resp.text();
  let data = null;
  try { data = JSON.parse(text); } catch (e) { data = null; }
  if (!resp.ok) { throw new Error((data && data.error) || resp.status + " " + resp.statusText); }
  return data;
}

async function busy(label, fn) {
  pb.busy += 1;
  $("busy").textContent = label + "...";
  try { return await fn(); }
  catch (e) { status(e.message, true); return null; }
  finally { pb.busy -= 1; if (!pb.busy) $("busy").textContent = ""; }
}

// ---------------------------------------------------------------- parameter curves (params.py)
function toValue(p, n) {
  if (p.curve === "log" || p.curve === "db") return p.min * Math.pow(p.max / p.min, n);
  if (p.curve === "discrete") return p.min + Math.round((n * (p.max - p.min)) / p.step) * p.step;
  return p.min + n * (p.max - p.min);
}
function toPos(p, v) {
  if (p.curve === "log" || p.curve === "db") return Math.log(v / p.min) / Math.log(p.max / p.min);
  return (v - p.min) / (p.max - p.min);
}
function digits(p) { return p.unit === "ratio" || p.max - p.min <= 2 ? 3 : p.unit === "Hz" || p.unit === "ms" ? 0 : 2; }

// ---------------------------------------------------------------- player
function ensureCtx() {
  if (!pb.ctx) {
    pb.ctx = new (window.AudioContext || window.webkitAudioContext)();
    for (const v of ["a", "b", "ref"]) { pb.gains[v] = pb.ctx.createGain(); pb.gains[v].gain.value = 0; pb.gains[v].connect(pb.ctx.destination); }
  }
  return pb.ctx;
}

async function loadBuffer(which) {
  const ctx = ensureCtx();
  const resp = await fetch(`/api/s/${pb.sid}/audio/${which}?v=${pb.st.version}`);
  if (!resp.ok) throw new Error(`cannot load version ${which}`);
  const buf = await ctx.decodeAudioData(await resp.arrayBuffer());
  pb.buffers[which] = buf;
  if (pb.playing) restartSource(which);
  return buf;
}

function loopLength() { return pb.buffers.a ? pb.buffers.a.duration : 1; }
function position() {
  if (!pb.playing) return pb.offset;
  return (pb.ctx.currentTime - pb.startTime) % loopLength();
}

function restartSource(which) {
  if (pb.sources[which]) { try { pb.sources[which].stop(); } catch (e) { /* already stopped */ } }
  const buf = pb.buffers[which];
  if (!buf) return;
  const src = pb.ctx.createBufferSource();
  src.buffer = buf; src.loop = true; src.loopEnd = Math.min(buf.duration, loopLength());
  src.connect(pb.gains[which]);
  src.start(0, position() % src.loopEnd);
  pb.sources[which] = src;
}

function play() {
  const ctx = ensureCtx();
  ctx.resume();
  pb.startTime = ctx.currentTime - pb.offset;
  pb.playing = true;
  for (const v of Object.keys(pb.buffers)) restartSource(v);
  applyGains();
  $("play-btn").textContent = "Stop";
  requestAnimationFrame(tick);
}

function stop() {
  pb.offset = position();
  pb.playing = false;
  for (const v of Object.keys(pb.sources)) { try { pb.sources[v].stop(); } catch (e) { /* */ } }
  pb.sources = {};
  $("play-btn").textContent = "Play";
}

// the gain (dB) each version plays at: loudness-matched to the quietest version, or 0 (true levels)
function matchGainDb(which) {
  if (!pb.matched || !pb.st) return 0;
  const r = pb.st.readouts;
  const levels = Object.keys(pb.buffers).map((v) => r[v] && r[v].lufs).filter((x) => x !== null && x !== undefined);
  const own = r[which] && r[which].lufs;
  if (own === null || own === undefined || !levels.length) return 0;
  return Math.min(...levels) - own;
}

function applyGains() {
  if (!pb.ctx) return;
  for (const v of ["a", "b", "ref"]) {
    const target = v === pb.current && pb.buffers[v] ? Math.pow(10, matchGainDb(v) / 20) : 0;
    pb.gains[v].gain.setTargetAtTime(target, pb.ctx.currentTime, 0.008);
  }
}

function select(which) {
  if (which === "ref" && !pb.buffers.ref) return;
  pb.current = which;
  for (const b of document.querySelectorAll("button.ver")) b.classList.toggle("on", b.dataset.ver === which);
  applyGains();
  showReadout();
  drawSpectrum();
}

function tick() {
  drawWave();
  if (pb.playing) requestAnimationFrame(tick);
}

// ---------------------------------------------------------------- readouts and drawings
function showReadout() {
  if (!pb.st) return;
  const r = pb.st.readouts[pb.current] || {};
  $("ro-version").textContent = { a: "A original", b: "B mix (preview, before mastering)", ref: "REF " + (pb.st.reference || "") }[pb.current];
  $("ro-lufs").textContent = fmt(r.lufs);
  $("ro-tp").textContent = fmt(r.true_peak_dbtp);
  $("ro-lra").textContent = fmt(r.lra_lu);
  $("ro-width").textContent = fmt(r.width, 3);
  $("ro-corr").textContent = fmt(r.correlation, 2);
  $("ro-gain").textContent = fmt(matchGainDb(pb.current));
  $("ro-preview-ms").textContent = fmt(pb.st.preview_ms, 0);
  $("ro-preview-version").textContent = pb.st.version;
}

const CENTERS = Array.from({ length: 30 }, (_, i) => 1000 * Math.pow(2, (i - 16) / 3));

function drawSpectrum() {
  const c = $("spectrum"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  if (!pb.st) return;
  const lo = -60, hi = 10, fx = (f) => 40 + ((c.width - 50) * Math.log(f / 20)) / Math.log(20000 / 20);
  const fy = (d) => 10 + ((c.height - 30) * (hi - d)) / (hi - lo);
  g.strokeStyle = "#2a2e35"; g.fillStyle = "#777"; g.font = "10px sans-serif";
  for (const f of [50, 100, 200, 500, 1000, 2000, 5000, 10000]) { g.beginPath(); g.moveTo(fx(f), 10); g.lineTo(fx(f), c.height - 20); g.stroke(); g.fillText(f >= 1000 ? f / 1000 + "k" : f, fx(f) - 6, c.height - 6); }
  for (let d = lo; d <= hi; d += 10) { g.beginPath(); g.moveTo(40, fy(d)); g.lineTo(c.width - 10, fy(d)); g.stroke(); g.fillText(d, 8, fy(d) + 3); }
  const colors = { a: "#9aa0a6", b: "#ff9f43", ref: "#4fa3ff" };
  for (const v of ["a", "ref", "b"]) {
    const r = pb.st.readouts[v];
    if (!r) continue;
    g.strokeStyle = colors[v]; g.lineWidth = v === pb.current ? 2.5 : 1.2;
    g.beginPath();
    let first = true;
    r.spectrum_db.forEach((d, i) => {
      if (d === null || CENTERS[i] > pb.st.sample_rate * 0.45) return;
      const x = fx(CENTERS[i]), y = fy(Math.max(lo, Math.min(hi, d)));
      if (first) { g.moveTo(x, y); first = false; } else g.lineTo(x, y);
    });
    g.stroke();
  }
}

function drawWave() {
  const c = $("wave"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  if (!pb.wave || !pb.st) return;
  const peaks = pb.wave.peaks, dur = pb.wave.duration_s, mid = c.height / 2;
  const [ls, le] = pb.drag ? [Math.min(pb.drag.a, pb.drag.b), Math.max(pb.drag.a, pb.drag.b)] : pb.st.loop;
  g.fillStyle = "rgba(255,159,67,0.15)";
  g.fillRect((ls / dur) * c.width, 0, ((le - ls) / dur) * c.width, c.height);
  g.fillStyle = "#7d8590";
  peaks.forEach(([mn, mx], i) => {
    const x = (i / peaks.length) * c.width;
    g.fillRect(x, mid - mx * mid, Math.max(1, c.width / peaks.length), Math.max(1, (mx - mn) * mid));
  });
  if (pb.playing || pb.offset) {
    const t = pb.st.loop[0] + position();
    g.fillStyle = "#fff";
    g.fillRect((t / dur) * c.width, 0, 2, c.height);
  }
}

// ---------------------------------------------------------------- controls
function whoText(s, p) {
  const move = p.name === "width.width" ? `x${fmt(Math.pow(10, s.proposed_db / 20), 2)}` : `${s.proposed_db >= 0 ? "+" : ""}${s.proposed_db} dB`;
  if (s.by === "model") return `model proposes ${move} (± ${s.uncertainty_db} dB), <span class="conf">${Math.round(100 * s.confidence)} % sure</span>`;
  if (s.by === "measured" || s.by === "rule" || s.by === "off") return `${s.by}: ${s.note}`;
  return "default";
}

function buildControls() {
  const root = $("controls");
  root.innerHTML = "";
  for (const grp of pb.st.controls) {
    const fs = document.createElement("fieldset");
    const fixed = Object.entries(grp.fixed).map(([k, v]) => `${k} ${v}`).join(", ");
    fs.innerHTML = `<legend>${grp.stage} <span class="muted">${grp.type}${fixed ? " (" + fixed + ")" : ""}</span></legend>` +
      (grp.note ? `<div class="who">${grp.note}</div>` : "");
    for (const p of grp.params) {
      const row = document.createElement("div");
      row.className = "param";
      row.dataset.name = p.name;
      const id = "p-" + p.name.replace(".", "-");
      row.innerHTML = `<label for="${id}">${p.label}</label>
        <input type="range" id="${id}" min="0" max="1000" step="1" data-name="${p.name}">
        <input type="number" id="${id}-num" step="any" min="${p.min}" max="${p.max}" data-name="${p.name}">
        <span class="unit">${p.unit}</span>
        <div class="who">${whoText(p.set_by, p)}${p.ai !== p.proposal ? ` · AI ${fmt(p.ai, digits(p))}, your taste → ${fmt(p.proposal, digits(p))}` : ""}</div>`;
      const range = row.querySelector("input[type=range]"), num = row.querySelector("input[type=number]");
      range.addEventListener("input", () => { num.value = toValue(p, range.value / 1000).toFixed(digits(p)); });
      range.addEventListener("change", () => change(p.name, toValue(p, range.value / 1000)));
      num.addEventListener("change", () => change(p.name, Number(num.value)));
      fs.appendChild(row);
    }
    root.appendChild(fs);
  }
}

function showValues() {
  for (const grp of pb.st.controls) for (const p of grp.params) {
    const v = pb.st.values[p.name];
    const row = document.querySelector(`.param[data-name="${p.name}"]`);
    if (!row) continue;
    row.querySelector("input[type=range]").value = Math.round(1000 * toPos(p, v));
    row.querySelector("input[type=number]").value = Number(v).toFixed(digits(p));
    row.classList.toggle("changed", Math.abs(v - pb.st.proposal[p.name]) > 1e-9);
  }
  $("undo-btn").disabled = !pb.st.can_undo;
}

async function change(name, value) {
  await busy("rendering the preview", async () => {
    const st = await call("PUT", `/api/s/${pb.sid}/values`, { values: { [name]: value } });
    await applyState(st, ["b"]);
    status(`${name} = ${fmt(value, 2)}: preview rendered in ${fmt(st.preview_ms, 0)} ms`);
  });
  showValues();
}

// ---------------------------------------------------------------- session
async function applyState(st, reload) {
  if (pb.st && st.id === pb.st.id && st.version < pb.st.version) return;  // an older answer overtaken by a newer one
  const keepControls = pb.st && pb.st.controls;
  pb.st = st;
  if (!st.controls && keepControls) st.controls = keepControls;
  for (const which of reload) {
    if (which === "ref" && !st.reference) { delete pb.buffers.ref; if (pb.sources.ref) { try { pb.sources.ref.stop(); } catch (e) { /* */ } delete pb.sources.ref; } continue; }
    await loadBuffer(which);
  }
  $("ver-ref").disabled = !pb.buffers.ref;
  if (pb.current === "ref" && !pb.buffers.ref) select("a");
  $("loop-text").textContent = `${fmt(st.loop[0], 2)} - ${fmt(st.loop[1], 2)} s`;
  showValues();
  showReadout();
  drawSpectrum();
  drawWave();
  applyGains();
  showOutputs();
}

function showOutputs() {
  const out = $("outputs");
  out.innerHTML = "";
  const st = pb.st;
  if (st.full_render) {
    const f = st.full_render;
    out.insertAdjacentHTML("beforeend", `<div>full render: <a href="/api/s/${pb.sid}/download/render.wav" download>render.wav</a> ${fmt(f.lufs)} LUFS, ${fmt(f.true_peak_dbtp)} dBTP (${f.seconds} s)</div>`);
  }
  for (const a of st.accepted) {
    const links = a.files.map((f) => `<a href="/api/s/${pb.sid}/download/${a.folder}/${f}" download>${f}</a>`).join(" ");
    out.insertAdjacentHTML("beforeend", `<div class="accepted">accepted into <code>${a.folder}</code> (${fmt(a.lufs)} LUFS, ${fmt(a.true_peak_dbtp)} dBTP; profile ${a.profile}: ${a.profile_accepts} accepted mixes): ${links}</div>`);
  }
  $("notes").textContent = (st.taste_accepts ? `Proposal moved toward your taste (${st.taste_accepts} accepted mixes in the profile). ` : "") + st.notes.join(" ");
}

async function openSession(st) {
  stop();
  pb.offset = 0;
  pb.buffers = {};
  pb.sid = st.id;
  pb.st = null;
  const ctl = await call("GET", `/api/s/${st.id}/controls`).catch(() => null);
  st.controls = ctl ? ctl.controls : [];
  pb.st = st;
  pb.wave = await call("GET", `/api/s/${st.id}/waveform`);
  $("main").hidden = false;
  if ($("stems-view")) $("stems-view").hidden = true;
  $("song-name").textContent = st.name;
  $("song-meta").textContent = `${fmt(st.duration_s, 1)} s, ${st.sample_rate} Hz, ${st.channels} ch · model ${st.model} · backend ${st.backend}`;
  buildControls();
  await applyState(st, ["a", "b", "ref"]);
  select("b");
  status(`opened ${st.name}: the AI's proposal is loaded as B`);
  history.replaceState(null, "", "#" + st.id);
}

async function openPath(path) {
  await busy("analysing " + path, async () => openSession(await call("POST", "/api/open", { path })));
}

async function refreshFiles() {
  const r = await call("GET", "/api/files");
  pb.files = r.files;
  const opts = r.files.map((f) => `<option value="${f.replace(/"/g, "&quot;")}">${f.replace(/</g, "&lt;")}</option>`).join("");
  $("song-list").innerHTML = opts || "<option value=''>(no audio files under the served folder)</option>";
  $("ref-list").innerHTML = "<option value=''>(none)</option>" + opts;
}

async function refreshProfile() {
  const p = await call("GET", "/api/profile").catch(() => null);
  if (p) $("profile-info").textContent = `taste profile "${p.name}": ${p.accepts} accepted mixes`;
}

function waveTime(ev) {
  const c = $("wave"), r = c.getBoundingClientRect();
  return Math.max(0, Math.min(1, (ev.clientX - r.left) / r.width)) * pb.wave.duration_s;
}

function init() {
  $("open-btn").addEventListener("click", () => { const p = $("song-list").value; if (p) openPath(p); });
  $("upload").addEventListener("change", async () => {
    const f = $("upload").files[0];
    if (!f) return;
    const mb = pb.info.limits.max_upload_mb;
    if (f.size > mb * 1e6) { status(`${f.name}: the upload is larger than this server takes (${mb} MB)`, true); $("upload").value = ""; return; }
    await busy("uploading " + f.name, async () => openSession(await call("POST", "/api/upload?name=" + encodeURIComponent(f.name), f)));
    $("upload").value = "";
  });
  $("play-btn").addEventListener("click", () => (pb.playing ? stop() : play()));
  for (const b of document.querySelectorAll("button.ver")) b.addEventListener("click", () => select(b.dataset.ver));
  $("matched").addEventListener("change", () => { pb.matched = $("matched").checked; applyGains(); showReadout(); });
  $("ref-list").addEventListener("change", () => busy("loading the reference", async () => {
    await applyState(await call("POST", `/api/s/${pb.sid}/reference`, { path: $("ref-list").value }), ["ref"]);
    if ($("ref-list").value) select("ref");
  }));
  $("undo-btn").addEventListener("click", () => busy("undo", async () => applyState(await call("POST", `/api/s/${pb.sid}/undo`, {}), ["b"])));
  $("reset-btn").addEventListener("click", () => busy("reset", async () => applyState(await call("POST", `/api/s/${pb.sid}/reset`, {}), ["b"])));
  $("render-btn").addEventListener("click", () => busy("rendering the whole song", async () => { await applyState(await call("POST", `/api/s/${pb.sid}/render`, {}), []); status("full render done"); }));
  $("accept-btn").addEventListener("click", () => busy("writing the mix, recipe and exports", async () => {
    await applyState(await call("POST", `/api/s/${pb.sid}/accept`, {}), []);
    status("accepted: the mix, its recipe, presets and REAPER project are written; download them below");
    refreshProfile();
  }));
  const wave = $("wave");
  wave.addEventListener("mousedown", (ev) => { if (pb.wave) { pb.drag = { a: waveTime(ev), b: waveTime(ev) }; } });
  wave.addEventListener("mousemove", (ev) => { if (pb.drag) { pb.drag.b = waveTime(ev); drawWave(); } });
  window.addEventListener("mouseup", () => {
    if (!pb.drag) return;
    let a = Math.min(pb.drag.a, pb.drag.b), b = Math.max(pb.drag.a, pb.drag.b);
    pb.drag = null;
    if (b - a < 0.5) { b = a + (pb.st.loop[1] - pb.st.loop[0]); }
    const wasPlaying = pb.playing;
    stop(); pb.offset = 0;
    busy("moving the loop", async () => {
      await applyState(await call("POST", `/api/s/${pb.sid}/loop`, { start_s: a, end_s: b }), ["a", "b", "ref"]);
      if (wasPlaying) play();
    });
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT" || !pb.st) return;
    if (ev.key === "a") select("a"); else if (ev.key === "b") select("b"); else if (ev.key === "r") select("ref");
    else if (ev.key === " ") { ev.preventDefault(); pb.playing ? stop() : play(); }
  });
  busy("loading", async () => {
    pb.info = await call("GET", "/api/info");
    await refreshFiles();
    await refreshProfile();
    const sid = location.hash.slice(1);
    if (sid) {  // a reloaded tab gets its own session back
      const st = await call("GET", `/api/s/${encodeURIComponent(sid)}`).catch(() => null);
      if (st) await openSession(st); else history.replaceState(null, "", location.pathname);
    }
  });
}

// for tests and curious users: RMS (dBFS) of a decoded version, i.e. what the page would play
pb.bufferRmsDb = (which) => {
  const buf = pb.buffers[which];
  if (!buf) return null;
  let sum = 0, n = 0;
  for (let ch = 0; ch < buf.numberOfChannels; ch++) { const d = buf.getChannelData(ch); for (let i = 0; i < d.length; i++) sum += d[i] * d[i]; n += d.length; }
  return 10 * Math.log10(sum / n + 1e-20);
};
pb.select = select;
pb.matchGainDb = matchGainDb;

init();

// ---------------------------------------------------------------- batch runs (read-only view)
const fileLink = (rel, text) => {
  const a = document.createElement("a");
  a.href = "/api/file?path=" + encodeURIComponent(rel);
  a.textContent = text || rel.split("/").pop();
  a.target = "_blank";
  return a;
};

function progressBar(share) {
  const bar = document.createElement("progress");
  bar.max = 1; bar.value = share;
  return bar;
}

async function showBatch(path) {
  const d = await call("GET", "/api/batch?path=" + encodeURIComponent(path));
  const el = $("batch-detail");
  el.textContent = "";
  const h = document.createElement("h3");
  h.textContent = d.path + ": " + d.finished + " / " + d.total + " finished";
  el.appendChild(h);
  const t = document.createElement("table");
  t.className = "jobs";
  t.innerHTML = "<thead><tr><th>job</th><th>status</th><th>attempts</th><th>s</th><th>LUFS</th><th>files / error</th></tr></thead>";
  const body = document.createElement("tbody");
  for (const j of d.jobs) {
    const tr = document.createElement("tr");
    tr.dataset.status = j.status;
    for (const v of [j.id, j.status, j.attempts, fmt(j.seconds, 1), fmt(j.lufs_after, 1)]) {
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
    }
    const td = document.createElement("td");
    if (j.error) { td.textContent = j.error; td.className = "error"; }
    for (const f of j.files) { td.appendChild(fileLink(f)); td.appendChild(document.createTextNode(" ")); }
    tr.appendChild(td);
    body.appendChild(tr);
  }
  t.appendChild(body);
  el.appendChild(t);
  return d;
}

async function refreshBatches() {
  const d = await call("GET", "/api/batches");
  const body = $("batch-list").querySelector("tbody");
  body.textContent = "";
  $("batches-note").textContent = d.batches.length ? "" : "(none under the served folder)";
  for (const b of d.batches) {
    const tr = document.createElement("tr");
    const name = document.createElement("td");
    const open = document.createElement("a");
    open.href = "#"; open.textContent = b.path; open.className = "batch-open";
    open.onclick = (e) => { e.preventDefault(); pb.batch = b.path; showBatch(b.path).catch((err) => status(err.message, true)); };
    name.appendChild(open);
    tr.appendChild(name);
    const prog = document.createElement("td"); prog.appendChild(progressBar(b.share)); tr.appendChild(prog);
    for (const v of [b.counts.done, b.counts.failed, b.counts.pending + b.counts.running]) {
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
    }
    const reps = document.createElement("td");
    for (const r of b.reports) { reps.appendChild(fileLink(r)); reps.appendChild(document.createTextNode(" ")); }
    tr.appendChild(reps);
    body.appendChild(tr);
  }
  if (pb.batch) await showBatch(pb.batch);
  return d;
}

async function batchLoop() {
  if ($("batches").hidden) return;
  try {
    const d = await refreshBatches();
    if (d.batches.some((b) => b.running)) setTimeout(batchLoop, 2000);  // follow a running batch
  } catch (e) { status(e.message, true); }
}

$("batches-btn").addEventListener("click", () => {
  $("batches").hidden = !$("batches").hidden;
  batchLoop();
});

// ---------------------------------------------------------------- stems: one strip per track
const sv = { st: null, players: {}, current: "b" };
window.sv = sv;

function stemsGain(which) {
  const r = sv.st.readouts;
  if (!$("stems-matched").checked || !r.a || !r.b || r.a.lufs === null || r.b.lufs === null) return 1;
  const quiet = Math.min(r.a.lufs, r.b.lufs);
  return Math.pow(10, (quiet - r[which].lufs) / 20);
}

function stemsAudio(which) {
  const pos = sv.players[sv.current] ? sv.players[sv.current].currentTime : 0;
  const playing = sv.players[sv.current] && !sv.players[sv.current].paused;
  if (sv.players[which]) sv.players[which].pause();
  const a = new Audio("/api/stems/" + sv.st.id + "/audio/" + which + "?v=" + sv.st.version);
  a.loop = true;
  a.volume = Math.min(1, stemsGain(which));
  a.currentTime = pos;
  sv.players[which] = a;
  if (playing && which === sv.current) a.play();
}

function stemsSwitch(which) {
  const from = sv.players[sv.current];
  const to = sv.players[which];
  const playing = from && !from.paused;
  if (to && from) { to.currentTime = from.currentTime; }
  if (from) from.pause();
  sv.current = which;
  for (const b of document.querySelectorAll(".sver")) b.classList.toggle("on", b.dataset.ver === which);
  if (to) { to.volume = Math.min(1, stemsGain(which)); if (playing) to.play(); }
}

function stemsRender(st) {
  sv.st = st;
  $("stems-view").hidden = false;
  $("main").hidden = true;
  $("stems-name").textContent = st.name;
  $("stems-meta").textContent = st.tracks.length + " tracks, loop " + fmt(st.loop[0], 1) + "-" + fmt(st.loop[1], 1) + " s";
  $("stems-lufs").textContent = fmt(st.readouts.b && st.readouts.b.lufs, 1);
  $("stems-ms").textContent = fmt(st.preview_ms, 0);
  $("stems-version").textContent = st.version;
  const body = $("strips").querySelector("tbody");
  body.textContent = "";
  for (const t of st.tracks) {
    const tr = document.createElement("tr");
    tr.dataset.track = t.name;
    const cell = (node) => { const td = document.createElement("td"); td.appendChild(node); tr.appendChild(td); return td; };
    cell(document.createTextNode(t.name)).title = t.reasons.join("; ");
    cell(document.createTextNode(t.silent ? "silent" : t.role + " (" + Math.round(100 * (t.role_confidence || 0)) + " %)"));
    const fader = document.createElement("input");
    Object.assign(fader, { type: "number", step: "0.5", min: "-60", max: "24", value: t.gain_db, className: "fader" });
    fader.addEventListener("change", () => stemsChange(t.name, { gain_db: Number(fader.value) }));
    cell(fader);
    const pan = document.createElement("input");
    Object.assign(pan, { type: "range", step: "0.05", min: "-1", max: "1", value: t.pan, className: "pan" });
    pan.addEventListener("change", () => stemsChange(t.name, { pan: Number(pan.value) }));
    cell(pan);
    for (const k of ["mute", "solo"]) {
      const box = document.createElement("input");
      Object.assign(box, { type: "checkbox", checked: t[k], className: k });
      box.addEventListener("change", () => stemsChange(t.name, { [k]: box.checked }));
      cell(box);
    }
    cell(document.createTextNode(t.chain.map((e) => e.type + " " + Object.entries(e.params).filter(([k]) => ["cutoff_hz", "gain_db", "ratio"].includes(k)).map(([k, v]) => k + "=" + v).join(" ")).join(", ") || "-"));
    cell(document.createTextNode(t.sends.map((s) => s.bus + " " + s.level_db).join(", ") || "-"));
    body.appendChild(tr);
  }
  const out = $("stems-outputs");
  out.textContent = "";
  for (const a of st.accepted) {
    for (const f of a.files) {
      const link = document.createElement("a");
      link.href = "/api/stems/" + st.id + "/download/" + f.split("/").map(encodeURIComponent).join("/");
      link.textContent = f;
      link.className = "stems-file";
      out.appendChild(link);
      out.appendChild(document.createElement("br"));
    }
  }
  stemsAudio("a");
  stemsAudio("b");
}

async function stemsChange(name, fields) {
  const st = await busy("re-rendering", () => call("PUT", "/api/stems/" + sv.st.id + "/tracks", { tracks: { [name]: fields } }));
  if (st) { status(""); stemsRender(st); } else if (sv.st) stemsRender(sv.st);
}

async function loadStemFolders() {
  const d = await call("GET", "/api/stem-folders");
  const sel = $("stems-list");
  sel.textContent = "";
  const none = document.createElement("option");
  none.value = ""; none.textContent = d.folders.length ? "(a folder of stems)" : "(no folder of stems)";
  sel.appendChild(none);
  for (const f of d.folders) { const o = document.createElement("option"); o.value = f; o.textContent = f + "/"; sel.appendChild(o); }
}

$("stems-open-btn").addEventListener("click", async () => {
  const path = $("stems-list").value;
  if (!path) { status("choose a folder of stems", true); return; }
  status("mixing the stems...");
  const st = await busy("mixing", () => call("POST", "/api/stems/open", { path }));
  if (st) { status(""); stemsRender(st); }
});
$("stems-play").addEventListener("click", () => {
  const p = sv.players[sv.current];
  if (!p) return;
  if (p.paused) { p.play(); $("stems-play").textContent = "Pause"; } else { p.pause(); $("stems-play").textContent = "Play loop"; }
});
for (const b of document.querySelectorAll(".sver")) b.addEventListener("click", () => stemsSwitch(b.dataset.ver));
$("stems-matched").addEventListener("change", () => stemsSwitch(sv.current));
$("stems-undo").addEventListener("click", async () => { const st = await busy("undo", () => call("POST", "/api/stems/" + sv.st.id + "/undo")); if (st) stemsRender(st); });
$("stems-reset").addEventListener("click", async () => { const st = await busy("reset", () => call("POST", "/api/stems/" + sv.st.id + "/reset")); if (st) stemsRender(st); });
$("stems-accept").addEventListener("click", async () => {
  const st = await busy("rendering, mastering and exporting", () => call("POST", "/api/stems/" + sv.st.id + "/accept"));
  if (st) { status("accepted: " + st.just_accepted.folder); stemsRender(st); }
});
loadStemFolders().catch((e) => status(e.message, true));

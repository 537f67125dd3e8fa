// facegen studio: plain JavaScript, no build step. Every image comes from the studio's own API.
"use strict";

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
};

// Each tab names itself (sessionStorage is per tab) so that its faces and results stay its own.
function tabId() {
  let id = sessionStorage.getItem("facegen-tab");
  if (!id) {
    id = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem("facegen-tab", id);
  }
  return id;
}
const base = `/api/t/${tabId()}`;
const state = { info: null, faces: [], current: null, page: 0, pageSize: 12, mixLayers: new Set(), quiz: null, morphOrder: [] };
window.studio = { latencies: [], serverMs: [], shown: 0, state };

let messageAt = 0;  // when the message bar last showed an error
function showMessage(text) {
  $("message-text").textContent = text;
  $("message").hidden = false;
  messageAt = performance.now();
}
function clearMessage() { $("message").hidden = true; }
$("message-close").onclick = clearMessage;

async function api(path, options = {}) {
  const init = { method: options.method || "GET", signal: options.signal, headers: {} };
  if (options.json !== undefined) {
    init.body = JSON.stringify(options.json);
    init.headers["Content-Type"] = "application/json";
  } else if (options.body !== undefined) {
    init.body = options.body;
    init.headers["Content-Type"] = "application/octet-stream";
  }
  const response = await fetch(path.startsWith("/") ? path : `${base}/${path}`, init);
  if (response.status === 204) return null;
  if (!response.ok) {
    let text = `${response.status} ${response.statusText}`;
    try { text = (await response.json()).error || text; } catch (e) { /* not JSON */ }
    throw new Error(text);
  }
  return options.raw ? response : response.json();
}

// Run an action; its error (never a stack trace) goes to the message bar, and its success clears an error
// shown before it started (not one that a later action has shown meanwhile).
async function guard(action) {
  const started = performance.now();
  try {
    const result = await action();
    if (messageAt < started) clearMessage();
    return result;
  } catch (error) {
    if (error.name !== "AbortError") showMessage(error.message);
  }
}

// A seed typed in a box: a whole number the network takes, or an error saying which ones it takes.
function readSeed(input) {
  const text = input.value.trim(), max = state.info.max_seed;
  if (!/^[0-9]+$/.test(text) || Number(text) > max) throw new Error(`seed must be a whole number from 0 to ${max} (got ${text || "nothing"})`);
  return Number(text);
}

// Download what an edit, mix or average shows (not kept as a face) as PNG or latent.
async function downloadResult(payload, kind) {
  const response = await api(`result.${kind}`, { method: "POST", json: payload, raw: true });
  const name = (response.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/);
  const link = el("a", { href: URL.createObjectURL(await response.blob()), download: name ? name[1] : `face.${kind}` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);
}

// A live image (slider edits, mixes): at most one request in flight per image; changes made meanwhile
// replace each other, so only the newest position is sent when the answer lands (stale positions are
// dropped, never queued). Each request carries a growing sequence number, and the server skips any that
// a newer one has overtaken. onShown gets the ms from the user's change to the face on screen.
function liveImage(channel, img, onShown) {
  let seq = 0, busy = false, pending = null;
  async function send(payload, startedAt) {
    busy = true;
    seq = Math.max(seq + 1, Date.now() * 1000);
    const mine = seq;
    img.dataset.want = mine;  // the newest request; data-seq becomes it once that face is on screen
    await guard(async () => {
      const response = await api(`live/${channel}`, { method: "POST", json: { ...payload, seq: mine }, raw: true });
      if (!response) return;
      const blob = await response.blob(), serverMs = Number(response.headers.get("X-Server-Ms"));
      const old = img.src;
      await new Promise((resolve) => {
        img.onload = img.onerror = resolve;
        img.src = URL.createObjectURL(blob);
      });
      if (old.startsWith("blob:")) URL.revokeObjectURL(old);
      img.dataset.seq = mine;
      if (onShown) onShown(performance.now() - startedAt, serverMs);
    });
    busy = false;
    if (pending) {
      const next = pending;
      pending = null;
      send(next.payload, next.startedAt);
    }
  }
  return function request(payload, startedAt = performance.now()) {
    if (busy) {
      pending = { payload, startedAt };
      img.dataset.want = "next";  // a newer request waits to be sent
    } else send(payload, startedAt);
  };
}

// ---- faces (the tray) ----
// A face's downloads, as links (a tuned face's network too).
function downloadLinks(face) {
  const stop = (event) => event.stopPropagation();  // a click on a link is not a click on its tray row
  const links = [el("a", { href: face.image, download: "", textContent: "PNG", title: "download the image", onclick: stop }),
    el("a", { href: face.npy, download: "", textContent: ".npy", title: "download the latent", onclick: stop })];
  if (face.network) links.push(el("a", { href: face.network, download: "", textContent: "net", title: "download the tuned network that draws it", onclick: stop }));
  return el("span", { className: "downloads" }, ...links);
}

async function refreshFaces() {
  state.faces = (await api("faces")).faces;
  if (!state.faces.some((f) => f.id === state.current)) state.current = state.faces.length ? state.faces[state.faces.length - 1].id : null;
  const list = $("tray-list");
  list.replaceChildren(...state.faces.slice().reverse().map((f) => {
    const item = el("li", { className: f.id === state.current ? "current" : "", title: f.name }, el("img", { src: f.image, alt: "" }),
      el("span", { className: "name", textContent: f.name }), downloadLinks(f));
    item.dataset.face = f.id;
    item.onclick = () => selectFace(f.id);
    return item;
  }));
  $("tray-empty").hidden = state.faces.length > 0;
  for (const part of document.querySelectorAll(".needs-one")) part.hidden = state.faces.length >= 1;
  for (const part of document.querySelectorAll(".has-one")) part.hidden = state.faces.length < 1;
  for (const part of document.querySelectorAll(".needs-two")) part.hidden = state.faces.length >= 2;
  for (const part of document.querySelectorAll(".has-two")) part.hidden = state.faces.length < 2;
  for (const select of document.querySelectorAll(".face-select")) {
    const keep = select.value;
    select.replaceChildren(...state.faces.map((f) => el("option", { value: f.id, textContent: f.name })));
    if (state.faces.some((f) => f.id === keep)) select.value = keep;
  }
  if (state.current) $("edit-face").value = state.current;
  if (state.faces.length >= 2 && $("mix-a").value === $("mix-b").value) {  // start with two different faces
    $("mix-a").value = state.faces[state.faces.length - 2].id;
    $("mix-b").value = state.faces[state.faces.length - 1].id;
  }
  renderChecklists();
}

function selectFace(id) {
  state.current = id;
  for (const li of $("tray-list").children) li.classList.toggle("current", li.dataset.face === id);
  $("edit-face").value = id;
  if (currentPage() === "edit") requestEdit();
}

// The server refuses (and, past 64 MiB, cuts off) larger uploads; say so before sending them.
function checkSize(file, limit) {
  if (file.size > limit) throw new Error(`${file.name}: ${(file.size / 2 ** 20).toFixed(1)} MiB is over the ${limit / 2 ** 20} MiB limit`);
}

$("tray-open").onclick = () => guard(async () => openSeed(readSeed($("tray-seed"))));

function faceById(id) { return state.faces.find((f) => f.id === id); }

$("upload-latent").onchange = (event) => guard(async () => {
  const file = event.target.files[0];
  event.target.value = "";
  if (!file) return;
  checkSize(file, state.info.limits.latent);
  const face = await api(`faces/upload?name=${encodeURIComponent(file.name)}`, { method: "POST", body: file });
  clearMessage();
  state.current = face.id;
  await refreshFaces();
  redraw();
});

// ---- Explore ----
// How seeds become faces: the Explore page's settings, as the API's fields (empty ones left out).
function exploreLook() {
  const parts = [];
  for (const input of $("explore-labels").querySelectorAll("input")) {
    if (input.dataset.attr) parts.push(`${input.dataset.attr}=${input.value}`);
  }
  const klass = $("explore-labels").querySelector("[data-class]");
  const look = { psi: Number($("explore-psi").value), noise: $("explore-noise").value, attrs: parts.join(","), label: klass ? klass.value : "" };
  if (state.info.wplus && $("explore-cutoff").value.trim() !== "") look.cutoff = Number($("explore-cutoff").value);
  if (state.info.transform) {
    for (const [key, id] of [["tx", "explore-tx"], ["ty", "explore-ty"], ["rotate", "explore-rotate"]]) look[key] = Number($(id).value) || 0;
  }
  return look;
}

let exploreController = null, exploreSeq = 0;
// Show the page of seeds `page` (default: the current one); the page number and its label change only once it has come.
async function loadExplore(page = state.page) {
  const start = page * state.pageSize;
  if (exploreController) exploreController.abort();
  exploreController = new AbortController();
  exploreSeq = Math.max(exploreSeq + 1, Date.now() * 1000);
  const query = new URLSearchParams({ ...exploreLook(), start, count: state.pageSize, seq: exploreSeq });
  await guard(async () => {
    const result = await api(`explore?${query}`, { signal: exploreController.signal });
    if (!result) return;
    state.page = page;
    $("explore-range").textContent = `seeds ${start}–${start + state.pageSize - 1}`;
    $("explore-grid").replaceChildren(...result.faces.map((f) => {
      const img = el("img", { src: f.image, alt: `seed ${f.seed}` });
      img.dataset.seed = f.seed;
      img.onclick = () => openSeed(f.seed);
      return el("figure", {}, img, el("figcaption", { textContent: `seed ${f.seed}` }));
    }));
  });
}

async function openSeed(seed) {
  await guard(async () => {
    const face = await api("faces", { method: "POST", json: { ...exploreLook(), seed: Number(seed) } });
    state.current = face.id;
    await refreshFaces();
    $("explore-face").hidden = false;
    $("explore-face-img").src = face.image;
    $("explore-face-name").textContent = face.name;
    $("explore-face-png").href = face.image;
    $("explore-face-npy").href = face.npy;
    redraw();
  });
}

$("explore-psi").oninput = () => { $("explore-psi-value").textContent = $("explore-psi").value; loadExplore(); };
for (const id of ["explore-noise", "explore-cutoff", "explore-tx", "explore-ty", "explore-rotate"]) $(id).onchange = () => loadExplore();
$("explore-prev").onclick = () => loadExplore(Math.max(0, state.page - 1));
$("explore-next").onclick = () => loadExplore(state.page + 1);
$("explore-go").onclick = () => guard(async () => {
  const seed = readSeed($("explore-seed"));
  loadExplore(Math.floor(seed / state.pageSize));
  await openSeed(seed);
});
$("explore-edit").onclick = () => { location.hash = "#edit"; };
$("explore-as-a").onclick = () => { $("mix-a").value = state.current; location.hash = "#mix"; };
$("explore-as-b").onclick = () => { $("mix-b").value = state.current; location.hash = "#mix"; };

// ---- Edit ----
function editPayload() {
  if (controlsSet()) return controlsPayload();
  const sliders = {}, fixed = [];
  for (const input of $("edit-sliders").querySelectorAll("input[type=range]")) {
    if (Number(input.value) !== 0) sliders[input.dataset.direction] = Number(input.value);
  }
  for (const box of $("edit-sliders").querySelectorAll("input[type=checkbox]:checked")) fixed.push(box.dataset.fix);
  return { op: "edit", face: $("edit-face").value, sliders, fixed, layers: $("edit-layers").value };
}
const editLive = liveImage("edit", $("edit-img"), (ms, serverMs) => {
  window.studio.latencies.push(ms);
  window.studio.serverMs.push(serverMs);
  window.studio.shown += 1;
  $("edit-latency").textContent = `${Math.round(ms)} ms`;
});
function requestEdit(startedAt) {
  const face = faceById($("edit-face").value);
  if (face && $("edit-before").dataset.face !== face.id) {
    $("edit-before").src = face.image;
    $("edit-before").dataset.face = face.id;
    // a projected face: its photo, the network's reconstruction of it, and the edit, side by side
    $("edit-photo-figure").hidden = !face.photo;
    if (face.photo) $("edit-photo").src = face.photo;
    $("edit-before-caption").textContent = face.photo ? (face.network ? "reconstruction (tuned network)" : "reconstruction") : "before";
    $("edit-after-caption").textContent = face.photo ? "edited" : "after";
    $("edit-network").hidden = !face.network;
    clearControls();
    readControls(face);
  }
  if (controlsSet()) return;  // the image shows the face set to the controls' values
  if (!state.info.wplus || !face) return;
  editLive(editPayload(), startedAt);
}

function buildSliders() {
  const rows = [];
  for (const d of state.info.directions) {
    const slider = el("input", { type: "range", min: -5, max: 5, step: 0.1, value: 0 });
    slider.dataset.direction = d.name;
    const value = el("output", { textContent: "0" });
    slider.oninput = () => { value.textContent = slider.value; clearControls(); requestEdit(performance.now()); };
    const fix = el("input", { type: "checkbox", title: "keep this attribute fixed while moving the others" });
    fix.dataset.fix = d.name;
    fix.onchange = () => requestEdit();
    rows.push(el("label", { textContent: d.label, title: d.title }), slider, value, el("label", {}, fix, " keep fixed"));
  }
  $("edit-sliders").replaceChildren(...rows);
}
$("edit-face").onchange = () => selectFace($("edit-face").value);
$("edit-layers").onchange = () => requestEdit();
function resetSliders() {
  for (const input of $("edit-sliders").querySelectorAll("input[type=range]")) { input.value = 0; input.nextSibling.textContent = "0"; }
}
$("edit-reset").onclick = () => { resetSliders(); clearControls(); requestEdit(); };
$("edit-png").onclick = $("edit-npy").onclick = $("edit-network").onclick = (event) => guard(() => downloadResult(editPayload(), event.target.dataset.kind));
// The kept face becomes the one being edited, from zero: the picture stays the same.
$("controls-identity").onchange = () => sendControls();
$("edit-keep").onclick = async () => { await keep(editPayload()); resetSliders(); clearControls(); requestEdit(); };

// ---- Edit: controls set to values in their units ----
const UNITS = { years: (v) => `${v.toFixed(1)} years`, degrees: (v) => `${v.toFixed(1)}°`, probability: (v) => v.toFixed(2) };
function controlRows() { return [...$("edit-controls").querySelectorAll("input[type=range]")]; }
function controlsSet() { return controlRows().some((s) => s.dataset.set === "1"); }
function buildControls() {
  const rows = [];
  for (const c of state.info.controls) {
    const slider = el("input", { type: "range", min: c.low, max: c.high, step: c.step, value: (c.low + c.high) / 2 });
    slider.dataset.control = c.name;
    const requested = el("output", { className: "requested", textContent: "" });
    const read = el("output", { className: "read", textContent: "read: …" });
    read.dataset.control = c.name;
    const set = el("input", { type: "checkbox", title: "set this control to the slider's value" });
    set.dataset.set = c.name;
    slider.oninput = () => { requested.textContent = UNITS[c.unit](Number(slider.value)); set.checked = true; slider.dataset.set = "1"; };
    slider.onchange = () => sendControls();
    set.onchange = () => { slider.dataset.set = set.checked ? "1" : ""; sendControls(); };
    rows.push(el("label", { textContent: `${c.name.replace(/_/g, " ")} (${c.unit})` }), slider, requested, read, el("label", {}, set, " set"));
  }
  $("edit-controls").replaceChildren(...rows);
  $("controls-identity-row").hidden = !state.info.keeps_identity;
  $("edit-controls-panel").hidden = !state.info.controls.length || state.faces.length < 1;
  $("edit-controls-panel").classList.toggle("has-one", state.info.controls.length > 0);
}
function controlsPayload() {
  const targets = {};
  for (const slider of controlRows()) if (slider.dataset.set === "1") targets[slider.dataset.control] = Number(slider.value);
  const keep = [...$("edit-sliders").querySelectorAll("input[type=checkbox]:checked")].map((b) => b.dataset.fix)
    .filter((name) => state.info.directions.some((d) => d.name === name && d.stored));
  if (state.info.keeps_identity && $("controls-identity").checked) keep.push("identity");
  return { op: "controls", face: $("edit-face").value, targets, keep };
}
function clearControls() {
  for (const slider of controlRows()) slider.dataset.set = "";
  for (const box of $("edit-controls").querySelectorAll("input[type=checkbox]")) box.checked = false;
  for (const out of $("edit-controls").querySelectorAll("output.requested")) out.textContent = "";
  for (const out of $("edit-controls").querySelectorAll("output.read")) out.classList.remove("met");
  $("controls-status").textContent = "";
}
function showReading(values, met = {}) {
  for (const out of $("edit-controls").querySelectorAll("output.read")) {
    const name = out.dataset.control, value = values[name], c = state.info.controls.find((x) => x.name === name);
    if (value === undefined) continue;
    out.textContent = value === null ? "read: no face" : `read: ${UNITS[c.unit](value)}`;
    out.classList.toggle("met", Boolean(met[name]));
  }
}
// What the estimators read on the face as it is: each slider starts there.
async function readControls(face) {
  if (!state.info.controls.length) return;
  await guard(async () => {
    const values = await api(`faces/${face.id}/reading`);
    if ($("edit-face").value !== face.id) return;
    for (const slider of controlRows()) {
      const value = values[slider.dataset.control];
      if (value !== null && slider.dataset.set !== "1") slider.value = value;
    }
    showReading(values);
  });
}
// One request in flight; a change made meanwhile is sent when it answers (the newest targets only).
let controlsBusy = false, controlsAgain = false, controlsSeq = 0;
async function sendControls() {
  if (controlsBusy) { controlsAgain = true; return; }
  if (!controlsSet()) { requestEdit(); return; }
  controlsBusy = true;
  resetSliders();
  controlsSeq = Math.max(controlsSeq + 1, Date.now() * 1000);
  $("controls-status").textContent = "setting…";
  await guard(async () => {
    const answer = await api("controls", { method: "POST", json: { ...controlsPayload(), seq: controlsSeq } });
    if (!answer) return;
    $("edit-img").src = answer.image;
    showReading(answer.achieved, answer.met);
    const identity = answer.identity_distance === null ? "no face read" : answer.identity_distance.toFixed(2);
    const kept = Object.entries(answer.kept).map(([k, v]) => `${k} ${v.before === null ? "–" : v.before.toFixed(2)} → ${v.after === null ? "–" : v.after.toFixed(2)}`);
    $("controls-status").textContent = `identity distance to the face before: ${identity}${kept.length ? `; kept: ${kept.join(", ")}` : ""} (${answer.renders} renders)`;
  });
  controlsBusy = false;
  if (controlsAgain) { controlsAgain = false; sendControls(); }
}

async function keep(payload) {
  await guard(async () => {
    const face = await api("keep", { method: "POST", json: payload });
    state.current = face.id;
    await refreshFaces();
  });
}

// ---- Mix ----
function mixSpec() {
  const chosen = [...state.mixLayers].sort((a, b) => a - b);
  return chosen.join(",");
}
function buildLayers() {
  const boxes = state.info.layers.map((res, i) => {
    const box = el("input", { type: "checkbox" });
    box.dataset.layer = i;
    box.onchange = () => { box.checked ? state.mixLayers.add(i) : state.mixLayers.delete(i); requestMix(); };
    return el("label", {}, box, ` ${i} (${res}px)`);
  });
  $("mix-layers").replaceChildren(...boxes);
}
function setMixLayers(indices) {
  state.mixLayers = new Set(indices);
  for (const box of $("mix-layers").querySelectorAll("input")) box.checked = state.mixLayers.has(Number(box.dataset.layer));
  requestMix();
}
for (const button of document.querySelectorAll("[data-preset]")) {
  button.onclick = () => {
    const preset = button.dataset.preset;
    if (preset === "all") setMixLayers(state.info.layers.map((_, i) => i));
    else if (preset === "none") setMixLayers([]);
    else setMixLayers(state.info.groups[preset] || []);
  };
}
const mixLive = liveImage("mix", $("mix-img"));
function requestMix() {
  $("mix-spec").textContent = mixSpec() ? `W+ ${mixSpec()}` : "no layers";
  const a = faceById($("mix-a").value), b = faceById($("mix-b").value);
  if (a) $("mix-a-img").src = a.image;
  if (b) $("mix-b-img").src = b.image;
  if (state.info.wplus && a && b) mixLive({ op: "mix", a: a.id, b: b.id, layers: mixSpec() });
}
$("mix-a").onchange = requestMix;
$("mix-b").onchange = requestMix;
function mixPayload() { return { op: "mix", a: $("mix-a").value, b: $("mix-b").value, layers: mixSpec() }; }
$("mix-keep").onclick = () => keep(mixPayload());
$("mix-png").onclick = $("mix-npy").onclick = (event) => guard(() => downloadResult(mixPayload(), event.target.dataset.kind));

function averagePayload() {
  const faces = [], weights = [];
  for (const row of $("avg-list").children) {
    const [box, , , weight] = row.querySelectorAll("input, img, span");
    if (box.checked) { faces.push(row.dataset.face); weights.push(Number(weight.value)); }
  }
  return { op: "average", faces, weights };
}
const avgLive = liveImage("average", $("avg-img"));
function requestAverage() {
  const payload = averagePayload(), enough = payload.faces.length >= 2;
  $("avg-hint").hidden = enough;
  for (const id of ["avg-img", "avg-keep", "avg-png", "avg-npy"]) $(id).hidden = !enough;
  if (enough) avgLive(payload);
}
$("avg-keep").onclick = () => keep(averagePayload());
$("avg-png").onclick = $("avg-npy").onclick = (event) => guard(() => downloadResult(averagePayload(), event.target.dataset.kind));

// Checklists (average, morph) keep their ticks and weights when the faces change; the morph's keeps its order.
function renderChecklists() {
  const ids = state.faces.map((f) => f.id);
  state.morphOrder = state.morphOrder.filter((id) => ids.includes(id)).concat(ids.filter((id) => !state.morphOrder.includes(id)));
  for (const [listId, withWeight, onChange, order] of [["avg-list", true, requestAverage, ids], ["morph-list", false, null, state.morphOrder]]) {
    const list = $(listId), before = {};
    for (const row of list.children) before[row.dataset.face] = row;
    list.replaceChildren(...order.map((id) => {
      if (before[id]) return before[id];
      const f = faceById(id);
      const box = el("input", { type: "checkbox" });
      const parts = [box, el("img", { src: f.image, alt: "" }), el("span", { textContent: f.name })];
      if (withWeight) parts.push(el("input", { type: "number", step: 0.1, value: 1, title: "weight" }));
      else parts.push(el("button", { className: "move up", textContent: "▲", title: "earlier in the morph", onclick: (e) => moveKeyframe(e, id, -1) }),
        el("button", { className: "move down", textContent: "▼", title: "later in the morph", onclick: (e) => moveKeyframe(e, id, 1) }));
      const row = el("label", {}, ...parts);
      row.dataset.face = id;
      if (onChange) row.oninput = onChange;
      return row;
    }));
  }
}

// ---- Morph ----
function moveKeyframe(event, id, step) {
  event.preventDefault();  // a button inside a label would also tick its box
  const order = state.morphOrder, at = order.indexOf(id), to = at + step;
  if (to < 0 || to >= order.length) return;
  [order[at], order[to]] = [order[to], order[at]];
  renderChecklists();
}
function morphPayload() {
  const faces = [...$("morph-list").children].filter((row) => row.querySelector("input").checked).map((row) => row.dataset.face);
  return { faces, frames: Number($("morph-frames").value), fps: Number($("morph-fps").value), loop: $("morph-loop").checked };
}
$("morph-make").onclick = () => guard(async () => {
  const payload = morphPayload();
  if (payload.faces.length < 2) throw new Error("add at least two faces to morph between: tick them in the list");
  $("morph-status").textContent = "rendering…";
  try {
    const made = await api("morph", { method: "POST", json: payload });
    $("morph-video").src = made.mp4;
    $("morph-gif").src = made.gif;
    $("morph-mp4-link").href = made.mp4;
    $("morph-gif-link").href = made.gif;
    $("morph-result").hidden = false;
    $("morph-status").textContent = `${made.frames} frames`;
    clearMessage();
  } catch (error) {
    $("morph-status").textContent = "";
    throw error;
  }
});

// ---- Project ----
function showProjectOptions() {
  const optimise = $("project-method").value !== "encoder", tune = $("project-tune").checked;
  for (const part of document.querySelectorAll(".optimise-only")) part.hidden = !optimise;
  for (const part of document.querySelectorAll(".tune-only")) part.hidden = !tune;
}
$("project-method").onchange = $("project-tune").onchange = showProjectOptions;
$("project-start").onclick = () => guard(async () => {
  const file = $("project-file").files[0];
  if (!file) throw new Error("choose a photo first");
  checkSize(file, state.info.limits.photo);
  const query = new URLSearchParams({ name: file.name, method: $("project-method").value, steps: $("project-steps").value,
    align: $("project-align").value, perceptual: $("project-perceptual").checked, tune: $("project-tune").checked,
    tune_steps: $("project-tune-steps").value });
  $("project-done").hidden = true;
  let job = await api(`project?${query}`, { method: "POST", body: file });
  clearMessage();
  for (const id of ["project-target", "project-preview"]) $(id).removeAttribute("src");  // nothing of the last photo
  $("project-quality").textContent = "";
  $("project-empty").hidden = true;
  $("project-job").hidden = false;
  let shownFace = null;
  for (;;) {
    showJob(job);
    const face = job.tuned || job.face;  // the latent's face is there at once; the tuned one replaces it
    if (face && face.id !== shownFace) {
      shownFace = face.id;
      state.current = face.id;
      await refreshFaces();
      $("project-png").href = face.image;
      $("project-npy").href = face.npy;
      $("project-network").hidden = !face.network;
      if (face.network) $("project-network").href = face.network;
      $("project-done").hidden = false;
    }
    if (job.done) break;
    await new Promise((resolve) => setTimeout(resolve, 300));
    job = await api(`project/${job.id}`);
  }
  if (job.error) throw new Error(`${job.name}: ${job.error}`);
});
function quality(q) {
  const identity = q.identity_distance === null ? "no face read" : `identity distance ${q.identity_distance.toFixed(2)}`;
  return `PSNR ${q.psnr_db === null ? "∞" : q.psnr_db.toFixed(1)} dB, ${identity}`;
}
function showJob(job) {
  $("project-progress").max = Math.max(1, job.steps + job.tune_steps);
  $("project-progress").value = job.step + job.tune_step;
  const loss = job.stats.pixel_mse !== undefined ? `, pixel MSE ${job.stats.pixel_mse.toFixed(4)}` : "";
  const phase = job.done ? (job.error ? "failed" : "done") : job.phase;
  const steps = [];
  if (job.steps) steps.push(`step ${job.step} of ${job.steps}`);
  if (job.tune_steps) steps.push(`tuning step ${job.tune_step} of ${job.tune_steps}`);
  const seconds = Object.entries(job.seconds).map(([k, v]) => `${k} ${v.toFixed(2)} s`).join(", ");
  $("project-status").textContent = `${phase}: ${steps.join(", ") || (job.face ? "encoded" : "")}${loss}${seconds ? ` (${seconds})` : ""}`;
  if (job.target && $("project-target").getAttribute("src") !== job.target) $("project-target").src = job.target;
  if (job.preview) $("project-preview").src = job.preview;
  $("project-preview-caption").textContent = job.tuned ? "tuned network" : job.steps ? "projection" : "encoder";
  const parts = [];
  if (job.quality.latent) parts.push(`${job.steps ? "projection" : "encoder"}: ${quality(job.quality.latent)}`);
  if (job.quality.tuned) parts.push(`tuned: ${quality(job.quality.tuned)}`);
  $("project-quality").textContent = parts.join(" · ");
}
$("project-edit").onclick = () => { location.hash = "#edit"; };
$("project-mix").onclick = () => { $("mix-a").value = state.current; location.hash = "#mix"; };

// ---- Quiz ----
$("quiz-start").onclick = () => guard(async () => {
  const quiz = await api("quiz", { method: "POST", json: { rounds: Number($("quiz-rounds").value), psi: Number($("quiz-psi").value) } });
  clearMessage();
  state.quiz = { ...quiz, index: 0, shownAt: 0 };
  $("quiz-result").hidden = true;
  $("quiz-round").hidden = false;
  showQuizImage();
});
function showQuizImage() {
  const quiz = state.quiz;
  $("quiz-counter").textContent = `image ${quiz.index + 1} of ${quiz.count}: real photo or generated?`;
  $("quiz-img").onload = () => { quiz.shownAt = performance.now(); };
  $("quiz-img").src = quiz.images[quiz.index];
}
async function answerQuiz(answer) {
  const quiz = state.quiz;
  if (!quiz || quiz.index >= quiz.count) return;
  await guard(async () => {
    const index = quiz.index;
    quiz.index += 1;
    await api(`quiz/${quiz.id}/answer`, { method: "POST", json: { index, answer, ms: quiz.shownAt ? performance.now() - quiz.shownAt : 0 } });
    if (quiz.index < quiz.count) showQuizImage(); else await showQuizResult();
  });
}
$("quiz-real").onclick = () => answerQuiz("real");
$("quiz-generated").onclick = () => answerQuiz("generated");
async function showQuizResult() {
  const result = await api(`quiz/${state.quiz.id}/result`);
  $("quiz-round").hidden = true;
  $("quiz-result").hidden = false;
  $("quiz-score").textContent = `${result.score} of ${result.total} right`;
  $("quiz-hardest").replaceChildren(...result.hardest.map((it) => el("figure", {}, el("img", { src: it.image, alt: "" }),
    el("figcaption", { textContent: `${it.truth}: ${it.wrong} of ${it.answers} wrong` }))));
  $("quiz-table").tBodies[0].replaceChildren(...result.items.map((it) => el("tr", { className: it.correct ? "" : "wrong" },
    el("td", { textContent: it.index + 1 }), el("td", {}, el("img", { src: it.image, alt: "" })),
    el("td", { textContent: it.truth }), el("td", { textContent: it.answer || "–" }))));
}

// ---- pages ----
function currentPage() { return (location.hash || "#explore").slice(1); }
function showPage() {
  const page = ["explore", "mix", "edit", "morph", "project", "quiz"].includes(currentPage()) ? currentPage() : "explore";
  for (const section of document.querySelectorAll(".page")) section.hidden = section.id !== `page-${page}`;
  for (const link of document.querySelectorAll("#nav a")) link.classList.toggle("active", link.dataset.page === page);
  clearMessage();
  redraw();
}
// Ask again for the live images of the page in view (after a page or face change).
function redraw() {
  if (currentPage() === "edit") requestEdit();
  if (currentPage() === "mix") { requestMix(); requestAverage(); }
}
window.addEventListener("hashchange", showPage);

async function start() {
  await guard(async () => {
    state.info = await api("/api/info");
    const info = state.info;
    $("network").textContent = `${info.network} · ${info.architecture} · ${info.resolution}px`;
    $("explore-noise").replaceChildren(...info.noise_modes.map((m) => el("option", { value: m, textContent: m })));
    if (info.label_names) {
      $("explore-labels").replaceChildren(...info.label_names.map((name) => {
        const input = el("input", { type: "range", min: 0, max: 1, step: 0.1, value: 0.5 });
        input.dataset.attr = name;
        input.onchange = () => loadExplore();
        return el("label", {}, `${name} `, input);
      }));
    } else if (info.c_dim) {
      const klass = el("input", { type: "number", min: 0, max: info.c_dim - 1, value: 0 });
      klass.dataset.class = "1";
      klass.onchange = () => loadExplore();
      $("explore-labels").replaceChildren(el("label", {}, "class ", klass));
    }
    for (const note of document.querySelectorAll(".needs-wplus")) note.hidden = info.wplus;
    for (const part of document.querySelectorAll(".wplus-only")) part.hidden = !info.wplus;
    for (const part of document.querySelectorAll(".transform-only")) part.hidden = !info.transform;
    $("explore-cutoff").max = info.num_ws;
    $("quiz-unavailable").hidden = info.quiz;
    $("quiz-setup").hidden = !info.quiz;
    if (!info.encoder) $("project-method").querySelector("[value=encoder]").remove();
    for (const [id, key] of [["project-steps", "steps"], ["project-tune-steps", "tune_steps"]]) {
      $(id).value = info.projection[key].default;
      $(id).max = info.projection[key].max;
    }
    showProjectOptions();
    $("edit-layers").append(...Object.keys(info.groups).map((g) => el("option", { value: g, textContent: g })));
    buildSliders();
    buildControls();
    buildLayers();
    setMixLayers(info.groups.coarse || []);
    await refreshFaces();
    await loadExplore();
    showPage();
    document.body.dataset.ready = "1";
  });
}
start();

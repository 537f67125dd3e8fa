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
const state = { info: null, faces: [], current: null, page: 0, pageSize: 12, mixLayers: new Set(), quiz: null };
window.studio = { latencies: [], serverMs: [], shown: 0, state };

function showMessage(text) {
  $("message-text").textContent = text;
  $("message").hidden = false;
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

// Run an action; its error (never a stack trace) goes to the message bar.
async function guard(action) {
  try { return await action(); } catch (error) {
    if (error.name !== "AbortError") showMessage(error.message);
  }
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
async function refreshFaces() {
  state.faces = (await api("faces")).faces;
  if (!state.faces.some((f) => f.id === state.current)) state.current = state.faces.length ? state.faces[state.faces.length - 1].id : null;
  const list = $("tray-list");
  list.replaceChildren(...state.faces.slice().reverse().map((f) => {
    const item = el("li", { className: f.id === state.current ? "current" : "", title: f.name }, el("img", { src: f.image, alt: "" }), el("span", { textContent: f.name }));
    item.dataset.face = f.id;
    item.onclick = () => selectFace(f.id);
    return item;
  }));
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

$("tray-open").onclick = () => openSeed(Math.max(0, Number($("tray-seed").value) || 0));

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
function labelQuery() {
  const parts = [];
  for (const input of $("explore-labels").querySelectorAll("input")) {
    if (input.dataset.attr) parts.push(`${input.dataset.attr}=${input.value}`);
  }
  const klass = $("explore-labels").querySelector("[data-class]");
  return { attrs: parts.join(","), label: klass ? klass.value : "" };
}

let exploreController = null, exploreSeq = 0;
async function loadExplore() {
  const start = state.page * state.pageSize, psi = $("explore-psi").value, noise = $("explore-noise").value;
  const { attrs, label } = labelQuery();
  $("explore-range").textContent = `seeds ${start}–${start + state.pageSize - 1}`;
  if (exploreController) exploreController.abort();
  exploreController = new AbortController();
  exploreSeq = Math.max(exploreSeq + 1, Date.now() * 1000);
  const query = new URLSearchParams({ start, count: state.pageSize, psi, noise, attrs, label, seq: exploreSeq });
  await guard(async () => {
    const result = await api(`explore?${query}`, { signal: exploreController.signal });
    if (!result) return;
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
    const { attrs, label } = labelQuery();
    const face = await api("faces", { method: "POST", json: { seed: Number(seed), psi: Number($("explore-psi").value), noise: $("explore-noise").value, attrs, label } });
    state.current = face.id;
    await refreshFaces();
    $("explore-face").hidden = false;
    $("explore-face-img").src = face.image;
    $("explore-face-name").textContent = face.name;
    $("explore-face-png").href = face.image;
    $("explore-face-npy").href = face.image.replace(/\.png$/, ".npy");
    redraw();
  });
}

$("explore-psi").oninput = () => { $("explore-psi-value").textContent = $("explore-psi").value; loadExplore(); };
$("explore-noise").onchange = loadExplore;
$("explore-prev").onclick = () => { state.page = Math.max(0, state.page - 1); loadExplore(); };
$("explore-next").onclick = () => { state.page += 1; loadExplore(); };
$("explore-go").onclick = () => {
  const seed = Math.max(0, Number($("explore-seed").value) || 0);
  state.page = Math.floor(seed / state.pageSize);
  loadExplore();
  openSeed(seed);
};
$("explore-edit").onclick = () => { location.hash = "#edit"; };
$("explore-as-a").onclick = () => { $("mix-a").value = state.current; location.hash = "#mix"; };
$("explore-as-b").onclick = () => { $("mix-b").value = state.current; location.hash = "#mix"; };

// ---- Edit ----
function editPayload() {
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
  if (!state.info.wplus || !$("edit-face").value) return;
  editLive(editPayload(), startedAt);
}

function buildSliders() {
  const rows = [];
  for (const d of state.info.directions) {
    const slider = el("input", { type: "range", min: -5, max: 5, step: 0.1, value: 0 });
    slider.dataset.direction = d.name;
    const value = el("output", { textContent: "0" });
    slider.oninput = () => { value.textContent = slider.value; requestEdit(performance.now()); };
    const fix = el("input", { type: "checkbox", title: "keep this attribute fixed while moving the others" });
    fix.dataset.fix = d.name;
    fix.onchange = () => requestEdit();
    rows.push(el("label", { textContent: d.name, title: d.method }), slider, value, el("label", {}, fix, " keep fixed"));
  }
  $("edit-sliders").replaceChildren(...rows);
}
$("edit-face").onchange = () => selectFace($("edit-face").value);
$("edit-layers").onchange = () => requestEdit();
function resetSliders() {
  for (const input of $("edit-sliders").querySelectorAll("input[type=range]")) { input.value = 0; input.nextSibling.textContent = "0"; }
}
$("edit-reset").onclick = () => { resetSliders(); requestEdit(); };
// The kept face becomes the one being edited, from zero: the picture stays the same.
$("edit-keep").onclick = async () => { await keep(editPayload()); resetSliders(); requestEdit(); };

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
$("mix-keep").onclick = () => keep({ op: "mix", a: $("mix-a").value, b: $("mix-b").value, layers: mixSpec() });

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
  const payload = averagePayload();
  if (payload.faces.length >= 2) avgLive(payload);
}
$("avg-keep").onclick = () => keep(averagePayload());

// Checklists (average, morph) keep their ticks and weights when the faces change.
function renderChecklists() {
  for (const [listId, withWeight, onChange] of [["avg-list", true, requestAverage], ["morph-list", false, null]]) {
    const list = $(listId), before = {};
    for (const row of list.children) before[row.dataset.face] = row;
    list.replaceChildren(...state.faces.map((f) => {
      if (before[f.id]) return before[f.id];
      const box = el("input", { type: "checkbox" });
      const parts = [box, el("img", { src: f.image, alt: "" }), el("span", { textContent: f.name })];
      if (withWeight) parts.push(el("input", { type: "number", step: 0.1, value: 1, title: "weight" }));
      const row = el("label", {}, ...parts);
      row.dataset.face = f.id;
      if (onChange) row.oninput = onChange;
      return row;
    }));
  }
}

// ---- Morph ----
$("morph-make").onclick = () => guard(async () => {
  const faces = [...$("morph-list").querySelectorAll("label")].filter((row) => row.querySelector("input").checked).map((row) => row.dataset.face);
  $("morph-status").textContent = "rendering…";
  try {
    const made = await api("morph", { method: "POST", json: { faces, frames: Number($("morph-frames").value), fps: Number($("morph-fps").value), loop: $("morph-loop").checked } });
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
$("project-start").onclick = () => guard(async () => {
  const file = $("project-file").files[0];
  if (!file) throw new Error("choose a photo first");
  checkSize(file, state.info.limits.photo);
  const query = new URLSearchParams({ name: file.name, steps: $("project-steps").value, align: $("project-align").value, wplus: $("project-wplus").checked, perceptual: $("project-perceptual").checked });
  $("project-done").hidden = true;
  let job = await api(`project?${query}`, { method: "POST", body: file });
  clearMessage();
  while (!job.done) {
    showJob(job);
    await new Promise((resolve) => setTimeout(resolve, 400));
    job = await api(`project/${job.id}`);
  }
  showJob(job);
  if (job.error) throw new Error(`${job.name}: ${job.error}`);
  state.current = job.face.id;
  await refreshFaces();
  $("project-done").hidden = false;
});
function showJob(job) {
  $("project-progress").max = job.steps;
  $("project-progress").value = job.step;
  const loss = job.stats.pixel_mse !== undefined ? `, pixel MSE ${job.stats.pixel_mse.toFixed(4)}` : "";
  const psnr = job.stats.psnr_db !== undefined ? `, PSNR ${job.stats.psnr_db.toFixed(1)} dB` : "";
  $("project-status").textContent = `${job.done ? (job.error ? "failed" : "done") : "projecting"}: step ${job.step} of ${job.steps}${loss}${psnr}`;
  if (job.target && !$("project-target").src.endsWith("target.png")) $("project-target").src = job.target;
  if (job.preview) $("project-preview").src = job.preview;
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
        input.onchange = loadExplore;
        return el("label", {}, `${name} `, input);
      }));
    } else if (info.c_dim) {
      const klass = el("input", { type: "number", min: 0, max: info.c_dim - 1, value: 0 });
      klass.dataset.class = "1";
      klass.onchange = loadExplore;
      $("explore-labels").replaceChildren(el("label", {}, "class ", klass));
    }
    for (const note of document.querySelectorAll(".needs-wplus")) note.hidden = info.wplus;
    for (const part of document.querySelectorAll(".wplus-only")) part.hidden = !info.wplus;
    $("quiz-unavailable").hidden = info.quiz;
    $("quiz-setup").hidden = !info.quiz;
    $("edit-layers").append(...Object.keys(info.groups).map((g) => el("option", { value: g, textContent: g })));
    buildSliders();
    buildLayers();
    setMixLayers(info.groups.coarse || []);
    await refreshFaces();
    await loadExplore();
    showPage();
    document.body.dataset.ready = "1";
  });
}
start();

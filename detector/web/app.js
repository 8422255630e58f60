// The page of `detector serve`: one /api/predict request per file (two in flight), results drawn as
// they arrive; filters, statistics, histograms and the table are recomputed here from the particles.
"use strict";

const COLOURS = ["rgb(255,140,0)", "rgb(0,200,255)", "rgb(200,0,255)", "rgb(120,255,0)"]; // report.CLASS_COLOURS
const REQUEST_CONF = 0.05; // the server returns everything above this; the slider filters in the page
const IN_FLIGHT = 2;

const TABLE_PAGE = 200; // table rows in the page at once: thousands of rows made every update of a long batch slow
const SUMMARY_EVERY_MS = 1000; // while results stream in, the set's summary and table follow at most this often

const state = { classes: ["cube", "sphere"], enabled: new Set(), conf: 0.25, defaultScale: null,
                items: [], queue: [], running: 0, sortKey: "image", sortDir: 1, tablePage: 0, nextId: 0 };
const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

// ------------------------------------------------------------------ data

function scaleOf(item) {
  const r = item.result;
  if (r.nm_per_px) return { value: r.nm_per_px, source: r.scale_source };
  if (item.userScale) return { value: item.userScale, source: "entered" };
  if (state.defaultScale) return { value: state.defaultScale, source: "entered (all)" };
  return { value: null, source: "none" };
}

function visible(item) {
  return item.result.particles.filter((p) => p.confidence >= state.conf && state.enabled.has(p.class));
}

function done() { return state.items.filter((it) => it.status === "done"); }

function stats(values) {
  const n = values.length;
  if (!n) return { n, mean: NaN, std: NaN, sem: NaN };
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const std = n > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1)) : NaN; // ddof=1, as predict.size_stats
  return { n, mean, std, sem: n > 1 ? std / Math.sqrt(n) : NaN };
}

function pooledSizes() {
  const items = done();
  const allScaled = items.length > 0 && items.every((it) => scaleOf(it).value);
  const unit = allScaled ? "nm" : "px";
  const sizes = Object.fromEntries(state.classes.map((c) => [c, []]));
  for (const it of items) {
    const s = allScaled ? scaleOf(it).value : 1;
    for (const p of visible(it)) sizes[p.class].push(p.diameter_px * s);
  }
  const unscaled = items.filter((it) => !scaleOf(it).value).length;
  return { unit, sizes, unscaled, images: items.length };
}

// ------------------------------------------------------------------ drawing

function drawCard(item) {
  const canvas = item.card.querySelector("canvas");
  const ctx = canvas.getContext("2d");
  const k = item.result.preview_scale || 1;
  ctx.drawImage(item.image, 0, 0);
  const parts = visible(item);
  ctx.lineWidth = Math.max(1, Math.round(Math.max(canvas.width, canvas.height) / 400));
  for (const p of parts) {
    ctx.strokeStyle = COLOURS[p.class_id % COLOURS.length];
    if (p.polygon && p.polygon.length > 2) {
      ctx.beginPath();
      p.polygon.forEach(([x, y], i) => (i ? ctx.lineTo(x * k, y * k) : ctx.moveTo(x * k, y * k)));
      ctx.closePath();
      ctx.stroke();
    } else {
      const [x1, y1, x2, y2] = p.box;
      ctx.strokeRect(x1 * k, y1 * k, (x2 - x1) * k, (y2 - y1) * k);
    }
  }
  canvas.dataset.drawn = String(parts.length);
  const counts = state.classes.map((c) => `${c}: ${parts.filter((p) => p.class === c).length}`);
  const countEl = item.card.querySelector(".counts");
  countEl.textContent = `${counts.join(" · ")} · total ${parts.length}`;
  countEl.dataset.total = String(parts.length);
  drawScale(item);
}

function drawScale(item) {
  const box = item.card.querySelector(".scale");
  const s = scaleOf(item);
  box.replaceChildren();
  if (item.result.nm_per_px) {
    box.append(`scale ${s.value.toPrecision(4)} nm/px (${s.source})`);
    return;
  }
  const input = el("input", { type: "number", min: "0", step: "any", placeholder: "nm/px", title: "scale of this image" });
  if (item.userScale) input.value = item.userScale;
  input.addEventListener("change", () => {
    const v = parseFloat(input.value);
    item.userScale = v > 0 ? v : null;
    scheduleRender(null);
  });
  box.append(s.value ? `scale ${s.value.toPrecision(4)} nm/px (${s.source}); this image: ` : "scale unknown (none in the file): ", input, " nm/px");
}

function drawHistogram(canvas, values, colour, unit) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 44, B = 34, T = 8, R = 10;
  ctx.clearRect(0, 0, W, H);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, W, H);
  canvas.dataset.n = String(values.length);
  ctx.fillStyle = "#333";
  ctx.font = "11px system-ui, sans-serif";
  if (!values.length) {
    ctx.fillText("no particles", W / 2 - 30, H / 2);
    return;
  }
  let lo = Math.min(...values), hi = Math.max(...values);
  if (hi === lo) { lo -= 0.5; hi += 0.5; }
  const bins = Math.min(30, Math.max(5, Math.floor(values.length / 5))); // as report.save_histograms
  const counts = new Array(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.floor(((v - lo) / (hi - lo)) * bins))]++;
  const top = Math.max(...counts);
  const bw = (W - L - R) / bins;
  ctx.fillStyle = colour;
  ctx.strokeStyle = "#000";
  counts.forEach((c, i) => {
    const h = ((H - B - T) * c) / top;
    ctx.fillRect(L + i * bw, H - B - h, bw, h);
    ctx.strokeRect(L + i * bw, H - B - h, bw, h);
  });
  ctx.fillStyle = "#333";
  ctx.beginPath(); ctx.moveTo(L, T); ctx.lineTo(L, H - B); ctx.lineTo(W - R, H - B); ctx.stroke();
  ctx.fillText(lo.toFixed(1), L - 4, H - B + 13);
  ctx.fillText(hi.toFixed(1), W - R - 28, H - B + 13);
  ctx.fillText(String(top), 6, T + 10);
  ctx.fillText("0", 28, H - B);
  ctx.fillText(`equivalent diameter (${unit})`, L + (W - L - R) / 2 - 60, H - 6);
}

function fmt(v, d = 2) { return Number.isFinite(v) ? v.toFixed(d) : "–"; }

function renderSummary() {
  const items = done();
  $("#summary").hidden = items.length === 0;
  $("#table-section").hidden = items.length === 0;
  $("#download").disabled = items.length === 0;
  $("#clear").disabled = state.items.length === 0;
  if (!items.length) return;
  const { unit, sizes, unscaled, images } = pooledSizes();
  $("#set-note").textContent = `${images} image(s); sizes are equivalent diameters sqrt(w·h)` +
    (unscaled && images ? `; ${unscaled} image(s) without a scale, so in px (enter a scale for nm)` : "");
  const body = $("#pooled tbody");
  body.replaceChildren();
  const hist = $("#histograms");
  hist.replaceChildren();
  state.classes.forEach((c, k) => {
    const st = stats(sizes[c]);
    body.append(el("tr", { "data-class": c }, el("td", {}, c), el("td", { class: "count" }, String(st.n)), el("td", {}, fmt(st.mean)),
                   el("td", {}, fmt(st.std)), el("td", {}, fmt(st.sem, 3)), el("td", {}, unit)));
    if (!state.enabled.has(c)) return;
    const canvas = el("canvas", { width: "360", height: "220", id: `hist-${c}` });
    drawHistogram(canvas, sizes[c], COLOURS[k % COLOURS.length], unit);
    hist.append(el("figure", {}, canvas, el("figcaption", {}, `${c}: n=${st.n}, mean ${fmt(st.mean, 1)} ± ${fmt(st.std, 1)} ${unit}`)));
  });
  renderTable();
}

function renderTable() {
  const rows = [];
  for (const it of done()) {
    const s = scaleOf(it).value;
    visible(it).forEach((p, i) => rows.push({ image: it.result.name, index: i + 1, class: p.class, confidence: p.confidence,
      width_px: p.width_px, height_px: p.height_px, diameter_px: p.diameter_px, diameter_nm: s ? p.diameter_px * s : NaN }));
  }
  const key = state.sortKey, dir = state.sortDir;
  rows.sort((a, b) => {
    const x = a[key], y = b[key];
    const c = typeof x === "string" ? x.localeCompare(y) : (Number.isNaN(x) ? -Infinity : x) - (Number.isNaN(y) ? -Infinity : y);
    return dir * c || a.index - b.index;
  });
  document.querySelectorAll("#particles th").forEach((th) => {
    th.classList.toggle("sorted-asc", th.dataset.key === key && dir > 0);
    th.classList.toggle("sorted-desc", th.dataset.key === key && dir < 0);
  });
  const pages = Math.max(1, Math.ceil(rows.length / TABLE_PAGE));
  state.tablePage = Math.min(state.tablePage, pages - 1);
  const first = state.tablePage * TABLE_PAGE;
  const body = $("#particles tbody");
  body.replaceChildren(...rows.slice(first, first + TABLE_PAGE).map((r) => el("tr", {},
    el("td", {}, r.image), el("td", {}, String(r.index)), el("td", {}, r.class), el("td", {}, r.confidence.toFixed(3)),
    el("td", {}, fmt(r.width_px, 1)), el("td", {}, fmt(r.height_px, 1)), el("td", {}, fmt(r.diameter_px, 1)), el("td", {}, fmt(r.diameter_nm, 1)))));
  $("#table-note").textContent = rows.length > TABLE_PAGE
    ? `rows ${first + 1}–${Math.min(rows.length, first + TABLE_PAGE)} of ${rows.length} (the zip has all)` : `${rows.length} rows`;
  $("#table-prev").disabled = state.tablePage === 0;
  $("#table-next").disabled = state.tablePage >= pages - 1;
  $("#table-pager").hidden = pages === 1;
}

// Drawing is batched per animation frame. A new result (`item`) redraws its own card, and the set's
// summary and table follow within SUMMARY_EVERY_MS while the batch runs (redrawing them on every one of
// 50 results kept the page busy most of the time); a control (`item` null) redraws everything at once.
const dirty = new Set();
let frame = false, frameNow = false, summaryTimer = null, lastSummary = 0;

function scheduleRender(item) {
  if (item) dirty.add(item); else done().forEach((it) => dirty.add(it));
  frameNow ||= !item;
  if (frame) return;
  frame = true;
  requestAnimationFrame(() => {
    const now = frameNow;
    frame = frameNow = false;
    for (const it of dirty) if (it.status === "done" && state.items.includes(it)) drawCard(it);
    dirty.clear();
    scheduleSummary(now);
  });
}

function scheduleSummary(now) {
  const busy = state.running > 0 || state.queue.length > 0;
  const wait = now || !busy ? 0 : Math.max(0, lastSummary + SUMMARY_EVERY_MS - performance.now());
  if (summaryTimer !== null) {
    if (wait > 0) return; // one is due already
    clearTimeout(summaryTimer);
  }
  summaryTimer = setTimeout(() => { summaryTimer = null; lastSummary = performance.now(); renderSummary(); }, wait);
}

function renderProgress() {
  const total = state.items.length;
  const finished = state.items.filter((it) => it.status !== "pending").length;
  const failed = state.items.filter((it) => it.status === "error").length;
  $("#progress-row").hidden = total === 0;
  $("#progress").max = Math.max(1, total);
  $("#progress").value = finished;
  $("#status").textContent = `${finished} / ${total} done` + (failed ? `, ${failed} refused` : "") +
    (finished < total ? " (results appear as they come)" : "");
}

// ------------------------------------------------------------------ requests

async function errorText(resp) {
  try { return (await resp.json()).error || `HTTP ${resp.status}`; } catch (e) { return `HTTP ${resp.status}`; }
}

function addFiles(files) {
  for (const file of files) {
    const item = { id: state.nextId++, file, status: "pending", result: null, userScale: null };
    item.card = el("div", { class: "card pending", "data-name": file.name },
                   el("h3", {}, file.name), el("div", { class: "body" }, "waiting…"));
    $("#images").append(item.card);
    state.items.push(item);
    state.queue.push(item);
  }
  renderProgress();
  pump();
}

function pump() {
  while (state.running < IN_FLIGHT && state.queue.length) {
    const item = state.queue.shift();
    state.running++;
    predict(item).finally(() => {
      state.running--;
      renderProgress();
      pump();
      if (!state.running && !state.queue.length) scheduleSummary(true); // the batch is over: the final summary now
    });
  }
}

async function predict(item) {
  item.card.querySelector(".body").textContent = "detecting…";
  const form = new FormData();
  form.append("files", item.file, item.file.name);
  form.append("conf", String(REQUEST_CONF));
  form.append("preview", "true");
  let resp;
  try {
    resp = await fetch("/api/predict", { method: "POST", body: form });
  } catch (e) {
    return fail(item, `${item.file.name}: the server did not answer (${e.message})`);
  }
  if (!state.items.includes(item)) return;
  if (!resp.ok) return fail(item, await errorText(resp));
  const data = await resp.json();
  item.result = data.images[0];
  item.image = new Image();
  item.image.src = item.result.preview;
  await item.image.decode();
  const canvas = el("canvas", { width: String(item.image.naturalWidth), height: String(item.image.naturalHeight) });
  item.card.classList.remove("pending");
  item.card.querySelector("h3").textContent = `${item.result.name} (${item.result.width}×${item.result.height})`;
  item.card.querySelector(".body").replaceChildren(canvas, el("div", { class: "meta" }, el("span", { class: "counts" }), el("span", { class: "scale" })));
  item.status = "done";
  scheduleRender(item);
}

function fail(item, message) {
  if (!state.items.includes(item)) return;
  item.status = "error";
  item.card.classList.remove("pending");
  item.card.querySelector(".body").replaceChildren(el("p", { class: "error" }, `error: ${message}`));
  $("#messages").append(el("p", { class: "error" }, `error: ${message}`));
}

async function download() {
  const button = $("#download");
  const items = done();
  const form = new FormData();
  const images = items.map((it) => ({ name: it.result.name, nm_per_px: scaleOf(it).value,
    scale_source: scaleOf(it).source.startsWith("entered") ? "option" : scaleOf(it).source,
    particles: visible(it).map((p) => ({ class_id: p.class_id, confidence: p.confidence, box: p.box })) }));
  items.forEach((it) => form.append("files", it.file, it.file.name));
  form.append("results", JSON.stringify({ images }));
  button.disabled = true;
  button.textContent = "preparing zip…";
  try {
    const resp = await fetch("/api/export", { method: "POST", body: form });
    if (!resp.ok) throw new Error(await errorText(resp));
    const url = URL.createObjectURL(await resp.blob());
    const a = el("a", { href: url, download: "particles.zip" });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (e) {
    $("#messages").append(el("p", { class: "error" }, `error: download failed: ${e.message}`));
  } finally {
    button.disabled = false;
    button.textContent = "Download zip (CSV, COCO, labelme, PNGs)";
  }
}

// ------------------------------------------------------------------ controls

function setup() {
  const toggles = $("#class-toggles");
  toggles.replaceChildren();
  state.classes.forEach((c, k) => {
    state.enabled.add(c);
    const box = el("input", { type: "checkbox", checked: "", "data-class": c });
    box.addEventListener("change", () => { box.checked ? state.enabled.add(c) : state.enabled.delete(c); scheduleRender(null); });
    toggles.append(el("label", {}, box, " ", el("span", { class: "swatch", style: `background:${COLOURS[k % COLOURS.length]}` }), ` ${c}`));
  });
  $("#conf").addEventListener("input", (e) => {
    state.conf = parseFloat(e.target.value);
    $("#conf-value").textContent = state.conf.toFixed(2);
    scheduleRender(null);
  });
  $("#default-scale").addEventListener("change", (e) => {
    const v = parseFloat(e.target.value);
    state.defaultScale = v > 0 ? v : null;
    scheduleRender(null);
  });
  $("#files").addEventListener("change", (e) => { addFiles([...e.target.files]); e.target.value = ""; });
  const drop = $("#drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); addFiles([...e.dataTransfer.files]); });
  $("#download").addEventListener("click", download);
  $("#clear").addEventListener("click", () => {
    state.queue = [];
    state.items = []; // answers still in flight are dropped when they come (predict checks)
    $("#images").replaceChildren();
    $("#messages").replaceChildren();
    renderProgress();
    scheduleRender(null);
  });
  document.querySelectorAll("#particles th").forEach((th) => th.addEventListener("click", () => {
    state.sortDir = state.sortKey === th.dataset.key ? -state.sortDir : 1;
    state.sortKey = th.dataset.key;
    state.tablePage = 0;
    renderTable();
  }));
  $("#table-prev").addEventListener("click", () => { state.tablePage--; renderTable(); });
  $("#table-next").addEventListener("click", () => { state.tablePage++; renderTable(); });
}

async function start() {
  try {
    const h = await (await fetch("/api/health")).json();
    state.classes = h.classes;
    $("#model").textContent = `model ${h.model} on ${h.device}; files up to ${h.limits.max_file_mb} MB, ${h.limits.max_megapixels} megapixels` +
      (h.keep ? "; uploads are kept by this server" : "; nothing uploaded is kept");
  } catch (e) {
    $("#messages").append(el("p", { class: "error" }, "error: the server does not answer /api/health"));
  }
  setup();
  document.body.dataset.ready = "1";
}

start();

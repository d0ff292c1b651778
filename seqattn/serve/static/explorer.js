// seqattn attention explorer: type a sentence, see its translation, its word alignment and
// the attention behind it. Plain JS, no build step, no network but this server's /v1/ API.
"use strict";

const KEY_STORE = "seqattn.apiKey";   // sessionStorage: the API key lives as long as the tab
const $ = (selector) => document.querySelector(selector);
const FLAG_TITLES = {   // the evidence card's target-word flags (seqattn/align/checks.py)
  repeat: "part of a repeated run: a looping decoder?",
  flat: "attends to nothing in particular: possibly not grounded in the source",
  eos: "most of its attention is on end-of-sentence: not grounded in any source word",
};
const state = {
  models: [],       // GET /v1/models
  record: null,     // the translation record shown
  serial: 0,        // the latest request: an older answer arriving late is dropped
  retry: null,      // what to do again once an API key is given
};

class AuthNeeded extends Error {}

// ------------------------------------------------------------------------------ the API

async function api(path, body) {
  const headers = {};
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: body ? "POST" : "GET", headers, body: body ? JSON.stringify(body) : undefined,
  }).catch((err) => { throw new Error(`cannot reach the server (${err.message})`); });
  // not JSON (a proxy's error page): the status line below says enough
  const data = await response.json().catch(() => null);
  const message = (data && data.error) || `${response.status} ${response.statusText}`;
  if (response.status === 401) throw new AuthNeeded(message);
  if (!response.ok) throw new Error(message);
  return data;
}

function setStatus(text, kind = "") {
  const status = $("#status");
  status.textContent = text;
  status.className = kind;
  document.body.dataset.state = kind === "error" ? "error" : kind === "busy" ? "loading" : "ready";
}

/** Run `task`; on a 401 ask for the key and run it again once one is given. */
async function guarded(task) {
  try {
    await task();
  } catch (err) {
    if (err instanceof AuthNeeded) {
      state.retry = task;
      $("#key-row").hidden = false;
      $("#api-key").focus();
      setStatus(sessionStorage.getItem(KEY_STORE) ? "That API key was refused: try another."
                                                  : "This server needs an API key.", "error");
    } else {
      setStatus(err.message, "error");
    }
  }
}

function saveKey() {
  const key = $("#api-key").value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORE, key);
  $("#key-row").hidden = true;
  const retry = state.retry;
  state.retry = null;
  if (retry) guarded(retry);
}

// ------------------------------------------------------------------------- models and views

async function loadModels() {
  setStatus("Loading models…", "busy");
  state.models = (await api("v1/models")).models;
  const select = $("#model");
  select.replaceChildren(...state.models.map((m) => new Option(
    `${m.source_language} → ${m.target_language} (${m.name})`, m.name, m.default, m.default)));
  fillViewControls();
  setStatus("");
}

const currentModel = () => state.models.find((m) => m.name === $("#model").value);

/** The model translating the other way, if the server holds one. */
function reverseModel() {
  const m = currentModel();
  return m && state.models.find((r) => r.source_language === m.target_language &&
                                       r.target_language === m.source_language);
}

function fillViewControls() {
  const m = currentModel();
  if (!m.view) {   // a model without attention (model.attention: none): translations only
    for (const id of ["#view", "#layer", "#heads"]) $(id).replaceChildren();
    $("#view-info").textContent = "no attention to show: this model's decoder reads only " +
                                  "the encoder's final state (model.attention: none)";
    $("#swap").hidden = !reverseModel();
    showViewControls();
    return;
  }
  const views = [["model", m.guided ? "model's view (guided)" : "model's view"]];
  if (m.view.blend) views.push(["noblend", "model's view, blend off"]);
  views.push(["plain", "plain layer/head"], ["shift", "shift-att"]);
  if (m.aligner) views.push(["full", "full-context aligner"]);
  $("#view").replaceChildren(...views.map(([value, label]) => new Option(label, value)));

  const plainLayers = m.aligner ? m.layers - 1 : m.layers;   // the aligner is the last layer
  const layers = [...Array(plainLayers).keys()];
  const layer = m.view.layer < plainLayers ? m.view.layer : plainLayers - 1;
  $("#layer").replaceChildren(...layers.map((l) => new Option(String(l), l, false, l === layer)));
  const heads = ["mean", "max", ...[...Array(m.heads).keys()].map(String)];
  $("#heads").replaceChildren(...heads.map((h) => new Option(h, h, false, h === m.view.heads)));

  $("#view-info").textContent = describeView(m);
  $("#swap").hidden = !reverseModel();
  showViewControls();
}

function describeView(m) {
  const v = m.view;
  const layer = m.aligner && v.layer === m.layers - 1 ? `layer ${v.layer} (full-context aligner)`
                                                      : `layer ${v.layer}`;
  const parts = [`model's view: ${layer}, heads ${v.heads}`];
  if (v.shift) parts.push("shift-att");
  if (v.blend) parts.push(`blend ${v.blend.layer}:${v.blend.heads} × ${v.blend.weight}`);
  if (m.calibrated) parts.push("calibrated");
  return parts.join(" · ");
}

function showViewControls() {
  const plain = $("#view").value === "plain";
  document.querySelectorAll(".plain-only").forEach((el) => { el.hidden = !plain; });
}

/** The request's view fields; null leaves a setting to the model (with its blend, if any). */
function viewOptions() {
  const none = {layer: null, heads: null, shift_att: null, blend: null};
  switch ($("#view").value) {
    case "noblend": return {...none, blend: "none"};
    case "plain": return {...none, layer: Number($("#layer").value), heads: $("#heads").value,
                          shift_att: false};
    case "shift": return {...none, shift_att: true};
    case "full": return {...none, layer: currentModel().layers - 1};
    default: return none;
  }
}

// ------------------------------------------------------------------------------ translating

async function translate() {
  // one line: the API takes one line per text (line breaks typed with Shift+Enter join)
  const text = $("#text").value.replace(/[\r\n]+/g, " ").trim();
  if (!text) {
    setStatus("Type a sentence first.", "error");
    return;
  }
  if (!$("#model").value) {
    setStatus("The models are still loading.", "error");
    return;
  }
  const body = currentModel().view ? {text, model: $("#model").value, align: true,
                                      attention: true, check: true, ...viewOptions()}
                                    : {text, model: $("#model").value};  // nothing to align
  const serial = ++state.serial;
  setStatus("Translating…", "busy");
  await guarded(async () => {
    try {
      const data = await api("v1/translate", body);
      if (serial !== state.serial) return;   // a newer request is on its way
      render(data.translations[0], body);
      setStatus("");
    } catch (err) {
      if (serial === state.serial) throw err;  // an older request's error is old news
    }
  });
}

function retranslate() {
  if (state.record) translate();
}

function reverse() {
  const back = reverseModel();
  if (!back || !state.record) return;
  $("#text").value = state.record.translation;
  $("#model").value = back.name;
  fillViewControls();
  translate();
}

// ------------------------------------------------------------------------------ rendering

function render(record, body) {
  state.record = record;
  const result = $("#result");
  result.hidden = false;
  result.dataset.request = JSON.stringify(body);   // what was asked (tests replay it)
  $("#translation").textContent = record.translation;
  const score = record.score == null ? "no translation" : `score ${record.score.toFixed(3)}`;
  $("#score").textContent = `${score} · alignment ${record.alignment || "none"}` +
                            (record.truncated ? " · truncated at the length cap" : "");
  renderWords($("#source"), record.source_words || [], "src");
  renderWords($("#target"), record.target_words || [], "tgt");
  if (record.eos_attention) {
    const eos = document.createElement("span");
    eos.className = "eos-token";
    eos.textContent = "⟨eos⟩";
    eos.title = "end of sentence: attention that rests on no source word";
    $("#source").append(eos);
  }
  renderFlags(record);
  renderHeatmap(record);
}

function wordElement(side, index, text) {
  const el = document.createElement("span");
  el.className = `${side}-word`;
  el.dataset.side = side;
  el.dataset.index = index;
  el.tabIndex = 0;   // keyboard focus shows the same as hover
  // no dir attribute here: dir="auto" on the container reads the words' text to pick the
  // line's direction, and skips any child that has its own dir
  const label = document.createElement("span");
  label.className = "txt";
  label.textContent = text;
  el.append(label);
  return el;
}

function renderWords(container, words, side) {
  container.replaceChildren(...words.map((w, k) => wordElement(side, k, w)));
}

/** Target word flags of the evidence card: {index: ["repeat", "flat", "eos"]}. */
function targetFlags(checks) {
  const flags = {};
  const add = (j, flag) => { (flags[j] = flags[j] || []).push(flag); };
  for (const run of checks.repeated) for (let j = run.start; j < run.end; j++) add(j, "repeat");
  checks.flat.forEach((j) => add(j, "flat"));
  checks.eos.forEach((j) => add(j, "eos"));
  return flags;
}

function renderFlags(record) {
  const checks = record.checks;
  const summary = $("#flags");
  summary.textContent = "";
  if (!checks) return;
  for (const {index} of checks.omitted) {
    const el = $(`.src-word[data-index="${index}"]`);
    el.classList.add("omitted");
    el.title = "possibly omitted: little attention reached this word";
  }
  for (const [j, flags] of Object.entries(targetFlags(checks))) {
    const el = $(`.tgt-word[data-index="${j}"]`);
    el.classList.add("flagged");
    el.append(...flags.map((flag) => Object.assign(document.createElement("span"), {
      className: `badge ${flag}`, textContent: flag, title: FLAG_TITLES[flag]})));
  }
  const quoted = (words) => words.map((w) => `“${w}”`).join(", ");
  const omitted = checks.omitted.map((o) => o.word);
  const repeated = checks.repeated.map((r) => r.ngram);
  const parts = [];
  if (omitted.length) parts.push(`possibly omitted: ${quoted(omitted)}`);
  if (repeated.length) parts.push(`repeated: ${quoted(repeated)}`);
  if (checks.flat.length) parts.push(`${checks.flat.length} flat row(s)`);
  if (checks.eos.length) parts.push(`${checks.eos.length} word(s) mostly on eos`);
  summary.className = parts.length ? "flagged" : "clean";
  summary.textContent = parts.length ? `Evidence card: ${parts.join(" · ")}`
                                     : "Evidence card: no flags.";
}

/** `text` cut to `max` graphemes (never inside one: a flag or a combining accent stays whole). */
function shorten(text, max = 14) {
  const graphemes = window.Intl && Intl.Segmenter
    ? Array.from(new Intl.Segmenter().segment(text), (g) => g.segment)
    : Array.from(text);
  return graphemes.length <= max ? text : `${graphemes.slice(0, max - 1).join("")}…`;
}

function headCell(side, index, text) {
  const th = document.createElement("th");
  th.className = `${side}-head`;
  th.dataset.side = side;
  th.dataset.index = index;
  th.dir = "auto";
  th.textContent = shorten(text);
  th.title = text;
  return th;
}

function shadeCell(weight, title) {
  const td = document.createElement("td");
  td.style.setProperty("--w", weight.toFixed(3));
  td.classList.toggle("strong", weight > 0.55);
  td.title = title;
  return td;
}

function renderHeatmap(record) {
  const table = $("#heatmap");
  if (!record.links) {   // a translation without attention: no matrix to draw
    table.replaceChildren();
    return;
  }
  const attention = record.attention || [];
  const linked = new Set(record.links.map(([i, j]) => `${i},${j}`));
  const header = document.createElement("tr");
  header.append(document.createElement("th"));
  record.source_words.forEach((w, i) => header.append(headCell("src", i, w)));
  if (record.eos_attention) {
    header.append(Object.assign(document.createElement("th"),
                                {className: "eos-col", textContent: "eos"}));
  }
  const rows = record.target_words.map((w, j) => {
    const tr = document.createElement("tr");
    tr.append(headCell("tgt", j, w));
    (attention[j] || []).forEach((weight, i) => {
      const td = shadeCell(weight, `${w} ← ${record.source_words[i]}: ${weight.toFixed(3)}`);
      td.dataset.src = i;
      td.dataset.tgt = j;
      if (linked.has(`${i},${j}`)) td.classList.add("link");
      tr.append(td);
    });
    if (record.eos_attention) {
      const mass = record.eos_attention[j];
      tr.append(Object.assign(shadeCell(mass, `${w} ← eos: ${mass.toFixed(3)}`),
                              {className: "eos-col"}));
    }
    return tr;
  });
  table.replaceChildren(header, ...rows);
}

// ------------------------------------------------------------------------------ highlighting

/** Weights of word `index` on `side` over the other side's words: a row or a column. */
function weightsOf(side, index) {
  const attention = state.record.attention || [];
  return side === "tgt" ? attention[index] || [] : attention.map((row) => row[index]);
}

/** The other side's words linked to word `index` on `side`. */
function linksOf(side, index) {
  const [mine, theirs] = side === "tgt" ? [1, 0] : [0, 1];   // links are [source, target]
  return new Set(state.record.links.filter((l) => l[mine] === index).map((l) => l[theirs]));
}

function highlight(side, index) {
  clearHighlight();
  const other = side === "tgt" ? "src" : "tgt";
  const weights = weightsOf(side, index);
  const linked = linksOf(side, index);
  document.querySelectorAll(`[data-side="${side}"][data-index="${index}"]`)
    .forEach((el) => el.classList.add("active"));
  for (const el of document.querySelectorAll(`.${other}-word`)) {
    const k = Number(el.dataset.index);
    markWeight(el, weights[k] || 0);
    el.classList.toggle("linked", linked.has(k));
  }
  if (side === "tgt" && state.record.eos_attention) {
    markWeight($(".eos-token"), state.record.eos_attention[index]);
  }
  const cells = side === "tgt" ? `td[data-tgt="${index}"]` : `td[data-src="${index}"]`;
  document.querySelectorAll(`#heatmap ${cells}`).forEach((td) => td.classList.add("hl"));
  $("#result").classList.add("hovering");
}

/** Shade `el` by `weight` and label it with the number (labels under 0.01 stay empty). */
function markWeight(el, weight) {
  el.style.setProperty("--w", weight.toFixed(3));
  el.dataset.weight = String(weight);
  el.dataset.label = weight >= 0.01 ? weight.toFixed(2) : "";
  el.classList.toggle("strong", weight > 0.55);
}

function clearHighlight() {
  $("#result").classList.remove("hovering");
  for (const el of document.querySelectorAll(".active, .linked, .hl")) {
    el.classList.remove("active", "linked", "hl");
  }
  for (const el of document.querySelectorAll("[data-weight]")) {   // words, not heatmap cells
    el.classList.remove("strong");
    el.style.removeProperty("--w");
    delete el.dataset.weight;
    delete el.dataset.label;
  }
}

/** Hover or focus inside `container` highlights the word (or heatmap header/cell) under it. */
function wireHover(container) {
  const show = (event) => {
    const el = event.target.closest("[data-side], td[data-tgt]");
    if (!el || !state.record) return;
    if (el.dataset.side) highlight(el.dataset.side, Number(el.dataset.index));
    else highlight("tgt", Number(el.dataset.tgt));
  };
  container.addEventListener("mouseover", show);
  container.addEventListener("focusin", show);
  container.addEventListener("mouseleave", clearHighlight);
  container.addEventListener("focusout", clearHighlight);
}

// ------------------------------------------------------------------------------ start

function start() {
  $("#translate").addEventListener("click", translate);
  $("#text").addEventListener("keydown", (event) => {
    // Enter submits; Shift+Enter breaks the line; Enter that confirms an IME word does neither
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      translate();
    }
  });
  $("#model").addEventListener("change", () => { fillViewControls(); retranslate(); });
  $("#view").addEventListener("change", () => { showViewControls(); retranslate(); });
  $("#layer").addEventListener("change", retranslate);
  $("#heads").addEventListener("change", retranslate);
  $("#swap").addEventListener("click", reverse);
  $("#key-row").addEventListener("submit", (event) => { event.preventDefault(); saveKey(); });
  ["#source", "#target", "#heatmap"].forEach((sel) => wireHover($(sel)));
  guarded(loadModels);
}

start();

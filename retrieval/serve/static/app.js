// mre serve's page: search by words, listen, and see the library as a map. No framework, no
// build step. Every text that comes from the library (file names, tags) is set as textContent,
// never as HTML: a file name is data, not markup.
"use strict";

const $ = (id) => document.getElementById(id);
const audio = $("audio");
const state = {
  map: null,            // /api/map: columns of every track, the words, the generation
  rowOf: new Map(),     // track id → row in map columns
  facts: new Map(),     // track id → {bpm, key, mode} from query answers (before the map arrives)
  hits: [],             // current results (hit dicts as `mre query --json` prints them)
  selected: -1,         // index in hits of the selected result
  playing: null,        // track id loaded in the player
  names: new Map(),     // track id → file name, for the player line
  colour: { by: "", values: null, word: "" },
  view: null,           // the map's screen transform and drawn points, for hover and clicks
  generation: null,
  viewName: "search",   // "search" (results, map, track) or "duplicates"
  duplicates: null,     // the generation of the duplicates report shown
};
// what a browser test (and a curious user, in the console) can read
window.mre = { state, lastPlay: null, drawn: { tracks: 0, words: 0 } };

// ------------------------------------------------------------------------------ helpers
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "style") node.style.cssText = value;  // CSSOM: the page's CSP forbids style attributes
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}
const baseName = (path) => (path || "").split("/").pop();
function clock(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "0:00";
  const m = Math.floor(seconds / 60), s = Math.floor(seconds % 60);
  return `${m}:${String(s).padStart(2, "0")}`;
}
// min and max by a loop: Math.min(...values) overflows the call stack at ~100k values
function extent(values) {
  let low = Infinity, high = -Infinity;
  for (const v of values) if (v != null && Number.isFinite(v)) { if (v < low) low = v; if (v > high) high = v; }
  return [low, high];
}
const fixed = (v, digits = 1) => (v == null || !Number.isFinite(v) ? "—" : v.toFixed(digits));

async function api(path) {
  const response = await fetch(path, { headers: { accept: "application/json" } });
  const generation = response.headers.get("x-mre-generation");
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  if (generation && state.map && generation !== state.map.generation) loadMap("the library was re-indexed");
  return body;
}

function factsOf(trackId) {
  const row = state.rowOf.get(trackId);
  if (row !== undefined) {
    const t = state.map.tracks;
    return { bpm: t.bpm[row], key: t.key[row], mode: t.mode[row] };
  }
  return state.facts.get(trackId) || {};
}

// ------------------------------------------------------------------------------ search
function filterParams() {
  const params = new URLSearchParams();
  for (const name of ["bpm", "key", "mode"]) if ($(name).value.trim()) params.set(name, $(name).value.trim());
  return params;
}

async function search(text) {
  text = text.trim();
  if (!text) return;
  const params = filterParams();
  params.set("q", text);
  params.set("k", $("k").value);
  history.replaceState(null, "", `#${params}`);
  $("results-note").textContent = "searching…";
  let answer;
  try {
    answer = await api(`/api/query?${params}`);
  } catch (error) {
    $("results-note").textContent = error.message;
    $("understood").textContent = "";
    showHits([], $("results"));
    return;
  }
  for (const [id, facts] of Object.entries(answer.attributes || {})) state.facts.set(id, facts);
  showUnderstood(answer);
  state.hits = answer.hits;
  state.selected = answer.hits.length ? 0 : -1;
  $("results-note").textContent = answer.hits.length ? `${answer.hits.length} tracks, best first` : "no tracks pass these filters";
  showHits(answer.hits, $("results"), true);
  drawMap();
}

// how the words were understood: the labels they landed on, with weights, and what was ignored
function showUnderstood(answer) {
  const box = $("understood");
  box.replaceChildren();
  if (answer.related_labels.length) {
    box.append("understood as ");
    answer.related_labels.slice(0, 8).forEach(([label, weight], i) => {
      if (i) box.append(", ");
      box.append(el("span", { class: "label", text: label }), ` ${weight >= 0 ? "+" : "−"}${Math.abs(weight).toFixed(2)}`);
    });
    if (answer.matched_labels.length) box.append(` (exact labels: ${answer.matched_labels.join(", ")})`);
  }
  for (const message of [...answer.messages, ...answer.ignored.map((word) => `ignored: ${word}`)]) {
    box.append(el("span", { class: "warning", text: ` · ${message}` }));
  }
}

function showHits(hits, list, selectable = false) {
  list.replaceChildren();
  hits.forEach((hit, i) => {
    state.names.set(hit.track_id, baseName(hit.path));
    const facts = factsOf(hit.track_id);
    const key = facts.key ? `${facts.key} ${facts.mode || ""}`.trim() : "no key";
    const bpm = facts.bpm ? `${Math.round(facts.bpm)} BPM` : "no pulse";
    const item = el("li", { "data-track-id": hit.track_id, title: hit.path, role: selectable ? "option" : "listitem" },
      el("span", { class: "rank", text: `${i + 1}.` }),
      el("button", { type: "button", class: "play", "aria-label": `Play ${baseName(hit.path)}`, text: "▶",
                     onclick: (event) => { event.stopPropagation(); if (selectable) select(i); toggleTrack(hit.track_id); } }),
      el("button", { type: "button", class: "open", text: baseName(hit.path),
                     onclick: () => { if (selectable) select(i); openTrack(hit.track_id); } }),
      el("span", { class: "score", text: hit.score.toFixed(3), title: "score" }),
      el("span", { class: "facts" }, `${clock(hit.duration)} · ${bpm} · ${key} · `,
         ...(hit.top_tags || []).slice(0, 3).map((tag) => el("span", { class: "tag", text: tag }))));
    if (selectable) item.setAttribute("aria-selected", String(i === state.selected));
    list.append(item);
  });
  markPlaying();
}

function select(index) {
  if (!state.hits.length) return;
  state.selected = Math.max(0, Math.min(state.hits.length - 1, index));
  $("results").querySelectorAll("li").forEach((li, i) => {
    li.setAttribute("aria-selected", String(i === state.selected));
    if (i === state.selected) li.scrollIntoView({ block: "nearest" });
  });
  drawMap();
}

// ------------------------------------------------------------------------------ player
function playTrack(trackId) {
  if (state.playing !== trackId) {
    state.playing = trackId;
    audio.src = `/audio/${trackId}`;
    $("now-playing").textContent = state.names.get(trackId) || trackId;
    $("play-pause").disabled = false;
    $("seek").disabled = false;
  }
  window.mre.lastPlay = audio.play();
  window.mre.lastPlay.catch((error) => { $("now-playing").textContent = `cannot play: ${error.message}`; });
  markPlaying();
  drawMap();
  return window.mre.lastPlay;
}
function toggleTrack(trackId) {
  if (state.playing === trackId && !audio.paused) audio.pause();
  else playTrack(trackId);
}
function togglePlayer() {
  if (!state.playing) {
    if (state.selected >= 0) playTrack(state.hits[state.selected].track_id);
    return;
  }
  if (audio.paused) { window.mre.lastPlay = audio.play(); window.mre.lastPlay.catch(() => {}); } else audio.pause();
}
function markPlaying() {
  document.querySelectorAll(".tracks li").forEach((li) => {
    const on = li.dataset.trackId === state.playing && !audio.paused;
    li.classList.toggle("playing", on);
    const button = li.querySelector(".play");
    button.textContent = on ? "❚❚" : "▶";
    button.setAttribute("aria-label", `${on ? "Pause" : "Play"} ${state.names.get(li.dataset.trackId) || ""}`);
  });
  const on = state.playing && !audio.paused;
  $("play-pause").textContent = on ? "❚❚" : "▶";
  $("play-pause").setAttribute("aria-label", on ? "Pause" : "Play");
  $("track-play").textContent = on && $("track-pane").dataset.trackId === state.playing ? "❚❚ Pause" : "▶ Play";
}
function showTime() {
  const duration = audio.duration;
  $("time").textContent = `${clock(audio.currentTime)} / ${clock(duration)}`;
  if (Number.isFinite(duration) && duration > 0 && !seeking) $("seek").value = String(Math.round((audio.currentTime / duration) * 1000));
}
let seeking = false;
function seekTo(seconds) {
  if (!state.playing || !Number.isFinite(audio.duration)) return;
  audio.currentTime = Math.max(0, Math.min(audio.duration, seconds));
}
for (const event of ["play", "pause", "ended"]) audio.addEventListener(event, () => { markPlaying(); drawMap(); });
for (const event of ["timeupdate", "durationchange", "seeked", "loadedmetadata"]) audio.addEventListener(event, showTime);
audio.addEventListener("error", () => {
  $("now-playing").textContent = `cannot play ${state.names.get(state.playing) || ""}: the file is gone or unreadable`;
});
$("play-pause").addEventListener("click", togglePlayer);
$("seek").addEventListener("input", () => { seeking = true; seekTo((Number($("seek").value) / 1000) * audio.duration); });
$("seek").addEventListener("change", () => { seeking = false; });

// ------------------------------------------------------------------------------ track view
async function openTrack(trackId) {
  const pane = $("track-pane");
  pane.hidden = false;
  pane.dataset.trackId = trackId;
  $("track-title").textContent = state.names.get(trackId) || trackId;
  $("track-path").textContent = "";
  $("track-attributes").replaceChildren();
  $("track-tags").replaceChildren(el("li", { text: "…" }));
  $("track-similar").replaceChildren();
  markPlaying();
  drawMap();
  try {
    const [[card], [tagged], similar] = await Promise.all([
      api(`/api/info/${trackId}`), api(`/api/tags/${trackId}?k=12`), api(`/api/similar/${trackId}?k=8`)]);
    if (pane.dataset.trackId !== trackId) return;  // another track was opened meanwhile
    state.names.set(trackId, baseName(card.path));
    $("track-title").textContent = baseName(card.path);
    $("track-path").textContent = card.path;
    showAttributes(card);
    showTags(tagged.tags);
    showHits(similar, $("track-similar"));
  } catch (error) {
    $("track-tags").replaceChildren(el("li", { text: error.message }));
  }
}
function showAttributes(card) {
  const rows = [
    ["duration", `${clock(card.duration)} (${fixed(card.duration)} s)`],
    ["format", `${card.format || "?"}, ${card.sample_rate || "?"} Hz, ${card.channels || "?"} ch`],
    ["tempo", card.bpm ? `${fixed(card.bpm)} BPM (confidence ${fixed(card.bpm_confidence, 2)})` : "no clear pulse"],
    ["key", card.key ? `${card.key} ${card.mode} (strength ${fixed(card.mode_strength, 2)})` : "no key"],
    ["loudness", `${fixed(card.loudness_db)} LUFS, range ${fixed(card.dynamic_range_db)} LU`],
    ["brightness", `${fixed(card.brightness, 0)} Hz`],
    ["percussive", fixed(card.percussiveness, 2)],
    ["onsets", `${fixed(card.onset_density)} per s`],
    ["beat strength", fixed(card.beat_strength, 2)],
  ];
  $("track-attributes").replaceChildren(...rows.flatMap(([name, value]) => [el("dt", { text: name }), el("dd", { text: value })]));
}
function showTags(tags) {
  const best = tags.length ? Math.max(...tags.map((t) => t.score), 1e-9) : 1;
  $("track-tags").replaceChildren(...tags.map((t) => el("li", {},
    el("span", { class: "bar", style: `width: ${Math.max(2, (100 * t.score) / best).toFixed(0)}%` }),
    el("span", { text: t.tag }), el("span", { class: "score", text: t.score.toFixed(3) }))));
}
$("track-play").addEventListener("click", () => toggleTrack($("track-pane").dataset.trackId));
$("track-close").addEventListener("click", () => { $("track-pane").hidden = true; delete $("track-pane").dataset.trackId; drawMap(); });

// ------------------------------------------------------------------------------ map
async function loadMap(reason) {
  $("map-status").textContent = reason ? `${reason}: redrawing…` : "loading the map…";
  let data;
  try {
    const response = await fetch("/api/map");
    data = await response.json();
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  } catch (error) {
    $("map-status").textContent = `no map: ${error.message}`;
    return;
  }
  state.map = data;
  state.rowOf = new Map(data.tracks.track_id.map((id, row) => [id, row]));
  data.tracks.track_id.forEach((id, row) => { if (!state.names.has(id)) state.names.set(id, data.tracks.name[row]); });
  const select = $("colour-by");
  for (const name of data.attributes) {
    if (![...select.options].some((o) => o.value === `attr:${name}`)) select.append(el("option", { value: `attr:${name}`, text: name.replace(/_/g, " ") }));
  }
  $("map-status").textContent = `${data.tracks.track_id.length} tracks, ${data.words.tag.length} words (${data.method.toUpperCase()})${reason ? ` — ${reason}` : ""}`;
  if (state.colour.by === "word" && state.colour.word) await colourByWord(state.colour.word);
  else setColour(state.colour.by);
}

// colour-blind-safe ramp (viridis stops); categories also get their own shapes
const RAMP = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"];
function ramp(t) {
  if (t == null || !Number.isFinite(t)) return "#b8b8c0";
  const x = Math.max(0, Math.min(1, t)) * (RAMP.length - 1), i = Math.min(RAMP.length - 2, Math.floor(x)), f = x - i;
  const a = parseInt(RAMP[i].slice(1), 16), b = parseInt(RAMP[i + 1].slice(1), 16);
  const mix = (shift) => Math.round(((a >> shift) & 255) * (1 - f) + ((b >> shift) & 255) * f);
  return `rgb(${mix(16)},${mix(8)},${mix(0)})`;
}
function setColour(by, values = null) {
  state.colour.by = by;
  state.colour.values = values;
  const legend = $("legend");
  legend.replaceChildren();
  if (!state.map) return;
  const t = state.map.tracks;
  if (by.startsWith("attr:")) state.colour.values = t[by.slice(5)];
  if (state.colour.values) {
    const [low, high] = extent(by === "attr:bpm" ? state.colour.values.map((v) => (v === 0 ? null : v)) : state.colour.values);
    state.colour.range = [low, high];
    legend.append(`${by === "word" ? `“${state.colour.word}” score` : by.slice(5).replace(/_/g, " ")}: `,
      el("span", { text: `${fixed(low, 2)} ` }), ...RAMP.map((c) => el("span", { style: `color:${c}`, text: "●" })),
      el("span", { text: ` ${fixed(high, 2)}` }), " · grey: not measured · hover a point for its value");
  } else if (by === "mode") {
    legend.textContent = "mode: ● circle = major (blue), ▲ triangle = minor (orange), ■ square = no key";
  } else {
    legend.textContent = "● track · ✚ word (tag) · ◯ numbered: the current results · ■ outlined: playing or open";
  }
  drawMap();
}
async function colourByWord(word) {
  word = word.trim();
  if (!word) return;
  state.colour.word = word;
  try {
    const answer = await api(`/api/scores?q=${encodeURIComponent(word)}`);
    if (state.map && answer.generation === state.map.generation) setColour("word", answer.scores);
  } catch (error) {
    $("legend").textContent = error.message;
  }
}
$("colour-by").addEventListener("change", () => {
  const by = $("colour-by").value;
  $("colour-word").hidden = by !== "word";
  if (by === "word") { $("colour-word").focus(); if ($("colour-word").value.trim()) colourByWord($("colour-word").value); }
  else setColour(by);
});
$("colour-word").addEventListener("keydown", (event) => {
  if (event.key === "Enter") { event.preventDefault(); colourByWord($("colour-word").value); }
});

function drawMap() {
  const canvas = $("map");
  const context = canvas.getContext("2d");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);
  const map = state.map;
  if (!map) return;
  const t = map.tracks, w = map.words, n = t.x.length;
  const [tx0, tx1] = extent(t.x), [wx0, wx1] = extent(w.x), [ty0, ty1] = extent(t.y), [wy0, wy1] = extent(w.y);
  const minX = Math.min(tx0, wx0), maxX = Math.max(tx1, wx1), minY = Math.min(ty0, wy0), maxY = Math.max(ty1, wy1);
  if (!Number.isFinite(minX) || !Number.isFinite(minY)) return;
  const pad = 28, spanX = maxX - minX || 1, spanY = maxY - minY || 1;
  const scale = Math.min((width - 2 * pad) / spanX, (height - 2 * pad) / spanY);
  const offX = (width - scale * spanX) / 2, offY = (height - scale * spanY) / 2;
  const sx = (x) => offX + (x - minX) * scale, sy = (y) => height - (offY + (y - minY) * scale);
  const radius = n > 20000 ? 1.2 : n > 2000 ? 2 : 4;
  const points = [];
  const { by, values, range } = state.colour;
  const colourOf = (row) => {
    if (by === "mode") return t.mode[row] === "major" ? "#1f5fbf" : t.mode[row] === "minor" ? "#d9730d" : "#8a8a94";
    if (!values) return "#6b7a90";
    const v = values[row];
    if (v == null || (by === "attr:bpm" && v === 0)) return null;
    return ramp(range[1] > range[0] ? (v - range[0]) / (range[1] - range[0]) : 0.5);
  };
  let drawnTracks = 0;
  for (let row = 0; row < n; row++) {
    const x = sx(t.x[row]), y = sy(t.y[row]);
    if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
    context.fillStyle = colourOf(row) || "#c8c8d0";
    context.beginPath();
    if (by === "mode" && t.mode[row] === "minor") {
      context.moveTo(x, y - radius - 1); context.lineTo(x + radius + 1, y + radius); context.lineTo(x - radius - 1, y + radius);
    } else if (by === "mode" && !t.mode[row]) {
      context.rect(x - radius, y - radius, 2 * radius, 2 * radius);
    } else {
      context.arc(x, y, radius, 0, 2 * Math.PI);
    }
    context.fill();
    points.push({ kind: "track", row, x, y });
    drawnTracks++;
  }
  // words: a cross each, and the word on a halo where it does not cover an earlier word's label
  // (words come most frequent first); a hidden label shows on hover
  context.font = "12px system-ui, sans-serif";
  context.textBaseline = "middle";
  let drawnWords = 0;
  const labels = [];
  w.tag.forEach((tag, i) => {
    const x = sx(w.x[i]), y = sy(w.y[i]);
    if (!Number.isFinite(x) || !Number.isFinite(y)) return;
    context.strokeStyle = "#1b1b1f"; context.lineWidth = 1.5;
    context.beginPath(); context.moveTo(x - 4, y); context.lineTo(x + 4, y); context.moveTo(x, y - 4); context.lineTo(x, y + 4); context.stroke();
    const box = { left: x + 5, right: x + 7 + context.measureText(tag).width, top: y - 7, bottom: y + 7 };
    if (!labels.some((b) => b.left < box.right && box.left < b.right && b.top < box.bottom && box.top < b.bottom)) {
      labels.push(box);
      context.lineWidth = 3; context.strokeStyle = "rgba(255,255,255,0.85)"; context.strokeText(tag, x + 6, y);
      context.fillStyle = "#1b1b1f"; context.fillText(tag, x + 6, y);
    }
    points.push({ kind: "word", index: i, x, y });
    drawnWords++;
  });
  // the current results: a ring and their rank; the playing and the open track: a square
  context.lineWidth = 2;
  state.hits.forEach((hit, i) => {
    const row = state.rowOf.get(hit.track_id);
    if (row === undefined) return;
    const x = sx(t.x[row]), y = sy(t.y[row]);
    context.strokeStyle = i === state.selected ? "#1f5fbf" : "#1b1b1f";
    context.lineWidth = i === state.selected ? 3 : 1.5;
    context.beginPath(); context.arc(x, y, radius + 5, 0, 2 * Math.PI); context.stroke();
    context.lineWidth = 3; context.strokeStyle = "rgba(255,255,255,0.9)"; context.strokeText(String(i + 1), x + radius + 6, y - 8);
    context.fillStyle = "#1b1b1f"; context.fillText(String(i + 1), x + radius + 6, y - 8);
  });
  for (const id of new Set([state.playing, $("track-pane").dataset.trackId])) {
    const row = id ? state.rowOf.get(id) : undefined;
    if (row === undefined) continue;
    const x = sx(t.x[row]), y = sy(t.y[row]);
    context.strokeStyle = "#1b1b1f"; context.lineWidth = 2;
    context.strokeRect(x - radius - 8, y - radius - 8, 2 * radius + 16, 2 * radius + 16);
  }
  state.view = { points, grid: gridOf(points) };
  window.mre.drawn = { tracks: drawnTracks, words: drawnWords };
  canvas.dataset.tracks = String(drawnTracks);
  canvas.dataset.words = String(drawnWords);
}

// points bucketed in 16-px cells: hover stays instant with 100k tracks
const CELL = 16;
function gridOf(points) {
  const grid = new Map();
  for (const p of points) {
    const key = `${Math.floor(p.x / CELL)},${Math.floor(p.y / CELL)}`;
    if (!grid.has(key)) grid.set(key, []);
    grid.get(key).push(p);
  }
  return grid;
}
function pointAt(x, y) {
  if (!state.view) return null;
  let best = null, bestDistance = 10 * 10;
  const cx = Math.floor(x / CELL), cy = Math.floor(y / CELL);
  for (let i = cx - 1; i <= cx + 1; i++) {
    for (let j = cy - 1; j <= cy + 1; j++) {
      for (const p of state.view.grid.get(`${i},${j}`) || []) {
        const d = (p.x - x) ** 2 + (p.y - y) ** 2 - (p.kind === "word" ? 20 : 0);  // a word wins a near tie
        if (d < bestDistance) { best = p; bestDistance = d; }
      }
    }
  }
  return best;
}
function describe(point) {
  const t = state.map.tracks;
  if (point.kind === "word") return `word: ${state.map.words.tag[point.index]} (click to search)`;
  const row = point.row, parts = [t.name[row]];
  if (t.bpm[row]) parts.push(`${Math.round(t.bpm[row])} BPM`);
  if (t.key[row]) parts.push(`${t.key[row]} ${t.mode[row]}`);
  const by = state.colour.by;
  if (state.colour.values && by) {
    const v = state.colour.values[row];
    parts.push(`${by === "word" ? state.colour.word : by.slice(5)} ${v == null ? "—" : Number(v).toFixed(3)}`);
  }
  return parts.join(" · ");
}
$("map").addEventListener("mousemove", (event) => {
  const rect = $("map").getBoundingClientRect();
  const point = pointAt(event.clientX - rect.left, event.clientY - rect.top);
  const tip = $("tooltip");
  if (!point) { tip.hidden = true; $("map").style.cursor = "crosshair"; return; }
  tip.textContent = describe(point);
  tip.hidden = false;
  tip.style.left = `${Math.min(point.x + 12, rect.width - 200)}px`;
  tip.style.top = `${point.y + 12}px`;
  $("map").style.cursor = "pointer";
});
$("map").addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
$("map").addEventListener("click", (event) => {
  const rect = $("map").getBoundingClientRect();
  const point = pointAt(event.clientX - rect.left, event.clientY - rect.top);
  if (!point) return;
  if (point.kind === "word") {
    $("q").value = state.map.words.tag[point.index];
    search($("q").value);
    return;
  }
  const id = state.map.tracks.track_id[point.row];
  openTrack(id);
  playTrack(id);
});
window.addEventListener("resize", () => drawMap());

// ------------------------------------------------------------------------------ duplicates
// The report of `mre duplicates`: each group's copies side by side, each with its own player.
// It only reports: the page has nothing that deletes or moves a file (and the server answers
// GET and HEAD only).
const dupAudios = () => [...document.querySelectorAll("#duplicate-groups audio")];
// one sound at a time: a copy that starts pauses every other player, the footer's included
function pauseOthers(playing) {
  for (const other of [audio, ...dupAudios()]) if (other !== playing && !other.paused) other.pause();
}
audio.addEventListener("play", () => pauseOthers(audio));

function showView(name) {
  state.viewName = name;
  const duplicates = name === "duplicates";
  $("results-pane").hidden = duplicates;
  $("right").hidden = duplicates;
  $("duplicates-pane").hidden = !duplicates;
  $("show-search").setAttribute("aria-pressed", String(!duplicates));
  $("show-duplicates").setAttribute("aria-pressed", String(duplicates));
  if (duplicates) loadDuplicates();
  else { for (const player of dupAudios()) player.pause(); drawMap(); }
}
$("show-search").addEventListener("click", () => showView("search"));
$("show-duplicates").addEventListener("click", () => showView("duplicates"));

let duplicatesPoll = null;
async function loadDuplicates() {
  clearTimeout(duplicatesPoll);
  const status = $("duplicates-status");
  status.classList.remove("error");
  if (!$("duplicate-groups").childElementCount) status.textContent = "looking for duplicates…";
  let response, body;
  try {
    response = await fetch("/api/duplicates", { headers: { accept: "application/json" } });
    body = await response.json();
  } catch (error) {
    status.textContent = `no report: ${error.message}`;
    status.classList.add("error");
    return;
  }
  if (state.viewName !== "duplicates") return;
  if (response.status === 202) {  // fingerprints or matching still in progress: ask again shortly
    status.textContent = body.to_fingerprint
      ? `fingerprinting: ${body.fingerprinted} of ${body.to_fingerprint} files…` : "matching fingerprints…";
    duplicatesPoll = setTimeout(loadDuplicates, 1000);
    return;
  }
  if (!response.ok) {  // 503: fpcalc is missing, and the error says how to install it
    status.textContent = `Cannot look for duplicates: ${body.error || `HTTP ${response.status}`}`;
    status.classList.add("error");
    return;
  }
  if (state.duplicates && state.duplicates.generation === response.headers.get("x-mre-generation")) {
    showDuplicatesSummary(body);
    return;  // the same report: keep the players where they are
  }
  state.duplicates = { generation: response.headers.get("x-mre-generation") };
  showDuplicates(body);
}

function showDuplicatesSummary(report) {
  const copies = report.groups.reduce((sum, g) => sum + g.files.length - 1, 0);
  const parts = [`${report.groups.length} groups, ${copies} extra copies among ${report.fingerprinted} fingerprinted tracks (of ${report.tracks})`];
  if (report.computed) parts.push(`${report.computed} fingerprinted just now`);
  if (report.skipped.length) parts.push(`${report.skipped.length} without a fingerprint (${report.skipped[0].reason}${report.skipped.length > 1 ? ", …" : ""})`);
  $("duplicates-status").textContent = `${parts.join(" · ")}. Nothing was deleted or moved.`;
}

function showDuplicates(report) {
  for (const player of dupAudios()) player.pause();
  showDuplicatesSummary(report);
  $("duplicate-groups").replaceChildren(...report.groups.map((group, g) => el("section",
    { class: "dup-group", "aria-label": `Group ${g + 1}` },
    el("h3", { text: `Group ${g + 1}: ${group.files.length} copies — keep ${baseName(group.keep)}` }),
    el("p", { class: "why note", text: `Why keep it: ${group.keep_reason}` }),
    el("div", { class: "copies" }, ...group.files.map((file, i) => copyCard(file, i === 0, report.track_ids[g][i]))))));
}

function sizeText(size) {
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (size >= 1024 && i < units.length - 1) { size /= 1024; i++; }
  return i ? `${size.toFixed(1)} ${units[i]}` : `${size} B`;
}
function copyCard(file, keep, trackId) {
  const name = baseName(file.path);
  const player = el("audio", trackId ? { preload: "none", src: `/audio/${trackId}` } : { preload: "none" });
  const play = el("button", { type: "button", class: "play", "aria-label": `Play ${name}`, text: "▶" });
  const seek = el("input", { type: "range", min: "0", max: "1000", value: "0", step: "1", "aria-label": `Position in ${name}` });
  const time = el("span", { class: "time note", text: "0:00" });
  const card = el("article", { class: keep ? "copy keep" : "copy", "aria-label": `${keep ? "Keep" : file.kind}: ${name}`,
                               "data-track-id": trackId || "" },
    el("div", { class: "badge", text: keep ? "★ KEEP this copy" : `copy: ${file.kind}` }),
    el("div", { class: "name", text: name, title: file.path }),
    el("dl", {}, ...[
      ["format", `${file.format || "?"}${file.codec ? `, ${file.codec}` : ""}${file.lossless ? " (lossless)" : " (lossy)"}`],
      ["bitrate", file.bitrate_kbps ? `${file.lossless ? "" : "~"}${Math.round(file.bitrate_kbps)} kbps` : "—"],
      ["sample rate", file.sample_rate ? `${file.sample_rate} Hz` : "—"],
      ["channels", file.channels ? ({ 1: "mono", 2: "stereo" }[file.channels] || `${file.channels} ch`) : "—"],
      ["duration", `${clock(file.duration)} (${fixed(file.duration)} s)`],
      ["size", sizeText(file.size)],
      ["match", keep ? "the copy to keep" : `${file.kind}, score ${fixed(file.score, 2)}${Math.abs(file.offset_seconds) >= 0.5
        ? `, starts ${file.offset_seconds > 0 ? "+" : ""}${fixed(file.offset_seconds)} s` : ""}`],
    ].flatMap(([term, value]) => [el("dt", { text: term }), el("dd", { text: value })])),
    el("div", { class: "controls" }, play, seek, time), player);
  let dragging = false;
  const mark = () => {
    const on = !player.paused;
    card.classList.toggle("playing", on);
    play.textContent = on ? "❚❚" : "▶";
    play.setAttribute("aria-label", `${on ? "Pause" : "Play"} ${name}`);
  };
  const tick = () => {
    time.textContent = `${clock(player.currentTime)} / ${clock(player.duration)}`;
    if (Number.isFinite(player.duration) && player.duration > 0 && !dragging) seek.value = String(Math.round((player.currentTime / player.duration) * 1000));
  };
  player.addEventListener("play", () => { pauseOthers(player); mark(); });
  for (const event of ["pause", "ended"]) player.addEventListener(event, mark);
  for (const event of ["timeupdate", "durationchange", "seeked", "loadedmetadata"]) player.addEventListener(event, tick);
  player.addEventListener("error", () => { time.textContent = "cannot play: the file is gone or unreadable"; });
  play.addEventListener("click", () => {
    if (player.paused) { window.mre.lastPlay = player.play(); window.mre.lastPlay.catch(() => {}); } else player.pause();
  });
  seek.addEventListener("input", () => {
    dragging = true;
    const go = () => { player.currentTime = (Number(seek.value) / 1000) * player.duration; };
    if (Number.isFinite(player.duration)) go();
    else { player.preload = "metadata"; player.addEventListener("loadedmetadata", go, { once: true }); player.load(); }
  });
  seek.addEventListener("change", () => { dragging = false; });
  if (!trackId) { play.disabled = true; seek.disabled = true; }  // not in the generation this page shows
  return card;
}

// ------------------------------------------------------------------------------ keyboard
const typing = (target) => target instanceof HTMLInputElement && target.type !== "range" || target instanceof HTMLTextAreaElement
  || target instanceof HTMLSelectElement;
document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (event.key === "Escape" && typing(target)) { target.blur(); return; }
  if (event.key === "/" && !typing(target)) { event.preventDefault(); $("q").focus(); $("q").select(); return; }
  if (state.viewName === "duplicates") return;  // its buttons and sliders take the keys as they are
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    if (typing(target) && target !== $("q")) return;
    if (!state.hits.length) return;
    event.preventDefault();
    if (target === $("q")) $("q").blur();
    select(state.selected + (event.key === "ArrowDown" ? 1 : -1));
    return;
  }
  if (typing(target)) return;
  if (event.key === " " && !(target instanceof HTMLButtonElement)) {
    event.preventDefault();
    const chosen = state.hits[state.selected];
    if (chosen && chosen.track_id !== state.playing) playTrack(chosen.track_id);
    else togglePlayer();
  } else if (event.key === "Enter" && !(target instanceof HTMLButtonElement) && state.selected >= 0) {
    openTrack(state.hits[state.selected].track_id);
  } else if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
    if (target === $("seek")) return;  // the slider moves itself
    event.preventDefault();
    seekTo(audio.currentTime + (event.key === "ArrowRight" ? 5 : -5));
  }
});
$("search").addEventListener("submit", (event) => {
  event.preventDefault();
  if (state.viewName === "duplicates") showView("search");
  search($("q").value);
});
for (const id of ["key", "mode", "k"]) $(id).addEventListener("change", () => { if ($("q").value.trim()) search($("q").value); });

// ------------------------------------------------------------------------------ start
(async function start() {
  const params = new URLSearchParams(location.hash.slice(1));
  for (const name of ["bpm", "key", "mode", "k"]) if (params.get(name)) $(name).value = params.get(name);
  await loadMap();
  if (params.get("q")) { $("q").value = params.get("q"); search(params.get("q")); }
  document.body.dataset.ready = "true";
})();

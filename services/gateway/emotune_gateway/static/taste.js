// The listener's taste, a new listener's first step above all: search the catalogue's artists and
// genres (GET /v1/catalogue/search), pick a few, save them (PUT /v1/users/{id}/taste); the first
// list, made from them, follows at once (``saved``, the hook given to initTaste, loads it).

import { api, enc, userPath } from "./api.js";
import { $, h } from "./dom.js";
import { fail, say } from "./status.js";

const SEARCH_DELAY_MS = 250; // typing pauses this long before a search goes out
const MAX_PICKS = 20;

let artists = new Map(); // artist_id -> name, picked
let genres = new Set(); // picked
let found = { artists: [], genres: [] };
let searchSeq = 0;
let searchTimer = null;
let saved = async () => {};

const picked = () => artists.size + genres.size;

/** Open the box (a new listener sees it first) or close it. */
export function showTaste(open) {
  $("taste").open = open;
}

/** Nothing picked, nothing found (signed out, or the data deleted). */
export function resetTaste() {
  artists = new Map();
  genres = new Set();
  found = { artists: [], genres: [] };
  $("taste-q").value = "";
  render();
}

async function search(text) {
  const mine = ++searchSeq;
  const q = text.trim();
  if (q.length < 2) {
    found = { artists: [], genres: [] };
    render();
    return;
  }
  try {
    const result = await api("GET", `/v1/catalogue/search?q=${enc(q)}&limit=10`);
    if (mine !== searchSeq) return;
    found = { artists: result.artists || [], genres: result.genres || [] };
    render();
  } catch (e) {
    if (mine === searchSeq) fail(`Search failed: ${e.message}`);
  }
}

function toggleArtist(artist) {
  if (artists.has(artist.artist_id)) artists.delete(artist.artist_id);
  else if (picked() < MAX_PICKS) artists.set(artist.artist_id, artist.name);
  render();
}

function toggleGenre(name) {
  if (genres.has(name)) genres.delete(name);
  else if (picked() < MAX_PICKS) genres.add(name);
  render();
}

const count = (n) => `${n} track${n === 1 ? "" : "s"}`;

/** A result to pick: its name, a short detail beside it, the whole of it in the tooltip. */
function option(on, text, detail, title, onclick, kind) {
  return h("li", {},
    h("button", {
      type: "button", className: `pick ${kind}${on ? " on" : ""}`, "aria-pressed": String(on), title, onclick,
    }, h("span", { className: "pick-name" }, text), " ", h("span", { className: "pick-detail muted" }, detail)));
}

function render() {
  const results = $("taste-results");
  const groups = [];
  if (found.artists.length) {
    groups.push(h("div", { className: "found" }, h("h3", {}, "Artists"), h("ul", { className: "options" },
      found.artists.map((a) => option(artists.has(a.artist_id), a.name, (a.genres || [])[0] || count(a.tracks || 0),
        [a.name, count(a.tracks || 0), ...(a.genres || [])].join(" \u00b7 "), () => toggleArtist(a), "artist")))));
  }
  if (found.genres.length) {
    groups.push(h("div", { className: "found" }, h("h3", {}, "Genres"), h("ul", { className: "options" },
      found.genres.map((g) => option(genres.has(g.name), g.name, String(g.tracks || 0),
        `${g.name} \u00b7 ${count(g.tracks || 0)}`, () => toggleGenre(g.name), "genre")))));
  }
  const q = $("taste-q").value.trim();
  if (!groups.length && q.length >= 2) groups.push(h("p", { className: "muted small" }, `Nothing found for \u201c${q}\u201d.`));
  results.replaceChildren(...groups);
  $("taste-picked").replaceChildren(
    ...[...artists].map(([id, name]) => chip(name, () => toggleArtist({ artist_id: id, name }))),
    ...[...genres].map((g) => chip(g, () => toggleGenre(g))),
  );
  $("taste-none").hidden = picked() > 0;
  $("taste-save").disabled = picked() === 0;
}

function chip(text, remove) {
  return h("li", { className: "picked" }, text,
    h("button", { type: "button", className: "unpick", "aria-label": `Remove ${text}`, onclick: remove }, "\u00D7"));
}

async function save() {
  const button = $("taste-save");
  button.disabled = true;
  try {
    await api("PUT", userPath("/taste"), { json: { genres: [...genres], artist_ids: [...artists.keys()] } });
    showTaste(false);
    say("Your taste is saved: here is your first list.", "ok");
    await saved();
  } catch (e) {
    fail(`Could not save your taste: ${e.message}`);
  } finally {
    button.disabled = picked() === 0;
  }
}

/** The search box (a search a moment after typing stops, or at once on Enter), the picks, the save
 * button; ``onSaved()`` brings the first list. */
export function initTaste({ onSaved }) {
  saved = onSaved;
  const input = $("taste-q");
  input.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => search(input.value), SEARCH_DELAY_MS);
  });
  $("taste-form").addEventListener("submit", (e) => {
    e.preventDefault();
    clearTimeout(searchTimer);
    search(input.value);
  });
  $("taste-save").addEventListener("click", save);
  render();
}

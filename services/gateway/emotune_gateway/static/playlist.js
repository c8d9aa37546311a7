// The playlist: the session's recommendations (asked for, or pushed by the live events), drawn as
// rows with play, like and skip; the policy and genre controls that shape what is asked for.

import { api, current, sendFeedback, sessionPath, userPath } from "./api.js";
import { $, h, spotifyHref } from "./dom.js";
import { EMOJI } from "./emotions.js";
import { deselect, embedFor, initPlayer, isSelected, play, selectedItem, trackOf } from "./player.js";
import { spotifyConnected } from "./spotify.js";
import { fail, recovered, say } from "./status.js";

let recs = null; // the set on show, less what was skipped
let seq = 0; // the number of the newest set asked for: older answers are dropped
let skipped = new Set();
let liked = new Set();
let policy = null; // null: the recommender's default
let genre = "";

/** Forget the set and what was skipped and liked in it (another session, or none). */
export function resetPlaylist() {
  recs = null;
  deselect();
  skipped = new Set();
  liked = new Set();
  seq++;
  renderRecommendations();
}

function recParams() {
  const params = new URLSearchParams({ k: "10" });
  if (policy) params.set("policy", policy);
  if (genre) params.append("genre", genre);
  return params;
}

export async function loadRecommendations() {
  if (!current.sid) return;
  const mine = ++seq;
  const sid = current.sid;
  try {
    const set = await api("GET", sessionPath(`/recommendations?${recParams()}`));
    if (mine === seq && sid === current.sid) showRecommendations(set);
    recovered("recs", "The playlist loads again.");
  } catch (e) {
    if (mine === seq && e.status !== 401) fail(`Could not load the playlist: ${e.message}`, "recs");
  }
}

/** A set pushed on the live events. */
export function onRecommendationsEvent(set) {
  // the recommender's own sets use its default policy and no genre filter: with a choice made here,
  // take the event as the cue to ask for the set that choice gives
  if ((policy && set.policy && set.policy !== policy) || genre) {
    loadRecommendations();
    return;
  }
  seq++; // newer than any set asked for before
  showRecommendations(set);
}

function showRecommendations(set) {
  const items = (set.items || []).filter((item) => !skipped.has(item.artist_id));
  recs = { ...set, items };
  if (!policy && set.policy) {
    const radio = document.querySelector(`input[name=policy][value="${set.policy}"]`);
    if (radio) radio.checked = true;
  }
  renderRecommendations();
  updateGenres();
}

function renderRecommendations() {
  const items = recs ? recs.items : [];
  $("playlist-meta").textContent = recs && recs.mood
    ? `${EMOJI[recs.mood] || ""} for ${recs.mood} \u00b7 ${recs.policy || "match"}`
    : "";
  const empty = $("recs-empty");
  empty.hidden = items.length > 0;
  if (recs && !items.length) {
    empty.textContent = genre ? `Nothing found for the genre \u201c${genre}\u201d.` : "No music found.";
  } else if (!recs) {
    empty.textContent = "Start the camera: music for your mood appears here.";
  }
  $("recs").replaceChildren(...items.map((item, index) => renderRow(item, index)));
  // the row being played stays on show when a fresh list leaves it out (played artists count as liked)
  const chosen = selectedItem();
  const pinned = chosen && !items.some((i) => i.artist_id === chosen.artist_id) ? chosen : null;
  $("pinned").replaceChildren(...(pinned ? [renderRow(pinned, null)] : []));
  $("pinned-box").hidden = !pinned;
}

/** One artist: name, genres, tracks, why; play, like, skip; the player when selected. ``index``
 * is its place in the list (null: kept on show though no longer in it). */
function renderRow(item, index) {
  const selected = isSelected(item);
  const isLiked = liked.has(item.artist_id);
  const tracks = item.tracks || [];
  const artistHref = spotifyHref(item.spotify_url);
  const name = item.artist_name || `artist ${item.artist_id}`;
  const embed = embedFor(item);
  return h("li", {
    className: `rec${selected ? " selected" : ""}`, "data-artist-id": item.artist_id,
    "data-genres": (item.genres || []).join("|"),
  },
    h("div", { className: "rec-main" },
      h("span", { className: "rank", "aria-hidden": "true" }, index === null ? "\u266A" : String(index + 1)),
      h("div", { className: "rec-body" },
        h("div", { className: "artist-line" },
          artistHref
            ? h("a", { className: "artist", href: artistHref, target: "_blank", rel: "noopener" }, name)
            : h("span", { className: "artist" }, name),
          ...(item.genres || []).slice(0, 3).map((g) => h("span", { className: "chip" }, g))),
        tracks.length
          ? h("ul", { className: "tracks" },
            tracks.map((t) => h("li", {},
              spotifyHref(t.spotify_url)
                ? h("a", { className: "track", href: t.spotify_url, target: "_blank", rel: "noopener" }, t.name)
                : h("span", { className: "track" }, t.name))))
          : h("p", { className: "tracks none muted small" }, "no tracks found on Spotify"),
        item.reason ? h("p", { className: "reason muted small" }, item.reason) : null),
      h("div", { className: "rec-actions" },
        h("button", {
          type: "button", className: "play", "aria-label": `Play ${name}`, onclick: () => play(item),
        }, "\u25B6", h("span", { className: "btn-text" }, " play")),
        h("button", {
          type: "button", className: `like${isLiked ? " on" : ""}`, "aria-pressed": String(isLiked),
          "aria-label": `Like ${name}`, onclick: () => like(item),
        }, isLiked ? "\u2665" : "\u2661", h("span", { className: "btn-text" }, " like")),
        h("button", {
          type: "button", className: "skip", "aria-label": `Skip ${name}`, onclick: () => skip(item),
        }, "\u00BB", h("span", { className: "btn-text" }, " skip")))),
    embed ? h("div", { className: "player" }, embed) : null);
}

function updateGenres() {
  const select = $("genre-select");
  const genres = new Set();
  for (const item of (recs && recs.items) || []) for (const g of item.genres || []) genres.add(g);
  for (const option of select.options) if (option.value) genres.add(option.value);
  if (genre) genres.add(genre);
  const sorted = [...genres].sort((a, b) => a.localeCompare(b)).slice(0, 200);
  select.replaceChildren(h("option", { value: "" }, "any genre"), ...sorted.map((g) => h("option", { value: g }, g)));
  select.value = genre;
}

async function skip(item) {
  const name = item.artist_name;
  const playing = isSelected(item);
  skipped.add(item.artist_id);
  if (recs) recs.items = recs.items.filter((i) => i.artist_id !== item.artist_id);
  if (playing) deselect();
  renderRecommendations();
  if (playing && spotifyConnected()) {
    // the artist playing on the listener's device: skip there too
    api("POST", userPath("/spotify/next")).catch((e) => fail(`Spotify: ${e.message}`));
  }
  try {
    await sendFeedback("skip", { artist_id: item.artist_id, track_id: trackOf(item) });
    say(`Skipped ${name}.`);
  } catch (e) {
    skipped.delete(item.artist_id);
    fail(`Skip of ${name} failed: ${e.message}`);
  }
  loadRecommendations(); // the fresh set comes on the event stream too; this covers a slow one
}

async function like(item) {
  if (liked.has(item.artist_id)) return;
  liked.add(item.artist_id);
  renderRecommendations();
  try {
    await sendFeedback("like", { artist_id: item.artist_id, track_id: trackOf(item) });
    say(`Liked ${item.artist_name}: more like this.`);
  } catch (e) {
    liked.delete(item.artist_id);
    renderRecommendations();
    fail(`Like failed: ${e.message}`);
  }
}

async function setGenre(chosen) {
  genre = chosen.trim();
  updateGenres();
  if (genre) {
    try {
      await sendFeedback("genre_change", { genre });
      say(`Genre: ${genre}.`);
    } catch (e) {
      fail(`Genre change failed: ${e.message}`);
    }
  }
  loadRecommendations();
}

/** The policy and genre controls, and the player's redraws of the list. */
export function initPlaylist() {
  for (const radio of document.querySelectorAll("input[name=policy]")) {
    radio.addEventListener("change", () => {
      policy = radio.value;
      loadRecommendations();
    });
  }
  $("genre-select").addEventListener("change", () => {
    $("genre-input").value = "";
    setGenre($("genre-select").value);
  });
  $("genre-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const typed = $("genre-input").value.trim();
    $("genre-input").value = "";
    setGenre(typed || $("genre-select").value);
  });
  initPlayer({ onChange: renderRecommendations, first: () => (recs && recs.items.length ? recs.items[0] : null) });
}

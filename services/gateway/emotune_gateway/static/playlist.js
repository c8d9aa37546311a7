// The playlist: the session's recommended tracks (asked for, or pushed by the live events) as rows
// to play, and the queue the player plays them in; the policy and genre controls that shape what is
// asked for; the feedback (play to the end, skip, like, dislike, genre change).
//
// The queue is the list in order, from the track playing on. A new list (another mood, policy or
// genre, or feedback taken in) never cuts off the track playing: that track stays first and plays
// on, and the new list, less that track, is what comes after it.

import { api, current, sendFeedback, sessionPath } from "./api.js";
import { $, h, spotifyHref } from "./dom.js";
import { EMOJI } from "./emotions.js";
import { initPlayer, playable, play, playing, render as renderPlayer, stop } from "./player.js";
import { fail, recovered, say } from "./status.js";

const EMPTY = "Start the camera, or pick a few artists and genres you like: music for your mood appears here.";
const MOOD_TAGS = { "happy/energetic": "happy", "calm/content": "calm", "sad/melancholic": "sad", "tense/angry": "tense" };

let recs = null; // the set on show: its items are the list, less what was skipped or disliked
let seq = 0; // the number of the newest set asked for: older answers are dropped
let dropped = new Set(); // track ids skipped or disliked in this session: they stay out
let liked = new Set();
let played = new Set(); // track ids played to the end in this session: the queue passes over them
let policy = null; // null: the recommender's default
let genre = "";

const items = () => (recs ? recs.items : []);
const sameTrack = (a, b) => Boolean(a && b && a.track_id === b.track_id);
const label = (item) => `${item.title || "a track"} by ${item.artist_name || "an unknown artist"}`;

/** Forget the set and what was done in it (another session, or none); the track playing plays on. */
export function resetPlaylist() {
  const now = playing();
  recs = now ? { items: [now] } : null;
  dropped = new Set();
  liked = new Set();
  played = new Set();
  seq++;
  renderRecommendations();
}

/** Signed out, or the data deleted: the music stops too. */
export function stopMusic() {
  stop();
  resetPlaylist();
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
  const now = playing();
  const fresh = (set.items || []).filter((item) => !dropped.has(item.track_id) && !sameTrack(item, now));
  recs = { ...set, items: now ? [now, ...fresh] : fresh };
  if (!policy && set.policy) {
    const radio = document.querySelector(`input[name=policy][value="${set.policy}"]`);
    if (radio) radio.checked = true;
  }
  renderRecommendations();
  updateGenres();
}

/** The track after ``item`` in the list (the first, if ``item`` left it), passing over the ones
 * played already; null at the end. */
function nextAfter(item) {
  const list = items();
  const at = list.findIndex((i) => sameTrack(i, item));
  return list.slice(at + 1).find((i) => playable(i) && !played.has(i.track_id) && !sameTrack(i, item)) || null;
}

function renderRecommendations() {
  const list = items();
  $("playlist-meta").textContent = recs && recs.mood
    ? `${EMOJI[recs.mood] || ""} for ${recs.mood} \u00b7 ${recs.policy || "match"}`
    : "";
  const empty = $("recs-empty");
  empty.hidden = list.length > 0;
  if (recs && !list.length) {
    empty.textContent = genre ? `Nothing found for the genre \u201c${genre}\u201d.` : "No music found.";
  } else if (!recs) {
    empty.textContent = EMPTY;
  }
  const now = playing();
  $("recs").replaceChildren(...list.map((item, index) => renderRow(item, index, sameTrack(item, now))));
}

const minutes = (ms) => `${Math.floor(ms / 60_000)}:${String(Math.round((ms % 60_000) / 1000)).padStart(2, "0")}`;

/** One track: title, artist, mood tag, why it was chosen, the "lifted your mood" badge; play, and
 * its page on Spotify. */
function renderRow(item, index, isPlaying) {
  const tag = MOOD_TAGS[item.mood_tag] || "";
  const artistHref = spotifyHref(item.artist_spotify_url);
  const trackHref = spotifyHref(item.spotify_url);
  const artist = item.artist_name || "unknown artist";
  const liftTitle = `Listeners' mood rose while it played (${item.lift >= 0 ? "+" : ""}${Number(item.lift || 0).toFixed(2)}`
    + ` valence over ${item.lift_plays || 0} plays)`;
  return h("li", {
    className: `rec${isPlaying ? " playing" : ""}${played.has(item.track_id) ? " played" : ""}`,
    "data-track-id": item.track_id, "data-artist-id": item.artist_id,
    "data-genres": (item.genres || []).join("|"), "data-mood-tag": item.mood_tag || "",
  },
    h("span", { className: "rank", "aria-hidden": "true" }, isPlaying ? "\u266A" : String(index + 1)),
    h("div", { className: "rec-body" },
      h("div", { className: "title-line" },
        h("span", { className: "title" }, item.title || "untitled"),
        item.lifted ? h("span", { className: "lifted", title: liftTitle }, "\u2191 lifted your mood") : null),
      h("div", { className: "artist-line" },
        artistHref
          ? h("a", { className: "artist", href: artistHref, target: "_blank", rel: "noopener" }, artist)
          : h("span", { className: "artist" }, artist),
        item.mood_tag ? h("span", { className: `mood-tag ${tag}` }, item.mood_tag) : null,
        item.duration_ms > 0 ? h("span", { className: "duration muted" }, minutes(item.duration_ms)) : null),
      item.reason ? h("p", { className: "reason muted small" }, `Why: ${item.reason}`) : null),
    h("div", { className: "rec-actions" },
      h("button", {
        type: "button", className: `play${isPlaying ? " on" : ""}`, "aria-label": `Play ${label(item)}`,
        "aria-pressed": String(isPlaying), disabled: !playable(item), onclick: () => start(item),
      }, isPlaying ? "\u266A playing" : "\u25B6 play"),
      trackHref
        ? h("a", {
          className: "open", href: trackHref, target: "_blank", rel: "noopener",
          "aria-label": `Open ${label(item)} on Spotify`,
        }, "Spotify \u2197")
        : null));
}

function updateGenres() {
  const select = $("genre-select");
  const genres = new Set();
  for (const item of items()) for (const g of item.genres || []) genres.add(g);
  for (const option of select.options) if (option.value) genres.add(option.value);
  if (genre) genres.add(genre);
  const sorted = [...genres].sort((a, b) => a.localeCompare(b)).slice(0, 200);
  select.replaceChildren(h("option", { value: "" }, "any genre"), ...sorted.map((g) => h("option", { value: g }, g)));
  select.value = genre;
}

function start(item) {
  play(item);
  renderRecommendations();
}

/** Play the next track, or stop at the end of the list. */
function advance(after) {
  const next = nextAfter(after);
  if (next) play(next);
  renderRecommendations();
}

async function feedback(action, item, fields = {}) {
  await sendFeedback(action, { track_id: item.track_id, ...fields });
}

/** The track played to its end: "play" (with when it began), and on to the next one. */
async function ended(item, startedAtUs) {
  played.add(item.track_id);
  advance(item);
  try {
    await feedback("play", item, { started_at_us: startedAtUs });
  } catch (e) {
    fail(`Could not record the play of ${label(item)}: ${e.message}`);
  }
}

/** Skipped or disliked: out of the list for this session, and the next track plays. */
async function drop(action, item) {
  const next = nextAfter(item);
  dropped.add(item.track_id);
  if (recs) recs.items = recs.items.filter((i) => !sameTrack(i, item));
  if (next) play(next);
  else stop({ skipped: true });
  renderRecommendations();
  try {
    await feedback(action, item);
    say(action === "skip" ? `Skipped ${label(item)}.` : `Disliked ${label(item)}: less like this.`);
  } catch (e) {
    dropped.delete(item.track_id);
    fail(`The ${action} of ${label(item)} failed: ${e.message}`);
  }
  loadRecommendations(); // the fresh set comes on the event stream too; this covers a slow one
}

async function like(item) {
  if (liked.has(item.track_id)) return;
  liked.add(item.track_id);
  renderPlayer();
  try {
    await feedback("like", item);
    say(`Liked ${label(item)}: more like this.`);
  } catch (e) {
    liked.delete(item.track_id);
    renderPlayer();
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

/** The policy and genre controls, and the player's hooks. */
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
  initPlayer({
    ended,
    skip: (item) => drop("skip", item),
    dislike: (item) => drop("dislike", item),
    like,
    liked: (item) => liked.has(item.track_id),
  });
}

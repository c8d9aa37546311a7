// The player: ONE embedded Spotify player for the track playing, its now-playing line and buttons.
//
// Where the browser reaches Spotify, its iFrame API (https://open.spotify.com/embed/iframe-api/v1)
// drives the embed: one controller loads each track (loadUri, play), and its playback_update events
// ({isPaused, position, duration}) tell when a track has ended. Where that script does not load
// (offline, blocked, or the browser tests, which have no network) the player is a plain iframe on the
// track's embed_url, and where the track's duration_ms is known a timer stands for its end.
//
// Where the listener chose "my Spotify device" (device.js), each track plays there instead, through
// the gateway, and its duration_ms times its end likewise; when the device refuses (no active
// device, no Premium, ...) the gateway's reason goes to the status line and the track plays here.
//
// For tests and styles the element #player carries the state: data-state (idle | playing | paused |
// ended: the last track ended and nothing came next), data-track-id, data-mode (api | iframe |
// device) and data-started-at-us. To say "the track ended" without Spotify, call
// window.emotune.player.ended(), or dispatch the DOM event "emotune:ended" on #player;
// window.emotune.player.state() reads the state.
//
// What plays next, and the feedback, are the playlist's: it passes them in as hooks (initPlayer).

import { nextOnDevice, onDevice, playHere, playOnDevice } from "./device.js";
import { $, h, spotifyHref } from "./dom.js";
import { fail } from "./status.js";

const API_SRC = "https://open.spotify.com/embed/iframe-api/v1";
const API_WAIT_MS = 8_000; // a script that has not arrived by then is taken as failed (it may still come)
const EMBED_HEIGHT = 80;
const TRACK_ID = /^[A-Za-z0-9]+$/; // Spotify's are 22 characters; any such id makes a safe URI

let iframeApi = null; // Spotify's IFrameAPI object, once its script has run
let apiStatus = "loading"; // loading | ready | failed (a late script still makes it ready)
let controller = null; // the iFrame API's controller of the embed in #player-embed
let mounts = 0; // the number of the embed in #player-embed: a controller made for an older one is dropped
let track = null; // the item playing, or last played
let state = "idle";
let mode = "";
let startedAtUs = 0;
let heard = false; // the embed reported this track playing (so a pause at 0 afterwards is its end)
let finished = false; // this track's end was handled (the end is handled once)
let endTimer = null;
let hooks = { ended: () => {}, skip: () => {}, like: () => {}, dislike: () => {}, liked: () => false };

const nowUs = () => Date.now() * 1000;

/** Whether an item can be played here: it has a Spotify track id and embed. */
export const playable = (item) => Boolean(item && TRACK_ID.test(item.track_id || "") && embedOf(item));

/** The item playing (or paused), else null. */
export const playing = () => (state === "playing" || state === "paused" ? track : null);

function embedOf(item) {
  return spotifyHref(item.embed_url) || (TRACK_ID.test(item.track_id || "")
    ? `https://open.spotify.com/embed/track/${item.track_id}` : null);
}

function setState(next) {
  state = next;
  render();
}

/** The now-playing line, the buttons and the data- attributes, from the state (the stylesheet hides
 * an idle player). */
export function render() {
  const box = $("player");
  box.dataset.state = state;
  box.dataset.trackId = track ? track.track_id : "";
  box.dataset.mode = track ? mode : "";
  box.dataset.startedAtUs = playing() ? String(startedAtUs) : "";
  $("player-state").textContent = { idle: "", playing: "Now playing", paused: "Paused", ended: "Played" }[state];
  $("player-title").textContent = track && state !== "idle" ? track.title || "" : "";
  $("player-artist").textContent = track && state !== "idle" ? track.artist_name || "" : "";
  const on = playing() !== null;
  for (const id of ["player-skip", "player-like", "player-dislike"]) $(id).disabled = !on;
  const liked = on && hooks.liked(track);
  const like = $("player-like");
  like.classList.toggle("on", liked);
  like.setAttribute("aria-pressed", String(liked));
  like.querySelector(".icon").textContent = liked ? "\u2665" : "\u2661";
}

/** Play ``item`` now, in place of whatever plays. */
export function play(item) {
  if (!playable(item)) return;
  clearTimeout(endTimer);
  track = item;
  heard = false;
  finished = false;
  startedAtUs = nowUs();
  state = "playing";
  if (onDevice()) playDevice(item);
  else mountEmbed(item);
  render();
}

/** Nothing plays: the embed goes. ``skipped``: the track playing was skipped, so a device playing it
 * moves on from it too. */
export function stop({ skipped = false } = {}) {
  if (skipped && track && mode === "device") nextOnDevice().catch((e) => fail(`Spotify: ${e.message}`));
  clearTimeout(endTimer);
  if (controller) {
    try {
      controller.pause();
    } catch {
      /* the embed is going anyway */
    }
  }
  controller = null;
  mounts++;
  $("player-embed").replaceChildren();
  track = null;
  setState("idle");
}

/** The track playing has ended (the embed said so, its timer ran out, or a test says so): the
 * playlist sends "play" and starts the next one. Handled once per track. */
export function ended() {
  if (!playing() || finished) return;
  finished = true;
  clearTimeout(endTimer);
  const done = track;
  const began = startedAtUs;
  setState("ended");
  hooks.ended(done, began);
}

const mountEmbed = (item) => (iframeApi ? mountController(item) : mountIframe(item));

/** ``item`` on the listener's Spotify device; where the device refuses, the reason, and the embed. */
async function playDevice(item) {
  mode = "device";
  controller = null;
  const mine = ++mounts;
  $("player-embed").replaceChildren(h("p", { className: "on-device muted small" }, "On your Spotify device"));
  if (item.duration_ms > 0) endTimer = setTimeout(ended, item.duration_ms);
  try {
    await playOnDevice(item);
  } catch (e) {
    if (mine !== mounts) return; // the player moved on meanwhile
    clearTimeout(endTimer);
    fail(`Spotify: ${e.message}. Playing it on this page.`);
    playHere();
    mountEmbed(item);
    render();
  }
}

function mountIframe(item) {
  mode = "iframe";
  controller = null;
  mounts++;
  $("player-embed").replaceChildren(h("iframe", {
    className: "embed", src: embedOf(item), title: `Spotify player: ${item.title} by ${item.artist_name}`,
    allow: "autoplay; clipboard-write; encrypted-media; fullscreen; picture-in-picture",
    height: EMBED_HEIGHT, width: "100%",
  }));
  if (item.duration_ms > 0) endTimer = setTimeout(ended, item.duration_ms);
}

const uriOf = (item) => `spotify:track:${item.track_id}`;

function mountController(item) {
  mode = "api";
  const holder = $("player-embed");
  if (controller && holder.querySelector("iframe")) {
    try {
      controller.loadUri(uriOf(item));
      controller.play();
      return;
    } catch {
      controller = null; // a broken controller: make a new one
    }
  }
  const spot = h("div");
  holder.replaceChildren(spot);
  const mine = ++mounts;
  try {
    iframeApi.createController(spot, { uri: uriOf(item), width: "100%", height: EMBED_HEIGHT }, (made) => {
      if (mine !== mounts) return; // the player moved on to a plain embed, or stopped
      controller = made;
      made.addListener("playback_update", onUpdate);
      made.addListener("ready", () => { if (playing()) made.play(); });
      if (track && track !== item) made.loadUri(uriOf(track)); // another play came in meanwhile
      made.play();
    });
  } catch {
    mountIframe(item); // the API is there but does not work: the plain embed will
  }
}

/** A playback_update of the embed: playing or paused, and the end of the track. */
function onUpdate(event) {
  const data = (event && (event.data || event.payload)) || {};
  if (!playing() || finished) return;
  const position = Number(data.position) || 0;
  const duration = Number(data.duration) || 0;
  if (!data.isPaused && position > 0 && !heard) {
    heard = true;
    startedAtUs = nowUs() - Math.round(position * 1000); // when it really began
  }
  const over = heard && duration > 0
    && (position >= duration || (data.isPaused && (position === 0 || duration - position < 1000)));
  if (over) {
    ended();
    return;
  }
  if (heard) setState(data.isPaused ? "paused" : "playing");
}

function loadIframeApi() {
  window.onSpotifyIframeApiReady = (IFrameAPI) => {
    iframeApi = IFrameAPI; // from the next play on, even if it came late
    apiStatus = "ready";
  };
  const script = h("script", { src: API_SRC, async: true });
  const giveUp = () => {
    if (!iframeApi) apiStatus = "failed";
  };
  script.addEventListener("error", giveUp);
  setTimeout(giveUp, API_WAIT_MS);
  document.head.append(script);
}

/** ``ended(item, startedAtUs)``: a track played to its end; ``skip(item)``, ``like(item)``,
 * ``dislike(item)``: the buttons, for the track playing; ``liked(item)``: whether it is liked. */
export function initPlayer(given) {
  hooks = { ...hooks, ...given };
  $("player-skip").addEventListener("click", () => { if (playing()) hooks.skip(track); });
  $("player-like").addEventListener("click", () => { if (playing()) hooks.like(track); });
  $("player-dislike").addEventListener("click", () => { if (playing()) hooks.dislike(track); });
  $("player").addEventListener("emotune:ended", ended);
  window.emotune = {
    ...window.emotune,
    player: {
      ended,
      state: () => ({ state, trackId: track ? track.track_id : null, mode, api: apiStatus }),
    },
  };
  loadIframeApi();
  render();
}

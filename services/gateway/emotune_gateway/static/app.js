// emotune's web page, the entry point: sign in with an API key, open a session (the newest one, the
// camera's, or a new listener's first), and wire the modules together. Native ES modules, no
// framework, no build step.

import { api, current, onUnauthorized, userPath } from "./api.js";
import { initCamera, stopCamera } from "./camera.js";
import { drawChart, initChart, resetChart } from "./chart.js";
import { $ } from "./dom.js";
import { closeLive, connectLive, initEvents } from "./events.js";
import { loadHistory, loadMood, onEmotion, resetMood, showMood } from "./mood.js";
import { initPlaylist, loadRecommendations, onRecommendationsEvent, resetPlaylist, stopMusic } from "./playlist.js";
import { initSpotify, loadSpotify } from "./spotify.js";
import { fail, initStatus, say } from "./status.js";
import { initTaste, resetTaste, showTaste } from "./taste.js";

const KEY_STORE = "emotune.key";
const REFUSED = "Your API key was not accepted: sign in again.";

// ---------------------------------------------------------------- signing in and out

function storedKey() {
  try {
    return localStorage.getItem(KEY_STORE);
  } catch {
    return null;
  }
}

function storeKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORE, key);
    else localStorage.removeItem(KEY_STORE);
  } catch {
    /* private mode: the key lives as long as the page */
  }
}

async function signIn(key) {
  current.key = key.trim();
  try {
    const me = await api("GET", "/v1/me");
    current.uid = me.user_id;
    storeKey(current.key);
    showApp(me);
  } catch (e) {
    current.key = null;
    storeKey(null);
    showSignIn();
    fail(e.status === 401 ? "That API key was not accepted." : `Could not sign in: ${e.message}`);
  }
}

function signOut(message) {
  stopCamera({ endSession: true, quiet: true });
  stopMusic();
  resetSession();
  resetTaste();
  showTaste(false);
  current.key = null;
  current.uid = null;
  storeKey(null);
  showSignIn();
  if (message) fail(message);
  else say("Signed out.");
}

function showSignIn() {
  $("app").hidden = true;
  $("who").hidden = true;
  $("signin").hidden = false;
  $("key-input").value = "";
}

function showApp(me) {
  $("signin").hidden = true;
  $("who").hidden = false;
  $("user-name").textContent = me.name && me.name !== me.user_id ? `${me.name} (${me.user_id})` : me.user_id;
  $("app").hidden = false;
  drawChart();
  loadSpotify();
  resumeLatestSession();
}

/** The key of a #key=... link, taken off the address bar (it goes to local storage instead). */
function keyFromUrl() {
  const key = new URLSearchParams(location.hash.slice(1)).get("key");
  if (key) history.replaceState(null, "", location.pathname + location.search);
  return key;
}

// ---------------------------------------------------------------- sessions

/** Show the newest session (its mood, history and playlist) until the camera starts a new one; a
 * listener with none yet is new here, and sees the taste search first. */
async function resumeLatestSession() {
  try {
    const list = await api("GET", userPath("/sessions"));
    if (list.length && !current.sid) useSession(list[0].id, false);
    if (!list.length) showTaste(true);
  } catch (e) {
    fail(`Could not list your sessions: ${e.message}`);
  }
}

function resetSession() {
  closeLive();
  current.sid = null;
  current.own = false;
  $("session-label").textContent = "";
  $("spotify-result").textContent = "";
  resetMood();
  resetPlaylist();
  resetChart();
}

function useSession(sid, own) {
  if (current.sid !== sid) {
    resetSession();
    current.sid = sid;
  }
  current.own = own;
  showTaste(false); // a listener with a session has music coming: the search folds away (one click opens it)
  $("session-label").textContent = `\u00b7 session ${sid.slice(0, 8)}`;
  $("session-label").title = sid;
  connectLive();
  loadRecommendations();
  if (!own) {
    loadHistory();
    loadMood(true);
  }
}

/** The taste was saved: its first list, in the session on show, or in a new one without a camera. */
async function tasteSaved() {
  if (current.sid) {
    await loadRecommendations();
    return;
  }
  try {
    const session = await api("POST", userPath("/sessions"), { json: { source: "upload" } });
    useSession(session.id, true);
  } catch (e) {
    fail(`Could not start a session: ${e.message}`);
  }
}

function onEvent(event) {
  const data = event.data || {};
  if (event.type === "emotion") onEmotion(data);
  else if (event.type === "mood") showMood(data);
  else if (event.type === "recommendations") onRecommendationsEvent(data);
}

// ---------------------------------------------------------------- deleting my data

async function deleteData() {
  if (!confirm("Delete all your sessions, moods, feedback and Spotify connection? Your account stays.")) return;
  stopCamera({ endSession: false, quiet: true });
  stopMusic();
  resetSession();
  try {
    const report = await api("DELETE", userPath("/data"));
    say(`Deleted: ${report.deleted_keys} records and ${report.deleted_stream_entries} stream entries.`, "ok");
    showTaste(true); // nothing known of the listener now: start again from their taste
  } catch (e) {
    fail(`Delete failed: ${e.message}`);
  }
  loadSpotify();
}

// ---------------------------------------------------------------- wiring

function init() {
  initStatus();
  initChart();
  initCamera({ sessionStarted: (sid) => useSession(sid, true) });
  initEvents({
    event: onEvent,
    resync: () => {
      loadRecommendations();
      loadMood(true);
    },
    refusedKey: () => signOut(REFUSED),
  });
  initPlaylist();
  initTaste({ onSaved: tasteSaved });
  initSpotify();
  onUnauthorized(() => signOut(REFUSED));
  $("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const key = $("key-input").value.trim();
    if (key) signIn(key);
  });
  $("sign-out").addEventListener("click", (e) => {
    e.preventDefault();
    signOut();
  });
  $("delete-data").addEventListener("click", deleteData);

  const key = keyFromUrl() || storedKey();
  if (key) signIn(key);
  else showSignIn();
  window.addEventListener("hashchange", () => {
    const fresh = keyFromUrl(); // a #key=... link opened on a page already loaded
    if (fresh && fresh !== current.key) {
      if (current.key) signOut();
      signIn(fresh);
    }
  });
}

init();

// The listener's Spotify account: connect (OAuth in another tab), save the playlist, disconnect.
// Playing on this page needs none of it (the embedded player plays without an account); connected,
// the listener may play on their own Spotify device instead (device.js).

import { api, current, userPath } from "./api.js";
import { offerDevice } from "./device.js";
import { $, h, spotifyHref } from "./dom.js";
import { fail, say } from "./status.js";

let status = null; // the gateway's answer: {configured, connected, display_name}
let watch = null;

const spotifyConnected = () => Boolean(status && status.connected);

export async function loadSpotify() {
  const box = $("spotify");
  try {
    status = await api("GET", userPath("/spotify"));
  } catch (e) {
    status = null;
    offerDevice(false);
    if (e.status === 404) {
      box.hidden = true; // this gateway has no Spotify routes
      return;
    }
    box.hidden = false;
    $("spotify-status").textContent = `Spotify status unavailable: ${e.message}`;
    return;
  }
  box.hidden = false;
  const s = status;
  const line = $("spotify-status");
  if (!s.configured) line.textContent = "Spotify is not set up on this server.";
  else if (s.connected) line.textContent = `Connected${s.display_name ? ` as ${s.display_name}` : ""}.`;
  else line.textContent = "Not connected: connect to save the playlist and play on your Spotify devices.";
  $("spotify-connect").hidden = !s.configured || s.connected;
  $("spotify-save").hidden = !s.connected;
  $("spotify-disconnect").hidden = !s.connected;
  offerDevice(s.connected);
}

async function connectSpotify() {
  const tab = window.open("", "_blank");
  try {
    const { url } = await api("GET", userPath("/spotify/authorize"));
    if (tab) {
      tab.opener = null;
      tab.location.href = url;
      say("Connect Spotify in the new tab, then come back here.");
      watchSpotify(40);
    } else {
      location.assign(url);
    }
  } catch (e) {
    if (tab) tab.close();
    fail(`Spotify: ${e.message}`);
  }
}

/** Check the status every few seconds while the user connects in the other tab. */
function watchSpotify(times) {
  clearTimeout(watch);
  if (times <= 0 || !current.uid) return;
  watch = setTimeout(async () => {
    await loadSpotify();
    if (spotifyConnected()) say("Spotify connected.", "ok");
    else watchSpotify(times - 1);
  }, 2_000);
}

async function savePlaylist() {
  if (!current.sid) {
    fail("Start the camera first: the playlist follows a session's mood.");
    return;
  }
  const button = $("spotify-save");
  button.disabled = true;
  try {
    const made = await api("POST", userPath("/spotify/playlist"), { json: { session_id: current.sid } });
    const link = spotifyHref(made.url);
    $("spotify-result").replaceChildren(`${made.created ? "Made" : "Updated"} your \u201cemotune: ${made.mood}\u201d `
      + `playlist (${made.tracks.length} tracks). `,
    link ? h("a", { href: link, target: "_blank", rel: "noopener" }, "Open in Spotify") : "");
    say("Playlist saved.", "ok");
  } catch (e) {
    fail(`Save as playlist: ${e.message}`);
  } finally {
    button.disabled = false;
  }
}

async function disconnectSpotify() {
  try {
    await api("DELETE", userPath("/spotify"));
    say("Spotify disconnected.");
  } catch (e) {
    fail(`Spotify: ${e.message}`);
  }
  loadSpotify();
}

/** The card's buttons, and a fresh status whenever the page gets the focus back. */
export function initSpotify() {
  $("spotify-connect").addEventListener("click", connectSpotify);
  $("spotify-save").addEventListener("click", savePlaylist);
  $("spotify-disconnect").addEventListener("click", (e) => {
    e.preventDefault();
    disconnectSpotify();
  });
  window.addEventListener("focus", () => { if (current.uid) loadSpotify(); });
}

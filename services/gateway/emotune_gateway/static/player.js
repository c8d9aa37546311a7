// The player: the row selected to play, Spotify's embedded player for it (while the player toggle
// is on), and playing it: "play" feedback, and the listener's own Spotify device when connected.

import { api, sendFeedback, userPath } from "./api.js";
import { $, h, spotifyHref } from "./dom.js";
import { spotifyConnected } from "./spotify.js";
import { fail, say } from "./status.js";

let selected = null;
let changed = () => {};

export const selectedItem = () => selected;
export const isSelected = (item) => selected !== null && item.artist_id === selected.artist_id;
export const trackOf = (item) => ((item.tracks || [])[0] || {}).spotify_id || "";

/** Nothing selected (the item was skipped, or the session changed). */
export function deselect() {
  selected = null;
}

/** The embedded player of ``item``, if it is the one selected and the player is on. */
export function embedFor(item) {
  const first = (item.tracks || [])[0];
  if (!isSelected(item) || !$("player-toggle").checked || !first || !spotifyHref(first.embed_url)) return null;
  return h("iframe", {
    className: "embed", src: first.embed_url, loading: "lazy", title: `Spotify player: ${first.name}`,
    allow: "autoplay; clipboard-write; encrypted-media; picture-in-picture", height: 80,
  });
}

export async function play(item) {
  selected = item;
  const track = trackOf(item);
  if (track && !$("player-toggle").checked && !spotifyConnected()) $("player-toggle").checked = true;
  changed();
  try {
    await sendFeedback("play", { artist_id: item.artist_id, track_id: track });
  } catch (e) {
    fail(`Play failed: ${e.message}`);
    return;
  }
  if (spotifyConnected() && track) {
    try {
      await api("POST", userPath("/spotify/play"), { json: { track_id: track } });
      say(`Playing ${item.artist_name} on your Spotify device.`, "ok");
    } catch (e) {
      fail(`Spotify: ${e.message}`);
    }
  } else if (!track) {
    say(`No track of ${item.artist_name} on Spotify: open the artist's link.`);
  } else if ($("player-toggle").checked) {
    say(`Playing ${item.artist_name} in the player.`);
  }
}

/** ``onChange()`` redraws the list when the selection or the toggle changes; turning the player on
 * with nothing selected selects ``first()``. */
export function initPlayer({ onChange, first }) {
  changed = onChange;
  $("player-toggle").addEventListener("change", () => {
    if ($("player-toggle").checked && !selected) selected = first();
    changed();
  });
}

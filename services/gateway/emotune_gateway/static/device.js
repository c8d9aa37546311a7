// Where the player plays: "Play on: this page | my Spotify device". The choice is offered once the
// listener has connected Spotify (OAuth); on the device, playback goes through the gateway's player
// routes, which act on the listener's active Spotify device: POST /spotify/play plays one track (by
// its id), POST /spotify/next moves the device on. What plays when, and the feedback, stay the
// player's and the playlist's, whichever the choice.

import { api, userPath } from "./api.js";
import { $ } from "./dom.js";

let connected = false;

/** Whether tracks are to play on the listener's Spotify device. */
export const onDevice = () => connected && $("play-on-device").checked;

/** Spotify is connected (or not): offer the choice; without it, tracks play on this page. */
export function offerDevice(isConnected) {
  connected = isConnected;
  $("play-on").hidden = !connected;
  if (!connected) playHere();
}

/** Back to this page (the device refused). */
export function playHere() {
  $("play-on-page").checked = true;
}

/** Play ``item`` on the device now; a refusal throws the gateway's reason (ApiError). */
export const playOnDevice = (item) => api("POST", userPath("/spotify/play"), { json: { track_id: item.track_id } });

/** The device moves on from the track it plays. */
export const nextOnDevice = () => api("POST", userPath("/spotify/next"));

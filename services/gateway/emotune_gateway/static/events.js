// The live subscription: one WebSocket per session carrying its emotion, mood and recommendation
// events. It reconnects with backoff and resumes from the last event id it saw; when resuming is
// given up (events in the gap lost), ``resync`` is asked to read the state they would have brought.

import { api, current, userPath } from "./api.js";
import { $ } from "./dom.js";
import { fail, recovered } from "./status.js";

let ws = null;
let opened = false; // the current socket got through its handshake
let failures = 0; // connections in a row that never opened
let resumeLost = false;
let reconnectTimer = null;
let backoff = 500;
let lastEventId = null;
let handlers = { event: () => {}, resync: () => {}, refusedKey: () => {} };

const setLive = (text) => { $("live-state").textContent = text; };

/** ``event(e)`` gets every event of the session on show, ``resync()`` runs after a lost gap,
 * ``refusedKey()`` when the server refuses the key. */
export function initEvents({ event, resync, refusedKey }) {
  handlers = { event, resync, refusedKey };
}

/** Close the subscription and forget where it was (another session comes next, or none). */
export function closeLive() {
  clearTimeout(reconnectTimer);
  const old = ws;
  ws = null;
  lastEventId = null;
  if (old) old.close(1000, "bye");
  setLive("not connected");
}

/** (Re)subscribe to the session on show, from the last event id seen. */
export function connectLive() {
  clearTimeout(reconnectTimer);
  if (ws) {
    const old = ws;
    ws = null;
    old.close(1000, "switching");
  }
  if (!current.sid || !current.key) return;
  const params = new URLSearchParams({ session: current.sid, key: current.key });
  if (lastEventId) params.set("last_event_id", lastEventId);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}${userPath("/events/ws")}?${params}`);
  ws = socket;
  opened = false;
  setLive("connecting\u2026");
  socket.onopen = () => {
    if (ws !== socket) return;
    opened = true;
    setLive("live");
    recovered("live", "Live updates are back.");
    if (resumeLost) {
      resumeLost = false;
      handlers.resync();
    }
  };
  socket.onmessage = (message) => {
    if (ws !== socket) return;
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    backoff = 500;
    failures = 0;
    if (event.id) lastEventId = event.id;
    if (!event.session_id || event.session_id === current.sid) handlers.event(event);
  };
  socket.onclose = (close) => {
    if (ws !== socket) return; // closed on purpose
    ws = null;
    if (close.code === 4401) {
      handlers.refusedKey();
      return;
    }
    if (close.code === 4403 || close.code === 4422) {
      setLive("not connected");
      fail(`Live updates refused: ${close.reason || close.code}`);
      return;
    }
    if (!opened) failures++;
    // 1013: we were too slow; come back at once and resume from the last event id
    const delay = close.code === 1013 ? 100 : backoff;
    backoff = Math.min(backoff * 2, 15_000);
    setLive(`reconnecting in ${Math.max(1, Math.round(delay / 1000))} s`);
    if (failures >= 3) {
      // A refused handshake reaches the browser as 1006, without the gateway's code: check the key
      // (a 401 signs out) and say so; after more, stop resuming from an event id it may refuse.
      api("GET", "/v1/me").then(
        () => fail("Live updates: the connection keeps failing; retrying.", "live"),
        () => {},
      );
    }
    if (failures >= 6 && lastEventId) {
      lastEventId = null;
      resumeLost = true;
    }
    reconnectTimer = setTimeout(connectLive, delay);
  };
}

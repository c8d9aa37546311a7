// The gateway's REST API: fetch with the bearer key, JSON in and out, failures as ApiError carrying
// the gateway's own message; and who the calls are for (the signed-in user, the session on show).

/** The signed-in user's key and id, the session on show and whether this page started it. */
export const current = { key: null, uid: null, sid: null, own: false };

let unauthorized = () => {};

/** What to do when the server refuses the key of a signed-in user (sign out, in practice). */
export function onUnauthorized(callback) {
  unauthorized = callback;
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status; // 0: no answer at all
  }
}

function detailOf(data, response) {
  const detail = data && data.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
  return `${response.status} ${response.statusText || "error"}`;
}

/** One call: ``json`` is sent as JSON, ``body`` as it is; the answer's JSON (or null) comes back. */
export async function api(method, path, { json, body, headers = {}, keepalive = false } = {}) {
  const sent = { Authorization: `Bearer ${current.key}`, ...headers };
  let payload = body;
  if (json !== undefined) {
    sent["Content-Type"] = "application/json";
    payload = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, { method, headers: sent, body: payload, keepalive, cache: "no-store" });
  } catch (e) {
    throw new ApiError(0, `the server did not answer (${e.message})`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    if (response.status === 401 && current.uid) unauthorized();
    throw new ApiError(response.status, detailOf(data, response));
  }
  return data;
}

export const enc = encodeURIComponent;
export const userPath = (rest) => `/v1/users/${enc(current.uid)}${rest}`;
export const sessionPath = (rest) => userPath(`/sessions/${enc(current.sid)}${rest}`);

/** Feedback on the session on show: play, skip, like, dislike or genre_change, with its fields. */
export async function sendFeedback(action, fields) {
  if (!current.sid) throw new ApiError(0, "no session");
  return api("POST", sessionPath("/feedback"), { json: { action, ...fields } });
}

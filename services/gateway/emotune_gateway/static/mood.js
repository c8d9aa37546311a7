// The mood card's words: the emotion of the latest face, the smoothed mood of the session, and
// reading them (and the chart's history) from the API when the page opens a session.

import { api, current, sessionPath } from "./api.js";
import { showBox } from "./camera.js";
import { addPoint } from "./chart.js";
import { $ } from "./dom.js";
import { EMOJI, NO_FACE, percent, vector } from "./emotions.js";
import { fail, recovered } from "./status.js";

const MOOD_REFRESH_MS = 2_000;

let moodFetchedAt = 0;

function showEmotion(label, confidence) {
  $("emotion-emoji").textContent = EMOJI[label] || NO_FACE;
  $("emotion-label").textContent = label;
  $("emotion-label").classList.remove("placeholder");
  $("emotion-confidence").textContent = percent(confidence);
}

/** An emotion event: its label, a point on the chart, the face box; the mood now and then. */
export function onEmotion(data) {
  showEmotion(data.label || "neutral", data.confidence);
  const t = data.captured_at_us ? data.captured_at_us / 1000 : Date.now();
  addPoint(t, vector(data.probabilities), true);
  showBox(data.box);
  if (performance.now() - moodFetchedAt > MOOD_REFRESH_MS) loadMood(false);
}

export function showMood(data) {
  if (!data || !data.mood) return;
  $("mood-label").textContent = `${EMOJI[data.mood] || ""} ${data.mood}`.trim();
  const parts = [percent(data.confidence)];
  if (typeof data.valence === "number") parts.push(`valence ${data.valence >= 0 ? "+" : ""}${data.valence.toFixed(2)}`);
  if (typeof data.arousal === "number") parts.push(`arousal ${data.arousal.toFixed(2)}`);
  $("mood-detail").textContent = `(${parts.join(", ")})`;
}

/** No face, no mood (another session, or none). */
export function resetMood() {
  $("emotion-emoji").textContent = NO_FACE;
  $("emotion-label").textContent = "no face yet";
  $("emotion-label").classList.add("placeholder");
  $("emotion-confidence").textContent = "";
  $("mood-label").textContent = "\u2013";
  $("mood-detail").textContent = "";
}

export async function loadMood(quiet) {
  if (!current.sid) return;
  moodFetchedAt = performance.now();
  const sid = current.sid;
  try {
    const mood = await api("GET", sessionPath("/mood"));
    if (sid === current.sid) showMood(mood);
    recovered("mood", "The mood reads again.");
  } catch (e) {
    if (e.status !== 404 && !quiet) fail(`Could not read the mood: ${e.message}`, "mood");
  }
}

/** The session's recent emotions onto the chart, and its last one in words. */
export async function loadHistory() {
  const sid = current.sid;
  try {
    const history = await api("GET", sessionPath("/mood/history?limit=600"));
    if (sid !== current.sid) return;
    for (const p of history.points || []) addPoint(p.t / 1000, vector(p.smoothed || p.probabilities), !p.smoothed);
    const last = (history.points || []).at(-1);
    if (last) showEmotion(last.label, last.confidence);
  } catch (e) {
    if (e.status !== 404) fail(`Could not read the mood history: ${e.message}`);
  }
}

// The status line at the top of the page: errors stay until dismissed or replaced, other news fades.

import { $ } from "./dom.js";

let timer = null;
let topic = null;

/** Show a message: ``kind`` is info, ok or error; ``about`` names what an error is about, so that
 * it can be cleared when that thing recovers. */
export function say(text, kind = "info", about = null) {
  topic = about;
  const line = $("status");
  line.textContent = text;
  line.className = `status ${kind}`;
  line.hidden = false;
  line.setAttribute("role", kind === "error" ? "alert" : "status");
  clearTimeout(timer);
  if (kind !== "error") timer = setTimeout(() => { line.hidden = true; }, 5000);
}

export const fail = (text, about = null) => say(text, "error", about);

/** The error about ``about`` is over: say so, if it is still on show. */
export function recovered(about, text) {
  if (topic === about && !$("status").hidden) say(text, "ok");
}

/** A click on the line dismisses it. */
export function initStatus() {
  $("status").addEventListener("click", () => { $("status").hidden = true; });
}

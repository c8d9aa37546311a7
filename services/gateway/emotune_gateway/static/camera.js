// The camera: getUserMedia, a few JPEG frames a second posted to the session (one in flight at
// most), the on/off badge, and the face box drawn over the preview.

import { ApiError, api, current, enc, sessionPath, userPath } from "./api.js";
import { $ } from "./dom.js";
import { fail, recovered, say } from "./status.js";

const FRAME_WIDTH = 320; // pixels of the frames sent: enough for the face detector, small on the wire
const JPEG_QUALITY = 0.8;

let stream = null; // the camera's MediaStream while it is on
let frameTimer = null;
let framesSent = 0;
let frameErrorShown = 0;
let boxTimer = null;
let onSession = () => {};

function setCameraBadge(on) {
  const badge = $("camera-badge");
  badge.textContent = on ? "\u25CF camera on" : "camera off";
  badge.className = `badge ${on ? "on" : "off"}`;
  const button = $("camera-toggle");
  button.textContent = on ? "Stop camera" : "Start camera";
  button.classList.toggle("danger", on);
  button.classList.toggle("primary", !on);
  button.setAttribute("aria-pressed", String(on));
  $("preview-empty").hidden = on;
  $("video").classList.toggle("live", on);
}

async function openCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error("this browser gives no camera to this page (it needs https, or localhost)");
  }
  try {
    return await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: "user" },
      audio: false,
    });
  } catch (e) {
    const why = {
      NotAllowedError: "camera permission was denied (allow it in the address bar)",
      NotFoundError: "no camera was found",
      NotReadableError: "the camera is in use by another program",
    }[e.name];
    throw new Error(why || `the camera did not start (${e.name}: ${e.message})`);
  }
}

/** Camera on, a new session for it (handed to ``onSession``), frames on their way. */
async function startCamera() {
  const button = $("camera-toggle");
  button.disabled = true;
  try {
    const opened = await openCamera();
    stream = opened;
    const video = $("video");
    video.srcObject = opened;
    video.play().catch(() => {});
    setCameraBadge(true);
    for (const track of opened.getVideoTracks()) {
      track.addEventListener("ended", () => {
        if (stream === opened) stopCamera({ endSession: true, message: "The camera was turned off." });
      });
    }
    let session;
    try {
      session = await api("POST", userPath("/sessions"), { json: { source: "upload" } });
    } catch (e) {
      stopTracks();
      throw new Error(`could not start a session: ${e.message}`);
    }
    onSession(session.id);
    framesSent = 0;
    $("frames-sent").textContent = "0";
    say("Camera on: reading your mood\u2026", "ok");
    scheduleFrame(0);
  } catch (e) {
    setCameraBadge(false);
    fail(`Camera: ${e.message}`);
  } finally {
    button.disabled = false;
  }
}

function stopTracks() {
  if (stream) for (const track of stream.getTracks()) track.stop();
  stream = null;
  $("video").srcObject = null;
  setCameraBadge(false);
}

/** Stop the tracks and the uploads, and (by default) end the session on the server. */
export function stopCamera({ endSession = true, message = null, quiet = false } = {}) {
  const wasOn = stream !== null;
  clearTimeout(frameTimer);
  frameTimer = null;
  stopTracks();
  clearBox();
  if (endSession && wasOn && current.sid && current.own && current.key) {
    const sid = current.sid;
    api("DELETE", userPath(`/sessions/${enc(sid)}`)).catch((e) => {
      if (!quiet) fail(`Could not stop session ${sid.slice(0, 8)}: ${e.message}`);
    });
  }
  if (message) say(message);
}

function scheduleFrame(delay) {
  clearTimeout(frameTimer);
  frameTimer = setTimeout(sendFrame, Math.max(0, delay));
}

const toBlob = (canvas) => new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY));

/** One frame: grab, encode, upload; the next is scheduled when this one is done. */
async function sendFrame() {
  const sending = stream;
  if (!sending || !current.sid) return;
  const interval = 1000 / Number($("fps").value || 4);
  const started = performance.now();
  const video = $("video");
  if (video.readyState < 2 || !video.videoWidth) {
    scheduleFrame(100);
    return;
  }
  const canvas = $("grab");
  const scale = Math.min(1, FRAME_WIDTH / video.videoWidth);
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  const blob = await toBlob(canvas);
  let pause = 0;
  try {
    if (!blob) throw new ApiError(0, "the browser could not encode a frame");
    await api("POST", sessionPath("/frames"), { body: blob, headers: { "Content-Type": "image/jpeg" } });
    framesSent++;
    $("frames-sent").textContent = String(framesSent);
    recovered("frames", "Frames are getting through again.");
  } catch (e) {
    if (stream !== sending) return;
    if (e.status === 409 || e.status === 404) {
      stopCamera({ endSession: false });
      fail(`The session ended on the server: ${e.message}`);
      return;
    }
    if (e.status === 401) return; // signed out already
    pause = e.status === 429 ? 1000 : 2000;
    if (performance.now() - frameErrorShown > 5000) {
      frameErrorShown = performance.now();
      fail(`A frame was not sent: ${e.message}`, "frames");
    }
  }
  if (stream === sending) scheduleFrame(interval - (performance.now() - started) + pause);
}

/** The face box over the preview (its coordinates are those of the frame sent), for 1.5 s. */
export function showBox(box) {
  const overlay = $("overlay");
  const video = $("video");
  if (!box || !box.width || !stream || !video.videoWidth) return;
  const w = video.clientWidth;
  const hgt = video.clientHeight;
  const dpr = window.devicePixelRatio || 1;
  overlay.width = Math.round(w * dpr);
  overlay.height = Math.round(hgt * dpr);
  const ctx = overlay.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, hgt);
  // the video is shown whole (object-fit: contain): where its picture lies, and at what scale
  const shown = Math.min(w / video.videoWidth, hgt / video.videoHeight);
  const left = (w - video.videoWidth * shown) / 2;
  const top = (hgt - video.videoHeight * shown) / 2;
  const k = shown * (video.videoWidth / ($("grab").width || video.videoWidth)); // sent frame -> screen
  ctx.translate(left, top);
  ctx.strokeStyle = "#38d39f";
  ctx.lineWidth = 2;
  ctx.strokeRect(box.x * k, box.y * k, box.width * k, box.height * k);
  clearTimeout(boxTimer);
  boxTimer = setTimeout(clearBox, 1500);
}

function clearBox() {
  const overlay = $("overlay");
  const ctx = overlay.getContext("2d");
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, overlay.width, overlay.height);
}

/** The toggle button; ``sessionStarted(id)`` gets each session the camera starts. A page that goes
 * away with the camera on ends its session (keepalive outlives the page). */
export function initCamera({ sessionStarted }) {
  onSession = sessionStarted;
  setCameraBadge(false);
  $("camera-toggle").addEventListener("click", () => {
    if (stream) stopCamera({ endSession: true, message: "Camera off." });
    else startCamera();
  });
  window.addEventListener("pagehide", () => {
    if (stream && current.sid && current.own) api("DELETE", sessionPath(""), { keepalive: true }).catch(() => {});
  });
}

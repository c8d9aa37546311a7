// emotune's web page: sign in with an API key, send camera frames, follow the live mood, play the playlist.
// Plain browser JavaScript, no framework, no build step, nothing fetched from elsewhere.
"use strict";

(() => {
  const EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];
  const COLORS = {
    angry: "#e53935", disgust: "#6d9f2f", fear: "#8e44ad", happy: "#f2b705",
    sad: "#1e88e5", surprise: "#fb8c00", neutral: "#8a8f98",
  };
  const EMOJI = {
    angry: "\u{1F620}", disgust: "\u{1F922}", fear: "\u{1F628}", happy: "\u{1F604}",
    sad: "\u{1F622}", surprise: "\u{1F62E}", neutral: "\u{1F610}",
  };
  const KEY_STORE = "emotune.key";
  const FRAME_WIDTH = 320; // pixels of the frames sent: enough for the face detector, small on the wire
  const JPEG_QUALITY = 0.8;
  const WINDOW_MS = 60_000; // the chart shows the last minute
  const TAU_MS = 2_000; // time constant of the chart's smoothing (the recommender's default too)
  const MOOD_REFRESH_MS = 2_000;
  const SPOTIFY_LINK = /^https:\/\/open\.spotify\.com\//;

  const $ = (id) => document.getElementById(id);

  /** An element with attributes (on* as listeners, hidden/checked as properties) and children. */
  function h(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (name === "className") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const state = {
    key: null,
    uid: null,
    sid: null,
    stream: null, // the camera's MediaStream while it is on
    ownSession: false, // the session was started by this page (so Stop ends it)
    frameTimer: null,
    framesSent: 0,
    frameErrorShown: 0,
    ws: null,
    wsOpened: false,
    wsFailures: 0,
    resumeLost: false,
    reconnectTimer: null,
    backoff: 500,
    lastEventId: null,
    series: [], // [{t (ms, capture clock), v: [7 smoothed probabilities]}]
    ema: null,
    lastT: 0,
    lastSeenAt: 0, // performance.now() of the last point: the chart's right edge moves on from there
    moodFetchedAt: 0,
    recs: null,
    recsSeq: 0,
    selected: null,
    skipped: new Set(),
    liked: new Set(),
    policy: null, // null: the recommender's default
    genre: "",
    spotify: null,
    boxTimer: null,
    spotifyWatch: null,
  };

  // ---------------------------------------------------------------- status line

  let statusTimer = null;
  let statusTopic = null;

  /** Show a message in the status line: errors stay until dismissed or replaced, others fade.
   * ``topic`` names what an error is about, so that it can be cleared when that thing recovers. */
  function say(text, kind = "info", topic = null) {
    statusTopic = topic;
    const line = $("status");
    line.textContent = text;
    line.className = `status ${kind}`;
    line.hidden = false;
    line.setAttribute("role", kind === "error" ? "alert" : "status");
    clearTimeout(statusTimer);
    if (kind !== "error") statusTimer = setTimeout(() => { line.hidden = true; }, 5000);
  }
  const fail = (text, topic = null) => say(text, "error", topic);

  /** The error about ``topic`` is over: say so, if it is still on show. */
  function recovered(topic, text) {
    if (statusTopic === topic && !$("status").hidden) say(text, "ok");
  }

  // ---------------------------------------------------------------- the API

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function detailOf(data, response) {
    const detail = data && data.detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) return detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
    return `${response.status} ${response.statusText || "error"}`;
  }

  async function api(method, path, { json, body, headers = {}, keepalive = false } = {}) {
    const sent = { Authorization: `Bearer ${state.key}`, ...headers };
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
      if (response.status === 401 && state.uid) signOut("Your API key was not accepted: sign in again.");
      throw new ApiError(response.status, detailOf(data, response));
    }
    return data;
  }

  const enc = encodeURIComponent;
  const userPath = (rest) => `/v1/users/${enc(state.uid)}${rest}`;
  const sessionPath = (rest) => userPath(`/sessions/${enc(state.sid)}${rest}`);

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
    state.key = key.trim();
    try {
      const me = await api("GET", "/v1/me");
      state.uid = me.user_id;
      storeKey(state.key);
      showApp(me);
    } catch (e) {
      state.key = null;
      storeKey(null);
      showSignIn();
      fail(e.status === 401 ? "That API key was not accepted." : `Could not sign in: ${e.message}`);
    }
  }

  function signOut(message) {
    stopCamera({ endSession: true, quiet: true });
    resetSession();
    state.key = null;
    state.uid = null;
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

  /** Show the newest session (its mood, history and playlist) until the camera starts a new one. */
  async function resumeLatestSession() {
    try {
      const list = await api("GET", userPath("/sessions"));
      if (list.length && !state.sid) useSession(list[0].id, false);
    } catch (e) {
      fail(`Could not list your sessions: ${e.message}`);
    }
  }

  // ---------------------------------------------------------------- sessions

  function resetSession() {
    closeLive();
    state.sid = null;
    state.ownSession = false;
    state.lastEventId = null;
    state.series = [];
    state.ema = null;
    state.lastT = 0;
    state.recs = null;
    state.selected = null;
    state.skipped = new Set();
    state.liked = new Set();
    state.recsSeq++;
    $("session-label").textContent = "";
    $("emotion-emoji").textContent = "\u{1F636}";
    $("emotion-label").textContent = "no face yet";
    $("emotion-label").classList.add("placeholder");
    $("emotion-confidence").textContent = "";
    $("mood-label").textContent = "\u2013";
    $("mood-detail").textContent = "";
    $("spotify-result").textContent = "";
    renderRecommendations();
    updateLegend();
    drawChart();
  }

  function useSession(sid, own) {
    if (state.sid !== sid) {
      resetSession();
      state.sid = sid;
    }
    state.ownSession = own;
    $("session-label").textContent = `\u00b7 session ${sid.slice(0, 8)}`;
    $("session-label").title = sid;
    connectLive();
    loadRecommendations();
    if (!own) {
      loadHistory();
      loadMood(true);
    }
  }

  // ---------------------------------------------------------------- the camera

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

  async function startCamera() {
    const button = $("camera-toggle");
    button.disabled = true;
    try {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        throw new Error("this browser gives no camera to this page (it needs https, or localhost)");
      }
      let stream;
      try {
        stream = await navigator.mediaDevices.getUserMedia({
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
      state.stream = stream;
      const video = $("video");
      video.srcObject = stream;
      video.play().catch(() => {});
      setCameraBadge(true);
      for (const track of stream.getVideoTracks()) {
        track.addEventListener("ended", () => {
          if (state.stream === stream) stopCamera({ endSession: true, message: "The camera was turned off." });
        });
      }
      let session;
      try {
        session = await api("POST", userPath("/sessions"), { json: { source: "upload" } });
      } catch (e) {
        stopTracks();
        throw new Error(`could not start a session: ${e.message}`);
      }
      useSession(session.id, true);
      state.framesSent = 0;
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
    if (state.stream) for (const track of state.stream.getTracks()) track.stop();
    state.stream = null;
    $("video").srcObject = null;
    setCameraBadge(false);
  }

  /** Stop the tracks and the uploads, and (by default) end the session on the server. */
  function stopCamera({ endSession = true, message = null, quiet = false } = {}) {
    const wasOn = state.stream !== null;
    clearTimeout(state.frameTimer);
    state.frameTimer = null;
    stopTracks();
    clearBox();
    if (endSession && wasOn && state.sid && state.ownSession && state.key) {
      const sid = state.sid;
      api("DELETE", userPath(`/sessions/${enc(sid)}`)).catch((e) => {
        if (!quiet) fail(`Could not stop session ${sid.slice(0, 8)}: ${e.message}`);
      });
    }
    if (message) say(message);
  }

  function scheduleFrame(delay) {
    clearTimeout(state.frameTimer);
    state.frameTimer = setTimeout(sendFrame, Math.max(0, delay));
  }

  const toBlob = (canvas) => new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY));

  /** One frame: grab, encode, upload; the next is scheduled when this one is done (one in flight at most). */
  async function sendFrame() {
    const stream = state.stream;
    if (!stream || !state.sid) return;
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
      state.framesSent++;
      $("frames-sent").textContent = String(state.framesSent);
      recovered("frames", "Frames are getting through again.");
    } catch (e) {
      if (state.stream !== stream) return;
      if (e.status === 409 || e.status === 404) {
        stopCamera({ endSession: false });
        fail(`The session ended on the server: ${e.message}`);
        return;
      }
      if (e.status === 401) return; // signed out already
      pause = e.status === 429 ? 1000 : 2000;
      if (performance.now() - state.frameErrorShown > 5000) {
        state.frameErrorShown = performance.now();
        fail(`A frame was not sent: ${e.message}`, "frames");
      }
    }
    if (state.stream === stream) scheduleFrame(interval - (performance.now() - started) + pause);
  }

  // ---------------------------------------------------------------- live events (WebSocket)

  function setLive(text) {
    $("live-state").textContent = text;
  }

  function closeLive() {
    clearTimeout(state.reconnectTimer);
    const ws = state.ws;
    state.ws = null;
    if (ws) ws.close(1000, "bye");
    setLive("not connected");
  }

  function connectLive() {
    clearTimeout(state.reconnectTimer);
    if (state.ws) {
      const old = state.ws;
      state.ws = null;
      old.close(1000, "switching");
    }
    if (!state.sid || !state.key) return;
    const params = new URLSearchParams({ session: state.sid, key: state.key });
    if (state.lastEventId) params.set("last_event_id", state.lastEventId);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}${userPath("/events/ws")}?${params}`);
    state.ws = ws;
    state.wsOpened = false;
    setLive("connecting\u2026");
    ws.onopen = () => {
      if (state.ws !== ws) return;
      state.wsOpened = true;
      setLive("live");
      recovered("live", "Live updates are back.");
      if (state.resumeLost) {
        // events in the gap are lost: read the state they would have brought
        state.resumeLost = false;
        loadRecommendations();
        loadMood(true);
      }
    };
    ws.onmessage = (message) => {
      if (state.ws !== ws) return;
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      state.backoff = 500;
      state.wsFailures = 0;
      if (event.id) state.lastEventId = event.id;
      handleEvent(event);
    };
    ws.onclose = (close) => {
      if (state.ws !== ws) return; // closed on purpose
      state.ws = null;
      if (close.code === 4401) {
        signOut("Your API key was not accepted: sign in again.");
        return;
      }
      if (close.code === 4403 || close.code === 4422) {
        setLive("not connected");
        fail(`Live updates refused: ${close.reason || close.code}`);
        return;
      }
      if (!state.wsOpened) state.wsFailures++;
      // 1013: we were too slow; come back at once and resume from the last event id
      const delay = close.code === 1013 ? 100 : state.backoff;
      state.backoff = Math.min(state.backoff * 2, 15_000);
      setLive(`reconnecting in ${Math.max(1, Math.round(delay / 1000))} s`);
      if (state.wsFailures >= 3) {
        // A refused handshake reaches the browser as 1006, without the gateway's code: check the key
        // (a 401 signs out) and say so; after more, stop resuming from an event id it may refuse.
        api("GET", "/v1/me").then(
          () => fail("Live updates: the connection keeps failing; retrying.", "live"),
          () => {},
        );
      }
      if (state.wsFailures >= 6 && state.lastEventId) {
        state.lastEventId = null;
        state.resumeLost = true;
      }
      state.reconnectTimer = setTimeout(connectLive, delay);
    };
  }

  function handleEvent(event) {
    if (event.session_id && event.session_id !== state.sid) return;
    const data = event.data || {};
    if (event.type === "emotion") onEmotion(data);
    else if (event.type === "mood") showMood(data);
    else if (event.type === "recommendations") onRecommendationsEvent(data);
  }

  // ---------------------------------------------------------------- emotion and mood

  const percent = (p) => `${Math.round((Number(p) || 0) * 100)}%`;

  function vector(probabilities) {
    if (Array.isArray(probabilities)) return EMOTIONS.map((_, i) => Number(probabilities[i]) || 0);
    return EMOTIONS.map((e) => Number((probabilities || {})[e]) || 0);
  }

  function onEmotion(data) {
    const label = data.label || "neutral";
    $("emotion-emoji").textContent = EMOJI[label] || "\u{1F636}";
    $("emotion-label").textContent = label;
    $("emotion-label").classList.remove("placeholder");
    $("emotion-confidence").textContent = percent(data.confidence);
    const t = data.captured_at_us ? data.captured_at_us / 1000 : Date.now();
    addPoint(t, vector(data.probabilities), true);
    showBox(data.box);
    if (performance.now() - state.moodFetchedAt > MOOD_REFRESH_MS) loadMood(false);
  }

  /** A point of the chart: smoothed here (EMA over time) unless it comes smoothed already. */
  function addPoint(t, values, smooth) {
    if (smooth) {
      if (!state.ema) state.ema = values.slice();
      else {
        const dt = Math.max(50, t - state.lastT);
        const a = 1 - Math.exp(-dt / TAU_MS);
        state.ema = state.ema.map((v, i) => v + a * (values[i] - v));
      }
    } else {
      state.ema = values.slice();
    }
    state.lastT = Math.max(state.lastT, t);
    state.lastSeenAt = performance.now();
    state.series.push({ t, v: state.ema.slice() });
    const oldest = state.lastT - WINDOW_MS - 5000;
    while (state.series.length && state.series[0].t < oldest) state.series.shift();
    updateLegend();
    requestDraw();
  }

  function showMood(data) {
    if (!data || !data.mood) return;
    $("mood-label").textContent = `${EMOJI[data.mood] || ""} ${data.mood}`.trim();
    const parts = [percent(data.confidence)];
    if (typeof data.valence === "number") parts.push(`valence ${data.valence >= 0 ? "+" : ""}${data.valence.toFixed(2)}`);
    if (typeof data.arousal === "number") parts.push(`arousal ${data.arousal.toFixed(2)}`);
    $("mood-detail").textContent = `(${parts.join(", ")})`;
  }

  async function loadMood(quiet) {
    if (!state.sid) return;
    state.moodFetchedAt = performance.now();
    const sid = state.sid;
    try {
      const mood = await api("GET", sessionPath("/mood"));
      if (sid === state.sid) showMood(mood);
      recovered("mood", "The mood reads again.");
    } catch (e) {
      if (e.status !== 404 && !quiet) fail(`Could not read the mood: ${e.message}`, "mood");
    }
  }

  async function loadHistory() {
    const sid = state.sid;
    try {
      const history = await api("GET", sessionPath("/mood/history?limit=600"));
      if (sid !== state.sid) return;
      for (const p of history.points || []) addPoint(p.t / 1000, vector(p.smoothed || p.probabilities), !p.smoothed);
      const last = (history.points || []).at(-1);
      if (last) {
        $("emotion-emoji").textContent = EMOJI[last.label] || "\u{1F636}";
        $("emotion-label").textContent = last.label;
        $("emotion-label").classList.remove("placeholder");
        $("emotion-confidence").textContent = percent(last.confidence);
      }
    } catch (e) {
      if (e.status !== 404) fail(`Could not read the mood history: ${e.message}`);
    }
  }

  // the face box over the preview (its coordinates are those of the frame sent)
  function showBox(box) {
    const overlay = $("overlay");
    const video = $("video");
    if (!box || !box.width || !state.stream || !video.videoWidth) return;
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
    clearTimeout(state.boxTimer);
    state.boxTimer = setTimeout(clearBox, 1500);
  }

  function clearBox() {
    const overlay = $("overlay");
    const ctx = overlay.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, overlay.width, overlay.height);
  }

  // ---------------------------------------------------------------- the chart

  let drawPending = false;

  function requestDraw() {
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => {
      drawPending = false;
      drawChart();
    });
  }

  function drawChart() {
    const canvas = $("chart");
    const w = canvas.clientWidth;
    const hgt = canvas.clientHeight;
    if (!w || !hgt) return;
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(hgt * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(hgt * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, hgt);
    const pad = { left: 36, right: 8, top: 8, bottom: 20 };
    const pw = w - pad.left - pad.right;
    const ph = hgt - pad.top - pad.bottom;
    const styles = getComputedStyle(document.body);
    const ink = styles.getPropertyValue("--muted").trim() || "#888";
    const grid = styles.getPropertyValue("--line").trim() || "#ddd";
    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    for (const p of [0, 0.25, 0.5, 0.75, 1]) {
      const y = pad.top + ph * (1 - p);
      ctx.strokeStyle = grid;
      ctx.beginPath();
      ctx.moveTo(pad.left, y);
      ctx.lineTo(pad.left + pw, y);
      ctx.stroke();
      if (p % 0.5 === 0) {
        ctx.fillStyle = ink;
        ctx.fillText(`${p * 100}%`, pad.left - 5, y);
      }
    }
    ctx.textBaseline = "alphabetic";
    ctx.fillStyle = ink;
    for (const [s, align] of [[60, "left"], [30, "center"], [0, "right"]]) {
      ctx.textAlign = align;
      ctx.fillText(s ? `\u2212${s} s` : "now", pad.left + pw * (1 - s / 60), hgt - 5);
    }
    const points = state.series;
    if (!points.length) {
      ctx.textAlign = "center";
      ctx.fillText("waiting for a face\u2026", pad.left + pw / 2, pad.top + ph / 2);
      return;
    }
    const right = state.lastT + (performance.now() - state.lastSeenAt);
    const left = right - WINDOW_MS;
    const x = (t) => pad.left + ((t - left) / WINDOW_MS) * pw;
    const y = (v) => pad.top + ph * (1 - v);
    const top = state.ema ? state.ema.indexOf(Math.max(...state.ema)) : -1;
    ctx.save();
    ctx.beginPath();
    ctx.rect(pad.left, pad.top - 2, pw, ph + 4);
    ctx.clip();
    ctx.lineJoin = "round";
    ctx.lineCap = "round";
    const order = EMOTIONS.map((_, i) => i).filter((i) => i !== top);
    if (top >= 0) order.push(top); // the leading emotion on top
    for (const i of order) {
      ctx.strokeStyle = COLORS[EMOTIONS[i]];
      ctx.lineWidth = i === top ? 3 : 1.5;
      ctx.globalAlpha = i === top ? 1 : 0.75;
      ctx.beginPath();
      let started = false;
      for (const p of points) {
        if (p.t < left - 2000) continue;
        if (!started) ctx.moveTo(x(p.t), y(p.v[i]));
        else ctx.lineTo(x(p.t), y(p.v[i]));
        started = true;
      }
      if (points.length === 1) ctx.lineTo(x(points[0].t) - 2, y(points[0].v[i]));
      ctx.stroke();
    }
    ctx.restore();
  }

  function buildLegend() {
    const legend = $("legend");
    legend.replaceChildren(
      ...EMOTIONS.map((e) =>
        h("li", { "data-emotion": e },
          h("span", { className: "swatch", style: `background:${COLORS[e]}`, "aria-hidden": "true" }),
          h("span", { className: "name" }, e), " ",
          h("span", { className: "value" }, ""))),
    );
  }

  function updateLegend() {
    const values = state.ema;
    for (const li of $("legend").children) {
      const i = EMOTIONS.indexOf(li.dataset.emotion);
      li.querySelector(".value").textContent = values ? percent(values[i]) : "";
      li.classList.toggle("lead", Boolean(values) && values[i] === Math.max(...values));
    }
  }

  // ---------------------------------------------------------------- the playlist

  function recParams() {
    const params = new URLSearchParams({ k: "10" });
    if (state.policy) params.set("policy", state.policy);
    if (state.genre) params.append("genre", state.genre);
    return params;
  }

  async function loadRecommendations() {
    if (!state.sid) return;
    const seq = ++state.recsSeq;
    const sid = state.sid;
    try {
      const set = await api("GET", sessionPath(`/recommendations?${recParams()}`));
      if (seq === state.recsSeq && sid === state.sid) showRecommendations(set);
      recovered("recs", "The playlist loads again.");
    } catch (e) {
      if (seq === state.recsSeq && e.status !== 401) fail(`Could not load the playlist: ${e.message}`, "recs");
    }
  }

  function onRecommendationsEvent(set) {
    // the recommender's own sets use its default policy and no genre filter: with a choice made here,
    // take the event as the cue to ask for the set that choice gives
    if ((state.policy && set.policy && set.policy !== state.policy) || state.genre) {
      loadRecommendations();
      return;
    }
    state.recsSeq++; // newer than any set asked for before
    showRecommendations(set);
  }

  function showRecommendations(set) {
    const items = (set.items || []).filter((item) => !state.skipped.has(item.artist_id));
    state.recs = { ...set, items };
    if (!state.policy && set.policy) {
      const radio = document.querySelector(`input[name=policy][value="${set.policy}"]`);
      if (radio) radio.checked = true;
    }
    renderRecommendations();
    updateGenres();
  }

  const spotifyHref = (url) => (url && SPOTIFY_LINK.test(url) ? url : null);

  function renderRecommendations() {
    const list = $("recs");
    const items = state.recs ? state.recs.items : [];
    const set = state.recs;
    $("playlist-meta").textContent = set && set.mood
      ? `${EMOJI[set.mood] || ""} for ${set.mood} \u00b7 ${set.policy || "match"}`
      : "";
    const empty = $("recs-empty");
    empty.hidden = items.length > 0;
    if (set && !items.length) {
      empty.textContent = state.genre ? `Nothing found for the genre \u201c${state.genre}\u201d.` : "No music found.";
    } else if (!set) {
      empty.textContent = "Start the camera: music for your mood appears here.";
    }
    const player = $("player-toggle").checked;
    list.replaceChildren(...items.map((item, index) => renderRow(item, index, player)));
    // the row being played stays on show when a fresh list leaves it out (played artists count as liked)
    const chosen = state.selected;
    const pinned = chosen && !items.some((i) => i.artist_id === chosen.artist_id) ? chosen : null;
    $("pinned").replaceChildren(...(pinned ? [renderRow(pinned, null, player)] : []));
    $("pinned-box").hidden = !pinned;
  }

  /** One artist: name, genres, tracks, why; play, like, skip; the player when selected. ``index``
   * is its place in the list (null: kept on show though no longer in it). */
  function renderRow(item, index, player) {
    const selected = state.selected !== null && item.artist_id === state.selected.artist_id;
    const liked = state.liked.has(item.artist_id);
    const tracks = item.tracks || [];
    const artistHref = spotifyHref(item.spotify_url);
    const name = item.artist_name || `artist ${item.artist_id}`;
    const first = tracks[0];
    let embed = null;
    if (selected && player && first && first.embed_url && SPOTIFY_LINK.test(first.embed_url)) {
      embed = h("iframe", {
        className: "embed", src: first.embed_url, loading: "lazy", title: `Spotify player: ${first.name}`,
        allow: "autoplay; clipboard-write; encrypted-media; picture-in-picture", height: 80,
      });
    }
    return h("li", {
      className: `rec${selected ? " selected" : ""}`, "data-artist-id": item.artist_id,
      "data-genres": (item.genres || []).join("|"),
    },
      h("div", { className: "rec-main" },
        h("span", { className: "rank", "aria-hidden": "true" }, index === null ? "\u266A" : String(index + 1)),
        h("div", { className: "rec-body" },
          h("div", { className: "artist-line" },
            artistHref
              ? h("a", { className: "artist", href: artistHref, target: "_blank", rel: "noopener" }, name)
              : h("span", { className: "artist" }, name),
            ...(item.genres || []).slice(0, 3).map((g) => h("span", { className: "chip" }, g))),
          tracks.length
            ? h("ul", { className: "tracks" },
              tracks.map((t) => h("li", {},
                spotifyHref(t.spotify_url)
                  ? h("a", { className: "track", href: t.spotify_url, target: "_blank", rel: "noopener" }, t.name)
                  : h("span", { className: "track" }, t.name))))
            : h("p", { className: "tracks none muted small" }, "no tracks found on Spotify"),
          item.reason ? h("p", { className: "reason muted small" }, item.reason) : null),
        h("div", { className: "rec-actions" },
          h("button", {
            type: "button", className: "play", "aria-label": `Play ${name}`,
            onclick: () => play(item),
          }, "\u25B6", h("span", { className: "btn-text" }, " play")),
          h("button", {
            type: "button", className: `like${liked ? " on" : ""}`, "aria-pressed": String(liked),
            "aria-label": `Like ${name}`, onclick: () => like(item),
          }, liked ? "\u2665" : "\u2661", h("span", { className: "btn-text" }, " like")),
          h("button", {
            type: "button", className: "skip", "aria-label": `Skip ${name}`, onclick: () => skip(item),
          }, "\u00BB", h("span", { className: "btn-text" }, " skip")))),
      embed ? h("div", { className: "player" }, embed) : null);
  }

  function updateGenres() {
    const select = $("genre-select");
    const genres = new Set();
    for (const item of (state.recs && state.recs.items) || []) for (const g of item.genres || []) genres.add(g);
    for (const option of select.options) if (option.value) genres.add(option.value);
    if (state.genre) genres.add(state.genre);
    const sorted = [...genres].sort((a, b) => a.localeCompare(b)).slice(0, 200);
    select.replaceChildren(h("option", { value: "" }, "any genre"), ...sorted.map((g) => h("option", { value: g }, g)));
    select.value = state.genre;
  }

  async function sendFeedback(action, fields) {
    const sid = state.sid;
    if (!sid) throw new ApiError(0, "no session");
    return api("POST", sessionPath("/feedback"), { json: { action, ...fields } });
  }

  const trackOf = (item) => ((item.tracks || [])[0] || {}).spotify_id || "";

  async function skip(item) {
    const name = item.artist_name;
    const playing = state.selected && state.selected.artist_id === item.artist_id;
    state.skipped.add(item.artist_id);
    if (state.recs) state.recs.items = state.recs.items.filter((i) => i.artist_id !== item.artist_id);
    if (playing) state.selected = null;
    renderRecommendations();
    if (playing && state.spotify && state.spotify.connected) {
      // the artist playing on the listener's device: skip there too
      api("POST", userPath("/spotify/next")).catch((e) => fail(`Spotify: ${e.message}`));
    }
    try {
      await sendFeedback("skip", { artist_id: item.artist_id, track_id: trackOf(item) });
      say(`Skipped ${name}.`);
    } catch (e) {
      state.skipped.delete(item.artist_id);
      fail(`Skip of ${name} failed: ${e.message}`);
    }
    loadRecommendations(); // the fresh set comes on the event stream too; this covers a slow one
  }

  async function like(item) {
    if (state.liked.has(item.artist_id)) return;
    state.liked.add(item.artist_id);
    renderRecommendations();
    try {
      await sendFeedback("like", { artist_id: item.artist_id, track_id: trackOf(item) });
      say(`Liked ${item.artist_name}: more like this.`);
    } catch (e) {
      state.liked.delete(item.artist_id);
      renderRecommendations();
      fail(`Like failed: ${e.message}`);
    }
  }

  async function play(item) {
    state.selected = item;
    const track = trackOf(item);
    if (track && !$("player-toggle").checked && !(state.spotify && state.spotify.connected)) {
      $("player-toggle").checked = true;
    }
    renderRecommendations();
    try {
      await sendFeedback("play", { artist_id: item.artist_id, track_id: track });
    } catch (e) {
      fail(`Play failed: ${e.message}`);
      return;
    }
    if (state.spotify && state.spotify.connected && track) {
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

  async function setGenre(genre) {
    genre = genre.trim();
    state.genre = genre;
    updateGenres();
    if (genre) {
      try {
        await sendFeedback("genre_change", { genre });
        say(`Genre: ${genre}.`);
      } catch (e) {
        fail(`Genre change failed: ${e.message}`);
      }
    }
    loadRecommendations();
  }

  // ---------------------------------------------------------------- Spotify

  async function loadSpotify() {
    const box = $("spotify");
    try {
      state.spotify = await api("GET", userPath("/spotify"));
    } catch (e) {
      state.spotify = null;
      if (e.status === 404) {
        box.hidden = true; // this gateway has no Spotify routes
        return;
      }
      box.hidden = false;
      $("spotify-status").textContent = `Spotify status unavailable: ${e.message}`;
      return;
    }
    box.hidden = false;
    const s = state.spotify;
    const status = $("spotify-status");
    if (!s.configured) status.textContent = "Spotify is not set up on this server.";
    else if (s.connected) status.textContent = `Connected${s.display_name ? ` as ${s.display_name}` : ""}.`;
    else status.textContent = "Not connected: connect to save playlists and play on your devices.";
    $("spotify-connect").hidden = !s.configured || s.connected;
    $("spotify-save").hidden = !s.connected;
    $("spotify-disconnect").hidden = !s.connected;
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
    clearTimeout(state.spotifyWatch);
    if (times <= 0 || !state.uid) return;
    state.spotifyWatch = setTimeout(async () => {
      await loadSpotify();
      if (state.spotify && state.spotify.connected) say("Spotify connected.", "ok");
      else watchSpotify(times - 1);
    }, 2_000);
  }

  async function savePlaylist() {
    if (!state.sid) {
      fail("Start the camera first: the playlist follows a session's mood.");
      return;
    }
    const button = $("spotify-save");
    button.disabled = true;
    try {
      const made = await api("POST", userPath("/spotify/playlist"), { json: { session_id: state.sid } });
      const out = $("spotify-result");
      const link = spotifyHref(made.url);
      out.replaceChildren(`${made.created ? "Made" : "Updated"} your \u201cemotune: ${made.mood}\u201d playlist `
        + `(${made.tracks.length} tracks). `, link ? h("a", { href: link, target: "_blank", rel: "noopener" },
        "Open in Spotify") : "");
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

  // ---------------------------------------------------------------- deleting my data

  async function deleteData() {
    if (!confirm("Delete all your sessions, moods, feedback and Spotify connection? Your account stays.")) return;
    stopCamera({ endSession: false, quiet: true });
    resetSession();
    try {
      const report = await api("DELETE", userPath("/data"));
      say(`Deleted: ${report.deleted_keys} records and ${report.deleted_stream_entries} stream entries.`, "ok");
    } catch (e) {
      fail(`Delete failed: ${e.message}`);
    }
    loadSpotify();
  }

  // ---------------------------------------------------------------- wiring

  function init() {
    buildLegend();
    setCameraBadge(false);
    $("status").addEventListener("click", () => { $("status").hidden = true; });
    $("signin-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const key = $("key-input").value.trim();
      if (key) signIn(key);
    });
    $("sign-out").addEventListener("click", (e) => {
      e.preventDefault();
      signOut();
    });
    $("camera-toggle").addEventListener("click", () => {
      if (state.stream) stopCamera({ endSession: true, message: "Camera off." });
      else startCamera();
    });
    for (const radio of document.querySelectorAll("input[name=policy]")) {
      radio.addEventListener("change", () => {
        state.policy = radio.value;
        loadRecommendations();
      });
    }
    $("genre-select").addEventListener("change", () => {
      $("genre-input").value = "";
      setGenre($("genre-select").value);
    });
    $("genre-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const typed = $("genre-input").value.trim();
      $("genre-input").value = "";
      setGenre(typed || $("genre-select").value);
    });
    $("player-toggle").addEventListener("change", () => {
      if ($("player-toggle").checked && !state.selected && state.recs && state.recs.items.length) {
        state.selected = state.recs.items[0];
      }
      renderRecommendations();
    });
    $("spotify-connect").addEventListener("click", connectSpotify);
    $("spotify-save").addEventListener("click", savePlaylist);
    $("spotify-disconnect").addEventListener("click", (e) => {
      e.preventDefault();
      disconnectSpotify();
    });
    $("delete-data").addEventListener("click", deleteData);
    window.addEventListener("resize", requestDraw);
    window.addEventListener("focus", () => { if (state.uid) loadSpotify(); });
    window.addEventListener("pagehide", () => {
      // the page goes away with the camera on: end its session (keepalive outlives the page)
      if (state.stream && state.sid && state.ownSession) {
        api("DELETE", sessionPath(""), { keepalive: true }).catch(() => {});
      }
    });
    setInterval(() => { if (state.series.length) requestDraw(); }, 1000); // the time axis moves on

    const key = keyFromUrl() || storedKey();
    if (key) signIn(key);
    else showSignIn();
    window.addEventListener("hashchange", () => {
      const fresh = keyFromUrl(); // a #key=... link opened on a page already loaded
      if (fresh && fresh !== state.key) {
        if (state.key) signOut();
        signIn(fresh);
      }
    });
  }

  /** The key of a #key=... link, taken off the address bar (it goes to local storage instead). */
  function keyFromUrl() {
    const key = new URLSearchParams(location.hash.slice(1)).get("key");
    if (key) history.replaceState(null, "", location.pathname + location.search);
    return key;
  }

  init();
})();

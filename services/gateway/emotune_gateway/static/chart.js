// The mood chart: the smoothed probability of each emotion over the last minute, drawn on a canvas,
// with its legend (each emotion's latest value, the leading one in bold).

import { $, h } from "./dom.js";
import { COLORS, EMOTIONS, percent } from "./emotions.js";

const WINDOW_MS = 60_000; // the chart shows the last minute
const TAU_MS = 2_000; // time constant of the chart's smoothing (the recommender's default too)

let series = []; // [{t (ms, capture clock), v: [7 smoothed probabilities]}]
let ema = null;
let lastT = 0;
let lastSeenAt = 0; // performance.now() of the last point: the right edge moves on from there
let drawPending = false;

/** A point: smoothed here (EMA over time) unless it comes smoothed already. */
export function addPoint(t, values, smooth) {
  if (smooth && ema) {
    const dt = Math.max(50, t - lastT);
    const a = 1 - Math.exp(-dt / TAU_MS);
    ema = ema.map((v, i) => v + a * (values[i] - v));
  } else {
    ema = values.slice();
  }
  lastT = Math.max(lastT, t);
  lastSeenAt = performance.now();
  series.push({ t, v: ema.slice() });
  const oldest = lastT - WINDOW_MS - 5000;
  while (series.length && series[0].t < oldest) series.shift();
  updateLegend();
  requestDraw();
}

/** An empty chart (another session, or none). */
export function resetChart() {
  series = [];
  ema = null;
  lastT = 0;
  updateLegend();
  drawChart();
}

function requestDraw() {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => {
    drawPending = false;
    drawChart();
  });
}

export function drawChart() {
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
  if (!series.length) {
    ctx.textAlign = "center";
    ctx.fillText("waiting for a face\u2026", pad.left + pw / 2, pad.top + ph / 2);
    return;
  }
  const right = lastT + (performance.now() - lastSeenAt);
  const left = right - WINDOW_MS;
  const x = (t) => pad.left + ((t - left) / WINDOW_MS) * pw;
  const y = (v) => pad.top + ph * (1 - v);
  const top = ema ? ema.indexOf(Math.max(...ema)) : -1;
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
    for (const p of series) {
      if (p.t < left - 2000) continue;
      if (!started) ctx.moveTo(x(p.t), y(p.v[i]));
      else ctx.lineTo(x(p.t), y(p.v[i]));
      started = true;
    }
    if (series.length === 1) ctx.lineTo(x(series[0].t) - 2, y(series[0].v[i]));
    ctx.stroke();
  }
  ctx.restore();
}

function updateLegend() {
  for (const li of $("legend").children) {
    const i = EMOTIONS.indexOf(li.dataset.emotion);
    li.querySelector(".value").textContent = ema ? percent(ema[i]) : "";
    li.classList.toggle("lead", Boolean(ema) && ema[i] === Math.max(...ema));
  }
}

/** The legend, and redrawing on resize and as the time axis moves on. */
export function initChart() {
  $("legend").replaceChildren(
    ...EMOTIONS.map((e) =>
      h("li", { "data-emotion": e },
        h("span", { className: "swatch", style: `background:${COLORS[e]}`, "aria-hidden": "true" }),
        h("span", { className: "name" }, e), " ",
        h("span", { className: "value" }, ""))),
  );
  window.addEventListener("resize", requestDraw);
  setInterval(() => { if (series.length) requestDraw(); }, 1000);
}

// charts.js — two small canvases: the rolling ack latency and the robot's
// top-down pose trail. Both redraw on the next animation frame after a
// change, at the device's pixel ratio, in the colours of the stylesheet.

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

class Canvas {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.queued = false;
    new ResizeObserver(() => this.redraw()).observe(canvas);
    matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => this.redraw());
  }

  redraw() {
    if (this.queued) return;
    this.queued = true;
    requestAnimationFrame(() => {
      this.queued = false;
      const dpr = window.devicePixelRatio || 1;
      const w = this.canvas.clientWidth;
      const h = this.canvas.clientHeight;
      if (!w || !h) return;
      if (this.canvas.width !== Math.round(w * dpr) || this.canvas.height !== Math.round(h * dpr)) {
        this.canvas.width = Math.round(w * dpr);
        this.canvas.height = Math.round(h * dpr);
      }
      this.ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      this.ctx.clearRect(0, 0, w, h);
      this.draw(this.ctx, w, h);
    });
  }
}

// LatencyChart plots ack latency (ms) over the last windowMs; rejected and
// failed acks are marked in the alarm colour.
export class LatencyChart extends Canvas {
  constructor(canvas, { windowMs = 20000 } = {}) {
    super(canvas);
    this.windowMs = windowMs;
    this.samples = []; // {t, ms, bad}
    setInterval(() => {
      if (this.samples.length) this.redraw(); // scroll with time
    }, 500);
  }

  push(ms, bad = false) {
    const t = performance.now();
    this.samples.push({ t, ms, bad });
    while (this.samples.length && this.samples[0].t < t - this.windowMs) this.samples.shift();
    this.canvas.dataset.samples = String(this.samples.length);
    this.redraw();
  }

  draw(ctx, w, h) {
    const now = performance.now();
    const pad = { l: 34, r: 6, t: 6, b: 14 };
    const sorted = this.samples.map((s) => s.ms).sort((a, b) => a - b);
    const p95 = sorted.length ? sorted[Math.floor(sorted.length * 0.95)] : 0;
    const top = Math.max(50, Math.ceil((p95 * 1.3) / 50) * 50);
    const x = (t) => pad.l + (w - pad.l - pad.r) * (1 - (now - t) / this.windowMs);
    const y = (ms) => pad.t + (h - pad.t - pad.b) * (1 - Math.min(ms, top) / top);

    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = css('--muted');
    ctx.strokeStyle = css('--grid');
    ctx.lineWidth = 1;
    for (const v of [0, top / 2, top]) {
      ctx.beginPath();
      ctx.moveTo(pad.l, Math.round(y(v)) + 0.5);
      ctx.lineTo(w - pad.r, Math.round(y(v)) + 0.5);
      ctx.stroke();
      ctx.textAlign = 'right';
      ctx.textBaseline = 'middle';
      ctx.fillText(`${v}`, pad.l - 5, y(v));
    }
    ctx.textAlign = 'left';
    ctx.textBaseline = 'alphabetic';
    ctx.fillText(`last ${this.windowMs / 1000} s · ms`, pad.l, h - 2);

    const ok = this.samples.filter((s) => !s.bad);
    ctx.strokeStyle = css('--accent');
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    ok.forEach((s, i) => (i ? ctx.lineTo(x(s.t), y(s.ms)) : ctx.moveTo(x(s.t), y(s.ms))));
    ctx.stroke();
    ctx.fillStyle = css('--bad');
    for (const s of this.samples) {
      if (!s.bad) continue;
      ctx.beginPath();
      ctx.arc(x(s.t), y(s.ms), 3, 0, Math.PI * 2);
      ctx.fill();
    }
  }
}

// PoseTrail draws the robot's pose from telemetry seen from above: x forward
// (right on screen), y left (up on screen), a 1 m grid, the trail, and the
// robot as an arrow along its heading. The view fits the trail.
export class PoseTrail extends Canvas {
  constructor(canvas, { maxPoints = 2000, minStep = 0.01 } = {}) {
    super(canvas);
    this.maxPoints = maxPoints;
    this.minStep = minStep;
    this.points = []; // [x, y]
    this.pose = null; // {x, y, th}
  }

  push(x, y, th) {
    this.pose = { x, y, th: th ?? 0 };
    const last = this.points[this.points.length - 1];
    if (!last || Math.hypot(x - last[0], y - last[1]) >= this.minStep) {
      this.points.push([x, y]);
      if (this.points.length > this.maxPoints) this.points.shift();
    }
    this.canvas.dataset.points = String(this.points.length);
    this.redraw();
  }

  clear() {
    this.points = [];
    this.pose = null;
    this.canvas.dataset.points = '0';
    this.redraw();
  }

  draw(ctx, w, h) {
    let minX = -1, maxX = 1, minY = -1, maxY = 1;
    for (const [px, py] of this.points) {
      minX = Math.min(minX, px); maxX = Math.max(maxX, px);
      minY = Math.min(minY, py); maxY = Math.max(maxY, py);
    }
    const margin = 0.5;
    const scale = Math.min(w / (maxX - minX + 2 * margin), h / (maxY - minY + 2 * margin));
    const cx = (minX + maxX) / 2;
    const cy = (minY + maxY) / 2;
    const sx = (x) => w / 2 + (x - cx) * scale;
    const sy = (y) => h / 2 - (y - cy) * scale;

    const step = scale > 40 ? 1 : scale > 8 ? 5 : 25; // metres between grid lines
    ctx.strokeStyle = css('--grid');
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let gx = Math.floor((cx - w / 2 / scale) / step) * step; sx(gx) <= w; gx += step) {
      ctx.moveTo(Math.round(sx(gx)) + 0.5, 0);
      ctx.lineTo(Math.round(sx(gx)) + 0.5, h);
    }
    for (let gy = Math.floor((cy - h / 2 / scale) / step) * step; sy(gy) >= 0; gy += step) {
      ctx.moveTo(0, Math.round(sy(gy)) + 0.5);
      ctx.lineTo(w, Math.round(sy(gy)) + 0.5);
    }
    ctx.stroke();
    ctx.fillStyle = css('--muted');
    ctx.font = '11px system-ui, sans-serif';
    ctx.fillText(`grid ${step} m`, 6, h - 6);

    // origin
    ctx.strokeStyle = css('--muted');
    ctx.beginPath();
    ctx.arc(sx(0), sy(0), 3, 0, Math.PI * 2);
    ctx.stroke();

    ctx.strokeStyle = css('--accent');
    ctx.lineWidth = 2;
    ctx.lineJoin = 'round';
    ctx.beginPath();
    this.points.forEach(([px, py], i) => (i ? ctx.lineTo(sx(px), sy(py)) : ctx.moveTo(sx(px), sy(py))));
    ctx.stroke();

    if (this.pose) {
      const { x, y, th } = this.pose;
      ctx.save();
      ctx.translate(sx(x), sy(y));
      ctx.rotate(-th);
      ctx.fillStyle = css('--fg');
      ctx.beginPath();
      ctx.moveTo(11, 0);
      ctx.lineTo(-7, 7);
      ctx.lineTo(-3, 0);
      ctx.lineTo(-7, -7);
      ctx.closePath();
      ctx.fill();
      ctx.restore();
    }
  }
}

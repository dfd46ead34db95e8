// Charts: uPlot line charts (metric curves, drift over time), and two tiny
// SVG drawings (sparklines, reference-vs-current histograms).

import uPlot from "uplot";
import type { Histogram } from "./api";
import { h } from "./dom";
import { fmtNum, fmtTime } from "./format";

export const PALETTE = ["#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2", "#65a30d", "#dc2626", "#475569", "#ca8a04"];

export interface LineSeries {
  label: string;
  x: number[];
  y: Array<number | null>;
  color?: string;
  dash?: number[];
  width?: number;
}

export interface LineChartOptions {
  series: LineSeries[];
  /** x values are epoch milliseconds. */
  time?: boolean;
  xLabel?: string;
  yLabel?: string;
  height?: number;
  /** Horizontal lines drawn across the chart (e.g. a drift threshold). */
  rules?: Array<{ label: string; value: number; color?: string }>;
  testid?: string;
  /** How far a lone x value is padded on each side (default: 1 hour for time, 1 step otherwise). */
  xPad?: number;
  /** The y axis starts no lower than this (e.g. 0 for rates and latencies). */
  yFloor?: number;
}

export interface Chart {
  el: HTMLElement;
  destroy(): void;
}

/** Aligns series with different x values on one sorted x axis (nulls where a series has no point). */
function align(series: LineSeries[]): uPlot.AlignedData {
  const xs = new Set<number>();
  for (const s of series) for (const x of s.x) xs.add(x);
  const x = Array.from(xs).sort((a, b) => a - b);
  const index = new Map<number, number>();
  x.forEach((v, i) => index.set(v, i));
  const ys = series.map((s) => {
    const y: Array<number | null> = new Array<number | null>(x.length).fill(null);
    s.x.forEach((xv, i) => {
      const v = s.y[i];
      const at = index.get(xv);
      if (at !== undefined && v !== undefined && v !== null && Number.isFinite(v)) y[at] = v;
    });
    return y;
  });
  return [x, ...ys] as uPlot.AlignedData;
}

function valueFormatter(_u: uPlot, v: number | null): string {
  return v === null || v === undefined ? "–" : fmtNum(v, 5);
}

/** Pads a degenerate range (one x value, or a flat series) so a lone point sits mid-chart. */
function padRange(min: number, max: number, pad: number): uPlot.Range.MinMax {
  if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  if (min === max) return [min - pad, max + pad];
  return [min, max];
}

/**
 * A line chart that fills its container's width. Series with few points
 * show their points; rules (thresholds) are dashed horizontal lines drawn
 * across the plot and kept inside the y range. Returns a handle to destroy
 * it (frees the ResizeObserver).
 */
export function lineChart(opts: LineChartOptions): Chart {
  const el = h("div", { class: "chart", ...(opts.testid ? { testid: opts.testid } : {}) });
  const data = align(opts.series);
  const xLen = data[0].length;
  // How many x values the chart holds (the browser test reads it).
  el.dataset["points"] = String(xLen);
  const rules = (opts.rules ?? []).filter((r) => Number.isFinite(r.value));

  const series: uPlot.Series[] = [
    opts.time ? { label: opts.xLabel ?? "time", value: (_u, v) => (v === null ? "–" : fmtTime(v)) } : { label: opts.xLabel ?? "step" },
    ...opts.series.map((s, i) => {
      const color = s.color ?? PALETTE[i % PALETTE.length] ?? "#2563eb";
      const ser: uPlot.Series = {
        label: s.label,
        stroke: color,
        width: s.width ?? 1.75,
        spanGaps: true,
        value: valueFormatter,
        points: { show: xLen <= 60, size: 6, fill: color },
      };
      if (s.dash) ser.dash = s.dash;
      return ser;
    }),
  ];

  const drawRules = (u: uPlot) => {
    const ctx = u.ctx;
    ctx.save();
    ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
    ctx.lineWidth = 1.25 * devicePixelRatio;
    ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
    ctx.textAlign = "right";
    for (const r of rules) {
      const y = u.valToPos(r.value, "y", true);
      const color = r.color ?? "#dc2626";
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.beginPath();
      ctx.moveTo(u.bbox.left, y);
      ctx.lineTo(u.bbox.left + u.bbox.width, y);
      ctx.stroke();
      ctx.fillText(`${r.label} ${fmtNum(r.value, 3)}`, u.bbox.left + u.bbox.width - 4, y - 4 * devicePixelRatio);
    }
    ctx.restore();
  };

  const xPad = opts.xPad ?? (opts.time ? 3600000 : 1);
  const height = opts.height ?? 240;
  const options: uPlot.Options = {
    width: 600,
    height,
    ms: 1,
    series,
    scales: {
      // uPlot gives a lone x value a fixed range of its own: set the padded one.
      x:
        xLen === 1
          ? { time: !!opts.time, auto: false, range: padRange(data[0][0] ?? 0, data[0][0] ?? 0, xPad) }
          : { time: !!opts.time, range: (_u, min, max) => padRange(min, max, xPad) },
      y: {
        range: (_u, min, max) => {
          let lo = min;
          let hi = max;
          for (const r of rules) {
            lo = lo === null || !Number.isFinite(lo) ? r.value : Math.min(lo, r.value);
            hi = hi === null || !Number.isFinite(hi) ? r.value : Math.max(hi, r.value);
          }
          const [a, b] = padRange(lo, hi, Math.abs(lo || 1) * 0.1);
          const margin = ((b ?? 1) - (a ?? 0)) * 0.08;
          const lower = (a ?? 0) - margin;
          return [opts.yFloor !== undefined ? Math.max(opts.yFloor, lower) : lower, (b ?? 1) + margin];
        },
      },
    },
    axes: [
      {
        stroke: "#64748b",
        grid: { stroke: "#eef0f3", width: 1 },
        ticks: { stroke: "#e2e8f0", width: 1 },
        // Steps are whole numbers.
        ...(opts.time ? {} : { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6] }),
        ...(opts.xLabel && !opts.time ? { label: opts.xLabel } : {}),
      },
      {
        stroke: "#64748b",
        grid: { stroke: "#eef0f3", width: 1 },
        ticks: { stroke: "#e2e8f0", width: 1 },
        size: 64,
        ...(opts.yLabel ? { label: opts.yLabel } : {}),
      },
    ],
    legend: { live: true },
    cursor: { drag: { x: true, y: false } },
    hooks: { draw: [drawRules] },
  };
  const plot = new uPlot(options, data, el);
  const fit = () => {
    const w = el.clientWidth;
    if (w > 0 && Math.abs(w - plot.width) > 1) plot.setSize({ width: w, height });
  };
  const observer = new ResizeObserver(() => fit());
  observer.observe(el);
  requestAnimationFrame(fit);
  return {
    el,
    destroy: () => {
      observer.disconnect();
      plot.destroy();
    },
  };
}

const SVG = "http://www.w3.org/2000/svg";

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/** A small line of values (oldest first) with an optional threshold line. */
export function sparkline(values: Array<number | null>, threshold: number | null, drifted: boolean): SVGSVGElement {
  const w = 120;
  const ht = 28;
  const root = svg("svg", { viewBox: `0 0 ${w} ${ht}`, width: w, height: ht, class: "spark" });
  const finite = values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (finite.length === 0) return root;
  const lo = Math.min(0, ...finite, threshold ?? Infinity);
  const hi = Math.max(...finite, threshold ?? -Infinity);
  const span = hi - lo || 1;
  const y = (v: number) => ht - 3 - ((v - lo) / span) * (ht - 6);
  const x = (i: number) => (values.length <= 1 ? w / 2 : 2 + (i / (values.length - 1)) * (w - 4));
  if (threshold !== null && Number.isFinite(threshold)) {
    root.appendChild(svg("line", { x1: 0, x2: w, y1: y(threshold), y2: y(threshold), class: "spark-threshold" }));
  }
  let d = "";
  values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) return;
    d += `${d ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
  });
  root.appendChild(svg("path", { d, class: drifted ? "spark-line spark-bad" : "spark-line" }));
  const lastIndex = values.length - 1;
  const last = values[lastIndex];
  if (last !== null && last !== undefined && Number.isFinite(last)) {
    root.appendChild(svg("circle", { cx: x(lastIndex), cy: y(last), r: 2.5, class: drifted ? "spark-dot spark-bad" : "spark-dot" }));
  }
  return root;
}

/** Reference and current shares per bin, side by side. */
export function histogramChart(hist: Histogram): HTMLElement {
  const ref = hist.reference;
  const cur = hist.current;
  const n = Math.max(ref.length, cur.length);
  const refTotal = ref.reduce((a, b) => a + b, 0) || 1;
  const curTotal = cur.reduce((a, b) => a + b, 0) || 1;
  const shares = Array.from({ length: n }, (_, i) => [(ref[i] ?? 0) / refTotal, (cur[i] ?? 0) / curTotal] as const);
  const max = Math.max(1e-9, ...shares.flat());
  const w = 560;
  const ht = 140;
  const slot = w / Math.max(1, n);
  const bar = Math.max(1, slot / 2 - 1);
  const root = svg("svg", { viewBox: `0 0 ${w} ${ht + 18}`, class: "histogram", preserveAspectRatio: "none" });
  const label = (i: number): string => {
    if (hist.labels) return hist.labels[i] ?? "";
    const lo = hist.edges?.[i];
    const hi = hist.edges?.[i + 1];
    return `${lo === null || lo === undefined ? "-∞" : fmtNum(lo, 3)} – ${hi === null || hi === undefined ? "∞" : fmtNum(hi, 3)}`;
  };
  shares.forEach(([r, c], i) => {
    const x0 = i * slot;
    const rh = (r / max) * ht;
    const ch = (c / max) * ht;
    const g = svg("g", {});
    const title = svg("title", {});
    title.textContent = `${label(i)}: reference ${(r * 100).toFixed(1)}%, current ${(c * 100).toFixed(1)}%`;
    g.appendChild(title);
    g.appendChild(svg("rect", { x: x0 + 1, y: ht - rh, width: bar, height: rh, class: "hist-ref" }));
    g.appendChild(svg("rect", { x: x0 + 1 + bar, y: ht - ch, width: bar, height: ch, class: "hist-cur" }));
    root.appendChild(g);
  });
  root.appendChild(svg("line", { x1: 0, x2: w, y1: ht, y2: ht, class: "hist-axis" }));
  const first = svg("text", { x: 0, y: ht + 14, class: "hist-label" });
  first.textContent = label(0).slice(0, 28);
  const lastLabel = svg("text", { x: w, y: ht + 14, class: "hist-label", "text-anchor": "end" });
  lastLabel.textContent = label(n - 1).slice(0, 28);
  root.appendChild(first);
  root.appendChild(lastLabel);
  return h(
    "div",
    { class: "histogram-wrap" },
    root,
    h("div", { class: "legend-inline" }, h("span", { class: "swatch hist-ref" }), "reference", h("span", { class: "swatch hist-cur" }), "current"),
  );
}

// Chart.js configurations for the report, as plain data: the HTML report
// serializes them into the page, the PNG renderer hands them to Chart.js directly,
// so both show exactly the same chart.

import type { ChartConfiguration } from "chart.js";
import type { AnalysisResult } from "../analyze.ts";

export const METRIC_TITLES = {
  serverDelayNs: "Server delay",
  roundTripDelayNs: "Round-trip delay",
  responseTimeNs: "Response time",
} as const;
export type Metric = keyof typeof METRIC_TITLES;
export const METRICS = Object.keys(METRIC_TITLES) as Metric[];

/** Past this many samples per flow, a chart shows every k-th one (stated in its title). */
export const MAX_POINTS_PER_FLOW = 5000;
const PALETTE = [
  "#1f77b4",
  "#d62728",
  "#2ca02c",
  "#ff7f0e",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#17becf",
  "#bcbd22",
  "#7f7f7f",
];

export interface ChartSpec {
  id: string;
  config: ChartConfiguration<"line", Array<{ x: number; y: number }>>;
  /** Points per dataset, for checks and captions. */
  points: number[];
}

function flowLabel(f: AnalysisResult["flows"][number]): string {
  return `${f.transport} ${f.client} → ${f.server}${f.serverPort ? `:${f.serverPort}` : ""}`;
}

function withSamples(result: AnalysisResult, limit: number): AnalysisResult["flows"] {
  return result.flows.filter((f) => (f.responseTimeNs?.count ?? 0) > 0).slice(0, limit);
}

function baseOptions(title: string, xTitle: string, yTitle: string): ChartConfiguration<"line">["options"] {
  return {
    animation: false,
    responsive: false,
    parsing: false,
    normalized: true,
    plugins: { title: { display: true, text: title, font: { size: 15 } }, legend: { position: "bottom" } },
    scales: {
      x: { type: "linear", title: { display: true, text: xTitle } },
      y: { type: "linear", title: { display: true, text: yTitle }, beginAtZero: true },
    },
  };
}

/** One metric over time, one dataset per flow (the `maxFlows` busiest with samples). */
export function timeSeriesChart(result: AnalysisResult, metric: Metric, maxFlows = 10): ChartSpec {
  const flows = withSamples(result, maxFlows);
  let strided = false;
  const datasets = flows.map((f, i) => {
    const s = result.series.get(f.id)!;
    const n = s.timeSec.length;
    const stride = Math.max(1, Math.ceil(n / MAX_POINTS_PER_FLOW));
    if (stride > 1) strided = true;
    const data: Array<{ x: number; y: number }> = [];
    for (let k = 0; k < n; k += stride) data.push({ x: round(s.timeSec[k]!), y: round(s[metric][k]! / 1e6) });
    return {
      label: flowLabel(f),
      data,
      borderColor: PALETTE[i % PALETTE.length],
      backgroundColor: PALETTE[i % PALETTE.length],
      borderWidth: 1,
      pointRadius: 1.5,
      showLine: true,
    };
  });
  const title = `${METRIC_TITLES[metric]} per sample${strided ? ` (every k-th of more than ${MAX_POINTS_PER_FLOW} samples)` : ""}`;
  return {
    id: `series-${metric}`,
    config: {
      type: "line",
      data: { datasets },
      options: baseOptions(title, "seconds since the start of the capture", "milliseconds"),
    },
    points: datasets.map((d) => d.data.length),
  };
}

/** Cumulative distribution of one metric, one curve per flow. */
export function cdfChart(result: AnalysisResult, metric: Metric, maxFlows = 10): ChartSpec {
  const flows = withSamples(result, maxFlows);
  const datasets = flows.map((f, i) => {
    const sorted = Float64Array.from(result.series.get(f.id)![metric]).sort();
    const n = sorted.length;
    const stride = Math.max(1, Math.ceil(n / MAX_POINTS_PER_FLOW));
    const data: Array<{ x: number; y: number }> = [];
    for (let k = 0; k < n; k += stride) data.push({ x: round(sorted[k]! / 1e6), y: round((k + 1) / n) });
    if ((n - 1) % stride !== 0) data.push({ x: round(sorted[n - 1]! / 1e6), y: 1 });
    return {
      label: flowLabel(f),
      data,
      borderColor: PALETTE[i % PALETTE.length],
      backgroundColor: PALETTE[i % PALETTE.length],
      borderWidth: 1.5,
      pointRadius: 0,
      showLine: true,
      stepped: true as const,
    };
  });
  const options = baseOptions(
    `Distribution of ${METRIC_TITLES[metric].toLowerCase()} (CDF)`,
    "milliseconds",
    "fraction of samples",
  );
  return {
    id: `cdf-${metric}`,
    config: { type: "line", data: { datasets }, options },
    points: datasets.map((d) => d.data.length),
  };
}

const round = (v: number): number => Math.round(v * 1e6) / 1e6;

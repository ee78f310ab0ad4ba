// One self-contained HTML file: Chart.js inlined (no network), the data inlined,
// time series of the three delays, their distribution, the per-flow table and the
// anomaly summary. Opens from disk in any browser.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { AnalysisResult, FlowReport } from "../analyze.ts";
import { renderAnomalies } from "../format/table.ts";
import { formatCount, formatDuration } from "../format/units.ts";
import { METRICS, METRIC_TITLES, cdfChart, timeSeriesChart, type ChartSpec } from "./charts.ts";

let chartJsSource: string | undefined;
function chartJs(): string {
  // The package's exports hide dist/; find it next to the CommonJS entry point.
  const entry = createRequire(import.meta.url).resolve("chart.js");
  chartJsSource ??= readFileSync(join(dirname(entry), "chart.umd.min.js"), "utf8");
  return chartJsSource;
}

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
/** JSON that is safe inside <script>: no "</script>" or "<!--" can appear. */
const scriptJson = (v: unknown): string => JSON.stringify(v).replace(/</g, "\\u003c");

export function reportCharts(result: AnalysisResult): ChartSpec[] {
  return [
    ...METRICS.map((m) => timeSeriesChart(result, m)),
    cdfChart(result, "responseTimeNs"),
    cdfChart(result, "roundTripDelayNs"),
  ];
}

function flowRow(f: FlowReport): string {
  const cells = (s: FlowReport["serverDelayNs"]): string =>
    s
      ? [s.min, s.p50, s.p90, s.p99, s.max].map((v) => `<td>${formatDuration(v)}</td>`).join("")
      : `<td colspan="5">no samples</td>`;
  return `<tr><td>${escapeHtml(`${f.transport} [${f.client}]:${f.clientPort} → [${f.server}]:${f.serverPort}`)}</td><td>${f.layout ?? "none"}</td><td>${formatCount(f.packets.clientToServer + f.packets.serverToClient)}</td><td>${formatCount(f.responseTimeNs?.count ?? 0)}</td>${cells(f.serverDelayNs)}${cells(f.roundTripDelayNs)}${cells(f.responseTimeNs)}<td>${formatCount(f.counters.lost)}</td><td>${formatCount(f.counters.authFail)}</td></tr>`;
}

export function renderHtmlReport(result: AnalysisResult, title = `PDM report: ${result.input}`): string {
  const charts = reportCharts(result);
  const c = result.counters;
  const statHead = ["min", "p50", "p90", "p99", "max"].map((s) => `<th>${s}</th>`).join("");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1500px}
h1{font-size:20px;margin:0 0 4px}.sub{color:#555;margin-bottom:16px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(680px,1fr));gap:16px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px;background:#fff}
table{border-collapse:collapse;margin-top:16px;font-size:13px}th,td{border:1px solid #ddd;padding:3px 6px;text-align:right}
td:first-child,th:first-child{text-align:left}thead th{background:#f3f3f3}
pre{background:#f7f7f7;padding:8px;border-radius:4px}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{font-weight:600}
</style></head><body>
<h1>${escapeHtml(title)}</h1>
<div class="sub">${result.capture.format}, ${formatCount(result.capture.packets)} packets, ${formatCount(c.pdmPackets)} with usable PDM, ${result.flows.length} flows.
Delays come from the PDM fields (wire.md section 3), not from capture timestamps.</div>
<dl><dt>server delay</dt><dd>time the server took to answer (DeltaTLR of its response)</dd>
<dt>round-trip delay</dt><dd>the network's share of one exchange (DeltaTLS − DeltaTLR)</dd>
<dt>response time</dt><dd>what the client waited, end to end (DeltaTLS of its next packet)</dd></dl>
<div class="grid">${charts.map((ch) => `<div class="card"><canvas id="${ch.id}" width="680" height="360"></canvas></div>`).join("")}</div>
<table><thead><tr><th rowspan="2">flow (client → server)</th><th rowspan="2">layout</th><th rowspan="2">packets</th><th rowspan="2">samples</th>
${METRICS.map((m) => `<th colspan="5">${METRIC_TITLES[m]}</th>`).join("")}<th rowspan="2">lost</th><th rowspan="2">auth fail</th></tr>
<tr>${statHead}${statHead}${statHead}</tr></thead>
<tbody>${result.flows.map(flowRow).join("\n")}</tbody></table>
<h2 style="font-size:16px">Anomalies</h2>
<pre>${escapeHtml(renderAnomalies(result).join("\n"))}</pre>
<script>${chartJs()}</script>
<script>
const specs = ${scriptJson(charts.map((ch) => ({ id: ch.id, config: ch.config })))};
window.pdmCharts = specs.map((s) => new Chart(document.getElementById(s.id), s.config));
window.pdmReportReady = true;
</script>
</body></html>
`;
}

// JSON and CSV for machines. Field names follow the spec (serverDelayNs,
// roundTripDelayNs, responseTimeNs); all durations in nanoseconds.

import type { AnalysisResult } from "../analyze.ts";

export function renderJson(result: AnalysisResult): string {
  const { series: _series, ...rest } = result;
  return JSON.stringify(rest, null, 2);
}

const METRICS = ["serverDelayNs", "roundTripDelayNs", "responseTimeNs"] as const;
const STATS = ["count", "min", "mean", "p50", "p90", "p99", "max"] as const;

export function renderCsv(result: AnalysisResult): string {
  const header = ["flow", "transport", "client", "client_port", "server", "server_port", "layout", "packets", "pdm_packets", "lost", "reordered", "auth_fail", "replay", "malformed"];
  for (const m of METRICS) for (const s of STATS) header.push(`${snake(m)}_${s}`);
  const lines = [header.join(",")];
  for (const f of result.flows) {
    const row: Array<string | number> = [f.id, f.transport, f.client, f.clientPort, f.server, f.serverPort, f.layout ?? "", f.packets.clientToServer + f.packets.serverToClient, f.pdmPackets, f.counters.lost, f.counters.reordered, f.counters.authFail, f.counters.replay, f.counters.malformed];
    for (const m of METRICS) for (const s of STATS) row.push(f[m] ? round(f[m]![s]) : "");
    lines.push(row.join(","));
  }
  return `${lines.join("\n")}\n`;
}

const snake = (s: string): string => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const round = (v: number): number => Math.round(v * 1000) / 1000;

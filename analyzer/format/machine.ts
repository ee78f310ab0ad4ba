// JSON and CSV for machines. Field names follow the spec (serverDelayNs,
// roundTripDelayNs, responseTimeNs); all durations in nanoseconds.

import type { AnalysisResult } from "../analyze.ts";

export function renderJson(result: AnalysisResult, opts: { samples?: boolean } = {}): string {
  const { series, ...rest } = result;
  if (!opts.samples) return JSON.stringify(rest, null, 2);
  const flows = rest.flows.map((f) => {
    const s = series.get(f.id)!;
    return {
      ...f,
      samples: Array.from(s.timeSec, (t, i) => ({
        timeSec: t,
        serverDelayNs: s.serverDelayNs[i],
        roundTripDelayNs: s.roundTripDelayNs[i],
        responseTimeNs: s.responseTimeNs[i],
      })),
    };
  });
  return JSON.stringify({ ...rest, flows }, null, 2);
}

/** One row per sample: when (seconds since the capture's first packet) and the three delays. */
export function renderSamplesCsv(result: AnalysisResult): string {
  const lines = ["flow,time_s,server_delay_ns,round_trip_delay_ns,response_time_ns"];
  for (const f of result.flows) {
    const s = result.series.get(f.id)!;
    for (let i = 0; i < s.timeSec.length; i += 1) {
      lines.push(
        `${f.id},${round(s.timeSec[i]!)},${round(s.serverDelayNs[i]!)},${round(s.roundTripDelayNs[i]!)},${round(s.responseTimeNs[i]!)}`,
      );
    }
  }
  return `${lines.join("\n")}\n`;
}

const METRICS = ["serverDelayNs", "roundTripDelayNs", "responseTimeNs"] as const;
const STATS = ["count", "min", "mean", "p50", "p90", "p99", "max"] as const;

export function renderCsv(result: AnalysisResult): string {
  const header = [
    "flow",
    "transport",
    "client",
    "client_port",
    "server",
    "server_port",
    "layout",
    "packets",
    "pdm_packets",
    "lost",
    "reordered",
    "auth_fail",
    "replay",
    "malformed",
  ];
  for (const m of METRICS) for (const s of STATS) header.push(`${snake(m)}_${s}`);
  const lines = [header.join(",")];
  for (const f of result.flows) {
    const row: Array<string | number> = [
      f.id,
      f.transport,
      f.client,
      f.clientPort,
      f.server,
      f.serverPort,
      f.layout ?? "",
      f.packets.clientToServer + f.packets.serverToClient,
      f.pdmPackets,
      f.counters.lost,
      f.counters.reordered,
      f.counters.authFail,
      f.counters.replay,
      f.counters.malformed,
    ];
    for (const m of METRICS) for (const s of STATS) row.push(f[m] ? round(f[m]![s]) : "");
    lines.push(row.join(","));
  }
  return `${lines.join("\n")}\n`;
}

const snake = (s: string): string => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const round = (v: number): number => Math.round(v * 1e6) / 1e6;

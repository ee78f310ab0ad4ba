// The human report: one line per flow (worst p99 response time first), the three
// delays of wire.md section 3 as p50 / p99, then every counted anomaly.

import type { AnalysisResult, FlowReport } from "../analyze.ts";
import { formatCount, formatDuration } from "./units.ts";

const pair = (s: FlowReport["serverDelayNs"]): string => (s ? `${formatDuration(s.p50)} / ${formatDuration(s.p99)}` : "-");

export function renderTable(result: AnalysisResult, opts: { width?: number } = {}): string {
  const lines: string[] = [];
  const c = result.counters;
  lines.push(`${result.input}: ${result.capture.format}, ${formatCount(result.capture.packets)} packets, ${formatCount(c.pdmPackets)} with usable PDM, ${result.flows.length} flows`);
  lines.push("");
  const header = ["flow (client -> server)", "layout", "pkts", "samples", "server delay p50/p99", "round-trip delay p50/p99", "response time p50/p99", "loss"];
  const rows = result.flows.map((f) => [
    `${f.transport} [${f.client}]:${f.clientPort} -> [${f.server}]:${f.serverPort}`,
    f.layout ?? "none",
    formatCount(f.packets.clientToServer + f.packets.serverToClient),
    formatCount(f.responseTimeNs?.count ?? 0),
    pair(f.serverDelayNs),
    pair(f.roundTripDelayNs),
    pair(f.responseTimeNs),
    f.counters.lost > 0 ? formatCount(f.counters.lost) : "0",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]): string => r.map((cell, i) => (i >= 2 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join("  ").trimEnd();
  lines.push(fmt(header));
  lines.push(widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of rows) lines.push(fmt(r));
  if (rows.length === 0) lines.push("(no IPv6 flows)");
  lines.push("");
  lines.push(...renderAnomalies(result));
  const width = opts.width ?? Infinity;
  return lines.map((l) => (l.length > width ? `${l.slice(0, width - 1)}…` : l)).join("\n");
}

export function renderAnomalies(result: AnalysisResult): string[] {
  const c = result.counters;
  const out: string[] = [];
  const items: Array<[number, string]> = [
    [c.withoutPdm, "IPv6 packets without PDM"],
    [c.nonIpv6, "frames that are not IPv6"],
    [c.undecodable, "IPv6 packets with a malformed header chain"],
    [c.malformed, `malformed PDM options${Object.keys(result.malformedByCode).length ? ` (${Object.entries(result.malformedByCode).map(([k, v]) => `${k} ${v}`).join(", ")})` : ""}`],
    [c.authFail, "protected options that failed authentication (not reported)"],
    [c.replay, "replayed protected options (not reported)"],
    [c.noKey, "protected options without a matching key (give --keys)"],
    [c.gsoRepeats, "GSO segment repeats (counted once)"],
    [c.lost, "packets lost before the capture point (PSNTP gaps)"],
    [c.reordered, "late packets (reordering)"],
    [c.unpaired, "responses not answering the previous packet (no sample)"],
  ];
  const shown = items.filter(([n]) => n > 0);
  out.push(shown.length ? "anomalies:" : "anomalies: none");
  for (const [n, what] of shown) out.push(`  ${formatCount(n).padStart(9)}  ${what}`);
  for (const e of result.examples) out.push(`  e.g. packet ${e.number}: ${e.message}`);
  if (result.unsupportedLinkTypes.length) out.push(`  unsupported link types skipped: ${result.unsupportedLinkTypes.join(", ")}`);
  for (const w of result.capture.warnings) out.push(`warning: ${w.message} (at byte ${w.offset}, packet ${w.packet})${w === result.capture.stoppedEarly ? "; results cover the packets before it" : ""}`);
  return out;
}

// The human report: one line per flow (worst p99 response time first), the three
// delays of wire.md section 3 as p50 / p99, then every counted anomaly.

import type { AnalysisResult, FlowReport } from "../analyze.ts";
import type { LiveState } from "../live-flows.ts";
import { formatCount, formatDuration } from "./units.ts";

const pair = (s: FlowReport["serverDelayNs"]): string =>
  s ? `${formatDuration(s.p50)} / ${formatDuration(s.p99)}` : "-";

/**
 * `width`: cut longer lines (a terminal's columns). `maxFlows`: list only the worst
 * this many flows, and say how many more there are (a live table on a terminal).
 */
export function renderTable(result: AnalysisResult, opts: { width?: number; maxFlows?: number } = {}): string {
  const lines: string[] = [];
  const c = result.counters;
  lines.push(
    `${result.input}: ${result.capture.format}, ${formatCount(result.capture.packets)} packets, ${formatCount(c.pdmPackets)} with usable PDM, ${result.flows.length} flows`,
  );
  if (result.live) lines.push(liveLine(result.live));
  lines.push("");
  const header = [
    "flow (client -> server)",
    "layout",
    "pkts",
    "samples",
    "server delay p50/p99",
    "round-trip delay p50/p99",
    "response time p50/p99",
    "loss",
  ];
  const shown =
    opts.maxFlows !== undefined && result.flows.length > opts.maxFlows
      ? result.flows.slice(0, Math.max(0, opts.maxFlows))
      : result.flows;
  const rows = shown.map((f) => [
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
  const fmt = (r: string[]): string =>
    r
      .map((cell, i) => (i >= 2 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  lines.push(fmt(header));
  lines.push(widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of rows) lines.push(fmt(r));
  if (result.flows.length === 0) lines.push("(no IPv6 flows)");
  else if (shown.length < result.flows.length)
    lines.push(
      `… ${formatCount(result.flows.length - shown.length)} more flows with lower p99 response times (-f json lists them all)`,
    );
  lines.push("");
  lines.push(...renderAnomalies(result));
  const width = opts.width ?? Infinity;
  return lines.map((l) => (l.length > width ? `${l.slice(0, width - 1)}…` : l)).join("\n");
}

/** How the live capture's memory limits have acted so far, in one line. */
function liveLine(live: LiveState): string {
  const parts = [
    `tracking ${formatCount(live.trackedFlows)} flows`,
    `${formatCount(live.endedIdle)} ended after ${live.limits.idleSec} s idle`,
  ];
  if (live.endedEarly > 0)
    parts.push(
      `${formatCount(live.endedEarly)} ended early at the ${formatCount(live.limits.trackedFlows)}-flow limit (--max-flows)`,
    );
  if (live.notListed > 0)
    parts.push(
      `${formatCount(live.notListed)} ended flows not listed (--max-listed ${formatCount(live.limits.listedFlows)})`,
    );
  return `${parts.join(", ")}; percentiles within ${live.percentileAccuracy * 100} %`;
}

export function renderAnomalies(result: AnalysisResult): string[] {
  const c = result.counters;
  const out: string[] = [];
  const items: Array<[number, string]> = [
    [c.withoutPdm, "IPv6 packets without PDM"],
    [c.nonIpv6, "frames that are not IPv6"],
    [c.undecodable, "IPv6 packets with a malformed header chain"],
    [
      c.malformed,
      `malformed PDM options${
        Object.keys(result.malformedByCode).length
          ? ` (${Object.entries(result.malformedByCode)
              .map(([k, v]) => `${k} ${v}`)
              .join(", ")})`
          : ""
      }`,
    ],
    [c.authFail, "protected options that failed authentication (not reported)"],
    [c.replay, "replayed protected options (not reported)"],
    [c.noKey, "protected options without a matching key (give --keys)"],
    [c.gsoRepeats, "GSO segment repeats (counted once)"],
    [
      c.implausible,
      `samples with a delay longer than their flow had been in the capture${result.keptImplausible ? " (kept, as asked)" : " (not reported; --keep-implausible keeps them)"}`,
    ],
    [c.lost, "packets lost before the capture point (PSNTP gaps)"],
    [c.reordered, "late packets (reordering)"],
    [c.unpaired, "responses not answering the previous packet (no sample)"],
  ];
  const shown = items.filter(([n]) => n > 0);
  out.push(shown.length ? "anomalies:" : "anomalies: none");
  for (const [n, what] of shown) out.push(`  ${formatCount(n).padStart(9)}  ${what}`);
  for (const e of result.examples) out.push(`  e.g. packet ${e.number}: ${e.message}`);
  if (result.unsupportedLinkTypes.length)
    out.push(`  unsupported link types skipped: ${result.unsupportedLinkTypes.join(", ")}`);
  for (const w of result.capture.warnings)
    out.push(
      `warning: ${w.message} (at byte ${w.offset}, packet ${w.packet})${w === result.capture.stoppedEarly ? "; results cover the packets before it" : ""}`,
    );
  const notListed = result.capture.warningsNotListed ?? 0;
  if (notListed) out.push(`warning: ${formatCount(notListed)} more warnings like those above, not listed`);
  return out;
}

// The fleet metrics' own cost (metrics.md; issue 20's speed targets):
//   make bench-metrics           # or: node --import tsx bench/metrics.bench.ts
// 1. Samples recorded into the three delay histograms per second on one core, through
//    the flow handle as pdm capture --metrics records them (target: 2,000,000/s);
// 2. the time to render a full registry at the default caps (64 label sets per
//    histogram, every anomaly reason): what one scrape costs (target: under 20 ms);
// 3. the process's memory after 1,000,000 distinct peers were seen (ranked, then folded),
//    and with 20,000 flows tracked at once (their handles held, as the live analysis does).
// Writes bench/out/metrics.md.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FleetMetrics } from "../metrics/index.ts";

const resultsDir = join(import.meta.dirname, "out");
mkdirSync(resultsDir, { recursive: true });

function peer(i: number): Uint8Array {
  const a = new Uint8Array(16);
  a[0] = 0x20;
  a[1] = 0x01;
  a[2] = (i >>> 16) & 0xff;
  a[3] = (i >>> 8) & 0xff;
  a[4] = i & 0xff;
  a[15] = 1;
  return a;
}

// 1. Samples per second: 64 flows of distinct prefixes, the top 10 labelled, the rest other.
const m = new FleetMetrics({ version: "bench", layout: "bench" }, 0);
const flows = Array.from({ length: 64 }, (_, i) => m.flow(peer(i), i % 2 ? 17 : 6, 443));
for (const [i, f] of flows.entries()) for (let k = 0; k < 64 - i; k++) m.packet(f, "rx");
m.tick(10_000);
const rounds: number[] = [];
for (let round = 0; round < 5; round++) {
  const n = 2_000_000;
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) m.sample(flows[i & 63]!, 1e5 + (i & 1023) * 1e3, 2e6, 2.1e6 + (i & 1023) * 1e3);
  rounds.push(n / (Number(process.hrtime.bigint() - started) / 1e9));
}
const samplesPerSecond = rounds.sort((a, b) => b - a)[0]!;

// 2. Scrape time of a registry at the default caps: 64 label sets per histogram.
const full = new FleetMetrics({ version: "bench", layout: "bench", topPrefixes: { n: 100 } }, 0);
const many = Array.from({ length: 200 }, (_, i) => full.flow(peer(i), [6, 17, 58][i % 3]!, 443));
for (const f of many) full.packet(f, "rx");
full.tick(10_000);
for (const f of many) for (let k = 0; k < 100; k++) full.sample(f, 1e5 * (k + 1), 2e6, 3e6);
const renders: number[] = [];
let bytes = 0;
for (let i = 0; i < 20; i++) {
  const started = process.hrtime.bigint();
  bytes = (await full.render()).length;
  renders.push(Number(process.hrtime.bigint() - started) / 1e6);
}
const scrapeMs = renders.sort((a, b) => a - b)[Math.floor(renders.length / 2)]!;

// 3. Memory with 1,000,000 peers seen: each is ranked (bounded per interval) and folded.
const before = process.memoryUsage().rss;
const wide = new FleetMetrics({ version: "bench", layout: "bench" }, 0);
for (let i = 0; i < 1_000_000; i++) {
  const f = wide.flow(peer(i), 17, 443);
  wide.packet(f, "rx");
  wide.sample(f, 1e6, 1e6, 2e6);
  if (i % 100_000 === 99_999) wide.tick(((i + 1) / 100_000) * 10_000);
}
const grownMiB = (process.memoryUsage().rss - before) / 2 ** 20;

const beforeFlows = process.memoryUsage().rss;
const tracked = new FleetMetrics({ version: "bench", layout: "bench" }, 0);
const handles = Array.from({ length: 20_000 }, (_, i) => tracked.flow(peer(i), i % 2 ? 17 : 6, 443));
for (let round = 0; round < 10; round++) {
  for (const h of handles) {
    tracked.packet(h, "rx");
    tracked.sample(h, 1e6, 1e6, 2e6);
  }
  tracked.tick((round + 1) * 10_000);
}
const flowsMiB = (process.memoryUsage().rss - beforeFlows) / 2 ** 20;

const lines = [
  `# metrics benchmark (${new Date().toISOString().slice(0, 10)})`,
  "",
  "| what | figure | target |",
  "|---|---|---|",
  `| samples into the three delay histograms, one core (best of 5 x 2,000,000) | ${Math.round(samplesPerSecond).toLocaleString("en-US")}/s | 2,000,000/s: ${samplesPerSecond >= 2e6 ? "met" : "NOT met"} |`,
  `| one scrape at the cap (${full.labelSetCount} label sets per histogram, ${(bytes / 1024).toFixed(0)} KiB of text; median of 20) | ${scrapeMs.toFixed(1)} ms | under 20 ms: ${scrapeMs < 20 ? "met" : "NOT met"} |`,
  `| memory grown after 1,000,000 distinct peers (${wide.labelSetCount} label sets) | ${grownMiB.toFixed(0)} MiB | bounded |`,
  `| memory grown with 20,000 flows tracked (${tracked.labelSetCount} label sets, ${handles.length} handles) | ${flowsMiB.toFixed(0)} MiB | bounded |`,
  "",
  "Command: `make bench-metrics`.",
];
writeFileSync(join(resultsDir, "metrics.md"), `${lines.join("\n")}\n`);
console.log(lines.join("\n"));

// Live capture's analysis (AnalysisSession with live limits) against the file
// analysis, in one run.
//
//   make bench-live                 # or: node --import tsx bench/live.bench.ts [flows]
//
// 1. Memory per flow: `flows` short UDP flows (4 exchanges each) fed as records, with
//    the heap measured after a full GC: while tracked, then once every flow has ended
//    (report and histograms kept). The file analysis's exact table is the baseline.
// 2. Speed: the 1,000,000-packet RFC 8250 capture of `make bench` (generated into
//    out/bench/ if missing), analysed in this process by the exact session and the live
//    one, interleaved, 3 rounds each (live percentiles come from histograms).
// Prints the figures and writes bench/out/live.md.

import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import v8 from "node:v8";
import vm from "node:vm";
import { AnalysisSession, DEFAULT_LIVE_LIMITS, fileSource, readCapture } from "../analyzer/index.ts";
import { type PdmRecord, encodeDeltaNs } from "../pdm/index.ts";

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;
const root = join(import.meta.dirname, "..");
const flows = Number(process.argv[2] ?? 30_000);
const START_SEC = 1_700_000_000;

/** Heap and array buffers in use after a full collection. */
function heapNow(): number {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** Feed `flows` flows of 4 request/answer exchanges (3 samples each) between fd00:1::<i> and fd00:2::1. */
function feed(session: AnalysisSession): void {
  const addresses = new Uint8Array(32);
  addresses.set([0xfd, 0, 0, 1], 0);
  addresses.set([0xfd, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 16);
  const r: PdmRecord = {
    timeNs: 0,
    addresses,
    srcOffset: 0,
    dstOffset: 16,
    sport: 0,
    dport: 0,
    proto: 17,
    pdm: undefined,
    pdmError: undefined,
    number: 0,
  };
  for (let client = 0; client < flows; client += 1) {
    addresses[13] = client >>> 16;
    addresses[14] = (client >>> 8) & 0xff;
    addresses[15] = client & 0xff;
    for (let k = 0; k < 4; k += 1) {
      for (const up of [true, false]) {
        const tlr = encodeDeltaNs(up ? 0 : 1_000_000 + client);
        const tls = encodeDeltaNs(up && k > 0 ? 3_000_000 + client : 0);
        r.srcOffset = up ? 0 : 16;
        r.dstOffset = up ? 16 : 0;
        r.sport = up ? 40000 : 53;
        r.dport = up ? 53 : 40000;
        r.pdm = {
          layout: "rfc8250",
          psnTp: up ? 10 + k : 500 + k,
          psnLr: up ? (k ? 500 + k - 1 : 0) : 10 + k,
          deltaTlr: tlr.delta,
          scaleDtlr: tlr.scale,
          deltaTls: tls.delta,
          scaleDtls: tls.scale,
        };
        r.timeNs = client * 1000 + k * 10;
        r.number += 1;
        session.addRecord(r, START_SEC);
      }
    }
  }
}

function memoryPerFlow(): { exact: number; tracked: number; ended: number } {
  const limits = { idleSec: 1, trackedFlows: flows * 2, listedFlows: flows * 2 };
  let before = heapNow();
  const exact = new AnalysisSession();
  feed(exact);
  const exactBytes = (heapNow() - before) / flows;
  before = heapNow();
  const live = new AnalysisSession({ live: limits });
  feed(live);
  const tracked = (heapNow() - before) / flows;
  live.endIdle(START_SEC + 3600);
  const ended = (heapNow() - before) / flows;
  // (keep both sessions reachable until measured)
  if (exact.table.conversations.length !== flows || live.table.conversations.length !== 0)
    throw new Error("unexpected flow counts");
  return { exact: exactBytes, tracked, ended };
}

async function analyseFile(file: string, live: boolean): Promise<number> {
  const session = new AnalysisSession(live ? { live: DEFAULT_LIVE_LIMITS } : {});
  const source = await fileSource(file);
  const started = performance.now();
  const capture = await readCapture(source, (p) => session.addFrame(p));
  session.result(file, capture);
  await source.close();
  return (performance.now() - started) / 1e3;
}

const memory = memoryPerFlow();
console.log(
  `memory per flow (${flows} flows of 4 exchanges): exact ${memory.exact.toFixed(0)} B, live tracked ${memory.tracked.toFixed(0)} B, live ended ${memory.ended.toFixed(0)} B`,
);

const file = join(root, "out", "bench", "rfc8250-1000000");
if (!existsSync(`${file}.pcapng`)) {
  mkdirSync(join(root, "out", "bench"), { recursive: true });
  console.log(`generating ${file}.pcapng ...`);
  execFileSync(
    process.execPath,
    ["--import", "tsx", join(root, "scripts", "gen-fixtures.ts"), "--large", "rfc8250", "1000000", file, "128"],
    { stdio: "inherit" },
  );
}
const times = { exact: [] as number[], live: [] as number[] };
for (let round = 0; round < 3; round += 1) {
  times.exact.push(await analyseFile(`${file}.pcapng`, false));
  times.live.push(await analyseFile(`${file}.pcapng`, true));
}
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const [exactS, liveS] = [median(times.exact), median(times.live)];
console.log(
  `1,000,000 RFC 8250 packets in this process: exact ${exactS.toFixed(2)} s, live ${liveS.toFixed(2)} s (${(liveS / exactS).toFixed(2)}x), ${(1e6 / liveS / 1e3).toFixed(0)}k packets/s live`,
);

mkdirSync(join(root, "bench", "out"), { recursive: true });
writeFileSync(
  join(root, "bench", "out", "live.md"),
  `# Live analysis (${new Date().toISOString().slice(0, 10)})

| | exact (files) | live, tracked | live, ended |
|---|---|---|---|
| bytes per flow (${flows} flows of 4 exchanges) | ${memory.exact.toFixed(0)} | ${memory.tracked.toFixed(0)} | ${memory.ended.toFixed(0)} |

1,000,000 RFC 8250 packets, medians of 3 interleaved rounds: exact ${exactS.toFixed(2)} s, live ${liveS.toFixed(2)} s (${(liveS / exactS).toFixed(2)}x).
`,
);

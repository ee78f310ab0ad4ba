// Analysis on several cores. Each worker thread reads the whole capture but keeps
// only the conversations whose hash falls to it (AnalysisSession's `shard`), so a
// conversation is analysed whole and in order by one thread, exactly as the
// sequential analysis would: no cross-thread state, and the merged result is equal
// to the sequential one (a test checks it). This pays off where the per-flow work
// dominates the reading: opening protected options, one AEAD call per packet.

import { Worker } from "node:worker_threads";
import { CaptureError, PdmError } from "../../pdm/index.ts";
import { firstExamples, inReportOrder, type AnalysisResult, type AnalyzeOptions, type Shard } from "../analyze.ts";
import { emptyCounters } from "../flow-table.ts";
import type { DraftDecodeOptions } from "../../pdm/index.ts";

export interface ShardJob {
  input: string;
  keysPath: string | undefined;
  keepImplausible: boolean | undefined;
  layouts: DraftDecodeOptions | undefined;
  shard: Shard;
  /** In source mode: the .ts entry the bootstrap imports. */
  entry?: string;
}

export type ShardMessage =
  | { type: "progress"; read: number; total: number | undefined }
  | { type: "result"; result: AnalysisResult }
  | { type: "error"; name: string; message: string; hint: string | undefined };

/** The worker script: the bundle's entry, or the .ts source through a tsx bootstrap. */
function workerFor(job: ShardJob): Worker {
  const fromSources = import.meta.url.endsWith(".ts");
  if (!fromSources) return new Worker(new URL("./shard-worker.mjs", import.meta.url), { workerData: job });
  const entry = new URL("./shard-worker.ts", import.meta.url).href;
  return new Worker(new URL("./tsx-bootstrap.mjs", import.meta.url), { workerData: { ...job, entry } });
}

function runShard(job: ShardJob, onProgress: AnalyzeOptions["onProgress"], workers: Worker[]): Promise<AnalysisResult> {
  return new Promise((resolve, reject) => {
    const worker = workerFor(job);
    workers.push(worker);
    let settled = false;
    const settle = (f: () => void): void => {
      if (settled) return;
      settled = true;
      f();
      void worker.terminate();
    };
    worker.on("message", (m: ShardMessage) => {
      if (m.type === "progress") onProgress?.(m.read, m.total);
      else if (m.type === "result") settle(() => resolve(m.result));
      else settle(() => reject(new CaptureError(m.message, { hint: m.hint })));
    });
    worker.on("error", (e) =>
      settle(() =>
        reject(e instanceof PdmError ? e : new CaptureError(`analysis thread failed: ${e.message}`, { cause: e })),
      ),
    );
    worker.on("exit", (code) =>
      settle(() =>
        reject(new CaptureError(`analysis thread ${job.shard.index} exited with code ${code} before its result`)),
      ),
    );
  });
}

/** Analyse `options.input` (a file) on `threads` worker threads and merge their results. */
export async function analyzeInShards(options: AnalyzeOptions, threads: number): Promise<AnalysisResult> {
  const jobs = Array.from({ length: threads }, (_, index): ShardJob => ({
    input: options.input,
    keysPath: options.keysPath,
    keepImplausible: options.keepImplausible,
    layouts: options.layouts,
    shard: { index, count: threads },
  }));
  const workers: Worker[] = [];
  try {
    const parts = await Promise.all(jobs.map((job) => runShard(job, options.onProgress, workers)));
    return mergeShardResults(parts);
  } finally {
    for (const w of workers) void w.terminate(); // on failure, the shards still running
  }
}

/** One result from per-shard ones: flows are disjoint, counters add up, the capture is shard 0's. */
export function mergeShardResults(parts: AnalysisResult[]): AnalysisResult {
  const first = parts[0]!;
  const counters = { ...emptyCounters(), nonIpv6: 0, undecodable: 0 };
  const malformedByCode: Record<string, number> = {};
  const series: AnalysisResult["series"] = new Map();
  const unsupported = new Set<string>();
  for (const part of parts) {
    for (const k of Object.keys(counters) as Array<keyof typeof counters>) counters[k] += part.counters[k];
    for (const [code, n] of Object.entries(part.malformedByCode))
      malformedByCode[code] = (malformedByCode[code] ?? 0) + n;
    for (const [id, s] of part.series) series.set(id, s);
    for (const name of part.unsupportedLinkTypes) unsupported.add(name);
  }
  return {
    input: first.input,
    capture: first.capture,
    counters,
    malformedByCode: Object.fromEntries(Object.entries(malformedByCode).sort(([a], [b]) => (a < b ? -1 : 1))),
    examples: firstExamples(parts.flatMap((p) => p.examples)),
    unsupportedLinkTypes: [...unsupported],
    ...(first.keptImplausible && { keptImplausible: true }),
    ...inReportOrder(
      parts.flatMap((p) => p.flows),
      series,
    ),
    startSec: first.startSec,
  };
}

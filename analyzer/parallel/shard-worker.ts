// One shard of a parallel analysis (run-shards.ts), in a worker thread: the whole
// capture is read, the shard's own conversations are analysed, and the result goes
// back to the main thread with its sample arrays transferred, not copied.

import { parentPort, workerData } from "node:worker_threads";
import { analyzeCapture } from "../analyze.ts";
import type { ShardJob, ShardMessage } from "./run-shards.ts";

const job = workerData as ShardJob;
const post = (message: ShardMessage, transfer: ArrayBuffer[] = []): void => parentPort!.postMessage(message, transfer);

try {
  const result = await analyzeCapture({
    input: job.input,
    keysPath: job.keysPath,
    keepImplausible: job.keepImplausible,
    layouts: job.layouts,
    shard: job.shard,
    threads: 1,
    onProgress: job.shard.index === 0 ? (read, total) => post({ type: "progress", read, total }) : undefined,
  });
  const buffers = new Set<ArrayBuffer>();
  for (const s of result.series.values()) {
    for (const a of [s.timeSec, s.serverDelayNs, s.roundTripDelayNs, s.responseTimeNs])
      buffers.add(a.buffer as ArrayBuffer);
  }
  post({ type: "result", result }, [...buffers]);
} catch (e) {
  const error = e instanceof Error ? e : new Error(String(e));
  post({ type: "error", name: error.name, message: error.message, hint: (error as { hint?: string }).hint });
}

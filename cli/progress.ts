// A progress bar on stderr for long reads, only when stderr is a terminal
// (never in pipes, CI logs or tests).

import type cliProgressModule from "cli-progress";
import { UsageError } from "../pdm/index.ts";
import { analyzeCapture, type AnalysisResult, type AnalyzeOptions } from "../analyzer/index.ts";

type Progress = { update: (done: number, total: number | undefined) => void; stop: () => void };

/** The bar library is loaded only for a terminal: pipes and CI never pay for it. */
export async function fileProgress(label: string): Promise<Progress> {
  if (!process.stderr.isTTY) return { update: () => {}, stop: () => {} };
  const cliProgress = (await import("cli-progress")).default as typeof cliProgressModule;
  let bar: cliProgressModule.SingleBar | undefined;
  return {
    update(done, total) {
      if (!total || total < 32 * 1024 * 1024) return; // small files finish before a bar helps
      if (!bar) {
        bar = new cliProgress.SingleBar(
          {
            format: `${label} [{bar}] {percentage}% | {value}/{total} MiB | eta {eta}s`,
            stream: process.stderr,
            hideCursor: true,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(Math.ceil(total / 2 ** 20), 0);
      }
      bar.update(done >= total ? Math.ceil(total / 2 ** 20) : Math.floor(done / 2 ** 20)); // ends at 100 %
    },
    stop() {
      bar?.stop();
    },
  };
}

/** analyzeCapture with a progress bar on a terminal. */
export async function analyzeWithProgress(options: Omit<AnalyzeOptions, "onProgress">): Promise<AnalysisResult> {
  const progress = await fileProgress("reading");
  try {
    return await analyzeCapture({ ...options, onProgress: progress.update });
  } finally {
    progress.stop();
  }
}

/** The --threads option: 1 to 8 analysis threads. */
export function parseThreads(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 8)
    throw new UsageError(`--threads needs a whole number from 1 to 8, got "${value}"`);
  return n;
}

// A progress bar on stderr for long reads, only when stderr is a terminal
// (never in pipes, CI logs or tests).

import cliProgress from "cli-progress";
import { analyzeCapture, type AnalysisResult, type AnalyzeOptions } from "../analyzer/index.ts";

export function fileProgress(label: string): { update: (done: number, total: number | undefined) => void; stop: () => void } {
  if (!process.stderr.isTTY) return { update: () => {}, stop: () => {} };
  let bar: cliProgress.SingleBar | undefined;
  return {
    update(done, total) {
      if (!total || total < 32 * 1024 * 1024) return; // small files finish before a bar helps
      if (!bar) {
        bar = new cliProgress.SingleBar(
          { format: `${label} [{bar}] {percentage}% | {value}/{total} MiB | eta {eta}s`, stream: process.stderr, hideCursor: true },
          cliProgress.Presets.shades_classic,
        );
        bar.start(Math.ceil(total / 2 ** 20), 0);
      }
      bar.update(Math.floor(done / 2 ** 20));
    },
    stop() {
      bar?.stop();
    },
  };
}

/** analyzeCapture with a progress bar on a terminal. */
export async function analyzeWithProgress(options: Omit<AnalyzeOptions, "onProgress">): Promise<AnalysisResult> {
  const progress = fileProgress("reading");
  try {
    return await analyzeCapture({ ...options, onProgress: progress.update });
  } finally {
    progress.stop();
  }
}

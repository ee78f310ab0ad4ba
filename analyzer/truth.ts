// Compare what the analyzer measured with what a generator or the demo injected.
// The truth file lists, per flow, every (response, next request) pair with its exact
// server delay, round-trip delay and response time in ns.

import { readFileSync } from "node:fs";
import type { AnalysisResult, FlowReport } from "./analyze.ts";
import { summarize, type Summary } from "./stats.ts";

export interface TruthFile {
  description?: string;
  layout: string;
  flows: Array<{
    transport: string;
    client: string;
    server: string;
    clientPort: number;
    serverPort: number;
    responsesLost: number;
    samples: Array<{ psnTp: number; serverDelayNs: number; roundTripDelayNs: number; responseTimeNs: number }>;
  }>;
}

export function readTruth(path: string): TruthFile {
  return JSON.parse(readFileSync(path, "utf8")) as TruthFile;
}

export interface MetricComparison {
  metric: "serverDelayNs" | "roundTripDelayNs" | "responseTimeNs";
  injected: Summary | undefined;
  measured: Summary | undefined;
  /** measured mean - injected mean, ns. */
  errorNs: number;
}

export interface FlowComparison {
  flow: TruthFile["flows"][number];
  report: FlowReport | undefined;
  samplesInjected: number;
  samplesMeasured: number;
  metrics: MetricComparison[];
}

const METRICS = ["serverDelayNs", "roundTripDelayNs", "responseTimeNs"] as const;

export function compareWithTruth(result: AnalysisResult, truth: TruthFile): FlowComparison[] {
  return truth.flows.map((flow) => {
    const report = result.flows.find(
      (f) =>
        f.client === flow.client &&
        f.server === flow.server &&
        f.clientPort === flow.clientPort &&
        f.serverPort === flow.serverPort &&
        f.transport === flow.transport,
    );
    return {
      flow,
      report,
      samplesInjected: flow.samples.length,
      samplesMeasured: report?.responseTimeNs?.count ?? 0,
      metrics: METRICS.map((metric) => {
        const injected = summarize(Float64Array.from(flow.samples.map((s) => s[metric])));
        const measured = report?.[metric];
        return { metric, injected, measured, errorNs: (measured?.mean ?? NaN) - (injected?.mean ?? NaN) };
      }),
    };
  });
}

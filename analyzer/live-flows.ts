// What keeps a live capture's memory bounded however long it runs and however many
// flows pass: limits on the flows tracked and listed, and the store of flows that
// have ended (gone idle, or pushed out by the tracking limit).
//
// A tracked conversation holds its pairing state (up to about 50 KiB for a long flow)
// and its delays as histograms (delay-histogram.ts, a few KiB at most). When it ends
// only its report and histograms are kept, merged with the flow's earlier reports if
// it had ended before, and at most `listedFlows` of them: the worst by p99 response
// time, as the table shows them. Every packet stays in the totals.

import { DelayHistograms } from "./delay-histogram.ts";
import { mergeFlowReports, type FlowDelays, type FlowReport } from "./flow-report.ts";

export interface LiveLimits {
  /** A flow without a packet for this long ends (its report is kept). */
  idleSec: number;
  /** Flows tracked at once; past it, the longest idle end early. */
  trackedFlows: number;
  /** Ended flows listed in the report, the worst p99 response times first. */
  listedFlows: number;
}

export const DEFAULT_LIVE_LIMITS: LiveLimits = { idleSec: 60, trackedFlows: 20_000, listedFlows: 10_000 };

/** What a live result says about the limits (AnalysisResult.live). */
export interface LiveState {
  limits: LiveLimits;
  /** Flows tracked now. */
  trackedFlows: number;
  /** Flows that ended idle, and those ended early by the tracking limit. */
  endedIdle: number;
  endedEarly: number;
  /** Ended flows dropped from the list (their packets are in the totals). */
  notListed: number;
  /** Every percentile is within this fraction of the exact value. */
  percentileAccuracy: number;
}

export function delaysOf(h: DelayHistograms): FlowDelays {
  return {
    serverDelayNs: h.serverDelayNs.summary(),
    roundTripDelayNs: h.roundTripDelayNs.summary(),
    responseTimeNs: h.responseTimeNs.summary(),
  };
}

interface EndedFlow {
  report: FlowReport;
  delays: DelayHistograms;
}

/** The reports of ended flows, by flow id, at most `limit` of them once trimmed. */
export class EndedFlows {
  private readonly byId = new Map<string, EndedFlow>();
  /** Ended flows dropped from the list. */
  notListed = 0;

  constructor(private readonly limit: number) {}

  get size(): number {
    return this.byId.size;
  }

  add(report: FlowReport, delays: DelayHistograms): void {
    const held = this.byId.get(report.id);
    if (held) {
      held.delays.merge(delays);
      held.report = mergeFlowReports(held.report, report, delaysOf(held.delays));
      return;
    }
    this.byId.set(report.id, { report, delays });
    // Trimmed in batches: a sort per ended flow would cost more than the flows.
    if (this.byId.size >= 2 * this.limit) this.trim();
  }

  /** Keep the `limit` worst flows (by p99 response time, then PDM packets, then latest). */
  trim(): void {
    if (this.byId.size <= this.limit) return;
    const worstFirst = [...this.byId.values()].sort(
      (a, b) =>
        (b.report.responseTimeNs?.p99 ?? -1) - (a.report.responseTimeNs?.p99 ?? -1) ||
        b.report.pdmPackets - a.report.pdmPackets ||
        b.report.lastSec - a.report.lastSec,
    );
    for (const dropped of worstFirst.slice(this.limit)) this.byId.delete(dropped.report.id);
    this.notListed += worstFirst.length - this.limit;
  }

  /**
   * Every listed flow's report: the ended ones, each merged with the still-tracked
   * conversation of the same flow if there is one, then the other tracked ones.
   */
  reports(tracked: Array<{ report: FlowReport; delays: DelayHistograms }>): FlowReport[] {
    this.trim();
    const trackedById = new Map(tracked.map((t) => [t.report.id, t]));
    const out: FlowReport[] = [];
    for (const { report, delays } of this.byId.values()) {
      const now = trackedById.get(report.id);
      if (!now) {
        out.push(report);
        continue;
      }
      trackedById.delete(report.id);
      const whole = new DelayHistograms();
      whole.merge(delays);
      whole.merge(now.delays);
      out.push(mergeFlowReports(report, now.report, delaysOf(whole)));
    }
    for (const t of trackedById.values()) out.push(t.report);
    return out;
  }
}

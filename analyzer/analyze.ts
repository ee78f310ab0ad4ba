// Capture file in, per-flow PDM metrics out. Reads the capture as a stream,
// turns each IPv6 frame into a PdmRecord and feeds the flow table.

import {
  CaptureError,
  KeyRing,
  SUPPORTED_LINKTYPES,
  emptyIpv6Packet,
  emptyPdmRecord,
  ipv6Offset,
  linkTypeName,
  parseIpv6Into,
  readKeyLog,
  type CapturedPacket,
  type DraftDecodeOptions,
  type PdmRecord,
} from "../pdm/index.ts";
import { fileSource, streamSource, type ByteSource } from "./capture/byte-source.ts";
import { readCapture, type CaptureSummary } from "./capture/reader.ts";
import {
  FlowTable,
  conversationHash,
  type Conversation,
  type Counters,
  type FlowObserver,
  type SampleSink,
} from "./flow-table.ts";
import { flowReport, type FlowReport } from "./flow-report.ts";
import { DelayHistograms, RELATIVE_ACCURACY } from "./delay-histogram.ts";
import { EndedFlows, delaysOf, type LiveLimits, type LiveState } from "./live-flows.ts";
import { analyzeInShards } from "./parallel/run-shards.ts";
import { aeadBackend } from "./aead-native/index.ts";
import { availableParallelism } from "node:os";
import { statSync } from "node:fs";
import { DelaySamples, SAMPLE, summarize } from "./stats.ts";

export type { FlowReport } from "./flow-report.ts";

export interface AnalyzeOptions {
  /** Capture path, or "-" for stdin. */
  input: string;
  keysPath?: string;
  onProgress?: (bytesRead: number, totalBytes: number | undefined) => void;
  /**
   * Worker threads for a file input (run-shards.ts); 1 analyses in this thread.
   * Default: every core when a key log is given and the file is large enough for
   * decryption to dominate, else 1.
   */
  threads?: number;
  /** Analyse only this shard's conversations (set by run-shards.ts in each worker). */
  shard?: Shard;
  /** Keep implausible samples in the statistics (flow-table.ts IMPLAUSIBLE_SLACK_NS); counted either way. */
  keepImplausible?: boolean;
  /** How to read the later drafts' layouts: 0x0F/18 as B, layout E's type (draft-layouts.md). */
  layouts?: DraftDecodeOptions;
}

/** Below this, starting threads costs more than it saves. */
const PARALLEL_MIN_BYTES = 8 * 1024 * 1024;
const MAX_THREADS = 8;

function defaultThreads(options: AnalyzeOptions, size: number | undefined): number {
  if (!options.keysPath || size === undefined || size < PARALLEL_MIN_BYTES) return 1;
  return Math.min(availableParallelism(), MAX_THREADS);
}

/**
 * One of `count` workers analysing the same capture: it keeps the conversations
 * whose hash falls to `index` (both directions of a conversation hash alike), so
 * every flow is analysed whole, in order, by exactly one shard.
 */
export interface Shard {
  index: number;
  count: number;
}

/** One flow's samples as parallel arrays (charts, sample output): row i of each is one request. */
export interface FlowSeries {
  timeSec: Float64Array;
  serverDelayNs: Float64Array;
  roundTripDelayNs: Float64Array;
  responseTimeNs: Float64Array;
}

export interface AnalysisResult {
  input: string;
  capture: CaptureSummary;
  counters: Counters & { nonIpv6: number; undecodable: number };
  malformedByCode: Record<string, number>;
  /** The first problems of the input by packet number, then the first implausible samples (kind "implausible"). */
  examples: Array<{ number: number; message: string; kind?: "implausible" }>;
  unsupportedLinkTypes: string[];
  /** Whether implausible samples were kept in the statistics (--keep-implausible). */
  keptImplausible?: boolean;
  flows: FlowReport[];
  /** Per-sample series for charts: parallel arrays per flow id (empty in a live capture). */
  series: Map<string, FlowSeries>;
  startSec: number;
  /** Live captures only: what the memory limits did, and how exact the percentiles are. */
  live?: LiveState;
}

const NO_SAMPLES: FlowSeries = {
  timeSec: new Float64Array(0),
  serverDelayNs: new Float64Array(0),
  roundTripDelayNs: new Float64Array(0),
  responseTimeNs: new Float64Array(0),
};

/**
 * The source-agnostic core: frames (from a file or live libpcap) or ready PdmRecords
 * (from the eBPF ring buffer) in, an AnalysisResult out whenever asked.
 */
export class AnalysisSession {
  readonly table: FlowTable<SampleSink>;
  private nonIpv6 = 0;
  private undecodable = 0;
  private readonly examples: Array<{ number: number; message: string }> = [];
  private readonly unsupported = new Set<number>();
  private startSec: number | undefined;
  private startNsec = 0;
  private readonly ipv6 = emptyIpv6Packet(); // reused for every packet
  private readonly record: PdmRecord = emptyPdmRecord();

  private readonly shard: Shard | undefined;
  private readonly keepImplausible: boolean;
  private readonly layouts: DraftDecodeOptions;
  /** Counts what belongs to no flow (non-IPv6, undecodable): the only or the first shard. */
  private readonly countsUnflowed: boolean;

  /** Live captures: the limits, and where ended flows go (live-flows.ts). */
  private readonly live: { limits: LiveLimits; ended: EndedFlows; endedIdle: number; endedEarly: number } | undefined;

  /**
   * `live`: the input never ends (live capture), so memory must stay bounded: each
   * conversation keeps histograms instead of every sample, and flows end when idle
   * (endIdle) or when too many are tracked.
   */
  constructor(
    options: {
      keyRing?: KeyRing;
      shard?: Shard;
      live?: LiveLimits;
      keepImplausible?: boolean;
      observer?: FlowObserver;
      layouts?: DraftDecodeOptions;
    } = {},
  ) {
    this.table = new FlowTable<SampleSink>({
      keyRing: options.keyRing,
      observer: options.observer,
      keepImplausible: options.keepImplausible,
      newSamples: options.live ? () => new DelayHistograms() : () => new DelaySamples(),
    });
    this.shard = options.shard && options.shard.count > 1 ? options.shard : undefined;
    this.keepImplausible = options.keepImplausible ?? false;
    this.layouts = options.layouts ?? {};
    this.countsUnflowed = !this.shard || this.shard.index === 0;
    this.live = options.live && {
      limits: options.live,
      ended: new EndedFlows(options.live.listedFlows),
      endedIdle: 0,
      endedEarly: 0,
    };
  }

  /** One captured frame; its link type says where the IPv6 header starts. */
  addFrame(p: CapturedPacket): void {
    if (this.startSec === undefined) {
      this.startSec = p.tsSec;
      this.startNsec = p.tsNsec;
    }
    const at = ipv6Offset(p.linkType, p.buffer, p.end - p.start, p.start);
    if (at < 0) {
      // (-1 as well for a link type we cannot read: asked only then, not per packet)
      if (this.countsUnflowed) {
        if (!SUPPORTED_LINKTYPES.has(p.linkType)) this.unsupported.add(p.linkType);
        this.nonIpv6 += 1;
      }
      return;
    }
    const v = this.ipv6;
    const error = parseIpv6Into(p.buffer, at, p.end, v, this.layouts);
    if (error) {
      if (!this.countsUnflowed) return;
      this.undecodable += 1;
      // Offsets in messages count from the frame's first byte, as Wireshark shows them.
      if (this.examples.length < 5)
        this.examples.push({ number: p.number, message: error.relativeTo(p.start).message });
      return;
    }
    const record = this.record;
    record.timeNs = (p.tsSec - this.startSec) * 1e9 + (p.tsNsec - this.startNsec);
    record.addresses = p.buffer;
    record.srcOffset = v.srcOffset;
    record.dstOffset = v.dstOffset;
    record.sport = v.sport;
    record.dport = v.dport;
    record.proto = v.protocol;
    record.pdm = v.pdm;
    record.pdmError = v.pdmError && v.pdmError.relativeTo(p.start);
    record.number = p.number;
    const hash = conversationHash(record);
    if (this.shard && hash % this.shard.count !== this.shard.index) return; // another shard's flow
    this.table.add(record, hash); // (the table would compute the same hash)
    if (this.live && this.table.conversations.length > this.live.limits.trackedFlows) this.endLongestIdle();
  }

  /** A record that is already decoded (eBPF events). `startSec` anchors its timeNs. */
  addRecord(r: PdmRecord, startSec?: number): void {
    if (this.startSec === undefined && startSec !== undefined) {
      this.startSec = Math.floor(startSec);
      this.startNsec = Math.round((startSec - this.startSec) * 1e9);
    }
    this.table.add(r);
    if (this.live && this.table.conversations.length > this.live.limits.trackedFlows) this.endLongestIdle();
  }

  private get startSecExact(): number {
    return (this.startSec ?? 0) + this.startNsec / 1e9;
  }

  /**
   * Live: end the flows without a packet in the `idleSec` before `nowSec` (Unix
   * seconds, the clock of the packets' timestamps). Returns how many ended.
   */
  endIdle(nowSec: number): number {
    if (!this.live || this.startSec === undefined) return 0;
    const cutoffNs = (nowSec - this.live.limits.idleSec - this.startSecExact) * 1e9;
    const ended = this.table.remove(
      (c) => c.lastNs < cutoffNs,
      (c) => this.keepEnded(c),
    );
    this.live.endedIdle += ended;
    return ended;
  }

  /** Past the tracking limit: end the longest idle tenth, so that this runs once per many new flows. */
  private endLongestIdle(): void {
    const live = this.live!;
    const all = this.table.conversations;
    const keep = Math.floor(live.limits.trackedFlows * 0.9);
    const oldest = new Set([...all].sort((a, b) => a.lastNs - b.lastNs).slice(0, all.length - keep));
    live.endedEarly += this.table.remove(
      (c) => oldest.has(c),
      (c) => this.keepEnded(c),
    );
  }

  private keepEnded(c: Conversation<SampleSink>): void {
    if (!(c.samples instanceof DelayHistograms)) return; // (live sessions only)
    this.live!.ended.add(flowReport(c, delaysOf(c.samples), this.startSecExact), c.samples);
  }

  result(input: string, capture: CaptureSummary): AnalysisResult {
    const startSec = this.startSecExact;
    const flows: FlowReport[] = [];
    const series: AnalysisResult["series"] = new Map();
    const tracked: Array<{ report: FlowReport; delays: DelayHistograms }> = [];
    for (const c of this.table.conversations) {
      const s = c.samples;
      if (s instanceof DelayHistograms) {
        tracked.push({ report: flowReport(c, delaysOf(s), startSec), delays: s });
      } else if (s instanceof DelaySamples) {
        const samples = {
          timeSec: s.column(SAMPLE.timeNs, 1e9),
          serverDelayNs: s.column(SAMPLE.serverDelayNs),
          roundTripDelayNs: s.column(SAMPLE.roundTripDelayNs),
          responseTimeNs: s.column(SAMPLE.responseTimeNs),
        };
        const report = flowReport(
          c,
          {
            serverDelayNs: summarize(samples.serverDelayNs),
            roundTripDelayNs: summarize(samples.roundTripDelayNs),
            responseTimeNs: summarize(samples.responseTimeNs),
          },
          startSec,
        );
        flows.push(report);
        series.set(report.id, samples);
      }
    }
    const live = this.live;
    if (live) {
      for (const report of live.ended.reports(tracked)) {
        flows.push(report);
        series.set(report.id, NO_SAMPLES);
      }
    }
    return {
      input,
      capture,
      counters: { ...this.table.counters, nonIpv6: this.nonIpv6, undecodable: this.undecodable },
      malformedByCode: Object.fromEntries([...this.table.malformedByCode].sort(([a], [b]) => (a < b ? -1 : 1))),
      examples: firstExamples([...this.examples, ...this.table.firstMalformed, ...this.table.firstImplausible]),
      unsupportedLinkTypes: [...this.unsupported].map(linkTypeName),
      ...(this.keepImplausible && { keptImplausible: true }),
      ...inReportOrder(flows, series),
      startSec,
      ...(live && {
        live: {
          limits: live.limits,
          trackedFlows: this.table.conversations.length,
          endedIdle: live.endedIdle,
          endedEarly: live.endedEarly,
          notListed: live.ended.notListed,
          percentileAccuracy: RELATIVE_ACCURACY,
        },
      }),
    };
  }
}

/** The first five problems of the input by packet number, then the first two implausible samples. */
export function firstExamples(examples: AnalysisResult["examples"]): AnalysisResult["examples"] {
  const byNumber = (a: { number: number }, b: { number: number }): number => a.number - b.number;
  const problems = examples
    .filter((e) => e.kind !== "implausible")
    .sort(byNumber)
    .slice(0, 5);
  return [
    ...problems,
    ...examples
      .filter((e) => e.kind === "implausible")
      .sort(byNumber)
      .slice(0, 2),
  ];
}

/**
 * Flows worst first (by response-time p99, then by PDM packets, then by first
 * appearance and id, so that the order never depends on how the work was split),
 * and their series in the same order.
 */
export function inReportOrder(
  flows: FlowReport[],
  series: AnalysisResult["series"],
): Pick<AnalysisResult, "flows" | "series"> {
  const sorted = [...flows].sort(
    (a, b) =>
      (b.responseTimeNs?.p99 ?? -1) - (a.responseTimeNs?.p99 ?? -1) ||
      b.pdmPackets - a.pdmPackets ||
      a.firstSec - b.firstSec ||
      (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  );
  const ordered: AnalysisResult["series"] = new Map();
  for (const f of sorted) ordered.set(f.id, series.get(f.id)!);
  return { flows: sorted, series: ordered };
}

export async function analyzeCapture(options: AnalyzeOptions): Promise<AnalysisResult> {
  const keyRing = options.keysPath ? new KeyRing(readKeyLog(options.keysPath), aeadBackend().backend) : undefined;
  let source: ByteSource;
  try {
    source = options.input === "-" ? streamSource(process.stdin) : await fileSource(options.input);
  } catch (cause) {
    throw new CaptureError(`cannot open capture ${options.input}: ${(cause as Error).message}`, { cause });
  }
  const threads = options.shard
    ? 1
    : Math.max(1, Math.min(MAX_THREADS, Math.floor(options.threads ?? defaultThreads(options, source.size))));
  // Shards each read the file from the start: only a regular file can be read twice
  // (a FIFO would hand each shard a different part of the stream).
  if (threads > 1 && options.input !== "-" && statSync(options.input).isFile()) {
    await source.close();
    return analyzeInShards(options, threads);
  }
  const session = new AnalysisSession({
    keyRing,
    shard: options.shard,
    keepImplausible: options.keepImplausible,
    layouts: options.layouts,
  });
  let capture: CaptureSummary;
  try {
    capture = await readCapture(source, (p) => session.addFrame(p), { onProgress: options.onProgress });
  } finally {
    await source.close();
  }
  return session.result(options.input, capture);
}

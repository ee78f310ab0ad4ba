// A host's PDM figures as bounded metrics (metrics.md): every sample of the three delays
// observed into histograms labelled by peer prefix and transport, with the cardinality
// held in the host before any exporter sees it: the top-N prefixes (top-prefixes.ts)
// and `other`, a cap on label sets per metric, and label sets idle past a TTL removed.
// The registry is prom-client's; the Prometheus endpoint (prometheus-endpoint.ts)
// renders it. Hot path: a flow's handle caches its prefix, each label set its
// histogram children, and the clock is the last tick's, not a system call per sample.

import { Counter, Gauge, Registry, type Metric } from "prom-client";
import { UsageError } from "../pdm/index.ts";
import {
  ANOMALY_REASONS,
  DEFAULT_BUCKETS_SECONDS,
  DELAY_METRICS,
  METRIC,
  OTHER,
  transportLabel,
  type AnomalyReason,
} from "./instruments.ts";
import { DelayHistogramCollector, emptyCounts, observe, type HistogramCounts } from "./delay-histogram.ts";
import { PeerPrefixes, type NamedPrefix } from "./peer-prefix.ts";
import { TopPrefixes, type TopPrefixesOptions } from "./top-prefixes.ts";

export interface FleetMetricsOptions {
  /** Peers are grouped by this prefix length (default 48). */
  prefixLength?: number;
  /** Names for prefixes (a CIDR map); first match wins. */
  prefixNames?: NamedPrefix[];
  /** Top-N peer prefixes: N (default 10), window, margin, leave-after. */
  topPrefixes?: TopPrefixesOptions;
  /** The top-N ranking's interval (default 10 s). */
  intervalMs?: number;
  /** Label sets per metric at most (default 64); the excess folds into `other` and is counted. */
  maxLabelSets?: number;
  /** A label set with no sample this long is removed (default 10 min). */
  ttlMs?: number;
  /** server_port label: only these ports, the rest `other` (default: no such label). */
  serverPorts?: number[];
  /** Histogram buckets in seconds (default metrics.md 3). */
  buckets?: number[];
  /** pdm_build_info's labels. */
  version: string;
  layout: string;
}

type Labels = Record<string, string>;

interface LabelSet {
  labels: Labels;
  /** The three histograms' counts, in DELAY_METRICS order. */
  delays: [HistogramCounts, HistogramCounts, HistogramCounts];
  lastMs: number;
}

/** One flow as the metrics see it: its peer's prefix, transport and server port, found once. */
export interface MetricsFlow {
  readonly prefix: string;
  readonly transport: string;
  readonly serverPort: string | undefined;
}

/** Where samples go as well when OTLP is configured (otlp-export.ts). */
export interface OtlpSink {
  sample(labels: Record<string, string>, serverDelayNs: number, roundTripDelayNs: number, responseTimeNs: number): void;
  packet(direction: "tx" | "rx"): void;
}

/** The totals the OTLP path observes: what the Prometheus path holds in its counters and gauges. */
export interface MetricsSnapshot {
  flowsTracked: number;
  anomalies: Record<string, number>;
  eventsLost: number;
  overflow: Record<string, number>;
  keyGeneration: number | undefined;
}

export const DEFAULTS = {
  prefixLength: 48,
  intervalMs: 10_000,
  maxLabelSets: 64,
  ttlMs: 10 * 60_000,
} as const;

export class FleetMetrics {
  readonly registry = new Registry();
  private readonly prefixes: PeerPrefixes;
  private readonly top: TopPrefixes;
  private readonly intervalMs: number;
  private readonly maxLabelSets: number;
  private readonly ttlMs: number;
  private readonly serverPorts: Set<number> | undefined;
  private readonly buckets: readonly number[];
  private readonly packets: { tx: ReturnType<Counter["labels"]>; rx: ReturnType<Counter["labels"]> };
  private readonly anomalies: Counter;
  private readonly eventsLost: Counter;
  private readonly overflow: Counter;
  private readonly flows: Gauge;
  private readonly generation: Gauge;
  private readonly sets = new Map<string, LabelSet>();
  private readonly anomalyTotals = new Map<AnomalyReason, number>();
  private eventsLostTotal = 0;
  private nowMs: number;
  private intervalStartMs: number;
  /** Called before each scrape, to set the gauges and totals that are read rather than counted. */
  beforeScrape: (() => void) | undefined;
  /** Set while OTLP export runs. */
  otlp: OtlpSink | undefined;
  private flowsTrackedNow = 0;
  private keyGenerationNow: number | undefined;
  private readonly anomalyCounts = new Map<string, number>(ANOMALY_REASONS.map((r) => [r, 0]));
  private eventsLostCount = 0;
  private readonly overflowCounts = new Map<string, number>(DELAY_METRICS.map((m) => [m, 0]));

  constructor(options: FleetMetricsOptions, nowMs = Date.now()) {
    this.prefixes = new PeerPrefixes(options.prefixLength ?? DEFAULTS.prefixLength, options.prefixNames);
    this.top = new TopPrefixes(options.topPrefixes);
    this.intervalMs = positive(options.intervalMs ?? DEFAULTS.intervalMs, "the top-N interval");
    this.maxLabelSets = positive(options.maxLabelSets ?? DEFAULTS.maxLabelSets, "the label set cap");
    this.ttlMs = positive(options.ttlMs ?? DEFAULTS.ttlMs, "the label set TTL");
    this.serverPorts = options.serverPorts ? new Set(options.serverPorts) : undefined;
    this.nowMs = nowMs;
    this.intervalStartMs = nowMs;
    const buckets = [...(options.buckets ?? DEFAULT_BUCKETS_SECONDS)];
    if (buckets.some((b, i) => !(b > 0) || (i > 0 && b <= buckets[i - 1]!)))
      throw new UsageError(`histogram buckets must be positive and ascending, got ${buckets.join(", ")}`);
    this.buckets = buckets;
    const help = {
      [METRIC.serverDelay]: "PDM server delay samples (DeltaTLR), seconds",
      [METRIC.roundTripDelay]: "PDM round-trip delay samples (DeltaTLS - DeltaTLR), seconds",
      [METRIC.responseTime]: "PDM response time samples (DeltaTLS), seconds",
    };
    const registers = [this.registry];
    DELAY_METRICS.forEach((name, i) => {
      const series = () => [...this.sets.values()].map((set) => ({ labels: set.labels, counts: set.delays[i]! }));
      // A collector of its own (delay-histogram.ts) in prom-client's registry.
      this.registry.registerMetric(new DelayHistogramCollector(name, help[name], buckets, series) as unknown as Metric);
    });
    const packets = new Counter({
      name: METRIC.packets,
      help: "PDM packets, by direction (tx: stamped by this host, rx: received)",
      labelNames: ["direction"],
      registers,
    });
    this.packets = { tx: packets.labels("tx"), rx: packets.labels("rx") };
    this.anomalies = new Counter({
      name: METRIC.anomalies,
      help: "Packets the data path or the analysis could not measure, by reason",
      labelNames: ["reason"],
      registers,
    });
    this.eventsLost = new Counter({
      name: METRIC.eventsLost,
      help: "Measurement records the kernel's ring buffer dropped",
      registers,
    });
    this.overflow = new Counter({
      name: METRIC.seriesOverflow,
      help: "Samples folded into other by the label set cap, by metric",
      labelNames: ["metric"],
      registers,
    });
    this.flows = new Gauge({ name: METRIC.flowsTracked, help: "Flows this host tracks now", registers });
    this.generation = new Gauge({
      name: METRIC.keyGeneration,
      help: "The key generation in use (protected layout)",
      registers,
    });
    new Gauge({
      name: METRIC.buildInfo,
      help: "The pdm release and layout of this host",
      labelNames: ["version", "layout"],
      registers,
    }).set({ version: options.version, layout: options.layout }, 1);
    // Every reason is exported from the start, at 0: a rate over a series that appears
    // late misses its first increase.
    for (const reason of ANOMALY_REASONS) this.anomalies.inc({ reason }, 0);
  }

  /** A flow's view for the metrics: `peer` is the other end's 16-byte address, `proto` its protocol. */
  flow(peer: Uint8Array, proto: number, serverPort: number): MetricsFlow {
    return {
      prefix: this.prefixes.of(peer),
      transport: transportLabel(proto),
      serverPort: this.serverPorts ? (this.serverPorts.has(serverPort) ? String(serverPort) : OTHER) : undefined,
    };
  }

  /** A PDM packet of `flow`: sent by this host (tx) or received (rx). Ranks its prefix. */
  packet(flow: MetricsFlow, direction: "tx" | "rx"): void {
    this.packets[direction].inc();
    this.otlp?.packet(direction);
    this.top.count(flow.prefix);
  }

  /** One sample of the three delays, in nanoseconds. */
  sample(flow: MetricsFlow, serverDelayNs: number, roundTripDelayNs: number, responseTimeNs: number): void {
    const set = this.labelSet(flow);
    set.lastMs = this.nowMs;
    observe(set.delays[0], this.buckets, serverDelayNs / 1e9);
    observe(set.delays[1], this.buckets, roundTripDelayNs / 1e9);
    observe(set.delays[2], this.buckets, responseTimeNs / 1e9);
    this.otlp?.sample(set.labels, serverDelayNs, roundTripDelayNs, responseTimeNs);
  }

  setFlowsTracked(n: number): void {
    this.flows.set(n);
    this.flowsTrackedNow = n;
  }

  setKeyGeneration(g: number): void {
    this.generation.set(g);
    this.keyGenerationNow = g;
  }

  /** The totals as they stand, the read ones refreshed first (the OTLP path's observations). */
  snapshot(): MetricsSnapshot {
    this.beforeScrape?.();
    return {
      flowsTracked: this.flowsTrackedNow,
      anomalies: Object.fromEntries(this.anomalyCounts),
      eventsLost: this.eventsLostCount,
      overflow: Object.fromEntries(this.overflowCounts),
      keyGeneration: this.keyGenerationNow,
    };
  }

  /** Running totals (the data path's counters, the analysis's anomalies): exported as counters by their increase. */
  setAnomalyTotals(totals: Partial<Record<AnomalyReason, number>>): void {
    for (const reason of ANOMALY_REASONS) {
      const now = totals[reason];
      if (now === undefined) continue;
      const before = this.anomalyTotals.get(reason) ?? 0;
      // A source that restarted (a re-attach) counts from 0 again: its new count is all new.
      const increase = now >= before ? now - before : now;
      this.anomalies.inc({ reason }, increase);
      this.anomalyCounts.set(reason, this.anomalyCounts.get(reason)! + increase);
      this.anomalyTotals.set(reason, now);
    }
  }

  setEventsLostTotal(n: number): void {
    const increase = n >= this.eventsLostTotal ? n - this.eventsLostTotal : n;
    this.eventsLost.inc(increase);
    this.eventsLostCount += increase;
    this.eventsLostTotal = n;
  }

  /**
   * Advance the clock: end the top-N interval when it is over, and remove the label sets
   * idle past the TTL. Call about once a second.
   */
  tick(nowMs = Date.now()): void {
    this.nowMs = nowMs;
    if (nowMs - this.intervalStartMs >= this.intervalMs) {
      this.top.endInterval();
      this.intervalStartMs = nowMs;
    }
    for (const [key, set] of this.sets) {
      if (nowMs - set.lastMs < this.ttlMs) continue;
      this.sets.delete(key);
    }
  }

  /** The registry rendered in Prometheus's text format (what /metrics answers). */
  async render(): Promise<string> {
    this.beforeScrape?.();
    return this.registry.metrics();
  }

  /** The prefixes with a label of their own now. */
  get topPrefixes(): string[] {
    return this.top.memberList;
  }

  get labelSetCount(): number {
    return this.sets.size;
  }

  /** Peer prefixes the top-N ranking holds now. */
  get rankedPrefixCount(): number {
    return this.top.rankedCount;
  }

  private labelSet(flow: MetricsFlow): LabelSet {
    const prefix = this.top.isMember(flow.prefix) ? flow.prefix : OTHER;
    const key = `${prefix}|${flow.transport}|${flow.serverPort ?? ""}`;
    const found = this.sets.get(key);
    if (found) return found;
    // A new label set: within the cap, or folded into the one every prefix shares.
    // The folded sets (other, by transport and port) are not counted against the cap.
    if (prefix !== OTHER && this.sets.size >= this.maxLabelSets) {
      for (const name of DELAY_METRICS) {
        this.overflow.inc({ metric: name });
        this.overflowCounts.set(name, this.overflowCounts.get(name)! + 1);
      }
      return this.labelSet({ ...flow, prefix: OTHER });
    }
    const labels: Labels = { pdm_peer_prefix: prefix, network_transport: flow.transport };
    if (flow.serverPort !== undefined) labels.server_port = flow.serverPort;
    const n = this.buckets.length;
    const set: LabelSet = { labels, delays: [emptyCounts(n), emptyCounts(n), emptyCounts(n)], lastMs: this.nowMs };
    this.sets.set(key, set);
    return set;
  }
}

function positive(n: number, what: string): number {
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${what} must be positive, got ${n}`);
  return n;
}

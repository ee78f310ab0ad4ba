// pdm capture --metrics ADDR: the live analysis's packets and samples as the fleet
// metrics of metrics.md, served for Prometheus on ADDR while the capture runs.
//
// Whose peer a flow is: the end that is not an address of this host (a host's own
// capture), or the server (a capture taken in the middle, where neither end is ours).
// Packets this host sent count as tx, the others as rx.

import { networkInterfaces } from "node:os";
import type { AnalysisSession, Conversation, FlowObserver, SampleSink } from "../analyzer/index.ts";
import { hex, parseIpv6Address } from "../pdm/index.ts";
import {
  FleetMetrics,
  parseMetricsAddress,
  serveMetrics,
  type FleetMetricsOptions,
  type MetricsEndpoint,
  type MetricsFlow,
} from "../metrics/index.ts";

interface FlowView {
  flow: MetricsFlow;
  /** The client -> server direction as this host sees it. */
  up: "tx" | "rx";
}

export class CaptureMetrics {
  readonly metrics: FleetMetrics;
  readonly observer: FlowObserver;
  private readonly local = localAddresses();
  private readonly views = new WeakMap<Conversation<SampleSink>, FlowView>();
  private endpoint: MetricsEndpoint | undefined;
  private ticker: NodeJS.Timeout | undefined;

  /** `options`: the metrics' bounds (FleetMetrics's defaults otherwise) and the layout pdm_build_info names. */
  constructor(version: string, options: Omit<FleetMetricsOptions, "version" | "layout"> & { layout?: string } = {}) {
    this.metrics = new FleetMetrics({ ...options, version, layout: options.layout ?? "capture" });
    this.observer = {
      pdmPacket: (c, up) => {
        const v = this.view(c);
        this.metrics.packet(v.flow, up ? v.up : v.up === "tx" ? "rx" : "tx");
      },
      sample: (c, serverDelayNs, roundTripDelayNs, responseTimeNs) =>
        this.metrics.sample(this.view(c).flow, serverDelayNs, roundTripDelayNs, responseTimeNs),
    };
  }

  /** Serve /metrics on `address` (e.g. [::1]:9464), reading the session's totals at each scrape. */
  async start(address: string, session: AnalysisSession): Promise<string> {
    const at = parseMetricsAddress(address);
    this.metrics.beforeScrape = () => {
      const c = session.table.counters;
      this.metrics.setFlowsTracked(session.table.conversations.length);
      this.metrics.setAnomalyTotals({
        auth_fail: c.authFail,
        replay: c.replay,
        malformed: c.malformed,
        rx_nokey: c.noKey,
        lost: c.lost,
        reordered: c.reordered,
        unpaired: c.unpaired,
        implausible: c.implausible,
      });
    };
    this.endpoint = await serveMetrics(this.metrics, at);
    this.ticker = setInterval(() => this.metrics.tick(), 1000);
    return this.endpoint.url;
  }

  async stop(): Promise<void> {
    clearInterval(this.ticker);
    await this.endpoint?.close();
  }

  private view(c: Conversation<SampleSink>): FlowView {
    let v = this.views.get(c);
    if (!v) {
      const client = c.up.tuple;
      const clientIsLocal = this.local.has(hex(client.src));
      const serverIsLocal = this.local.has(hex(client.dst));
      const peer = serverIsLocal && !clientIsLocal ? client.src : client.dst;
      v = { flow: this.metrics.flow(peer, client.proto, client.dport), up: clientIsLocal ? "tx" : "rx" };
      this.views.set(c, v);
    }
    return v;
  }
}

/** This host's IPv6 addresses (of this network namespace), as hex. */
function localAddresses(): Set<string> {
  const found = new Set<string>();
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.family === "IPv6") found.add(hex(parseIpv6Address(a.address.split("%")[0]!)));
  return found;
}

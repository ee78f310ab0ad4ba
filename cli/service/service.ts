// pdm service: one long-running process per host. It attaches the data path where the
// config asks (or finds it attached), reads the kernel's measurement records of every
// configured interface into the bounded live analysis, and serves the fleet metrics for
// Prometheus; with "agent" it also runs the registration agent, whose key installer the
// protected layout needs. SIGHUP reloads the config (a bad one is refused and the
// running one kept); SIGTERM or Ctrl-C stops it and detaches what it attached.

import { AnalysisSession } from "../../analyzer/index.ts";
import {
  parseMetricsAddress,
  serveMetrics,
  startOtlp,
  type MetricsEndpoint,
  type OtlpExport,
} from "../../metrics/index.ts";
import {
  attach,
  detach,
  nativeBpf,
  pinDir,
  readAttachState,
  readCounters,
  type AttachOptions,
} from "../../probes/datapath/index.ts";
import { openLiveSource, type LiveSource } from "../../probes/live/index.ts";
import { CaptureMetrics } from "../capture-metrics.ts";
import { readServiceConfig, type AttachSpec, type ServiceConfig } from "./config.ts";

interface Running {
  config: ServiceConfig;
  sources: LiveSource[];
  endpoint: MetricsEndpoint;
  ticker: NodeJS.Timeout;
  agent: { stop(): Promise<void> } | undefined;
  otlp: OtlpExport | undefined;
}

export class MeasuringService {
  /** Interfaces this service attached, with what it attached: detached at stop. */
  private readonly attachedHere = new Map<string, string>();
  private running: Running | undefined;

  constructor(
    private readonly configPath: string,
    private readonly version: string,
    private readonly log: (line: string) => void,
  ) {}

  /** Runs until SIGTERM or SIGINT; SIGHUP reloads. Throws a UsageError for a bad config at start. */
  async run(): Promise<void> {
    this.running = await this.start(readServiceConfig(this.configPath));
    let reloading = Promise.resolve();
    const onHup = (): void => {
      reloading = reloading.then(() => this.reload());
    };
    process.on("SIGHUP", onHup);
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once("SIGTERM", () => resolve("SIGTERM"));
      process.once("SIGINT", () => resolve("SIGINT"));
    });
    process.off("SIGHUP", onHup);
    await reloading;
    this.log(`service: ${signal}: stopping`);
    await this.stopRunning();
    for (const ifname of [...this.attachedHere.keys()]) this.detachOwn(ifname);
    this.log("service: stopped");
  }

  private async reload(): Promise<void> {
    let next: ServiceConfig;
    try {
      next = readServiceConfig(this.configPath);
    } catch (e) {
      this.log(`service: reload refused, the running config stays: ${(e as Error).message}`);
      return;
    }
    await this.stopRunning();
    // What this service attached and the new config no longer wants as it was: detached.
    const wanted = new Map(next.interfaces.filter((i) => i.attach).map((i) => [i.name, JSON.stringify(i.attach)]));
    for (const [ifname, spec] of this.attachedHere) if (wanted.get(ifname) !== spec) this.detachOwn(ifname);
    try {
      this.running = await this.start(next);
      this.log(`service: reloaded ${this.configPath}`);
    } catch (e) {
      this.log(`service: the reloaded config could not start (${(e as Error).message}); stopping`);
      process.kill(process.pid, "SIGTERM");
    }
  }

  private async start(config: ServiceConfig): Promise<Running> {
    for (const i of config.interfaces) if (i.attach && !readAttachState(i.name)) this.attachOwn(i.name, i.attach);
    const layouts = config.interfaces.map((i) => readAttachState(i.name)?.options.layout ?? "none");
    const exporter = new CaptureMetrics(this.version, {
      layout: [...new Set(layouts)].join(","),
      prefixLength: config.metrics.prefixLength,
      prefixNames: config.metrics.prefixNames,
      topPrefixes: { n: config.metrics.topPrefixes },
      maxLabelSets: config.metrics.maxLabelSets,
      ttlMs: config.metrics.labelTtlSeconds * 1000,
      serverPorts: config.metrics.serverPorts,
      buckets: config.metrics.buckets,
    });
    const session = new AnalysisSession({
      live: { idleSec: config.live.idleSeconds, trackedFlows: config.live.maxFlows, listedFlows: 1000 },
      observer: exporter.observer,
    });
    const metrics = exporter.metrics;
    const readKernel = (): void => {
      // The kernel's counters, summed over the interfaces: what the records cannot show
      // (packets it could not stamp, options it could not open, records it lost).
      const native = nativeBpf();
      const sum: Record<string, number> = {};
      for (const i of config.interfaces) {
        if (!readAttachState(i.name)) continue;
        try {
          for (const [k, v] of Object.entries(readCounters(native, pinDir(i.name)))) sum[k] = (sum[k] ?? 0) + v;
        } catch {
          // detached meanwhile: its counters are gone with it
        }
      }
      const t = session.table.counters;
      metrics.setFlowsTracked(session.table.conversations.length);
      metrics.setAnomalyTotals({
        auth_fail: sum.auth_fail ?? 0,
        replay: sum.replay ?? 0,
        malformed: sum.malformed ?? 0,
        skipped_mtu: sum.skipped_mtu ?? 0,
        skipped_exthdr: sum.skipped_exthdr ?? 0,
        skipped_nokey: sum.skipped_nokey ?? 0,
        skipped_room: sum.skipped_room ?? 0,
        rx_nokey: sum.rx_nokey ?? 0,
        flows_full: sum.flows_full ?? 0,
        lost: t.lost,
        reordered: t.reordered,
        unpaired: t.unpaired,
        implausible: t.implausible,
      });
      metrics.setEventsLostTotal(sum.events_lost ?? 0);
    };
    const sources: LiveSource[] = [];
    let endpoint: MetricsEndpoint | undefined;
    let agent: Running["agent"];
    let otlp: OtlpExport | undefined;
    try {
      for (const i of config.interfaces) {
        sources.push(
          openLiveSource(
            { kind: "ebpf", ifname: i.name },
            { packet: () => {}, record: (r, startSec) => session.addRecord(r, startSec), wanted: () => true },
          ),
        );
      }
      if (config.agent) agent = await startAgent(config.agent, this.log);
      metrics.beforeScrape = readKernel;
      endpoint = await serveMetrics(metrics, parseMetricsAddress(config.metrics.listen));
      if (config.otlp)
        otlp = await startOtlp(metrics, {
          url: config.otlp.endpoint,
          intervalMs: config.otlp.intervalSeconds * 1000,
          version: this.version,
          log: this.log,
        });
    } catch (e) {
      for (const s of sources) s.close();
      await endpoint?.close();
      await agent?.stop();
      throw e;
    }
    const ticker = setInterval(() => {
      metrics.tick();
      session.endIdle(Date.now() / 1e3);
    }, 1000);
    this.log(
      `service: reading ${config.interfaces.map((i) => i.name).join(", ")}; metrics at ${endpoint.url}${config.otlp ? "; pushing OTLP" : ""}${config.agent ? "; agent running" : ""}`,
    );
    return { config, sources, endpoint, ticker, agent, otlp };
  }

  private async stopRunning(): Promise<void> {
    const r = this.running;
    this.running = undefined;
    if (!r) return;
    clearInterval(r.ticker);
    for (const s of r.sources) s.close();
    await r.endpoint.close();
    await r.otlp?.shutdown();
    await r.agent?.stop();
  }

  private attachOwn(ifname: string, spec: AttachSpec): void {
    const options: AttachOptions = {
      ifname,
      layout: spec.layout,
      aead: spec.aead,
      ports: spec.ports,
      prefixes: spec.prefixes,
      flowTimeoutS: spec.flowTimeoutS,
    };
    const state = attach(options);
    this.attachedHere.set(ifname, JSON.stringify(spec));
    this.log(`service: attached ${spec.layout} to ${state.ifname}`);
  }

  private detachOwn(ifname: string): void {
    this.attachedHere.delete(ifname);
    try {
      detach(ifname);
      this.log(`service: detached from ${ifname}`);
    } catch (e) {
      this.log(`service: detaching ${ifname} failed: ${(e as Error).message}`);
    }
  }
}

/** The registration agent, in this process, logging to the service's log. */
async function startAgent(file: string, log: (line: string) => void): Promise<{ stop(): Promise<void> }> {
  const { Agent, readAgentConfig, streamLogger } = await import("../../probes/agent/index.ts");
  const config = readAgentConfig(file);
  const agent = new Agent(config, { log: streamLogger((l) => log(l.trimEnd()), "text", config.name) });
  await agent.start();
  return agent;
}

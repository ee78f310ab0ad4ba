// The OTLP push path (metrics.md 1, 3, 4): the same instruments, under OpenTelemetry's
// names, pushed to a collector as base-2 exponential histograms (at most 160 buckets,
// min and max recorded). The SDK is loaded only when OTLP is configured. The standard
// OTEL_EXPORTER_OTLP_* variables work (an endpoint given here wins); OTEL_SERVICE_NAME
// and OTEL_RESOURCE_ATTRIBUTES add to the resource. Exports run on their own timer and
// never block measuring: an endpoint that is down or slow is retried by the exporter with
// backoff, and each failure is logged once per run of failures.

import { hostname } from "node:os";
import type { FleetMetrics, OtlpSink } from "./fleet-metrics.ts";

export interface OtlpOptions {
  /** The collector's metrics URL (default: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT, or http://localhost:4318/v1/metrics). */
  url?: string;
  /** How often to push (default 10 s). */
  intervalMs?: number;
  version: string;
  log: (line: string) => void;
}

export interface OtlpExport {
  /** Push what is recorded now, then stop. */
  shutdown(): Promise<void>;
}

/**
 * OTel's name for each Prometheus label; the others (direction, reason, metric) keep
 * theirs, so that an OTLP pipeline into Prometheus gives the pull path's labels.
 */
const ATTRIBUTE: Record<string, string> = {
  pdm_peer_prefix: "pdm.peer.prefix",
  network_transport: "network.transport",
  server_port: "server.port",
};

export async function startOtlp(fleet: FleetMetrics, options: OtlpOptions): Promise<OtlpExport> {
  const [
    { MeterProvider, PeriodicExportingMetricReader, AggregationType, InstrumentType },
    { OTLPMetricExporter },
    resources,
  ] = await Promise.all([
    import("@opentelemetry/sdk-metrics"),
    import("@opentelemetry/exporter-metrics-otlp-http"),
    import("@opentelemetry/resources"),
  ]);
  const exporter = new OTLPMetricExporter({
    ...(options.url ? { url: options.url } : {}),
    // Exponential histograms are chosen here, on the exporter: a reader's choice is not sent.
    aggregationPreference: (type) =>
      type === InstrumentType.HISTOGRAM
        ? { type: AggregationType.EXPONENTIAL_HISTOGRAM, options: { maxSize: 160, recordMinMax: true } }
        : { type: AggregationType.DEFAULT },
  });
  // Failures are logged once per run of failures, not on every retry.
  let failing = false;
  const exportOnce = exporter.export.bind(exporter);
  exporter.export = (metrics, done) =>
    exportOnce(metrics, (result) => {
      if (result.code !== 0 && !failing)
        options.log(`otlp: export failed, retrying: ${result.error?.message ?? "unknown error"}`);
      if (result.code === 0 && failing) options.log("otlp: export works again");
      failing = result.code !== 0;
      done(result);
    });
  const resource = resources
    .resourceFromAttributes({ "service.name": "pdm", "service.version": options.version, "host.name": hostname() })
    .merge(resources.detectResources({ detectors: [resources.envDetector] }));
  const provider = new MeterProvider({
    resource,
    readers: [
      new PeriodicExportingMetricReader({
        exporter,
        exportIntervalMillis: options.intervalMs ?? 10_000,
        exportTimeoutMillis: Math.min(options.intervalMs ?? 10_000, 30_000),
      }),
    ],
  });
  const meter = provider.getMeter("pdm", options.version);
  const histogram = (name: string, description: string) => meter.createHistogram(name, { unit: "s", description });
  const delays = [
    histogram("pdm.server.delay", "PDM server delay samples (DeltaTLR)"),
    histogram("pdm.round_trip.delay", "PDM round-trip delay samples (DeltaTLS - DeltaTLR)"),
    histogram("pdm.response.time", "PDM response time samples (DeltaTLS)"),
  ];
  const packets = meter.createCounter("pdm.packets", { unit: "{packet}", description: "PDM packets, by direction" });
  const attributesOf = new WeakMap<Record<string, string>, Record<string, string>>();
  const otel = (labels: Record<string, string>): Record<string, string> => {
    let a = attributesOf.get(labels);
    if (!a) {
      a = Object.fromEntries(Object.entries(labels).map(([k, v]) => [ATTRIBUTE[k] ?? k, v]));
      attributesOf.set(labels, a);
    }
    return a;
  };
  const sink: OtlpSink = {
    sample(labels, serverDelayNs, roundTripDelayNs, responseTimeNs) {
      const a = otel(labels);
      delays[0]!.record(serverDelayNs / 1e9, a);
      delays[1]!.record(roundTripDelayNs / 1e9, a);
      delays[2]!.record(responseTimeNs / 1e9, a);
    },
    packet(direction) {
      packets.add(1, { direction });
    },
  };
  // What is read rather than counted, observed at each collection.
  const flows = meter.createObservableGauge("pdm.flows.tracked", {
    unit: "{flow}",
    description: "Flows this host tracks now",
  });
  const anomalies = meter.createObservableCounter("pdm.anomalies", {
    unit: "{packet}",
    description: "Packets not measured, by reason",
  });
  const lost = meter.createObservableCounter("pdm.events.lost", {
    description: "Measurement records the ring buffer dropped",
  });
  const overflow = meter.createObservableCounter("pdm.series.overflow", {
    description: "Samples folded into other by the caps",
  });
  const generation = meter.createObservableGauge("pdm.key.generation", { description: "The key generation in use" });
  meter.addBatchObservableCallback(
    (result) => {
      const s = fleet.snapshot();
      result.observe(flows, s.flowsTracked);
      for (const [reason, n] of Object.entries(s.anomalies)) result.observe(anomalies, n, { reason });
      result.observe(lost, s.eventsLost);
      for (const [metric, n] of Object.entries(s.overflow)) result.observe(overflow, n, { metric });
      if (s.keyGeneration !== undefined) result.observe(generation, s.keyGeneration);
    },
    [flows, anomalies, lost, overflow, generation],
  );
  fleet.otlp = sink;
  return {
    shutdown: async () => {
      fleet.otlp = undefined;
      await provider.shutdown().catch((e: Error) => options.log(`otlp: the last export failed: ${e.message}`));
    },
  };
}

// Metrics for a fleet (metrics.md): a host's PDM figures as bounded Prometheus metrics,
// and the endpoint Prometheus scrapes. Only this file is imported from outside metrics/.

export { FleetMetrics, DEFAULTS as METRICS_DEFAULTS } from "./fleet-metrics.ts";
export type { FleetMetricsOptions, MetricsFlow, MetricsSnapshot, OtlpSink } from "./fleet-metrics.ts";
export { ANOMALY_REASONS, DEFAULT_BUCKETS_SECONDS, DELAY_METRICS, METRIC, OTHER } from "./instruments.ts";
export type { AnomalyReason } from "./instruments.ts";
export { PeerPrefixes } from "./peer-prefix.ts";
export type { NamedPrefix } from "./peer-prefix.ts";
export { TopPrefixes } from "./top-prefixes.ts";
export type { TopPrefixesOptions } from "./top-prefixes.ts";
export { parseMetricsAddress, serveMetrics } from "./prometheus-endpoint.ts";
export type { MetricsAddress, MetricsEndpoint } from "./prometheus-endpoint.ts";
export { startOtlp } from "./otlp-export.ts";
export type { OtlpExport, OtlpOptions } from "./otlp-export.ts";

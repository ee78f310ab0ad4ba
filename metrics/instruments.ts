// The instruments a host exports (metrics.md 1) and their buckets (metrics.md 3): one
// set, whatever the exporter. Names follow Prometheus conventions: base unit seconds,
// counters end in _total.

export const METRIC = {
  serverDelay: "pdm_server_delay_seconds",
  roundTripDelay: "pdm_round_trip_delay_seconds",
  responseTime: "pdm_response_time_seconds",
  packets: "pdm_packets_total",
  flowsTracked: "pdm_flows_tracked",
  anomalies: "pdm_anomalies_total",
  eventsLost: "pdm_events_lost_total",
  seriesOverflow: "pdm_series_overflow_total",
  keyGeneration: "pdm_key_generation",
  buildInfo: "pdm_build_info",
} as const;

/** The three delay histograms, by the sample field each one takes. */
export const DELAY_METRICS = [METRIC.serverDelay, METRIC.roundTripDelay, METRIC.responseTime] as const;
export type DelayMetric = (typeof DELAY_METRICS)[number];

/** Classic histogram buckets, in seconds: 10 µs to 1 s. */
export const DEFAULT_BUCKETS_SECONDS = [
  1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
] as const;

/**
 * pdm_anomalies_total's reasons, a closed set: the data path's counters and the
 * analyzer's anomalies under the same names.
 */
export const ANOMALY_REASONS = [
  "auth_fail",
  "replay",
  "malformed",
  "skipped_mtu",
  "skipped_exthdr",
  "skipped_nokey",
  "skipped_room",
  "rx_nokey",
  "flows_full",
  "lost",
  "reordered",
  "unpaired",
  "implausible",
] as const;
export type AnomalyReason = (typeof ANOMALY_REASONS)[number];

/** The label every value outside the bounds folds into. */
export const OTHER = "other";

/** network_transport's values (OTel's names; ICMPv6 echo is "icmp"). */
export function transportLabel(proto: number): "tcp" | "udp" | "icmp" | typeof OTHER {
  return proto === 6 ? "tcp" : proto === 17 ? "udp" : proto === 58 ? "icmp" : OTHER;
}

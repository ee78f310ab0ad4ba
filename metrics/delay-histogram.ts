// The three delay histograms, kept in typed arrays and handed to prom-client's registry
// as custom collectors. prom-client's own Histogram hashes the label values on every
// observation (about 0.6 µs each, three per sample); here a sample finds its label set
// once and adds to three arrays, which is what lets the metrics keep up with the live
// path (bench/metrics.bench.ts).

/** One label set's counts for one histogram: per bucket (not cumulative), sum and count. */
export interface HistogramCounts {
  readonly buckets: Float64Array;
  sum: number;
  count: number;
}

export function emptyCounts(bucketCount: number): HistogramCounts {
  return { buckets: new Float64Array(bucketCount), sum: 0, count: 0 };
}

/** Add `value` to `c`, bucketed by `upper` (ascending upper bounds; above the last: +Inf only). */
export function observe(c: HistogramCounts, upper: readonly number[], value: number): void {
  c.sum += value;
  c.count += 1;
  for (let i = 0; i < upper.length; i += 1) {
    if (value <= upper[i]!) {
      c.buckets[i]! += 1;
      return;
    }
  }
}

interface PromValue {
  labels: Record<string, string | number>;
  sharedLabels: Record<string, string>;
  value: number;
  metricName: string;
}

/**
 * A histogram as prom-client's registry reads a metric: its name, help and type, and
 * get() with every series (cumulative buckets, +Inf, sum, count per label set).
 */
export class DelayHistogramCollector {
  readonly type = "histogram";
  readonly aggregator = "sum";

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly upper: readonly number[],
    /** The label sets and their counts for this histogram, read at each scrape. */
    private readonly series: () => Iterable<{ labels: Record<string, string>; counts: HistogramCounts }>,
  ) {}

  get(): { name: string; help: string; type: string; aggregator: string; values: PromValue[] } {
    const values: PromValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const { labels, counts } of this.series()) {
      let acc = 0;
      for (let i = 0; i < this.upper.length; i += 1) {
        acc += counts.buckets[i]!;
        values.push({ labels: { le: this.upper[i]! }, sharedLabels: labels, value: acc, metricName: bucket });
      }
      values.push({ labels: { le: "+Inf" }, sharedLabels: labels, value: counts.count, metricName: bucket });
      values.push({ labels: {}, sharedLabels: labels, value: counts.sum, metricName: `${this.name}_sum` });
      values.push({ labels: {}, sharedLabels: labels, value: counts.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** prom-client calls it on registry.resetMetrics(); the counts belong to FleetMetrics. */
  reset(): void {}
}

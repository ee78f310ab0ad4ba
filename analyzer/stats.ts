// Summary statistics of one metric over a flow: count, min, mean, p50, p90, p99, max.
// Percentiles use the nearest-rank method on the exact sample values.

export interface Summary {
  count: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** A growable array of doubles (one allocation per doubling, no boxing). */
export class SampleSeries {
  private data = new Float64Array(64);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = v;
  }
  values(): Float64Array {
    return this.data.subarray(0, this.length);
  }
}

export function summarize(values: Float64Array): Summary | undefined {
  const n = values.length;
  if (n === 0) return undefined;
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (let i = 0; i < n; i += 1) sum += sorted[i]!;
  const rank = (p: number): number => sorted[Math.min(n - 1, Math.max(0, Math.ceil(p * n) - 1))]!;
  return { count: n, min: sorted[0]!, mean: sum / n, p50: rank(0.5), p90: rank(0.9), p99: rank(0.99), max: sorted[n - 1]! };
}

// Summary statistics of one metric over a flow: count, min, mean, p50, p90, p99, max.
// Percentiles use the nearest-rank method on the exact sample values (NaN-free input).

export interface Summary {
  count: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** The columns of a DelaySamples row. */
export const SAMPLE = { timeNs: 0, serverDelayNs: 1, roundTripDelayNs: 2, responseTimeNs: 3 } as const;
const COLUMNS = 4;

/**
 * A conversation's samples, one row per answered request: time, server delay,
 * round-trip delay, response time. The four values of a row sit side by side, so
 * adding a sample (once per request) writes one place in memory rather than four
 * arrays. Doubles, one allocation per doubling, no boxing.
 */
export class DelaySamples {
  private rows = new Float64Array(4 * COLUMNS); // grows by doubling: most flows are short
  length = 0;
  add(timeNs: number, serverDelayNs: number, roundTripDelayNs: number, responseTimeNs: number): void {
    let at = this.length * COLUMNS;
    if (at === this.rows.length) {
      const bigger = new Float64Array(this.rows.length * 2);
      bigger.set(this.rows);
      this.rows = bigger;
    }
    const rows = this.rows;
    rows[at++] = timeNs;
    rows[at++] = serverDelayNs;
    rows[at++] = roundTripDelayNs;
    rows[at] = responseTimeNs;
    this.length += 1;
  }
  /** One column (SAMPLE.serverDelayNs, ...) as an array of its own, each value divided by `divisor`. */
  column(which: number, divisor = 1): Float64Array {
    const out = new Float64Array(this.length);
    const rows = this.rows;
    for (let i = 0, at = which; i < out.length; i += 1, at += COLUMNS) out[i] = rows[at]! / divisor;
    return out;
  }
}

export function summarize(values: Float64Array): Summary | undefined {
  const n = values.length;
  if (n === 0) return undefined;
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < n; i += 1) {
    const v = values[i]!;
    sum += v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  // Nearest rank: the value at 0-based index ceil(p n) - 1 of the sorted samples.
  // Selecting the three ranks (largest first, each within the part below the
  // previous) costs O(n); a full sort was the analyzer's largest cost after parsing.
  const rank = (p: number): number => Math.min(n - 1, Math.max(0, Math.ceil(p * n) - 1));
  const work = Float64Array.from(values);
  const p99 = select(work, rank(0.99), 0, n - 1);
  const p90 = select(work, rank(0.9), 0, rank(0.99));
  const p50 = select(work, rank(0.5), 0, rank(0.9));
  return { count: n, min, mean: sum / n, p50, p90, p99, max };
}

/**
 * The k-th smallest of a[lo..hi] (inclusive), rearranging that range so that a[k]
 * holds it, everything before k is <= it and everything after is >= it
 * (Hoare partition around a median of three; iterative, so no deep recursion).
 */
export function select(a: Float64Array, k: number, lo: number, hi: number): number {
  while (hi > lo) {
    const mid = (lo + hi) >>> 1;
    // median of three as the pivot: sorted inputs (common: rising times) stay O(n)
    if (a[mid]! < a[lo]!) swap(a, mid, lo);
    if (a[hi]! < a[lo]!) swap(a, hi, lo);
    if (a[hi]! < a[mid]!) swap(a, hi, mid);
    const pivot = a[mid]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i += 1;
      while (a[j]! > pivot) j -= 1;
      if (i <= j) {
        swap(a, i, j);
        i += 1;
        j -= 1;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k]!;
  }
  return a[k]!;
}

function swap(a: Float64Array, i: number, j: number): void {
  const t = a[i]!;
  a[i] = a[j]!;
  a[j] = t;
}

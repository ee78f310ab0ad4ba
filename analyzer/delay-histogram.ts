// A delay distribution in bounded memory, for live capture: count, min, max and mean
// exact, percentiles within RELATIVE_ACCURACY (or 1 ns, if more) of the exact
// nearest-rank value.
//
// A live capture may run for days, so it cannot keep every sample the way a file
// analysis does (stats.ts). Each value falls in a logarithmic bucket: bucket i holds
// the values in (g^(i-1), g^i] with g = (1 + a) / (1 - a), and stands for
// 2 g^i / (g + 1), which is within a (relatively) of every value in the bucket. That is
// 230 buckets a decade, 2,800 from 1 ns to 1,000 s; a histogram allocates only the range
// its values span (a flow's delays usually span a few dozen buckets), plus at most as
// much again spare. Values under 1 ns in magnitude count as zero. Two histograms merge
// by adding their buckets, with the same guarantee.

import type { Summary } from "./stats.ts";

/** Every percentile is within this fraction of the exact value (0.5 %). */
export const RELATIVE_ACCURACY = 0.005;
const GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY);
const LOG_GAMMA = Math.log(GAMMA);
/** |value| below this (ns) counts as zero: no clock a PDM host stamps with is finer. */
const ZERO_BELOW = 1;

/** Counts of one sign's buckets: a dense array over the indexes seen so far. */
class BucketCounts {
  counts: Uint32Array | undefined;
  /** Bucket index of counts[0]. */
  first = 0;
  total = 0;

  add(index: number, n: number): void {
    let counts = this.counts;
    if (!counts) {
      counts = this.counts = new Uint32Array(8);
      this.first = index - 4;
    } else if (index < this.first || index >= this.first + counts.length) {
      counts = this.cover(index);
    }
    counts[index - this.first]! += n;
    this.total += n;
  }

  /**
   * Widen the array to hold `index`, with half as much again on the side it grew
   * (fewer re-allocations), never reaching past the range of real delays with it.
   */
  private cover(index: number): Uint32Array {
    const old = this.counts!;
    const downwards = index < this.first;
    const lo = Math.min(this.first, index);
    const hi = Math.max(this.first + old.length, index + 1);
    const slack = Math.max(8, (hi - lo) >> 1);
    const first = downwards ? Math.min(lo, Math.max(LOWEST_BUCKET, lo - slack)) : lo;
    const end = downwards ? hi : Math.max(hi, Math.min(HIGHEST_BUCKET, hi + slack));
    const counts = new Uint32Array(end - first);
    counts.set(old, this.first - first);
    this.counts = counts;
    this.first = first;
    return counts;
  }

  /** The bucket index holding the k-th (0-based) smallest bucket entry, walking upwards. */
  indexOfRank(k: number): number {
    const counts = this.counts!;
    for (let i = 0; i < counts.length; i += 1) {
      k -= counts[i]!;
      if (k < 0) return this.first + i;
    }
    return this.first + counts.length - 1; // (unreachable when k < total)
  }

  merge(other: BucketCounts): void {
    const counts = other.counts;
    if (!counts) return;
    for (let i = 0; i < counts.length; i += 1) if (counts[i]) this.add(other.first + i, counts[i]!);
  }

  get bytes(): number {
    return this.counts?.byteLength ?? 0;
  }
}

/** Buckets of 1 ns and of 10,000 s: spare room is never allocated outside them. */
const LOWEST_BUCKET = 0;
const HIGHEST_BUCKET = Math.ceil(Math.log(1e13) / LOG_GAMMA);
/** g^i for the buckets of real delays: the edge checks below read it instead of computing powers. */
const UPPER_EDGE = Float64Array.from({ length: HIGHEST_BUCKET + 1 }, (_, i) => GAMMA ** i);
const edge = (i: number): number => (i >= 0 && i <= HIGHEST_BUCKET ? UPPER_EDGE[i]! : GAMMA ** i);
const INV_LOG_GAMMA = 1 / LOG_GAMMA;

/** The bucket of |v| > 0: the i with g^(i-1) < |v| <= g^i (the logarithm corrected at edges). */
function bucketOf(magnitude: number): number {
  let i = Math.ceil(Math.log(magnitude) * INV_LOG_GAMMA);
  if (edge(i - 1) >= magnitude) i -= 1;
  else if (edge(i) < magnitude) i += 1;
  return i;
}

/** What bucket i stands for: within RELATIVE_ACCURACY of everything it holds. */
const valueOf = (i: number): number => (2 * GAMMA ** i) / (GAMMA + 1);

export class DelayHistogram {
  private readonly positive = new BucketCounts();
  /** Negative values by magnitude (a round-trip delay may be slightly negative: rounding). */
  private readonly negative = new BucketCounts();
  private zeros = 0;
  count = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;

  add(v: number): void {
    this.count += 1;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
    if (v >= ZERO_BELOW) this.positive.add(bucketOf(v), 1);
    else if (v <= -ZERO_BELOW) this.negative.add(bucketOf(-v), 1);
    else this.zeros += 1;
  }

  merge(other: DelayHistogram): void {
    this.count += other.count;
    this.sum += other.sum;
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
    this.positive.merge(other.positive);
    this.negative.merge(other.negative);
    this.zeros += other.zeros;
  }

  /**
   * The nearest-rank p-quantile (the value at 0-based rank ceil(p n) - 1 in sorted
   * order, as stats.ts computes it exactly), within RELATIVE_ACCURACY, and never
   * outside [min, max]. undefined when empty.
   */
  quantile(p: number): number | undefined {
    const n = this.count;
    if (n === 0) return undefined;
    let k = Math.min(n - 1, Math.max(0, Math.ceil(p * n) - 1));
    let v: number;
    if (k < this.negative.total) {
      // Sorted order starts with the largest magnitudes of the negatives.
      v = -valueOf(this.negative.indexOfRank(this.negative.total - 1 - k));
    } else if ((k -= this.negative.total) < this.zeros) {
      v = 0;
    } else {
      v = valueOf(this.positive.indexOfRank(k - this.zeros));
    }
    return Math.min(this.max, Math.max(this.min, v));
  }

  summary(): Summary | undefined {
    if (this.count === 0) return undefined;
    return {
      count: this.count,
      min: this.min,
      mean: this.sum / this.count,
      p50: this.quantile(0.5)!,
      p90: this.quantile(0.9)!,
      p99: this.quantile(0.99)!,
      max: this.max,
    };
  }

  /** Bytes of bucket arrays (tests, memory). */
  get bytes(): number {
    return this.positive.bytes + this.negative.bytes;
  }
}

/**
 * A conversation's samples in a live capture: the three delays' distributions, no
 * rows. Takes the place of stats.ts's DelaySamples (same `add`).
 */
export class DelayHistograms {
  readonly serverDelayNs = new DelayHistogram();
  readonly roundTripDelayNs = new DelayHistogram();
  readonly responseTimeNs = new DelayHistogram();

  get length(): number {
    return this.responseTimeNs.count;
  }

  add(_timeNs: number, serverDelayNs: number, roundTripDelayNs: number, responseTimeNs: number): void {
    this.serverDelayNs.add(serverDelayNs);
    this.roundTripDelayNs.add(roundTripDelayNs);
    this.responseTimeNs.add(responseTimeNs);
  }

  merge(other: DelayHistograms): void {
    this.serverDelayNs.merge(other.serverDelayNs);
    this.roundTripDelayNs.merge(other.roundTripDelayNs);
    this.responseTimeNs.merge(other.responseTimeNs);
  }

  get bytes(): number {
    return this.serverDelayNs.bytes + this.roundTripDelayNs.bytes + this.responseTimeNs.bytes;
  }
}

// The live capture's delay histograms: count, min, max exact, mean to rounding, and every
// percentile within RELATIVE_ACCURACY (or 1 ns) of the exact nearest-rank value that summarize()
// computes from all samples (fast-check); merging equals adding everything to one; and
// memory stays a few KiB however many samples.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { DelayHistogram, DelayHistograms, RELATIVE_ACCURACY, summarize, type Summary } from "../../analyzer/index.ts";

/** |got - want| within the histogram's promise: 0.5 %, or 1 ns (values under 1 ns count as zero). */
function close(got: number, want: number, what: string): void {
  assert.ok(
    Math.abs(got - want) <= Math.max(RELATIVE_ACCURACY * Math.abs(want), 1),
    `${what}: ${got} vs exact ${want}`,
  );
}

function checkAgainstExact(h: DelayHistogram, values: number[]): void {
  const exact = summarize(Float64Array.from(values))!;
  const s = h.summary()!;
  assert.deepEqual([s.count, s.min, s.max], [exact.count, exact.min, exact.max]);
  assert.ok(
    Math.abs(s.mean - exact.mean) <= 1e-9 * Math.max(1, Math.abs(exact.mean)) + 1e-6,
    `mean ${s.mean} vs ${exact.mean}`,
  );
  for (const p of ["p50", "p90", "p99"] as const satisfies ReadonlyArray<keyof Summary>) close(s[p], exact[p], p);
}

// Delays as PDM carries them: ns from sub-µs to minutes, sometimes spread over decades,
// sometimes tightly clustered; round-trip delays may be zero or slightly negative.
const delay = fc.oneof(
  fc.double({ noNaN: true, min: 1, max: 1e11 }),
  fc.integer({ min: 0, max: 5 }), // ties and zeros
  fc.double({ noNaN: true, min: -2, max: 2 }), // under 1 ns: counted as zero
  fc.double({ noNaN: true, min: -5e4, max: 5e4 }), // around zero, both signs
  fc.double({ noNaN: true, min: 19e6, max: 21e6 }), // one server's hold
);

describe("DelayHistogram", () => {
  it("gives every percentile within 0.5 % of the exact one, and count, min, max exactly", () => {
    fc.assert(
      fc.property(fc.array(delay, { minLength: 1, maxLength: 2000 }), (values) => {
        const h = new DelayHistogram();
        for (const v of values) h.add(v);
        checkAgainstExact(h, values);
      }),
      { numRuns: 300 },
    );
  });

  it("merged equals one histogram of every value", () => {
    fc.assert(
      fc.property(fc.array(delay, { maxLength: 500 }), fc.array(delay, { maxLength: 500 }), (a, b) => {
        const ha = new DelayHistogram();
        const hb = new DelayHistogram();
        const all = new DelayHistogram();
        for (const v of a) (ha.add(v), all.add(v));
        for (const v of b) (hb.add(v), all.add(v));
        ha.merge(hb);
        const merged = ha.summary();
        const whole = all.summary();
        if (!whole) return assert.equal(merged, undefined);
        assert.deepEqual({ ...merged!, mean: 0 }, { ...whole, mean: 0 });
        checkAgainstExact(ha, [...a, ...b]);
      }),
      { numRuns: 200 },
    );
  });

  it("is empty with no samples and exact with one", () => {
    const h = new DelayHistogram();
    assert.equal(h.summary(), undefined);
    assert.equal(h.quantile(0.5), undefined);
    h.add(1234.5);
    assert.deepEqual(h.summary(), {
      count: 1,
      min: 1234.5,
      mean: 1234.5,
      p50: 1234.5,
      p90: 1234.5,
      p99: 1234.5,
      max: 1234.5,
    });
  });

  it("stays a few KiB for a million samples, however spread", () => {
    const clustered = new DelayHistogram(); // one server: 20 ms give or take 5 %
    const spread = new DelayHistogram(); // 1 µs to 10 s
    let seed = 7;
    const random = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    for (let i = 0; i < 1_000_000; i += 1) {
      clustered.add(20e6 * (0.95 + 0.1 * random()));
      spread.add(1e3 * 10 ** (7 * random()));
    }
    assert.equal(clustered.count, 1_000_000);
    assert.ok(clustered.bytes <= 512, `${clustered.bytes} bytes for a 10 % spread`);
    // 7 decades at 230 buckets a decade: 1,612 buckets, and at most as many spare
    // (half the span, on each side the array grew).
    assert.ok(spread.bytes <= 2 * 1612 * 4, `${spread.bytes} bytes for 7 decades`);
  });
});

describe("DelayHistograms", () => {
  it("keeps the three delays of each sample apart", () => {
    const h = new DelayHistograms();
    for (let i = 1; i <= 100; i += 1) h.add(i * 1e6, i * 1000, i * 2000, i * 3000);
    assert.equal(h.length, 100);
    close(h.serverDelayNs.quantile(0.5)!, 50_000, "server delay p50");
    close(h.roundTripDelayNs.quantile(0.99)!, 198_000, "round-trip delay p99");
    assert.equal(h.responseTimeNs.max, 300_000);
  });
});

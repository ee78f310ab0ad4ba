// summarize() selects its percentiles instead of sorting: checked against a full sort.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { summarize } from "../../analyzer/index.ts";

function bySorting(values: number[]) {
  const sorted = Float64Array.from(values).sort();
  const n = sorted.length;
  const at = (p: number): number => sorted[Math.min(n - 1, Math.max(0, Math.ceil(p * n) - 1))]!;
  return { count: n, min: sorted[0], p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[n - 1] };
}

describe("summarize", () => {
  it("equals nearest-rank percentiles of a full sort, for any input", () => {
    const sample = fc.oneof(
      fc.array(fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e12, max: 1e12 }), {
        minLength: 1,
        maxLength: 3000,
      }),
      fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 3000 }), // many ties
      fc.array(fc.integer({ min: 0, max: 1e6 }), { minLength: 1, maxLength: 3000 }).map((a) => a.sort((x, y) => x - y)), // already sorted
      fc.array(fc.integer({ min: 0, max: 1e6 }), { minLength: 1, maxLength: 3000 }).map((a) => a.sort((x, y) => y - x)), // reversed
    );
    fc.assert(
      fc.property(sample, (values) => {
        const input = Float64Array.from(values);
        const s = summarize(input)!;
        const want = bySorting(values);
        assert.deepEqual({ count: s.count, min: s.min, p50: s.p50, p90: s.p90, p99: s.p99, max: s.max }, want);
        assert.ok(
          Math.abs(s.mean - values.reduce((a, b) => a + b, 0) / values.length) <= 1e-6 * Math.max(1, Math.abs(s.mean)),
        );
        assert.deepEqual(input, Float64Array.from(values), "the input is left as it was");
      }),
      { numRuns: 400 },
    );
  });

  it("is undefined for no samples and exact for one", () => {
    assert.equal(summarize(new Float64Array(0)), undefined);
    assert.deepEqual(summarize(Float64Array.of(7)), { count: 1, min: 7, mean: 7, p50: 7, p90: 7, p99: 7, max: 7 });
  });
});

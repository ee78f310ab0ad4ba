import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeDeltaAttoseconds, decodeDeltaNs, encodeAttoseconds, encodeDeltaNs } from "../../pdm/index.ts";

describe("delta-time encoding", () => {
  it("encodes zero as (0, 0)", () => {
    assert.deepEqual(encodeDeltaNs(0), { delta: 0, scale: 0 });
    assert.deepEqual(encodeDeltaNs(0n), { delta: 0, scale: 0 });
  });

  it("keeps whole seconds: 1.5 s is not 0.5 s (a known mistake elsewhere)", () => {
    const { delta, scale } = encodeDeltaNs(1_500_000_000);
    const ns = decodeDeltaNs(delta, scale);
    assert.ok(Math.abs(ns - 1.5e9) / 1.5e9 < 2 ** -15, `decoded ${ns}`);
  });

  it("treats the input as nanoseconds, not attoseconds (a known mistake elsewhere)", () => {
    // 1 ns read as 1 as would give (1, 0).
    assert.notDeepEqual(encodeDeltaNs(1), { delta: 1, scale: 0 });
    assert.equal(decodeDeltaAttoseconds(61035, 14), 61035n << 14n); // ~1e9 as
  });

  it("truncates: delta x 2^scale <= value < (delta+1) x 2^scale, with 16 significant bits, 0 ns .. 2^64 ns", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }), (ns) => {
        const { delta, scale } = encodeDeltaNs(ns);
        const as = ns * 1_000_000_000n;
        const lo = decodeDeltaAttoseconds(delta, scale);
        const hi = decodeDeltaAttoseconds(delta + 1, scale);
        return lo <= as && as < hi && delta >= 0x8000 && delta <= 0xffff && scale <= 255;
      }),
      { numRuns: 20_000 },
    );
  });

  it("gives the same answer for number and bigint inputs below 2^53", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (ns) => {
        assert.deepEqual(encodeDeltaNs(ns), encodeDeltaNs(BigInt(ns)));
      }),
      { numRuns: 20_000 },
    );
  });

  it("stays within 2^-15 relative error from 1 ns to 24 hours", () => {
    for (let ns = 1; ns <= 86_400e9; ns = Math.ceil(ns * 1.37)) {
      const { delta, scale } = encodeDeltaNs(ns);
      const back = decodeDeltaNs(delta, scale);
      assert.ok(back <= ns && (ns - back) / ns < 2 ** -15, `${ns} -> ${back}`);
    }
  });

  it("rejects negative, fractional and oversized intervals", () => {
    assert.throws(() => encodeDeltaNs(-1), RangeError);
    assert.throws(() => encodeDeltaNs(1.5), RangeError);
    assert.throws(() => encodeDeltaNs(2n ** 64n), RangeError);
    assert.throws(() => encodeAttoseconds(-1n), RangeError);
  });
});

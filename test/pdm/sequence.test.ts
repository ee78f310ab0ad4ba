import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { LFSR_PERIOD, PacketSequence, RandomNumberSequence, lfsrPositions, lfsrStep } from "../../pdm/index.ts";

describe("Random Number sequence (15-bit Galois LFSR)", () => {
  it("has period 32767 over the non-zero values", () => {
    const seen = new Set<number>();
    let s = 1;
    for (let i = 0; i < LFSR_PERIOD; i += 1) {
      s = lfsrStep(s);
      assert.ok(s >= 1 && s <= 0x7fff);
      seen.add(s);
    }
    assert.equal(seen.size, LFSR_PERIOD);
    assert.equal(s, 1, "back to the start after one period");
  });

  it("draws 32767 distinct values from any start, then stops", () => {
    for (const start of [1, 0x7fff, 4242]) {
      const seq = new RandomNumberSequence(start);
      const seen = new Set<number>();
      for (let v = seq.next(); v !== undefined; v = seq.next()) seen.add(v);
      assert.equal(seen.size, LFSR_PERIOD);
      assert.equal(seq.remaining, 0);
      assert.equal(seq.next(), undefined);
    }
  });

  it("places every 15-bit value at its own position, a sender's consecutive values at consecutive ones", () => {
    const positions = lfsrPositions();
    assert.equal(new Set(positions).size, 0x8000, "a bijection of 0..32767 (what replay memory indexes by)");
    assert.equal(positions[0], LFSR_PERIOD, "0, which the LFSR never draws, has the last slot");
    for (const start of [1, 0x7fff, 4242]) {
      const seq = new RandomNumberSequence(start);
      let before = positions[start]!;
      for (let v = seq.next(); v !== undefined; v = seq.next()) {
        assert.equal(positions[v], (before + 1) % LFSR_PERIOD);
        before = positions[v]!;
      }
    }
  });

  it("rejects a zero or out-of-range start state", () => {
    assert.throws(() => new RandomNumberSequence(0), RangeError);
    assert.throws(() => new RandomNumberSequence(0x8000), RangeError);
  });
});

describe("PSNTP", () => {
  it("counts up by one and wraps modulo 2^16", () => {
    const psn = new PacketSequence(0xfffe);
    assert.deepEqual([psn.next(), psn.next(), psn.next()], [0xfffe, 0xffff, 0]);
  });
  it("starts at a random value", () => {
    const starts = new Set(Array.from({ length: 20 }, () => new PacketSequence().next()));
    assert.ok(starts.size > 10);
  });
});

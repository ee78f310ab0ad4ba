import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { LFSR_PERIOD, MAX_KRI, PREVIOUS_KEY_GRACE_NS, ReceiverKriTracker, SenderRotation } from "../../pdm/index.ts";

describe("sender rotation", () => {
  it("starts at Kri 0 with F 0 and rotates after 32767 values, flipping F", () => {
    const r = new SenderRotation({ startState: () => 1 });
    const first = r.next(0)!;
    assert.equal(first.kri, 0);
    assert.equal(first.fBit, 0);
    for (let i = 1; i < LFSR_PERIOD; i += 1) assert.equal(r.next(i)!.kri, 0);
    const rotated = r.next(LFSR_PERIOD)!;
    assert.equal(rotated.kri, 1);
    assert.equal(rotated.fBit, 1);
  });

  it("rotates at the policy's packet limit and at the policy's age", () => {
    const byCount = new SenderRotation({ maxPacketsPerKri: 3 });
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6].map((t) => byCount.next(t)!.kri),
      [0, 0, 0, 1, 1, 1, 2],
    );
    const byAge = new SenderRotation({ maxKriAgeNs: 100 });
    assert.deepEqual(
      [0, 50, 99, 100, 150, 199, 200].map((t) => byAge.next(t)!.kri),
      [0, 0, 0, 1, 1, 1, 2],
    );
  });

  it("never repeats a (Kri, Random Number) pair", () => {
    const r = new SenderRotation({ maxPacketsPerKri: 1000 });
    const seen = new Set<string>();
    for (let i = 0; i < 100_000; i += 1) {
      const n = r.next(i)!;
      const id = `${n.kri}/${n.randomNumber}`;
      assert.ok(!seen.has(id), `repeat ${id}`);
      seen.add(id);
      assert.equal(n.fBit, n.kri & 1);
    }
  });
});

describe("receiver Kri tracking", () => {
  it("tries current, previous (within 2 s), next, filtered by F parity", () => {
    const t = new ReceiverKriTracker();
    t.accept(0, 0);
    assert.deepEqual(t.candidates(0, 1), [0]);
    assert.deepEqual(t.candidates(1, 1), [1]);
    t.accept(1, 10);
    assert.equal(t.kri, 1);
    assert.deepEqual(t.candidates(0, 20), [0, 2], "previous first while in grace");
    assert.deepEqual(t.candidates(0, 10 + PREVIOUS_KEY_GRACE_NS + 1), [2], "previous dropped after 2 s");
  });

  it("does not move on F alone: only accept() advances", () => {
    const t = new ReceiverKriTracker();
    t.accept(0, 0);
    t.candidates(1, 1);
    assert.equal(t.kri, 0);
  });

  it("searches ahead before the first success, for late joiners", () => {
    const t = new ReceiverKriTracker();
    assert.deepEqual(t.candidates(1, 0, 6), [1, 3, 5]);
  });

  it("caps Kri at 2^32-1", () => {
    const t = new ReceiverKriTracker(MAX_KRI);
    t.accept(MAX_KRI, 0);
    assert.deepEqual(t.candidates(0, 1), []);
    assert.deepEqual(t.candidates(1, 1), [MAX_KRI]);
  });
});

// What the key installer remembers of the sealing keys it gave (probes/kernel-keys/sealing-key-memory.ts):
// the fingerprint table against a JavaScript Set on random input, its size per key,
// and the generation bound: the last two generations remembered, older ones refused.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { FingerprintSet, LIVE_GENERATIONS, SealingKeyMemory } from "../../probes/kernel-keys/index.ts";

describe("FingerprintSet", () => {
  it("answers has/add as a Set does, on random 48-bit values that share their low bits", () => {
    // Values drawn from few low-bit patterns, so that probing chains run long and wrap.
    const print = fc
      .tuple(fc.integer({ min: 0, max: 2 ** 16 - 1 }), fc.integer({ min: 0, max: 7 }))
      .map(([high, low]) => high * 2 ** 32 + low + 1);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), print), { maxLength: 3000 }), (ops) => {
        const table = new FingerprintSet();
        const model = new Set<number>();
        for (const [isAdd, p] of ops) {
          if (isAdd) assert.equal(table.add(p), !model.has(p));
          else assert.equal(table.has(p), model.has(p));
          if (isAdd) model.add(p);
        }
        assert.equal(table.size, model.size);
        for (const p of model) assert.ok(table.has(p));
      }),
      { numRuns: 60 },
    );
  });

  it("holds a million fingerprints in at most 32 bytes each, all found, none invented", () => {
    const random = randomBytes(6 * 1_100_000);
    const value = (i: number): number => random.readUIntBE(6 * i, 6) || 1;
    const table = new FingerprintSet();
    for (let i = 0; i < 1_000_000; i += 1) table.add(value(i));
    assert.ok(table.size > 999_990, `${table.size} distinct`); // 48-bit values: a repeat is very unlikely
    for (let i = 0; i < 1_000_000; i += 1) assert.ok(table.has(value(i)));
    let invented = 0;
    for (let i = 1_000_000; i < 1_100_000; i += 1) if (table.has(value(i))) invented += 1;
    assert.ok(invented <= 1, `${invented} of 100,000 random values found`);
    assert.ok(table.bytes / table.size <= 32, `${table.bytes} bytes for ${table.size} fingerprints`);
  });
});

describe("SealingKeyMemory", () => {
  const key = (): Uint8Array => randomBytes(16);

  it("gives a key once; the same key again is 'given before', in its own generation only", () => {
    const memory = new SealingKeyMemory();
    const k = key();
    assert.equal(memory.recall(k, "g1"), "never given");
    assert.equal(memory.give(k, "g1"), "never given");
    assert.equal(memory.recall(k, "g1"), "given before");
    assert.equal(memory.give(k, "g1"), "given before");
    assert.equal(memory.recall(key(), "g1"), "never given");
    assert.deepEqual(memory.remembered.keys, 1);
  });

  it(`remembers the last ${LIVE_GENERATIONS} generations; an older one is retired and its keys refused from then on`, () => {
    const memory = new SealingKeyMemory();
    const keys = { g1: [key(), key()], g2: [key()], g3: [key(), key(), key()] };
    for (const k of keys.g1) memory.give(k, "g1");
    for (const k of keys.g2) memory.give(k, "g2");
    assert.equal(memory.remembered.keys, 3);
    assert.equal(memory.retiredCount, 0);
    for (const k of keys.g3) memory.give(k, "g3");
    assert.equal(memory.retiredCount, 1, "g3 retired g1");
    assert.equal(memory.remembered.keys, 4, "g2's key and g3's three");
    // A key of g1, given or not, is never given again: nothing proves it was not.
    assert.equal(memory.recall(keys.g1[0]!, "g1"), "retired generation");
    assert.equal(memory.give(key(), "g1"), "retired generation");
    assert.equal(memory.remembered.keys, 4, "a refused key is not remembered");
    assert.equal(memory.recall(keys.g2[0]!, "g2"), "given before", "the previous generation is still remembered");
  });
});

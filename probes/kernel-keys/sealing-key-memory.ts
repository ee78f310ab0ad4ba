// What the key installer remembers of the sealing keys it gave the kernel, so that it
// never gives one twice (keys.md 7: a flow the kernel forgot starts over with a fresh
// sequence, which under a key it had could repeat a nonce).
//
// A long-running agent gives two keys per new flow; a busy host starts thousands of
// flows a second. So the memory is bounded in two ways:
//
// - Per generation. A key derives from one generation's secret; keys of a generation
//   that no longer seals are never derived again. The memory of the last
//   LIVE_GENERATIONS generations is kept; an older one is retired, and a key of a
//   retired generation is never given again (the installer refuses it: nothing can
//   then prove it was not given before).
// - Compact. 48 bits of each key's SHA-256, in an open-addressing table of doubles
//   (16 bytes a key at worst, against some 40 in a Set, which also stops at 2^24
//   entries: the agent would throw after some eight million flows). A false match of
//   two fingerprints only makes the installer treat a new key as given: the flow
//   starts at a later Kri, which is safe.

import { createHash } from "node:crypto";

/** Generations whose keys are remembered: the sealing one and the one before (a renewal's boundary). */
export const LIVE_GENERATIONS = 2;
const INITIAL_SLOTS = 1024; // a power of two
const EMPTY = 0;

/** A set of 48-bit fingerprints (never 0), in a table that doubles at half full. */
export class FingerprintSet {
  private slots = new Float64Array(INITIAL_SLOTS);
  size = 0;

  has(print: number): boolean {
    return this.slots[this.find(this.slots, print)] === print;
  }

  /** Add `print`; false when it was there already. */
  add(print: number): boolean {
    const at = this.find(this.slots, print);
    if (this.slots[at] === print) return false;
    this.slots[at] = print;
    this.size += 1;
    if (this.size * 2 > this.slots.length) this.grow();
    return true;
  }

  /** Bytes the table holds (status). */
  get bytes(): number {
    return this.slots.byteLength;
  }

  /** Where `print` is, or the empty slot where it would go (linear probing; the table is never full). */
  private find(slots: Float64Array, print: number): number {
    const mask = slots.length - 1;
    let at = (print >>> 0) & mask; // the low 32 bits: a SHA-256 output is uniform already
    while (slots[at] !== EMPTY && slots[at] !== print) at = (at + 1) & mask;
    return at;
  }

  private grow(): void {
    const old = this.slots;
    const slots = new Float64Array(old.length * 2);
    for (const print of old) if (print !== EMPTY) slots[this.find(slots, print)] = print;
    this.slots = slots;
  }
}

/** A sealing key's fingerprint: 48 bits of its SHA-256, never 0 (the table's empty slot). */
export function fingerprint(key: Uint8Array): number {
  return createHash("sha256").update(key).digest().readUIntBE(0, 6) || 1;
}

export type Recall = "never given" | "given before" | "retired generation";

export class SealingKeyMemory {
  /** Live generations' fingerprints, oldest first (a Map keeps insertion order). */
  private readonly live = new Map<string, FingerprintSet>();
  private readonly retired = new Set<string>();
  /** Generations retired so far (status). */
  retiredCount = 0;

  /** Whether `key` of `generation` was given; it is not remembered by asking. */
  recall(key: Uint8Array, generation: string): Recall {
    if (this.retired.has(generation)) return "retired generation";
    return this.live.get(generation)?.has(fingerprint(key)) ? "given before" : "never given";
  }

  /** Remember `key` as given, unless it was (or its generation is retired): returns what it was before. */
  give(key: Uint8Array, generation: string): Recall {
    if (this.retired.has(generation)) return "retired generation";
    let prints = this.live.get(generation);
    if (!prints) {
      this.live.set(generation, (prints = new FingerprintSet()));
      this.retireBeyondLive();
    }
    return prints.add(fingerprint(key)) ? "never given" : "given before";
  }

  /** Fingerprints remembered, and the bytes they take (status). */
  get remembered(): { keys: number; bytes: number } {
    let keys = 0;
    let bytes = 0;
    for (const s of this.live.values()) {
      keys += s.size;
      bytes += s.bytes;
    }
    return { keys, bytes };
  }

  private retireBeyondLive(): void {
    for (const generation of this.live.keys()) {
      if (this.live.size <= LIVE_GENERATIONS) return;
      this.live.delete(generation);
      this.retired.add(generation); // a few bytes per generation: one every few hours
      this.retiredCount += 1;
    }
  }
}

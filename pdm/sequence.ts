// Per-5-tuple counters of wire.md sections 3 and 4.
//
// - PSNTP: starts at a random value, +1 per stamped packet, wraps modulo 2^16.
// - Random Number: a maximal-length 15-bit Galois LFSR (x^15 + x^14 + 1, mask 0x6000)
//   that visits all 32767 non-zero states exactly once per period, so a value never
//   repeats within one Kri as long as no more than 32767 values are drawn.

import { randomInt } from "node:crypto";

export const LFSR_MASK = 0x6000;
export const LFSR_PERIOD = 32767;

/** One Galois step: shift right, fold the tap mask in when a 1 falls out. */
export function lfsrStep(state: number): number {
  const out = state & 1;
  const next = state >>> 1;
  return out ? next ^ LFSR_MASK : next;
}

/** A random non-zero 15-bit state. */
export function randomLfsrState(): number {
  return randomInt(1, LFSR_PERIOD + 1);
}

/**
 * Where each 15-bit value lies on the LFSR's cycle: 0 for state 1, then +1 per step
 * (the 32767 non-zero states), and 32767 for 0, which the LFSR never produces. One
 * shared table (64 KiB), built on first use.
 *
 * A sender's consecutive values have consecutive positions, so a receiver's replay
 * memory indexed by position touches one cache line for many packets instead of a
 * random one each time.
 */
export function lfsrPositions(): Uint16Array {
  if (!positions) {
    positions = new Uint16Array(LFSR_PERIOD + 1);
    let state = 1;
    for (let i = 0; i < LFSR_PERIOD; i += 1) {
      positions[state] = i;
      state = lfsrStep(state);
    }
    positions[0] = LFSR_PERIOD;
  }
  return positions;
}
let positions: Uint16Array | undefined;

/**
 * The Random Number sequence of one Kri. Each draw steps the LFSR and returns the
 * new state, so the start state itself is drawn last (it closes the period).
 */
export class RandomNumberSequence {
  private state: number;
  private drawn = 0;

  constructor(startState: number = randomLfsrState()) {
    if (!Number.isInteger(startState) || startState < 1 || startState > LFSR_PERIOD) {
      throw new RangeError(`LFSR start state must be 1..32767, got ${startState}`);
    }
    this.state = startState;
  }

  /** Values still available before this Kri is exhausted. */
  get remaining(): number {
    return LFSR_PERIOD - this.drawn;
  }

  /** The next never-repeated value, or undefined once all 32767 are used. */
  next(): number | undefined {
    if (this.drawn >= LFSR_PERIOD) return undefined;
    this.state = lfsrStep(this.state);
    this.drawn += 1;
    return this.state;
  }
}

/** PSNTP of one 5-tuple. */
export class PacketSequence {
  private value: number;
  constructor(start: number = randomInt(0, 0x10000)) {
    if (!Number.isInteger(start) || start < 0 || start > 0xffff) {
      throw new RangeError(`PSNTP start must be 0..65535, got ${start}`);
    }
    this.value = start;
  }
  /** The PSNTP for the next stamped packet. */
  next(): number {
    const current = this.value;
    this.value = (this.value + 1) & 0xffff;
    return current;
  }
}

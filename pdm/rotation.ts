// Key Rotation Index (Kri) and F bit, wire.md section 4 and keys.md section 6.
//
// Sender: Kri starts at 0 for every flow and key generation (so F starts at 0). It
// rotates when the Random Number sequence of the current Kri is used up, or earlier
// when the policy's maximum key age is reached. Kri is 32 bits and never wraps:
// after Kri 2^32-1 the sender has nothing left to emit until keys are renewed.
//
// Receiver: follows the sender by the F bit and the tag. F only says which parity
// the sender's Kri has; the receiver tries current, previous (for 2 s after a
// rotation, for reordered packets) and next, keeping only candidates of that
// parity, and moves its copy forward only when a packet authenticates under the
// next key. A forged F bit therefore cannot push a receiver off its keys.

import { RandomNumberSequence, randomLfsrState } from "./sequence.ts";

export const MAX_KRI = 0xffff_ffff;
/** How long a receiver keeps trying the previous Kri after a rotation. */
export const PREVIOUS_KEY_GRACE_NS = 2_000_000_000;

/** keys.md section 6: the longest one Kri may stay in use. */
export const CRITICALITY_MAX_AGE_MS = {
  critical: 5 * 60_000,
  important: 10 * 60_000,
  medium: 30 * 60_000,
  low: 60 * 60_000,
} as const;
export type Criticality = keyof typeof CRITICALITY_MAX_AGE_MS;

export interface NonceInputs {
  kri: number;
  randomNumber: number; // 15 bits
  fBit: 0 | 1;
}

export interface SenderRotationOptions {
  /** Rotate when a Kri has been in use this long (policy), in ns of the caller's clock. */
  maxKriAgeNs?: number;
  /** Rotate after this many packets per Kri (<= 32767); used by demos and tests. */
  maxPacketsPerKri?: number;
  /** Source of LFSR start states; tests inject a deterministic one. */
  startState?: () => number;
}

/**
 * The sender side: hands out (Kri, Random Number, F) triples that never repeat
 * for one key generation. Returns undefined when Kri is exhausted.
 */
export class SenderRotation {
  private kriValue = 0;
  private sequence: RandomNumberSequence;
  private kriStartNs: number | undefined;
  private packetsInKri = 0;
  private exhausted = false;
  private readonly maxPackets: number;

  constructor(private readonly options: SenderRotationOptions = {}) {
    this.maxPackets = Math.min(options.maxPacketsPerKri ?? 32767, 32767);
    if (this.maxPackets < 1) throw new RangeError("maxPacketsPerKri must be at least 1");
    this.sequence = new RandomNumberSequence((options.startState ?? randomLfsrState)());
  }

  get kri(): number {
    return this.kriValue;
  }

  /** Draw the nonce inputs for the next protected packet sent at `nowNs`. */
  next(nowNs: number): NonceInputs | undefined {
    if (this.exhausted) return undefined;
    this.kriStartNs ??= nowNs;
    const tooOld = this.options.maxKriAgeNs !== undefined && nowNs - this.kriStartNs >= this.options.maxKriAgeNs;
    if (tooOld || this.packetsInKri >= this.maxPackets || this.sequence.remaining === 0) {
      if (!this.rotate(nowNs)) return undefined;
    }
    const randomNumber = this.sequence.next();
    if (randomNumber === undefined) return undefined; // unreachable: rotate() refilled it
    this.packetsInKri += 1;
    return { kri: this.kriValue, randomNumber, fBit: (this.kriValue & 1) as 0 | 1 };
  }

  private rotate(nowNs: number): boolean {
    if (this.kriValue >= MAX_KRI) {
      this.exhausted = true;
      return false;
    }
    this.kriValue += 1;
    this.sequence = new RandomNumberSequence((this.options.startState ?? randomLfsrState)());
    this.kriStartNs = nowNs;
    this.packetsInKri = 0;
    return true;
  }
}

/**
 * The receiver side: which Kri values to try for a packet, and what to remember
 * once one authenticated. Kri of a fresh flow is unknown to a receiver that joins
 * late (an analyzer on a capture started mid-flow), and a sender whose kernel forgot
 * the flow resumes it at a later Kri than F can tell: `initialKri` lets it start from
 * a guess, and `searchAhead` lists a wider window (the caller says when).
 */
export class ReceiverKriTracker {
  private current: number;
  private previousUntilNs = -Infinity;
  private synced = false;

  constructor(initialKri = 0) {
    this.current = initialKri;
  }

  get kri(): number {
    return this.current;
  }

  get isSynced(): boolean {
    return this.synced;
  }

  /** Kri values to try, best first, for a packet carrying `fBit`, received at `nowNs`. */
  candidates(fBit: 0 | 1, nowNs: number, searchAhead = 0): number[] {
    const out: number[] = [];
    const push = (kri: number): void => {
      if (kri >= 0 && kri <= MAX_KRI && (kri & 1) === fBit && !out.includes(kri)) out.push(kri);
    };
    push(this.current);
    if (nowNs <= this.previousUntilNs || !this.synced) push(this.current - 1);
    push(this.current + 1);
    for (let k = 0; k <= searchAhead; k += 1) push(this.current + k);
    return out;
  }

  /** Record that a packet authenticated under `kri` at `nowNs`. */
  accept(kri: number, nowNs: number): void {
    if (kri > this.current) {
      this.previousUntilNs = nowNs + PREVIOUS_KEY_GRACE_NS;
      this.current = kri;
    }
    this.synced = true;
  }
}

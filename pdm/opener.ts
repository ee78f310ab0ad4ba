// The receiving side of the protected layout for one sender 5-tuple: which key to
// try (Kri tracking, wire.md section 4), tag verification, replay detection, and
// GSO bursts (wire.md section 5) told apart from replays.
//
// Never reports an unverified sample: anything but "ok" carries no fields.
//
// Per packet of a synced flow this is the analyzer's hot path, so it allocates
// nothing of its own: the "ok" outcome is one object per opener, rewritten by each
// open() (read it before the next), and the verified key's opener is kept at hand.

import type { KeyOpener } from "./aead.ts";
import type { FlowKeyContext } from "./key-ring.ts";
import type { PdmV2Fields, PdmV2ProtectedOption } from "./option.ts";
import { ReceiverKriTracker } from "./rotation.ts";
import { lfsrPositions } from "./sequence.ts";

/** What open() found; an "ok" outcome is valid until the opener's next open(). */
export type OpenOutcome =
  | { status: "ok"; fields: PdmV2Fields; kri: number; keyId: string }
  | { status: "gso-repeat"; kri: number } // same stamp as the previous packet: one sample
  | { status: "replay"; kri: number }
  | { status: "auth-fail" }
  | { status: "no-key" };

const NO_KEY: OpenOutcome = Object.freeze({ status: "no-key" });
const AUTH_FAIL: OpenOutcome = Object.freeze({ status: "auth-fail" });

const LFSR_POSITIONS = lfsrPositions();

/** Values a Kri's list holds before it becomes a bitmap. */
const FEW_VALUES = 32;

/**
 * Exact replay memory for one Kri: the Random Number values seen. A short list while
 * there are few (most flows are short, and a capture may hold millions of them), then
 * one bit per value (4 KiB), at the value's position on the sender's LFSR cycle: in
 * packet order these bits are neighbours, where the values' own bits would be a cache
 * miss a packet once a capture interleaves many flows.
 */
class SeenValues {
  private few: Uint16Array | undefined = new Uint16Array(FEW_VALUES);
  private count = 0;
  private bits: Uint8Array | undefined;
  has(rn: number): boolean {
    if (this.bits) {
      const at = LFSR_POSITIONS[rn]!;
      return (this.bits[at >>> 3]! & (1 << (at & 7))) !== 0;
    }
    for (let i = 0; i < this.count; i += 1) if (this.few![i] === rn) return true;
    return false;
  }
  add(rn: number): void {
    if (!this.bits && this.count < FEW_VALUES) {
      this.few![this.count++] = rn;
      return;
    }
    if (!this.bits) {
      this.bits = new Uint8Array(4096);
      for (let i = 0; i < this.count; i += 1) this.setBit(this.few![i]!);
      this.few = undefined;
    }
    this.setBit(rn);
  }
  private setBit(rn: number): void {
    const at = LFSR_POSITIONS[rn]!;
    this.bits![at >>> 3]! |= 1 << (at & 7);
  }
}

export interface OpenerOptions {
  /**
   * How many Kri values past the current one to try when the flow is not where the
   * tracker expects: before the first success (a late joiner), and when a synced flow
   * stops opening (a sender that resumed a flow its kernel forgot, at a later Kri).
   */
  searchAhead?: number;
}

/** A flow silent this long whose next option fails may have been resumed: search at once. */
const RESUME_SILENCE_NS = 1e9;

export class ProtectedOpener {
  private readonly tracker = new ReceiverKriTracker();
  private readonly seen = new Map<number, SeenValues>();
  /** The replay memory of the Kri verified last: nearly every packet's, without a Map lookup. */
  private seenKri = -1;
  private seenNow: SeenValues | undefined;
  private context: FlowKeyContext | undefined;
  /** The verified context's opener at `fastKri`: the fast path's key without a Map lookup. */
  private fastOpener: KeyOpener | undefined;
  private fastKri = -1;
  private readonly ok: OpenOutcome & { status: "ok" } = {
    status: "ok",
    fields: undefined as unknown as PdmV2Fields,
    kri: 0,
    keyId: "",
  };
  /** The stamp verified last (-1: none). */
  private lastKri = -1;
  private lastRandomNumber = -1;
  /** Packets that failed before anything verified (paces the wide Kri search). */
  private failuresUnsynced = 0;
  /** Packets that failed since the last verified one (paces the search of a synced flow). */
  private failuresInRow = 0;
  private lastVerifiedNs = -Infinity;

  constructor(
    private readonly contexts: FlowKeyContext[],
    private readonly options: OpenerOptions = {},
  ) {}

  open(option: PdmV2ProtectedOption, nowNs: number): OpenOutcome {
    if (this.contexts.length === 0) return NO_KEY;
    // Fast path, nearly every packet of a synced flow: the verified context at the
    // tracker's current Kri, without building the candidate lists. Anything else
    // (a rotation, a reordered packet, a wrong tag) goes through the full search.
    const kri = this.tracker.kri;
    if (this.context && this.tracker.isSynced && (kri & 1) === option.fBit) {
      if (kri !== this.fastKri) {
        this.fastOpener = this.context.opener(kri);
        this.fastKri = kri;
      }
      const fields = this.fastOpener!.open(option, kri);
      if (fields) return this.afterVerified(option, fields, kri, this.context.keyId, nowNs);
    }
    // Once one context has verified, stay with it; until then try each.
    const contexts = this.context ? [this.context, ...this.contexts.filter((c) => c !== this.context)] : this.contexts;
    // The wide search costs one key derivation and one failed open per candidate.
    // With a wrong key log every packet would pay it, so while nothing has verified it
    // runs on failures 1, 2, 4, 8, ... only (the first packet of a flow that can be
    // opened still finds its Kri). A synced flow searches when its failures come in a
    // row (the 2nd, 4th, 8th, ...), or at once after a second of silence, which is how
    // a resumed flow looks: a forged option between good ones costs no search.
    const wide = this.tracker.isSynced
      ? (this.failuresInRow === 0 && nowNs - this.lastVerifiedNs >= RESUME_SILENCE_NS) ||
        (this.failuresInRow > 0 && isPowerOfTwo(this.failuresInRow + 1))
      : isPowerOfTwo(this.failuresUnsynced + 1);
    // The Kri values expected (current, previous, next) under every context first, then
    // the wide search: a flow has a context per possible client end (a SharedSecret key
    // log), and trying the wrong one's whole search first cost ~33 failed opens per new
    // flow direction, 2 ms each flow.
    const near = this.tracker.candidates(option.fBit, nowNs, 0);
    const ahead = wide
      ? this.tracker.candidates(option.fBit, nowNs, this.options.searchAhead ?? 0).filter((k) => !near.includes(k))
      : [];
    for (const kris of [near, ahead]) {
      for (const context of contexts) {
        for (const kri of kris) {
          const fields = context.opener(kri).open(option, kri);
          if (!fields) continue;
          if (context !== this.context) this.fastKri = -1;
          this.context = context;
          return this.afterVerified(option, fields, kri, context.keyId, nowNs);
        }
      }
    }
    if (!this.tracker.isSynced) this.failuresUnsynced += 1;
    this.failuresInRow += 1;
    return AUTH_FAIL;
  }

  private afterVerified(
    option: PdmV2ProtectedOption,
    fields: PdmV2Fields,
    kri: number,
    keyId: string,
    nowNs: number,
  ): OpenOutcome {
    let seen = kri === this.seenKri ? this.seenNow : this.seen.get(kri);
    if (!seen) {
      seen = new SeenValues();
      this.seen.set(kri, seen);
      for (const old of this.seen.keys()) if (old < kri - 1) this.seen.delete(old);
    }
    this.seenKri = kri;
    this.seenNow = seen;
    if (seen.has(option.randomNumber)) {
      // A GSO burst repeats the verified stamp byte for byte: one sample. Among verified
      // options, the same Kri and Random Number as the last one means the same bytes
      // (a sender never seals twice under one nonce), so no copy of them is kept.
      const sameStamp = kri === this.lastKri && option.randomNumber === this.lastRandomNumber;
      return sameStamp ? { status: "gso-repeat", kri } : { status: "replay", kri };
    }
    seen.add(option.randomNumber);
    this.tracker.accept(kri, nowNs);
    this.failuresInRow = 0;
    this.lastVerifiedNs = nowNs;
    this.lastKri = kri;
    this.lastRandomNumber = option.randomNumber;
    const ok = this.ok;
    ok.fields = fields;
    ok.kri = kri;
    ok.keyId = keyId;
    return ok;
  }
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

// The receiving side of the protected layout for one sender 5-tuple: which key to
// try (Kri tracking, wire.md section 4), tag verification, replay detection, and
// GSO bursts (wire.md section 5) told apart from replays.
//
// Never reports an unverified sample: anything but "ok" carries no fields.

import { openProtectedOption } from "./aead.ts";
import type { FlowKeyContext } from "./key-ring.ts";
import type { PdmV2Fields, PdmV2ProtectedOption } from "./option.ts";
import { ReceiverKriTracker } from "./rotation.ts";

export type OpenOutcome =
  | { status: "ok"; fields: PdmV2Fields; kri: number; keyId: string }
  | { status: "gso-repeat"; kri: number } // same stamp as the previous packet: one sample
  | { status: "replay"; kri: number }
  | { status: "auth-fail" }
  | { status: "no-key" };

/** One bit per Random Number value: exact replay memory for one Kri (4 KiB). */
class SeenValues {
  private readonly bits = new Uint8Array(4096);
  has(rn: number): boolean {
    return (this.bits[rn >>> 3]! & (1 << (rn & 7))) !== 0;
  }
  add(rn: number): void {
    this.bits[rn >>> 3]! |= 1 << (rn & 7);
  }
}

export interface OpenerOptions {
  /** How many Kri values past the guess to try before the first success (late joiners). */
  searchUnsynced?: number;
}

export class ProtectedOpener {
  private readonly tracker = new ReceiverKriTracker();
  private readonly seen = new Map<number, SeenValues>();
  private context: FlowKeyContext | undefined;
  private last: { kri: number; randomNumber: number; sealed: Uint8Array } | undefined;

  constructor(
    private readonly contexts: FlowKeyContext[],
    private readonly options: OpenerOptions = {},
  ) {}

  open(option: PdmV2ProtectedOption, nowNs: number): OpenOutcome {
    if (this.contexts.length === 0) return { status: "no-key" };
    // Fast path, nearly every packet of a synced flow: the verified context at the
    // tracker's current Kri, without building the candidate lists. Anything else
    // (a rotation, a reordered packet, a wrong tag) goes through the full search.
    const kri = this.tracker.kri;
    if (this.context && this.tracker.isSynced && (kri & 1) === option.fBit) {
      const opened = openProtectedOption(this.context.suite.aead, this.context.stk(kri), kri, option);
      if (opened.ok) return this.afterVerified(option, opened.value, kri, this.context.keyId, nowNs);
    }
    // Once one context has verified, stay with it; until then try each.
    const contexts = this.context ? [this.context, ...this.contexts.filter((c) => c !== this.context)] : this.contexts;
    const kris = this.tracker.candidates(option.fBit, nowNs, this.options.searchUnsynced ?? 0);
    for (const context of contexts) {
      for (const kri of kris) {
        const opened = openProtectedOption(context.suite.aead, context.stk(kri), kri, option);
        if (!opened.ok) continue;
        this.context = context;
        return this.afterVerified(option, opened.value, kri, context.keyId, nowNs);
      }
    }
    return { status: "auth-fail" };
  }

  private afterVerified(option: PdmV2ProtectedOption, fields: PdmV2Fields, kri: number, keyId: string, nowNs: number): OpenOutcome {
    let seen = this.seen.get(kri);
    if (!seen) {
      seen = new SeenValues();
      this.seen.set(kri, seen);
      for (const old of this.seen.keys()) if (old < kri - 1) this.seen.delete(old);
    }
    if (seen.has(option.randomNumber)) {
      const last = this.last;
      const sameStamp = last && last.kri === kri && last.randomNumber === option.randomNumber && equalBytes(last.sealed, option.sealed);
      return sameStamp ? { status: "gso-repeat", kri } : { status: "replay", kri };
    }
    seen.add(option.randomNumber);
    this.tracker.accept(kri, nowNs);
    const last = (this.last ??= { kri, randomNumber: 0, sealed: new Uint8Array(option.sealed.length) });
    last.kri = kri;
    last.randomNumber = option.randomNumber;
    last.sealed.set(option.sealed); // a copy: option.sealed is a view into a reused buffer
    return { status: "ok", fields, kri, keyId };
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
  return true;
}

// The receiving side of layout E protected (draft-layouts.md) for one sender 5-tuple:
// which key index an option's Epoch stands for (the nearest to the last accepted one
// with those low 12 bits, then the next and the previous), tag verification, replays
// and GSO repeats. As with -02's layout (opener.ts), nothing unverified is reported.

import {
  keyIndexCandidates,
  openDraft15,
  type DraftClearOption,
  type Draft15ProtectedOption,
} from "./draft-layouts.ts";
import type { FlowKeyContext } from "./key-ring.ts";

export type Draft15Outcome =
  | { status: "ok"; fields: DraftClearOption; index: number; keyId: string }
  | { status: "gso-repeat" }
  | { status: "replay" }
  | { status: "auth-fail" }
  | { status: "no-key" };

/** PSNTP values remembered per key index, to tell a replay: the latest this many. */
const REMEMBERED = 4096;

export class Draft15Opener {
  private context: FlowKeyContext | undefined;
  private lastIndex: number | undefined;
  /** Per key index, the PSNTPs accepted (insertion order: the oldest go first). */
  private readonly seen = new Map<number, Set<number>>();
  /** The last verified option's bytes (o2-39), to tell a GSO repeat without opening. */
  private last: Uint8Array | undefined;

  constructor(private readonly contexts: FlowKeyContext[]) {}

  open(option: Draft15ProtectedOption): Draft15Outcome {
    if (this.contexts.length === 0) return { status: "no-key" };
    const { bytes, at } = option;
    if (this.last && sameBytes(this.last, bytes, at + 2)) return { status: "gso-repeat" };
    // Before anything verified, the sender's first indexes: the Epoch itself and a few
    // wraps of it; after, the nearest to the last accepted one.
    const indexes =
      this.lastIndex === undefined
        ? [option.epoch, option.epoch + 4096, option.epoch + 8192]
        : keyIndexCandidates(this.lastIndex, option.epoch);
    const contexts = this.context ? [this.context, ...this.contexts.filter((c) => c !== this.context)] : this.contexts;
    for (const index of indexes) {
      for (const context of contexts) {
        const fields = openDraft15(context.suite.aead, context.stk(index), option);
        if (!fields) continue;
        this.context = context;
        let seen = this.seen.get(index);
        if (!seen) {
          seen = new Set();
          this.seen.set(index, seen);
          for (const old of this.seen.keys()) if (old < index - 1) this.seen.delete(old);
        }
        if (seen.has(option.psnTp)) return { status: "replay" };
        seen.add(option.psnTp);
        if (seen.size > REMEMBERED) seen.delete(seen.values().next().value!);
        if (this.lastIndex === undefined || index > this.lastIndex) this.lastIndex = index;
        this.last = bytes.slice(at + 2, at + 40);
        return { status: "ok", fields, index, keyId: context.keyId };
      }
    }
    return { status: "auth-fail" };
  }
}

function sameBytes(kept: Uint8Array, bytes: Uint8Array, from: number): boolean {
  if (from + kept.length > bytes.length) return false;
  for (let i = 0; i < kept.length; i += 1) if (kept[i] !== bytes[from + i]) return false;
  return true;
}

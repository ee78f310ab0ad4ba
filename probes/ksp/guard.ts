// Between the wire and a participant (groups.md 2): every datagram is decoded, its CKN
// matched and its ICV checked (AES-CMAC under ICK, over a pseudo-header of addresses
// and ports and the message) before the participant sees it; everything refused is
// counted by reason. Outgoing messages are signed here the same way. A source sending
// faster than the rate limit is dropped before any of that work.

import { timingSafeEqual } from "node:crypto";
import { aesCmac, deriveIck, deriveKek } from "./crypto.ts";
import { decodeMessage, encodeMessage, pseudoHeader, type DecodeFailure, type KspMessage } from "./mkpdu.ts";

export type DropReason = DecodeFailure | "unknown-ckn" | "bad-icv" | "rate-limited";

export const DROP_REASONS: readonly DropReason[] = [
  "truncated",
  "oversized",
  "unknown-parameter-set",
  "malformed",
  "no-icv",
  "unknown-ckn",
  "bad-icv",
  "rate-limited",
];

/** Where a datagram came from and went to: what the ICV's pseudo-header names. */
export interface Route {
  src: Uint8Array;
  srcPort: number;
  dst: Uint8Array;
  dstPort: number;
}

/** The connectivity key set (groups.md 2): the CKN names it, the CAK proves membership, the KGK makes SAKs. */
export interface ConnectivityKeys {
  ckn: Uint8Array;
  cak: Uint8Array;
  kgk: Uint8Array;
}

export interface RateLimit {
  /** Datagrams a source may send per second, on average. */
  perSecond: number;
  burst: number;
  /** Datagrams all sources together may send per second: a flood from spoofed sources gets at most this much work. */
  totalPerSecond: number;
}

/** A member of a 32-member group hears 16 messages a second with the default hello of 2 s. */
export const DEFAULT_RATE_LIMIT: RateLimit = { perSecond: 50, burst: 100, totalPerSecond: 2000 };
const MAX_SOURCES = 4096;

export class KspGuard {
  readonly ick: Buffer;
  readonly kek: Buffer;
  readonly dropped: Record<DropReason, number> = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<
    DropReason,
    number
  >;
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly total: { tokens: number; at: number };

  constructor(
    private readonly keys: ConnectivityKeys,
    private readonly now: () => number = Date.now,
    private readonly limit: RateLimit = DEFAULT_RATE_LIMIT,
  ) {
    this.total = { tokens: limit.totalPerSecond, at: now() };
    this.ick = deriveIck(keys.cak, keys.ckn);
    this.kek = deriveKek(keys.cak, keys.ckn);
  }

  sign(m: KspMessage, route: Route): Buffer {
    const head = pseudoHeader(route.src, route.srcPort, route.dst, route.dstPort);
    return encodeMessage(m, (unsigned) => aesCmac(this.ick, Buffer.concat([head, unsigned])));
  }

  /** The message, or the reason it was dropped (counted). Never throws. */
  open(datagram: Uint8Array, route: Route): KspMessage | DropReason {
    if (!this.admit(Buffer.from(route.src).toString("hex"))) return this.drop("rate-limited");
    const d = decodeMessage(datagram);
    if (!d.ok) return this.drop(d.reason);
    if (!Buffer.from(d.message.ckn).equals(Buffer.from(this.keys.ckn))) return this.drop("unknown-ckn");
    const head = pseudoHeader(route.src, route.srcPort, route.dst, route.dstPort);
    const want = aesCmac(this.ick, Buffer.concat([head, d.signed]));
    if (!timingSafeEqual(want, d.icv)) return this.drop("bad-icv");
    return d.message;
  }

  private drop(r: DropReason): DropReason {
    this.dropped[r] += 1;
    return r;
  }

  /**
   * A token bucket per source address, and one for all: a flood from one source costs a
   * map lookup per datagram, and one from many (spoofed) sources at most
   * `totalPerSecond` checks of 50 µs a second.
   */
  private admit(source: string): boolean {
    const now = this.now();
    const t = this.total;
    t.tokens = Math.min(this.limit.totalPerSecond, t.tokens + ((now - t.at) / 1000) * this.limit.totalPerSecond);
    t.at = now;
    if (t.tokens < 1) return false;
    let b = this.buckets.get(source);
    if (!b) {
      if (this.buckets.size >= MAX_SOURCES) this.buckets.clear();
      b = { tokens: this.limit.burst, at: now };
      this.buckets.set(source, b);
    }
    b.tokens = Math.min(this.limit.burst, b.tokens + ((now - b.at) / 1000) * this.limit.perSecond);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    t.tokens -= 1;
    return true;
  }
}

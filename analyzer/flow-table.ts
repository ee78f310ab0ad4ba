// Flow table and the pairing of wire.md section 3.
//
// For every packet a2 from one end whose PSNLR names the peer's packet b1
// (PSNLR(a2) = PSNTP(b1)), and where b1 answered the packet a2's sender sent just
// before a2 (PSNLR(b1) = PSNTP(a2) - 1), the pair yields one sample:
//   server delay        = DeltaTLR(b1)
//   round-trip delay    = DeltaTLS(a2) - DeltaTLR(b1)   (the network's share)
//   response time       = DeltaTLS(a2)
// The second condition makes sure DeltaTLS(a2) starts at the packet b1 answered;
// without it a pair would mix two different round trips.
//
// Also per direction: PSNTP gaps (loss before the observation point), late
// packets (reordering), and GSO bursts (identical stamps back to back) counted once.

import {
  KeyRing,
  ProtectedOpener,
  Draft15Opener,
  conversationPorts,
  hasWidePsn,
  decodeDeltaNs,
  IPPROTO_ICMPV6,
  isEchoReply,
  reverseFlow,
  type AnyLayout,
  type FlowTuple,
  type PdmRecord,
  type PdmTimes,
} from "../pdm/index.ts";
import { DelaySamples } from "./stats.ts";
import { StampHistory } from "./stamp-history.ts";

/** Where a conversation's samples go: exact rows (stats.ts, files) or histograms (delay-histogram.ts, live). */
export interface SampleSink {
  readonly length: number;
  add(timeNs: number, serverDelayNs: number, roundTripDelayNs: number, responseTimeNs: number): void;
}

/** Anomalies counted over the whole input (also per flow where they belong to one). */
export interface Counters {
  packets: number;
  pdmPackets: number;
  withoutPdm: number;
  malformed: number;
  authFail: number;
  replay: number;
  noKey: number;
  gsoRepeats: number;
  lost: number;
  reordered: number;
  /** Pairs that matched by PSNLR but not the previous packet: no sample. */
  unpaired: number;
  /** Samples with a delay longer than the flow had been in the capture (IMPLAUSIBLE_SLACK_NS): kept out unless asked. */
  implausible: number;
}

export const emptyCounters = (): Counters => ({
  packets: 0,
  pdmPackets: 0,
  withoutPdm: 0,
  malformed: 0,
  authFail: 0,
  replay: 0,
  noKey: 0,
  gsoRepeats: 0,
  lost: 0,
  reordered: 0,
  unpaired: 0,
  implausible: 0,
});

/**
 * How much longer than its flow had been seen in the capture a delay may be. Every
 * delay of a sample ends at or before its packet's capture time and starts after the
 * packet the client sent before it, which the capture saw unless the capture began
 * in between: that one earlier request is what this allows for. A peer that writes
 * its uptime as DeltaTLS (a published tc-BPF stamper does) reported a 2,290 s
 * response time on a 2 s flow; such a sample is counted, shown and kept out.
 */
export const IMPLAUSIBLE_SLACK_NS = 1e9;

class Direction {
  readonly tuple: FlowTuple;
  packets = 0;
  pdmPackets = 0;
  expectedPsn = -1;
  lastPsn = -1;
  readonly counters = emptyCounters();
  readonly sent = new StampHistory();
  opener: ProtectedOpener | undefined;
  draft15Opener: Draft15Opener | undefined;
  /** PSNTP modulus: 2^16, or 2^32 for the later drafts' C/D and E. */
  wide = false;

  /** `tuple` must not be a view into a packet buffer (Conversation copies it). */
  constructor(tuple: FlowTuple) {
    this.tuple = tuple;
  }
}

export class Conversation<S extends SampleSink = DelaySamples> {
  /** client -> server direction and the reverse. */
  readonly up: Direction;
  readonly down: Direction;
  layout: AnyLayout | undefined;
  firstNs = Infinity;
  lastNs = -Infinity;
  /** One sample per request the server answered: when, and the three delays. */
  readonly samples: S;
  /** Pairs where the client answered the server (client think time): counted, not reported as server delay. */
  reversePairs = 0;
  /** Next conversation with the same hash (collision chain). */
  nextInBucket: Conversation<S> | undefined;
  /** conversationHash of its packets (either direction). */
  hash = 0;
  /** The client's then the server's address as eight 32-bit words: what lookups compare. */
  readonly addressWords = new Int32Array(8);

  constructor(clientSide: FlowTuple, samples: S) {
    this.samples = samples;
    // Both directions share one copy of the two addresses (per-flow memory counts: a
    // capture may hold millions of flows).
    const addresses = new Uint8Array(32);
    addresses.set(clientSide.src, 0);
    addresses.set(clientSide.dst, 16);
    const up: FlowTuple = {
      src: addresses.subarray(0, 16),
      dst: addresses.subarray(16),
      sport: clientSide.sport,
      dport: clientSide.dport,
      proto: clientSide.proto,
    };
    this.up = new Direction(up);
    this.down = new Direction(reverseFlow(up));
    for (let i = 0; i < 4; i += 1) {
      this.addressWords[i] = word(this.up.tuple.src, 4 * i);
      this.addressWords[4 + i] = word(this.up.tuple.dst, 4 * i);
    }
  }
}

/**
 * Told of every PDM packet and every sample as they are counted (a metrics exporter):
 * `up` is true for the client -> server direction.
 */
export interface FlowObserver {
  pdmPacket(c: Conversation<SampleSink>, up: boolean): void;
  sample(c: Conversation<SampleSink>, serverDelayNs: number, roundTripDelayNs: number, responseTimeNs: number): void;
}

export interface FlowTableOptions<S extends SampleSink> {
  /** Told of every PDM packet and sample (metrics). */
  observer?: FlowObserver;
  keyRing?: KeyRing;
  /** Keep samples whose delays exceed the flow's age in the capture (counted either way). */
  keepImplausible?: boolean;
  /** A new conversation's sample store (default: exact rows, DelaySamples). */
  newSamples?: () => S;
}

export class FlowTable<S extends SampleSink = DelaySamples> {
  /** Conversations by symmetric hash; collisions chain through nextInBucket. */
  private readonly buckets = new Map<number, Conversation<S>>();
  /** Every conversation in the table, in order of first packet. */
  conversations: Array<Conversation<S>> = [];
  private last: Conversation<S> | undefined;
  private lastWasUp = true;
  readonly counters = emptyCounters();
  readonly malformedByCode = new Map<string, number>();
  readonly firstMalformed: Array<{ number: number; message: string }> = [];
  readonly firstImplausible: Array<{ number: number; message: string; kind: "implausible" }> = [];

  private readonly newSamples: () => S;

  constructor(private readonly options: FlowTableOptions<S> = {}) {
    this.newSamples = options.newSamples ?? ((() => new DelaySamples()) as unknown as () => S);
  }

  /**
   * Take out the conversations `ends` selects (a live capture's idle flows), handing
   * each to `ended`; their packets stay in the table's counters. A later packet of the
   * same 5-tuple starts a new conversation. Returns how many ended.
   */
  remove(ends: (c: Conversation<S>) => boolean, ended: (c: Conversation<S>) => void): number {
    const kept: Array<Conversation<S>> = [];
    let removed = 0;
    for (const c of this.conversations) {
      if (!ends(c)) {
        kept.push(c);
        continue;
      }
      removed += 1;
      this.unlink(c);
      if (c === this.last) this.last = undefined;
      ended(c);
    }
    if (removed > 0) this.conversations = kept;
    return removed;
  }

  private unlink(c: Conversation<S>): void {
    const head = this.buckets.get(c.hash);
    if (head === c) {
      if (c.nextInBucket) this.buckets.set(c.hash, c.nextInBucket);
      else this.buckets.delete(c.hash);
    } else {
      for (let p = head; p; p = p.nextInBucket) {
        if (p.nextInBucket === c) {
          p.nextInBucket = c.nextInBucket;
          break;
        }
      }
    }
    c.nextInBucket = undefined;
  }

  /** Feed one record. Never throws on bad data; everything odd is counted. */
  add(r: PdmRecord, hash: number = conversationHash(r)): void {
    this.counters.packets += 1;
    const conversation = this.lookup(r, hash);
    const isUp = this.lastWasUp;
    const direction = isUp ? conversation.up : conversation.down;
    const peer = isUp ? conversation.down : conversation.up;
    direction.packets += 1;
    direction.counters.packets += 1;
    if (r.timeNs < conversation.firstNs) conversation.firstNs = r.timeNs;
    if (r.timeNs > conversation.lastNs) conversation.lastNs = r.timeNs;

    if (r.pdmError) {
      this.count(direction, "malformed");
      this.malformedByCode.set(r.pdmError.code, (this.malformedByCode.get(r.pdmError.code) ?? 0) + 1);
      if (this.firstMalformed.length < 5) this.firstMalformed.push({ number: r.number, message: r.pdmError.message });
      return;
    }
    const pdm = r.pdm;
    if (!pdm) {
      this.count(direction, "withoutPdm");
      return;
    }
    conversation.layout ??= r.wireLayout ?? pdm.layout;

    let fields: PdmTimes;
    direction.wide = hasWidePsn(pdm.layout);
    if (pdm.layout === "v2-draft15-protected") {
      direction.draft15Opener ??= new Draft15Opener(
        this.options.keyRing?.contextsFor(direction.tuple, conversation.up.tuple.src) ?? [],
      );
      const outcome = direction.draft15Opener.open(pdm);
      if (outcome.status === "gso-repeat") return this.count(direction, "gsoRepeats");
      if (outcome.status === "replay") return this.count(direction, "replay");
      if (outcome.status === "auth-fail") return this.count(direction, "authFail");
      if (outcome.status === "no-key") return this.count(direction, "noKey");
      fields = outcome.fields;
    } else if (pdm.layout === "v2-protected") {
      // The conversation's client end is most likely the reader client whose keys sealed it.
      direction.opener ??= new ProtectedOpener(
        this.options.keyRing?.contextsFor(direction.tuple, conversation.up.tuple.src) ?? [],
        { searchAhead: 64 },
      );
      const outcome = direction.opener.open(pdm, r.timeNs);
      if (outcome.status === "gso-repeat") return this.count(direction, "gsoRepeats");
      if (outcome.status === "replay") return this.count(direction, "replay");
      if (outcome.status === "auth-fail") return this.count(direction, "authFail");
      if (outcome.status === "no-key") return this.count(direction, "noKey");
      fields = outcome.fields;
    } else {
      fields = pdm;
      // A GSO super-packet's segments carry the same stamp back to back: one sample.
      if (fields.psnTp === direction.lastPsn) return this.count(direction, "gsoRepeats");
    }
    this.counters.pdmPackets += 1; // (directly, not through count(): this line runs for every packet)
    direction.counters.pdmPackets += 1;
    direction.pdmPackets += 1;
    this.options.observer?.pdmPacket(conversation, isUp);
    direction.lastPsn = fields.psnTp;
    this.trackSequence(direction, fields.psnTp);

    const deltaTlrNs = decodeDeltaNs(fields.deltaTlr, fields.scaleDtlr);
    direction.sent.remember(fields.psnTp, fields.psnLr, deltaTlrNs);
    if (fields.psnLr === 0 && fields.deltaTls === 0) return; // nothing received yet on this flow
    const answer = peer.sent.recall(fields.psnLr);
    if (answer < 0) return;
    if (peer.sent.psnLrOf(answer) !== (direction.wide ? (fields.psnTp - 1) >>> 0 : (fields.psnTp - 1) & 0xffff)) {
      this.count(direction, "unpaired");
      return;
    }
    const responseTimeNs = decodeDeltaNs(fields.deltaTls, fields.scaleDtls);
    if (isUp) {
      const serverDelayNs = peer.sent.deltaTlrNsOf(answer);
      const ageNs = r.timeNs - conversation.firstNs + IMPLAUSIBLE_SLACK_NS;
      if (responseTimeNs > ageNs || serverDelayNs > ageNs) {
        this.count(direction, "implausible");
        if (this.firstImplausible.length < 2) {
          const what =
            responseTimeNs >= serverDelayNs
              ? `response time ${seconds(responseTimeNs)}`
              : `server delay ${seconds(serverDelayNs)}`;
          const age = seconds(r.timeNs - conversation.firstNs);
          this.firstImplausible.push({
            number: r.number,
            message: `${what} on a flow seen for ${age}: implausible, kept out of the statistics`,
            kind: "implausible",
          });
        }
        if (!this.options.keepImplausible) return;
      }
      conversation.samples.add(r.timeNs, serverDelayNs, responseTimeNs - serverDelayNs, responseTimeNs);
      this.options.observer?.sample(conversation, serverDelayNs, responseTimeNs - serverDelayNs, responseTimeNs);
    } else {
      conversation.reversePairs += 1;
    }
  }

  private count(direction: Direction, name: keyof Counters): void {
    this.counters[name] += 1;
    if (name !== "packets") direction.counters[name] += 1;
  }

  private trackSequence(d: Direction, psn: number): void {
    // PSNTP counts modulo 2^16 (RFC 8250, PDMv2 -02) or 2^32 (the later drafts).
    const next = d.wide ? (psn + 1) >>> 0 : (psn + 1) & 0xffff;
    if (d.expectedPsn < 0) {
      d.expectedPsn = next;
      return;
    }
    const ahead = d.wide ? (psn - d.expectedPsn) >>> 0 : (psn - d.expectedPsn) & 0xffff;
    if (ahead < (d.wide ? 0x8000_0000 : 0x8000)) {
      if (ahead > 0) {
        this.counters.lost += ahead;
        d.counters.lost += ahead;
      }
      d.expectedPsn = next;
    } else {
      // Behind what we expected: a late packet filling a gap we had counted as lost.
      this.counters.reordered += 1;
      d.counters.reordered += 1;
      if (d.counters.lost > 0) {
        d.counters.lost -= 1;
        this.counters.lost -= 1;
      }
    }
  }

  /** Find or create the conversation of `r`; sets lastWasUp to the packet's direction. */
  private lookup(r: PdmRecord, hash: number): Conversation<S> {
    // The hash first: comparing it rules out other conversations without touching addresses.
    const last = this.last;
    if (last && last.hash === hash) {
      const d = directionOf(last, r);
      if (d !== 0) {
        this.lastWasUp = d > 0;
        return last;
      }
    }
    const head = this.buckets.get(hash);
    for (let c = head; c; c = c.nextInBucket) {
      const d = directionOf(c, r);
      if (d !== 0) {
        this.last = c;
        this.lastWasUp = d > 0;
        return c;
      }
    }
    const tuple: FlowTuple = {
      src: r.addresses.subarray(r.srcOffset, r.srcOffset + 16),
      dst: r.addresses.subarray(r.dstOffset, r.dstOffset + 16),
      sport: r.sport,
      dport: r.dport,
      proto: r.proto,
    };
    const c = new Conversation(clientSideOf(tuple), this.newSamples()); // copies the addresses
    c.hash = hash;
    c.nextInBucket = head;
    this.buckets.set(hash, c);
    this.conversations.push(c);
    this.last = c;
    this.lastWasUp = directionOf(c, r) > 0;
    return c;
  }
}

/** The big-endian 32-bit word at b[at]. */
function word(b: Uint8Array, at: number): number {
  return (b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!;
}

/** b[at..at+16) equals the four words at words[from] (the last word first: addresses differ most at the end). */
function sameAddress(words: Int32Array, from: number, b: Uint8Array, at: number): boolean {
  return (
    word(b, at + 12) === words[from + 3] &&
    word(b, at + 8) === words[from + 2] &&
    word(b, at + 4) === words[from + 1] &&
    word(b, at) === words[from]
  );
}

/** 1 when `r` travels client -> server in `c`, -1 when server -> client, 0 when not in `c`. */
function directionOf(c: Conversation<SampleSink>, r: PdmRecord): number {
  const up = c.up.tuple;
  if (up.proto !== r.proto) return 0;
  const w = c.addressWords; // client address at 0, server address at 4
  const b = r.addresses;
  if (
    r.sport === up.sport &&
    r.dport === up.dport &&
    sameAddress(w, 0, b, r.srcOffset) &&
    sameAddress(w, 4, b, r.dstOffset)
  )
    return 1;
  const down = c.down.tuple;
  if (
    r.sport === down.sport &&
    r.dport === down.dport &&
    sameAddress(w, 4, b, r.srcOffset) &&
    sameAddress(w, 0, b, r.dstOffset)
  )
    return -1;
  return 0;
}

function addressHash(b: Uint8Array, at: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < 16; i += 4) {
    h = Math.imul(h ^ word(b, at + i), 0x01000193);
    h ^= h >>> 15;
  }
  return h;
}

/** Equal for both directions of a conversation (ICMPv6 echo: the identifier only). Unsigned 32-bit. */
export function conversationHash(r: PdmRecord): number {
  const addresses = addressHash(r.addresses, r.srcOffset) ^ addressHash(r.addresses, r.dstOffset);
  return (Math.imul(addresses ^ conversationPorts(r.proto, r.sport, r.dport), 0x85ebca6b) ^ r.proto) >>> 0;
}

/**
 * Which end is the client, from the first packet seen: an ICMPv6 echo reply or a
 * packet from a well-known port to an ephemeral one comes from the server;
 * otherwise the first sender is the client.
 */
function clientSideOf(first: FlowTuple): FlowTuple {
  if (first.proto === IPPROTO_ICMPV6) return isEchoReply(first) ? reverseFlow(first) : first;
  if (first.sport < 1024 && first.dport >= 1024) return reverseFlow(first);
  return first;
}

const seconds = (ns: number): string => `${(ns / 1e9).toFixed(3)} s`;

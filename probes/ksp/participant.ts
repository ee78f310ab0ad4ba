// One member of a Key Selection Protocol group (groups.md 2), as a state machine with
// no I/O and no clock of its own: the transport hands it verified messages and asks it
// what to send; a clock (real or fake) drives `tick()`. That keeps every rule here
// testable with a fake clock and an in-memory bus.
//
// Liveness. A peer is potential once heard, live once a message of its lists our MI with
// our current or previous MN (it heard us recently), and gone after `life` of silence.
// A message whose MN is not above the last one seen from its MI is dropped; a restart
// is a new MI, and a new MI from a known member id replaces the old one.
//
// Key selection. The key server is the live member (ourselves included) with the lowest
// priority value, ties to the lowest member id, elected again on every change of the
// live list. It picks a fresh 16-byte KN for a new generation when the live list changed
// since its generation was made (at most once per `minRekey`), when the generation has
// served `rotation`, or when there is none; the KN travels wrapped under KEK. Every
// member derives SAK = AES(KGK, KN) and from it the generation's SharedSecret and salt.
// A KN is accepted once per CKN (the memory survives restarts), and a generation number
// never goes back.
//
// Switching, make-before-break. A generation is installed for receiving at once; a
// member seals with it once every live peer's key use shows it installed (or `life`
// has passed), and retires the one before `retire` later.

import { deriveKeyId, hex, type Suite } from "../../pdm/index.ts";
import { kspSecrets, sakOf, unwrapKey, wrapKey } from "./crypto.ts";
import type { KeyUse, KspMessage, PeerEntry } from "./mkpdu.ts";

export interface KspTimers {
  helloMs: number;
  lifeMs: number;
  retireMs: number;
  minRekeyMs: number;
  /** How long one generation serves before the key server makes the next (keys.md 6). */
  rotationMs: number;
}

export const KSP_TIMER_DEFAULTS: KspTimers = {
  helloMs: 2000,
  lifeMs: 6000,
  retireMs: 3000,
  minRekeyMs: 6000,
  rotationMs: 40 * 60_000,
};

/** KNs seen (per CKN) and the highest generation, kept across restarts (a 0600 file in the agent). */
export interface KnMemory {
  has(knHex: string): boolean;
  add(knHex: string, generation: number): void;
  readonly highestGeneration: number;
}

export function memoryKnStore(): KnMemory {
  const seen = new Set<string>();
  let highest = 0;
  return {
    has: (k) => seen.has(k),
    add(k, g) {
      seen.add(k);
      highest = Math.max(highest, g);
    },
    get highestGeneration() {
      return highest;
    },
  };
}

export interface KspParticipantOptions {
  ckn: Uint8Array;
  kgk: Uint8Array;
  kek: Uint8Array;
  memberId: Uint8Array;
  priority: number;
  suite: Suite;
  timers: KspTimers;
  kns: KnMemory;
  now: () => number;
  random: (n: number) => Uint8Array;
  /**
   * Whether this member still follows a group master (hybrid mode): while it or any live
   * peer does, the master's generations rule and the key server makes none.
   */
  served?: () => boolean;
  /** Generations made elsewhere (a group master's) that this protocol's numbers continue above. */
  generationFloor?: () => number;
}

/** A generation as this member holds it. */
export interface KspGeneration {
  generation: number;
  keyIdHex: string;
  keyId: Uint8Array;
  serverMi: Uint8Array;
  sharedSecret: Uint8Array;
  salt: Uint8Array;
  suite: Suite;
  installedAt: number;
  /** When this member began sealing with it (undefined: receiving only). */
  sealingSince?: number;
}

export type KspEvent =
  | { type: "installed"; generation: KspGeneration }
  | { type: "sealing"; generation: KspGeneration }
  | { type: "retired"; generation: KspGeneration }
  | { type: "elected"; keyServer: string; self: boolean }
  | { type: "peer-live"; memberId: string }
  | { type: "peer-gone"; memberId: string }
  | { type: "peer-restarted"; memberId: string };

/** Why a verified message was not used (the transport counts the earlier reasons). */
export type KspRefusal =
  | "stale-mn" // an MN not above the last one seen from that MI
  | "own-member-id" // someone else speaking with our member id
  | "bad-key" // a distributed key that does not unwrap
  | "kn-reused" // a KN seen before
  | "stale-generation" // a generation number not above every one seen
  | "not-key-server"; // a distributed key from a member we do not elect

interface Peer {
  mi: Uint8Array;
  miHex: string;
  memberId: Uint8Array;
  memberIdHex: string;
  priority: number;
  mn: number;
  heardAt: number;
  live: boolean;
  served: boolean;
  keyUse?: KeyUse;
  /** The generation this peer asks to replace, if it asks. */
  keyRequest?: number;
}

export class KspParticipant {
  readonly mi: Uint8Array;
  private mn = 0;
  private readonly peers = new Map<string, Peer>();
  private generations: KspGeneration[] = []; // oldest first: at most the sealing one, the next, and one retiring
  private keyServerHex: string | undefined;
  /** The live list (MIs, sorted) when the key server last distributed. */
  private liveAtRekey = "";
  private lastRekeyAt = -Infinity;
  private lastHelloAt = -Infinity;
  private wantsToSend = true;
  private pendingKey: { generation: number; wrapped: Uint8Array } | undefined;
  /** The generation this member asked to replace (requestNewKey), until a newer one comes. */
  private asking: number | undefined;
  private readonly events: KspEvent[] = [];
  readonly refused: Record<KspRefusal, number> = {
    "stale-mn": 0,
    "own-member-id": 0,
    "bad-key": 0,
    "kn-reused": 0,
    "stale-generation": 0,
    "not-key-server": 0,
  };

  constructor(private readonly o: KspParticipantOptions) {
    this.mi = o.random(12);
    this.memberIdHex = hex(o.memberId);
  }

  readonly memberIdHex: string;

  /** Events since the last call (installed, sealing, retired, elections, peers). */
  drainEvents(): KspEvent[] {
    return this.events.splice(0);
  }

  /** A message whose CKN and ICV the transport has checked. Returns why it was refused, if it was. */
  receive(m: KspMessage): KspRefusal | undefined {
    const now = this.o.now();
    const miHex = hex(m.mi);
    const memberIdHex = hex(m.memberId);
    if (memberIdHex === this.memberIdHex) return this.refuse("own-member-id");
    let peer = this.peers.get(miHex);
    if (peer && m.mn <= peer.mn) return this.refuse("stale-mn");
    if (!peer) {
      // A new incarnation of a member we knew replaces the old one.
      for (const [k, p] of this.peers) {
        if (p.memberIdHex === memberIdHex) {
          this.peers.delete(k);
          this.events.push({ type: "peer-restarted", memberId: memberIdHex });
        }
      }
      peer = {
        mi: m.mi,
        miHex,
        memberId: m.memberId,
        memberIdHex,
        priority: m.priority,
        mn: m.mn,
        heardAt: now,
        live: false,
        served: false,
      };
      this.peers.set(miHex, peer);
      this.wantsToSend = true; // answer at once: it learns our MN, and can list us
    }
    peer.mn = m.mn;
    peer.heardAt = now;
    peer.priority = m.priority;
    peer.served = m.served === true;
    peer.keyRequest = m.keyRequest;
    peer.keyUse = m.keyUse;
    const ours = m.live.find((e) => sameBytes(e.mi, this.mi)) ?? m.potential.find((e) => sameBytes(e.mi, this.mi));
    const heardUs = ours !== undefined && ours.mn >= this.mn - 1 && ours.mn <= this.mn;
    if (heardUs && !peer.live) {
      peer.live = true;
      this.wantsToSend = true;
      this.events.push({ type: "peer-live", memberId: memberIdHex });
      this.elect();
    }
    if (m.distributedKey && peer.live) return this.acceptKey(peer, m.distributedKey);
    this.maybeSwitch();
    return undefined;
  }

  private refuse(r: KspRefusal): KspRefusal {
    this.refused[r] += 1;
    return r;
  }

  private acceptKey(from: Peer, key: { generation: number; wrapped: Uint8Array }): KspRefusal | undefined {
    if (from.memberIdHex !== this.keyServerHex) return this.refuse("not-key-server");
    const newest = this.generations[this.generations.length - 1];
    if (newest && newest.generation === key.generation && sameBytes(newest.serverMi, from.mi)) return undefined; // sent again
    if (key.generation <= Math.max(this.o.kns.highestGeneration, newest?.generation ?? 0))
      return this.refuse("stale-generation");
    const kn = unwrapKey(this.o.kek, key.wrapped);
    if (!kn || kn.length !== 16) return this.refuse("bad-key");
    if (this.o.kns.has(kn.toString("hex"))) return this.refuse("kn-reused");
    this.install(key.generation, kn, from.mi);
    return undefined;
  }

  private install(generation: number, kn: Uint8Array, serverMi: Uint8Array): void {
    this.o.kns.add(Buffer.from(kn).toString("hex"), generation);
    const { sharedSecret, salt } = kspSecrets(this.o.ckn, sakOf(this.o.kgk, kn));
    const keyId = deriveKeyId(this.o.suite.kdf, sharedSecret, salt);
    const g: KspGeneration = {
      generation,
      keyId,
      keyIdHex: hex(keyId),
      serverMi,
      sharedSecret,
      salt,
      suite: this.o.suite,
      installedAt: this.o.now(),
    };
    this.generations.push(g);
    this.wantsToSend = true; // our key use tells the others
    this.events.push({ type: "installed", generation: g });
    this.maybeSwitch();
  }

  /** The live peers and ourselves: the key server is the lowest (priority, member id). */
  private elect(): void {
    const live = [...this.peers.values()].filter((p) => p.live);
    let best = { priority: this.o.priority, id: this.memberIdHex };
    for (const p of live) {
      if (p.priority < best.priority || (p.priority === best.priority && p.memberIdHex < best.id))
        best = { priority: p.priority, id: p.memberIdHex };
    }
    const elected = live.length === 0 ? undefined : best.id;
    if (elected !== this.keyServerHex) {
      this.keyServerHex = elected;
      if (elected) this.events.push({ type: "elected", keyServer: elected, self: elected === this.memberIdHex });
    }
  }

  get isKeyServer(): boolean {
    return this.keyServerHex === this.memberIdHex;
  }

  private liveList(): string {
    return [...this.peers.values()]
      .filter((p) => p.live)
      .map((p) => p.miHex)
      .sort()
      .join(",");
  }

  /** Seal with the newest generation once every live peer has it installed (or `life` passed); retire the old. */
  private maybeSwitch(): void {
    const now = this.o.now();
    const newest = this.generations[this.generations.length - 1];
    if (newest && newest.sealingSince === undefined) {
      const live = [...this.peers.values()].filter((p) => p.live);
      const everyone = live.every((p) => {
        const l = p.keyUse?.latest;
        return l !== undefined && l.rx && l.keyNumber === newest.generation && sameBytes(l.serverMi, newest.serverMi);
      });
      if (everyone || now - newest.installedAt >= this.o.timers.lifeMs) {
        newest.sealingSince = now;
        this.wantsToSend = true;
        this.events.push({ type: "sealing", generation: newest });
      }
    }
    // Generations before the sealing one go `retire` after the switch.
    const sealing = [...this.generations].reverse().find((g) => g.sealingSince !== undefined);
    if (!sealing) return;
    this.generations = this.generations.filter((g) => {
      const old = g.generation < sealing.generation;
      if (old && now - sealing.sealingSince! >= this.o.timers.retireMs) {
        this.events.push({ type: "retired", generation: g });
        return false;
      }
      return true;
    });
  }

  /** Advance the clock's work: age peers, elect, rekey as key server, switch. Returns a message when one is due. */
  tick(): KspMessage | undefined {
    const now = this.o.now();
    for (const [k, p] of this.peers) {
      if (now - p.heardAt > this.o.timers.lifeMs) {
        this.peers.delete(k);
        if (p.live) this.events.push({ type: "peer-gone", memberId: p.memberIdHex });
        this.wantsToSend = true;
      }
    }
    this.elect();
    if (this.isKeyServer && !this.anyServed()) this.maybeRekey(now);
    this.maybeSwitch();
    if (!this.wantsToSend && now - this.lastHelloAt < this.o.timers.helloMs) return undefined;
    this.wantsToSend = false;
    this.lastHelloAt = now;
    return this.message();
  }

  /** This member or a live peer still follows a group master. */
  private anyServed(): boolean {
    if (this.o.served?.()) return true;
    for (const p of this.peers.values()) if (p.live && p.served) return true;
    return false;
  }

  /**
   * Ask the key server for a new generation to replace the newest (groups.md 2: "when a
   * member asks"; a flow of this member's ran out of Kri). The request rides on every
   * message until a newer generation comes.
   */
  requestNewKey(): void {
    const newest = this.generations[this.generations.length - 1];
    if (!newest) return;
    this.asking = newest.generation;
    this.wantsToSend = true;
  }

  private maybeRekey(now: number): void {
    const newest = this.generations[this.generations.length - 1];
    const live = this.liveList();
    const mine = newest !== undefined && sameBytes(newest.serverMi, this.mi);
    const asked =
      newest !== undefined &&
      (this.asking === newest.generation ||
        [...this.peers.values()].some((p) => p.live && p.keyRequest === newest.generation));
    const due =
      newest === undefined ||
      asked ||
      !mine || // the key server changed: the new one makes its own
      live !== this.liveAtRekey ||
      now - newest.installedAt >= this.o.timers.rotationMs;
    if (!due || now - this.lastRekeyAt < this.o.timers.minRekeyMs) return;
    const kn = this.o.random(16);
    // Above every generation this member has seen in any live peer's key use too: a key
    // server newly elected (it joined, or a partition healed) never goes back.
    const used = [...this.peers.values()]
      .filter((p) => p.live)
      .flatMap((p) => [p.keyUse?.latest.keyNumber ?? 0, p.keyUse?.old?.keyNumber ?? 0]);
    const floor = this.o.generationFloor?.() ?? 0;
    const generation = Math.max(this.o.kns.highestGeneration, newest?.generation ?? 0, floor, ...used) + 1;
    this.lastRekeyAt = now;
    this.liveAtRekey = live;
    this.pendingKey = { generation, wrapped: wrapKey(this.o.kek, kn) };
    this.install(generation, kn, this.mi);
  }

  private message(): KspMessage {
    this.mn += 1;
    const entries = (live: boolean): PeerEntry[] =>
      [...this.peers.values()].filter((p) => p.live === live).map((p) => ({ mi: p.mi, mn: p.mn }));
    const newest = this.generations[this.generations.length - 1];
    const older = this.generations[this.generations.length - 2];
    const m: KspMessage = {
      priority: this.o.priority,
      keyServer: this.isKeyServer,
      served: this.o.served?.() ?? false,
      memberId: this.o.memberId,
      mi: this.mi,
      mn: this.mn,
      ckn: this.o.ckn,
      live: entries(true),
      potential: entries(false),
    };
    const seen = Math.max(this.o.kns.highestGeneration, this.o.generationFloor?.() ?? 0);
    if (!newest && seen > 0) {
      // No generation yet (a restart): say how far this member has seen, so that the key
      // server numbers its next one above (rx false: nothing installed).
      m.keyUse = {
        latest: { serverMi: new Uint8Array(12), keyNumber: seen, tx: false, rx: false },
        old: undefined,
      };
    }
    if (newest) {
      m.keyUse = {
        latest: {
          serverMi: newest.serverMi,
          keyNumber: newest.generation,
          tx: newest.sealingSince !== undefined,
          rx: true,
        },
        old: older
          ? { serverMi: older.serverMi, keyNumber: older.generation, tx: newest.sealingSince === undefined, rx: true }
          : undefined,
      };
    }
    if (this.asking !== undefined && newest?.generation === this.asking) m.keyRequest = this.asking;
    // The key server repeats its newest key until every live peer uses it.
    if (this.isKeyServer && this.pendingKey && newest?.generation === this.pendingKey.generation) {
      m.distributedKey = this.pendingKey;
      if (newest.sealingSince !== undefined) this.pendingKey = undefined;
    }
    return m;
  }

  /** What `pdm status` shows: peers live and potential, the key server, the generations. */
  status() {
    const peers = [...this.peers.values()];
    return {
      memberId: this.memberIdHex,
      mi: hex(this.mi),
      mn: this.mn,
      keyServer: this.keyServerHex,
      isKeyServer: this.isKeyServer,
      live: peers.filter((p) => p.live).map((p) => p.memberIdHex),
      potential: peers.filter((p) => !p.live).map((p) => p.memberIdHex),
      generations: this.generations.map((g) => ({
        generation: g.generation,
        keyId: g.keyIdHex,
        sealing: g.sealingSince !== undefined,
      })),
      refused: { ...this.refused },
    };
  }

  /** The generation this member seals with now. */
  get sealing(): KspGeneration | undefined {
    return [...this.generations].reverse().find((g) => g.sealingSince !== undefined);
  }
}

/** Byte-wise equality without allocating (a member compares MIs on every message). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
  return true;
}

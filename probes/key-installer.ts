// Installs protected-layout keys where the kernel asks for them. The data path writes
// a record to pdm_key_needs when a flow needs keys (pdm_abi.h): its own STKs for a Kri
// and the next (a new flow, a rotation, a packet that left without PDM), or its
// peer's (an option nothing installed could open, or a peer at the last Kri
// installed). The installer derives each STK through `stk` (the agent's key store,
// or a key log) and writes it into pdm_keys or pdm_peer_keys, so that the next Kri's
// key is in place before the sender rotates to it. A flow's first need brings the
// first keys of both directions: the answers to a flow this host starts are read from
// the first, and a host answering a flow (its kernel asks when the flow's first packet
// arrives, with or without PDM) seals its first answer.
//
// A sealing key is given to the kernel once. A flow the kernel forgot (idle past
// `attach --flow-timeout`, or a data path attached again) starts over at Kri 0 with a
// fresh random sequence, which under the same key could repeat a nonce the flow used
// before. So when the kernel asks again for a sealing key it already had, the
// installer refuses (counted, said once per flow): that flow leaves without PDM until
// the next key generation brings new keys (keys.md 7).

import { createHash } from "node:crypto";
import { formatFlow, type FlowTuple } from "../pdm/index.ts";
import { FLOW_KEY, FLOW_KEYS, KEY_NEED, PDM_KEY_SLOTS, PDM_NEED } from "./abi.ts";
import { encodeFlowKey, installFlowKey } from "./flow-keys.ts";
import type { NativeBpf, NativeRingBuffer } from "./native.ts";

/**
 * The STK that `sender` (a 5-tuple as wire.md section 3 defines it) seals with under
 * `kri`, undefined if unknown. `side` says which end is this host: "own" when this
 * host is the sender (its source), "peer" when it receives (its destination).
 */
export type StkSource = (sender: FlowTuple, kri: number, side: "own" | "peer") => Uint8Array | undefined;

export interface KeyInstallerMaps {
  keys: number;
  peerKeys: number;
  keyNeeds: number;
  /** An AES-128-GCM data path: the fd of its pdm_gcm_install program (STKs of 16 bytes). */
  gcmInstall?: number;
}

export interface KeyInstallerStats {
  /** Need records read from the kernel (a flow missing keys asks at most every 10 ms). */
  needs: number;
  /** STKs written into the kernel. */
  installed: number;
  /** Needs no STK was found for (the key source does not know the flow; asked again at most once a second). */
  unknown: number;
  /** Needs of flows that are neither TCP, UDP nor ICMPv6 echo. */
  unsupported: number;
  /** STKs the kernel refused (a wrong size for the data path's AEAD, no room). */
  failed: number;
  /** Sealing keys asked for again after the kernel forgot their flow: refused, so no nonce repeats. */
  refused: number;
}

const ICMPV6 = 58;
const ECHO_REQUEST = 128;
const ECHO_REPLY = 129;
const MAX_REMEMBERED_FLOWS = 100_000;
const UNKNOWN_RETRY_MS = 1000;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;

export class KeyInstaller {
  readonly stats: KeyInstallerStats = { needs: 0, installed: 0, unknown: 0, unsupported: 0, failed: 0, refused: 0 };
  /** Kri values already installed per (map, sender): a need repeated by many packets costs one derivation. */
  private readonly done = new Map<string, Set<number>>();
  private ring: NativeRingBuffer | undefined;
  /** Every sealing key given to the kernel, by fingerprint (48 bits of its SHA-256). */
  private readonly sealingKeysGiven = new Set<number>();
  /** Flows (by `done` id) the key source had no key for, and when it was last asked. */
  private readonly unknownFlows = new Map<string, number>();
  /** Sealing keys refused, per flow (by `done` id): each packet asks again; one answer is enough. */
  private readonly refusedFlows = new Map<string, Set<number>>();

  constructor(
    private readonly native: NativeBpf,
    private maps: KeyInstallerMaps,
    private stk: StkSource,
    private readonly onProblem: (message: string) => void = () => {},
  ) {}

  /** Start reading needs as the kernel writes them (uv_poll on the ring buffer). */
  start(): void {
    this.ring ??= new this.native.RingBuffer(this.maps.keyNeeds, KEY_NEED.size, (records, count) => {
      for (let i = 0; i < count; i += 1) this.handle(records.subarray(i * KEY_NEED.size, (i + 1) * KEY_NEED.size));
    });
  }

  /**
   * Serve another data path (the interface was attached again: new maps behind the
   * pins), with the key source for its AEAD. The sealing keys given so far are still
   * remembered, so flows the new data path starts over are refused their old keys.
   */
  retarget(maps: KeyInstallerMaps, stk: StkSource): void {
    const running = this.ring !== undefined;
    this.close();
    this.maps = maps;
    this.stk = stk;
    this.done.clear();
    this.refusedFlows.clear();
    if (running) this.start();
  }

  /** The maps served now. */
  get target(): KeyInstallerMaps {
    return this.maps;
  }

  /** Handle what is waiting now (tests, and a final drain before stopping). */
  consume(): void {
    this.start();
    this.ring!.consume();
  }

  close(): void {
    this.ring?.close();
    this.ring = undefined;
  }

  /** One pdm_key_need record. */
  handle(record: Buffer): void {
    this.stats.needs += 1;
    const f = KEY_NEED.offset("flow");
    const local = record.subarray(f + FLOW_KEY.offset("local"), f + FLOW_KEY.offset("local") + 16);
    const remote = record.subarray(f + FLOW_KEY.offset("remote"), f + FLOW_KEY.offset("remote") + 16);
    const localPort = record.readUInt16LE(f + FLOW_KEY.offset("local_port"));
    const remotePort = record.readUInt16LE(f + FLOW_KEY.offset("remote_port"));
    const proto = record[f + FLOW_KEY.offset("proto")]!;
    const kri = record.readUInt32LE(KEY_NEED.offset("kri"));
    const kind = record[KEY_NEED.offset("kind")]!;
    let ownSport = localPort;
    let peerSport = remotePort;
    if (proto === ICMPV6) {
      // The kernel keys an echo flow by its identifier (both "ports"); the sender's
      // 5-tuple (wire.md 3) has the type/code word as source port: the record says
      // which type the sender sends.
      const type = record[KEY_NEED.offset("icmp_type")]!;
      if (type !== ECHO_REQUEST && type !== ECHO_REPLY) {
        this.stats.unsupported += 1;
        return;
      }
      ownSport = peerSport = type << 8;
    } else if (proto !== IPPROTO_TCP && proto !== IPPROTO_UDP) {
      this.stats.unsupported += 1;
      return;
    }
    const ownSender = (sport: number): FlowTuple => ({ src: Uint8Array.from(local), dst: Uint8Array.from(remote), sport, dport: remotePort, proto });
    const peerSender = (sport: number): FlowTuple => ({ src: Uint8Array.from(remote), dst: Uint8Array.from(local), sport, dport: localPort, proto });
    // The other direction's source port: for an echo, the other echo type.
    const answering = (sport: number, port: number): number => (proto === ICMPV6 ? (sport >> 8 === ECHO_REQUEST ? ECHO_REPLY : ECHO_REQUEST) << 8 : port);
    if (kind === PDM_NEED.own) {
      for (const k of [kri, kri + 1]) this.install(this.maps.keys, "own", ownSender(ownSport), k);
      // A flow this host starts (or answers): the peer's first keys too, so that its
      // first answer is read rather than arriving before the keys to open it.
      if (kri === 0) for (const k of [0, 1]) this.install(this.maps.peerKeys, "peer", peerSender(answering(ownSport, remotePort)), k);
    } else if (kind === PDM_NEED.peer) {
      // A first need (Kri 0: the flow had no keys) gets the first two; a later one just
      // the Kri asked for, so the three slots keep the previous, current and next.
      for (const k of kri === 0 ? [0, 1] : [kri]) this.install(this.maps.peerKeys, "peer", peerSender(peerSport), k);
      // This host's first keys for its answers, before its first answer leaves.
      if (kri === 0) for (const k of [0, 1]) this.install(this.maps.keys, "own", ownSender(answering(peerSport, localPort)), k);
    }
  }

  /** A forgotten flow asks for a sealing key it had: refused (counted once per key; said once per flow). */
  private refuse(id: string, sender: FlowTuple, kri: number): void {
    let refused = this.refusedFlows.get(id);
    if (!refused) this.refusedFlows.set(id, (refused = new Set()));
    if (refused.has(kri)) return;
    refused.add(kri);
    this.stats.refused += 1;
    if (refused.size > 1) return;
    this.onProblem(`${formatFlow(sender)} started over under keys it used before (the kernel forgot the flow): left without PDM until the next key generation, so that no nonce repeats`);
  }

  /** The map's slot for `kri` holds that Kri's key already. */
  private inPlace(mapFd: number, sender: FlowTuple, kri: number, side: "own" | "peer"): boolean {
    const value = Buffer.alloc(FLOW_KEYS.size);
    if (!this.native.mapLookup(mapFd, encodeFlowKey(sender, side === "own" ? "sender" : "receiver"), value)) return false;
    const slot = kri % PDM_KEY_SLOTS;
    const present = value[FLOW_KEYS.offset("present") + slot] === 1 && value.readUInt32LE(FLOW_KEYS.offset("kri") + 4 * slot) === kri >>> 0;
    value.fill(0); // it may hold a key
    return present;
  }

  private install(mapFd: number, side: "own" | "peer", sender: FlowTuple, kri: number): void {
    if (kri > 0xffff_ffff) return; // Kri never wraps
    const id = `${mapFd} ${formatFlow(sender)}`;
    let kris = this.done.get(id);
    if (!kris) this.done.set(id, (kris = new Set()));
    if (kris.has(kri)) {
      // Asked again: usually by packets that left before the key was in place. A key no
      // longer in the kernel means the kernel forgot the flow since: a peer's key is
      // installed again (opening reuses no nonce); a sealing key is refused.
      if (this.refusedFlows.get(id)?.has(kri) || this.inPlace(mapFd, sender, kri, side)) return;
      if (side === "own") {
        this.refuse(id, sender, kri);
        return;
      }
    } else if (this.inPlace(mapFd, sender, kri, side)) {
      kris.add(kri);
      return;
    }
    // A flow the key source does not know keeps asking (every 10 ms while it sends):
    // look it up again at most once a second, and say so once.
    const triedAt = this.unknownFlows.get(id);
    if (triedAt !== undefined && Date.now() - triedAt < UNKNOWN_RETRY_MS) return;
    const stk = this.stk(sender, kri, side);
    if (!stk) {
      this.stats.unknown += 1;
      if (triedAt === undefined) this.onProblem(`no key for ${formatFlow(sender)} at Kri ${kri}`);
      if (this.unknownFlows.size >= MAX_REMEMBERED_FLOWS) this.unknownFlows.clear();
      this.unknownFlows.set(id, Date.now());
      return;
    }
    this.unknownFlows.delete(id);
    if (side === "own") {
      const fingerprint = createHash("sha256").update(stk).digest().readUIntBE(0, 6);
      if (this.sealingKeysGiven.has(fingerprint)) {
        kris.add(kri);
        this.refuse(id, sender, kri);
        return;
      }
      this.sealingKeysGiven.add(fingerprint);
    }
    try {
      installFlowKey(this.native, mapFd, sender, kri, stk, side === "own" ? "sender" : "receiver", this.maps.gcmInstall);
    } catch (err) {
      this.stats.failed += 1;
      this.onProblem(`cannot install the key of ${formatFlow(sender)} at Kri ${kri}: ${(err as Error).message}`);
      return;
    }
    this.stats.installed += 1;
    if (this.done.size >= MAX_REMEMBERED_FLOWS) {
      this.done.clear(); // forgetting costs a derivation, nothing more (sealingKeysGiven keeps the safety)
      this.done.set(id, kris);
    }
    kris.add(kri);
    for (const old of kris) if (old + 2 < kri) kris.delete(old); // its slot now holds a later Kri
  }
}

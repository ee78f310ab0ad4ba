// Installs protected-layout keys where the kernel asks for them. The data path writes
// a record to pdm_key_needs when a flow needs keys (pdm_abi.h): its own STKs for a Kri
// and the next (a new flow, a rotation, a packet that left without PDM), or its
// peer's (a peer at the last Kri installed, or an option no installed key opened).
// The installer derives each STK through `stk` (the agent's key store, or a key log)
// and writes it into pdm_keys or pdm_peer_keys, so that the next Kri's key is in place
// before the sender rotates to it. A flow's first need brings the first keys of both
// directions: the answers to a flow this host starts are read from the first, and a
// host answering a flow (its kernel asks when the flow's first packet arrives, with
// or without PDM) seals its first answer.
//
// A flow the kernel forgot (idle past `attach --flow-timeout`, or a data path attached
// again) starts over at Kri 0 with a fresh random sequence, which under the same key
// could repeat a nonce the flow used before. So a sealing key is given to the kernel
// once. When the kernel asks again for one it had, the installer resumes the flow
// instead: it gives the keys of the first Kri never given and the next, and the
// kernel, finding a key for a later Kri than its own, moves the flow there (nonce-safe:
// nothing was ever sealed under those keys). The peer's kernel, which cannot tell that
// Kri from the F bit, shows the installer an option it could not open; the installer
// tries the peer's keys near the Kri it last installed for the flow and installs the
// one that opens it.

import {
  AeadId,
  decodePdmOption,
  echoAnswerType,
  echoWord,
  formatFlow,
  IPPROTO_ICMPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  isEchoType,
  openProtectedOption,
  type FlowTuple,
} from "../../pdm/index.ts";
import {
  FLOW_KEY,
  FLOW_KEYS,
  KEY_NEED,
  PDM_KEY_SLOTS,
  PDM_NEED,
  PDM_NEEDF_OPTION,
  PDM_PROTECTED_OPTION_LEN,
} from "../datapath/index.ts";
import { encodeFlowKey, installFlowKey } from "./flow-keys.ts";
import type { NativeBpf, NativeRingBuffer } from "../datapath/index.ts";
import { SealingKeyMemory } from "./sealing-key-memory.ts";

/** An STK, and the key generation it derives from (its keyId): what the installer remembers sealing keys by. */
export interface Stk {
  key: Uint8Array;
  generation: string;
}

/**
 * The STK that `sender` (a 5-tuple as wire.md section 3 defines it) seals with under
 * `kri`, undefined if unknown. `side` says which end is this host: "own" when this
 * host is the sender (its source), "peer" when it receives (its destination). A
 * source's generations must move forward: the installer forgets the sealing keys of
 * all but the last two it saw, and refuses the keys of older ones.
 */
export type StkSource = (sender: FlowTuple, kri: number, side: "own" | "peer") => Stk | undefined;

/** A source of one generation's keys (tests, benchmarks, a key log): `key` gives each STK. */
export function oneGeneration(
  key: (sender: FlowTuple, kri: number, side: "own" | "peer") => Uint8Array | undefined,
  generation = "only",
): StkSource {
  return (sender, kri, side) => {
    const k = key(sender, kri, side);
    return k && { key: k, generation };
  };
}

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
  /** Flows the kernel forgot and asked to start over: given the keys of a Kri never used instead. */
  resumed: number;
  /** Sealing keys asked for again that could not be replaced by later ones (the last Kri reached): refused, so no nonce repeats. */
  refused: number;
  /** Options the kernel could not open whose Kri was found by trying the peer's keys (a peer that resumed, or a flow this kernel forgot). */
  found: number;
  /** Options no Kri tried opens: forged, or beyond the search (tried again for the flow at most once a second). */
  unopened: number;
  /** Searches cut short by the budget of keys tried per second (taken up at the kernel's next ask). */
  deferred: number;
  /** Sealing keys remembered (fingerprints of the live generations'), and the bytes that takes. */
  sealingKeysRemembered: number;
  sealingKeysBytes: number;
  /** Generations whose sealing keys were forgotten (and are refused from then on). */
  generationsRetired: number;
}

const MAX_REMEMBERED_FLOWS = 100_000;
const UNKNOWN_RETRY_MS = 1000;
/**
 * Searching an option's Kri: this far above the Kri expected; for a flow without keys
 * in the kernel, the rest of Kri 0 to SEARCH_SPAN too. At most SEARCH_TRIES_PER_SECOND
 * keys tried in all (each try derives an STK, some 50 us here), so that forged options
 * cannot take the agent's time; a search cut short is taken up at the kernel's next ask.
 */
const SEARCH_AHEAD = 64;
const SEARCH_SPAN = 1024;
const SEARCH_TRIES_PER_SECOND = 2000;

export class KeyInstaller {
  readonly stats: KeyInstallerStats = {
    needs: 0,
    installed: 0,
    unknown: 0,
    unsupported: 0,
    failed: 0,
    resumed: 0,
    refused: 0,
    found: 0,
    unopened: 0,
    deferred: 0,
    sealingKeysRemembered: 0,
    sealingKeysBytes: 0,
    generationsRetired: 0,
  };
  /** Keys the Kri search may still try this second. */
  private searchTries = SEARCH_TRIES_PER_SECOND;
  private searchTriesSince = Date.now();
  /** Kri values already installed per (map, sender): a need repeated by many packets costs one derivation. */
  private readonly done = new Map<string, Set<number>>();
  private ring: NativeRingBuffer | undefined;
  /** The sealing keys given to the kernel (of the live generations). */
  private readonly sealingKeysGiven = new SealingKeyMemory();
  /** Flows (by `done` id) the key source had no key for, and when it was last asked. */
  private readonly unknownFlows = new Map<string, number>();
  /** Sealing keys refused, per flow (by `done` id): each packet asks again; one answer is enough. */
  private readonly refusedFlows = new Map<string, Set<number>>();
  /** The highest Kri of the peer's keys installed, per sender (formatFlow): where to look for a resumed peer's Kri. Kept across retarget. */
  private readonly peerKri = new Map<string, number>();
  /** Flows (by `done` id) whose option no Kri opened, and when: searched again at most once a second. */
  private readonly unopenedFlows = new Map<string, number>();
  /** Flows resumed (by `done` id), said once each. */
  private readonly resumedFlows = new Set<string>();

  constructor(
    private readonly native: NativeBpf,
    private maps: KeyInstallerMaps,
    private stk: StkSource,
    private readonly onProblem: (message: string) => void = () => {},
    /** What went right but is worth saying once: a forgotten flow resumed. */
    private readonly onNotice: (message: string) => void = onProblem,
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
    const o = KEY_NEED.offset("option");
    const option =
      record[KEY_NEED.offset("flags")]! & PDM_NEEDF_OPTION
        ? Uint8Array.from(record.subarray(o, o + PDM_PROTECTED_OPTION_LEN))
        : undefined;
    let ownSport = localPort;
    let peerSport = remotePort;
    if (proto === IPPROTO_ICMPV6) {
      // The kernel keys an echo flow by its identifier (both "ports"); the sender's
      // 5-tuple (wire.md 3) has the type/code word as source port: the record says
      // which type the sender sends.
      const type = record[KEY_NEED.offset("icmp_type")]!;
      if (!isEchoType(type)) {
        this.stats.unsupported += 1;
        return;
      }
      ownSport = peerSport = echoWord(type);
    } else if (proto !== IPPROTO_TCP && proto !== IPPROTO_UDP) {
      this.stats.unsupported += 1;
      return;
    }
    const ownSender = (sport: number): FlowTuple => ({
      src: Uint8Array.from(local),
      dst: Uint8Array.from(remote),
      sport,
      dport: remotePort,
      proto,
    });
    const peerSender = (sport: number): FlowTuple => ({
      src: Uint8Array.from(remote),
      dst: Uint8Array.from(local),
      sport,
      dport: localPort,
      proto,
    });
    // The other direction's source port: for an echo, the other echo type.
    const answering = (sport: number, port: number): number =>
      proto === IPPROTO_ICMPV6 ? echoWord(echoAnswerType(sport >> 8)) : port;
    if (kind === PDM_NEED.own) {
      this.installOwn(ownSender(ownSport), kri);
      // A flow this host starts (or answers): the peer's first keys too, so that its
      // first answer is read rather than arriving before the keys to open it.
      if (kri === 0) this.installFirstPeerKeys(peerSender(answering(ownSport, remotePort)));
    } else if (kind === PDM_NEED.peer) {
      const sender = peerSender(peerSport);
      // An option no key opened: find its Kri. A first need without one (Kri 0: the flow
      // had no keys) gets the first two; a later one just the Kri asked for, so the three
      // slots keep the previous, current and next.
      if (option) this.findPeerKri(sender, kri, option);
      else if (kri === 0) this.installFirstPeerKeys(sender);
      else this.install(this.maps.peerKeys, "peer", sender, kri);
      // This host's first keys for its answers, before its first answer leaves.
      if (kri === 0) this.installOwn(ownSender(answering(peerSport, localPort)), 0);
    }
  }

  /** This host's sealing keys for `kri` and the next; a flow the kernel forgot resumes at a Kri never used. */
  private installOwn(sender: FlowTuple, kri: number): void {
    if (this.install(this.maps.keys, "own", sender, kri) === "given before") this.resume(sender, kri);
    else this.install(this.maps.keys, "own", sender, kri + 1);
  }

  /**
   * The peer's keys of Kri 0 and 1, unless this installer keyed the flow before: the
   * peer then resumes at a later Kri, which its first option will show (findPeerKri),
   * and wrong keys in place would count its options as auth failures.
   */
  private installFirstPeerKeys(sender: FlowTuple): void {
    if (this.peerKri.has(formatFlow(sender))) return;
    for (const k of [0, 1]) this.install(this.maps.peerKeys, "peer", sender, k);
  }

  /**
   * The kernel asked for a sealing key it had before (it forgot the flow): give it the
   * keys of the first Kri above `kri` never given, and the next. Egress moves the flow
   * there on its next packet. Asked again before that, the keys are in place: nothing
   * more to do.
   */
  private resume(sender: FlowTuple, kri: number): void {
    const id = `${this.maps.keys} ${formatFlow(sender)}`;
    let retired = false;
    const given = (k: number): boolean | undefined => {
      const stk = this.stk(sender, k, "own");
      const was = stk && this.sealingKeysGiven.recall(stk.key, stk.generation);
      if (was === "retired generation") retired = true;
      return was === undefined || retired ? undefined : was === "given before"; // undefined: stop the search
    };
    const later = this.krisInPlace(this.maps.keys, sender, "own").filter((k) => k > kri);
    if (later.some((k) => this.done.get(id)?.has(k))) return; // given already: the kernel moves on its next packet
    // The Kri values given for a flow run from 0 nearly without gaps: gallop up, then
    // halve, keeping given(low) and !given(high). Any Kri never given is safe.
    let low = kri;
    let high = kri + 1;
    for (let step = 1; given(high) === true; step *= 2) {
      low = high;
      high = kri + 2 * step;
      if (high > 0xffff_fffe) break;
    }
    while (high - low > 1 && high <= 0xffff_fffe) {
      const mid = low + Math.floor((high - low) / 2);
      if (given(mid) === true) low = mid;
      else high = mid;
    }
    if (
      high > 0xffff_fffe ||
      given(high) !== false ||
      this.install(this.maps.keys, "own", sender, high) !== "installed"
    ) {
      this.refuse(id, sender, kri, retired ? "retired generation" : "no later Kri");
      return;
    }
    if (given(high + 1) === false) this.install(this.maps.keys, "own", sender, high + 1);
    this.stats.resumed += 1;
    if (!this.resumedFlows.has(id)) {
      if (this.resumedFlows.size >= MAX_REMEMBERED_FLOWS) this.resumedFlows.clear();
      this.resumedFlows.add(id);
      this.onNotice(
        `${formatFlow(sender)} started over after the kernel forgot it: resumed at Kri ${high}, whose keys were never used, so that no nonce repeats`,
      );
    }
  }

  /**
   * An option from `sender` that none of the kernel's keys opened (`highest`: the
   * highest Kri it has, 0 if none). Try the peer's keys of the option's F parity from
   * just below the Kri expected (the kernel's, or the last this installer gave) up to
   * SEARCH_AHEAD beyond; for a flow without keys, the rest of Kri 0 to SEARCH_SPAN too.
   * Never below the kernel's keys: a peer does not go back, and a replayed old option
   * must not displace the current keys. Found: that Kri and the next are installed. Not
   * found (a forgery, mostly): counted, and the flow is not searched again for a second.
   */
  private findPeerKri(sender: FlowTuple, highest: number, option: Uint8Array): void {
    const flow = formatFlow(sender);
    const id = `${this.maps.peerKeys} ${flow}`;
    const triedAt = this.unopenedFlows.get(id);
    if (triedAt !== undefined && Date.now() - triedAt < UNKNOWN_RETRY_MS) return;
    const decoded = decodePdmOption(option, 0);
    if (decoded.ok && decoded.value.layout === "v2-protected") {
      const sealed = decoded.value;
      const lowest = highest > 2 ? highest - 2 : 0;
      const expected = Math.max(lowest, (this.peerKri.get(flow) ?? 0) - 2);
      const candidates = function* (): Generator<number> {
        for (let k = expected; k <= expected + SEARCH_AHEAD; k += 1) yield k;
        if (highest > 0) return;
        for (let k = 0; k < expected; k += 1) yield k;
        for (let k = expected + SEARCH_AHEAD + 1; k < SEARCH_SPAN; k += 1) yield k;
      };
      let aead: number | undefined;
      for (const k of candidates()) {
        if ((k & 1) !== sealed.fBit || k > 0xffff_ffff) continue;
        if (!this.takeSearchTry()) {
          this.stats.deferred += 1;
          return;
        }
        const stk = this.stk(sender, k, "peer");
        if (!stk) break; // the key source does not know the flow
        aead ??= stk.key.length === 16 ? AeadId.Aes128Gcm : AeadId.Chacha20Poly1305;
        if (!openProtectedOption(aead, stk.key, k, sealed).ok) continue;
        this.unopenedFlows.delete(id);
        this.stats.found += 1;
        for (const kk of [k, k + 1]) this.install(this.maps.peerKeys, "peer", sender, kk);
        return;
      }
    }
    this.stats.unopened += 1;
    if (this.unopenedFlows.size >= MAX_REMEMBERED_FLOWS) this.unopenedFlows.clear();
    this.unopenedFlows.set(id, Date.now());
  }

  /** One key try from the per-second budget of the Kri search. */
  private takeSearchTry(): boolean {
    const now = Date.now();
    if (now - this.searchTriesSince >= 1000) {
      this.searchTries = SEARCH_TRIES_PER_SECOND;
      this.searchTriesSince = now;
    }
    if (this.searchTries === 0) return false;
    this.searchTries -= 1;
    return true;
  }

  /**
   * A sealing key that may not be given: the flow was forgotten and cannot resume, or
   * the key's generation is retired. Refused (counted once per key; said once per flow).
   */
  private refuse(
    id: string,
    sender: FlowTuple,
    kri: number,
    why: "no later Kri" | "retired generation" = "no later Kri",
  ): void {
    let refused = this.refusedFlows.get(id);
    if (!refused) this.refusedFlows.set(id, (refused = new Set()));
    if (refused.has(kri)) return;
    refused.add(kri);
    this.stats.refused += 1;
    if (refused.size > 1) return;
    if (why === "retired generation") {
      this.onProblem(
        `${formatFlow(sender)} asks for a sealing key of a key generation retired since (the key source went back to it): refused, left without PDM, so that no nonce repeats`,
      );
    } else {
      this.onProblem(
        `${formatFlow(sender)} started over under keys it used before (the kernel forgot the flow) and has no later Kri to resume at: left without PDM until the next key generation, so that no nonce repeats`,
      );
    }
  }

  private noteMemory(): void {
    const { keys, bytes } = this.sealingKeysGiven.remembered;
    this.stats.sealingKeysRemembered = keys;
    this.stats.sealingKeysBytes = bytes;
    this.stats.generationsRetired = this.sealingKeysGiven.retiredCount;
  }

  /** The Kri values whose keys `mapFd` holds for `sender`. */
  private krisInPlace(mapFd: number, sender: FlowTuple, side: "own" | "peer"): number[] {
    const value = Buffer.alloc(FLOW_KEYS.size);
    if (!this.native.mapLookup(mapFd, encodeFlowKey(sender, side === "own" ? "sender" : "receiver"), value)) return [];
    const kris: number[] = [];
    for (let slot = 0; slot < PDM_KEY_SLOTS; slot += 1) {
      if (value[FLOW_KEYS.offset("present") + slot] === 1)
        kris.push(value.readUInt32LE(FLOW_KEYS.offset("kri") + 4 * slot));
    }
    value.fill(0); // it may hold keys
    return kris;
  }

  /** The map holds the key of `kri` already. */
  private inPlace(mapFd: number, sender: FlowTuple, kri: number, side: "own" | "peer"): boolean {
    return this.krisInPlace(mapFd, sender, side).includes(kri >>> 0);
  }

  /**
   * Install the STK of `sender` at `kri` into `mapFd` unless it is there. "given before":
   * a sealing key the kernel had already (the caller resumes the flow instead).
   */
  private install(
    mapFd: number,
    side: "own" | "peer",
    sender: FlowTuple,
    kri: number,
  ): "installed" | "in place" | "given before" | "not installed" {
    if (kri > 0xffff_ffff) return "not installed"; // Kri never wraps
    const id = `${mapFd} ${formatFlow(sender)}`;
    let kris = this.done.get(id);
    if (!kris) this.done.set(id, (kris = new Set()));
    if (kris.has(kri)) {
      // Asked again: usually by packets that left before the key was in place. A key no
      // longer in the kernel means the kernel forgot the flow since: a peer's key is
      // installed again (opening reuses no nonce); a sealing key is not.
      if (this.refusedFlows.get(id)?.has(kri)) return "not installed";
      if (this.inPlace(mapFd, sender, kri, side)) return "in place";
      if (side === "own") return "given before";
    } else if (this.inPlace(mapFd, sender, kri, side)) {
      kris.add(kri);
      return "in place";
    }
    // A flow the key source does not know keeps asking (every 10 ms while it sends):
    // look it up again at most once a second, and say so once.
    const triedAt = this.unknownFlows.get(id);
    if (triedAt !== undefined && Date.now() - triedAt < UNKNOWN_RETRY_MS) return "not installed";
    const stk = this.stk(sender, kri, side);
    if (!stk) {
      this.stats.unknown += 1;
      if (triedAt === undefined) this.onProblem(`no key for ${formatFlow(sender)} at Kri ${kri}`);
      if (this.unknownFlows.size >= MAX_REMEMBERED_FLOWS) this.unknownFlows.clear();
      this.unknownFlows.set(id, Date.now());
      return "not installed";
    }
    this.unknownFlows.delete(id);
    if (side === "own") {
      const was = this.sealingKeysGiven.give(stk.key, stk.generation);
      this.noteMemory();
      if (was === "given before") {
        kris.add(kri);
        return "given before";
      }
      if (was === "retired generation") {
        this.refuse(id, sender, kri, "retired generation");
        return "not installed";
      }
    }
    try {
      installFlowKey(
        this.native,
        mapFd,
        sender,
        kri,
        stk.key,
        side === "own" ? "sender" : "receiver",
        this.maps.gcmInstall,
      );
    } catch (err) {
      this.stats.failed += 1;
      this.onProblem(`cannot install the key of ${formatFlow(sender)} at Kri ${kri}: ${(err as Error).message}`);
      return "not installed";
    }
    this.stats.installed += 1;
    if (this.done.size >= MAX_REMEMBERED_FLOWS) {
      this.done.clear(); // forgetting costs a derivation, nothing more (sealingKeysGiven keeps the safety)
      this.done.set(id, kris);
    }
    kris.add(kri);
    for (const old of kris) if (old + 2 < kri) kris.delete(old); // its slot now holds a later Kri
    if (side === "peer") {
      const flow = formatFlow(sender);
      if (this.peerKri.size >= MAX_REMEMBERED_FLOWS && !this.peerKri.has(flow)) this.peerKri.clear();
      if (kri >= (this.peerKri.get(flow) ?? 0)) this.peerKri.set(flow, kri);
    }
    return "installed";
  }
}

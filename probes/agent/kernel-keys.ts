// A reader agent as the key source of its host's data path (protected layout): the
// kernel asks for keys (probes/kernel-keys/key-installer.ts), this derives them from the reader's
// key store, and they never leave the host's kernel and agent.
//
// Which generation: the one sealing when the kernel asks. Keys are asked for a Kri
// ahead (the next one, at each rotation), and both ends ask within milliseconds of
// each other, so they derive from the same generation unless a renewal takes effect
// in between; a renewal thus reaches every flow at its next Kri. (Pinning a flow to
// its first generation would outlive that generation: writers forget it, and so
// would any analyzer's key log.)
//
// Which ClientSecret (keys.md 4): the reader-client end of the flow. A reader client is
// that end itself; for a reader server it is the other end. Between group members,
// which have no client end, it is the lower of the two addresses, the same at both ends.
//
// Which AEAD: the data path's (`pdm attach --aead`, AES-128-GCM unless told otherwise).
// A generation whose suite has another AEAD gives the kernel no keys, and says why once.

import { AeadId, type FlowTuple } from "../../pdm/index.ts";
import { KeyInstaller, type KeyInstallerMaps, type Stk, type StkSource } from "../kernel-keys/index.ts";
import { nativeBpf, PIN, pinDir, BpfError } from "../datapath/index.ts";
import type { ReaderKeyStore } from "./reader-keys.ts";
import type { Logger } from "./log.ts";
import { join } from "node:path";
import { existsSync } from "node:fs";

const sameAddress = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

/** A flow's own Kri at or above this has used all but 2^16 of its 2^32 values. */
export const KRI_RUNNING_OUT = 0xffff_0000;

export function readerStkSource(
  store: ReaderKeyStore,
  kind: "server" | "client" | "group",
  ownAddress: Uint8Array | undefined,
  aead: number = AeadId.Aes128Gcm,
  onProblem: (message: string) => void = () => {},
  onKriRunningOut: (sender: FlowTuple) => void = () => {},
): StkSource {
  let toldMismatch = false;
  return (sender: FlowTuple, kri: number, side: "own" | "peer"): Stk | undefined => {
    // A flow of ours near the end of its 32-bit Kri space: a group member asks for a new
    // generation (groups.md 1, the seed's "if packet number overlap: use new (SK, nonce)").
    if (side === "own" && kri >= KRI_RUNNING_OUT) onKriRunningOut(sender);
    const local = side === "own" ? sender.src : sender.dst;
    const remote = side === "own" ? sender.dst : sender.src;
    let client: Uint8Array;
    if (kind === "client") {
      if (!ownAddress || !sameAddress(local, ownAddress)) return undefined; // not this reader client's flow
      client = local;
    } else if (kind === "group") {
      // Group members have no client end: both ends take the lower address (protocol notes).
      client = Buffer.compare(Buffer.from(local), Buffer.from(remote)) <= 0 ? local : remote;
    } else {
      client = remote;
    }
    const g = store.sealingGeneration() ?? store.openingGenerations()[0];
    if (!g) return undefined;
    if (g.suite.aead !== aead) {
      if (!toldMismatch)
        onProblem(
          `the deployment's suite seals with AEAD ${g.suite.aead}, the data path with ${aead}: attach with the suite's --aead`,
        );
      toldMismatch = true;
      return undefined;
    }
    return { key: store.stk(g, sender, kri, client), generation: g.keyIdHex };
  };
}

/**
 * The keys of the data path attached on `ifname` (pins made by `pdm attach`), installed
 * as its kernel asks, with the STKs `stkFor` gives for the data path's AEAD. `follow()`
 * moves to a data path attached again on the same interface.
 */
export class KernelKeys {
  private constructor(
    private readonly ifname: string,
    private readonly stkFor: (aead: number) => StkSource,
    readonly installer: KeyInstaller,
    private mapId: number,
  ) {}

  /** Start; a BpfError when nothing is attached on `ifname` yet. `onNotice`: a forgotten flow resumed. */
  static start(
    ifname: string,
    stkFor: (aead: number) => StkSource,
    onProblem: (message: string) => void,
    onNotice: (message: string) => void = onProblem,
  ): KernelKeys {
    const { maps, aead, mapId } = openPins(ifname);
    const installer = new KeyInstaller(nativeBpf(), maps, stkFor(aead), onProblem, onNotice);
    installer.start();
    return new KernelKeys(ifname, stkFor, installer, mapId);
  }

  /**
   * If the interface was attached again since (other maps behind the pins), serve the
   * new data path and return true. A BpfError when it is detached now.
   */
  follow(): boolean {
    const dir = pinDir(this.ifname);
    const native = nativeBpf();
    const fd = native.objGet(join(dir, PIN.keyNeeds)); // throws once detached
    let id: number;
    try {
      id = native.mapInfo(fd).id;
    } finally {
      native.closeFd(fd);
    }
    if (id === this.mapId) return false;
    const old = this.installer.target;
    const { maps, aead, mapId } = openPins(this.ifname);
    this.installer.retarget(maps, this.stkFor(aead));
    this.mapId = mapId;
    for (const f of [old.keys, old.peerKeys, old.keyNeeds, old.gcmInstall]) if (f !== undefined) native.closeFd(f);
    return true;
  }

  close(): void {
    this.installer.close();
    const native = nativeBpf();
    const m = this.installer.target;
    for (const f of [m.keys, m.peerKeys, m.keyNeeds, m.gcmInstall]) if (f !== undefined) native.closeFd(f);
  }
}

/** The pinned maps of the data path on `ifname`, its AEAD, and the id of its key-needs ring. */
function openPins(ifname: string): { maps: KeyInstallerMaps; aead: number; mapId: number } {
  const dir = pinDir(ifname);
  const pins = {
    keys: join(dir, PIN.keys),
    peerKeys: join(dir, PIN.peerKeys),
    keyNeeds: join(dir, PIN.keyNeeds),
    gcmInstall: join(dir, PIN.gcmInstall),
  };
  if (!existsSync(pins.keyNeeds)) {
    throw new BpfError(
      `the data path is not attached on ${ifname} (no ${pins.keyNeeds}): run pdm attach -i ${ifname} --layout v2-protected (or draft-15-protected) first`,
    );
  }
  const native = nativeBpf();
  // An AES-128-GCM data path pins its key-installing program; a ChaCha20-Poly1305 one has none.
  const aes = existsSync(pins.gcmInstall);
  const maps: KeyInstallerMaps = {
    keys: native.objGet(pins.keys),
    peerKeys: native.objGet(pins.peerKeys),
    keyNeeds: native.objGet(pins.keyNeeds),
    gcmInstall: aes ? native.objGet(pins.gcmInstall) : undefined,
  };
  return { maps, aead: aes ? AeadId.Aes128Gcm : AeadId.Chacha20Poly1305, mapId: native.mapInfo(maps.keyNeeds).id };
}

/**
 * An agent's side of the data path on `ifname` (its config's `datapath`): install the
 * keys once the programs are attached there. The agent may well start first (it needs
 * its keys before traffic does), so it looks again each second; then it follows the
 * interface: attached again, it serves the new data path.
 */
export class DataPathFollower {
  private keys: KernelKeys | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;

  constructor(
    private readonly ifname: string,
    private readonly stkFor: (aead: number, onProblem: (message: string) => void) => StkSource,
    private readonly log: Logger,
  ) {}

  async run(): Promise<void> {
    const ifname = this.ifname;
    const warn = (message: string): void =>
      this.log.log("warn", "kernel-key-missing", { interface: ifname, detail: message });
    const notice = (message: string): void =>
      this.log.log("info", "kernel-flow-resumed", { interface: ifname, detail: message });
    let waiting = false;
    while (!this.stopped) {
      try {
        if (!this.keys) {
          this.keys = KernelKeys.start(ifname, (aead) => this.stkFor(aead, warn), warn, notice);
          this.log.log("info", "kernel-keys-started", { interface: ifname });
        } else if (this.keys.follow()) {
          this.log.log("info", "kernel-keys-reattached", { interface: ifname });
        }
        waiting = false;
      } catch (e) {
        if (!waiting) this.log.log("info", "kernel-keys-waiting", { interface: ifname, reason: (e as Error).message });
        waiting = true;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.keys && !waiting ? 2000 : 1000);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** What the key installer did, once it runs. */
  get stats() {
    return this.keys ? { ...this.keys.installer.stats } : undefined;
  }

  stop(): void {
    this.stopped = true;
    this.wake?.();
    this.keys?.close();
  }
}

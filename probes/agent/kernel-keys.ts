// A reader agent as the key source of its host's data path (protected layout): the
// kernel asks for keys (probes/key-installer.ts), this derives them from the reader's
// key store, and they never leave the host's kernel and agent.
//
// Which generation: a flow keeps the one that was sealing when its first key was
// derived (both ends derive within milliseconds of each other), so a renewal moves new
// flows only. The kernel holds one key per Kri, not per generation, so a flow cannot
// change generation under a Kri it already uses. If its generation is no longer held,
// the flow moves to the current one.
//
// Which ClientSecret (keys.md 4): the reader-client end of the flow. A reader client is
// that end itself; for a reader server it is the other end.

import { AeadId, formatFlow, type FlowTuple } from "../../pdm/index.ts";
import { KeyInstaller, type StkSource } from "../key-installer.ts";
import { nativeBpf } from "../native.ts";
import { PIN, pinDir } from "../datapath.ts";
import { BpfError } from "../errors.ts";
import type { ReaderGeneration, ReaderKeyStore } from "./reader-keys.ts";
import { join } from "node:path";
import { existsSync } from "node:fs";

const sameAddress = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

export function readerStkSource(store: ReaderKeyStore, kind: "server" | "client", ownAddress: Uint8Array | undefined): StkSource {
  const generationOf = new Map<string, string>(); // flow -> keyIdHex
  return (sender: FlowTuple, kri: number, side: "own" | "peer"): Uint8Array | undefined => {
    const local = side === "own" ? sender.src : sender.dst;
    const remote = side === "own" ? sender.dst : sender.src;
    let client: Uint8Array;
    if (kind === "client") {
      if (!ownAddress || !sameAddress(local, ownAddress)) return undefined; // not this reader client's flow
      client = local;
    } else {
      client = remote;
    }
    // Both directions of a conversation share a generation: key the choice by the pair of ends.
    const id = side === "own" ? formatFlow(sender) : formatFlow({ src: sender.dst, dst: sender.src, sport: sender.dport, dport: sender.sport, proto: sender.proto });
    const held = new Map(store.openingGenerations().map((g) => [g.keyIdHex, g]));
    let g: ReaderGeneration | undefined = held.get(generationOf.get(id) ?? "");
    if (!g) {
      g = store.sealingGeneration() ?? store.openingGenerations()[0];
      if (!g) return undefined;
      if (generationOf.size >= 100_000) generationOf.clear(); // a long-lived agent: forget old flows
      generationOf.set(id, g.keyIdHex);
    }
    if (g.suite.aead !== AeadId.Chacha20Poly1305) return undefined; // the data path seals ChaCha20-Poly1305 only so far
    return store.stk(g, sender, kri, client);
  };
}

/** Start installing keys into the data path attached on `ifname` (pins made by `pdm attach`). */
export function startKernelKeys(ifname: string, stk: StkSource, onProblem: (message: string) => void): KeyInstaller {
  const dir = pinDir(ifname);
  const pins = { keys: join(dir, PIN.keys), peerKeys: join(dir, PIN.peerKeys), keyNeeds: join(dir, PIN.keyNeeds) };
  if (!existsSync(pins.keyNeeds)) {
    throw new BpfError(`the data path is not attached on ${ifname} (no ${pins.keyNeeds}): run pdm attach -i ${ifname} --layout v2-protected first`);
  }
  const native = nativeBpf();
  const installer = new KeyInstaller(native, { keys: native.objGet(pins.keys), peerKeys: native.objGet(pins.peerKeys), keyNeeds: native.objGet(pins.keyNeeds) }, stk, onProblem);
  installer.start();
  return installer;
}

// Keys for the protected layout, as the kernel reads them (struct pdm_flow_keys): per
// flow, the STK of Kri k in slot k % 3, so the previous, current and next Kri can each
// have theirs. pdm_keys holds the keys a host seals its flows with, keyed by the flow
// it sends; pdm_peer_keys the keys its peers seal with, keyed by the same flow as this
// host sees it. Installing the key of the next Kri before the sender rotates keeps
// every packet protected; a packet whose Kri has no key leaves without PDM and is
// counted (skipped_nokey); one that arrives while its flow has no peer key at all is
// counted as rx_nokey (the agent is asked for the keys), and one that no installed key
// opens as an auth failure.
//
// AES-128-GCM (the pdm_gcm.bpf.o build): the key goes to the kernel's crypto API, not
// into a map. pdm_gcm_install, a syscall program, makes the AES context for it and the
// GHASH table of H = E(K, 0^128) (computed here with node:crypto) in pdm_gcm_keys; the
// slot in pdm_keys / pdm_peer_keys then records only the Kri, its key bytes zero.

import { createCipheriv } from "node:crypto";
import { flowKeyPorts, type FlowTuple } from "../../pdm/index.ts";
import {
  FLOW_KEY,
  FLOW_KEYS,
  GCM_INSTALL_ARGS,
  GCM_KEY_ID,
  PDM_AEAD_KEY_MAX,
  PDM_GCM,
  PDM_KEY_SLOTS,
  BpfError,
} from "../datapath/index.ts";
import type { NativeBpf } from "../datapath/index.ts";

/**
 * The kernel's key for the flow a sender 5-tuple belongs to, as seen by the host that
 * sends it (`side` "sender": local = the tuple's source) or receives it ("receiver":
 * local = its destination). ICMPv6 echo tuples carry the identifier as both ports.
 */
export function encodeFlowKey(flow: FlowTuple, side: "sender" | "receiver" = "sender"): Buffer {
  const sender = side === "sender";
  const b = Buffer.alloc(FLOW_KEY.size);
  b.set(sender ? flow.src : flow.dst, FLOW_KEY.offset("local"));
  b.set(sender ? flow.dst : flow.src, FLOW_KEY.offset("remote"));
  const ports = flowKeyPorts(flow, side);
  b.writeUInt16LE(ports.local, FLOW_KEY.offset("local_port"));
  b.writeUInt16LE(ports.remote, FLOW_KEY.offset("remote_port"));
  b.writeUInt8(flow.proto, FLOW_KEY.offset("proto"));
  return b;
}

/**
 * Put the STK of `kri` for the sender 5-tuple `flow` in its slot, keeping the other
 * slots: into pdm_keys on the sending host (`side` "sender"), into pdm_peer_keys on
 * the receiving one ("receiver"). With `gcmInstall` (the fd of pdm_gcm_install, in an
 * AES-128-GCM data path) the 16-byte STK goes to the kernel's AES instead.
 */
export function installFlowKey(
  native: NativeBpf,
  keysMapFd: number,
  flow: FlowTuple,
  kri: number,
  stk: Uint8Array,
  side: "sender" | "receiver" = "sender",
  gcmInstall?: number,
): void {
  if (stk.length > PDM_AEAD_KEY_MAX)
    throw new RangeError(`an STK has at most ${PDM_AEAD_KEY_MAX} bytes, got ${stk.length}`);
  const key = encodeFlowKey(flow, side);
  const slot = kri % PDM_KEY_SLOTS;
  // The AES context first: once the slot below names this Kri, packets use it.
  if (gcmInstall !== undefined) installGcmKey(native, gcmInstall, key, side, slot, kri, stk);
  const value = Buffer.alloc(FLOW_KEYS.size);
  native.mapLookup(keysMapFd, key, value); // absent: stays all zero
  value.writeUInt32LE(kri >>> 0, FLOW_KEYS.offset("kri") + 4 * slot);
  value[FLOW_KEYS.offset("present") + slot] = 1;
  const at = FLOW_KEYS.offset("key") + PDM_AEAD_KEY_MAX * slot;
  value.fill(0, at, at + PDM_AEAD_KEY_MAX);
  if (gcmInstall === undefined) value.set(stk, at);
  native.mapUpdate(keysMapFd, key, value, 0);
  value.fill(0); // no copy of the key left in this process's buffers
}

/** pdm_gcm_install for one AES-128-GCM STK. */
function installGcmKey(
  native: NativeBpf,
  progFd: number,
  flowKey: Buffer,
  side: "sender" | "receiver",
  slot: number,
  kri: number,
  stk: Uint8Array,
): void {
  if (stk.length !== 16) throw new RangeError(`an AES-128-GCM STK has 16 bytes, got ${stk.length}`);
  const args = Buffer.alloc(GCM_INSTALL_ARGS.size);
  const id = GCM_INSTALL_ARGS.offset("id");
  args.set(flowKey, id + GCM_KEY_ID.offset("flow"));
  args[id + GCM_KEY_ID.offset("side")] = side === "sender" ? PDM_GCM.own : PDM_GCM.peer;
  args[id + GCM_KEY_ID.offset("slot")] = slot;
  args.writeUInt32LE(kri >>> 0, GCM_INSTALL_ARGS.offset("kri"));
  args.set(stk, GCM_INSTALL_ARGS.offset("key"));
  // H = E(K, 0^128), GHASH's key: AES-128 on one zero block.
  const aes = createCipheriv("aes-128-ecb", stk, null).setAutoPadding(false);
  const h = aes.update(Buffer.alloc(16));
  aes.final();
  args.set(h, GCM_INSTALL_ARGS.offset("h"));
  h.fill(0);
  let result: number;
  try {
    result = native.progRunContext(progFd, args);
  } finally {
    args.fill(0, GCM_INSTALL_ARGS.offset("key"), GCM_INSTALL_ARGS.offset("err"));
  }
  if (result === 1)
    throw new BpfError(
      `the kernel refused an AES-128-GCM key (error ${args.readInt32LE(GCM_INSTALL_ARGS.offset("err"))})`,
    );
  if (result !== 0)
    throw new BpfError(`no room for another AES-128-GCM key in the kernel (pdm_gcm_install returned ${result})`);
}

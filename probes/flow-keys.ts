// Keys for the protected layout, as the kernel reads them (struct pdm_flow_keys): per
// flow, the STK of Kri k in slot k % 3, so the previous, current and next Kri can each
// have theirs. pdm_keys holds the keys a host seals its flows with, keyed by the flow
// it sends; pdm_peer_keys the keys its peers seal with, keyed by the same flow as this
// host sees it. Installing the key of the next Kri before the sender rotates keeps
// every packet protected; a packet whose Kri has no key leaves without PDM and is
// counted (skipped_nokey), and one that arrives without a key to open it is an auth
// failure.

import type { FlowTuple } from "../pdm/index.ts";
import { FLOW_KEY, FLOW_KEYS, PDM_AEAD_KEY_MAX, PDM_KEY_SLOTS } from "./abi.ts";
import type { NativeBpf } from "./native.ts";

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
  const icmp = flow.proto === 58; // the kernel keys an echo flow by its identifier (the tuple's dport) alone
  b.writeUInt16LE(icmp ? flow.dport : sender ? flow.sport : flow.dport, FLOW_KEY.offset("local_port"));
  b.writeUInt16LE(icmp ? flow.dport : sender ? flow.dport : flow.sport, FLOW_KEY.offset("remote_port"));
  b.writeUInt8(flow.proto, FLOW_KEY.offset("proto"));
  return b;
}

/**
 * Put the STK of `kri` for the sender 5-tuple `flow` in its slot, keeping the other
 * slots: into pdm_keys on the sending host (`side` "sender"), into pdm_peer_keys on
 * the receiving one ("receiver").
 */
export function installFlowKey(native: NativeBpf, keysMapFd: number, flow: FlowTuple, kri: number, stk: Uint8Array, side: "sender" | "receiver" = "sender"): void {
  if (stk.length > PDM_AEAD_KEY_MAX) throw new RangeError(`an STK has at most ${PDM_AEAD_KEY_MAX} bytes, got ${stk.length}`);
  const key = encodeFlowKey(flow, side);
  const value = Buffer.alloc(FLOW_KEYS.size);
  native.mapLookup(keysMapFd, key, value); // absent: stays all zero
  const slot = kri % PDM_KEY_SLOTS;
  value.writeUInt32LE(kri >>> 0, FLOW_KEYS.offset("kri") + 4 * slot);
  value[FLOW_KEYS.offset("present") + slot] = 1;
  const at = FLOW_KEYS.offset("key") + PDM_AEAD_KEY_MAX * slot;
  value.fill(0, at, at + PDM_AEAD_KEY_MAX);
  value.set(stk, at);
  native.mapUpdate(keysMapFd, key, value, 0);
  value.fill(0); // no copy of the key left in this process's buffers
}

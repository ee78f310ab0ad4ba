// Sealing keys for the protected layout, as the kernel reads them (pdm_keys map,
// struct pdm_flow_keys): per flow, the STK of Kri k in slot k % 2. Installing the key
// of the next Kri before the sender rotates keeps every packet protected; a packet
// whose Kri has no key leaves without PDM and is counted (skipped_nokey).

import type { FlowTuple } from "../pdm/index.ts";
import { FLOW_KEY, FLOW_KEYS, PDM_AEAD_KEY_MAX } from "./abi.ts";
import type { NativeBpf } from "./native.ts";

/** The kernel's key for a flow this host sends: local = the sender (the tuple's source). */
export function encodeFlowKey(flow: FlowTuple): Buffer {
  const b = Buffer.alloc(FLOW_KEY.size);
  b.set(flow.src, FLOW_KEY.offset("local"));
  b.set(flow.dst, FLOW_KEY.offset("remote"));
  b.writeUInt16LE(flow.sport, FLOW_KEY.offset("local_port"));
  b.writeUInt16LE(flow.dport, FLOW_KEY.offset("remote_port"));
  b.writeUInt8(flow.proto, FLOW_KEY.offset("proto"));
  return b;
}

/** Put the STK of `kri` for `flow` in its slot, keeping the other slot's key. */
export function installFlowKey(native: NativeBpf, keysMapFd: number, flow: FlowTuple, kri: number, stk: Uint8Array): void {
  if (stk.length > PDM_AEAD_KEY_MAX) throw new RangeError(`an STK has at most ${PDM_AEAD_KEY_MAX} bytes, got ${stk.length}`);
  const key = encodeFlowKey(flow);
  const value = Buffer.alloc(FLOW_KEYS.size);
  native.mapLookup(keysMapFd, key, value); // absent: stays all zero
  const slot = kri % 2;
  value.writeUInt32LE(kri >>> 0, FLOW_KEYS.offset("kri") + 4 * slot);
  value[FLOW_KEYS.offset("present") + slot] = 1;
  const at = FLOW_KEYS.offset("key") + PDM_AEAD_KEY_MAX * slot;
  value.fill(0, at, at + PDM_AEAD_KEY_MAX);
  value.set(stk, at);
  native.mapUpdate(keysMapFd, key, value, 0);
  value.fill(0); // no copy of the key left in this process's buffers
}

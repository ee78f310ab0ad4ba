// The kernel's protected layouts under BPF_PROG_TEST_RUN, as the bpf tests drive them:
// one UDP flow and its packet before stamping, the two AEADs the kernel seals with
// (with why one cannot run here), and installing a key the way the agent does
// (probes/kernel-keys/flow-keys.ts).

import { AeadId, parseIpv6Address } from "../../pdm/index.ts";
import { PDM_MAP, PDM_PROG, type NativeBpf } from "../../probes/datapath/index.ts";
import { installFlowKey } from "../../probes/kernel-keys/index.ts";
import { datapathSkipReason, gcmDatapathSkipReason } from "../../lab/index.ts";
import { ipv6Packet, udpHeader } from "../../fixtures/index.ts";

export const ETH = Buffer.from([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd]);
export const flow = {
  src: parseIpv6Address("fd00::1"),
  dst: parseIpv6Address("fd00::2"),
  sport: 40000,
  dport: 7000,
  proto: 17,
};
/** fd00::1 port 40000 to fd00::2 port 7000, 20 bytes of UDP payload, as egress gets it. */
export const plain = Buffer.concat([
  ETH,
  ipv6Packet({ src: "fd00::1", dst: "fd00::2", proto: 17, upper: udpHeader(40000, 7000, 20) }),
]);

/** An AEAD the kernel seals with, and why it cannot run here (undefined: it can). */
export interface KernelAead {
  name: string;
  aead: "chacha20-poly1305" | "aes-128-gcm";
  id: number;
  keyLength: number;
  skip: string | undefined;
}
export const KERNEL_AEADS: KernelAead[] = [
  {
    name: "ChaCha20-Poly1305",
    aead: "chacha20-poly1305",
    id: AeadId.Chacha20Poly1305,
    keyLength: 32,
    skip: datapathSkipReason(),
  },
  { name: "AES-128-GCM", aead: "aes-128-gcm", id: AeadId.Aes128Gcm, keyLength: 16, skip: gcmDatapathSkipReason() },
];

/** Install `stk` as a host's key for `kri` on `flow` (the AES build: through pdm_gcm_install). */
export function installKey(
  native: NativeBpf,
  object: number,
  k: KernelAead,
  kri: number,
  stk: Uint8Array,
  side: "sender" | "receiver",
): void {
  const map = native.mapFd(object, side === "sender" ? PDM_MAP.keys : PDM_MAP.peerKeys);
  const gcm = k.aead === "aes-128-gcm" ? native.programFd(object, PDM_PROG.gcmInstall) : undefined;
  installFlowKey(native, map, flow, kri, stk, side, gcm);
}

// Build IPv6 packets byte by byte for tests: fixed header, optional extension
// headers, an upper-layer header. Kept independent of the code under test except
// for the PDM option encoder, which has its own golden-byte tests.

import { parseIpv6Address } from "../../pdm/index.ts";

export interface PacketSpec {
  src?: string;
  dst?: string;
  /** Extension headers, in order, each as [type, bytes-including-its-own-next-header-byte]. */
  ext?: Array<[number, Uint8Array]>;
  proto: number;
  upper: Uint8Array;
}

export function udpHeader(sport: number, dport: number, payload = 8): Uint8Array {
  const b = new Uint8Array(8 + payload);
  new DataView(b.buffer).setUint16(0, sport);
  new DataView(b.buffer).setUint16(2, dport);
  new DataView(b.buffer).setUint16(4, 8 + payload);
  return b;
}

export function tcpHeader(sport: number, dport: number): Uint8Array {
  const b = new Uint8Array(20);
  const v = new DataView(b.buffer);
  v.setUint16(0, sport);
  v.setUint16(2, dport);
  b[12] = 5 << 4;
  return b;
}

export function icmpEcho(type: 128 | 129, id: number, seq: number): Uint8Array {
  const b = new Uint8Array(16);
  b[0] = type;
  new DataView(b.buffer).setUint16(4, id);
  new DataView(b.buffer).setUint16(6, seq);
  return b;
}

/** Assemble the packet; each extension header's first byte is patched to chain correctly. */
export function ipv6Packet(spec: PacketSpec): Uint8Array {
  const ext = spec.ext ?? [];
  const types = [...ext.map(([t]) => t), spec.proto];
  const payload = ext.reduce((n, [, b]) => n + b.length, 0) + spec.upper.length;
  const out = new Uint8Array(40 + payload);
  out[0] = 0x60;
  new DataView(out.buffer).setUint16(4, payload);
  out[6] = types[0]!;
  out[7] = 64;
  out.set(parseIpv6Address(spec.src ?? "fd00::1"), 8);
  out.set(parseIpv6Address(spec.dst ?? "fd00::2"), 24);
  let at = 40;
  ext.forEach(([, bytes], i) => {
    out.set(bytes, at);
    out[at] = types[i + 1]!;
    at += bytes.length;
  });
  out.set(spec.upper, at);
  return out;
}

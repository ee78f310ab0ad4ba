// The 5-tuple a PDM sender keeps its state under (wire.md section 3), as the
// sender of the packet sees it. Keys are strings so that Map lookups are cheap
// and two directions of one conversation are distinct keys.

import { formatIpv6Address } from "./address.ts";

export interface FlowTuple {
  src: Uint8Array; // 16 bytes
  dst: Uint8Array; // 16 bytes
  sport: number;
  dport: number;
  proto: number;
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");

/** A compact, exact key for one direction of a flow. */
export function flowKey(f: FlowTuple): string {
  return `${hex(f.src)}|${hex(f.dst)}|${f.sport}|${f.dport}|${f.proto}`;
}

/** The same flow seen from the other end. */
export function reverseFlow(f: FlowTuple): FlowTuple {
  return { src: f.dst, dst: f.src, sport: f.dport, dport: f.sport, proto: f.proto };
}

/** Human form: [src]:sport -> [dst]:dport proto. */
export function formatFlow(f: FlowTuple): string {
  const name = f.proto === 6 ? "tcp" : f.proto === 17 ? "udp" : f.proto === 58 ? "icmpv6" : `proto ${f.proto}`;
  return `[${formatIpv6Address(f.src)}]:${f.sport} -> [${formatIpv6Address(f.dst)}]:${f.dport} ${name}`;
}

/** Copy the tuple's addresses out of a packet buffer, so it survives the buffer. */
export function detachFlow(f: FlowTuple): FlowTuple {
  return { src: Uint8Array.from(f.src), dst: Uint8Array.from(f.dst), sport: f.sport, dport: f.dport, proto: f.proto };
}

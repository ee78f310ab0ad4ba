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

import { hex } from "./hex.ts";

/** A compact, exact key for one direction of a flow. */
export function flowKey(f: FlowTuple): string {
  return `${hex(f.src)}|${hex(f.dst)}|${f.sport}|${f.dport}|${f.proto}`;
}

const ICMPV6 = 58;
const ECHO_REQUEST_WORD = 128 << 8;
const ECHO_REPLY_WORD = 129 << 8;

/**
 * The same conversation seen from the other end: the 5-tuple the peer sends on.
 * TCP/UDP swap addresses and ports. ICMPv6 keeps its "ports" in place (type/code
 * word, identifier) and pairs echo request with echo reply, so that a ping's reply
 * finds the request's state (our reading; wire.md section 3 leaves it open).
 */
export function reverseFlow(f: FlowTuple): FlowTuple {
  if (f.proto === ICMPV6) {
    const word =
      f.sport === ECHO_REQUEST_WORD ? ECHO_REPLY_WORD : f.sport === ECHO_REPLY_WORD ? ECHO_REQUEST_WORD : f.sport;
    return { src: f.dst, dst: f.src, sport: word, dport: f.dport, proto: f.proto };
  }
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

// The flow rule, written once (wire.md section 3): the 5-tuple a PDM sender keeps its
// state under, as the sender of the packet sees it, and how the two directions of one
// conversation pair up. TCP and UDP are flows of addresses and ports. An ICMPv6 echo
// has no ports: its tuple carries the type/code word (type << 8 | code) as source port
// and the identifier as destination port, and a request pairs with the reply of the
// same identifier (our reading; wire.md 3 leaves ICMPv6 open). The kernel, which keys a
// flow as seen from its host, uses the identifier as both ports (flowKeyPorts).
// Keys are strings so that Map lookups are cheap and two directions are distinct keys.

import { formatIpv6Address } from "./address.ts";
import { hex } from "./hex.ts";

export interface FlowTuple {
  src: Uint8Array; // 16 bytes
  dst: Uint8Array; // 16 bytes
  sport: number;
  dport: number;
  proto: number;
}

/** The upper-layer protocols PDM stamps. */
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;
/** The only ICMPv6 messages PDM stamps (NDP and errors keep their exact format). */
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;

const TRANSPORT_NAMES: Record<number, string> = {
  [IPPROTO_TCP]: "tcp",
  [IPPROTO_UDP]: "udp",
  [IPPROTO_ICMPV6]: "icmpv6",
};

/** "tcp", "udp", "icmpv6", or undefined for another protocol. */
export function transportName(proto: number): string | undefined {
  return TRANSPORT_NAMES[proto];
}

export const isEchoType = (type: number): boolean => type === ICMPV6_ECHO_REQUEST || type === ICMPV6_ECHO_REPLY;

/** The echo type that answers `type`: a reply answers a request and the other way round. */
export function echoAnswerType(type: number): number {
  return type === ICMPV6_ECHO_REQUEST ? ICMPV6_ECHO_REPLY : ICMPV6_ECHO_REQUEST;
}

/** An echo tuple's source port: the type/code word (code 0). */
export const echoWord = (type: number): number => type << 8;

/** The tuple is an ICMPv6 echo reply's, so it was sent by the end that was pinged. */
export const isEchoReply = (f: FlowTuple): boolean =>
  f.proto === IPPROTO_ICMPV6 && f.sport === echoWord(ICMPV6_ECHO_REPLY);

/** A compact, exact key for one direction of a flow. */
export function flowKey(f: FlowTuple): string {
  return `${hex(f.src)}|${hex(f.dst)}|${f.sport}|${f.dport}|${f.proto}`;
}

/**
 * The same conversation seen from the other end: the 5-tuple the peer sends on.
 * TCP/UDP swap addresses and ports. ICMPv6 keeps its "ports" in place (type/code
 * word, identifier) and pairs echo request with echo reply, so that a ping's reply
 * finds the request's state.
 */
export function reverseFlow(f: FlowTuple): FlowTuple {
  if (f.proto === IPPROTO_ICMPV6) {
    const type = f.sport >> 8;
    const word = (f.sport & 0xff) === 0 && isEchoType(type) ? echoWord(echoAnswerType(type)) : f.sport;
    return { src: f.dst, dst: f.src, sport: word, dport: f.dport, proto: f.proto };
  }
  return { src: f.dst, dst: f.src, sport: f.dport, dport: f.sport, proto: f.proto };
}

/**
 * The ports that are the same whichever way a conversation's packet goes, for hashing
 * both directions together: an echo's identifier, or TCP/UDP's two ports in any order.
 * Unsigned 32-bit.
 */
export function conversationPorts(proto: number, sport: number, dport: number): number {
  if (proto === IPPROTO_ICMPV6) return dport;
  return ((sport + dport) ^ Math.imul(sport ^ dport, 0x9e3779b1)) >>> 0;
}

/**
 * A conversation's ends as a user reads them, from the client's tuple: TCP/UDP ports;
 * for an echo, the identifier on the client's side and no server port.
 */
export function endpointPorts(client: FlowTuple): { clientPort: number; serverPort: number } {
  if (client.proto === IPPROTO_ICMPV6) return { clientPort: client.dport, serverPort: 0 };
  return { clientPort: client.sport, serverPort: client.dport };
}

/**
 * The kernel's ports for the flow of a sender's tuple, as seen by the host that sends it
 * (`side` "sender": local is the tuple's source) or receives it ("receiver"). An echo
 * flow is keyed by its identifier alone, so a request and its reply share the entry.
 */
export function flowKeyPorts(f: FlowTuple, side: "sender" | "receiver"): { local: number; remote: number } {
  if (f.proto === IPPROTO_ICMPV6) return { local: f.dport, remote: f.dport };
  return side === "sender" ? { local: f.sport, remote: f.dport } : { local: f.dport, remote: f.sport };
}

/** Human form: [src]:sport -> [dst]:dport proto. */
export function formatFlow(f: FlowTuple): string {
  const name = transportName(f.proto) ?? `proto ${f.proto}`;
  return `[${formatIpv6Address(f.src)}]:${f.sport} -> [${formatIpv6Address(f.dst)}]:${f.dport} ${name}`;
}

/** Copy the tuple's addresses out of a packet buffer, so it survives the buffer. */
export function detachFlow(f: FlowTuple): FlowTuple {
  return { src: Uint8Array.from(f.src), dst: Uint8Array.from(f.dst), sport: f.sport, dport: f.dport, proto: f.proto };
}

// Walk an IPv6 packet (RFC 8200): fixed header, extension-header chain, upper-layer
// 5-tuple, and the PDM option if any. Never throws; every malformed case is a
// WireError naming the field and the byte offset.
//
// 5-tuple per wire.md section 3: for TCP and UDP the ports; for ICMPv6 the "source
// port" is the type/code word (type << 8 | code) and the "destination port" the
// identifier (echo request/reply; 0 for other messages).

import { WireError, fail, ok, type Result } from "./errors.ts";
import { decodePdmOptionOrError } from "./option.ts";
import {
  decodeDraftOption,
  draftLayoutOf,
  DRAFT15_DEFAULT_TYPE,
  type AnyPdmOption,
  type DraftDecodeOptions,
} from "./draft-layouts.ts";
import { findPdmOptionOrError, NEXT_HEADER_DEST_OPTS } from "./dest-options.ts";
import { IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, isEchoType } from "./flow.ts";

export const IPV6_HEADER_LEN = 40;
export const PROTO = {
  hopByHop: 0,
  tcp: IPPROTO_TCP,
  udp: IPPROTO_UDP,
  routing: 43,
  fragment: 44,
  esp: 50,
  ah: 51,
  icmpv6: IPPROTO_ICMPV6,
  none: 59,
  destOpts: 60,
} as const;
/** Headers sharing the generic (Next Header, Hdr Ext Len in 8-octet units) shape. */
const GENERIC_EXT = new Uint8Array(256);
for (const t of [PROTO.hopByHop, PROTO.routing, PROTO.destOpts, 135, 139, 140, 253, 254]) GENERIC_EXT[t] = 1;
/** RFC 8200 does not bound the chain; we stop walking after this many headers. */
export const MAX_EXTENSION_HEADERS = 16;

export interface Ipv6Packet {
  /** Offsets of the 16-byte source and destination addresses in the buffer (no copies, no views: hot path). */
  srcOffset: number;
  dstOffset: number;
  hopLimit: number;
  /** Upper-layer protocol (6, 17, 58, ...), or 59/50/44 when the walk cannot reach one. */
  protocol: number;
  sport: number;
  dport: number;
  /** True for a non-first fragment: the ports are not in this packet. */
  fragment: boolean;
  /** Offset of the upper-layer header in the buffer. */
  upperOffset: number;
  /** Bytes of the packet from the fixed header on, as the IPv6 payload length says. */
  ipLength: number;
  /** Number of extension headers before the upper layer. */
  extensionHeaders: number;
  /** The PDM option, decoded (any layout); undefined when absent or malformed. */
  pdm: AnyPdmOption | undefined;
  /** Offset of the PDM option's Type byte, -1 when absent. */
  pdmOffset: number;
  /** Set when a PDM option is present but malformed (the rest of the packet is fine). */
  pdmError: WireError | undefined;
}

/** Parse the IPv6 packet starting at `at`; `end` is the end of the captured bytes. */
export function parseIpv6(
  buf: Uint8Array,
  at = 0,
  end: number = buf.length,
  layouts: DraftDecodeOptions = {},
): Result<Ipv6Packet> {
  const packet = emptyIpv6Packet();
  const error = parseIpv6Into(buf, at, end, packet, layouts);
  return error ? fail(error) : ok(packet);
}

export function emptyIpv6Packet(): Ipv6Packet {
  return {
    srcOffset: 0,
    dstOffset: 0,
    hopLimit: 0,
    protocol: 0,
    sport: 0,
    dport: 0,
    fragment: false,
    upperOffset: 0,
    ipLength: 0,
    extensionHeaders: 0,
    pdm: undefined,
    pdmOffset: -1,
    pdmError: undefined,
  };
}

/**
 * parseIpv6 into a caller-owned object (the analyzer reuses one for every packet).
 * Returns the error, or undefined when `packet` now describes the packet.
 */
export function parseIpv6Into(
  buf: Uint8Array,
  at: number,
  end: number,
  packet: Ipv6Packet,
  layouts: DraftDecodeOptions = {},
): WireError | undefined {
  const draft15Type = layouts.draft15Type ?? DRAFT15_DEFAULT_TYPE;
  end = Math.min(end, buf.length);
  if (at + IPV6_HEADER_LEN > end)
    return new WireError("truncated", "ipv6", at, `need 40 bytes, have ${Math.max(0, end - at)}`);
  const version = buf[at]! >>> 4;
  if (version !== 6) return new WireError("bad-version", "ipv6.version", at, `expected 6, found ${version}`);
  const payloadLength = (buf[at + 4]! << 8) | buf[at + 5]!;
  // Payload length 0 means a jumbogram (RFC 2675): trust the captured length.
  const stop = payloadLength === 0 ? end : Math.min(end, at + IPV6_HEADER_LEN + payloadLength);
  packet.srcOffset = at + 8;
  packet.dstOffset = at + 24;
  packet.hopLimit = buf[at + 7]!;
  packet.protocol = buf[at + 6]!;
  packet.sport = 0;
  packet.dport = 0;
  packet.fragment = false;
  packet.upperOffset = at + IPV6_HEADER_LEN;
  packet.ipLength = IPV6_HEADER_LEN + payloadLength;
  packet.extensionHeaders = 0;
  packet.pdm = undefined;
  packet.pdmOffset = -1;
  packet.pdmError = undefined;

  let next = packet.protocol;
  let cursor = at + IPV6_HEADER_LEN;
  for (;;) {
    if (GENERIC_EXT[next] === 1) {
      if (cursor + 2 > stop) return new WireError("truncated", extName(next), cursor, "extension header cut off");
      const length = (buf[cursor + 1]! + 1) * 8;
      if (cursor + length > stop) {
        return new WireError(
          "bad-length",
          `${extName(next)}.hdr_ext_len`,
          cursor + 1,
          `header of ${length} bytes runs past the packet`,
        );
      }
      if (next === NEXT_HEADER_DEST_OPTS) {
        const found = findPdmOptionOrError(buf, cursor, cursor + length, draft15Type);
        // A bad TLV inside a well-sized header spoils only the options: the chain goes on.
        if (typeof found !== "number") packet.pdmError ??= found;
        else if (found >= 0) {
          if (packet.pdmOffset >= 0) {
            packet.pdmError ??= new WireError(
              "duplicate-pdm",
              "pdm",
              found,
              `second PDM option (first at ${packet.pdmOffset})`,
            );
          } else {
            packet.pdmOffset = found;
            // The later drafts' layouts by type and length (layout E's type: always);
            // -02's otherwise (draft-layouts.md).
            const decoded =
              buf[found] === draft15Type || draftLayoutOf(buf[found]!, buf[found + 1]!, layouts)
                ? decodeDraftOption(buf, found, cursor + length, layouts)
                : decodePdmOptionOrError(buf, found, cursor + length);
            if (decoded instanceof WireError) packet.pdmError = decoded;
            else packet.pdm = decoded;
          }
        }
      }
      next = buf[cursor]!;
      cursor += length;
    } else if (next === PROTO.fragment) {
      if (cursor + 8 > stop) return new WireError("truncated", "ipv6.fragment", cursor, "fragment header cut off");
      const fragmentOffset = ((buf[cursor + 2]! << 8) | buf[cursor + 3]!) >>> 3;
      next = buf[cursor]!;
      cursor += 8;
      if (fragmentOffset !== 0) {
        packet.fragment = true;
        break;
      }
    } else if (next === PROTO.ah) {
      if (cursor + 2 > stop) return new WireError("truncated", "ah", cursor, "authentication header cut off");
      const length = (buf[cursor + 1]! + 2) * 4;
      if (cursor + length > stop)
        return new WireError(
          "bad-length",
          "ah.payload_len",
          cursor + 1,
          `header of ${length} bytes runs past the packet`,
        );
      next = buf[cursor]!;
      cursor += length;
    } else {
      break; // upper layer, ESP (opaque), or No Next Header
    }
    packet.extensionHeaders += 1;
    if (packet.extensionHeaders > MAX_EXTENSION_HEADERS) {
      return new WireError(
        "too-many-headers",
        "ipv6.next_header",
        cursor,
        `more than ${MAX_EXTENSION_HEADERS} extension headers`,
      );
    }
  }

  packet.protocol = next;
  packet.upperOffset = cursor;
  if (packet.fragment) return undefined;
  if (next === PROTO.tcp || next === PROTO.udp) {
    if (cursor + 4 > stop)
      return new WireError("truncated", next === PROTO.tcp ? "tcp.ports" : "udp.ports", cursor, "ports cut off");
    packet.sport = (buf[cursor]! << 8) | buf[cursor + 1]!;
    packet.dport = (buf[cursor + 2]! << 8) | buf[cursor + 3]!;
  } else if (next === PROTO.icmpv6) {
    if (cursor + 2 > stop) return new WireError("truncated", "icmpv6.type", cursor, "ICMPv6 header cut off");
    const type = buf[cursor]!;
    packet.sport = (type << 8) | buf[cursor + 1]!;
    if (isEchoType(type)) {
      if (cursor + 6 > stop) return new WireError("truncated", "icmpv6.echo.id", cursor + 4, "echo identifier cut off");
      packet.dport = (buf[cursor + 4]! << 8) | buf[cursor + 5]!;
    }
  }
  return undefined;
}

function extName(next: number): string {
  switch (next) {
    case PROTO.hopByHop:
      return "ipv6.hopopts";
    case PROTO.routing:
      return "ipv6.routing";
    case PROTO.destOpts:
      return "ipv6.dstopts";
    default:
      return `ipv6.ext${next}`;
  }
}

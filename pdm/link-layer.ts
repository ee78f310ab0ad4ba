// Where the IPv6 header starts in a captured frame, per link type (tcpdump.org
// link-layer header types). Returns -1 for frames that carry no IPv6.

export const LINKTYPE = {
  null: 0, // BSD loopback: 4-byte address family in the writer's byte order
  ethernet: 1,
  raw: 101, // raw IPv4 or IPv6, told apart by the version nibble
  loop: 108, // OpenBSD loopback: family in network byte order
  linuxSll: 113,
  ipv6: 229,
  linuxSll2: 276,
} as const;

const ETHERTYPE_IPV6 = 0x86dd;
/** AF_INET6 on Linux (10), FreeBSD/NetBSD/OpenBSD/DragonFly (24, 28), Darwin (30). */
const AF_INET6 = new Set([10, 24, 28, 30]);
const MAX_VLAN_TAGS = 4;

export const SUPPORTED_LINKTYPES: ReadonlySet<number> = new Set([...Object.values(LINKTYPE), 12, 14]);

export function linkTypeName(linkType: number): string {
  const entry = Object.entries(LINKTYPE).find(([, v]) => v === linkType);
  return entry ? entry[0] : `linktype ${linkType}`;
}

/**
 * Where the IPv6 header of the frame in frame[start, start + length) begins, as an
 * index into `frame` (so start + the link header length), or -1.
 */
export function ipv6Offset(linkType: number, frame: Uint8Array, length: number, start = 0): number {
  const s = start;
  switch (linkType) {
    case LINKTYPE.ethernet: {
      let at = 12;
      for (let tags = 0; tags <= MAX_VLAN_TAGS; tags += 1) {
        if (at + 2 > length) return -1;
        const type = (frame[s + at]! << 8) | frame[s + at + 1]!;
        if (type === ETHERTYPE_IPV6) return s + at + 2;
        if (type !== 0x8100 && type !== 0x88a8 && type !== 0x9100) return -1; // VLAN tags
        at += 4;
      }
      return -1;
    }
    case LINKTYPE.linuxSll:
      return length >= 16 && ((frame[s + 14]! << 8) | frame[s + 15]!) === ETHERTYPE_IPV6 ? s + 16 : -1;
    case LINKTYPE.linuxSll2:
      return length >= 20 && ((frame[s]! << 8) | frame[s + 1]!) === ETHERTYPE_IPV6 ? s + 20 : -1;
    case LINKTYPE.raw:
    case 12: // DLT_RAW on some BSDs
    case 14:
    case LINKTYPE.ipv6:
      return length >= 1 && frame[s]! >>> 4 === 6 ? s : -1;
    case LINKTYPE.null: {
      if (length < 4) return -1;
      const le = frame[s]! | (frame[s + 1]! << 8);
      const be = (frame[s + 2]! << 8) | frame[s + 3]!;
      return (frame[s + 2] === 0 && frame[s + 3] === 0 && AF_INET6.has(le)) ||
        (frame[s] === 0 && frame[s + 1] === 0 && AF_INET6.has(be))
        ? s + 4
        : -1;
    }
    case LINKTYPE.loop:
      return length >= 4 &&
        AF_INET6.has(((frame[s]! << 24) | (frame[s + 1]! << 16) | (frame[s + 2]! << 8) | frame[s + 3]!) >>> 0)
        ? s + 4
        : -1;
    default:
      return -1;
  }
}

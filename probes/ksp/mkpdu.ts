// The Key Selection Protocol's messages (groups.md 2), shaped as IEEE 802.1X-2010's
// MKPDU body (clause 11.11, as hostap's src/pae encodes it) so that Wireshark's MKA
// dissector reads them once wrapped in Ethernet + EAPOL. Parameter sets, in order:
//
//   basic (always first)  version, key-server priority, flags, member id (in the SCI's
//                         place), MI (12 bytes), MN (u32), algorithm agility, CKN
//   1 live peer list      (MI, MN) pairs
//   2 potential peer list (MI, MN) pairs
//   3 key use (SAK use)   latest and old key: (key server MI, key number) with tx/rx
//   4 distributed key     key number (= generation), and KN wrapped under KEK (RFC 3394)
//   7 announcement        one TLV of this protocol's: a request for a new key (the
//                         generation to replace), as "a member asks" (groups.md 2)
//   255 ICV indicator     AES-CMAC under ICK over a pseudo-header and everything before it
//
// Each set but the basic one is type (1 byte), a reserved or flag byte, and a 12-bit
// body length; bodies are padded to 4 bytes. `decodeMessage` returns a typed reason
// for everything it refuses; the ICV is checked by the caller (it needs the keys).

export const KSP_VERSION = 1;
/** IEEE 802.1X-2010's algorithm agility for AES-CMAC-128 (00-80-C2-01). */
export const ALGORITHM_AGILITY = 0x0080c201;
export const MI_LENGTH = 12;
export const MEMBER_ID_LENGTH = 8;
export const ICV_LENGTH = 16;
/** The largest message: a UDP payload that fits one 1280-byte IPv6 packet. */
export const MAX_MESSAGE_BYTES = 1232;
const BASIC_FIXED = 28; // member id 8 + MI 12 + MN 4 + algorithm agility 4

export const SET_LIVE = 1;
export const SET_POTENTIAL = 2;
export const SET_KEY_USE = 3;
export const SET_DISTRIBUTED_KEY = 4;
export const SET_ANNOUNCEMENT = 7;
/** The announcement TLV type of a key request: the last of the 7-bit types, outside 802.1X's own. */
export const TLV_KEY_REQUEST = 127;
export const SET_ICV = 255;

export interface PeerEntry {
  mi: Uint8Array;
  mn: number;
}

/** A key as MKA names it: the key server's MI and a key number (here the generation). */
export interface KeyId {
  serverMi: Uint8Array;
  keyNumber: number;
}

export interface KeyUse {
  latest: KeyId & { tx: boolean; rx: boolean };
  old: (KeyId & { tx: boolean; rx: boolean }) | undefined;
}

export interface KspMessage {
  priority: number;
  keyServer: boolean;
  /** The sender still follows a group master (MKA's MACsec Desired bit): key servers wait while any member does. */
  served?: boolean;
  memberId: Uint8Array;
  mi: Uint8Array;
  mn: number;
  ckn: Uint8Array;
  live: PeerEntry[];
  potential: PeerEntry[];
  keyUse?: KeyUse;
  /** The key server's new generation: its number and the KN wrapped under KEK. */
  distributedKey?: { generation: number; wrapped: Uint8Array };
  /** The sender asks for a new key to replace this generation (a flow of its ran out of Kri). */
  keyRequest?: number;
}

export type DecodeFailure =
  | "truncated" // a set or field runs past the end
  | "oversized" // longer than MAX_MESSAGE_BYTES, or a set longer than the protocol allows
  | "unknown-parameter-set" // a set type this protocol does not define
  | "malformed" // a field of an impossible value: version, lengths, order
  | "no-icv"; // the ICV indicator is missing or not last

export type Decoded =
  | { ok: true; message: KspMessage; icv: Uint8Array; signed: Uint8Array }
  | { ok: false; reason: DecodeFailure; detail: string };

const pad4 = (n: number): number => (n + 3) & ~3;

function setHeader(type: number, flags: number, length: number): Buffer {
  const h = Buffer.alloc(4);
  h[0] = type;
  h[1] = flags;
  h.writeUInt16BE(length & 0x0fff, 2);
  return h;
}

function padded(body: Buffer): Buffer {
  return body.length % 4 === 0 ? body : Buffer.concat([body, Buffer.alloc(pad4(body.length) - body.length)]);
}

function peersBody(peers: readonly PeerEntry[]): Buffer {
  const b = Buffer.alloc(peers.length * 16);
  peers.forEach((p, i) => {
    Buffer.from(p.mi).copy(b, i * 16);
    b.writeUInt32BE(p.mn >>> 0, i * 16 + 12);
  });
  return b;
}

/** The message's bytes without the ICV: what the ICV covers (after the pseudo-header). */
export function encodeUnsigned(m: KspMessage): Buffer {
  const parts: Buffer[] = [];
  const basic = Buffer.alloc(4 + BASIC_FIXED + m.ckn.length);
  basic[0] = KSP_VERSION;
  basic[1] = m.priority;
  const length = BASIC_FIXED + m.ckn.length;
  basic[2] = (m.keyServer ? 0x80 : 0) | (m.served ? 0x40 : 0) | ((length >> 8) & 0x0f);
  basic[3] = length & 0xff;
  Buffer.from(m.memberId).copy(basic, 4);
  Buffer.from(m.mi).copy(basic, 12);
  basic.writeUInt32BE(m.mn >>> 0, 24);
  basic.writeUInt32BE(ALGORITHM_AGILITY, 28);
  Buffer.from(m.ckn).copy(basic, 32);
  parts.push(padded(basic));
  for (const [type, peers] of [
    [SET_LIVE, m.live],
    [SET_POTENTIAL, m.potential],
  ] as const) {
    if (peers.length === 0) continue;
    const body = peersBody(peers);
    parts.push(setHeader(type, 0, body.length), body);
  }
  if (m.keyUse) {
    const { latest, old } = m.keyUse;
    const flags = (latest.tx ? 0x20 : 0) | (latest.rx ? 0x10 : 0) | (old?.tx ? 0x02 : 0) | (old?.rx ? 0x01 : 0);
    const body = Buffer.alloc(40);
    Buffer.from(latest.serverMi).copy(body, 0);
    body.writeUInt32BE(latest.keyNumber >>> 0, 12);
    if (old) {
      Buffer.from(old.serverMi).copy(body, 20);
      body.writeUInt32BE(old.keyNumber >>> 0, 32);
    }
    parts.push(setHeader(SET_KEY_USE, flags, body.length), body);
  }
  if (m.distributedKey) {
    const body = Buffer.alloc(4 + m.distributedKey.wrapped.length);
    body.writeUInt32BE(m.distributedKey.generation >>> 0, 0);
    Buffer.from(m.distributedKey.wrapped).copy(body, 4);
    parts.push(setHeader(SET_DISTRIBUTED_KEY, 0, body.length), padded(body));
  }
  if (m.keyRequest !== undefined) {
    // One TLV: 7-bit type and 9-bit length (as MKA's announcements), then the generation.
    const body = Buffer.alloc(6);
    body.writeUInt16BE((TLV_KEY_REQUEST << 9) | 4, 0);
    body.writeUInt32BE(m.keyRequest >>> 0, 2);
    parts.push(setHeader(SET_ANNOUNCEMENT, 0, body.length), padded(body));
  }
  parts.push(setHeader(SET_ICV, 0, ICV_LENGTH));
  return Buffer.concat(parts);
}

/** The whole message: the unsigned bytes and the ICV `sign` computes over them. */
export function encodeMessage(m: KspMessage, sign: (unsigned: Buffer) => Uint8Array): Buffer {
  const unsigned = encodeUnsigned(m);
  return Buffer.concat([unsigned, Buffer.from(sign(unsigned))]);
}

/** Parse a datagram; never throws. `signed` is what the ICV covers, `icv` the 16 bytes to check. */
export function decodeMessage(bytes: Uint8Array): Decoded {
  const fail = (reason: DecodeFailure, detail: string): Decoded => ({ ok: false, reason, detail });
  if (bytes.length > MAX_MESSAGE_BYTES)
    return fail("oversized", `${bytes.length} bytes, more than ${MAX_MESSAGE_BYTES}`);
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (b.length < 4 + BASIC_FIXED + 1)
    return fail("truncated", `${b.length} bytes: no room for the basic parameter set`);
  if (b[0] !== KSP_VERSION) return fail("malformed", `version ${b[0]}, not ${KSP_VERSION}`);
  const basicLength = ((b[2]! & 0x0f) << 8) | b[3]!;
  const cknLength = basicLength - BASIC_FIXED;
  if (cknLength < 1 || cknLength > 32)
    return fail("malformed", `basic parameter set of ${basicLength} bytes: a CKN of 1-32 bytes`);
  if (4 + pad4(basicLength) > b.length) return fail("truncated", "the basic parameter set runs past the end");
  if (b.readUInt32BE(28) !== ALGORITHM_AGILITY)
    return fail("malformed", `algorithm agility ${b.readUInt32BE(28).toString(16)}`);
  const message: KspMessage = {
    priority: b[1]!,
    keyServer: (b[2]! & 0x80) !== 0,
    served: (b[2]! & 0x40) !== 0,
    memberId: new Uint8Array(b.subarray(4, 12)),
    mi: new Uint8Array(b.subarray(12, 24)),
    mn: b.readUInt32BE(24),
    ckn: new Uint8Array(b.subarray(32, 32 + cknLength)),
    live: [],
    potential: [],
  };
  let at = 4 + pad4(basicLength);
  const seen = new Set<number>();
  for (;;) {
    if (at + 4 > b.length) return fail(at === b.length ? "no-icv" : "truncated", `no ICV indicator at byte ${at}`);
    const type = b[at]!;
    const flags = b[at + 1]!;
    const length = b.readUInt16BE(at + 2) & 0x0fff;
    const body = at + 4;
    if (body + pad4(length) > b.length && type !== SET_ICV)
      return fail("truncated", `parameter set ${type} of ${length} bytes runs past the end`);
    if (seen.has(type)) return fail("malformed", `parameter set ${type} twice`);
    seen.add(type);
    switch (type) {
      case SET_LIVE:
      case SET_POTENTIAL: {
        if (length % 16 !== 0) return fail("malformed", `peer list of ${length} bytes: not (MI, MN) pairs`);
        const list = type === SET_LIVE ? message.live : message.potential;
        for (let p = body; p < body + length; p += 16)
          list.push({ mi: b.subarray(p, p + 12), mn: b.readUInt32BE(p + 12) }); // views of the datagram, no copies
        break;
      }
      case SET_KEY_USE: {
        if (length !== 40) return fail("malformed", `key use of ${length} bytes, not 40`);
        const key = (p: number, tx: boolean, rx: boolean) => ({
          serverMi: new Uint8Array(b.subarray(p, p + 12)),
          keyNumber: b.readUInt32BE(p + 12),
          tx,
          rx,
        });
        const old = key(body + 20, (flags & 0x02) !== 0, (flags & 0x01) !== 0);
        message.keyUse = {
          latest: key(body, (flags & 0x20) !== 0, (flags & 0x10) !== 0),
          old: old.keyNumber === 0 ? undefined : old,
        };
        break;
      }
      case SET_DISTRIBUTED_KEY: {
        // A 16-byte KN wrapped is 24 bytes; a 32-byte one 40.
        if (length !== 28 && length !== 44)
          return fail("malformed", `distributed key of ${length} bytes, not 28 or 44`);
        message.distributedKey = {
          generation: b.readUInt32BE(body),
          wrapped: new Uint8Array(b.subarray(body + 4, body + length)),
        };
        break;
      }
      case SET_ANNOUNCEMENT: {
        // TLVs; only the key request is this protocol's, any other is skipped.
        for (let p = body; p + 2 <= body + length;) {
          const tlvType = b[p]! >> 1;
          const tlvLength = ((b[p]! & 1) << 8) | b[p + 1]!;
          if (p + 2 + tlvLength > body + length) return fail("malformed", "an announcement TLV runs past its set");
          if (tlvType === TLV_KEY_REQUEST) {
            if (tlvLength !== 4) return fail("malformed", `key request of ${tlvLength} bytes, not 4`);
            message.keyRequest = b.readUInt32BE(p + 2);
          }
          p += 2 + tlvLength;
        }
        break;
      }
      case SET_ICV: {
        if (length !== ICV_LENGTH) return fail("malformed", `ICV of ${length} bytes, not ${ICV_LENGTH}`);
        if (body + ICV_LENGTH !== b.length)
          return fail(
            body + ICV_LENGTH > b.length ? "truncated" : "malformed",
            "the ICV is not the message's last 16 bytes",
          );
        return {
          ok: true,
          message,
          icv: new Uint8Array(b.subarray(body)),
          signed: new Uint8Array(b.subarray(0, body)),
        };
      }
      default:
        return fail("unknown-parameter-set", `parameter set type ${type}`);
    }
    at = body + pad4(length);
  }
}

/** What the ICV covers in front of the message: source and destination address and port (groups.md 2). */
export function pseudoHeader(src: Uint8Array, srcPort: number, dst: Uint8Array, dstPort: number): Buffer {
  const h = Buffer.alloc(36);
  Buffer.from(src).copy(h, 0);
  Buffer.from(dst).copy(h, 16);
  h.writeUInt16BE(srcPort, 32);
  h.writeUInt16BE(dstPort, 34);
  return h;
}

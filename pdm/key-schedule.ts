// Key schedule, keys.md section 4, on node:crypto's HKDF.
//
//   PRK            = HKDF-Extract(salt, SharedSecret)
//   ClientSecret   = HKDF-Expand(PRK, "pdmv2 client" || ip16(client), 32)
//   FlowPRK        = HKDF-Extract(salt, ClientSecret)
//   STK(flow, kri) = HKDF-Expand(FlowPRK, "pdmv2 stk" || ip16(src) || ip16(dst)
//                      || u16(sport) || u16(dport) || u8(proto) || u32(kri), Nk)
//   keyId          = HKDF-Expand(PRK, "pdmv2 key id", 8)
//
// node's hkdfSync(digest, ikm, salt, info, L) is exactly Expand(Extract(salt, ikm), info, L),
// so every line above is one call, with no hand-written HMAC chaining.

import { hkdfSync } from "node:crypto";
import { KeyError } from "./errors.ts";
import type { FlowTuple } from "./flow.ts";

// HPKE registry identifiers (RFC 9180 section 7.1), the values @hpke/core's enums
// carry (a test checks they agree). Defined here so that the protocol core, and
// with it `pdm analyze`, loads without the HPKE library (about 40 ms at start-up).
export const KemId = { DhkemP256HkdfSha256: 0x0010, DhkemX25519HkdfSha256: 0x0020 } as const;
export const KdfId = { HkdfSha256: 0x0001, HkdfSha384: 0x0002, HkdfSha512: 0x0003 } as const;
export const AeadId = { Aes128Gcm: 0x0001, Aes256Gcm: 0x0002, Chacha20Poly1305: 0x0003 } as const;

/** The HPKE suite fixed at registration for a whole deployment. */
export interface Suite {
  kem: number;
  kdf: number;
  aead: number;
}

export const DEFAULT_SUITE: Suite = { kem: KemId.DhkemX25519HkdfSha256, kdf: KdfId.HkdfSha256, aead: AeadId.Aes128Gcm };

const KDF_DIGEST: Record<number, "sha256" | "sha384" | "sha512"> = {
  [KdfId.HkdfSha256]: "sha256",
  [KdfId.HkdfSha384]: "sha384",
  [KdfId.HkdfSha512]: "sha512",
};

/** Key length Nk of the AEADs the protected layout allows (wire.md section 4). */
export const AEAD_KEY_LENGTH: Record<number, number> = {
  [AeadId.Aes128Gcm]: 16,
  [AeadId.Chacha20Poly1305]: 32,
};

export const SECRET_LENGTH = 32;
export const KEY_ID_LENGTH = 8;
/** A group master's SharedSecret for AES-128-GCM is its 16-byte SK (groups.md 1); every other one has 32 bytes. */
export const GROUP_SK_AES_LENGTH = 16;

const LABEL_CLIENT = Buffer.from("pdmv2 client", "ascii");
const LABEL_STK = Buffer.from("pdmv2 stk", "ascii");
const LABEL_KEY_ID = Buffer.from("pdmv2 key id", "ascii");

export function kdfDigest(kdf: number): "sha256" | "sha384" | "sha512" {
  const digest = KDF_DIGEST[kdf];
  if (!digest)
    throw new KeyError(
      `KDF id 0x${hex4(kdf)} is not supported (use HKDF-SHA256 0x0001, -SHA384 0x0002 or -SHA512 0x0003)`,
    );
  return digest;
}

export function aeadKeyLength(aead: number): number {
  const nk = AEAD_KEY_LENGTH[aead];
  if (!nk)
    throw new KeyError(
      `AEAD id 0x${hex4(aead)} is not allowed for PDMv2 (use AES-128-GCM 0x0001 or ChaCha20-Poly1305 0x0003)`,
    );
  return nk;
}

function expand(kdf: number, ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  return new Uint8Array(hkdfSync(kdfDigest(kdf), ikm, salt, info, length));
}

function checkLength(name: string, value: Uint8Array, length: number): void {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw new KeyError(
      `"${name}" expected ${length} bytes, got ${value instanceof Uint8Array ? value.length : typeof value}`,
    );
  }
}

/** keyId: proves both writers hold the same SharedSecret, names a generation in key logs. */
export function deriveKeyId(kdf: number, sharedSecret: Uint8Array, salt: Uint8Array): Uint8Array {
  checkLength("salt", salt, 32);
  return expand(kdf, sharedSecret, salt, LABEL_KEY_ID, KEY_ID_LENGTH);
}

/** The secret a reader client holds: everything for flows with `clientAddress` at the client end. */
export function deriveClientSecret(
  kdf: number,
  sharedSecret: Uint8Array,
  salt: Uint8Array,
  clientAddress: Uint8Array,
): Uint8Array {
  checkLength("salt", salt, 32);
  checkLength("clientAddress", clientAddress, 16);
  return expand(kdf, sharedSecret, salt, Buffer.concat([LABEL_CLIENT, clientAddress]), SECRET_LENGTH);
}

/** The info string of STK(flow, kri): label, addresses, ports, protocol, Kri. */
export function stkInfo(flow: FlowTuple, kri: number): Uint8Array {
  checkLength("flow.src", flow.src, 16);
  checkLength("flow.dst", flow.dst, 16);
  const info = Buffer.alloc(LABEL_STK.length + 16 + 16 + 2 + 2 + 1 + 4);
  let at = LABEL_STK.copy(info, 0);
  info.set(flow.src, at);
  info.set(flow.dst, (at += 16));
  at += 16;
  at = info.writeUInt16BE(flow.sport, at);
  at = info.writeUInt16BE(flow.dport, at);
  at = info.writeUInt8(flow.proto, at);
  info.writeUInt32BE(kri, at);
  return info;
}

/** SessionTemporaryKey of one sender 5-tuple and Kri. */
export function deriveStk(
  suite: Suite,
  clientSecret: Uint8Array,
  salt: Uint8Array,
  flow: FlowTuple,
  kri: number,
): Uint8Array {
  checkLength("clientSecret", clientSecret, SECRET_LENGTH);
  checkLength("salt", salt, 32);
  if (!Number.isInteger(kri) || kri < 0 || kri > 0xffff_ffff)
    throw new KeyError(`kri must be a 32-bit unsigned integer, got ${kri}`);
  return expand(suite.kdf, clientSecret, salt, stkInfo(flow, kri), aeadKeyLength(suite.aead));
}

export function hex4(n: number): string {
  return n.toString(16).padStart(4, "0");
}

// The Key Selection Protocol's cryptography (groups.md 2), every primitive from
// node:crypto: AES-CMAC (RFC 4493) built on AES-ECB, the IEEE 802.1X-2010 KDF (6.2.1,
// AES-CMAC in counter mode) for ICK and KEK, AES key wrap (RFC 3394) for the key
// number, the seed's SAK = AES(KGK, KN), and HKDF-SHA256 from SAK to the generation's
// SharedSecret and salt.

import { createCipheriv, createDecipheriv, hkdfSync } from "node:crypto";

const BLOCK = 16;
const RB = 0x87; // RFC 4493 2.3: the constant of the subkey doubling

function ecbCipherName(key: Uint8Array): string {
  if (key.length === 16) return "aes-128-ecb";
  if (key.length === 32) return "aes-256-ecb";
  throw new RangeError(`an AES key has 16 or 32 bytes, not ${key.length}`);
}

/** One AES block under `key` (the forward cipher only, as CMAC and the seed's SAK use it). */
export function aesBlock(key: Uint8Array, block: Uint8Array): Buffer {
  if (block.length !== BLOCK) throw new RangeError(`an AES block has 16 bytes, not ${block.length}`);
  const c = createCipheriv(ecbCipherName(key), key, null);
  c.setAutoPadding(false);
  return Buffer.concat([c.update(block), c.final()]);
}

/** Shift a 16-byte block left by one bit; XOR Rb in when the top bit fell out (RFC 4493 2.3). */
function double(b: Buffer): Buffer {
  const out = Buffer.alloc(BLOCK);
  for (let i = 0; i < BLOCK; i += 1) out[i] = ((b[i]! << 1) | (i + 1 < BLOCK ? b[i + 1]! >> 7 : 0)) & 0xff;
  if (b[0]! & 0x80) out[BLOCK - 1]! ^= RB;
  return out;
}

/** K1 and K2 per key (RFC 4493 2.3): a guard signs and checks every message under one ICK. */
const subkeyCache = new Map<string, [Buffer, Buffer]>();

function subkeys(key: Uint8Array): [Buffer, Buffer] {
  const id = Buffer.from(key).toString("hex");
  let k = subkeyCache.get(id);
  if (!k) {
    const k1 = double(aesBlock(key, Buffer.alloc(BLOCK)));
    k = [k1, double(k1)];
    if (subkeyCache.size >= 64) subkeyCache.clear();
    subkeyCache.set(id, k);
  }
  return k;
}

/**
 * AES-CMAC (RFC 4493) of `message` under a 16- or 32-byte key: 16 bytes. The CBC-MAC
 * is AES-CBC with a zero IV over the message whose last block is padded and XORed with
 * a subkey: one cipher call for the whole message, the last output block.
 */
export function aesCmac(key: Uint8Array, message: Uint8Array): Buffer {
  const [k1, k2] = subkeys(key);
  const n = Math.max(1, Math.ceil(message.length / BLOCK));
  const complete = message.length > 0 && message.length % BLOCK === 0;
  const input = Buffer.alloc(n * BLOCK);
  input.set(message);
  if (!complete) input[message.length] = 0x80;
  const subkey = complete ? k1 : k2;
  const last = (n - 1) * BLOCK;
  for (let i = 0; i < BLOCK; i += 1) input[last + i]! ^= subkey[i]!;
  const cipher = createCipheriv(
    key.length === 16 ? "aes-128-cbc" : key.length === 32 ? "aes-256-cbc" : ecbCipherName(key),
    key,
    Buffer.alloc(BLOCK),
  );
  cipher.setAutoPadding(false);
  const out = cipher.update(input);
  cipher.final();
  return out.subarray(out.length - BLOCK);
}

/**
 * IEEE 802.1X-2010 6.2.1: KDF(Key, Label, Context, L) = the first L bits of
 * CMAC(Key, i || Label || 0x00 || Context || u16(L)) for i = 1, 2, ...
 */
export function ieee8021xKdf(key: Uint8Array, label: string, context: Uint8Array, bits: number): Buffer {
  const labelBytes = Buffer.from(label, "ascii");
  const input = Buffer.alloc(1 + labelBytes.length + 1 + context.length + 2);
  labelBytes.copy(input, 1);
  Buffer.from(context).copy(input, labelBytes.length + 2);
  input.writeUInt16BE(bits, input.length - 2);
  const blocks: Buffer[] = [];
  for (let i = 1; blocks.length * 128 < bits; i += 1) {
    input[0] = i;
    blocks.push(aesCmac(key, input));
  }
  return Buffer.concat(blocks).subarray(0, bits / 8);
}

/** The KDF's context for ICK and KEK: the first 16 bytes of the CKN, zero-padded (hostap's ieee802_1x_key.c). */
function cknContext(ckn: Uint8Array): Buffer {
  const c = Buffer.alloc(16);
  Buffer.from(ckn.subarray(0, 16)).copy(c);
  return c;
}

/** ICK = KDF(CAK, "IEEE8021 ICK", CKN[0..16), |CAK|). */
export function deriveIck(cak: Uint8Array, ckn: Uint8Array): Buffer {
  return ieee8021xKdf(cak, "IEEE8021 ICK", cknContext(ckn), cak.length * 8);
}

/** KEK = KDF(CAK, "IEEE8021 KEK", CKN[0..16), |CAK|). */
export function deriveKek(cak: Uint8Array, ckn: Uint8Array): Buffer {
  return ieee8021xKdf(cak, "IEEE8021 KEK", cknContext(ckn), cak.length * 8);
}

function wrapName(kek: Uint8Array): string {
  if (kek.length === 16) return "id-aes128-wrap";
  if (kek.length === 32) return "id-aes256-wrap";
  throw new RangeError(`a KEK has 16 or 32 bytes, not ${kek.length}`);
}

/** RFC 3394's default IV, which the unwrap checks. */
const WRAP_IV = Buffer.alloc(8, 0xa6);

/** AES key wrap (RFC 3394) of `key` (a multiple of 8 bytes, at least 16) under `kek`. */
export function wrapKey(kek: Uint8Array, key: Uint8Array): Buffer {
  const c = createCipheriv(wrapName(kek), kek, WRAP_IV);
  return Buffer.concat([c.update(key), c.final()]);
}

/** Unwrap; undefined when the integrity check fails (a wrong KEK, a changed byte). */
export function unwrapKey(kek: Uint8Array, wrapped: Uint8Array): Buffer | undefined {
  try {
    const d = createDecipheriv(wrapName(kek), kek, WRAP_IV);
    return Buffer.concat([d.update(wrapped), d.final()]);
  } catch {
    return undefined;
  }
}

/** The seed's rule: SAK = AES-128-ECB(KGK, KN), one block. */
export function sakOf(kgk: Uint8Array, kn: Uint8Array): Buffer {
  if (kgk.length !== 16) throw new RangeError(`the KGK has 16 bytes, not ${kgk.length}`);
  return aesBlock(kgk, kn);
}

/** A KSP generation's SharedSecret and salt: HKDF-SHA256 with the CKN as salt over SAK (groups.md 2). */
export function kspSecrets(ckn: Uint8Array, sak: Uint8Array): { sharedSecret: Buffer; salt: Buffer } {
  const expand = (label: string): Buffer => Buffer.from(hkdfSync("sha256", sak, ckn, label, 32));
  return { sharedSecret: expand("pdmv2 ksp shared secret"), salt: expand("pdmv2 ksp salt") };
}

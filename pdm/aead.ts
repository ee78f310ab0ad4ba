// AEAD seal/open of the protected PDMv2 layout, wire.md section 4, on node:crypto.
//
//   nonce (12) = 00 00 00 00 00 00 || u32(Kri) || option-data bytes 2-3 (Random Number, F)
//   aad   (6)  = Option Type || Opt Data Len || option-data bytes 0-3
//   sealed (30)= AEAD(key, nonce, aad, clear-layout bytes 4-17) || tag(16)
//
// Callers that send should use ProtectedSealer (sealer.ts), which draws the nonce
// itself so that a (key, nonce) pair cannot repeat. sealProtectedOption is the raw
// primitive behind it, for test vectors and the sealer only.

import { createCipheriv, createDecipheriv, type CipherGCMTypes } from "node:crypto";
import { AuthError, KeyError, fail, ok, type Result } from "./errors.ts";
import { AeadId, aeadKeyLength, hex4 } from "./key-schedule.ts";
import {
  AEAD_TAG_LEN,
  OPT_DATA_LEN,
  PDM_OPTION_TYPE,
  SEALED_PLAINTEXT_LEN,
  decodeV2Fields,
  encodeSealedPlaintext,
  encodeV2Prefix,
  type PdmTimes,
  type PdmV2Fields,
  type PdmV2ProtectedOption,
} from "./option.ts";

const CIPHER: Record<number, CipherGCMTypes | "chacha20-poly1305"> = {
  [AeadId.Aes128Gcm]: "aes-128-gcm",
  [AeadId.Chacha20Poly1305]: "chacha20-poly1305",
};

function cipherName(aead: number): CipherGCMTypes | "chacha20-poly1305" {
  const name = CIPHER[aead];
  if (!name) throw new KeyError(`AEAD id 0x${hex4(aead)} is not allowed for PDMv2`);
  return name;
}

/** Build the 12-byte nonce from Kri and the clear Random Number/F word. */
export function protectedNonce(kri: number, randomNumber: number, fBit: 0 | 1): Uint8Array {
  const nonce = new Uint8Array(12);
  nonce[6] = (kri >>> 24) & 0xff;
  nonce[7] = (kri >>> 16) & 0xff;
  nonce[8] = (kri >>> 8) & 0xff;
  nonce[9] = kri & 0xff;
  const word = (randomNumber << 1) | fBit;
  nonce[10] = word >>> 8;
  nonce[11] = word & 0xff;
  return nonce;
}

export interface SealInputs {
  aead: number;
  key: Uint8Array;
  kri: number;
  randomNumber: number;
  fBit: 0 | 1;
  fields: PdmTimes & { globalPointer: number };
}

/**
 * Encode and seal a protected option (Type and Opt Data Len included, 36 bytes).
 * Raw primitive: the caller guarantees (key, kri, randomNumber) is never reused.
 */
export function sealProtectedOption(input: SealInputs): Uint8Array {
  const { aead, key, kri, randomNumber, fBit } = input;
  if (key.length !== aeadKeyLength(aead))
    throw new KeyError(`"key" expected ${aeadKeyLength(aead)} bytes, got ${key.length}`);
  const out = new Uint8Array(2 + OPT_DATA_LEN["v2-protected"]);
  out[0] = PDM_OPTION_TYPE;
  out[1] = OPT_DATA_LEN["v2-protected"];
  encodeV2Prefix(randomNumber, fBit, out, 2);
  const plaintext = encodeSealedPlaintext(input.fields);
  const cipher = createCipheriv(cipherName(aead) as "aes-128-gcm", key, protectedNonce(kri, randomNumber, fBit), {
    authTagLength: AEAD_TAG_LEN,
  });
  cipher.setAAD(out.subarray(0, 6), { plaintextLength: SEALED_PLAINTEXT_LEN });
  const body = cipher.update(plaintext);
  const last = cipher.final();
  out.set(body, 6);
  out.set(last, 6 + body.length);
  out.set(cipher.getAuthTag(), 6 + SEALED_PLAINTEXT_LEN);
  return out;
}

/** Open a protected option with one candidate key. An AuthError means "not this key, or tampered". */
export function openProtectedOption(
  aead: number,
  key: Uint8Array,
  kri: number,
  option: PdmV2ProtectedOption,
): Result<PdmV2Fields, AuthError> {
  const fields = sharedOpener.open(aead, key, kri, option);
  return fields ? ok(fields) : fail(new AuthError(`tag check failed for Kri ${kri}`));
}

/**
 * openProtectedOption for the per-packet path: the nonce, AAD, ciphertext and tag
 * are copied into buffers owned by this object instead of being sliced out of the
 * packet (a Buffer view costs more than copying 36 bytes), and a failed tag is an
 * undefined result instead of an error object. One decipher per call is the floor:
 * node:crypto cannot re-key a GCM/ChaCha context with a new nonce.
 */
export class OptionOpener {
  private readonly nonce = Buffer.alloc(12); // bytes 0-5 stay zero
  private readonly aad = Buffer.alloc(6);
  private readonly body = Buffer.alloc(SEALED_PLAINTEXT_LEN);
  private readonly tag = Buffer.alloc(AEAD_TAG_LEN);

  /** The fields, or undefined when the tag does not verify under (key, kri). */
  open(aead: number, key: Uint8Array, kri: number, option: PdmV2ProtectedOption): PdmV2Fields | undefined {
    const { bytes, at } = option;
    const nonce = this.nonce;
    nonce[6] = kri >>> 24;
    nonce[7] = (kri >>> 16) & 0xff;
    nonce[8] = (kri >>> 8) & 0xff;
    nonce[9] = kri & 0xff;
    nonce[10] = bytes[at + 4]!; // Random Number and F, exactly as on the wire
    nonce[11] = bytes[at + 5]!;
    const aad = this.aad;
    for (let i = 0; i < 6; i += 1) aad[i] = bytes[at + i]!;
    const body = this.body;
    for (let i = 0; i < SEALED_PLAINTEXT_LEN; i += 1) body[i] = bytes[at + 6 + i]!;
    const tag = this.tag;
    for (let i = 0; i < AEAD_TAG_LEN; i += 1) tag[i] = bytes[at + 6 + SEALED_PLAINTEXT_LEN + i]!;
    const decipher = createDecipheriv(cipherName(aead) as "aes-128-gcm", key, nonce, { authTagLength: AEAD_TAG_LEN });
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    const plaintext = decipher.update(body);
    try {
      decipher.final();
    } catch {
      return undefined; // not this key, or tampered: the caller counts it
    }
    return decodeV2Fields(option.randomNumber, option.fBit, plaintext, 0);
  }
}

const sharedOpener = new OptionOpener();

/** Opens protected options under one key, with whatever the backend keeps for that key. */
export interface KeyOpener {
  /**
   * The fields, or undefined when the tag does not verify under this key at `kri`.
   * A backend may reuse one fields object for every open: read them before the next.
   */
  open(option: PdmV2ProtectedOption, kri: number): PdmV2Fields | undefined;
}

/**
 * Where the AEAD runs. node:crypto is always there; a native module that keeps one
 * cipher context per key (analyzer/aead-native) opens several times faster. Both
 * give the same answer for every option.
 */
export interface AeadBackend {
  /** For --help's figures and verbose lines: "node:crypto" or the native module's name. */
  readonly name: string;
  /** An opener for `key` (which has the AEAD's length: checked before a backend sees it). */
  opener(aead: number, key: Uint8Array): KeyOpener;
}

/** node:crypto: a new decipher per packet (it cannot re-key a context with a new nonce). */
export const nodeCryptoAead: AeadBackend = {
  name: "node:crypto",
  opener(aead, key) {
    cipherName(aead); // an AEAD PDMv2 does not allow is refused here, not per packet
    return { open: (option, kri) => sharedOpener.open(aead, key, kri, option) };
  },
};

// Group master mode's key derivation (groups.md section 1, from the Group Key Renewal
// seed): the membership of a generation hashed into a master key, and the secret key
// SK that scrypt stretches from it. SK is the generation's SharedSecret; everything
// after it (keyId, ClientSecret, STK) is keys.md's. Both the master and every member
// compute these, so that a member proves with its keyId that it sees the same
// membership the master does.

import { createHash, scrypt } from "node:crypto";
import { AeadId, GROUP_SK_AES_LENGTH, SECRET_LENGTH } from "./key-schedule.ts";
import { KeyError } from "./errors.ts";

/** scrypt's cost as groups.md 1 fixes it: N = 2^17, r = 8, p = 1 (128 MiB of memory per derivation). */
export const GROUP_SCRYPT = { N: 2 ** 17, r: 8, p: 1 } as const;
/** Node refuses scrypt above 32 MiB unless told: 128 * N * r bytes plus its own working room. */
const SCRYPT_MAXMEM = 128 * GROUP_SCRYPT.N * GROUP_SCRYPT.r + 32 * 1024 * 1024;

export const GROUP_SEED_LENGTH = 32;
export const GROUP_SALT_LENGTH = 32;

/** What the master chooses for generation g and every member receives. */
export interface GroupKeyInputs {
  seed: Uint8Array;
  generation: number;
  /** g's effectiveAt in ms since the epoch. */
  timestamp: number;
  /** The signature values of the members' certificates, in membership order. */
  signatures: readonly Uint8Array[];
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

/** master = SHA-256(seed || u64(g) || u64(timestamp) || sig_1 || ... || sig_n || u32(n)). */
export function groupMasterKey(inputs: GroupKeyInputs): Uint8Array {
  if (inputs.seed.length !== GROUP_SEED_LENGTH)
    throw new KeyError(`the group seed must be ${GROUP_SEED_LENGTH} bytes, got ${inputs.seed.length}`);
  for (const [name, n] of [
    ["generation", inputs.generation],
    ["timestamp", inputs.timestamp],
  ] as const) {
    if (!Number.isSafeInteger(n) || n < 0) throw new KeyError(`the group ${name} must be a non-negative integer`);
  }
  if (inputs.signatures.length === 0) throw new KeyError("a group generation needs at least one member");
  const h = createHash("sha256");
  h.update(inputs.seed);
  h.update(u64(inputs.generation));
  h.update(u64(inputs.timestamp));
  for (const sig of inputs.signatures) h.update(sig);
  const count = Buffer.alloc(4);
  count.writeUInt32BE(inputs.signatures.length);
  h.update(count);
  return new Uint8Array(h.digest());
}

/** SK's length: 32 bytes for ChaCha20-Poly1305, 16 for AES-128-GCM (the seed's key_len). */
export function groupSecretKeyLength(aead: number): number {
  if (aead === AeadId.Chacha20Poly1305) return SECRET_LENGTH;
  if (aead === AeadId.Aes128Gcm) return GROUP_SK_AES_LENGTH;
  throw new KeyError(`group mode seals with ChaCha20-Poly1305 or AES-128-GCM, not AEAD ${aead}`);
}

/**
 * SK = scrypt(master, salt, N = 2^17, r = 8, p = 1, dkLen). Runs on libuv's thread pool:
 * about 0.7 s of one core here, during which the event loop (heartbeats) goes on.
 */
export function deriveGroupSecretKey(master: Uint8Array, salt: Uint8Array, aead: number): Promise<Uint8Array> {
  if (salt.length !== GROUP_SALT_LENGTH)
    throw new KeyError(`the group salt must be ${GROUP_SALT_LENGTH} bytes, got ${salt.length}`);
  const length = groupSecretKeyLength(aead);
  return new Promise((resolve, reject) => {
    scrypt(master, salt, length, { ...GROUP_SCRYPT, maxmem: SCRYPT_MAXMEM }, (e, key) =>
      e ? reject(new KeyError(`scrypt failed: ${e.message}`, { cause: e })) : resolve(new Uint8Array(key)),
    );
  });
}

/** SHA-256 of a certificate's DER: the membership order sorts by it, ascending. */
export function memberOrderKey(der: Uint8Array): Buffer {
  return createHash("sha256").update(der).digest();
}

/** Members in groups.md 1's order: by SHA-256 of their certificate's DER, ascending. */
export function orderMembers<T extends { der: Uint8Array }>(members: Iterable<T>): T[] {
  return [...members]
    .map((m) => ({ m, key: memberOrderKey(m.der) }))
    .sort((a, b) => Buffer.compare(a.key, b.key))
    .map((x) => x.m);
}

// The HPKE part of registration (keys.md section 3), entirely on @hpke/core: the
// writer server's fresh key pair, the writer client's SetupBaseS + Export, and the
// writer server's SetupBaseR + Export. No KEM, KDF or AEAD is written here.

import {
  Aes128Gcm,
  AeadId,
  CipherSuite,
  DhkemP256HkdfSha256,
  DhkemX25519HkdfSha256,
  HkdfSha256,
  HkdfSha384,
  HkdfSha512,
  KdfId,
  KemId,
} from "@hpke/core";
import { Chacha20Poly1305 } from "@hpke/chacha20poly1305";
import type { webcrypto } from "node:crypto";
import type { Suite } from "../../pdm/index.ts";
import { RegistrationError } from "./errors.ts";

export const REGISTRATION_INFO = new TextEncoder().encode("pdmv2 registration");
export const SHARED_SECRET_CONTEXT = new TextEncoder().encode("pdmv2 shared secret");
export const SHARED_SECRET_LENGTH = 32;

/** keys.md section 3: the writer client's default offer, best first. */
export const DEFAULT_OFFER: Suite[] = [
  { kem: KemId.DhkemX25519HkdfSha256, kdf: KdfId.HkdfSha256, aead: AeadId.Aes128Gcm },
  { kem: KemId.DhkemX25519HkdfSha256, kdf: KdfId.HkdfSha256, aead: AeadId.Chacha20Poly1305 },
  { kem: KemId.DhkemP256HkdfSha256, kdf: KdfId.HkdfSha256, aead: AeadId.Aes128Gcm },
];

const KEMS: Record<number, () => DhkemX25519HkdfSha256 | DhkemP256HkdfSha256> = {
  [KemId.DhkemX25519HkdfSha256]: () => new DhkemX25519HkdfSha256(),
  [KemId.DhkemP256HkdfSha256]: () => new DhkemP256HkdfSha256(),
};
const KDFS: Record<number, () => HkdfSha256 | HkdfSha384 | HkdfSha512> = {
  [KdfId.HkdfSha256]: () => new HkdfSha256(),
  [KdfId.HkdfSha384]: () => new HkdfSha384(),
  [KdfId.HkdfSha512]: () => new HkdfSha512(),
};
const AEADS: Record<number, () => Aes128Gcm | Chacha20Poly1305> = {
  [AeadId.Aes128Gcm]: () => new Aes128Gcm(),
  [AeadId.Chacha20Poly1305]: () => new Chacha20Poly1305(),
};

export function isSupportedSuite(s: Suite): boolean {
  return s.kem in KEMS && s.kdf in KDFS && s.aead in AEADS;
}

const suites = new Map<string, CipherSuite>();

/** The @hpke/core CipherSuite for a suite of ids (cached: construction is not free). */
export function cipherSuite(s: Suite): CipherSuite {
  const key = `${s.kem}:${s.kdf}:${s.aead}`;
  let suite = suites.get(key);
  if (!suite) {
    if (!isSupportedSuite(s)) throw new RegistrationError("no-common-suite", `HPKE suite ${key} is not supported`);
    suite = new CipherSuite({ kem: KEMS[s.kem]!(), kdf: KDFS[s.kdf]!(), aead: AEADS[s.aead]!() });
    suites.set(key, suite);
  }
  return suite;
}

/** The first suite of the writer client's offer that this writer server accepts. */
export function chooseSuite(offered: readonly Suite[], accepted: readonly Suite[]): Suite | undefined {
  const same = (a: Suite, b: Suite): boolean => a.kem === b.kem && a.kdf === b.kdf && a.aead === b.aead;
  return offered.find((o) => isSupportedSuite(o) && accepted.some((a) => same(a, o)));
}

export interface RecipientKey {
  keyPair: webcrypto.CryptoKeyPair;
  publicKey: Uint8Array;
}

/** The writer server's key pair, fresh for every registration. `ikm` only for test vectors. */
export async function freshRecipientKey(s: Suite, ikm?: Uint8Array): Promise<RecipientKey> {
  const suite = cipherSuite(s);
  const keyPair = ikm
    ? await suite.kem.deriveKeyPair(ikm.slice().buffer as ArrayBuffer)
    : await suite.kem.generateKeyPair();
  return { keyPair, publicKey: new Uint8Array(await suite.kem.serializePublicKey(keyPair.publicKey)) };
}

/** Writer client: SetupBaseS(pkS, info) and Export. `ikmE` only for test vectors. */
export async function encapsulateSharedSecret(
  s: Suite,
  recipientPublicKey: Uint8Array,
  ikmE?: Uint8Array,
): Promise<{ enc: Uint8Array; sharedSecret: Uint8Array }> {
  const suite = cipherSuite(s);
  let pk: webcrypto.CryptoKey;
  try {
    pk = await suite.kem.deserializePublicKey(recipientPublicKey.slice().buffer as ArrayBuffer);
  } catch (cause) {
    throw new RegistrationError("malformed-message", "publicKey: not a valid public key for the chosen KEM", { cause });
  }
  const ekm = ikmE ? await suite.kem.deriveKeyPair(ikmE.slice().buffer as ArrayBuffer) : undefined;
  const ctx = await suite.createSenderContext({
    recipientPublicKey: pk,
    info: REGISTRATION_INFO,
    ...(ekm ? { ekm } : {}),
  });
  const sharedSecret = new Uint8Array(await ctx.export(SHARED_SECRET_CONTEXT, SHARED_SECRET_LENGTH));
  return { enc: new Uint8Array(ctx.enc), sharedSecret };
}

/** Writer server: SetupBaseR(enc, skS, info) and the same Export. */
export async function decapsulateSharedSecret(s: Suite, key: RecipientKey, enc: Uint8Array): Promise<Uint8Array> {
  const suite = cipherSuite(s);
  try {
    const ctx = await suite.createRecipientContext({
      recipientKey: key.keyPair,
      enc: enc.slice().buffer as ArrayBuffer,
      info: REGISTRATION_INFO,
    });
    return new Uint8Array(await ctx.export(SHARED_SECRET_CONTEXT, SHARED_SECRET_LENGTH));
  } catch (cause) {
    throw new RegistrationError("malformed-message", "enc: not a valid encapsulation for the chosen KEM", { cause });
  }
}

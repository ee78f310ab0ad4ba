// The shared test vectors (fixtures/vectors/*.json) checked against two
// implementations: this project's core on node:crypto, and an independent one
// built here from @noble/hashes (HKDF) and @noble/ciphers (AES-GCM, ChaCha20-Poly1305).
// The BPF program tests check the kernel against the same files.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256, sha384, sha512 } from "@noble/hashes/sha2.js";
import { scrypt as nobleScrypt } from "@noble/hashes/scrypt.js";
import { gcm } from "@noble/ciphers/aes.js";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import {
  hex,
  decodePdmOption,
  deriveClientSecret,
  deriveGroupSecretKey,
  deriveKeyId,
  groupMasterKey,
  deriveStk,
  encodeDeltaNs,
  encodeDestOptionsHeader,
  encodePdmOption,
  lfsrStep,
  openProtectedOption,
  parseIpv6Address,
  protectedNonce,
  sealProtectedOption,
  type PdmV2ProtectedOption,
} from "../../pdm/index.ts";

const vectorDir = join(import.meta.dirname, "..", "..", "fixtures", "vectors");
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const load = (name: string): any => JSON.parse(readFileSync(join(vectorDir, name), "utf8"));
const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, "hex"));
const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);
const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};
const be = (value: number, size: number): Uint8Array => {
  const out = new Uint8Array(size);
  for (let i = size - 1, v = value; i >= 0; i -= 1, v = Math.floor(v / 256)) out[i] = v & 0xff;
  return out;
};

// ---- the independent implementation (noble), written from keys.md / wire.md ----
const nobleHash = { 1: sha256, 2: sha384, 3: sha512 } as const;
const nobleHkdf = (kdf: number, ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, n: number): Uint8Array =>
  hkdf(nobleHash[kdf as 1], ikm, salt, info, n);
const nobleAead = (aead: number, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array) =>
  aead === 1 ? gcm(key, nonce, aad) : chacha20poly1305(key, nonce, aad);
/** Reference time encoder: exact BigInt arithmetic on attoseconds, straight from RFC 8250. */
function referenceEncode(ns: bigint): { delta: number; scale: number } {
  let as = ns * 10n ** 9n;
  let scale = 0;
  while (as > 0xffffn) {
    as >>= 1n;
    scale += 1;
  }
  return { delta: Number(as), scale };
}

describe("time-encoding vectors", () => {
  const v = load("time-encoding.json");
  it("has the spec's checked values", () => {
    const byNs = new Map(v.cases.map((c: { ns: string }) => [c.ns, c]));
    assert.deepEqual(byNs.get("1"), { ns: "1", delta: 61035, scale: 14 });
    assert.deepEqual(byNs.get("1000"), { ns: "1000", delta: 59604, scale: 24 });
    assert.deepEqual(byNs.get("1000000"), { ns: "1000000", delta: 58207, scale: 34 });
    assert.deepEqual(byNs.get("10000000"), { ns: "10000000", delta: 36379, scale: 38 });
    assert.deepEqual(byNs.get("1000000000"), { ns: "1000000000", delta: 56843, scale: 44 });
  });
  it("matches the core (number and bigint inputs) and the reference encoder", () => {
    for (const c of v.cases) {
      const ns = BigInt(c.ns);
      const want = { delta: c.delta, scale: c.scale };
      assert.deepEqual(encodeDeltaNs(ns), want, `bigint ${c.ns}`);
      if (ns <= BigInt(Number.MAX_SAFE_INTEGER)) assert.deepEqual(encodeDeltaNs(Number(ns)), want, `number ${c.ns}`);
      assert.deepEqual(referenceEncode(ns), want, `reference ${c.ns}`);
    }
  });
});

describe("sequence vectors", () => {
  it("LFSR steps match", () => {
    const v = load("sequence.json");
    for (const c of v.cases) {
      let s = c.start;
      const got: number[] = [];
      for (let i = 0; i < 16; i += 1) got.push((s = lfsrStep(s)));
      assert.deepEqual(got, c.first16);
    }
  });
});

describe("key-schedule vectors", () => {
  const v = load("key-schedule.json");
  it("node:crypto core reproduces every keyId, ClientSecret and STK", () => {
    let stks = 0;
    for (const c of v.cases) {
      const ss = bytes(c.sharedSecret);
      const salt = bytes(c.salt);
      assert.equal(hex(deriveKeyId(c.suite.kdf, ss, salt)), c.keyId);
      for (const cl of c.clients) {
        const cs = deriveClientSecret(c.suite.kdf, ss, salt, parseIpv6Address(cl.client));
        assert.equal(hex(cs), cl.clientSecret);
        for (const s of cl.stks) {
          const flow = { src: bytes(s.src), dst: bytes(s.dst), sport: s.sport, dport: s.dport, proto: s.proto };
          assert.equal(hex(deriveStk(c.suite, cs, salt, flow, s.kri)), s.stk);
          stks += 1;
        }
      }
    }
    assert.ok(stks >= 100, `expected many STK vectors, found ${stks}`);
  });
  it("@noble/hashes HKDF, built from keys.md alone, agrees", () => {
    for (const c of v.cases) {
      const ss = bytes(c.sharedSecret);
      const salt = bytes(c.salt);
      assert.equal(hex(nobleHkdf(c.suite.kdf, ss, salt, ascii("pdmv2 key id"), 8)), c.keyId);
      for (const cl of c.clients) {
        const cs = nobleHkdf(c.suite.kdf, ss, salt, concat(ascii("pdmv2 client"), parseIpv6Address(cl.client)), 32);
        assert.equal(hex(cs), cl.clientSecret);
        const nk = c.suite.aead === 1 ? 16 : 32;
        for (const s of cl.stks) {
          const info = concat(
            ascii("pdmv2 stk"),
            bytes(s.src),
            bytes(s.dst),
            be(s.sport, 2),
            be(s.dport, 2),
            be(s.proto, 1),
            be(s.kri, 4),
          );
          assert.equal(hex(nobleHkdf(c.suite.kdf, cs, salt, info, nk)), s.stk);
        }
      }
    }
  });
});

describe("AEAD vectors", () => {
  const v = load("aead.json");
  it("node:crypto core seals byte for byte and opens", () => {
    for (const c of v.cases) {
      const option = sealProtectedOption({
        aead: c.aead,
        key: bytes(c.key),
        kri: c.kri,
        randomNumber: c.randomNumber,
        fBit: c.fBit,
        fields: c.fields,
      });
      assert.equal(hex(option), c.option);
      assert.equal(hex(protectedNonce(c.kri, c.randomNumber, c.fBit)), c.nonce);
      const decoded = decodePdmOption(option, 0);
      assert.ok(decoded.ok && decoded.value.layout === "v2-protected");
      const opened = openProtectedOption(c.aead, bytes(c.key), c.kri, decoded.value as PdmV2ProtectedOption);
      assert.ok(opened.ok);
      assert.deepEqual(opened.value, { randomNumber: c.randomNumber, fBit: c.fBit, ...c.fields });
    }
  });
  it("@noble/ciphers, built from wire.md alone, produces the same bytes", () => {
    for (const c of v.cases) {
      const word = (c.randomNumber << 1) | c.fBit;
      const nonce = concat(new Uint8Array(6), be(c.kri, 4), be(word, 2));
      const aad = concat(Uint8Array.of(0x0f, 0x22, 0x20, 0x00), be(word, 2));
      assert.equal(hex(nonce), c.nonce);
      assert.equal(hex(aad), c.aad);
      const f = c.fields;
      const plaintext = concat(
        Uint8Array.of(f.scaleDtlr, f.scaleDtls),
        be(f.globalPointer, 4),
        be(f.psnTp, 2),
        be(f.psnLr, 2),
        be(f.deltaTlr, 2),
        be(f.deltaTls, 2),
      );
      assert.equal(hex(plaintext), c.plaintext);
      const sealed = nobleAead(c.aead, bytes(c.key), nonce, aad).encrypt(plaintext);
      assert.equal(hex(concat(aad, sealed)), c.option);
      // The header wraps it with next header 6, Hdr Ext Len 4 and a 2-byte PadN.
      assert.equal(c.header, `0604${c.option}0100`);
    }
  });
  it("a flipped bit anywhere in the option fails the tag", () => {
    const c = v.cases[0];
    const option = bytes(c.option);
    for (let bit = 2 * 8; bit < option.length * 8; bit += 1) {
      const bad = Uint8Array.from(option);
      bad[bit >> 3]! ^= 1 << (bit & 7);
      const decoded = decodePdmOption(bad, 0);
      if (!decoded.ok) continue; // a flip in the version/reserved bits is already malformed
      assert.equal(decoded.value.layout, "v2-protected");
      const opened = openProtectedOption(c.aead, bytes(c.key), c.kri, decoded.value as PdmV2ProtectedOption);
      assert.equal(opened.ok, false, `bit ${bit} went unnoticed`);
    }
  });
});

describe("option vectors", () => {
  it("encode to the recorded bytes and decode back", () => {
    const v = load("options.json");
    for (const c of v.cases) {
      const option = encodePdmOption({ layout: c.layout, ...c.fields });
      assert.equal(hex(option), c.option);
      assert.equal(hex(encodeDestOptionsHeader(17, option)), c.header);
      const decoded = decodePdmOption(option, 0);
      assert.ok(decoded.ok);
      assert.deepEqual(decoded.value, { layout: c.layout, ...c.fields });
    }
  });
});

describe("group-key vectors (groups.md 1)", () => {
  const v = load("group-key.json");
  const inputsOf = (c: { seed: string; generation: number; timestamp: number; signatures: string[] }) => ({
    seed: bytes(c.seed),
    generation: c.generation,
    timestamp: c.timestamp,
    signatures: c.signatures.map(bytes),
  });
  it("node:crypto core reproduces every master key, SK and keyId", async () => {
    assert.equal(v.cases.length, 2);
    for (const c of v.cases) {
      const master = groupMasterKey(inputsOf(c));
      assert.equal(hex(master), c.master);
      const sk = await deriveGroupSecretKey(master, bytes(c.salt), c.suite.aead);
      assert.equal(hex(sk), c.sk);
      assert.equal(sk.length, c.suite.aead === 1 ? 16 : 32);
      assert.equal(hex(deriveKeyId(c.suite.kdf, sk, bytes(c.salt))), c.keyId);
    }
  });
  it("@noble/hashes SHA-256 and scrypt, built from groups.md alone, agree", () => {
    for (const c of v.cases) {
      const count = be(c.signatures.length, 4);
      const master = sha256(
        concat(bytes(c.seed), be(c.generation, 8), be(c.timestamp, 8), ...c.signatures.map(bytes), count),
      );
      assert.equal(hex(master), c.master);
      const sk = nobleScrypt(master, bytes(c.salt), { N: 2 ** 17, r: 8, p: 1, dkLen: c.suite.aead === 1 ? 16 : 32 });
      assert.equal(hex(sk), c.sk);
      assert.equal(hex(nobleHkdf(c.suite.kdf, sk, bytes(c.salt), ascii("pdmv2 key id"), 8)), c.keyId);
    }
  });
  it("a change of any input, or of the members' order, changes the master key", () => {
    const c = v.cases[0];
    const base = inputsOf(c);
    const variants = [
      { ...base, generation: base.generation + 1 },
      { ...base, timestamp: base.timestamp + 1 },
      { ...base, signatures: [...base.signatures].reverse() },
      { ...base, signatures: base.signatures.slice(1) },
      { ...base, seed: bytes(c.salt) },
    ];
    const seen = new Set([hex(groupMasterKey(base))]);
    for (const x of variants) seen.add(hex(groupMasterKey(x)));
    assert.equal(seen.size, variants.length + 1);
  });
});

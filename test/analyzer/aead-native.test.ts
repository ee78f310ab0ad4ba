// The native AEAD module (analyzer/aead-native: one OpenSSL context per key) against
// node:crypto and @noble/ciphers: the same bytes on every seal, the same answer on
// every open, every single-bit change of ciphertext, tag or associated data refused,
// for both AEADs; and the analyzer's output on every protected fixture, damaged and
// wrongly keyed ones included, byte for byte the same with and without the module
// (PDM_NO_NATIVE=1), on 1 and on 2 threads.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createCipheriv, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { gcm } from "@noble/ciphers/aes.js";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { NATIVE_AEAD_PATH, aeadBackend, nativeAeadContext } from "../../analyzer/index.ts";
import { AeadId, KeyError, decodeV2Fields, type PdmV2ProtectedOption } from "../../pdm/index.ts";
import { PDM_BIN, ROOT } from "../../lab/index.ts";

const skip = existsSync(NATIVE_AEAD_PATH) ? undefined : "the native AEAD module is not built (bash scripts/setup.sh)";

const AEADS = [
  { name: "AES-128-GCM", id: AeadId.Aes128Gcm, keyLength: 16, node: "aes-128-gcm", noble: gcm },
  {
    name: "ChaCha20-Poly1305",
    id: AeadId.Chacha20Poly1305,
    keyLength: 32,
    node: "chacha20-poly1305",
    noble: chacha20poly1305,
  },
] as const;

/** The 36-byte option as on the wire: AAD (Type, Opt Data Len, 4 bytes), ciphertext, tag. */
function option(aad: Uint8Array, sealed: Uint8Array): Uint8Array {
  return Uint8Array.from([...aad, ...sealed]);
}

/** The option at `at` in `bytes` as the decoder hands it to an opener (the analyzer's path: openAt). */
function decoded(bytes: Uint8Array, at: number): PdmV2ProtectedOption {
  const word = (bytes[at + 4]! << 8) | bytes[at + 5]!;
  return {
    layout: "v2-protected",
    randomNumber: word >>> 1,
    fBit: (word & 1) as 0 | 1,
    bytes,
    at,
  } as PdmV2ProtectedOption;
}

/** The nonce of an option at Kri `kri`: its last two bytes are the option's bytes 4-5. */
function nonceOf(kri: number, aad: Uint8Array): Uint8Array {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setUint32(6, kri);
  n[10] = aad[4]!;
  n[11] = aad[5]!;
  return n;
}

describe("the native AEAD module", { skip }, () => {
  for (const aead of AEADS) {
    const nodeSeal = (key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, text: Uint8Array): Buffer => {
      const options = { authTagLength: 16 } as const;
      let c;
      if (aead.node === "chacha20-poly1305") {
        c = createCipheriv("chacha20-poly1305", key, nonce, options);
        c.setAAD(aad, { plaintextLength: text.length });
      } else {
        c = createCipheriv("aes-128-gcm", key, nonce, options);
        c.setAAD(aad);
      }
      return Buffer.concat([c.update(text), c.final(), c.getAuthTag()]);
    };
    const inputs = fc.record({
      key: fc.uint8Array({ minLength: aead.keyLength, maxLength: aead.keyLength }),
      kri: fc.integer({ min: 0, max: 0xffff_ffff }),
      aad: fc.uint8Array({ minLength: 6, maxLength: 6 }),
      text: fc.uint8Array({ minLength: 14, maxLength: 14 }),
    });

    it(`${aead.name}: seals as node:crypto and @noble do, and opens what they seal`, () => {
      fc.assert(
        fc.property(inputs, ({ key, kri, aad, text }) => {
          const nonce = nonceOf(kri, aad);
          const ctx = nativeAeadContext(aead.id, key)!;
          const sealed = new Uint8Array(30);
          ctx.seal(nonce, aad, text, sealed);
          assert.deepEqual(Buffer.from(sealed), nodeSeal(key, nonce, aad, text));
          assert.deepEqual(sealed, aead.noble(key, nonce, aad).encrypt(text));
          const out = new Uint8Array(14);
          assert.equal(ctx.open(option(aad, sealed), 0, kri, out), 1);
          assert.deepEqual(out, text);
          // at an offset inside a larger packet, as the analyzer calls it
          const packet = Uint8Array.from([...randomBytes(17), ...option(aad, sealed), ...randomBytes(5)]);
          assert.equal(ctx.open(packet, 17, kri, out), 1);
          assert.deepEqual(out, text);
          // the analyzer's path (openAt on the reader's buffer), which the caller switches between buffers
          const opener = aeadBackend().backend.opener(aead.id, key);
          const want = decodeV2Fields(decoded(packet, 17).randomNumber, decoded(packet, 17).fBit, text, 0);
          assert.deepEqual(opener.open(decoded(packet, 17), kri), want);
          assert.deepEqual(opener.open(decoded(option(aad, sealed), 0), kri), want);
          assert.equal(opener.open(decoded(packet, 17), (kri + 2) >>> 0), undefined);
        }),
        { numRuns: 300 },
      );
    });

    it(`${aead.name}: refuses every single-bit change of AAD, ciphertext or tag, a wrong Kri and a wrong key, releasing nothing`, () => {
      fc.assert(
        fc.property(inputs, ({ key, kri, aad, text }) => {
          const ctx = nativeAeadContext(aead.id, key)!;
          const good = option(aad, aead.noble(key, nonceOf(kri, aad), aad).encrypt(text));
          const out = new Uint8Array(14);
          for (let bit = 0; bit < 36 * 8; bit++) {
            const bad = Uint8Array.from(good);
            bad[bit >> 3]! ^= 1 << (bit & 7);
            out.fill(0xaa);
            assert.equal(ctx.open(bad, 0, kri, out), 0, `bit ${bit}`);
            assert.ok(
              out.every((b) => b === 0),
              "no plaintext released",
            );
          }
          assert.equal(ctx.open(good, 0, (kri + 1) >>> 0, out), 0, "another Kri");
          const opener = aeadBackend().backend.opener(aead.id, key);
          assert.notEqual(opener.open(decoded(good, 0), kri), undefined);
          for (let bit = 0; bit < 36 * 8; bit++) {
            const bad = Uint8Array.from(good);
            bad[bit >> 3]! ^= 1 << (bit & 7);
            assert.equal(opener.open(decoded(bad, 0), kri), undefined, `openAt, bit ${bit}`);
          }
          const other = nativeAeadContext(
            aead.id,
            Uint8Array.from(key, (b, i) => (i === 0 ? b ^ 1 : b)),
          )!;
          assert.equal(other.open(good, 0, kri, out), 0, "another key");
        }),
        { numRuns: 20 },
      );
    });
  }

  it("refuses an option past the end of its bytes (-1), and a key of the wrong length before the native code", () => {
    const ctx = nativeAeadContext(AeadId.Aes128Gcm, new Uint8Array(16))!;
    const out = new Uint8Array(14);
    assert.equal(ctx.open(new Uint8Array(35), 0, 0, out), -1);
    assert.equal(ctx.open(new Uint8Array(40), 5, 0, out), -1);
    assert.equal(ctx.open(new Uint8Array(40), -1, 0, out), -1);
    const opener = aeadBackend().backend.opener(AeadId.Aes128Gcm, new Uint8Array(16));
    assert.equal(opener.open(decoded(new Uint8Array(40), 5), 0), undefined);
    assert.equal(opener.open({ ...decoded(new Uint8Array(40), 0), at: -1 }, 0), undefined);
    assert.throws(() => nativeAeadContext(AeadId.Aes128Gcm, new Uint8Array(32)), KeyError);
    assert.throws(() => nativeAeadContext(AeadId.Chacha20Poly1305, new Uint8Array(16)), KeyError);
  });
});

describe("pdm analyze with and without the native module", { skip }, () => {
  const fixtures = join(ROOT, "fixtures", "captures");
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), "pdm-aead-native-"));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  /** The protected capture with options tampered and malformed, and its end cut off mid-block. */
  function damaged(): string {
    const bytes = Buffer.from(readFileSync(join(fixtures, "v2-protected.pcapng")));
    const marker = Buffer.from("040f2220", "hex"); // Hdr Ext Len 4, PDM, Opt Data Len 34, version 2
    let n = 0;
    for (let i = bytes.indexOf(marker); i >= 0; i = bytes.indexOf(marker, i + 1), n += 1) {
      if (n % 11 === 3) bytes[i + 12]! ^= 0x08; // ciphertext: auth failure
      if (n % 13 === 6) bytes[i + 30]! ^= 0x01; // tag: auth failure
      if (n % 17 === 7) bytes[i + 2] = 0x21; // Opt Data Len 33: malformed
    }
    const path = join(tmp, "damaged.pcapng");
    writeFileSync(path, bytes.subarray(0, bytes.length - 300));
    return path;
  }

  /** A key log of the right shape whose secrets are wrong: every option fails its tag. */
  function wrongKeys(): string {
    const text = readFileSync(join(fixtures, "v2-protected.keys"), "utf8");
    const path = join(tmp, "wrong.keys");
    writeFileSync(
      path,
      text.replace(/([0-9a-f])(\s*)$/gim, (_m, d: string, s: string) => `${d === "0" ? "1" : "0"}${s}`),
      {
        mode: 0o600,
      },
    );
    return path;
  }

  const analyze = (input: string, keys: string, threads: number, native: boolean): string =>
    execFileSync(process.execPath, [PDM_BIN, "analyze", "-r", input, "-k", keys, "-f", "json", "-j", String(threads)], {
      encoding: "utf8",
      env: { ...process.env, PDM_NO_NATIVE: native ? "" : "1" },
      maxBuffer: 64 << 20,
    });

  it("prints the same bytes on every protected fixture, damaged and wrongly keyed ones included, on 1 and 2 threads", () => {
    const cases = [
      { input: join(fixtures, "v2-protected.pcapng"), keys: join(fixtures, "v2-protected.keys") },
      { input: join(fixtures, "v2-protected-chacha.pcap"), keys: join(fixtures, "v2-protected-chacha.keys") },
      { input: damaged(), keys: join(fixtures, "v2-protected.keys") },
      { input: join(fixtures, "v2-protected.pcapng"), keys: wrongKeys() },
    ];
    for (const c of cases) {
      const reference = analyze(c.input, c.keys, 1, false);
      const counters = (JSON.parse(reference) as { counters: Record<string, number> }).counters;
      for (const threads of [1, 2]) {
        assert.equal(analyze(c.input, c.keys, threads, true), reference, `${c.input}, native, ${threads} threads`);
        if (threads === 2)
          assert.equal(analyze(c.input, c.keys, threads, false), reference, `${c.input}, node:crypto, 2 threads`);
      }
      assert.ok(counters.packets! > 0, "the capture was read");
      if (c.input.endsWith("damaged.pcapng")) assert.ok(counters.authFail! > 0 && counters.malformed! > 0, "damaged");
      if (c.keys.endsWith("wrong.keys")) assert.ok(counters.authFail! > 0, "nothing opens under wrong keys");
    }
  });

  it("says which one opened the options with --verbose", () => {
    const run = (native: boolean): string =>
      spawnSync(
        process.execPath,
        [
          PDM_BIN,
          "analyze",
          "-v",
          "-r",
          join(fixtures, "v2-protected.pcapng"),
          "-k",
          join(fixtures, "v2-protected.keys"),
        ],
        { encoding: "utf8", env: { ...process.env, PDM_NO_NATIVE: native ? "" : "1" } },
      ).stderr;
    assert.match(run(true), /opened with OpenSSL [\d.]+.*one context per key/);
    assert.match(run(false), /opened with node:crypto: PDM_NO_NATIVE=1/);
  });
});

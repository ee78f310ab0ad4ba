// The later drafts' PDMv2 layouts (pdm/draft-layouts.ts, draft-layouts.md): golden bytes
// next to the diagrams, round trips, random and mutated bytes (a value or a typed
// error, never an exception), layout E sealed and opened with both AEADs and checked
// against @noble/ciphers, and the receiver's key index from an Epoch.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { gcm } from "@noble/ciphers/aes.js";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import {
  AeadId,
  decodeDraftOption,
  draftLayoutOf,
  encodeDraftOption,
  keyIndexCandidates,
  openDraft15,
  sealDraft15,
  WireError,
  type DraftClearOption,
  type Draft15ProtectedOption,
} from "../../pdm/index.ts";

const h = (hex: string): Uint8Array => Uint8Array.from(Buffer.from(hex.replaceAll(" ", ""), "hex"));
const fields = {
  epoch: 0x123,
  psnTp: 0x89abcdef,
  psnLr: 0x01020304,
  globalPointer: 0xa0b0c0d0,
  scaleDtlr: 0x11,
  scaleDtls: 0x22,
  deltaTlr: 0x3344,
  deltaTls: 0x5566,
};

describe("later PDMv2 layouts", () => {
  it("C/D (-09 to -14): 0x0F, 22 bytes, golden", () => {
    //          type len  Ver+Epoch PSNTP     PSNLR     GlobalPtr Sc  Sc  resv DTLR DTLS
    const wire = h("0f 16 2123 89abcdef 01020304 a0b0c0d0 11 22 0000 3344 5566");
    assert.deepEqual(encodeDraftOption({ layout: "v2-draft09", ...fields }), wire);
    assert.deepEqual(decodeDraftOption(wire, 0), { layout: "v2-draft09", ...fields });
  });

  it("E (-15) clear: type 0x1E (or the one configured), 22 bytes, golden", () => {
    const wire = h("1e 16 2123 89abcdef 01020304 a0b0c0d0 11 22 0000 3344 5566");
    assert.deepEqual(encodeDraftOption({ layout: "v2-draft15", ...fields }), wire);
    assert.deepEqual(decodeDraftOption(wire, 0), { layout: "v2-draft15", ...fields });
    const other = encodeDraftOption({ layout: "v2-draft15", ...fields }, 0x3e);
    assert.equal(other[0], 0x3e);
    assert.equal(
      (decodeDraftOption(other, 0, other.length, { draft15Type: 0x3e }) as DraftClearOption).layout,
      "v2-draft15",
    );
  });

  it("B (-05 to -08): 0x0F, 18 bytes, read as B only when asked", () => {
    //          type len  Ver+Epoch PSNTP resv GlobalPtr Sc Sc PSNLR DTLR DTLS
    const wire = h("0f 12 2123 cdef 0000 a0b0c0d0 11 22 0304 3344 5566");
    const b = { ...fields, layout: "v2-draft05" as const, psnTp: 0xcdef, psnLr: 0x0304 };
    assert.deepEqual(encodeDraftOption(b), wire);
    assert.deepEqual(decodeDraftOption(wire, 0, wire.length, { draft05: true }), b);
    assert.equal(draftLayoutOf(0x0f, 18), undefined, "without asking, 0x0F/18 is -02's layout A");
    assert.equal(draftLayoutOf(0x0f, 34), undefined);
  });

  it("refuses with a typed error: unknown length of E's type, bad version, reserved bits, truncation", () => {
    const cases: Array<[Uint8Array, string]> = [
      [h("1e 1e" + "20".repeat(30)), "unknown-layout"],
      [h("0f 16 3123 89abcdef 01020304 a0b0c0d0 11 22 0000 3344 5566"), "bad-version"],
      [h("0f 16 2123 89abcdef 01020304 a0b0c0d0 11 22 0100 3344 5566"), "reserved-set"],
      [h("0f 16 2123 89abcdef"), "truncated"],
      [h("1e"), "truncated"],
    ];
    for (const [bytes, code] of cases) {
      const r = decodeDraftOption(bytes, 0);
      assert.ok(r instanceof WireError && r.code === code, `${Buffer.from(bytes).toString("hex")}: ${String(r)}`);
    }
  });

  const clearOption = fc.record({
    layout: fc.constantFrom("v2-draft09" as const, "v2-draft15" as const),
    epoch: fc.integer({ min: 0, max: 0xfff }),
    psnTp: fc.integer({ min: 0, max: 0xffff_ffff }),
    psnLr: fc.integer({ min: 0, max: 0xffff_ffff }),
    globalPointer: fc.integer({ min: 0, max: 0xffff_ffff }),
    scaleDtlr: fc.integer({ min: 0, max: 255 }),
    scaleDtls: fc.integer({ min: 0, max: 255 }),
    deltaTlr: fc.integer({ min: 0, max: 0xffff }),
    deltaTls: fc.integer({ min: 0, max: 0xffff }),
  });

  it("round-trips every field over its whole range", () => {
    fc.assert(
      fc.property(clearOption, (o) => {
        const bytes = encodeDraftOption(o);
        assert.deepEqual(decodeDraftOption(bytes, 0), { ...o });
        assert.deepEqual(encodeDraftOption(decodeDraftOption(bytes, 0) as DraftClearOption), bytes);
      }),
      { numRuns: 2000 },
    );
  });

  it("answers random bytes and 100,000 mutated options per layout with a value or a typed error", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 48 }), fc.boolean(), (bytes, draft05) => {
        const r = decodeDraftOption(bytes, 0, bytes.length, { draft05 });
        assert.ok(r instanceof WireError || typeof r === "object");
      }),
      { numRuns: 20_000 },
    );
    const key = new Uint8Array(16).fill(7);
    const seeds: Array<[Uint8Array, boolean]> = [
      [encodeDraftOption({ layout: "v2-draft09", ...fields }), false],
      [encodeDraftOption({ layout: "v2-draft15", ...fields }), false],
      [encodeDraftOption({ layout: "v2-draft05", ...fields, psnTp: 1, psnLr: 2 }), true],
      [sealDraft15(AeadId.Aes128Gcm, key, fields), false],
    ];
    let x = 0x9e3779b9;
    const rand = (n: number): number => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) % n;
    };
    for (const [seed, draft05] of seeds) {
      for (let i = 0; i < 100_000; i++) {
        const m = Uint8Array.from(seed);
        for (let k = 1 + rand(3); k > 0; k--) m[rand(m.length)] = rand(256);
        const cut = rand(8) === 0 ? rand(m.length) : m.length;
        const r = decodeDraftOption(m, 0, cut, { draft05 });
        if (r instanceof WireError) continue;
        assert.equal(typeof r.layout, "string");
        if (r.layout === "v2-draft15-protected") {
          const opened = openDraft15(AeadId.Aes128Gcm, key, r);
          if (opened) assert.deepEqual(m.subarray(0, 40), seed.subarray(0, 40), "only the untouched option opens");
        }
      }
    }
  });

  for (const aead of [
    { id: AeadId.Aes128Gcm, name: "AES-128-GCM", keyLength: 16, noble: gcm },
    { id: AeadId.Chacha20Poly1305, name: "ChaCha20-Poly1305", keyLength: 32, noble: chacha20poly1305 },
  ]) {
    it(`E protected with ${aead.name}: o0-7 clear, o8-23 sealed, a 16-byte tag; as @noble seals it; every flipped bit refused`, () => {
      const key = Uint8Array.from({ length: aead.keyLength }, (_, i) => i * 3 + 1);
      const sealed = sealDraft15(aead.id, key, fields);
      assert.equal(sealed.length, 40);
      assert.deepEqual(
        sealed.subarray(0, 8),
        h("1e 26 2123 89abcdef"),
        "type, length 38, Ver + Epoch, PSNTP in the clear",
      );
      const clear = encodeDraftOption({ layout: "v2-draft15", ...fields });
      const nonce = Uint8Array.from([0, 0, 0, 0, 0, 0, ...sealed.subarray(2, 8)]);
      assert.deepEqual(
        sealed.subarray(8),
        aead.noble(key, nonce, sealed.subarray(0, 8)).encrypt(clear.subarray(8, 24)),
      );
      const option = decodeDraftOption(sealed, 0) as Draft15ProtectedOption;
      assert.deepEqual(
        { layout: option.layout, epoch: option.epoch, psnTp: option.psnTp },
        {
          layout: "v2-draft15-protected",
          epoch: fields.epoch,
          psnTp: fields.psnTp,
        },
      );
      assert.deepEqual(openDraft15(aead.id, key, option), { layout: "v2-draft15", ...fields });
      for (let bit = 0; bit < 40 * 8; bit++) {
        const bad = Uint8Array.from(sealed);
        bad[bit >> 3]! ^= 1 << (bit & 7);
        const r = decodeDraftOption(bad, 0);
        if (r instanceof WireError || r.layout !== "v2-draft15-protected") continue; // the type or length itself
        assert.equal(openDraft15(aead.id, key, r), undefined, `bit ${bit}`);
      }
      const wrong = Uint8Array.from(key, (b, i) => (i === 0 ? b ^ 1 : b));
      assert.equal(openDraft15(aead.id, wrong, option), undefined, "a wrong key");
    });
  }

  it("takes the key index nearest the last one with the Epoch's low 12 bits, then the next and the previous", () => {
    assert.deepEqual(keyIndexCandidates(5000, 5000 & 0xfff), [5000, 9096, 904]);
    assert.deepEqual(keyIndexCandidates(4095, 0), [4096, 8192, 0]);
    assert.deepEqual(keyIndexCandidates(0, 0xfff), [4095, 8191], "never below 0");
    assert.deepEqual(keyIndexCandidates(10_000, 1), [8193, 12289, 4097]);
  });
});

// Property tests and mutation fuzzing for every decoder of outside input: the
// option codec, the Destination Options walk, the IPv6 walk and the key log.
// Contract: a value or a typed error (WireError / KeyError), never anything else.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  AeadId,
  KeyError,
  PROTO,
  WireError,
  decodePdmOption,
  encodeDestOptionsHeader,
  encodePdmOption,
  findPdmOption,
  openProtectedOption,
  parseIpv6,
  parseKeyLog,
  sealProtectedOption,
  type Layout,
  type PdmV2ProtectedOption,
} from "../../pdm/index.ts";
import { ipv6Packet, udpHeader, xorshift as prng } from "../../fixtures/index.ts";
// Deterministic PRNG (xorshift32), so a fuzz failure can be replayed from its seed.

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const times = fc.record({ scaleDtlr: u8, scaleDtls: u8, psnTp: u16, psnLr: u16, deltaTlr: u16, deltaTls: u16 });
const v2extra = fc.record({
  randomNumber: fc.integer({ min: 0, max: 0x7fff }),
  fBit: fc.constantFrom(0 as const, 1 as const),
  globalPointer: fc.integer({ min: 0, max: 0xffff_ffff }),
});

function assertTyped(result: { ok: boolean; error?: unknown }): void {
  if (!result.ok) assert.ok(result.error instanceof WireError, `untyped error: ${String(result.error)}`);
}

describe("round trips", () => {
  it("RFC 8250: decode(encode(x)) = x", () => {
    fc.assert(
      fc.property(times, (t) => {
        const d = decodePdmOption(encodePdmOption({ layout: "rfc8250", ...t }), 0);
        assert.deepEqual(d, { ok: true, value: { layout: "rfc8250", ...t } });
      }),
      { numRuns: 5000 },
    );
  });

  it("PDMv2 clear: decode(encode(x)) = x, also inside a packet", () => {
    fc.assert(
      fc.property(times, v2extra, (t, e) => {
        const opt = encodePdmOption({ layout: "v2-clear", ...t, ...e });
        const pkt = ipv6Packet({
          ext: [[60, encodeDestOptionsHeader(0, opt)]],
          proto: PROTO.udp,
          upper: udpHeader(1, 2),
        });
        const r = parseIpv6(pkt);
        assert.ok(r.ok);
        assert.deepEqual(r.value.pdm, { layout: "v2-clear", ...t, ...e });
      }),
      { numRuns: 5000 },
    );
  });

  it("PDMv2 protected: open(seal(x)) = x for both AEADs", () => {
    fc.assert(
      fc.property(
        times,
        v2extra,
        fc.constantFrom(AeadId.Aes128Gcm, AeadId.Chacha20Poly1305),
        fc.integer({ min: 0, max: 0xffff_ffff }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (t, e, aead, kri, keyBytes) => {
          const key = keyBytes.subarray(0, aead === AeadId.Aes128Gcm ? 16 : 32);
          const fBit = (kri & 1) as 0 | 1;
          const option = sealProtectedOption({
            aead,
            key,
            kri,
            randomNumber: e.randomNumber,
            fBit,
            fields: { ...t, globalPointer: e.globalPointer },
          });
          const d = decodePdmOption(option, 0);
          assert.ok(d.ok);
          const o = openProtectedOption(aead, key, kri, d.value as PdmV2ProtectedOption);
          assert.ok(o.ok);
          assert.deepEqual(o.value, { ...t, globalPointer: e.globalPointer, randomNumber: e.randomNumber, fBit });
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe("random bytes", () => {
  it("decodePdmOption, findPdmOption and parseIpv6 return a value or a WireError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(200), (bytes, at) => {
        assertTyped(decodePdmOption(bytes, at));
        assertTyped(findPdmOption(bytes, at, bytes.length));
        const pkt = Uint8Array.from(bytes);
        if (pkt.length > 0) pkt[0] = 0x60 | (pkt[0]! & 0x0f); // let more inputs past the version check
        const r = parseIpv6(pkt);
        assertTyped(r);
        if (r.ok && r.value.pdmError) assert.ok(r.value.pdmError instanceof WireError);
      }),
      { numRuns: 20_000 },
    );
  });

  it("parseKeyLog returns entries or throws a KeyError", () => {
    const token = fc.oneof(
      fc.constantFrom("PDMV2_SHARED", "PDMV2_CLIENT", "0020:0001:0001", "fd00::1", "00".repeat(32), "00".repeat(8)),
      fc.string(),
    );
    fc.assert(
      fc.property(
        fc.array(
          fc.array(token, { maxLength: 7 }).map((t) => t.join(" ")),
          { maxLength: 5 },
        ),
        (lines) => {
          try {
            parseKeyLog(lines.join("\n"));
          } catch (e) {
            assert.ok(e instanceof KeyError, `untyped: ${String(e)}`);
          }
        },
      ),
      { numRuns: 5000 },
    );
  });
});

describe("mutation fuzzing: 100,000 mutated options per layout", () => {
  const samples: Record<Layout, Uint8Array> = {
    rfc8250: encodePdmOption({
      layout: "rfc8250",
      scaleDtlr: 34,
      scaleDtls: 38,
      psnTp: 1,
      psnLr: 2,
      deltaTlr: 3,
      deltaTls: 4,
    }),
    "v2-clear": encodePdmOption({
      layout: "v2-clear",
      scaleDtlr: 34,
      scaleDtls: 38,
      psnTp: 1,
      psnLr: 2,
      deltaTlr: 3,
      deltaTls: 4,
      randomNumber: 5,
      fBit: 1,
      globalPointer: 6,
    }),
    "v2-protected": sealProtectedOption({
      aead: AeadId.Aes128Gcm,
      key: new Uint8Array(16),
      kri: 1,
      randomNumber: 5,
      fBit: 1,
      fields: { scaleDtlr: 34, scaleDtls: 38, psnTp: 1, psnLr: 2, deltaTlr: 3, deltaTls: 4, globalPointer: 6 },
    }),
  };

  for (const [layout, option] of Object.entries(samples) as Array<[Layout, Uint8Array]>) {
    it(`${layout}: every mutant decodes to a value or a WireError`, () => {
      const base = ipv6Packet({
        ext: [[60, encodeDestOptionsHeader(0, option)]],
        proto: PROTO.udp,
        upper: udpHeader(1, 2),
      });
      const rand = prng(0x5eed + option.length);
      const outcomes = new Map<string, number>();
      for (let i = 0; i < 100_000; i += 1) {
        const pkt = Uint8Array.from(base);
        const flips = 1 + (rand() % 4);
        for (let f = 0; f < flips; f += 1) {
          // Mutate the Destination Options header (bytes 40..) most of the time, the fixed header sometimes.
          const at = rand() % 8 === 0 ? rand() % 40 : 40 + (rand() % (option.length + 4));
          pkt[at] = rand() & 0xff;
        }
        const cut = rand() % 16 === 0 ? rand() % pkt.length : pkt.length; // sometimes truncate too
        let result;
        try {
          result = parseIpv6(pkt, 0, cut);
        } catch (e) {
          assert.fail(
            `untyped exception on mutant ${i}: ${String(e)} (bytes ${Buffer.from(pkt.subarray(0, cut)).toString("hex")})`,
          );
        }
        assertTyped(result);
        const key = !result.ok
          ? result.error.code
          : result.value.pdmError
            ? `pdm:${result.value.pdmError.code}`
            : (result.value.pdm?.layout ?? "none");
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      }
      // The fuzzer must actually reach both the happy path and several error paths.
      assert.ok((outcomes.get(layout) ?? 0) > 1000, `valid ${layout} outcomes: ${JSON.stringify([...outcomes])}`);
      assert.ok(outcomes.size >= 5, `only ${outcomes.size} distinct outcomes: ${JSON.stringify([...outcomes])}`);
    });
  }
});

// Sealer and opener together: the sender's nonce discipline and the receiver's
// key choice, replay and GSO handling (wire.md sections 4 and 5).

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import {
  AeadId,
  DEFAULT_SUITE,
  KeyRing,
  ProtectedOpener,
  ProtectedSealer,
  decodePdmOption,
  deriveClientSecret,
  deriveKeyId,
  deriveStk,
  parseIpv6Address,
  sealProtectedOption,
  type PdmV2ProtectedOption,
  type Suite,
} from "../../pdm/index.ts";

const client = parseIpv6Address("fd00:1::2");
const server = parseIpv6Address("fd00:2::2");
const flow = { src: server, dst: client, sport: 443, dport: 40000, proto: 6 };
const fields = (i: number) => ({
  scaleDtlr: 30,
  scaleDtls: 34,
  globalPointer: i + 1,
  psnTp: i & 0xffff,
  psnLr: 7,
  deltaTlr: 40000,
  deltaTls: 50000,
});

function deployment(suite: Suite = DEFAULT_SUITE) {
  const sharedSecret = randomBytes(32);
  const salt = randomBytes(32);
  const keyId = deriveKeyId(suite.kdf, sharedSecret, salt);
  const clientSecret = deriveClientSecret(suite.kdf, sharedSecret, salt, client);
  return {
    suite,
    sharedSecret,
    salt,
    keyId,
    clientSecret,
    stk: (kri: number) => deriveStk(suite, clientSecret, salt, flow, kri),
  };
}

const asProtected = (option: Uint8Array): PdmV2ProtectedOption => {
  const d = decodePdmOption(option, 0);
  assert.ok(d.ok && d.value.layout === "v2-protected");
  return d.value as PdmV2ProtectedOption;
};

for (const aead of [AeadId.Aes128Gcm, AeadId.Chacha20Poly1305]) {
  describe(`protected layout with AEAD 0x000${aead}`, () => {
    const d = deployment({ ...DEFAULT_SUITE, aead });
    const ring = new KeyRing([
      { kind: "shared", keyId: d.keyId, suite: d.suite, salt: d.salt, secret: d.sharedSecret },
    ]);

    it("a new flow's first packet costs at most one try under the wrong client end: every context's expected Kri before any wide search", () => {
      // A SharedSecret gives a context per end that may be the reader client; here the
      // first one (the server's address as client) is wrong.
      const contexts = ring.contextsFor(flow);
      assert.equal(contexts.length, 2);
      assert.notDeepEqual(contexts[0]!.stk(0), d.stk(0), "the first context is the wrong end");
      const tries = [0, 0];
      contexts.forEach((c, i) => {
        const derive = c.stk.bind(c);
        c.stk = (kri: number) => {
          tries[i]! += 1;
          return derive(kri);
        };
      });
      const opener = new ProtectedOpener(contexts, { searchAhead: 64 });
      const sealer = new ProtectedSealer(aead, d.stk);
      const out = opener.open(asProtected(sealer.seal(fields(0), 0)!.option), 0);
      assert.equal(out.status, "ok");
      assert.deepEqual(tries, [1, 1], "Kri 0 under each context; not the wrong one's 33 Kri of the wide search first");
    });

    it("contextsFor puts the likely client end first", () => {
      assert.deepEqual(ring.contextsFor(flow, client)[0]!.stk(3), d.stk(3));
      assert.deepEqual(ring.contextsFor(flow, server)[1]!.stk(3), d.stk(3));
      assert.equal(ring.contextsFor(flow, client).length, 2, "the other end is still tried");
    });

    it("an analyzer holding the SharedSecret opens every packet across rotations", () => {
      const sealer = new ProtectedSealer(aead, d.stk, { maxPacketsPerKri: 50 });
      const opener = new ProtectedOpener(ring.contextsFor(flow));
      for (let i = 0; i < 400; i += 1) {
        const sealed = sealer.seal(fields(i), i * 1000)!;
        const out = opener.open(asProtected(sealed.option), i * 1000);
        assert.equal(out.status, "ok", `packet ${i}`);
        if (out.status === "ok") {
          assert.equal(out.kri, Math.floor(i / 50));
          assert.equal(out.fields.globalPointer, i + 1);
        }
      }
    });

    it("a ClientSecret holder opens only its own client's flows", () => {
      const own = new KeyRing([
        { kind: "client", keyId: d.keyId, suite: d.suite, clientAddress: client, salt: d.salt, secret: d.clientSecret },
      ]);
      const sealer = new ProtectedSealer(aead, d.stk);
      const option = asProtected(sealer.seal(fields(0), 0)!.option);
      assert.equal(new ProtectedOpener(own.contextsFor(flow)).open(option, 0).status, "ok");
      const stranger = { ...flow, dst: parseIpv6Address("fd00:9::9") };
      assert.equal(new ProtectedOpener(own.contextsFor(stranger)).open(option, 0).status, "no-key");
    });

    it("counts a replay, and treats back-to-back identical stamps as one GSO burst", () => {
      const sealer = new ProtectedSealer(aead, d.stk);
      const opener = new ProtectedOpener(ring.contextsFor(flow));
      const a = asProtected(sealer.seal(fields(1), 0)!.option);
      const b = asProtected(sealer.seal(fields(2), 1)!.option);
      assert.equal(opener.open(a, 0).status, "ok");
      assert.equal(opener.open(a, 0).status, "gso-repeat");
      // The same Random Number with one bit changed is not a repeat of the verified stamp.
      const forged = Uint8Array.from(sealer.seal(fields(3), 0)!.option);
      forged.set(a.bytes.subarray(a.at, a.at + 6)); // a's clear prefix: same Random Number and F
      assert.equal(opener.open(asProtected(forged), 0).status, "auth-fail");
      const flipped = Uint8Array.from(a.bytes.subarray(a.at, a.at + 36));
      flipped[35]! ^= 1;
      assert.equal(opener.open(asProtected(flipped), 0).status, "auth-fail");
      assert.equal(opener.open(b, 1).status, "ok");
      assert.equal(opener.open(a, 2).status, "replay");
    });

    it("replays are caught exactly, before and after a Kri's memory grows from a list to a bitmap", () => {
      // Up to 200 packets under one Kri, then earlier ones sent again in random order:
      // each is a replay (not the last verified one: that would be a GSO repeat), and
      // fresh packets between them are read.
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 200 }), fc.array(fc.nat(), { maxLength: 40 }), (n, picks) => {
          const sealer = new ProtectedSealer(aead, d.stk, { maxPacketsPerKri: 1000 });
          const opener = new ProtectedOpener(ring.contextsFor(flow));
          const sent = Array.from({ length: n }, (_, i) =>
            asProtected(Uint8Array.from(sealer.seal(fields(i), i)!.option)),
          );
          sent.forEach((p, i) => assert.equal(opener.open(p, i).status, "ok", `packet ${i}`));
          for (const pick of picks) {
            const fresh = asProtected(Uint8Array.from(sealer.seal(fields(n), n)!.option));
            assert.equal(opener.open(fresh, n).status, "ok");
            assert.equal(opener.open(sent[pick % n]!, n).status, "replay", `packet ${pick % n} of ${n} again`);
          }
        }),
        { numRuns: 25 },
      );
    });

    it("a wrong key or a flipped bit is an auth failure, never a sample", () => {
      const other = deployment({ ...DEFAULT_SUITE, aead });
      const sealer = new ProtectedSealer(aead, other.stk);
      const opener = new ProtectedOpener(ring.contextsFor(flow));
      assert.equal(opener.open(asProtected(sealer.seal(fields(0), 0)!.option), 0).status, "auth-fail");
      const good = new ProtectedSealer(aead, d.stk).seal(fields(0), 0)!.option;
      good[20]! ^= 0x10;
      assert.equal(opener.open(asProtected(good), 0).status, "auth-fail");
    });

    it("a late joiner finds the sender's Kri with a search window", () => {
      const sealer = new ProtectedSealer(aead, d.stk, { maxPacketsPerKri: 10 });
      let last: Uint8Array | undefined;
      for (let i = 0; i < 75; i += 1) last = sealer.seal(fields(i), i)!.option; // Kri 7 now
      const strict = new ProtectedOpener(ring.contextsFor(flow));
      assert.equal(strict.open(asProtected(last!), 100).status, "auth-fail");
      const searching = new ProtectedOpener(ring.contextsFor(flow), { searchAhead: 16 });
      const out = searching.open(asProtected(last!), 100);
      assert.equal(out.status, "ok");
      assert.equal(out.status === "ok" && out.kri, 7);
    });

    it("the wide search is paced while nothing verifies: a wrong key log stays cheap, a tampered first packet costs one", () => {
      const sealer = new ProtectedSealer(aead, d.stk, { maxPacketsPerKri: 10 });
      const options = Array.from({ length: 275 }, (_, i) => sealer.seal(fields(i), i)!.option); // Kri 0..27
      // Wrong keys: count the keys tried (each is one derivation or cache hit and one open).
      const wrong = deployment({ ...DEFAULT_SUITE, aead });
      const wrongRing = new KeyRing([
        { kind: "shared", keyId: wrong.keyId, suite: wrong.suite, salt: wrong.salt, secret: wrong.sharedSecret },
      ]);
      const contexts = wrongRing.contextsFor(flow);
      let tried = 0;
      for (const c of contexts) {
        const stk = c.stk.bind(c);
        c.stk = (kri: number) => (tried++, stk(kri));
      }
      const opener = new ProtectedOpener(contexts, { searchAhead: 64 });
      for (const o of options.slice(75, 275)) assert.equal(opener.open(asProtected(o), 0).status, "auth-fail");
      // Unpaced: about 200 packets x 2 contexts x 33 candidates = 13,000 keys.
      assert.ok(tried < 2_000, `${tried} keys tried for 200 packets`);
      // Right keys, joining at Kri 7 with a tampered first packet: the second one syncs.
      const late = new ProtectedOpener(ring.contextsFor(flow), { searchAhead: 16 });
      const tampered = Uint8Array.from(options[75]!);
      tampered[30]! ^= 4;
      assert.equal(late.open(asProtected(tampered), 0).status, "auth-fail");
      const second = late.open(asProtected(options[76]!), 1);
      assert.equal(second.status === "ok" && second.kri, 7);
    });

    it("a synced flow that resumes at a later Kri is found again; a forgery between good options costs no search", () => {
      // The sender at Kri 0 to 2, then (its kernel forgot the flow) at Kri 9 with a
      // fresh sequence, as the key installer resumes it.
      const sealer = new ProtectedSealer(aead, d.stk, { maxPacketsPerKri: 10 });
      const before = Array.from({ length: 25 }, (_, i) => sealer.seal(fields(i), i)!.option); // Kri 0..2
      const contexts = ring.contextsFor(flow);
      let tried = 0;
      for (const c of contexts) {
        const stk = c.stk.bind(c);
        c.stk = (kri: number) => (tried++, stk(kri));
      }
      const opener = new ProtectedOpener(contexts, { searchAhead: 64 });
      const ms = 1_000_000;
      for (const [i, o] of before.entries()) assert.equal(opener.open(asProtected(o), i * ms).status, "ok");
      // A forged option between good ones: an auth failure, and no search.
      const forged = Uint8Array.from(before[24]!);
      forged[30]! ^= 4;
      tried = 0;
      assert.equal(opener.open(asProtected(forged), 25 * ms).status, "auth-fail");
      assert.ok(tried <= 3, `${tried} keys tried for a forgery`);
      // Resumed at Kri 9 after 5 minutes of silence: found on its first option.
      const later = Array.from({ length: 5 }, (_, i) =>
        sealProtectedOption({ aead, key: d.stk(9), kri: 9, randomNumber: 100 + i, fBit: 1, fields: fields(100 + i) }),
      );
      const t = 300_000 * ms;
      const first = opener.open(asProtected(later[0]!), t);
      assert.equal(first.status === "ok" && first.kri, 9, "found at once after a silence");
      for (const [i, o] of later.slice(1).entries())
        assert.equal(opener.open(asProtected(o), t + (i + 1) * ms).status, "ok");
      // Without the silence (a jump mid-stream), the second failure in a row searches.
      const jumper = new ProtectedOpener(ring.contextsFor(flow), { searchAhead: 64 });
      for (const [i, o] of before.entries()) jumper.open(asProtected(o), i * ms);
      const outcomes = later.map((o, i) => jumper.open(asProtected(o), (25 + i) * ms).status);
      assert.deepEqual(outcomes, ["auth-fail", "ok", "ok", "ok", "ok"]);
    });
  });
}

describe("nonce discipline", () => {
  it("no (key, nonce) pair repeats over 200,000 packets with rotations", () => {
    const d = deployment();
    const sealer = new ProtectedSealer(AeadId.Aes128Gcm, d.stk, { maxPacketsPerKri: 3000 });
    const seen = new Set<string>();
    for (let i = 0; i < 200_000; i += 1) {
      const s = sealer.seal(fields(i), i)!;
      const id = `${s.kri}:${s.randomNumber}:${s.fBit}`;
      assert.ok(!seen.has(id));
      seen.add(id);
    }
    assert.equal(seen.size, 200_000);
  });
});

// The Key Selection Protocol's building blocks against independent implementations:
// AES-CMAC against RFC 4493's vectors and OpenSSL's CMAC (`openssl mac`), the 802.1X
// KDF's ICK and KEK against a KDF written here on OpenSSL's CMAC, key wrap against RFC
// 3394's vectors; the messages decoded by Debian's tshark (its MKA dissector) with the
// fields written, once wrapped in Ethernet + EAPOL; and the decoder fuzzed.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import {
  aesCmac,
  decodeMessage,
  deriveIck,
  deriveKek,
  encodeMessage,
  ieee8021xKdf,
  sakOf,
  unwrapKey,
  wrapKey,
  KspGuard,
  DEFAULT_RATE_LIMIT,
  fileKnMemory,
  readConnectivityKeys,
  writeConnectivityKeys,
  type KspMessage,
} from "../../probes/ksp/index.ts";

const hasOpenssl = spawnSync("openssl", ["version"]).status === 0;
const hasTshark = spawnSync("tshark", ["--version"]).status === 0;

/** CMAC by the openssl command: an implementation that shares nothing with ours. */
function opensslCmac(key: Uint8Array, message: Uint8Array): string {
  const cipher = key.length === 16 ? "AES-128-CBC" : "AES-256-CBC";
  return execFileSync(
    "openssl",
    ["mac", "-cipher", cipher, "-macopt", `hexkey:${Buffer.from(key).toString("hex")}`, "CMAC"],
    {
      input: Buffer.from(message),
    },
  )
    .toString()
    .trim()
    .toLowerCase();
}

describe("KSP crypto", () => {
  it("AES-CMAC: RFC 4493's four vectors", () => {
    const k = Buffer.from("2b7e151628aed2a6abf7158809cf4f3c", "hex");
    const m = Buffer.from(
      "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710",
      "hex",
    );
    const want: [number, string][] = [
      [0, "bb1d6929e95937287fa37d129b756746"],
      [16, "070a16b46b4d4144f79bdd9dd04a287c"],
      [40, "dfa66747de9ae63030ca32611497c827"],
      [64, "51f0bebf7e3b9d92fc49741779363cfe"],
    ];
    for (const [n, mac] of want) assert.equal(aesCmac(k, m.subarray(0, n)).toString("hex"), mac, `${n} bytes`);
  });

  it("AES-CMAC equals OpenSSL's for both key sizes and many lengths", { skip: !hasOpenssl && "no openssl" }, () => {
    for (const keyLength of [16, 32]) {
      for (const n of [0, 1, 15, 16, 17, 31, 32, 33, 100]) {
        const key = randomBytes(keyLength);
        const message = randomBytes(n);
        assert.equal(
          aesCmac(key, message).toString("hex"),
          opensslCmac(key, message),
          `${keyLength}-byte key, ${n} bytes`,
        );
      }
    }
  });

  it(
    "ICK and KEK: the 802.1X KDF, checked block by block with OpenSSL's CMAC",
    { skip: !hasOpenssl && "no openssl" },
    () => {
      for (const [cak, ckn] of [
        [randomBytes(16), Buffer.from("short")],
        [randomBytes(32), randomBytes(32)],
      ] as const) {
        const context = Buffer.alloc(16);
        ckn.subarray(0, 16).copy(context);
        for (const [label, got] of [
          ["IEEE8021 ICK", deriveIck(cak, ckn)],
          ["IEEE8021 KEK", deriveKek(cak, ckn)],
        ] as const) {
          const bits = cak.length * 8;
          let expected = "";
          for (let i = 1; expected.length < bits / 4; i += 1) {
            const input = Buffer.concat([
              Buffer.from([i]),
              Buffer.from(label),
              Buffer.from([0]),
              context,
              Buffer.from([bits >> 8, bits & 0xff]),
            ]);
            expected += opensslCmac(cak, input);
          }
          assert.equal(got.toString("hex"), expected.slice(0, bits / 4), `${label}, ${cak.length}-byte CAK`);
          assert.deepEqual(got, ieee8021xKdf(cak, label, context, bits));
        }
      }
    },
  );

  it("key wrap: RFC 3394's vectors, and a changed byte never unwraps", () => {
    const kek = Buffer.from("000102030405060708090A0B0C0D0E0F", "hex");
    const key = Buffer.from("00112233445566778899AABBCCDDEEFF", "hex");
    assert.equal(wrapKey(kek, key).toString("hex"), "1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5");
    const kek256 = Buffer.from("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", "hex");
    assert.equal(wrapKey(kek256, key).toString("hex"), "64e8c3f9ce0f5ba263e9777905818a2a93c8191e7d6e8ae7");
    const wrapped = wrapKey(kek, key);
    for (let i = 0; i < wrapped.length; i += 1) {
      const bad = Buffer.from(wrapped);
      bad[i]! ^= 1;
      assert.equal(unwrapKey(kek, bad), undefined, `byte ${i}`);
    }
    assert.equal(unwrapKey(Buffer.alloc(16, 1), wrapped), undefined, "another KEK");
  });

  it("SAK = AES-128-ECB(KGK, KN): FIPS-197's AES-128 vector", () => {
    const kgk = Buffer.from("000102030405060708090a0b0c0d0e0f", "hex");
    const kn = Buffer.from("00112233445566778899aabbccddeeff", "hex");
    assert.equal(sakOf(kgk, kn).toString("hex"), "69c4e0d86a7b0430d8cdb78070b4c55a");
  });
});

const sample: KspMessage = {
  priority: 16,
  keyServer: true,
  served: true,
  memberId: Buffer.from("0102030405060708", "hex"),
  mi: Buffer.alloc(12, 0xaa),
  mn: 7,
  ckn: Buffer.from("pdm-group"),
  live: [{ mi: Buffer.alloc(12, 0xbb), mn: 5 }],
  potential: [{ mi: Buffer.alloc(12, 0xcc), mn: 9 }],
  keyUse: {
    latest: { serverMi: Buffer.alloc(12, 0xaa), keyNumber: 3, tx: true, rx: true },
    old: { serverMi: Buffer.alloc(12, 0xaa), keyNumber: 2, tx: false, rx: true },
  },
  distributedKey: { generation: 3, wrapped: Buffer.alloc(24, 0xdd) },
  keyRequest: 2,
};
const signer = (u: Buffer) => aesCmac(Buffer.alloc(16, 1), u);
/** Bytes as hex, everything else as it is: Buffers and Uint8Arrays compare alike. */
const plain = (v: unknown): unknown =>
  v instanceof Uint8Array
    ? Buffer.from(v).toString("hex")
    : Array.isArray(v)
      ? v.map(plain)
      : v && typeof v === "object"
        ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]))
        : v;

describe("KSP messages", () => {
  it("round trip: what is encoded decodes to the same message", () => {
    const d = decodeMessage(encodeMessage(sample, signer));
    assert.ok(d.ok);
    assert.deepEqual(plain(d.message), plain(sample));
  });

  it(
    "tshark's MKA dissector reads every field written, in Ethernet + EAPOL",
    { skip: !hasTshark && "no tshark" },
    () => {
      const msg = encodeMessage(sample, signer);
      const eth = Buffer.concat([
        Buffer.from("0180c2000003020000000001888e", "hex"),
        Buffer.from([3, 5, msg.length >> 8, msg.length & 0xff]), // EAPOL v3, type 5 (MKA)
        msg,
      ]);
      const dir = mkdtempSync(join(tmpdir(), "pdm-ksp-"));
      try {
        const header = Buffer.alloc(24);
        header.writeUInt32LE(0xa1b2c3d4, 0);
        header.writeUInt16LE(2, 4);
        header.writeUInt16LE(4, 6);
        header.writeUInt32LE(65535, 16);
        header.writeUInt32LE(1, 20); // Ethernet
        const record = Buffer.alloc(16);
        record.writeUInt32LE(eth.length, 8);
        record.writeUInt32LE(eth.length, 12);
        const file = join(dir, "mka.pcap");
        writeFileSync(file, Buffer.concat([header, record, eth]));
        const fields = [
          "mka.version_id",
          "mka.ks_prio",
          "mka.key_server",
          "mka.macsec_desired",
          "mka.sci",
          "mka.actor_mi",
          "mka.actor_mn",
          "mka.algo_agility",
          "mka.cak_name",
          "mka.peer_mi",
          "mka.peer_mn",
          "mka.latest_key_tx",
          "mka.latest_key_server_mi",
          "mka.latest_key_number",
          "mka.old_key_number",
          "mka.key_number",
          "mka.aes_key_wrap_sak",
          "mka.tlv_type",
          "mka.tlv_data",
          "mka.icv",
        ];
        const out = execFileSync("tshark", [
          "-r",
          file,
          "-T",
          "fields",
          "-E",
          "separator=|",
          ...fields.flatMap((f) => ["-e", f]),
        ])
          .toString()
          .trim()
          .split("|");
        const got = Object.fromEntries(fields.map((f, i) => [f, out[i]]));
        assert.equal(got["mka.version_id"], "1");
        assert.equal(got["mka.ks_prio"], "16");
        assert.match(got["mka.key_server"]!, /^(1|True)$/);
        assert.match(got["mka.macsec_desired"]!, /^(1|True)$/, "served by a master: MKA's MACsec Desired bit");
        assert.equal(got["mka.sci"], "0102030405060708");
        assert.equal(got["mka.actor_mi"], "aa".repeat(12));
        assert.equal(got["mka.actor_mn"], "00000007");
        assert.equal(Number(got["mka.algo_agility"]), 0x0080c201);
        assert.equal(got["mka.cak_name"], Buffer.from("pdm-group").toString("hex"));
        assert.equal(got["mka.peer_mi"], `${"bb".repeat(12)},${"cc".repeat(12)}`);
        assert.equal(got["mka.peer_mn"], "00000005,00000009");
        assert.match(got["mka.latest_key_tx"]!, /^(1|True)$/);
        assert.equal(got["mka.latest_key_server_mi"], "aa".repeat(12));
        assert.equal(got["mka.latest_key_number"], "00000003");
        assert.equal(got["mka.old_key_number"], "00000002");
        assert.equal(got["mka.key_number"], "00000003");
        assert.equal(got["mka.aes_key_wrap_sak"], "dd".repeat(24));
        assert.equal(got["mka.tlv_type"], "127", "the key request, an announcement TLV");
        assert.equal(got["mka.tlv_data"], "00000002");
        assert.equal(got["mka.icv"], Buffer.from(msg.subarray(msg.length - 16)).toString("hex"));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it("random bytes and 100,000 mutated messages: a message or a typed reason, never a throw", () => {
    const reasons = new Set(["truncated", "oversized", "unknown-parameter-set", "malformed", "no-icv"]);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1400 }), (bytes) => {
        const d = decodeMessage(bytes);
        assert.ok(d.ok || reasons.has(d.reason));
      }),
      { numRuns: 20_000 },
    );
    const base = encodeMessage(sample, signer);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        fc.nat(base.length),
        (edits, cut) => {
          const b = Buffer.from(base.subarray(0, cut === 0 ? base.length : cut));
          for (const [at, v] of edits) if (at < b.length) b[at] = v;
          const d = decodeMessage(b);
          assert.ok(d.ok || reasons.has(d.reason));
        },
      ),
      { numRuns: 100_000 },
    );
  });
});

describe("KSP guard", () => {
  it("a flood is rate-limited per source and in all before any decoding or ICV work", () => {
    let now = 0;
    const guard = new KspGuard(
      { ckn: Buffer.from("pdm-group"), cak: Buffer.alloc(16, 1), kgk: Buffer.alloc(16, 2) },
      () => now,
    );
    const route = (i: number) => ({
      src: Buffer.from(`fd00000000000000000000000000${(i % 65536).toString(16).padStart(4, "0")}`, "hex"),
      srcPort: 4530,
      dst: Buffer.alloc(16),
      dstPort: 4530,
    });
    const junk = Buffer.alloc(100);
    for (let i = 0; i < 10_000; i += 1) guard.open(junk, route(0)); // one source, within one instant
    assert.equal(guard.dropped["rate-limited"], 10_000 - DEFAULT_RATE_LIMIT.burst);
    now += 1000;
    const before = guard.dropped["rate-limited"];
    for (let i = 1; i <= 10_000; i += 1) guard.open(junk, route(i)); // 10,000 spoofed sources
    const worked = 10_000 - (guard.dropped["rate-limited"] - before);
    assert.ok(
      worked <= DEFAULT_RATE_LIMIT.totalPerSecond,
      `${worked} datagrams decoded in a second from spoofed sources`,
    );
  });
});

describe("KSP key files", () => {
  it("the connectivity key set: 0600 only, never through a link, every field checked; the KN memory survives a restart", () => {
    const dir = mkdtempSync(join(tmpdir(), "pdm-ksp-files-"));
    try {
      const file = join(dir, "group.ksp");
      const keys = { ckn: Buffer.from("g"), cak: randomBytes(16), kgk: randomBytes(16) };
      writeConnectivityKeys(file, keys);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.deepEqual(readConnectivityKeys(file), keys);
      chmodSync(file, 0o644);
      assert.throws(() => readConnectivityKeys(file), /readable by others \(mode 644\): chmod 600 it/);
      chmodSync(file, 0o600);
      symlinkSync(file, join(dir, "link.ksp"));
      assert.throws(() => readConnectivityKeys(join(dir, "link.ksp")), /is a symbolic link/);
      writeFileSync(join(dir, "bad.ksp"), JSON.stringify({ ckn: "00", cak: "0011", kgk: "00".repeat(16) }), {
        mode: 0o600,
      });
      assert.throws(() => readConnectivityKeys(join(dir, "bad.ksp")), /cak: expected 16 or 32 bytes in hex/);
      writeFileSync(
        join(dir, "extra.ksp"),
        JSON.stringify({ ckn: "00", cak: "00".repeat(16), kgk: "00".repeat(16), sak: "00" }),
        { mode: 0o600 },
      );
      assert.throws(() => readConnectivityKeys(join(dir, "extra.ksp")), /sak: unknown field/);

      const memory = join(dir, "kns");
      const a = fileKnMemory(memory, keys);
      a.add("aa".repeat(16), 7);
      assert.equal(statSync(memory).mode & 0o777, 0o600);
      const b = fileKnMemory(memory, keys); // the member restarted
      assert.ok(b.has("aa".repeat(16)));
      assert.equal(b.highestGeneration, 7);
      const other = fileKnMemory(memory, { ...keys, cak: randomBytes(16) }); // another key set: its own memory
      assert.ok(!other.has("aa".repeat(16)));
      assert.equal(other.highestGeneration, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

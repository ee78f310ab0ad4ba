import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  DEFAULT_SUITE,
  GlobalPointers,
  addressClass,
  KeyError,
  KEY_LOG_LIMITS,
  formatIpv6Address,
  formatKeyLog,
  parseIpv6Address,
  parseKeyLog,
  readKeyLog,
  writeKeyLog,
  type KeyLogEntry,
} from "../../pdm/index.ts";

const entries: KeyLogEntry[] = [
  {
    kind: "shared",
    keyId: new Uint8Array(8).fill(1),
    suite: DEFAULT_SUITE,
    salt: new Uint8Array(32).fill(2),
    secret: new Uint8Array(32).fill(3),
  },
  {
    kind: "client",
    keyId: new Uint8Array(8).fill(4),
    suite: { ...DEFAULT_SUITE, aead: 3 },
    clientAddress: parseIpv6Address("fd00:1::2"),
    salt: new Uint8Array(32).fill(5),
    secret: new Uint8Array(32).fill(6),
  },
];

describe("key log", () => {
  it("formats the spec's line shapes", () => {
    const text = formatKeyLog(entries);
    assert.match(text, /^PDMV2_SHARED 0101010101010101 0020:0001:0001 (02){32} (03){32}$/m);
    assert.match(text, /^PDMV2_CLIENT 0404040404040404 0020:0001:0003 fd00:1::2 (05){32} (06){32}$/m);
  });

  it("round-trips, skipping comments and blank lines", () => {
    const back = parseKeyLog(`# a comment\n\n${formatKeyLog(entries)}`);
    assert.deepEqual(back, entries);
  });

  it("accepts the client address as 32 hex digits", () => {
    const line = formatKeyLog([entries[1]!]).replace("fd00:1::2", "fd000001000000000000000000000002");
    const [e] = parseKeyLog(line);
    assert.equal(e?.kind === "client" && formatIpv6Address(e.clientAddress), "fd00:1::2");
  });

  it("names the line and the field of every mistake", () => {
    const good = formatKeyLog([entries[0]!]).trim();
    const cases: Array<[string, RegExp]> = [
      ["PDMV3_SHARED a b c d", /line 1: field 1 \(label\) is neither PDMV2_SHARED nor PDMV2_CLIENT$/],
      [good.replace(/ \S+$/, ""), /line 1: PDMV2_SHARED needs 4 fields, found 3/],
      [good.replace("0101010101010101", "01"), /line 1: field 2 \(keyId\) must be 16 hex digits/],
      [good.replace("0020:0001:0001", "0020:0001:0002"), /AEAD id 0x0002 is not allowed/],
      [good.replace("0020:0001:0001", "20:1:1"), /line 1: field 3 \(suite\) is not <kem>:<kdf>:<aead>/],
      [`\n${good.replace(/ (03){32}$/, ` ${"zz".repeat(32)}`)}`, /line 2: field 5 \(secret\) must be 64 hex digits/],
    ];
    for (const [text, want] of cases)
      assert.throws(
        () => parseKeyLog(text),
        (e: unknown) => e instanceof KeyError && want.test(e.message),
      );
  });

  it("never puts a field's text into an error: a comma-separated or column-swapped line keeps its secret out", () => {
    const secret = "ab".repeat(32);
    const salt = "cd".repeat(32);
    const lines = [
      `PDMV2_SHARED,0101010101010101,0020:0001:0001,${salt},${secret}`,
      `PDMV2_SHARED 0101010101010101 ${secret} ${salt} 0020:0001:0001`,
      `${secret} PDMV2_SHARED 0101010101010101 0020:0001:0001 ${salt}`,
      `PDMV2_CLIENT 0404040404040404 0020:0001:0003 ${secret} ${salt} fd00::2`,
      `PDMV2_CLIENT 0404040404040404 0020:0001:0003 fd00::2 ${salt} ${secret.slice(2)}`,
    ];
    for (const line of lines) {
      assert.throws(
        () => parseKeyLog(`# header\n${line}\n`),
        (e: unknown) => {
          assert.ok(e instanceof KeyError);
          assert.match(e.message, /^key log line 2: field \d \(\w[\w-]*\)/);
          for (const part of [secret, secret.slice(2, 34), salt.slice(0, 32)])
            assert.ok(!e.message.includes(part), `secret in: ${e.message}`);
          assert.equal(e.cause, undefined, "no cause carrying the text either");
          return true;
        },
      );
    }
    assert.match(
      (() => {
        try {
          parseKeyLog(lines[0]!);
        } catch (e) {
          return (e as Error).message;
        }
        return "";
      })(),
      /separated by spaces, not commas/,
    );
  });

  it("bounds a key log: an endless line, too many keys and a device are refused at once", () => {
    const dir = mkdtempSync(join(tmpdir(), "pdm-keylog-"));
    try {
      const started = Date.now();
      assert.throws(() => readKeyLog("/dev/zero"), /line 1: longer than 1024 characters/);
      const line = formatKeyLog([entries[0]!]);
      const many = join(dir, "many.log");
      writeFileSync(many, line.repeat(KEY_LOG_LIMITS.entries + 1));
      assert.throws(() => readKeyLog(many), /more than 10000 keys \(line 10001\)/);
      const huge = join(dir, "huge.log");
      writeFileSync(huge, `${"#".repeat(1000)}\n`.repeat(25_000));
      assert.throws(() => readKeyLog(huge), /larger than \d+ bytes, so not a key log/);
      assert.throws(() => readKeyLog(dir), /cannot read key log .*: it is a directory/);
      const full = join(dir, "full.log");
      writeFileSync(full, line.repeat(KEY_LOG_LIMITS.entries));
      assert.equal(readKeyLog(full).length, KEY_LOG_LIMITS.entries);
      assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("writes 0600 even over an existing world-readable file, and reads back", () => {
    const dir = mkdtempSync(join(tmpdir(), "pdm-keylog-"));
    try {
      const path = join(dir, "keys.log");
      writeFileSync(path, "old", { mode: 0o644 });
      assert.throws(() => writeKeyLog(path, entries), /already exists/);
      writeKeyLog(path, entries, { replace: true });
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.deepEqual(readKeyLog(path), entries);
      assert.ok(!readFileSync(path, "utf8").includes("old"));
      assert.throws(() => readKeyLog(join(dir, "missing")), /cannot read key log/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("IPv6 address text", () => {
  it("parses and prints RFC 5952 forms", () => {
    for (const [input, out] of [
      ["fd00::1", "fd00::1"],
      ["FE80:0:0:0:0:0:0:1", "fe80::1"],
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["::", "::"],
      ["::ffff:192.0.2.1", "::ffff:c000:201"],
      ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2:3:4:5:6"],
      ["fe80::1%eth0", "fe80::1"],
    ]) {
      assert.equal(formatIpv6Address(parseIpv6Address(input!)), out);
    }
    assert.throws(() => parseIpv6Address("10.0.0.1"), /not an IPv6 address/);
  });
});

describe("Global Pointer", () => {
  it("counts per source class from 1 and wraps modulo 2^32", () => {
    const gp = new GlobalPointers();
    const ll = parseIpv6Address("fe80::1");
    const g = parseIpv6Address("fd00::1");
    assert.deepEqual(
      [gp.next(ll), gp.next(g), gp.next(g), gp.next(ll), gp.next(parseIpv6Address("febf::1"))],
      [1, 1, 2, 2, 3],
    );
    assert.equal(addressClass(parseIpv6Address("fec0::1")), "global");
    const wrap = new GlobalPointers();
    (wrap as unknown as { counters: Record<string, number> }).counters.global = 0xffff_ffff;
    assert.equal(wrap.next(g), 0);
  });
});

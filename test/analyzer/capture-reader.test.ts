// The streaming capture reader on real files: both pcap timestamp precisions and
// byte orders, pcapng with several interfaces and resolutions, every supported link
// type, damaged files, and stdin-like streams delivered in tiny chunks.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import fc from "fast-check";
import { LINKTYPE, ipv6Offset, type CapturedPacket } from "../../pdm/index.ts";
import {
  bufferSource,
  fileSource,
  openPcapWriter,
  openPcapngWriter,
  readCapture,
  streamSource,
} from "../../analyzer/index.ts";

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "pdm-reader-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const frame = (n: number, size = 60): Uint8Array => Uint8Array.from({ length: size }, (_, i) => (n + i) & 0xff);
const T0 = 1_767_225_600_123_456_789n;

async function collect(bytes: Uint8Array | string) {
  const got: Array<{
    data: string;
    tsSec: number;
    tsNsec: number;
    linkType: number;
    interfaceId: number;
    number: number;
  }> = [];
  const source = typeof bytes === "string" ? await fileSource(bytes) : bufferSource(bytes);
  const summary = await readCapture(source, (p: CapturedPacket) => {
    got.push({
      data: Buffer.from(p.data).toString("hex"),
      tsSec: p.tsSec,
      tsNsec: p.tsNsec,
      linkType: p.linkType,
      interfaceId: p.interfaceId,
      number: p.number,
    });
  });
  await source.close();
  return { got, summary };
}

/** Byte-swap a little-endian pcap file into its big-endian twin (headers only; data untouched). */
function toBigEndianPcap(le: Buffer): Buffer {
  const be = Buffer.from(le);
  const swap32 = (at: number) => be.writeUInt32BE(le.readUInt32LE(at), at);
  const swap16 = (at: number) => be.writeUInt16BE(le.readUInt16LE(at), at);
  swap32(0);
  swap16(4);
  swap16(6);
  for (const at of [8, 12, 16, 20]) swap32(at);
  for (let at = 24; at < le.length;) {
    const len = le.readUInt32LE(at + 8);
    for (const o of [0, 4, 8, 12]) swap32(at + o);
    at += 16 + len;
  }
  return be;
}

describe("pcap", () => {
  for (const nanoseconds of [false, true]) {
    it(`reads ${nanoseconds ? "nanosecond" : "microsecond"} files in both byte orders`, async () => {
      const path = join(dir, `t-${nanoseconds}.pcap`);
      const w = openPcapWriter(path, LINKTYPE.ethernet, { nanoseconds });
      for (let i = 0; i < 1000; i += 1) w.write({ data: frame(i, 40 + (i % 200)), tsNs: T0 + BigInt(i) * 1_000_001n });
      w.close();
      const le = await collect(path);
      assert.equal(le.got.length, 1000);
      assert.equal(le.summary.stoppedEarly, undefined);
      assert.equal(le.got[0]!.tsSec, 1_767_225_600);
      assert.equal(le.got[0]!.tsNsec, nanoseconds ? 123_456_789 : 123_456_000);
      assert.equal(le.got[999]!.data, Buffer.from(frame(999, 40 + (999 % 200))).toString("hex"));
      const be = await collect(toBigEndianPcap(readFileSync(path)));
      assert.deepEqual(be.got, le.got);
    });
  }

  it("stops at a truncated record with a warning, keeping what came before", async () => {
    const path = join(dir, "trunc.pcap");
    const w = openPcapWriter(path, LINKTYPE.raw);
    for (let i = 0; i < 10; i += 1) w.write({ data: frame(i), tsNs: T0 });
    w.close();
    const bytes = readFileSync(path);
    const { got, summary } = await collect(bytes.subarray(0, bytes.length - 7));
    assert.equal(got.length, 9);
    assert.match(summary.stoppedEarly!.message, /truncated inside packet data \(53 of 60 bytes\)/);
    assert.equal(summary.stoppedEarly!.packet, 10);
    assert.equal(summary.stoppedEarly!.offset, 24 + 9 * 76);
  });

  it("stops at a corrupt record length", async () => {
    const path = join(dir, "corrupt.pcap");
    const w = openPcapWriter(path, LINKTYPE.raw);
    for (let i = 0; i < 3; i += 1) w.write({ data: frame(i), tsNs: T0 });
    w.close();
    const bytes = readFileSync(path);
    bytes.writeUInt32LE(0x7fff_ffff, 24 + 76 + 8);
    const { got, summary } = await collect(bytes);
    assert.equal(got.length, 1);
    assert.match(summary.stoppedEarly!.message, /corrupt record header/);
  });

  it("refuses a file that is not a capture, with a hint", async () => {
    await assert.rejects(collect(Buffer.from("hello world, not a pcap")), /not a pcap or pcapng file/);
    await assert.rejects(collect(Buffer.alloc(0)), /fewer than 4 bytes/);
  });
});

describe("pcapng", () => {
  it("reads several interfaces with their own link types and resolutions", async () => {
    const path = join(dir, "multi.pcapng");
    const w = openPcapngWriter(path, [
      { linkType: LINKTYPE.ethernet, tsResolutionPow10: 6 },
      { linkType: LINKTYPE.raw, tsResolutionPow10: 9 },
      { linkType: LINKTYPE.linuxSll2, tsResolutionPow10: 3 },
    ]);
    for (let i = 0; i < 300; i += 1)
      w.write({ data: frame(i, 33 + (i % 7)), tsNs: T0 + BigInt(i), interfaceId: i % 3 });
    w.close();
    const { got, summary } = await collect(path);
    assert.equal(summary.format, "pcapng");
    assert.equal(got.length, 300);
    assert.deepEqual(
      got.slice(0, 3).map((p) => [p.linkType, p.interfaceId, p.tsNsec]),
      [
        [LINKTYPE.ethernet, 0, 123_456_000],
        [LINKTYPE.raw, 1, 123_456_790],
        [LINKTYPE.linuxSll2, 2, 123_000_000],
      ],
    );
    assert.equal(got[4]!.data, Buffer.from(frame(4, 37)).toString("hex"), "odd lengths are unpadded");
  });

  it("reads a big-endian section", async () => {
    // Hand-made: SHB + IDB + one EPB, all big-endian.
    const be = (words: number[]): Buffer =>
      Buffer.concat(
        words.map((w) => {
          const b = Buffer.alloc(4);
          b.writeUInt32BE(w >>> 0);
          return b;
        }),
      );
    const shb = be([0x0a0d0d0a, 28, 0x1a2b3c4d, 0x00010000, 0xffffffff, 0xffffffff, 28]);
    const idb = be([1, 20, (LINKTYPE.raw << 16) >>> 0, 0x40000, 20]);
    const data = Buffer.from("600000000000", "hex");
    const epb = Buffer.concat([be([6, 40, 0, 0x0006_4000, 0x0000_0001, 6, 6]), data, Buffer.alloc(2), be([40])]);
    const { got } = await collect(Buffer.concat([shb, idb, epb]));
    assert.equal(got.length, 1);
    assert.equal(got[0]!.linkType, LINKTYPE.raw);
    assert.equal(got[0]!.data, "600000000000");
    assert.equal(got[0]!.tsSec, Math.floor((0x0006_4000 * 2 ** 32 + 1) / 1e6));
  });

  it("warns about a packet on an undeclared interface and goes on", async () => {
    const path = join(dir, "undeclared.pcapng");
    const w = openPcapngWriter(path, [{ linkType: LINKTYPE.raw }]);
    w.write({ data: frame(1), tsNs: T0 });
    w.write({ data: frame(2), tsNs: T0 });
    w.close();
    const bytes = readFileSync(path);
    const second = bytes.length - (12 + 20 + 60);
    bytes.writeUInt32LE(5, second + 8); // interface 5
    const { got, summary } = await collect(bytes);
    assert.equal(got.length, 1);
    assert.match(summary.warnings[0]!.message, /interface 5, which was never described/);
  });

  it("stops at a block whose trailing length disagrees", async () => {
    const path = join(dir, "badtrail.pcapng");
    const w = openPcapngWriter(path, [{ linkType: LINKTYPE.raw }]);
    w.write({ data: frame(1), tsNs: T0 });
    w.write({ data: frame(2), tsNs: T0 });
    w.close();
    const bytes = readFileSync(path);
    bytes.writeUInt32LE(999, bytes.length - 4);
    const { got, summary } = await collect(bytes);
    assert.equal(got.length, 1);
    assert.match(summary.stoppedEarly!.message, /trailing length 999 differs from leading 92/);
  });
});

describe("streams", () => {
  it("reads stdin-like input delivered in 1- to 7-byte chunks", async () => {
    const path = join(dir, "chunks.pcapng");
    const w = openPcapngWriter(path, [{ linkType: LINKTYPE.ethernet, tsResolutionPow10: 9 }]);
    for (let i = 0; i < 200; i += 1) w.write({ data: frame(i, 100), tsNs: T0 + BigInt(i) });
    w.close();
    const bytes = readFileSync(path);
    const chunks: Buffer[] = [];
    for (let at = 0, n = 1; at < bytes.length; at += n, n = (n % 7) + 1) chunks.push(bytes.subarray(at, at + n));
    const got: string[] = [];
    await readCapture(streamSource(Readable.from(chunks)), (p) => got.push(Buffer.from(p.data).toString("hex")));
    const direct = await collect(path);
    assert.deepEqual(
      got,
      direct.got.map((p) => p.data),
    );
  });
});

describe("link layers", () => {
  const ip = Buffer.from("60000000", "hex");
  it("finds IPv6 behind each supported header", () => {
    const eth = Buffer.concat([Buffer.alloc(12), Buffer.from("86dd", "hex"), ip]);
    const vlan2 = Buffer.concat([Buffer.alloc(12), Buffer.from("88a8000181000002" + "86dd", "hex"), ip]);
    const sll = Buffer.concat([Buffer.alloc(14), Buffer.from("86dd", "hex"), ip]);
    const sll2 = Buffer.concat([Buffer.from("86dd", "hex"), Buffer.alloc(18), ip]);
    const nullLe = Buffer.concat([Buffer.from("1e000000", "hex"), ip]);
    const nullBe = Buffer.concat([Buffer.from("00000018", "hex"), ip]);
    const loop = Buffer.concat([Buffer.from("00000018", "hex"), ip]);
    assert.equal(ipv6Offset(LINKTYPE.ethernet, eth, eth.length), 14);
    assert.equal(ipv6Offset(LINKTYPE.ethernet, vlan2, vlan2.length), 22);
    assert.equal(ipv6Offset(LINKTYPE.linuxSll, sll, sll.length), 16);
    assert.equal(ipv6Offset(LINKTYPE.linuxSll2, sll2, sll2.length), 20);
    assert.equal(ipv6Offset(LINKTYPE.null, nullLe, nullLe.length), 4);
    assert.equal(ipv6Offset(LINKTYPE.null, nullBe, nullBe.length), 4);
    assert.equal(ipv6Offset(LINKTYPE.loop, loop, loop.length), 4);
    assert.equal(ipv6Offset(LINKTYPE.raw, ip, ip.length), 0);
    assert.equal(ipv6Offset(LINKTYPE.ipv6, ip, ip.length), 0);
  });
  it("says -1 for IPv4, ARP and short frames", () => {
    const v4 = Buffer.concat([Buffer.alloc(12), Buffer.from("0800", "hex"), Buffer.from("45000000", "hex")]);
    assert.equal(ipv6Offset(LINKTYPE.ethernet, v4, v4.length), -1);
    assert.equal(ipv6Offset(LINKTYPE.ethernet, v4, 10), -1);
    assert.equal(ipv6Offset(LINKTYPE.raw, Buffer.from("45", "hex"), 1), -1);
    assert.equal(ipv6Offset(LINKTYPE.null, Buffer.from("02000000", "hex"), 4), -1);
  });
});

describe("fuzzing the reader", () => {
  it("random and mutated captures end in packets plus at most a warning, or a CaptureError", async () => {
    const path = join(dir, "seed.pcapng");
    const w = openPcapngWriter(path, [
      { linkType: LINKTYPE.ethernet, tsResolutionPow10: 9 },
      { linkType: LINKTYPE.raw },
    ]);
    for (let i = 0; i < 20; i += 1) w.write({ data: frame(i, 50 + i), tsNs: T0 + BigInt(i), interfaceId: i % 2 });
    w.close();
    const seedPcapng = readFileSync(path);
    const pcapPath = join(dir, "seed.pcap");
    const wp = openPcapWriter(pcapPath, LINKTYPE.ethernet, { nanoseconds: true });
    for (let i = 0; i < 20; i += 1) wp.write({ data: frame(i, 50 + i), tsNs: T0 });
    wp.close();
    const seedPcap = readFileSync(pcapPath);
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(seedPcapng, seedPcap),
        fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 6 }),
        fc.nat(),
        async (seed, flips, cut) => {
          const bytes = Buffer.from(seed);
          for (const [at, v] of flips) bytes[at % bytes.length] = v;
          const input = bytes.subarray(0, cut % (bytes.length + 1));
          try {
            const { summary } = await collect(input);
            assert.ok(summary.packets <= 20 + flips.length * 1000);
          } catch (e) {
            assert.equal((e as Error).name, "CaptureError", String(e));
          }
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe("pcapng nanosecond timestamps", () => {
  it("are exact across the whole 64-bit range (fast path equals BigInt arithmetic)", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "pdm-ns-")), "ns.pcapng");
    const stamps = [
      0n,
      1n,
      999_999_999n,
      1_000_000_000n,
      2n ** 32n - 1n,
      2n ** 32n,
      T0,
      2n ** 63n - 1n,
      18_446_744_073_709_551_615n,
    ];
    for (let i = 0; i < 200; i += 1) stamps.push(BigInt(Math.floor(Math.random() * 2 ** 53)) * 2048n + BigInt(i));
    const w = openPcapngWriter(path, [{ linkType: LINKTYPE.raw, tsResolutionPow10: 9 }]);
    for (const ts of stamps) w.write({ data: frame(1), tsNs: ts });
    w.close();
    const { got } = await collect(path);
    assert.deepEqual(
      got.map((p) => [p.tsSec, p.tsNsec]),
      stamps.map((ts) => [Number(ts / 1_000_000_000n), Number(ts % 1_000_000_000n)]),
    );
    rmSync(dirname(path), { recursive: true, force: true });
  });
});

// Damaged input: tampered protected options are counted and ignored, truncated
// files give the results up to the damage, malformed options are counted by kind.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { analyzeCapture, readCapture, type ByteSource } from "../../analyzer/index.ts";
import { spawnSync } from "node:child_process";

const dir = join(import.meta.dirname, "..", "..", "fixtures", "captures");
let tmp: string;
before(() => {
  tmp = mkdtempSync(join(tmpdir(), "pdm-damage-"));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("tampering", () => {
  it("counts exactly the tampered packets as auth failures and reports the rest", async () => {
    const original = readFileSync(join(dir, "v2-protected.pcapng"));
    const bytes = Buffer.from(original);
    // Every protected option sits in a header with Hdr Ext Len 4: 04 | 0f 22 | 20 00 ...
    const offsets: number[] = [];
    const marker = Buffer.from("040f2220", "hex");
    for (let i = bytes.indexOf(marker); i >= 0; i = bytes.indexOf(marker, i + 1)) offsets.push(i + 1);
    const clean = await analyzeCapture({
      input: join(dir, "v2-protected.pcapng"),
      keysPath: join(dir, "v2-protected.keys"),
    });
    assert.equal(offsets.length, clean.capture.packets, "one protected option per packet");
    const tampered = offsets.filter((_, i) => i % 10 === 3);
    tampered.forEach((at, i) => {
      bytes[at + 6 + (i % 30)]! ^= 1 << (i % 8); // a bit of ciphertext or tag
    });
    const path = join(tmp, "tampered.pcapng");
    writeFileSync(path, bytes);
    const r = await analyzeCapture({ input: path, keysPath: join(dir, "v2-protected.keys") });
    assert.equal(r.counters.authFail, tampered.length);
    const samples = r.flows.reduce((n, f) => n + (f.responseTimeNs?.count ?? 0), 0);
    const cleanSamples = clean.flows.reduce((n, f) => n + (f.responseTimeNs?.count ?? 0), 0);
    assert.ok(samples < cleanSamples && samples > cleanSamples * 0.6, `${samples} of ${cleanSamples}`);
    // What is reported is still right: no tampered value leaks into the figures.
    for (const f of r.flows) {
      const c = clean.flows.find((x) => x.id === f.id)!;
      assert.ok(f.serverDelayNs!.max <= c.serverDelayNs!.max && f.serverDelayNs!.min >= c.serverDelayNs!.min);
    }
  });
});

describe("truncation", () => {
  it("reports the flows up to the damage and says where it stopped", async () => {
    const bytes = readFileSync(join(dir, "rfc8250-udp.pcap"));
    const path = join(tmp, "cut.pcap");
    writeFileSync(path, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const r = await analyzeCapture({ input: path });
    assert.ok(r.capture.stoppedEarly, "a warning names the damage");
    assert.match(r.capture.stoppedEarly.message, /truncated/);
    assert.ok(r.capture.packets > 100 && r.capture.packets < 200);
    assert.equal(r.flows.length, 2);
    assert.ok(r.flows.every((f) => (f.responseTimeNs?.count ?? 0) > 10));
  });
});

describe("malformed options", () => {
  it("are counted by kind and the packet still belongs to its flow", async () => {
    const bytes = Buffer.from(readFileSync(join(dir, "v2-clear-mixed.pcapng")));
    let n = 0;
    for (
      let i = bytes.indexOf(Buffer.from("0f122000", "hex"));
      i >= 0;
      i = bytes.indexOf(Buffer.from("0f122000", "hex"), i + 1)
    ) {
      if (n++ % 20 === 0) bytes[i + 2] = 0x30; // version 3
    }
    const path = join(tmp, "malformed.pcapng");
    writeFileSync(path, bytes);
    const r = await analyzeCapture({ input: path });
    assert.equal(r.counters.malformed, Math.ceil(n / 20));
    assert.deepEqual(r.malformedByCode, { "bad-version": Math.ceil(n / 20) });
    // Offsets count from the frame's first byte, as Wireshark shows them: Ethernet 14 +
    // IPv6 40 + Next Header, Hdr Ext Len + Option Type, Opt Data Len = 58, in every frame.
    assert.deepEqual(
      new Set(r.examples.map((e) => e.message)),
      new Set(["pdm.version at offset 58: expected 2, found 3"]),
    );
    assert.equal(r.flows.length, 3);
  });
});

describe("read errors", () => {
  it("a source that fails mid-file: the packets before it, and the error named where it happened", async () => {
    const bytes = readFileSync(join(dir, "rfc8250-udp.pcap"));
    const failAt = Math.floor(bytes.length / 2);
    let at = 0;
    const failing: ByteSource = {
      size: bytes.length,
      async read(target, offset, length) {
        if (at >= failAt) throw Object.assign(new Error("EIO: i/o error, read"), { code: "EIO" });
        const n = Math.min(length, failAt - at, 4096);
        target.set(bytes.subarray(at, at + n), offset);
        at += n;
        return n;
      },
      async close() {},
    };
    let packets = 0;
    const summary = await readCapture(failing, () => (packets += 1));
    assert.ok(packets > 100, `${packets} packets before the error`);
    assert.equal(summary.packets, packets);
    assert.match(summary.stoppedEarly?.message ?? "", /^read error \(EIO\) at byte \d+$/);
    assert.equal(summary.warnings.length, 1, "the read error replaces the cut-off it caused");
  });

  it("pdm analyze on an unreadable file says so in one sentence", () => {
    const r = spawnSync(process.execPath, [join(dir, "..", "..", "bin", "pdm.js"), "analyze", "-r", "/proc/self/mem"], {
      encoding: "utf8",
    });
    assert.equal(r.status, 1);
    assert.equal(r.stderr, "pdm: cannot read the capture: EIO\n");
  });
});

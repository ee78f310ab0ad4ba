// A capture file made to exhaust the analyzer: a packet per block naming an
// interface never described, and more Interface Description Blocks than any real
// capture. Warnings are counted with a few examples, the interface table stops at
// its limit, and memory and output stay small whatever the file's size.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MAX_INTERFACES, WARNING_EXAMPLES, analyzeCapture } from "../../analyzer/index.ts";

const root = join(import.meta.dirname, "..", "..");

/** A little-endian pcapng block: type, length, body (padded to 4), length. */
function block(type: number, body: Buffer): Buffer {
  const padded = Buffer.concat([body, Buffer.alloc((4 - (body.length % 4)) % 4)]);
  const b = Buffer.alloc(12 + padded.length);
  b.writeUInt32LE(type, 0);
  b.writeUInt32LE(b.length, 4);
  padded.copy(b, 8);
  b.writeUInt32LE(b.length, b.length - 4);
  return b;
}

function sectionHeader(): Buffer {
  const body = Buffer.alloc(16);
  body.writeUInt32LE(0x1a2b3c4d, 0);
  body.writeUInt16LE(1, 4);
  body.writeBigInt64LE(-1n, 8);
  return block(0x0a0d0d0a, body);
}

function interfaceBlock(): Buffer {
  const body = Buffer.alloc(8);
  body.writeUInt16LE(101, 0); // LINKTYPE_RAW
  body.writeUInt32LE(0, 4);
  return block(1, body);
}

function enhancedPacket(iface: number): Buffer {
  const body = Buffer.alloc(20 + 4);
  body.writeUInt32LE(iface, 0);
  body.writeUInt32LE(4, 12);
  body.writeUInt32LE(4, 16);
  return block(6, body);
}

describe("hostile pcapng", () => {
  const dir = mkdtempSync(join(tmpdir(), "pdm-hostile-"));
  const packets = 300_000;
  const interfaces = MAX_INTERFACES + 1_000;
  let path: string;
  before(() => {
    const idb = interfaceBlock();
    const epb = enhancedPacket(7_000_000); // never described
    path = join(dir, "hostile.pcapng");
    writeFileSync(
      path,
      Buffer.concat([sectionHeader(), ...Array<Buffer>(interfaces).fill(idb), ...Array<Buffer>(packets).fill(epb)]),
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("counts every warning, lists a few of each kind, and reads on", async () => {
    const r = await analyzeCapture({ input: path });
    const byKind = (re: RegExp) => r.capture.warnings.filter((w) => re.test(w.message)).length;
    assert.equal(byKind(/never described/), WARNING_EXAMPLES);
    assert.equal(byKind(/more than 65536 interfaces/), WARNING_EXAMPLES);
    assert.equal(
      r.capture.warnings.length + (r.capture.warningsNotListed ?? 0),
      packets + 1_000,
      "every warning counted",
    );
    assert.equal(r.capture.stoppedEarly, undefined, "the read went to the end");
  });

  it("pdm analyze stays small in memory and in output", () => {
    for (const format of ["json", "table"]) {
      const res = spawnSync(process.execPath, [join(root, "bin", "pdm.js"), "analyze", "-r", path, "-f", format], {
        encoding: "utf8",
        env: { ...process.env, PDM_REPORT_PEAK_RSS: "1" },
      });
      assert.equal(res.status, 0, res.stderr);
      const peakKib = Number(/peak-rss-kib (\d+)/.exec(res.stderr)?.[1]);
      // Before the limits: one kept warning per packet (about 1.4 GB for a 32 MB file).
      assert.ok(peakKib < 200 * 1024, `peak RSS ${peakKib} KiB`);
      assert.ok(res.stdout.length < 8 * 1024, `${res.stdout.length} bytes of ${format}`);
      if (format === "json")
        assert.equal(JSON.parse(res.stdout).capture.warningsNotListed, packets + 1_000 - 2 * WARNING_EXAMPLES);
      else assert.match(res.stdout, /warning: 300,990 more warnings like those above, not listed/);
    }
  });
});

// Analysis on several threads (analyzer/parallel/): each worker keeps the
// conversations whose hash falls to it, and the merged result must equal the
// sequential one exactly, on clean, protected, malformed, tampered and truncated input.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { analyzeCapture, type AnalysisResult } from "../../analyzer/index.ts";

const dir = join(import.meta.dirname, "..", "..", "fixtures", "captures");
let tmp: string;
before(() => {
  tmp = mkdtempSync(join(tmpdir(), "pdm-parallel-"));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A copy of the protected capture with some options tampered, some malformed, and the end cut off. */
function damagedCapture(): string {
  const bytes = Buffer.from(readFileSync(join(dir, "v2-protected.pcapng")));
  const marker = Buffer.from("040f2220", "hex"); // Hdr Ext Len 4, PDM type, Opt Data Len 34, version 2
  let n = 0;
  for (let i = bytes.indexOf(marker); i >= 0; i = bytes.indexOf(marker, i + 1), n += 1) {
    if (n % 13 === 5) bytes[i + 10]! ^= 0x40; // ciphertext bit: auth failure
    if (n % 17 === 7) bytes[i + 2] = 0x21; // Opt Data Len 33: malformed
  }
  const path = join(tmp, "damaged.pcapng");
  writeFileSync(path, bytes.subarray(0, bytes.length - 300)); // truncated inside a block
  return path;
}

const cases: Array<{ name: string; input: () => string; keys?: string }> = [
  { name: "RFC 8250 (pcap)", input: () => join(dir, "rfc8250-udp.pcap") },
  { name: "PDMv2 clear, mixed traffic", input: () => join(dir, "v2-clear-mixed.pcapng") },
  {
    name: "PDMv2 protected, AES-128-GCM",
    input: () => join(dir, "v2-protected.pcapng"),
    keys: join(dir, "v2-protected.keys"),
  },
  {
    name: "PDMv2 protected, ChaCha20-Poly1305",
    input: () => join(dir, "v2-protected-chacha.pcap"),
    keys: join(dir, "v2-protected-chacha.keys"),
  },
  { name: "tampered, malformed and truncated", input: damagedCapture, keys: join(dir, "v2-protected.keys") },
];

describe("parallel analysis", () => {
  for (const c of cases) {
    it(`equals the sequential result: ${c.name}`, async () => {
      const input = c.input();
      const sequential = await analyzeCapture({ input, keysPath: c.keys, threads: 1 });
      assert.ok(sequential.flows.length >= 2, "several flows, so that the shards differ");
      for (const threads of [2, 3]) {
        const parallel = await analyzeCapture({ input, keysPath: c.keys, threads });
        assert.deepStrictEqual(parallel, sequential, `${threads} threads`);
      }
      if (c.name.startsWith("tampered")) {
        assert.ok(
          sequential.counters.authFail > 0 && sequential.counters.malformed > 0 && sequential.capture.stoppedEarly,
          "the damage is there",
        );
      }
    });
  }

  it("splits the flows: each shard has some, and together exactly all", async () => {
    const input = join(dir, "v2-protected.pcapng");
    const keysPath = join(dir, "v2-protected.keys");
    const all = await analyzeCapture({ input, keysPath, threads: 1 });
    const shards: AnalysisResult[] = [];
    for (let index = 0; index < 2; index += 1)
      shards.push(await analyzeCapture({ input, keysPath, shard: { index, count: 2 } }));
    const ids = shards.map((s) => s.flows.map((f) => f.id));
    assert.ok(
      ids.every((list) => list.length > 0 && list.length < all.flows.length),
      `flows per shard: ${ids.map((l) => l.length)}`,
    );
    assert.deepEqual([...ids.flat()].sort(), all.flows.map((f) => f.id).sort());
    assert.equal(shards[0]!.counters.packets + shards[1]!.counters.packets, all.counters.packets);
  });

  it("reads a named pipe once, in one thread, whatever --threads says", async () => {
    const { spawn, spawnSync } = await import("node:child_process");
    const fifo = join(tmp, "capture.fifo");
    assert.equal(spawnSync("mkfifo", [fifo]).status, 0, "mkfifo");
    const input = join(dir, "v2-protected.pcapng");
    const keysPath = join(dir, "v2-protected.keys");
    const writer = spawn("sh", ["-c", 'cat "$1" > "$2"', "sh", input, fifo], { stdio: "ignore" });
    const fromPipe = await analyzeCapture({ input: fifo, keysPath, threads: 2 });
    await new Promise((resolve) => (writer.exitCode !== null ? resolve(undefined) : writer.once("exit", resolve)));
    const fromFile = await analyzeCapture({ input, keysPath, threads: 1 });
    assert.deepStrictEqual({ ...fromPipe, input: "" }, { ...fromFile, input: "" });
  });

  it("reads stdin in one thread whatever --threads says", async () => {
    // "-" cannot be read twice; analyzeCapture must not start shards for it.
    const { spawnSync } = await import("node:child_process");
    const r = spawnSync(
      process.execPath,
      [join(import.meta.dirname, "..", "..", "bin", "pdm.js"), "analyze", "-r", "-", "-f", "json", "-j", "2"],
      {
        input: readFileSync(join(dir, "rfc8250-udp.pcap")),
        encoding: "utf8",
      },
    );
    assert.equal(r.status, 0, r.stderr);
    const fromStdin = JSON.parse(r.stdout) as { flows: unknown[] };
    const fromFile = await analyzeCapture({ input: join(dir, "rfc8250-udp.pcap"), threads: 1 });
    assert.equal(fromStdin.flows.length, fromFile.flows.length);
  });
});

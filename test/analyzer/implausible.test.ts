// A peer that writes nonsense into a field the decoder cannot question: one
// published tc-BPF stamper writes the host's uptime as DeltaTLS. Decoding is right,
// the figure is not: a response time longer than the flow had existed in the
// capture is counted as implausible, shown with an example, and kept out of the
// statistics unless the user asks for it.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  LINKTYPE,
  NEXT_HEADER_DEST_OPTS,
  encodeDeltaNs,
  encodeDestOptionsHeader,
  encodePdmOption,
} from "../../pdm/index.ts";
import { analyzeCapture, openPcapWriter } from "../../analyzer/index.ts";
import { ipv6Packet, udpHeader } from "../../fixtures/index.ts";

const root = join(import.meta.dirname, "..", "..");
const MS = 1e6;

/** One RFC 8250 packet: `sentNs` since the last one sent, `receivedNs` since the last one received. */
function stamped(
  from: "client" | "server",
  psnTp: number,
  psnLr: number,
  sinceSentNs: number,
  sinceReceivedNs: number,
): Uint8Array {
  const tls = encodeDeltaNs(sinceSentNs);
  const tlr = encodeDeltaNs(sinceReceivedNs);
  const option = encodePdmOption({
    layout: "rfc8250",
    psnTp,
    psnLr,
    deltaTls: tls.delta,
    scaleDtls: tls.scale,
    deltaTlr: tlr.delta,
    scaleDtlr: tlr.scale,
  });
  const [src, dst, sport, dport] =
    from === "client" ? ["fd00:1::10", "fd00:2::20", 40000, 7] : ["fd00:2::20", "fd00:1::10", 7, 40000];
  return ipv6Packet({
    src,
    dst,
    ext: [[NEXT_HEADER_DEST_OPTS, encodeDestOptionsHeader(17, option)]],
    proto: 17,
    upper: udpHeader(sport, dport),
  });
}

describe("implausible delays", () => {
  const dir = mkdtempSync(join(tmpdir(), "pdm-implausible-"));
  const path = join(dir, "uptime.pcap");
  const UPTIME_NS = 2_290e9;
  before(() => {
    // Ten exchanges 200 ms apart over 2 s: 10 ms server delay, 20 ms round trip. The
    // client's 5th and 8th packets carry the uptime as DeltaTLS instead of 200 ms.
    const w = openPcapWriter(path, LINKTYPE.raw);
    let t = 1_700_000_000e9;
    for (let i = 1; i <= 10; i += 1) {
      const sinceSent = i === 5 || i === 8 ? UPTIME_NS : i === 1 ? 0 : 200 * MS;
      w.write({ data: stamped("client", i, i === 1 ? 0 : i - 1, sinceSent, i === 1 ? 0 : 170 * MS), tsNs: BigInt(t) });
      w.write({ data: stamped("server", i, i, 10 * MS, 10 * MS), tsNs: BigInt(t + 20 * MS) });
      t += 200 * MS;
    }
    w.close();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("counts the uptime samples, names one, and keeps them out of the figures", async () => {
    const r = await analyzeCapture({ input: path });
    assert.equal(r.counters.implausible, 2);
    assert.equal(r.flows[0]!.counters.implausible, 2);
    const example = r.examples.find((e) => e.kind === "implausible");
    assert.ok(example, "an example names an implausible sample");
    assert.match(example.message, /response time 22\d\d\.\d{3} s on a flow seen for 0\.8\d\d s/);
    assert.equal(r.flows[0]!.responseTimeNs!.count, 7, "9 samples, 2 kept out");
    assert.ok(r.flows[0]!.responseTimeNs!.max < 1e9, `max ${r.flows[0]!.responseTimeNs!.max} ns`);
  });

  it("keeps them when asked, and says so", async () => {
    const r = await analyzeCapture({ input: path, keepImplausible: true });
    assert.equal(r.counters.implausible, 2);
    assert.equal(r.flows[0]!.responseTimeNs!.count, 9);
    assert.ok(
      Math.abs(r.flows[0]!.responseTimeNs!.max - UPTIME_NS) < UPTIME_NS * 1e-4,
      "the uptime, as decoded (16-bit mantissa)",
    );
    const table = spawnSync(
      process.execPath,
      [join(root, "bin", "pdm.js"), "analyze", "-r", path, "--keep-implausible"],
      { encoding: "utf8" },
    );
    assert.match(
      table.stdout,
      /2 +samples with a delay longer than their flow had been in the capture \(kept, as asked\)/,
    );
    const plain = spawnSync(process.execPath, [join(root, "bin", "pdm.js"), "analyze", "-r", path], {
      encoding: "utf8",
    });
    assert.match(plain.stdout, /not reported; --keep-implausible keeps them/);
    assert.match(plain.stdout, /e\.g\. packet 9: response time 22\d\d\.\d{3} s/);
  });
});

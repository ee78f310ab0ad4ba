// The analyzer against the bundled captures: every reported sample equals the
// delay the generator injected, within PDM's own encoding precision.
//
// Tolerance: each 16-bit (DELTA, SCALE) field truncates, so a decoded value v of a
// true interval x satisfies x(1 - 2^-15) < v <= x. Server delay and response time are
// single fields; the round-trip delay is their difference, so its error is bounded
// by 2^-15 (response time + server delay). No other error source exists: the
// figures do not use capture timestamps.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { analyzeCapture, compareWithTruth, readTruth } from "../../analyzer/index.ts";

const dir = join(import.meta.dirname, "..", "..", "fixtures", "captures");
const EPS = 2 ** -15;

const cases: Array<{ name: string; file: string; keys?: string; layouts?: { draft05?: boolean } }> = [
  { name: "rfc8250-udp", file: "rfc8250-udp.pcap" },
  { name: "v2-clear-mixed", file: "v2-clear-mixed.pcapng" },
  { name: "v2-protected", file: "v2-protected.pcapng", keys: "v2-protected.keys" },
  { name: "v2-protected-chacha", file: "v2-protected-chacha.pcap", keys: "v2-protected-chacha.keys" },
  // The later drafts' layouts (draft-layouts.md), and one capture holding several.
  { name: "v2-draft05", file: "v2-draft05.pcapng", layouts: { draft05: true } },
  { name: "v2-draft09", file: "v2-draft09.pcapng" },
  { name: "v2-draft15-protected", file: "v2-draft15-protected.pcapng", keys: "v2-draft15-protected.keys" },
  { name: "layouts-mixed", file: "layouts-mixed.pcapng", keys: "layouts-mixed.keys" },
];

describe("bundled captures vs injected delays", () => {
  for (const c of cases) {
    it(`${c.name}: every sample within encoding precision, losses counted`, async () => {
      const truth = readTruth(join(dir, `${c.name}.truth.json`));
      const result = await analyzeCapture({
        input: join(dir, c.file),
        keysPath: c.keys ? join(dir, c.keys) : undefined,
        layouts: c.layouts,
      });
      assert.equal(result.capture.stoppedEarly, undefined);
      assert.equal(
        result.counters.authFail + result.counters.malformed + result.counters.noKey + result.counters.replay,
        0,
      );
      assert.equal(result.flows.length, truth.flows.length);
      let checked = 0;
      for (const cmp of compareWithTruth(result, truth)) {
        assert.ok(cmp.report, `flow ${cmp.flow.client} -> ${cmp.flow.server} not found`);
        assert.equal(cmp.samplesMeasured, cmp.samplesInjected, "one sample per injected pair");
        assert.ok(cmp.samplesInjected > 20);
        assert.equal(
          cmp.report.counters.lost,
          cmp.flow.responsesLost,
          "PSNTP gaps = responses lost before the capture point",
        );
        const series = result.series.get(cmp.report.id)!;
        cmp.flow.samples.forEach((want, i) => {
          const sd = series.serverDelayNs[i]!;
          const rt = series.responseTimeNs[i]!;
          const rtd = series.roundTripDelayNs[i]!;
          assert.ok(
            sd <= want.serverDelayNs && sd > want.serverDelayNs * (1 - EPS) - 1e-9,
            `server delay ${sd} vs ${want.serverDelayNs}`,
          );
          assert.ok(
            rt <= want.responseTimeNs && rt > want.responseTimeNs * (1 - EPS),
            `response time ${rt} vs ${want.responseTimeNs}`,
          );
          assert.ok(
            Math.abs(rtd - want.roundTripDelayNs) <= EPS * (want.responseTimeNs + want.serverDelayNs),
            `round-trip delay ${rtd} vs ${want.roundTripDelayNs}`,
          );
          checked += 1;
        });
      }
      assert.ok(checked > 50);
    });
  }
});

describe("the later layouts told apart", () => {
  it("a capture of five layouts gives each flow its own, by type and length", async () => {
    const r = await analyzeCapture({
      input: join(dir, "layouts-mixed.pcapng"),
      keysPath: join(dir, "layouts-mixed.keys"),
    });
    const byPort = Object.fromEntries(r.flows.map((f) => [f.clientPort, f.layout]));
    assert.deepEqual(byPort, {
      41000: "rfc8250",
      41001: "v2-clear",
      41002: "v2-draft09",
      41003: "v2-draft15",
      41004: "v2-draft15-protected",
    });
  });

  it("-05's layout is -02's shape: without --draft05 it is read as -02 (as draft-layouts.md says), with wrong figures", async () => {
    const r = await analyzeCapture({ input: join(dir, "v2-draft05.pcapng") });
    assert.deepEqual(new Set(r.flows.map((f) => f.layout)), new Set(["v2-clear"]));
    assert.ok(r.counters.lost > 1000, `PSNTP read from the wrong bytes: ${r.counters.lost} "lost"`);
  });

  it("layout -15 protected without its keys, or with another capture's: counted, nothing reported", async () => {
    const file = join(dir, "v2-draft15-protected.pcapng");
    const none = await analyzeCapture({ input: file });
    assert.equal(none.counters.noKey, none.capture.packets);
    const wrong = await analyzeCapture({ input: file, keysPath: join(dir, "v2-protected.keys") });
    assert.equal(wrong.counters.authFail, wrong.capture.packets);
    assert.equal(
      wrong.flows.reduce((n, f) => n + (f.responseTimeNs?.count ?? 0), 0),
      0,
    );
  });
});

describe("protected captures without the right keys", () => {
  const file = join(dir, "v2-protected.pcapng");
  it("no key log: every protected option counted as no-key, no sample", async () => {
    const r = await analyzeCapture({ input: file });
    assert.equal(r.counters.noKey, r.capture.packets);
    assert.equal(
      r.flows.reduce((n, f) => n + (f.responseTimeNs?.count ?? 0), 0),
      0,
    );
  });
  it("another deployment's key log: every option an auth failure, no sample", async () => {
    const r = await analyzeCapture({ input: file, keysPath: join(dir, "v2-protected-chacha.keys") });
    assert.equal(r.counters.authFail, r.capture.packets);
    assert.equal(
      r.flows.reduce((n, f) => n + (f.responseTimeNs?.count ?? 0), 0),
      0,
    );
  });
});

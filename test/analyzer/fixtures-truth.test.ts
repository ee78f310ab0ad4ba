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

const cases = [
  { name: "rfc8250-udp", file: "rfc8250-udp.pcap" },
  { name: "v2-clear-mixed", file: "v2-clear-mixed.pcapng" },
  { name: "v2-protected", file: "v2-protected.pcapng", keys: "v2-protected.keys" },
  { name: "v2-protected-chacha", file: "v2-protected-chacha.pcap", keys: "v2-protected-chacha.keys" },
];

describe("bundled captures vs injected delays", () => {
  for (const c of cases) {
    it(`${c.name}: every sample within encoding precision, losses counted`, async () => {
      const truth = readTruth(join(dir, `${c.name}.truth.json`));
      const result = await analyzeCapture({
        input: join(dir, c.file),
        keysPath: c.keys ? join(dir, c.keys) : undefined,
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

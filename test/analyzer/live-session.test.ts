// A live capture's analysis in bounded memory (AnalysisSession with `live` limits):
// - idle flows end, and their reports stay (a flow that comes back is one row);
// - percentiles match the exact file analysis of the same packets within 0.5 %;
// - 100,000 short flows through a session that lists 1,000 and tracks 5,000 take a
//   few MB, keep the worst flows listed, and every packet in the totals;
// - past the tracking limit the longest idle flows end early, and say so.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import v8 from "node:v8";
import vm from "node:vm";
import { AnalysisSession, RELATIVE_ACCURACY, type CaptureSummary, type LiveLimits } from "../../analyzer/index.ts";
import { type PdmRecord, encodeDeltaNs } from "../../pdm/index.ts";

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

const START_SEC = 1_700_000_000;
const CAPTURE: CaptureSummary = { format: "ebpf", packets: 0, bytes: 0, stoppedEarly: undefined, warnings: [] };

/** UDP request/response flows between fd00:1::<client> and fd00:2::1 port 53, fed as records. */
class Traffic {
  private readonly addresses = new Uint8Array(32);
  private readonly record: PdmRecord = {
    timeNs: 0,
    addresses: this.addresses,
    srcOffset: 0,
    dstOffset: 16,
    sport: 0,
    dport: 0,
    proto: 17,
    pdm: undefined,
    pdmError: undefined,
    number: 0,
  };
  private readonly psn = new Map<number, number>();

  constructor(private readonly sessions: AnalysisSession[]) {
    this.addresses.set([0xfd, 0, 0, 1], 0);
    this.addresses.set([0xfd, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 16);
  }

  /**
   * One request of `client` at `atNs` and its answer, the server holding it
   * `serverNs`; the request names the previous answer, so each exchange after a
   * flow's first gives a sample with response time `responseNs`.
   */
  exchange(client: number, atNs: number, serverNs: number, responseNs: number): void {
    const k = this.psn.get(client) ?? 0;
    this.psn.set(client, k + 1);
    this.send(client, true, atNs, 10 + k, k === 0 ? 0 : 500 + k - 1, 0, k === 0 ? 0 : responseNs);
    this.send(client, false, atNs + serverNs, 500 + k, 10 + k, serverNs, 0);
  }

  private send(
    client: number,
    up: boolean,
    atNs: number,
    psnTp: number,
    psnLr: number,
    deltaTlrNs: number,
    deltaTlsNs: number,
  ): void {
    const tlr = encodeDeltaNs(Math.round(deltaTlrNs));
    const tls = encodeDeltaNs(Math.round(deltaTlsNs));
    this.sendEncoded(client, up, atNs, psnTp, psnLr, tlr.delta, tlr.scale, tls.delta, tls.scale);
  }

  forget(client: number): void {
    this.psn.delete(client);
  }

  private sendEncoded(
    client: number,
    up: boolean,
    atNs: number,
    psnTp: number,
    psnLr: number,
    deltaTlr: number,
    scaleDtlr: number,
    deltaTls: number,
    scaleDtls: number,
  ): void {
    const r = this.record;
    this.addresses[12] = client >>> 24;
    this.addresses[13] = (client >>> 16) & 0xff;
    this.addresses[14] = (client >>> 8) & 0xff;
    this.addresses[15] = client & 0xff;
    r.srcOffset = up ? 0 : 16;
    r.dstOffset = up ? 16 : 0;
    r.sport = up ? 40000 + (client % 20000) : 53;
    r.dport = up ? 53 : 40000 + (client % 20000);
    r.pdm = { layout: "rfc8250", scaleDtlr, scaleDtls, psnTp, psnLr, deltaTlr, deltaTls };
    r.timeNs = atNs;
    r.number += 1;
    for (const s of this.sessions) s.addRecord(r, START_SEC);
  }
}

const SEC = 1e9;
const limits = (l: Partial<LiveLimits>): LiveLimits => ({
  idleSec: 60,
  trackedFlows: 100_000,
  listedFlows: 10_000,
  ...l,
});

describe("live analysis", () => {
  it("ends idle flows, keeps their reports, and joins a flow that comes back", () => {
    const session = new AnalysisSession({ live: limits({ idleSec: 10 }) });
    const traffic = new Traffic([session]);
    for (let i = 0; i < 5; i += 1) traffic.exchange(1, i * SEC, 1e6, 3e6); // 4 samples
    for (let i = 0; i < 30; i += 1) traffic.exchange(2, i * SEC, 2e6, 5e6); // 29 samples, busy until 29 s
    assert.equal(session.endIdle(START_SEC + 12), 0, "client 1 was last seen at 4 s: 8 s idle");
    assert.equal(session.endIdle(START_SEC + 15), 1, "at 15 s it has been idle 11 s");
    let result = session.result("live", CAPTURE);
    assert.equal(result.live!.trackedFlows, 1);
    assert.equal(result.live!.endedIdle, 1);
    assert.equal(result.flows.length, 2, "the ended flow is still reported");

    // Client 1 again (a new conversation: its pairing state is gone), then both idle.
    traffic.forget(1);
    for (let i = 40; i < 43; i += 1) traffic.exchange(1, i * SEC, 1e6, 3e6); // 2 more samples
    result = session.result("live", CAPTURE);
    const one = result.flows.filter((f) => f.client === "fd00:1::1");
    assert.equal(one.length, 1, "one row for the flow, ended or tracked");
    assert.deepEqual(one[0]!.packets, { clientToServer: 8, serverToClient: 8 });
    assert.equal(one[0]!.responseTimeNs!.count, 6);
    assert.equal(one[0]!.firstSec, START_SEC);
    assert.ok(
      Math.abs(one[0]!.lastSec - (START_SEC + 42.001)) < 1e-6,
      `last answer at 42.001 s: ${one[0]!.lastSec - START_SEC}`,
    );
    assert.equal(session.endIdle(START_SEC + 100), 2);
    result = session.result("live", CAPTURE);
    assert.equal(result.flows.length, 2);
    assert.equal(
      result.flows.find((f) => f.client === "fd00:1::1")!.responseTimeNs!.count,
      6,
      "merged again once ended",
    );
    assert.equal(result.counters.pdmPackets, 2 * (5 + 30 + 3), "every packet in the totals");
  });

  it("reports the percentiles of the exact analysis within 0.5 %", () => {
    const live = new AnalysisSession({ live: limits({}) });
    const exact = new AnalysisSession();
    const traffic = new Traffic([live, exact]);
    let seed = 3;
    const random = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    for (let i = 0; i < 3000; i += 1) {
      const client = i % 7;
      const server = 1e5 * (1 + 50 * random() ** 3);
      traffic.exchange(client, i * 1e6, server, server + 2e6 * (1 + random()));
    }
    const got = live.result("live", CAPTURE);
    const want = exact.result("file", CAPTURE);
    assert.equal(got.flows.length, 7);
    for (const w of want.flows) {
      const g = got.flows.find((f) => f.id === w.id)!;
      for (const metric of ["serverDelayNs", "roundTripDelayNs", "responseTimeNs"] as const) {
        const [gs, ws] = [g[metric]!, w[metric]!];
        assert.deepEqual([gs.count, gs.min, gs.max], [ws.count, ws.min, ws.max]);
        for (const p of ["p50", "p90", "p99"] as const) {
          assert.ok(Math.abs(gs[p] - ws[p]) <= RELATIVE_ACCURACY * ws[p], `${metric} ${p}: ${gs[p]} vs ${ws[p]}`);
        }
      }
    }
  });

  it("holds 100,000 short flows in a few MB, the worst of them listed, every packet counted", () => {
    const FLOWS = 100_000;
    const session = new AnalysisSession({ live: limits({ idleSec: 1, trackedFlows: 5_000, listedFlows: 1_000 }) });
    const traffic = new Traffic([session]);
    gc();
    const before = process.memoryUsage();
    let peak = 0;
    // 2,000 new flows a simulated second, 4 exchanges each; every 50th flow's server is slow.
    for (let client = 0; client < FLOWS; client += 1) {
      const atNs = (client / 2000) * SEC;
      const serverNs = client % 50 === 0 ? 50e6 + client : 1e6;
      for (let k = 0; k < 4; k += 1) traffic.exchange(client, atNs + k * 1e6, serverNs, serverNs + 1e6);
      if (client % 2000 === 1999) {
        session.endIdle(START_SEC + atNs / SEC); // what pdm capture does every second
        if (client % 20_000 === 19_999) {
          gc();
          const now = process.memoryUsage();
          peak = Math.max(peak, now.heapUsed + now.arrayBuffers - (before.heapUsed + before.arrayBuffers));
        }
      }
    }
    const result = session.result("live", CAPTURE);
    const state = result.live!;
    assert.ok(peak < 32 * 1024 * 1024, `heap grew ${(peak / 2 ** 20).toFixed(1)} MB`);
    assert.ok(state.trackedFlows <= 5_000, `${state.trackedFlows} tracked`);
    assert.equal(state.endedEarly, 0, "idle expiry kept the table under its limit");
    assert.equal(result.flows.length + state.notListed, FLOWS, "every flow listed or counted as not listed");
    assert.ok(result.flows.length <= 1_000 + state.trackedFlows);
    assert.equal(result.counters.pdmPackets, FLOWS * 8, "every packet in the totals");
    // The 2,000 slow flows are the worst: the 1,000 listed ended flows are all slow ones.
    const slow = result.flows.filter((f) => f.serverDelayNs!.p50 >= 50e6).length;
    assert.ok(slow >= 1_000, `${slow} slow flows listed`);
    assert.ok(result.flows[0]!.serverDelayNs!.p50 >= 50e6, "worst first");
  });

  it("past the tracking limit, ends the longest idle flows early and counts them", () => {
    const session = new AnalysisSession({ live: limits({ idleSec: 3600, trackedFlows: 1_000, listedFlows: 10_000 }) });
    const traffic = new Traffic([session]);
    for (let client = 0; client < 5_000; client += 1) traffic.exchange(client, client * 1e6, 1e6, 2e6);
    const result = session.result("live", CAPTURE);
    assert.ok(result.live!.trackedFlows <= 1_000, `${result.live!.trackedFlows} tracked`);
    assert.ok(result.live!.endedEarly >= 4_000, `${result.live!.endedEarly} ended early`);
    assert.equal(result.flows.length, 5_000, "all listed: under the list limit");
    // The most recent flows are the ones still tracked.
    const tracked = new Set(session.table.conversations.map((c) => c.up.tuple.src[15]! | (c.up.tuple.src[14]! << 8)));
    assert.ok(tracked.has(4_999) && !tracked.has(0));
  });
});

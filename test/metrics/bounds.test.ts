// The metrics' cardinality bounds (metrics.md 2), without a Prometheus: peer prefixes
// by length and by name, the top-N with its margin and hysteresis, the cap on label
// sets with the overflow counted, the TTL, and counters fed from running totals.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { FleetMetrics, PeerPrefixes, TopPrefixes } from "../../metrics/index.ts";
import { parseIpv6Address, UsageError } from "../../pdm/index.ts";

const addr = parseIpv6Address;

/** The value of one series in the exposition text, or undefined when it is not there. */
function value(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : undefined;
}

describe("peer prefixes", () => {
  it("groups peers by /48 (or the length asked), never naming a full address", () => {
    const p = new PeerPrefixes();
    assert.equal(p.of(addr("2001:db8:1:2:3:4:5:6")), "2001:db8:1::/48");
    assert.equal(new PeerPrefixes(56).of(addr("2001:db8:1:2ff::9")), "2001:db8:1:200::/56");
    assert.equal(new PeerPrefixes(0).of(addr("fd00::1")), "::/0");
  });
  it("names a prefix from the CIDR map, first match first", () => {
    const p = new PeerPrefixes(48, [
      { name: "dc1", prefix: "fd00:1::/32" },
      { name: "lab", prefix: "fd00::/8" },
    ]);
    assert.equal(p.of(addr("fd00:1:2::7")), "dc1");
    assert.equal(p.of(addr("fd99::7")), "lab");
    assert.equal(p.of(addr("2001:db8::1")), "2001:db8::/48");
  });
  it("refuses a bad map: a prefix that is none, a name that is other or too odd", () => {
    assert.throws(() => new PeerPrefixes(48, [{ name: "x", prefix: "fd00::/129" }]), UsageError);
    assert.throws(() => new PeerPrefixes(48, [{ name: "other", prefix: "fd00::/8" }]), UsageError);
    assert.throws(() => new PeerPrefixes(48, [{ name: "a b", prefix: "fd00::/8" }]), UsageError);
    assert.throws(() => new PeerPrefixes(129), UsageError);
  });
});

describe("top-N peer prefixes", () => {
  it("lets the busiest in while there is room, then a newcomer only past the margin, and a member out only after K intervals", () => {
    const top = new TopPrefixes({ n: 2, windowIntervals: 1, margin: 0.5, leaveAfter: 2 });
    const interval = (counts: Record<string, number>): void => {
      for (const [p, c] of Object.entries(counts)) top.count(p, c);
      top.endInterval();
    };
    interval({ a: 100, b: 90, c: 10 });
    assert.deepEqual(top.memberList.sort(), ["a", "b"]);
    // c beats b, but not by 50 %: nothing changes (no flapping at the edge)
    interval({ a: 100, b: 90, c: 120 });
    assert.deepEqual(top.memberList.sort(), ["a", "b"]);
    // c beats b by more than 50 %: c replaces the weakest member
    interval({ a: 100, b: 90, c: 200 });
    assert.deepEqual(top.memberList.sort(), ["a", "c"]);
    // a falls out of the top 2 for one interval: still a member; for a second: gone
    const t2 = new TopPrefixes({ n: 1, windowIntervals: 1, margin: 10, leaveAfter: 2 });
    t2.count("x", 5);
    t2.endInterval();
    assert.deepEqual(t2.memberList, ["x"]);
    t2.count("x", 5);
    t2.count("y", 6); // ahead of x, but not by the margin: x stays
    t2.endInterval();
    assert.deepEqual(t2.memberList, ["x"], "one interval outside the top N");
    t2.count("x", 5);
    t2.count("y", 6);
    t2.endInterval();
    assert.deepEqual(t2.memberList, ["y"], "two intervals outside: x leaves, and the busiest takes the room");
    t2.count("z", 100);
    t2.endInterval();
    assert.deepEqual(t2.memberList, ["z"], "an idle member is beaten by any newcomer");
  });
  it("counts at most maxCandidates distinct prefixes an interval", () => {
    const top = new TopPrefixes({ n: 3, maxCandidates: 100 });
    for (let i = 0; i < 100_000; i++) top.count(`p${i}`);
    top.endInterval();
    assert.equal(top.memberList.length, 3);
    assert.ok(
      top.memberList.every((p) => Number(p.slice(1)) < 100),
      "only the first 100 were ranked",
    );
  });
});

describe("fleet metrics", () => {
  const base = { version: "0.1.0", layout: "test", intervalMs: 1000 };

  it("folds every prefix outside the top N into other, and a label set past the cap too, counting it", async () => {
    const t0 = 1_000_000;
    const m = new FleetMetrics({ ...base, topPrefixes: { n: 2, windowIntervals: 1 }, maxLabelSets: 3 }, t0);
    const flows = ["2001:db8:1::1", "2001:db8:2::1", "2001:db8:3::1"].map((a) => m.flow(addr(a), 17, 7000));
    // Before any interval ended nobody is in the top N: everything is "other".
    m.packet(flows[0]!, "rx");
    m.sample(flows[0]!, 1e6, 2e6, 3e6);
    let text = await m.render();
    assert.equal(value(text, 'pdm_server_delay_seconds_count{pdm_peer_prefix="other",network_transport="udp"}'), 1);
    for (let i = 0; i < 30; i++) m.packet(flows[0]!, "rx");
    for (let i = 0; i < 20; i++) m.packet(flows[1]!, "tx");
    m.packet(flows[2]!, "rx");
    m.tick(t0 + 1000);
    assert.deepEqual(m.topPrefixes.sort(), ["2001:db8:1::/48", "2001:db8:2::/48"]);
    m.sample(flows[0]!, 1e6, 2e6, 3e6);
    m.sample(flows[1]!, 4e6, 5e6, 9e6);
    m.sample(flows[2]!, 7e6, 1e6, 8e6); // not in the top 2: other
    // A fourth label set (TCP to the first prefix) is past the cap of 3: folded and counted.
    m.sample(m.flow(addr("2001:db8:1::9"), 6, 443), 1e6, 1e6, 2e6);
    text = await m.render();
    const count = (prefix: string, transport: string): number | undefined =>
      value(text, `pdm_server_delay_seconds_count{pdm_peer_prefix="${prefix}",network_transport="${transport}"}`);
    assert.equal(count("2001:db8:1::/48", "udp"), 1);
    assert.equal(count("2001:db8:2::/48", "udp"), 1);
    assert.equal(count("other", "udp"), 2);
    assert.equal(count("2001:db8:1::/48", "tcp"), undefined);
    assert.equal(count("other", "tcp"), 1);
    assert.equal(value(text, 'pdm_series_overflow_total{metric="pdm_server_delay_seconds"}'), 1);
    assert.equal(value(text, 'pdm_packets_total{direction="rx"}'), 32);
    assert.equal(value(text, 'pdm_packets_total{direction="tx"}'), 20);
    assert.equal(
      value(text, 'pdm_server_delay_seconds_sum{pdm_peer_prefix="2001:db8:2::/48",network_transport="udp"}'),
      0.004,
    );
  });

  it("removes a label set idle past the TTL, and starts it again when samples come back", async () => {
    const t0 = 5_000_000;
    const m = new FleetMetrics({ ...base, ttlMs: 10_000 }, t0);
    const f = m.flow(addr("fd00::1"), 6, 443);
    m.sample(f, 1e6, 1e6, 2e6);
    m.tick(t0 + 9_000);
    assert.equal(m.labelSetCount, 1);
    m.tick(t0 + 10_000);
    assert.equal(m.labelSetCount, 0);
    assert.doesNotMatch(await m.render(), /pdm_server_delay_seconds_count\{/);
    m.sample(f, 1e6, 1e6, 2e6);
    assert.match(
      await m.render(),
      /pdm_server_delay_seconds_count\{pdm_peer_prefix="other",network_transport="tcp"\} 1/,
    );
  });

  it("exports running totals as counters by their increase, a restarted source counting anew", async () => {
    const m = new FleetMetrics(base);
    const text = async (): Promise<string> => m.render();
    assert.equal(value(await text(), 'pdm_anomalies_total{reason="auth_fail"}'), 0, "every reason from the start");
    m.setAnomalyTotals({ auth_fail: 5, replay: 1 });
    m.setAnomalyTotals({ auth_fail: 7 });
    m.setAnomalyTotals({ auth_fail: 2 }); // the source restarted: 2 new
    const t = await text();
    assert.equal(value(t, 'pdm_anomalies_total{reason="auth_fail"}'), 9);
    assert.equal(value(t, 'pdm_anomalies_total{reason="replay"}'), 1);
    m.setEventsLostTotal(3);
    m.setEventsLostTotal(4);
    assert.equal(value(await text(), "pdm_events_lost_total"), 4);
    assert.equal(value(await text(), 'pdm_build_info{version="0.1.0",layout="test"}'), 1);
  });

  it("labels server_port only from its allow-list", async () => {
    const m = new FleetMetrics({ ...base, serverPorts: [443] });
    m.sample(m.flow(addr("fd00::1"), 6, 443), 1e6, 1e6, 2e6);
    m.sample(m.flow(addr("fd00::1"), 6, 51234), 1e6, 1e6, 2e6);
    const t = await m.render();
    assert.match(
      t,
      /pdm_response_time_seconds_count\{pdm_peer_prefix="other",network_transport="tcp",server_port="443"\} 1/,
    );
    assert.match(
      t,
      /pdm_response_time_seconds_count\{pdm_peer_prefix="other",network_transport="tcp",server_port="other"\} 1/,
    );
  });

  it("stays bounded with a million distinct peers: label sets within the cap, the ranking within its candidates", async () => {
    const m = new FleetMetrics({ ...base, intervalMs: 10_000 }, 0);
    const a = new Uint8Array(16);
    a[0] = 0x20;
    for (let i = 0; i < 1_000_000; i++) {
      a[2] = (i >>> 16) & 0xff;
      a[3] = (i >>> 8) & 0xff;
      a[4] = i & 0xff;
      const f = m.flow(a, i % 3 ? 17 : 6, 443);
      m.packet(f, "rx");
      m.sample(f, 1e6, 1e6, 2e6);
      if (i % 100_000 === 99_999) m.tick(((i + 1) / 100_000) * 10_000);
    }
    assert.ok(m.labelSetCount <= 64 + 3, `${m.labelSetCount} label sets`);
    assert.ok(m.rankedPrefixCount <= 6 * 10_000 + 10_000, `${m.rankedPrefixCount} prefixes ranked`);
    assert.ok(m.topPrefixes.length <= 10);
    const text = await m.render();
    assert.ok(text.length < 200_000, `${text.length} bytes of exposition`);
  });
});

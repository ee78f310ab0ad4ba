// timing-sensitive: run last and alone (scripts/test.sh), as it measures injected delays back.
// The data path on real interfaces: two host namespaces joined through a router
// namespace that delays every frame by 5 ms each way (a user-space delay bridge:
// this kernel is built without sch_netem), PDM attached on both hosts with `pdm attach`, real
// applications (a UDP request/response service, ping, iperf3) and a capture taken
// with `pdm capture`. The analyzer must find the delays that were injected.
//
// Tolerances, and why:
// - round-trip delay = the router's delay (5 ms each way) + the two stacks' time
//   between tc and the sockets + the bridge's lateness (it waits from the capture
//   timestamp, spinning out the last millisecond): [10 ms, 10 ms + 2 ms].
// - server delay = the responder's own hold time (it measures it) + the receiving and
//   sending stack: at least the hold, at most 1.5 ms more.
// - the encoding itself truncates to 16 significant bits (< 0.01 %).

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { acquireTimingLock, releaseTimingLock } from "../helpers/timing-lock.ts";
import { datapathSkipReason, PDM_BIN, ROOT, Topology } from "../../lab/index.ts";
import { fileSource, readCapture } from "../../analyzer/index.ts";
import { ipv6Offset, parseIpv6, formatIpv6Address, type AnyPdmOption as PdmOption } from "../../pdm/index.ts";

const skip = datapathSkipReason();
const UDP_PEER = join(ROOT, "test", "helpers", "udp-peer.mjs");
const TCP_PEER = join(ROOT, "test", "helpers", "tcp-peer.mjs");

/** Sends `bytes` over TCP from a to b; returns what b's sink received. */
async function tcpBulk(topo: Topology, port: number, bytes: number): Promise<number> {
  const sink = topo.spawn(topo.b, [process.execPath, TCP_PEER, "sink", String(port)]);
  await sink.waitFor(/ready/);
  const send = topo.exec(topo.a, [process.execPath, TCP_PEER, "send", topo.b.addr, String(port), String(bytes)]);
  assert.equal(send.code, 0, send.stderr);
  await sink.waitFor(/received/);
  return Number(/received (\d+)/.exec(sink.output().stdout)![1]);
}
const MS = 1e6;
/** Upper bound of a measured round trip through the two 5 ms bridges (see the UDP check). */
const RTD_MAX = 13 * MS;

interface FlowJson {
  transport: string;
  client: string;
  server: string;
  serverPort: number;
  pdmPackets: number;
  serverDelayNs?: { count: number; p50: number; min: number; max: number };
  roundTripDelayNs?: { count: number; p50: number; min: number; max: number };
  responseTimeNs?: { count: number; p50: number };
  counters: { lost: number; malformed: number; reordered: number };
}

function analyzeJson(topo: Topology, file: string): { flows: FlowJson[]; counters: Record<string, number> } {
  const r = topo.exec(topo.a, [process.execPath, PDM_BIN, "analyze", "-r", file, "-f", "json"]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Every PDM packet of a capture: source address, frame length, option. */
async function pdmPackets(
  file: string,
): Promise<
  Array<{ src: string; dst: string; length: number; sport: number; dport: number; proto: number; pdm: PdmOption }>
> {
  const out: Awaited<ReturnType<typeof pdmPackets>> = [];
  const source = await fileSource(file);
  await readCapture(source, (p) => {
    const at = ipv6Offset(p.linkType, p.data, p.data.length);
    if (at < 0) return;
    const parsed = parseIpv6(p.data, at);
    if (!parsed.ok || !parsed.value.pdm) return;
    const v = parsed.value;
    out.push({
      src: formatIpv6Address(p.data.subarray(v.srcOffset, v.srcOffset + 16)),
      dst: formatIpv6Address(p.data.subarray(v.dstOffset, v.dstOffset + 16)),
      length: p.originalLength,
      sport: v.sport,
      dport: v.dport,
      proto: v.protocol,
      pdm: v.pdm!,
    });
  });
  await source.close();
  return out;
}

describe("data path between two namespaces", { skip, concurrency: false }, () => {
  let dir: string;
  before(async () => {
    await acquireTimingLock();
    dir = mkdtempSync(join(tmpdir(), "pdm-e2e-"));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    releaseTimingLock();
  });

  it("RFC 8250 on UDP, ICMPv6 echo and TCP: injected delays come back, applications unaffected", async () => {
    const topo = new Topology({ router: { delayMs: 5 } });
    const { a, b } = topo;
    try {
      await topo.start();
      for (const h of [a, b]) {
        const r = topo.pdm(h, ["attach", "-i", h.ifname, "--layout", "v1"]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /attached to/);
      }
      const file = join(dir, "rfc8250.pcapng");
      const capture = topo.spawn(b, [process.execPath, PDM_BIN, "capture", "-i", b.ifname, "-w", file, "-q"]);
      const events = topo.spawn(a, [
        process.execPath,
        PDM_BIN,
        "capture",
        "-i",
        a.ifname,
        "--source",
        "ebpf",
        "-f",
        "json",
      ]);
      await capture.waitFor(/capturing on|^$/m).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 1500)); // both captures open
      const server = topo.spawn(b, [process.execPath, UDP_PEER, "serve", "7000", "20"]);
      await server.waitFor(/ready/);
      const ask = topo.exec(a, [process.execPath, UDP_PEER, "ask", b.addr, "7000", "30", "5"]);
      const asked = JSON.parse(ask.stdout) as { sent: number; answered: number };
      assert.deepEqual([asked.sent, asked.answered], [30, 30], "every request answered with stamping on");
      const ping = topo.exec(a, ["ping", "-6", "-c", "10", "-i", "0.05", "-q", b.addr]);
      assert.match(ping.stdout, / 0% packet loss/);
      assert.equal(await tcpBulk(topo, 5201, 4_000_000), 4_000_000, "TCP delivers every byte with stamping on");
      await new Promise((r) => setTimeout(r, 300));
      for (const c of [capture, events]) c.child.kill("SIGINT");
      assert.equal(await capture.exited(60_000), 0, capture.output().stderr);
      assert.equal(await events.exited(60_000), 0, events.output().stderr);
      const held = server
        .output()
        .stdout.split("\n")
        .filter((l) => l.startsWith("held"))
        .map((l) => Number(l.split(" ")[1]));

      const result = analyzeJson(topo, file);
      assert.equal(result.counters.malformed, 0);
      const udp = result.flows.find((f) => f.transport === "udp" && f.serverPort === 7000);
      assert.ok(udp, "UDP flow found");
      assert.equal(udp.client, a.addr);
      assert.ok(udp.serverDelayNs!.count >= 25, `UDP samples: ${udp.serverDelayNs!.count}`);
      const hold = median(held);
      assert.ok(hold >= 20 * MS, `responder held ${hold} ns`);
      const sd = udp.serverDelayNs!.p50;
      // Above the hold the responder measured itself by what the stacks add (its wake-up
      // and send): usually under 1 ms, up to 4 ms when this shared VM slows down. How slow
      // it is shows in the responder's own 20 ms timer (held 28 ms in one CI run, when
      // the stacks added 7.4 ms): the stacks may be late by as much again.
      const slack = 5 * MS + Math.max(0, hold - 20 * MS);
      assert.ok(sd >= hold && sd <= hold + slack, `server delay p50 ${sd} ns vs responder hold ${hold} ns`);
      const rtd = udp.roundTripDelayNs!.p50;
      // Never below what the bridges inject; above it by what a user-space bridge loses to
      // scheduling on this shared 2-core VM (usually 0.1 ms, once 2.3 ms in a CI run).
      assert.ok(rtd >= 10 * MS && rtd <= RTD_MAX, `round-trip delay p50 ${rtd} ns, injected 10 ms`);
      assert.equal(udp.counters.lost, 0, "PSNTP continuous");

      const icmp = result.flows.find((f) => f.transport === "icmpv6");
      assert.ok(icmp && icmp.roundTripDelayNs, "ICMPv6 echo flow with samples");
      assert.ok(icmp.roundTripDelayNs.count >= 8, `echo samples: ${icmp.roundTripDelayNs.count}`);
      assert.ok(
        icmp.roundTripDelayNs.p50 >= 10 * MS && icmp.roundTripDelayNs.p50 <= RTD_MAX,
        `echo round trip ${icmp.roundTripDelayNs.p50}`,
      );
      assert.ok(icmp.serverDelayNs!.p50 < 1 * MS, "the kernel answers echo at once");

      const tcp = result.flows.find((f) => f.transport === "tcp" && f.serverPort === 5201 && f.pdmPackets > 100);
      assert.ok(tcp, "TCP bulk flow stamped");

      // The eBPF records on host a describe the same packets: the same UDP figures.
      const live = JSON.parse(events.output().stdout) as { flows: FlowJson[] };
      const liveUdp = live.flows.find((f) => f.transport === "udp" && f.serverPort === 7000);
      assert.ok(liveUdp?.serverDelayNs, `UDP flow in the eBPF records: ${events.output().stdout.slice(0, 400)}`);
      assert.ok(
        Math.abs(liveUdp.serverDelayNs.p50 - sd) <= 0.01 * sd,
        `eBPF ${liveUdp.serverDelayNs.p50} vs capture ${sd}`,
      );
      assert.ok(Math.abs(liveUdp.roundTripDelayNs!.p50 - rtd) <= 0.02 * rtd);

      // PSNLR echoes the peer: every packet b sends on the UDP flow names a PSNTP a sent.
      const packets = await pdmPackets(file);
      const fromA = new Set(
        packets.filter((p) => p.src === a.addr && p.proto === 17).map((p) => (p.pdm as { psnTp: number }).psnTp),
      );
      const fromB = packets.filter((p) => p.src === b.addr && p.proto === 17);
      assert.ok(fromB.length >= 30);
      for (const p of fromB)
        assert.ok(fromA.has((p.pdm as { psnLr: number }).psnLr), "PSNLR names a packet the peer sent");

      const status = topo.pdm(a, ["status", "-i", a.ifname, "--json"]);
      assert.equal(status.code, 0, status.stderr);
      const [st] = JSON.parse(status.stdout) as Array<{
        counters: Record<string, number>;
        flows: Array<{ remotePort: number; txPackets: number; rxPackets: number }>;
      }>;
      assert.ok(st!.counters.stamped! > 100 && st!.counters.read! > 30, JSON.stringify(st!.counters));
      assert.equal(st!.counters.malformed, 0);
      assert.ok(st!.flows.some((f) => f.remotePort === 7000 && f.txPackets === 30 && f.rxPackets === 30));

      for (const h of [a, b]) {
        const r = topo.pdm(h, ["detach", "-i", h.ifname]);
        assert.equal(r.code, 0, r.stderr);
        assert.doesNotMatch(topo.exec(h, ["tc", "qdisc", "show", "dev", h.ifname]).stdout, /clsact/);
        assert.doesNotMatch(topo.ip(h, ["-6", "route", "show", "dev", h.ifname]), /mtu/);
      }
    } finally {
      topo.cleanup();
    }
  });

  it("PDMv2 clear: Global Pointer per address class, PSNTP +1, F flips at each Kri", async () => {
    const topo = new Topology();
    const { a, b } = topo;
    try {
      for (const h of [a, b])
        assert.equal(topo.pdm(h, ["attach", "-i", h.ifname, "--layout", "v2", "--packets-per-kri", "8"]).code, 0);
      const file = join(dir, "v2.pcap");
      const capture = topo.spawn(b, [process.execPath, PDM_BIN, "capture", "-i", b.ifname, "-w", file, "-q"]);
      await new Promise((r) => setTimeout(r, 1500));
      const linkLocalB = (
        JSON.parse(topo.ip(b, ["-j", "-6", "addr", "show", "dev", b.ifname, "scope", "link"]))[0].addr_info as Array<{
          local?: string;
        }>
      ).find((x) => x.local)!.local!;
      assert.match(topo.exec(a, ["ping", "-6", "-c", "20", "-i", "0.01", "-q", b.addr]).stdout, / 0% packet loss/);
      assert.match(
        topo.exec(a, ["ping", "-6", "-c", "5", "-i", "0.01", "-q", `${linkLocalB}%${a.ifname}`]).stdout,
        / 0% packet loss/,
      );
      await new Promise((r) => setTimeout(r, 300));
      capture.child.kill("SIGINT");
      assert.equal(await capture.exited(60_000), 0);

      const packets = await pdmPackets(file);
      const v2 = (p: (typeof packets)[number]) => p.pdm as Extract<PdmOption, { layout: "v2-clear" }>;
      const globalFromA = packets.filter((p) => p.src === a.addr);
      const linkFromA = packets.filter((p) => p.src.startsWith("fe80") && p.dst === linkLocalB);
      assert.equal(globalFromA.length, 20);
      assert.equal(linkFromA.length, 5);
      assert.deepEqual(
        globalFromA.map((p) => v2(p).globalPointer),
        Array.from({ length: 20 }, (_, i) => i + 1),
        "global class counts from 1",
      );
      assert.deepEqual(
        linkFromA.map((p) => v2(p).globalPointer),
        [1, 2, 3, 4, 5],
        "link-local class counts on its own",
      );
      const psn = globalFromA.map((p) => v2(p).psnTp);
      psn.forEach((v, i) => i > 0 && assert.equal(v, (psn[i - 1]! + 1) & 0xffff));
      // 8 packets per Kri: F is 0 for packets 1-8, 1 for 9-16, 0 again for 17-20
      assert.deepEqual(
        globalFromA.map((p) => v2(p).fBit),
        [...Array(8).fill(0), ...Array(8).fill(1), ...Array(4).fill(0)],
      );
      const rns = globalFromA.slice(0, 8).map((p) => v2(p).randomNumber);
      assert.equal(new Set(rns).size, 8, "Random Numbers never repeat within a Kri");
      const result = analyzeJson(topo, file);
      assert.equal(result.counters.malformed, 0);
    } finally {
      topo.cleanup();
    }
  });

  it("packets that cannot be stamped are counted and still delivered", async () => {
    const topo = new Topology();
    const { a, b } = topo;
    try {
      assert.equal(topo.pdm(a, ["attach", "-i", a.ifname, "--no-mtu-room"]).code, 0);
      assert.equal(topo.pdm(b, ["attach", "-i", b.ifname]).code, 0);
      const server = topo.spawn(b, [process.execPath, UDP_PEER, "serve", "7001", "0"]);
      await server.waitFor(/ready/);
      // 1452 bytes fill the 1500-byte MTU exactly: no room for the header on a.
      const full = JSON.parse(
        topo.exec(a, [process.execPath, UDP_PEER, "ask", b.addr, "7001", "3", "0", "1452"]).stdout,
      );
      // 3000 bytes are fragmented: a Fragment header is already there on both hosts.
      const big = JSON.parse(
        topo.exec(a, [process.execPath, UDP_PEER, "ask", b.addr, "7001", "2", "0", "3000"]).stdout,
      );
      assert.equal(full.answered, 3);
      assert.equal(big.answered, 2);
      const st = JSON.parse(topo.pdm(a, ["status", "-i", a.ifname, "--json"]).stdout)[0].counters as Record<
        string,
        number
      >;
      assert.equal(st.skipped_mtu, 3);
      assert.ok(st.skipped_exthdr! >= 4, `skipped_exthdr ${st.skipped_exthdr}`);
    } finally {
      topo.cleanup();
    }
  });

  it("TCP with segmentation offload on (one stamp per super-packet) and off (one per segment)", async () => {
    const topo = new Topology();
    const { a, b } = topo;
    try {
      const run = async (
        name: string,
        attachArgs: string[],
      ): Promise<{ psns: number[]; stamped: number; delivered: number }> => {
        assert.equal(topo.pdm(a, ["attach", "-i", a.ifname, ...attachArgs]).code, 0);
        const file = join(dir, `${name}.pcap`);
        const capture = topo.spawn(b, [
          process.execPath,
          PDM_BIN,
          "capture",
          "-i",
          b.ifname,
          "-w",
          file,
          "-q",
          "ip6",
          "protochain",
          "6",
        ]);
        await new Promise((r) => setTimeout(r, 1500));
        const delivered = await tcpBulk(topo, 5202, 8_000_000);
        await new Promise((r) => setTimeout(r, 300));
        capture.child.kill("SIGINT");
        assert.equal(await capture.exited(60_000), 0);
        const stamped = JSON.parse(topo.pdm(a, ["status", "-i", a.ifname, "--json"]).stdout)[0].counters
          .stamped as number;
        const psns = (await pdmPackets(file))
          .filter((p) => p.src === a.addr)
          .map((p) => (p.pdm as { psnTp: number }).psnTp);
        return { psns, stamped, delivered };
      };
      const segments = Math.ceil(8_000_000 / 1500);
      const on = await run("gso-on", []);
      assert.equal(on.delivered, 8_000_000);
      assert.ok(
        on.stamped < segments / 2,
        `one stamp per super-packet: ${on.stamped} stamps for >= ${segments} segments`,
      );
      const offBefore = topo.exec(a, ["ethtool", "-k", a.ifname]).stdout;
      const off = await run("gso-off", ["--no-offload"]);
      assert.equal(off.delivered, 8_000_000);
      assert.ok(off.stamped >= segments, `one stamp per segment: ${off.stamped} stamps for >= ${segments} segments`);
      assert.equal(new Set(off.psns).size, off.psns.length, "no segment repeats another's stamp");
      assert.equal(topo.pdm(a, ["detach", "-i", a.ifname]).code, 0);
      assert.equal(topo.exec(a, ["ethtool", "-k", a.ifname]).stdout, offBefore, "detach restores offload settings");
      assert.match(topo.ip(a, ["-d", "link", "show", "dev", a.ifname]), /gso_max_segs 65535/);
    } finally {
      topo.cleanup();
    }
  });
});

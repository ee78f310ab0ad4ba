// Data-path benchmark (datapath issue, "Speed"): two namespaces on a veth pair, in one
// run and interleaved round by round so the machine's noise hits every case alike:
//
//   TCP throughput (iperf3, 4 s)     no tc program | empty tc program | PDM | PDM + strip
//   64-byte UDP rate (iperf3 -u)     no tc program | empty tc program | PDM | PDM + strip
// ("PDM": RFC 8250 stamped on egress and read on ingress on both hosts; "+ strip": the
// reader also removes the header, giving the receiving stack its fast path back.)
//   per-packet program cost          kernel BPF stats (kernel.bpf_stats_enabled=1)
//
// Targets: TCP with stamping >= 98 % of none; egress <= 300 ns, ingress <= 200 ns per
// packet; 64-byte UDP with stamping >= 90 % of the empty program.
// Usage (root): node --import tsx bench/datapath.bench.ts [rounds]   (make bench-datapath)

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { datapathSkipReason, ROOT, Topology } from "../lab/index.ts";

const rounds = Number(process.argv[2] ?? 3);
const skip = datapathSkipReason();
if (skip) {
  process.stderr.write(`bench/datapath: cannot run: ${skip}.\n`);
  process.exit(1);
}

type Mode = "none" | "empty" | "pdm" | "strip";
const MODES: Mode[] = ["none", "empty", "pdm", "strip"];
const topo = new Topology();
const { a, b } = topo;
const statsPath = "/proc/sys/kernel/bpf_stats_enabled";
const statsBefore = readFileSync(statsPath, "utf8").trim();

function setMode(mode: Mode): void {
  for (const h of [a, b]) {
    topo.pdm(h, ["detach", "-i", h.ifname]);
    if (mode === "none") continue;
    const extra = mode === "empty" ? ["--empty-program"] : mode === "strip" ? ["--strip"] : [];
    const r = topo.pdm(h, ["attach", "-i", h.ifname, "--no-events", ...extra]);
    if (r.code !== 0) throw new Error(r.stderr);
  }
}

function iperf(args: string[]): Record<string, any> {
  const server = topo.spawn(b, ["iperf3", "-s", "-1", "--forceflush", "-p", "5333"]);
  const deadline = Date.now() + 5000;
  while (!/listening/i.test(server.output().stdout) && Date.now() < deadline)
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  const r = topo.exec(a, ["iperf3", "-c", b.addr, "-p", "5333", "-J", ...args], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`iperf3 ${args.join(" ")}: ${r.stdout.slice(0, 300)} ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const results: Record<Mode, { tcpGbps: number[]; udpPps: number[] }> = {
  none: { tcpGbps: [], udpPps: [] },
  empty: { tcpGbps: [], udpPps: [] },
  pdm: { tcpGbps: [], udpPps: [] },
  strip: { tcpGbps: [], udpPps: [] },
};
/** Program cost per packet, from run-time deltas around each iperf3 run. */
const cost = {
  tcpEgressNs: [] as number[],
  tcpIngressNs: [] as number[],
  udpEgressNs: [] as number[],
  udpIngressNs: [] as number[],
};
const progStats = (): {
  egress: { runTimeNs: number; runCount: number };
  ingress: { runTimeNs: number; runCount: number };
} => {
  const sa = JSON.parse(topo.pdm(a, ["status", "-i", a.ifname, "--json"]).stdout)[0];
  const sb = JSON.parse(topo.pdm(b, ["status", "-i", b.ifname, "--json"]).stdout)[0];
  return { egress: sa.programs.egress, ingress: sb.programs.ingress };
};
const perRun = (
  before: ReturnType<typeof progStats>,
  after: ReturnType<typeof progStats>,
  dir: "egress" | "ingress",
): number => (after[dir].runTimeNs - before[dir].runTimeNs) / Math.max(1, after[dir].runCount - before[dir].runCount);

try {
  writeFileSync(statsPath, "1");
  for (let round = 1; round <= rounds; round++) {
    for (const mode of MODES) {
      setMode(mode);
      const s0 = mode === "pdm" ? progStats() : undefined;
      const tcp = iperf(["-t", "4"]);
      results[mode].tcpGbps.push(tcp.end.sum_received.bits_per_second / 1e9);
      const s1 = mode === "pdm" ? progStats() : undefined;
      const udp = iperf(["-u", "-b", "0", "-l", "64", "-t", "4"]);
      const s = udp.end.sum;
      results[mode].udpPps.push((s.packets - s.lost_packets) / s.seconds);
      if (s0 && s1) {
        const s2 = progStats();
        cost.tcpEgressNs.push(perRun(s0, s1, "egress"));
        cost.tcpIngressNs.push(perRun(s0, s1, "ingress"));
        cost.udpEgressNs.push(perRun(s1, s2, "egress"));
        cost.udpIngressNs.push(perRun(s1, s2, "ingress"));
      }
      process.stderr.write(
        `round ${round} ${mode}: TCP ${results[mode].tcpGbps.at(-1)!.toFixed(2)} Gbit/s, UDP-64 ${Math.round(results[mode].udpPps.at(-1)!)} pkt/s\n`,
      );
    }
  }
} finally {
  writeFileSync(statsPath, statsBefore);
  topo.cleanup();
}

const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const tcp = Object.fromEntries(MODES.map((m) => [m, median(results[m].tcpGbps)])) as Record<Mode, number>;
const udp = Object.fromEntries(MODES.map((m) => [m, median(results[m].udpPps)])) as Record<Mode, number>;
const c = Object.fromEntries(Object.entries(cost).map(([k, v]) => [k, median(v)])) as Record<keyof typeof cost, number>;
const pct = (x: number): string => `${(x * 100).toFixed(1)} %`;
const verdict = (ok: boolean): string => (ok ? "met" : "NOT met");
const lines = [
  `# Data-path benchmark (${new Date().toISOString()}, ${rounds} interleaved rounds, medians)`,
  "",
  "| case | no program | empty tc program | PDM (RFC 8250) | PDM + strip | PDM vs baseline | PDM + strip vs baseline | target |",
  "|---|---|---|---|---|---|---|---|",
  `| TCP throughput (iperf3, GSO on) | ${tcp.none.toFixed(2)} Gbit/s | ${tcp.empty.toFixed(2)} Gbit/s | ${tcp.pdm.toFixed(2)} Gbit/s | ${tcp.strip.toFixed(2)} Gbit/s | ${pct(tcp.pdm / tcp.none)} of none | ${pct(tcp.strip / tcp.none)} of none | >= 98 %: ${verdict(Math.max(tcp.pdm, tcp.strip) / tcp.none >= 0.98)} |`,
  `| 64-byte UDP (iperf3 -u -l 64) | ${Math.round(udp.none)} pkt/s | ${Math.round(udp.empty)} pkt/s | ${Math.round(udp.pdm)} pkt/s | ${Math.round(udp.strip)} pkt/s | ${pct(udp.pdm / udp.empty)} of empty | ${pct(udp.strip / udp.empty)} of empty | >= 90 %: ${verdict(Math.max(udp.pdm, udp.strip) / udp.empty >= 0.9)} |`,
  "",
  "Per-packet program cost (kernel BPF stats, run time / run count during each iperf3 run):",
  "",
  "| traffic | egress (stamp) | ingress (read) |",
  "|---|---|---|",
  `| TCP, GSO super-packets | ${c.tcpEgressNs.toFixed(0)} ns (<= 300: ${verdict(c.tcpEgressNs <= 300)}) | ${c.tcpIngressNs.toFixed(0)} ns (<= 200: ${verdict(c.tcpIngressNs <= 200)}) |`,
  `| UDP, 64-byte payload | ${c.udpEgressNs.toFixed(0)} ns (<= 300: ${verdict(c.udpEgressNs <= 300)}) | ${c.udpIngressNs.toFixed(0)} ns (<= 200: ${verdict(c.udpIngressNs <= 200)}) |`,
  "",
  "Command: `make bench-datapath` (root; iperf3 from Debian).",
];
const out = lines.join("\n") + "\n";
process.stdout.write(out);
mkdirSync(join(ROOT, "bench", "out"), { recursive: true });
writeFileSync(join(ROOT, "bench", "out", "datapath.md"), out);

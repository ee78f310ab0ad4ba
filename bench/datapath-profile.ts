// Where the data path's time goes on real traffic (root; needs `perf`). The namespaces
// of bench-datapath, PDM (RFC 8250, no events) stamping and reading on both hosts:
//
// 1. iperf3 64-byte UDP, then TCP, each under `perf record -a -g`. Every sample whose
//    call chain passes through a PDM program is that program's; the kernel functions
//    below it in the chain (helpers and what they call) get the share of those samples
//    they appear in. This is what the BPF_PROG_TEST_RUN figures of bench-aead cannot
//    show: a test run's packet is fresh, with room in front of it and warm caches.
// 2. iperf3 TCP with sender and receiver pinned to one CPU, then to two: a flow's state
//    is written by egress (data) and ingress (ACKs), so on two CPUs its cache lines
//    move between them on every packet. Per-packet cost from the kernel's BPF stats.
//
// The machine is a shared VM: samples are cpu-clock (no hardware counters), and time
// spent with interrupts off (inside a bpf_spin_lock) is charged to where they come
// back on. Results go to bench/out/datapath-profile.md.
// Usage (root): node --import tsx bench/datapath-profile.ts   (make profile-datapath)

import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { datapathSkipReason, ROOT, Topology } from "../lab/index.ts";

const skip =
  datapathSkipReason() ??
  (spawnSync("perf", ["--version"]).status === 0 ? undefined : "perf is not installed (apt-get install linux-perf)");
if (skip) {
  process.stderr.write(`bench/datapath-profile: cannot run: ${skip}.\n`);
  process.exit(1);
}

/** Kernel functions worth naming when they sit under a program in a call chain. */
const NAMED = [
  "bpf_skb_adjust_room",
  "pskb_expand_head",
  "bpf_skb_store_bytes",
  "bpf_ktime_get_ns",
  "ktime_get_mono_fast_ns",
  "__htab_map_lookup_elem",
  "htab_map_update_elem",
  "bpf_spin_lock",
  "bpf_spin_unlock",
  "bpf_check_mtu",
  "bpf_get_prandom_u32",
];

interface ProgramProfile {
  samples: number;
  /** Samples whose chain, below the program, holds the function. */
  within: Map<string, number>;
  /** Samples in the program's own code (the JITed instructions). */
  own: number;
}

/** Reads `perf script` output: for each PDM program, its samples and what they were in. */
function profile(perfData: string): { total: number; programs: Record<"egress" | "ingress", ProgramProfile> } {
  const out = spawnSync("perf", ["script", "-i", perfData, "-F", "ip,sym"], { encoding: "utf8", maxBuffer: 1 << 30 });
  if (out.status !== 0) throw new Error(`perf script: ${out.stderr}`);
  const programs = {
    egress: { samples: 0, within: new Map<string, number>(), own: 0 },
    ingress: { samples: 0, within: new Map<string, number>(), own: 0 },
  };
  let total = 0;
  // Samples are separated by blank lines; each line of one is a frame, leaf first.
  for (const block of out.stdout.split(/\n\s*\n/)) {
    const frames = block
      .split("\n")
      .map((l) => l.trim().split(/\s+/)[1] ?? "")
      .filter((s) => s !== "");
    if (frames.length === 0) continue;
    total += 1;
    const at = frames.findIndex((f) => /^bpf_prog_\w+_pdm_(egress|ingress)/.test(f));
    if (at < 0) continue;
    const p = programs[/_pdm_egress/.test(frames[at]!) ? "egress" : "ingress"];
    p.samples += 1;
    if (at === 0) p.own += 1;
    for (const name of new Set(frames.slice(0, at).map((f) => f.replace(/\+0x[0-9a-f]+$/, ""))))
      p.within.set(name, (p.within.get(name) ?? 0) + 1);
  }
  return { total, programs };
}

const topo = new Topology();
const { a, b } = topo;
const statsPath = "/proc/sys/kernel/bpf_stats_enabled";
const statsBefore = readFileSync(statsPath, "utf8").trim();
const work = mkdtempSync(join(tmpdir(), "pdm-profile-"));
const sections: string[] = [];

function iperf(args: string[], pin?: { server: string; client: string }): Record<string, any> {
  const taskset = (cpu: string | undefined): string[] => (cpu === undefined ? [] : ["taskset", "-c", cpu]);
  topo.spawn(b, [...taskset(pin?.server), "iperf3", "-s", "-1", "-p", "5333"]);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 400);
  const r = topo.exec(a, [...taskset(pin?.client), "iperf3", "-c", b.addr, "-p", "5333", "-J", ...args], {
    timeoutMs: 60_000,
  });
  if (r.code !== 0) throw new Error(`iperf3 ${args.join(" ")}: ${r.stdout.slice(0, 300)} ${r.stderr}`);
  return JSON.parse(r.stdout);
}
const programStats = () => {
  const sa = JSON.parse(topo.pdm(a, ["status", "-i", a.ifname, "--json"]).stdout)[0];
  const sb = JSON.parse(topo.pdm(b, ["status", "-i", b.ifname, "--json"]).stdout)[0];
  return {
    egress: sa.programs.egress as { runTimeNs: number; runCount: number },
    ingress: sb.programs.ingress as { runTimeNs: number; runCount: number },
  };
};

try {
  writeFileSync(statsPath, "1");
  for (const h of [a, b]) {
    const r = topo.pdm(h, ["attach", "-i", h.ifname, "--no-events"]);
    if (r.code !== 0) throw new Error(r.stderr);
  }

  for (const [name, args] of [
    ["64-byte UDP", ["-u", "-b", "0", "-l", "64", "-t", "4"]],
    ["TCP", ["-t", "4"]],
  ] as const) {
    const data = join(work, "perf.data");
    const perf = spawn("perf", ["record", "-a", "-g", "-F", "4999", "-o", data, "--", "sleep", "3"], {
      stdio: "ignore",
    });
    iperf([...args]);
    await new Promise((resolve) => perf.on("exit", resolve));
    const { total, programs } = profile(data);
    process.stderr.write(`${name}: ${total} samples\n`);
    const lines = [
      `### ${name} (iperf3, ${total} samples on both CPUs)`,
      "",
      "| | egress (stamp) | ingress (read) |",
      "|---|---|---|",
    ];
    const share = (n: number, of: number): string => (of ? `${((100 * n) / of).toFixed(1)} %` : "-");
    lines.push(
      `| the program and what it calls, of all samples | ${share(programs.egress.samples, total)} | ${share(programs.ingress.samples, total)} |`,
    );
    lines.push(
      `| the program's own instructions, of its samples | ${share(programs.egress.own, programs.egress.samples)} | ${share(programs.ingress.own, programs.ingress.samples)} |`,
    );
    for (const fn of NAMED) {
      const e = programs.egress.within.get(fn) ?? 0;
      const i = programs.ingress.within.get(fn) ?? 0;
      if (e + i === 0) continue;
      lines.push(
        `| \`${fn}\`, of the program's samples | ${share(e, programs.egress.samples)} | ${share(i, programs.ingress.samples)} |`,
      );
    }
    sections.push(lines.join("\n"));
  }

  // The same flow's state written from one CPU or from two.
  const costs: Record<string, { egress: number[]; ingress: number[]; gbps: number[] }> = {};
  for (let round = 0; round < 3; round++) {
    for (const [label, pin] of [
      ["sender and receiver on one CPU", { server: "0", client: "0" }],
      ["sender and receiver on two CPUs", { server: "1", client: "0" }],
    ] as const) {
      const s0 = programStats();
      const r = iperf(["-t", "3"], pin);
      const s1 = programStats();
      const c = (costs[label] ??= { egress: [], ingress: [], gbps: [] });
      c.egress.push((s1.egress.runTimeNs - s0.egress.runTimeNs) / Math.max(1, s1.egress.runCount - s0.egress.runCount));
      c.ingress.push(
        (s1.ingress.runTimeNs - s0.ingress.runTimeNs) / Math.max(1, s1.ingress.runCount - s0.ingress.runCount),
      );
      c.gbps.push(r.end.sum_received.bits_per_second / 1e9);
      process.stderr.write(`round ${round + 1}, ${label}: egress ${c.egress.at(-1)!.toFixed(0)} ns\n`);
    }
  }
  const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  sections.push(
    [
      "### TCP: one CPU or two (3 interleaved rounds, medians; kernel BPF stats)",
      "",
      "| placement | TCP throughput | a's egress per packet (data) | b's ingress per packet (data) |",
      "|---|---|---|---|",
      ...Object.entries(costs).map(
        ([label, c]) =>
          `| ${label} | ${median(c.gbps).toFixed(1)} Gbit/s | ${median(c.egress).toFixed(0)} ns | ${median(c.ingress).toFixed(0)} ns |`,
      ),
    ].join("\n"),
  );
} finally {
  writeFileSync(statsPath, statsBefore);
  topo.cleanup();
  rmSync(work, { recursive: true, force: true });
}

const out =
  [
    `# Where the data path's time goes (${new Date().toISOString()})`,
    "",
    "PDM (RFC 8250) on both hosts, no events.",
    "",
    ...sections.flatMap((s) => [s, ""]),
    "Command: `make profile-datapath` (root; perf and iperf3 from Debian).",
  ].join("\n") + "\n";
process.stdout.write(out);
mkdirSync(join(ROOT, "bench", "out"), { recursive: true });
writeFileSync(join(ROOT, "bench", "out", "datapath-profile.md"), out);

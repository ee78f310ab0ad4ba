// Distributed mode's benchmark (issue 25): how many protocol messages one member
// processes per second (decode, CKN, ICV with AES-CMAC, the state machine), and how long
// a group takes to agree on a new generation after a change, for 3, 8 and 32 members.
//
//   make bench-ksp        # or: node --import tsx bench/ksp.bench.ts
//
// Agreement times run on the in-memory bus with a fake clock (lab/ksp-bus.ts, the real
// codec and ICV), so they are the protocol's own latency with the default timers (hello
// 2 s, life 6 s, min_rekey 6 s), the same on any machine. Writes bench/out/ksp.md.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_SUITE } from "../pdm/index.ts";
import { KspBus, GroupLan, datapathSkipReason, eventually, type BusMember, type LanHost } from "../lab/index.ts";
import { KSP_TIMER_DEFAULTS, KspMember, memoryKnStore, writeConnectivityKeys } from "../probes/ksp/index.ts";

const resultsDir = join(import.meta.dirname, "out");
mkdirSync(resultsDir, { recursive: true });
const keys = { ckn: Buffer.from("bench group"), cak: Buffer.alloc(16, 1), kgk: Buffer.alloc(16, 2) };
const rows: string[] = [];

/** Members 0..n-1 on a bus, settled on one generation. */
function settledBus(n: number, seed: string): KspBus {
  const b = new KspBus({ keys, suite: DEFAULT_SUITE, seed });
  for (let i = 0; i < n; i += 1) b.add(`m${i}`, { priority: 10 + (i % 200) });
  b.run(20_000);
  if (b.commonSealing() === undefined) throw new Error(`${n} members did not settle`);
  return b;
}

/** Fake-clock ms until every running member seals one generation above `before`. */
function untilAgreed(b: KspBus, before: number, limitMs = 120_000): number {
  for (let t = 0; t <= limitMs; t += 50) {
    const g = b.commonSealing();
    if (g !== undefined && g > before) return t;
    b.run(50);
  }
  return NaN;
}

// 1. Messages per second through one member.
{
  const b = settledBus(32, "rate");
  b.sent.length = 0;
  b.run(300_000); // 32 members x 150 hellos and the rekeys: a realistic stream
  const stream = b.sent.filter((s) => s.from !== "m0");
  // A fresh incarnation of m0 reads the recorded stream once, in order (every MN new to it).
  const fresh = new KspBus({ keys, suite: DEFAULT_SUITE, seed: "fresh" }).add("reader");
  const t0 = process.hrtime.bigint();
  let accepted = 0;
  for (const s of stream) {
    const m = fresh.guard.open(s.bytes, s.route);
    if (typeof m !== "string") {
      fresh.participant.receive(m);
      accepted += 1;
    }
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  rows.push(
    `| messages processed by one member (decode, CKN, AES-CMAC ICV, state machine) | ${stream.length} from 31 peers | ${(stream.length / seconds).toFixed(0)} /s (${((seconds / stream.length) * 1e6).toFixed(1)} µs each) |`,
  );
  if (accepted !== stream.length) throw new Error(`only ${accepted} of ${stream.length} accepted`);
}

// 2. Agreement after a change.
const agreement: string[] = [];
for (const n of [3, 8, 32]) {
  const cells: string[] = [];
  {
    const b = settledBus(n, `join${n}`);
    const before = b.commonSealing()!;
    b.run(7000); // past min_rekey
    b.add("newcomer", { priority: 250 });
    cells.push(`${(untilAgreed(b, before) / 1000).toFixed(1)} s`);
  }
  {
    const b = settledBus(n, `leave${n}`);
    const before = b.commonSealing()!;
    b.run(7000);
    const leaving = b.members[n - 1]! as BusMember;
    leaving.stopped = true;
    cells.push(`${(untilAgreed(b, before) / 1000).toFixed(1)} s`);
  }
  {
    const b = settledBus(n, `kill${n}`);
    const before = b.commonSealing()!;
    b.run(7000);
    const server = b.members.find((m) => m.participant.isKeyServer)!;
    server.stopped = true;
    cells.push(`${(untilAgreed(b, before) / 1000).toFixed(1)} s`);
  }
  agreement.push(`| ${n} | ${cells.join(" | ")} |`);
}

// 4. 32 members in this one process, over UDP on loopback (unicast, a port each), real clock.
const loopback: string[] = [];
{
  const n = 32;
  const base = 45_300 + (process.pid % 500);
  const sealing = new Map<number, number>(); // member index -> the generation it seals with
  const start = (i: number) =>
    KspMember.start({
      keys,
      memberId: Buffer.from(`m${String(i).padStart(7, "0")}`),
      priority: 10 + i,
      suite: DEFAULT_SUITE,
      timers: { ...KSP_TIMER_DEFAULTS },
      kns: memoryKnStore(),
      transport: {
        interface: "lo",
        address: "::1",
        port: base + i,
        peers: Array.from({ length: n + 1 }, (_, j) => j)
          .filter((j) => j !== i)
          .map((j) => `[::1]:${base + j}`),
      },
      onEvent: (e) => {
        if (e.type === "sealing") sealing.set(i, e.generation.generation);
      },
    });
  const members = new Map<number, KspMember>();
  const until = async (what: string, among: number[], above: number): Promise<number> => {
    const t0 = Date.now();
    await eventually(
      what,
      () => {
        const g = sealing.get(among[0]!);
        return g !== undefined && g > above && among.every((i) => sealing.get(i) === g);
      },
      120_000,
    );
    return Date.now() - t0;
  };
  const cpu0 = process.cpuUsage();
  const t0 = Date.now();
  for (let i = 0; i < n; i += 1) members.set(i, await start(i));
  const all = [...members.keys()];
  const formed = await until("32 members on one generation", all, 0);
  await new Promise((r) => setTimeout(r, 7000)); // past min_rekey
  let g = sealing.get(0)!;
  const server = all.find((i) => members.get(i)!.participant.isKeyServer)!;
  members.get(server)!.stop();
  members.delete(server);
  sealing.delete(server);
  const rest = [...members.keys()];
  const killed = await until("31 members renew without the key server", rest, g);
  g = sealing.get(rest[0]!)!;
  await new Promise((r) => setTimeout(r, 7000));
  members.set(n, await start(n));
  const joined = await until("a 33rd member joins", [...members.keys()], g);
  const seconds = (Date.now() - t0) / 1000;
  const received = [...members.values()].reduce((sum, m) => sum + m.participant.status().mn, 0);
  const cpu = process.cpuUsage(cpu0);
  for (const m of members.values()) m.stop();
  loopback.push(
    `| 32 on loopback UDP (one process) | ${(formed / 1000).toFixed(1)} s | ${(killed / 1000).toFixed(1)} s | ${(joined / 1000).toFixed(1)} s | ${(((cpu.user + cpu.system) / 1e6 / seconds) * 100).toFixed(1)} % of a core for ${received} messages sent (each to 31-32 peers) |`,
  );
}

// 3. Real time, members as `pdm agent` processes in namespaces (default timers): the key server killed.
const real: string[] = [];
async function namespaces(n: number): Promise<void> {
  const lan = new GroupLan(n);
  try {
    await lan.issue();
    const file = join(lan.dir, "group.ksp");
    writeConnectivityKeys(file, keys);
    lan.members.forEach((m, i) =>
      lan.startMember(m, { distributed: { keys: file, knMemory: join(lan.dir, `${m.name}.kns`), priority: 10 + i } }),
    );
    const dist = (h: LanHost) => lan.status(h)?.member?.distributed;
    const sealing = (h: LanHost) => lan.status(h)?.member?.sealingGeneration;
    await eventually(
      `${n} members on one generation`,
      () => {
        const g = sealing(lan.members[0]!);
        return g !== undefined && lan.members.every((m) => sealing(m) === g && dist(m)?.live.length === n - 1);
      },
      120_000,
    );
    await new Promise((r) => setTimeout(r, 7000)); // past min_rekey
    const before = sealing(lan.members[0]!)!;
    const server = lan.members.find((m) => dist(m)!.isKeyServer)!;
    const rest = lan.members.filter((m) => m !== server);
    const killedAt = Date.now();
    server.agent!.child.kill("SIGKILL");
    const sealedAt = (m: LanHost): number | undefined => {
      const all = [...m.agent!.output().stderr.matchAll(/^(\S+) info +ksp-sealing .*generation=(\d+)/gm)];
      const hit = all.find((x) => Number(x[2]) > before);
      return hit ? Date.parse(hit[1]!) : undefined;
    };
    await eventually("the rest sealing a new generation", () => rest.every((m) => sealedAt(m) !== undefined), 60_000);
    const last = Math.max(...rest.map((m) => sealedAt(m)!));
    real.push(`| ${n} | ${((last - killedAt) / 1000).toFixed(2)} s |`);
  } finally {
    lan.cleanup();
  }
}
const skip = datapathSkipReason();
if (!skip) for (const n of [3, 8]) await namespaces(n);

const report = [
  `# Distributed mode (Key Selection Protocol) (${new Date().toISOString()})`,
  "",
  "| what | count | rate |",
  "|---|---|---|",
  ...rows,
  "",
  "Time from a change until every member seals one new generation (default timers: hello 2 s, life 6 s, min_rekey 6 s; fake clock, so the protocol's own latency):",
  "",
  "| members | a member joins | a member leaves (silent) | the key server killed |",
  "|---|---|---|---|",
  ...agreement,
  "",
  skip
    ? `Namespaces skipped: ${skip}`
    : "Real time, members as `pdm agent` processes in namespaces, default timers, the key server killed (SIGKILL) until every other member seals a new generation:",
  "",
  ...(skip ? [] : ["| members | until every other member seals a new generation |", "|---|---|", ...real]),
  "",
  "Real time, 32 members in one process over UDP on loopback (unicast, a port each), default timers:",
  "",
  "| setting | formed | the key server killed | a member joins | CPU |",
  "|---|---|---|---|---|",
  ...loopback,
  "",
].join("\n");
writeFileSync(join(resultsDir, "ksp.md"), report);
process.stdout.write(report);

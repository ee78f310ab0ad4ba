// Group master mode's renewal speed (issue 24's benchmark):
//
//   make bench-group          # or: node --import tsx bench/group.bench.ts [members] [simulated]
//
// 1. `members` (default 10) group members in network namespaces on one bridge, each a
//    `pdm agent` process computing its own scrypt as a separate host would, and the
//    master in its own namespace. For a leave, a join and an operator's renewal: the
//    time from the change until every member seals with the new generation (it has
//    installed it and its effectiveAt has come), from the agents' own log lines; the
//    master's renewal time, its scrypt, its longest event-loop stall; the peak memory
//    (VmHWM) of the master and of each member process.
// 2. `simulated` (default 100) members in this one process on loopback, with the
//    master: the same time for a leave, and the share of it spent in scrypt (their
//    scrypts then share this machine's two cores through libuv's thread pool).
// Writes bench/out/group.md. Needs root (namespaces); part 2 runs without.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { GROUP_SCRYPT } from "../pdm/index.ts";
import type { Agent } from "../probes/agent/index.ts";
import { Deployment, GroupLan, datapathSkipReason, eventually, type LanHost } from "../lab/index.ts";

const memberCount = Number(process.argv[2] ?? 10);
const simulated = Number(process.argv[3] ?? 100);
const resultsDir = join(import.meta.dirname, "out");
mkdirSync(resultsDir, { recursive: true });
const LEAD_SECONDS = 1;
const rows: string[] = [];
const notes: string[] = [];

/** ms since the epoch of each member's install of `generation`, and that generation's effectiveAt. */
function installs(h: LanHost, generation: number): { at: number; effectiveAt: number } | undefined {
  const stderr = h.agent?.output().stderr ?? "";
  const re = new RegExp(
    `^(\\S+) info +group-generation-installed .*generation=${generation} .*effectiveAt=(\\S+)`,
    "m",
  );
  const m = re.exec(stderr);
  return m ? { at: Date.parse(m[1]!), effectiveAt: Date.parse(m[2]!) } : undefined;
}

function peakMemoryMb(pid: number | undefined): number {
  try {
    const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return Math.round(Number(kb) / 1024);
  } catch {
    return NaN;
  }
}

async function namespaces(memberCount: number): Promise<void> {
  const lan = new GroupLan(memberCount);
  try {
    await lan.issue();
    await lan.startMaster({
      suite: "0020:0001:0003",
      group: { lifeSeconds: 6, leadSeconds: LEAD_SECONDS, ackTimeoutSeconds: 60 },
    });
    for (const m of lan.members) lan.startMember(m);
    const settle = async (members: LanHost[], after: number): Promise<number> => {
      let g = 0;
      await eventually(
        "one generation",
        () => {
          const s = lan.status(lan.master)?.group;
          if (!s?.generation || s.generation <= after || s.members.length !== members.length) return false;
          g = s.generation;
          return members.every((m) => installs(m, g) !== undefined);
        },
        180_000,
      );
      return g;
    };
    let generation = await settle(lan.members, 0);
    const measure = async (what: string, members: LanHost[], change: () => number | Promise<number>): Promise<void> => {
      await new Promise((r) => setTimeout(r, 2000)); // the status file of the last renewal is written
      const changedAt = await change();
      generation = await settle(members, generation);
      const sealing = members.map((m) => {
        const i = installs(m, generation)!;
        return Math.max(i.at, i.effectiveAt) - changedAt;
      });
      await new Promise((r) => setTimeout(r, 1500)); // the master's status file catches up
      const s = lan.status(lan.master)!.group!.stats;
      rows.push(
        `| ${what} | ${members.length} | ${(Math.max(...sealing) / 1000).toFixed(2)} s | ${(Math.min(...sealing) / 1000).toFixed(2)} s | ${s.lastRenewalMs} ms | ${s.lastScryptMs} ms | ${s.lastRenewalLoopStallMs} ms |`,
      );
    };
    if (memberCount === 1) {
      // A master and one member: two scrypts on two cores, as on separate hosts.
      await measure("operator, one member (each scrypt has a core, as on separate hosts)", lan.members, () => {
        lan.master.agent!.child.kill("SIGUSR2");
        return Date.now();
      });
      return;
    }
    const last = lan.members[lan.members.length - 1]!;
    await measure("a member leaves (SIGTERM)", lan.members.slice(0, -1), () => {
      last.agent!.child.kill("SIGTERM");
      return Date.now();
    });
    await measure("a member joins (from the master's admission)", lan.members, async () => {
      // The change is the master's admission; the new process's own start-up (node, TLS) comes before it.
      const seen = lan.master.agent!.output().stderr.length;
      lan.startMember(last);
      let at = NaN;
      await eventually(
        "the master admits the member",
        () => {
          const m = /^(\S+) info +member-joined /m.exec(lan.master.agent!.output().stderr.slice(seen));
          if (m) at = Date.parse(m[1]!);
          return m !== null;
        },
        30_000,
      );
      return at;
    });
    await measure("operator (pdm keys renew, SIGUSR2)", lan.members, () => {
      lan.master.agent!.child.kill("SIGUSR2");
      return Date.now();
    });
    notes.push(
      `peak memory (VmHWM): master ${peakMemoryMb(lan.master.agent!.child.pid)} MB; members ${lan.members
        .map((m) => peakMemoryMb(m.agent!.child.pid))
        .join(", ")} MB`,
    );
  } finally {
    lan.cleanup();
  }
}

async function inProcess(): Promise<void> {
  const d = new Deployment();
  try {
    await d.init();
    d.timing = { ...d.timing, criticality: "critical", periodSeconds: 300 };
    const gm = await d.agent("gm", ["group-master"], await d.issue("gm", "group-master", ["::1"]), {
      listen: true,
      suites: ["0020:0001:0003"],
      extra: { group: { lifeSeconds: 600, leadSeconds: LEAD_SECONDS, ackTimeoutSeconds: 600, gatherSeconds: 5 } },
    });
    const members: Agent[] = [];
    for (let i = 0; i < simulated; i += 1) {
      const cert = await d.issue(`m${i}`, "group-member", ["::1"]);
      members.push(
        await d.agent(`m${i}`, ["group-member"], cert, {
          extra: { groupMaster: `[::1]:${gm.port}`, group: { lifeSeconds: 600 } },
        }),
      );
    }
    const settled = (list: Agent[], after: number) => (): boolean => {
      const g = gm.status().group!;
      return (
        (g.generation ?? 0) > after &&
        g.members.length === list.length &&
        list.every((m) => m.status().member?.sealingGeneration === g.generation)
      );
    };
    await eventually("all members on one generation", settled(members, 0), 900_000);
    const before = gm.status().group!.generation!;
    const cpu0 = process.cpuUsage();
    const t0 = Date.now();
    await members.pop()!.stop();
    await eventually("the rest on the next generation", settled(members, before), 900_000);
    const wall = (Date.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const s = gm.status().group!.stats;
    // scrypt's share of the process's CPU time: this renewal's scrypts, each at the cost of
    // one alone (the least of three, this machine being shared), against the CPU it used.
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    const scryptSeconds = ((members.length + 1) * singleScryptMs) / 1000;
    const scryptShare = (scryptSeconds / cpuSeconds) * 100;
    rows.push(
      `| ${simulated} simulated, one process: a member leaves | ${members.length} | ${wall.toFixed(2)} s | | ${s.lastRenewalMs} ms | ${s.lastScryptMs} ms | ${s.lastRenewalLoopStallMs} ms |`,
    );
    notes.push(
      `${simulated} simulated members: ${members.length + 1} scrypts of ${singleScryptMs} ms each = ${scryptSeconds.toFixed(1)} s of CPU, ${scryptShare.toFixed(0)} % of the ${cpuSeconds.toFixed(1)} s the process used over the renewal's ${wall.toFixed(1)} s on ${cpus().length} cores; the event-loop stall in this row is the whole process's (a hundred members' work shares the master's loop); peak RSS of the process ${Math.round(process.resourceUsage().maxRSS / 1024)} MB`,
    );
  } finally {
    await d.cleanup();
  }
}

let singleScryptMs = 0;
{
  const { deriveGroupSecretKey } = await import("../pdm/index.ts");
  const times: number[] = [];
  for (let i = 0; i < 3; i += 1) {
    const t0 = performance.now();
    await deriveGroupSecretKey(new Uint8Array(32), new Uint8Array(32), 3);
    times.push(Math.round(performance.now() - t0));
  }
  singleScryptMs = Math.min(...times);
  notes.push(
    `one scrypt (N = ${GROUP_SCRYPT.N}, r = ${GROUP_SCRYPT.r}) alone: ${times.join(", ")} ms (least: ${singleScryptMs})`,
  );
}
const skip = datapathSkipReason();
if (skip) notes.push(`namespaces skipped: ${skip}`);
else {
  await namespaces(memberCount);
  await namespaces(1);
}
await inProcess();

const report = [
  `# Group master mode: time to renew (${new Date().toISOString()})`,
  "",
  `Lead (effectiveAt after the change): ${LEAD_SECONDS} s. "Sealing" is the later of a member's install and effectiveAt.`,
  "",
  "| change | members | until every member seals | until the first seals | master's renewal | master's scrypt | longest event-loop stall (master) |",
  "|---|---|---|---|---|---|---|",
  ...rows,
  "",
  ...notes.map((n) => `- ${n}`),
  "",
].join("\n");
writeFileSync(join(resultsDir, "group.md"), report);
process.stdout.write(report);

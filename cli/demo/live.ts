// The live demo: the whole product deployed on one machine, measured, and checked
// against the delays it injected (plan.ts has the topology and the values).
//
//  1. deploy (deploy.ts): namespaces with a router between three clients and three
//     servers, delay bridges on the reader servers' links, a capture at the router; a
//     private CA and one certificate per role; the six agents register (mutual TLS 1.3,
//     HPKE) and provision the four readers; the eBPF programs attached on every reader;
//  2. drive (drive.ts): real applications (HTTP over TCP, UDP request/response, ping);
//  3. measure (measure.ts): `pdm status` on a reader, the key log exported by the
//     router as an authorized analyzer, the capture analyzed: table, report.html, PNG;
//  4. compare (compare.ts): measured against injected;
//  and teardown of everything, also on Ctrl-C, SIGTERM or failure.
//
// With `group`, the six hosts are group members of a group master at the router
// (groups.md 1), and one member is removed half-way through the workload: the group
// renews without it, and the measurement must go on without a gap. With `distributed`,
// there is no server at all: the hosts run the Key Selection Protocol (groups.md 2), and
// the key server they elected is the member removed.

import { resolve } from "node:path";
import { Interrupted, packageRoot } from "../../pdm/index.ts";
import { Lab } from "../../lab/index.ts";
import { deploy } from "./deploy.ts";
import { driveWorkload, startServers } from "./drive.ts";
import { measure } from "./measure.ts";
import { compareWithInjected } from "./compare.ts";
import type { DemoContext } from "./context.ts";
import { groupWentOn, removeMemberMidRun } from "./group.ts";

export { DemoUnavailable } from "./context.ts";

export interface LiveDemoOptions {
  /** Seconds of workload. */
  duration: number;
  /** Where the capture, key log, report, PNG, certificates and logs go. */
  outDir: string;
  say: (line: string) => void;
  /** Group master mode: every host a member, one removed mid-run. */
  group?: boolean;
  /** Distributed mode: every host a member of the Key Selection Protocol, the key server stopped mid-run. */
  distributed?: boolean;
}

export interface LiveDemoResult {
  /** Every comparison within its tolerance. */
  ok: boolean;
  files: { capture: string; keys: string; report: string; png: string };
}

export async function runLiveDemo(opts: LiveDemoOptions): Promise<LiveDemoResult> {
  const say = opts.say;
  const lab = new Lab("pdmdemo-", "/run/pdm-demo", "/sys/fs/bpf/pdm-demo", packageRoot());
  const leftovers = lab.removeLeftovers();
  if (leftovers.length) say(`removed what an interrupted earlier run left: ${leftovers.join(", ")}`);
  const t0 = Date.now();
  const ctx: DemoContext = {
    lab,
    out: resolve(opts.outDir),
    say,
    elapsed: () => `${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s`,
    group: opts.group ?? false,
    distributed: opts.distributed ?? false,
  };

  // Ctrl-C or kill: take everything down at once (the step in progress then fails, its
  // processes gone, and the run ends as interrupted); at exit, whatever is left.
  let interrupted: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    interrupted = signal;
    say(`\n${signal}: tearing down the demo (namespaces, programs, pins, processes)`);
    lab.teardown();
  };
  const onExit = (): void => lab.teardown();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  process.once("exit", onExit);
  const step = async <T>(run: () => Promise<T>): Promise<T> => {
    if (interrupted) throw new Interrupted(`the demo was stopped by ${interrupted}; everything it made is removed`);
    try {
      return await run();
    } catch (e) {
      if (interrupted) throw new Interrupted(`the demo was stopped by ${interrupted}; everything it made is removed`);
      throw e;
    }
  };
  try {
    const d = await step(() => deploy(ctx));
    const servers = await step(() => startServers(ctx, d.topo));
    const grouped = ctx.group || ctx.distributed;
    const removal = grouped ? removeMemberMidRun(ctx, d, opts.duration) : undefined;
    await step(() => driveWorkload(ctx, d.topo, opts.duration));
    const removedAt = await removal;
    const { result, kriFlips } = await step(() => measure(ctx, d, servers));

    const renewals = Math.max(0, d.generations.length - 1);
    say(
      `\nduring the run: ${renewals} key renewal(s) (generations ${d.generations.join(", ") || "none"}); ${kriFlips} Kri rotations seen in the capture (F bit flips)`,
    );
    let ok = compareWithInjected(result, say) && renewals > 0 && kriFlips > 0;
    if (grouped) ok = groupWentOn(ctx, result, removedAt) && ok;
    if (renewals === 0) say("expected at least one key renewal during the run: make the run longer (--duration)");
    if (kriFlips === 0) say("expected at least one Kri rotation during the run: make the run longer (--duration)");
    say(
      `\n[${ctx.elapsed()}] ${ok ? "every figure within its tolerance" : "SOME FIGURES OUTSIDE THEIR TOLERANCE (see above)"}`,
    );
    return { ok, files: d.files };
  } finally {
    lab.teardown();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    process.off("exit", onExit);
  }
}

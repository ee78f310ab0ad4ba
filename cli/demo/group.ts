// The group demos' own steps (`pdm demo --group`, `--distributed`): a member removed
// half-way through the workload, and the check that measurement went on across the
// renewal it causes.

import type { AnalysisResult } from "../../analyzer/index.ts";
import type { Deployment } from "./deploy.ts";
import { DEMO_PORTS, GROUP_DEMO } from "./plan.ts";
import type { DemoContext } from "./context.ts";

/** The member a group demo removes half-way, and what the demo says about it. */
export function removal(ctx: DemoContext): { name: string; why: string } {
  if (ctx.distributed)
    return {
      name: "gm",
      why: "the group master, the only server: the members elect a key server among themselves and go on renewing keys",
    };
  return {
    name: GROUP_DEMO.removed,
    why: `the group master renews without it, and ${GROUP_DEMO.removed} can open nothing sealed from then on`,
  };
}

/** Half-way through the workload, stop the removed member's agent; resolves with when (s since the epoch). */
export async function removeMemberMidRun(ctx: DemoContext, d: Deployment, durationSec: number): Promise<number> {
  await new Promise((r) => setTimeout(r, (durationSec * 1000) / 2));
  const { name, why } = removal(ctx);
  const at = Date.now() / 1000;
  ctx.say(`[${ctx.elapsed()}] stopping ${name} (its agent): ${why}`);
  await ctx.lab.stop(name === "gm" ? d.master!.agent : d.agents.get(name)!);
  return at;
}

/**
 * Every flow measured went on across the removal: samples after it, and no gap between
 * two samples of a flow longer than GROUP_DEMO.maxGapSeconds. Says what it found.
 */
export function groupWentOn(ctx: DemoContext, result: AnalysisResult, removedAtSec: number | undefined): boolean {
  if (removedAtSec === undefined) return false;
  const removed = removedAtSec - result.startSec;
  let longest = { gap: 0, flow: "" };
  let after = 0;
  let flows = 0;
  for (const f of result.flows) {
    // The workload's flows (HTTP, UDP, ping), not the agents' own traffic between the hosts.
    const workload = f.transport === "icmpv6" || f.serverPort === DEMO_PORTS.http || f.serverPort === DEMO_PORTS.udp;
    if (!workload) continue;
    const t = result.series.get(f.id)?.timeSec;
    if (!t || t.length < 2) continue;
    flows += 1;
    for (let i = 1; i < t.length; i += 1) {
      const gap = t[i]! - t[i - 1]!;
      if (gap > longest.gap) longest = { gap, flow: `${f.transport} ${f.client} -> ${f.server}` };
      if (t[i]! > removed) after += 1;
    }
  }
  const ok = flows > 0 && after > 0 && longest.gap <= GROUP_DEMO.maxGapSeconds;
  ctx.say(
    `${ctx.distributed ? "distributed" : "group"} mode: ${flows} flows measured; ${after} samples after ${removal(ctx).name} was removed; the longest gap between two samples of one flow ${(longest.gap * 1000).toFixed(0)} ms (${longest.flow}), limit ${GROUP_DEMO.maxGapSeconds * 1000} ms: ${ok ? "measurement went on across the renewal" : "A GAP"}`,
  );
  return ok;
}

// pdm status: the attached data path's counters, flows and cost.

import { Command } from "@commander-js/extra-typings";
import { formatCount, formatDuration } from "../../analyzer/index.ts";
import { transportName } from "../../pdm/index.ts";
import {
  attachedInterfaces,
  isProtectedLayout,
  readStatus,
  type InterfaceStatus,
} from "../../probes/datapath/index.ts";
import type { AgentStatusFile } from "../agent-status-file.ts";

function renderStatus(s: InterfaceStatus, opts: { flows?: number } = {}): string {
  const lines: string[] = [];
  const o = s.state?.options;
  lines.push(
    `${s.ifname}: ${o ? `${o.readOnly ? "reading" : `stamping ${o.layout}${isProtectedLayout(o.layout) ? ` (${o.aead ?? "chacha20-poly1305"})` : ""}`}${o.strip ? ", stripping on ingress" : ""}, attached ${s.state?.attachedAt}` : "attached (no state file)"}`,
  );
  for (const [dir, p] of [
    ["egress", s.programs.egress],
    ["ingress", s.programs.ingress],
  ] as const) {
    const cost =
      p.runCount > 0
        ? `, ${formatCount(p.runCount)} runs, ${Math.round(p.runTimeNs / p.runCount)} ns/run`
        : " (run time: sysctl kernel.bpf_stats_enabled=1)";
    lines.push(`  ${dir.padEnd(7)} program id ${p.id}, ${p.instructions} instructions${cost}`);
  }
  const nonZero = Object.entries(s.counters).filter(([, v]) => v > 0);
  lines.push(
    `  counters: ${nonZero.length ? nonZero.map(([k, v]) => `${k} ${formatCount(v)}`).join(", ") : "all zero"}`,
  );
  lines.push(`  global pointers: link-local ${s.globalPointers.linkLocal}, global ${s.globalPointers.global}`);
  lines.push(`  flows: ${s.flows.length}`);
  const shown = [...s.flows]
    .sort((a, b) => b.txPackets + b.rxPackets - (a.txPackets + a.rxPackets))
    .slice(0, opts.flows ?? 20);
  if (shown.length) {
    const header = ["flow (local -> remote)", "sent", "recv", "PSN next", "Kri", "peer DeltaTLR", "peer DeltaTLS"];
    const rows = shown.map((f) => [
      `${transportName(f.proto) ?? f.proto} [${f.local}]:${f.localPort} -> [${f.remote}]:${f.remotePort}`,
      formatCount(f.txPackets),
      formatCount(f.rxPackets),
      String(f.psnNext),
      String(f.kri),
      formatDuration(f.peerDeltaTlrNs),
      formatDuration(f.peerDeltaTlsNs),
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const fmt = (r: string[]): string =>
      "  " + r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
    lines.push(fmt(header));
    for (const r of rows) lines.push(fmt(r));
    if (s.flows.length > shown.length) lines.push(`  ... and ${s.flows.length - shown.length} more (--flows N)`);
  }
  return lines.join("\n");
}

function renderAgentStatus(file: AgentStatusFile): string {
  const s = file.status;
  const age = Math.round((Date.now() - Date.parse(file.writtenAt)) / 1000);
  const lines = [`agent ${s.name} (pid ${file.pid}, ${s.roles.join(", ")}), status written ${age} s ago`];
  const at = (ms: number | undefined): string => (ms === undefined ? "-" : new Date(ms).toISOString());
  if (s.group) {
    const g = s.group;
    lines.push(
      `  group: generation ${g.generation ?? "none yet"}${g.keyId ? ` (keyId ${g.keyId})` : ""}, effective ${at(g.effectiveAt)}`,
      `  renews next: ${at(g.renewsAt)} (rotation period; sooner on a join, a leave, a member's request, pdm keys renew)`,
      `  renewals ${g.stats.renewals}, joins ${g.stats.joins}, leaves ${g.stats.leaves}, dropped ${g.stats.dropped}` +
        (g.stats.lastRenewalMs !== undefined
          ? `, last renewal ${g.stats.lastRenewalMs} ms (scrypt ${g.stats.lastScryptMs} ms, longest event-loop stall ${g.stats.lastRenewalLoopStallMs ?? "-"} ms)`
          : ""),
      `  refused: ${
        Object.entries(g.stats.refused)
          .map(([k, v]) => `${k} ${v}`)
          .join(", ") || "none"
      }`,
      `  members (${g.members.length}, in membership order):`,
    );
    g.members.forEach((m, i) =>
      lines.push(`    ${String(i + 1).padStart(3)}. ${m.name}  joined ${at(m.joinedAt)}  ${m.id.slice(0, 23)}...`),
    );
  }
  if (s.member) {
    const m = s.member;
    lines.push(
      `  group member of ${m.master}: newest generation ${m.generation ?? "none yet"}, sealing with ${m.sealingGeneration ?? "none"}${m.sealingKeyId ? ` (keyId ${m.sealingKeyId})` : ""}`,
    );
    const d = m.distributed;
    if (d) {
      const drops = Object.entries({ ...d.dropped, ...d.refused }).filter(([, v]) => v > 0);
      lines.push(
        `  distributed: member id ${d.memberId}, MI ${d.mi}, MN ${d.mn}; key server ${d.keyServer ?? "none elected"}${d.isKeyServer ? " (this member)" : ""}`,
        `  live: ${d.live.join(", ") || "none"}; potential: ${d.potential.join(", ") || "none"}`,
        `  generations: ${d.generations.map((g) => `${g.generation} (${g.keyId}${g.sealing ? ", sealing" : ", receiving"})`).join(", ") || "none"}`,
        `  dropped: ${drops.map(([k, v]) => `${k} ${v}`).join(", ") || "none"}`,
      );
    }
  }
  if (s.generations.length) {
    lines.push(`  generations held: ${s.generations.map((g) => `${g.generation} (${g.keyId})`).join(", ")}`);
  }
  if (s.kernelKeys) {
    lines.push(
      `  kernel keys: ${Object.entries(s.kernelKeys)
        .map(([n, v]) => `${n} ${String(v)}`)
        .join(", ")}`,
    );
  }
  return lines.join("\n");
}

export function statusCommand() {
  return new Command("status")
    .summary("counters, flows and program cost of the attached data path")
    .description(
      `Show, for each interface PDM is attached to (or the one given): the layout,
the programs' run count and cost per run (when kernel.bpf_stats_enabled=1), the
counters (stamped, read, skipped_exthdr, skipped_mtu, malformed, ...), the Global
Pointers and the busiest flows with the delays the peer last reported.`,
    )
    .option("-i, --interface <name>", "only this interface")
    .option(
      "--agent <file>",
      "show the agent whose status file this is (pdm agent --status-file): a group's members, generation, next renewal",
    )
    .option("--flows <n>", "flows to list per interface", (v) => Number(v), 20)
    .option("--json", "machine-readable output")
    .action(async (opts) => {
      if (opts.agent) {
        const { readAgentStatusFile } = await import("../agent-status-file.ts");
        const file = readAgentStatusFile(opts.agent);
        process.stdout.write(opts.json ? JSON.stringify(file, null, 2) + "\n" : renderAgentStatus(file) + "\n");
        return;
      }
      const names = opts.interface ? [opts.interface] : attachedInterfaces();
      if (names.length === 0) {
        process.stdout.write("PDM is not attached to any interface (pdm attach -i IFACE)\n");
        return;
      }
      const all = names.map((n) => readStatus(n, { flowLimit: opts.json ? undefined : 100_000 }));
      if (opts.json) process.stdout.write(JSON.stringify(all, null, 2) + "\n");
      else process.stdout.write(all.map((s) => renderStatus(s, { flows: opts.flows })).join("\n\n") + "\n");
    });
}

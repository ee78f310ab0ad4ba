// The live demo's second half: what the operator and the analyzer see. `pdm status` on
// a reader, the key log exported by the router as an authorized analyzer, everything
// stopped and detached, then the router's capture analyzed with that key log: the
// per-flow table, report.html and a PNG chart.

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  analyzeCapture,
  fileSource,
  readCapture,
  renderHtmlReport,
  renderTable,
  timeSeriesChart,
  type AnalysisResult,
} from "../../analyzer/index.ts";
import { formatIpv6Address, ipv6Offset, parseIpv6 } from "../../pdm/index.ts";
import type { LabProcess } from "../../lab/index.ts";
import { renderChartPng } from "../report-png.ts";
import { HOST_IF } from "./topology.ts";
import { detachReaders, type Deployment } from "./deploy.ts";
import { indent, PDM, type DemoContext } from "./context.ts";

export interface Measurement {
  result: AnalysisResult;
  /** Kri rotations seen in the capture (F bit flips). */
  kriFlips: number;
}

export async function measure(ctx: DemoContext, d: Deployment, servers: LabProcess[]): Promise<Measurement> {
  const { lab, out, say, elapsed } = ctx;
  say(`\n[${elapsed()}] pdm status -i eth0 on rc1:`);
  say(indent(lab.run(d.topo.ns.rc1!, [...PDM, "status", "-i", HOST_IF]).trimEnd()));

  // In the distributed demo the master was stopped half-way: nothing to show then.
  const masterRunning = d.master?.agent.child.exitCode === null && d.master.agent.child.signalCode === null;
  if (d.master && masterRunning) {
    say(`\n[${elapsed()}] pdm status --agent ${d.master.statusFile} (the group master, at the router):`);
    say(indent(lab.run(d.topo.router, [...PDM, "status", "--agent", d.master.statusFile]).trimEnd()));
  }
  if (d.memberStatusFile) {
    say(`\n[${elapsed()}] pdm status --agent ${d.memberStatusFile("rc1")} (a member, rc1):`);
    say(indent(lab.run(d.topo.ns.rc1!, [...PDM, "status", "--agent", d.memberStatusFile("rc1")]).trimEnd()));
  }
  await d.collectKeys();
  say(
    d.memberStatusFile
      ? `\n[${elapsed()}] key log: the members' own key logs merged (no server holds one) -> ${d.files.keys} (0600)`
      : `\n[${elapsed()}] key log exported by the router as an authorized analyzer at each renewal (mutual TLS, analyzer certificate) -> ${d.files.keys} (0600)`,
  );

  await lab.stop(d.capture, "SIGINT");
  for (const s of servers) await lab.stop(s);
  if (d.master) {
    // The master first: members stopping one by one would each make a generation.
    await lab.stop(d.master.agent);
    writeFileSync(join(out, "logs", "gm.log"), d.master.agent.output().stderr, { mode: 0o600 });
  }
  for (const [name, a] of d.agents) {
    await lab.stop(a);
    writeFileSync(join(out, "logs", `${name}.log`), a.output().stderr, { mode: 0o600 });
  }
  for (const b of d.bridges) await lab.stop(b);
  const kriFlips = await countKriRotations(d.files.capture);

  detachReaders(ctx, d.topo);
  lab.teardown();
  say(`[${elapsed()}] detached and torn down: namespaces, programs, pins and processes removed`);

  // Analysis, as the authorized analyzer at the router would do it.
  const result = await analyzeCapture({ input: d.files.capture, keysPath: d.files.keys });
  say(
    `\npdm analyze -r ${d.files.capture} -k ${d.files.keys}   (flows with PDM; ${result.flows.filter((f) => f.pdmPackets === 0).length} without, such as neighbor discovery and the writers' TLS, in the report)\n`,
  );
  say(renderTable({ ...result, flows: result.flows.filter((f) => f.pdmPackets > 0) }, { width: 200 }));
  writeFileSync(d.files.report, renderHtmlReport(result));
  await renderChartPng(timeSeriesChart(result, "responseTimeNs"), d.files.png);
  say(`\nwrote ${d.files.report} and ${d.files.png}`);
  return { result, kriFlips };
}

/** Kri rotations the writers made: flips of the F bit within each direction of each flow. */
async function countKriRotations(file: string): Promise<number> {
  const lastF = new Map<string, number>();
  let flips = 0;
  const source = await fileSource(file);
  try {
    await readCapture(source, (p) => {
      const at = ipv6Offset(p.linkType, p.data, p.data.length);
      if (at < 0) return;
      const parsed = parseIpv6(p.data, at);
      if (!parsed.ok) return;
      const v = parsed.value;
      if (v.pdm?.layout !== "v2-clear" && v.pdm?.layout !== "v2-protected") return; // F is in the clear in both
      const key = `${formatIpv6Address(p.data.subarray(v.srcOffset, v.srcOffset + 16))} ${formatIpv6Address(p.data.subarray(v.dstOffset, v.dstOffset + 16))} ${v.protocol} ${v.sport} ${v.dport}`;
      const f = v.pdm.fBit;
      const before = lastF.get(key);
      if (before !== undefined && before !== f) flips += 1;
      lastF.set(key, f);
    });
  } finally {
    await source.close();
  }
  return flips;
}

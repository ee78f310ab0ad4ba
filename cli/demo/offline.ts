// pdm demo without the live deployment: why it cannot run here (one sentence), and the
// analysis of a bundled PDMv2 capture with the key log an authorized analyzer holds,
// every figure checked against the delays its generator injected.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { analyzeCapture, compareWithTruth, formatDuration, readTruth, renderTable } from "../../analyzer/index.ts";
import { packageRoot } from "../../pdm/index.ts";

const ROOT = packageRoot();
const FIXTURES = join(ROOT, "fixtures", "captures");
const NAMES = {
  serverDelayNs: "server delay",
  roundTripDelayNs: "round-trip delay",
  responseTimeNs: "response time",
} as const;

/** Why the live demo cannot run on this machine, as one sentence; undefined if it can. */
export function liveDemoUnavailable(): string | undefined {
  if (process.platform !== "linux") return "The live demo needs Linux (network namespaces and eBPF)";
  if (process.getuid?.() !== 0) return "The live demo needs root to create network namespaces and load eBPF programs";
  if (
    !existsSync(join(ROOT, "bpf", "build", "pdm.bpf.o")) ||
    !existsSync(join(ROOT, "probes", "datapath", "native", "build", "pdm_bpf.node"))
  )
    return "The eBPF programs or their loader are not built (run bash scripts/setup.sh)";
  for (const tool of ["ip", "nsenter", "ethtool", "ping"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0)
      return `The live demo needs ${tool}, which is not installed (run bash scripts/setup.sh)`;
  }
  if (spawnSync("ip", ["netns", "list"]).status !== 0)
    return "This kernel or container does not allow network namespaces";
  return undefined;
}

export async function offlineDemo(name: string): Promise<void> {
  const base = name.includes("/") ? name : join(FIXTURES, name);
  const truth = readTruth(`${base}.truth.json`);
  const captureFile = `${base}.${truth.layout === "rfc8250" || name.endsWith("chacha") ? "pcap" : "pcapng"}`;
  const keys = truth.layout === "v2-protected" ? `${base}.keys` : undefined;
  console.log(`pdm demo: offline mode, analyzing the bundled capture ${captureFile}`);
  console.log(`  ${truth.description ?? ""}`);
  if (keys) console.log(`  key log: ${keys}`);
  console.log("");
  const result = await analyzeCapture({ input: captureFile, keysPath: keys });
  console.log(renderTable(result));
  console.log("");
  console.log("measured vs injected (means over each flow's samples):");
  let worst = 0;
  for (const c of compareWithTruth(result, truth)) {
    console.log(
      `  ${c.flow.transport} [${c.flow.client}]:${c.flow.clientPort} -> [${c.flow.server}]:${c.flow.serverPort}  samples ${c.samplesMeasured}/${c.samplesInjected}`,
    );
    for (const m of c.metrics) {
      const rel = m.injected && m.injected.mean !== 0 ? Math.abs(m.errorNs / m.injected.mean) : 0;
      worst = Math.max(worst, rel);
      console.log(
        `    ${NAMES[m.metric].padEnd(17)} injected ${formatDuration(m.injected?.mean).padStart(9)}  measured ${formatDuration(m.measured?.mean).padStart(9)}  error ${formatDuration(m.errorNs).padStart(8)} (${(rel * 100).toFixed(4)} %)`,
      );
    }
  }
  console.log("");
  console.log(
    `largest relative error: ${(worst * 100).toFixed(4)} % (PDM's 16-bit time encoding truncates by at most 2^-15 = 0.0031 % per field)`,
  );
}

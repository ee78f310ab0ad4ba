// pdm demo: the README's main job. As root on a machine with eBPF it runs the live
// deployment (cli/demo/live.ts); otherwise, or with --offline, it analyzes the
// bundled protected capture with its key log, after one sentence saying why.

import { Command } from "@commander-js/extra-typings";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { analyzeCapture, compareWithTruth, formatDuration, readTruth, renderTable } from "../../analyzer/index.ts";
import { UsageError } from "../../pdm/index.ts";
import { packageRoot } from "../../probes/datapath/index.ts";

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

export function demoCommand(): Command<[], { offline?: true; duration: number; out: string; capture: string }> {
  return new Command("demo")
    .summary("deploy PDMv2 on an embedded topology, measure it, and check it against known delays")
    .description(
      `Build a small network in namespaces on this machine (a router between a writer
client and two reader clients on one side, a writer server and two reader
servers on the other, 10 ms and 30 ms round trips with jitter and loss), run
the registration agents over mutual TLS with a private CA, attach the eBPF
programs on every reader (PDMv2 clear layout: the protected layout is not yet
sealed in the kernel), drive real HTTP, UDP and ping traffic with known
server delays, capture at the router, and analyze the capture: the per-flow
table, report.html, a PNG chart, and every measured figure next to the value
injected, with its error. Everything is removed afterwards, on Ctrl-C too.
Takes about a minute; needs root and eBPF.

Without root or eBPF (or with --offline) it says why in one sentence and
analyzes a bundled PDMv2 capture (AES-128-GCM, keys rotating every 25 packets)
with the key log an authorized analyzer holds, checking every figure against
the delays its generator injected.`,
    )
    .option("--offline", "analyze the bundled capture instead of deploying")
    .option(
      "--duration <seconds>",
      "seconds of workload in the live demo",
      (v) => {
        const n = Number(v);
        if (!Number.isFinite(n) || n < 5 || n > 600)
          throw new UsageError(`--duration needs 5 to 600 seconds, got "${v}"`);
        return n;
      },
      30,
    )
    .option(
      "-o, --out <dir>",
      "where the live demo writes the capture, key log, report, chart, certificates and logs",
      "out/demo",
    )
    .option(
      "--capture <name>",
      "offline: bundled capture to use: a name in fixtures/captures/, or a path without extension",
      "v2-protected",
    )
    .addHelpText(
      "after",
      `
Examples:
  sudo pdm demo                      # the live deployment, about a minute
  sudo pdm demo --duration 60 -o /tmp/pdm-demo
  pdm demo --offline                 # the bundled capture, no root needed`,
    )
    .action(async (opts) => {
      const why = opts.offline ? undefined : liveDemoUnavailable();
      if (!opts.offline && !why) {
        // Loaded here: the live demo pulls in the agent (X.509, HPKE), which analysis does not need.
        const { DemoUnavailable, runLiveDemo } = await import("../demo/live.ts");
        try {
          const r = await runLiveDemo({ duration: opts.duration, outDir: opts.out, say: (l) => console.log(l) });
          process.exitCode = r.ok ? 0 : 1;
          return;
        } catch (e) {
          if (!(e instanceof DemoUnavailable)) throw e;
          console.log(`${e.message}; analyzing the bundled capture instead.\n`);
        }
      } else if (why) {
        console.log(`${why}; analyzing the bundled capture instead.\n`);
      }
      await offlineDemo(opts.capture);
    });
}

async function offlineDemo(name: string): Promise<void> {
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

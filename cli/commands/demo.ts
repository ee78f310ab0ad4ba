// pdm demo: the README's main job. As root on a machine with eBPF it runs the live
// deployment (cli/demo/live.ts); otherwise, or with --offline, it analyzes the
// bundled protected capture with its key log (cli/demo/offline.ts), after one
// sentence saying why.

import { Command, Option } from "@commander-js/extra-typings";
import { CheckFailed, UsageError } from "../../pdm/index.ts";
import { liveDemoUnavailable, offlineDemo } from "../demo/offline.ts";

export function demoCommand(): Command<
  [],
  { offline?: true; group?: true; distributed?: true; duration: number; out: string; capture: string }
> {
  return new Command("demo")
    .summary("deploy PDMv2 on an embedded topology, measure it, and check it against known delays")
    .description(
      `Build a small network in namespaces on this machine (a router between a writer
client and two reader clients on one side, a writer server and two reader
servers on the other, 10 ms and 30 ms round trips with jitter and loss), run
the registration agents over mutual TLS with a private CA, attach the eBPF
programs on every reader (PDMv2 protected, sealed and opened in the kernel
under the keys the agents install), drive real HTTP, UDP and ping traffic
with known server delays, capture at the router, and analyze the capture
with the key log the router exports as an authorized analyzer: the per-flow
table, report.html, a PNG chart, and every measured figure next to the value
injected, with its error. Everything is removed afterwards, on Ctrl-C too.
Takes about a minute; needs root and eBPF.

Without root or eBPF (or with --offline) it says why in one sentence and
analyzes a bundled PDMv2 capture (AES-128-GCM, keys rotating every 25 packets)
with the key log an authorized analyzer holds, checking every figure against
the delays its generator injected.`,
    )
    .option("--offline", "analyze the bundled capture instead of deploying")
    .addOption(
      new Option(
        "--distributed",
        "distributed mode: the six hosts agree on keys among themselves with no server (Key Selection Protocol); the key server they elect is stopped half-way, another is elected, and measurement must go on",
      ).conflicts("group"),
    )
    .option(
      "--group",
      "group master mode: the six hosts are group members of a master at the router; one is removed half-way, the group renews, and measurement must go on without a gap",
    )
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
  sudo pdm demo --group              # the same hosts as one group (groups.md 1)
  sudo pdm demo --distributed        # the same hosts, no server at all (groups.md 2)
  pdm demo --offline                 # the bundled capture, no root needed`,
    )
    .action(async (opts) => {
      const why = opts.offline ? undefined : liveDemoUnavailable();
      if (!opts.offline && !why) {
        // Loaded here: the live demo pulls in the agent (X.509, HPKE), which analysis does not need.
        const { DemoUnavailable, runLiveDemo } = await import("../demo/live.ts");
        try {
          const r = await runLiveDemo({
            duration: opts.duration,
            outDir: opts.out,
            group: opts.group,
            distributed: opts.distributed,
            say: (l) => console.log(l),
          });
          if (!r.ok) throw new CheckFailed("some measured figures are outside their tolerance (see above)");
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

// The `pdm` command: one program for capture, data path, agent, keys and analysis.
// Commands throw typed errors; only this file turns them into a message and an exit
// code, which bin/pdm.js, the one place the process exits, exits with.

import { Command, CommanderError } from "@commander-js/extra-typings";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Interrupted, packageRoot, PdmError, UsageError } from "../pdm/index.ts";
import { agentCommand } from "./commands/agent.ts";
import { analyzeCommand } from "./commands/analyze.ts";
import { attachCommand } from "./commands/attach.ts";
import { caCommand } from "./commands/ca.ts";
import { captureCommand } from "./commands/capture.ts";
import { demoCommand } from "./commands/demo.ts";
import { detachCommand } from "./commands/detach.ts";
import { keysCommand } from "./commands/keys.ts";
import { reportCommand } from "./commands/report.ts";
import { serviceCommand } from "./commands/service.ts";
import { statusCommand } from "./commands/status.ts";

const pkg = JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8")) as { version: string };

export function buildProgram(): Command {
  const program = new Command("pdm")
    .description(
      `Measure IPv6 latency with PDM (RFC 8250) and encrypted PDMv2.

Hosts stamp their IPv6 traffic with a Performance and Diagnostic Metrics option
(in the kernel, with eBPF); anyone holding the keys reads, from the packets
alone, each flow's server delay, round-trip delay and response time.`,
    )
    .version(pkg.version, "-V, --version", "print the version")
    .showHelpAfterError("(run with --help for usage)")
    .addCommand(captureCommand())
    .addCommand(attachCommand())
    .addCommand(detachCommand())
    .addCommand(statusCommand())
    .addCommand(caCommand())
    .addCommand(agentCommand())
    .addCommand(keysCommand())
    .addCommand(analyzeCommand())
    .addCommand(reportCommand())
    .addCommand(serviceCommand())
    .addCommand(demoCommand());
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  program.exitOverride();
  for (const c of program.commands) c.exitOverride();
  try {
    await program.parseAsync(argv, { from: "user" });
    // For benchmarks: the peak resident set of this process, on stderr.
    if (process.env.PDM_REPORT_PEAK_RSS) process.stderr.write(`peak-rss-kib ${process.resourceUsage().maxRSS}\n`);
    return 0;
  } catch (e) {
    // Commander has printed help (exit 0) or a usage mistake, which exits 2 like ours.
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (e instanceof PdmError) {
      process.stderr.write(`pdm: ${e.message}\n`);
      if (e.hint) process.stderr.write(`  ${e.hint}\n`);
      return e instanceof UsageError ? 2 : e instanceof Interrupted ? 130 : 1;
    }
    // A system call that failed where no command expected it (a disk error, a full
    // disk): one sentence naming the call and the file, not a stack trace.
    const errno = e as NodeJS.ErrnoException;
    if (typeof errno?.code === "string" && /^E[A-Z0-9]+$/.test(errno.code) && errno.syscall) {
      process.stderr.write(`pdm: ${errno.syscall} failed: ${errno.code}${errno.path ? ` (${errno.path})` : ""}\n`);
      return 1;
    }
    throw e;
  }
}

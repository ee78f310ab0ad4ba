// pdm analyze: read a capture, print per-flow PDM delays.

import { Command, Option } from "@commander-js/extra-typings";
import { aeadBackend, renderCsv, renderJson, renderSamplesCsv, renderTable } from "../../analyzer/index.ts";
import { UsageError } from "../../pdm/index.ts";
import { analyzeWithProgress, parseThreads } from "../progress.ts";

export function analyzeCommand(): Command<
  [],
  {
    read: string;
    keys?: string;
    format: "table" | "json" | "csv";
    flow?: string;
    samples?: true;
    threads?: number;
    keepImplausible?: true;
  }
> {
  return new Command("analyze")
    .summary("per-flow server delay, round-trip delay and response time from a capture")
    .description(
      `Read a pcap or pcapng capture (or stdin with -r -), decode every PDM option
(RFC 8250, PDMv2 clear, PDMv2 protected) and report, per flow:

  server delay      time the server took to answer      DeltaTLR
  round-trip delay  the network's share of an exchange  DeltaTLS - DeltaTLR
  response time     what the client waited, end to end  DeltaTLS

(DeltaTLR from the server's answer, DeltaTLS from the client's next packet.)

The figures come from the PDM fields, not from capture timestamps, so a capture
taken at either end or mid-path gives the same answer. Protected options need
the key log of an authorized analyzer (--keys); options that fail their tag
check are counted, never reported.

Every PDMv2 layout is read: -02's (clear and protected), and the later drafts'
by type and length: 0x0F/22 (-09 to -14, the current draft), layout -15 (type
0x1E, clear or protected; its key index from the Epoch), and with --draft05
0x0F/18 as -05 to -08. Each flow's layout is named in every format.

Protected options of -02's layout are opened by a native module that keeps
one OpenSSL context per key (built by the set-up), or by node:crypto where it
is not built or PDM_NO_NATIVE=1: the same results, several times slower.
--verbose says which.`,
    )
    .requiredOption("-r, --read <file>", 'capture file (pcap or pcapng); "-" reads stdin')
    .option("-k, --keys <file>", "key log (PDMV2_SHARED / PDMV2_CLIENT lines) to open protected options")
    .addOption(
      new Option("-f, --format <format>", "output format")
        .choices(["table", "json", "csv"] as const)
        .default("table" as const),
    )
    .option("--flow <filter>", "only flows whose address, port or transport contains this text")
    .option("--samples", "with -f json or csv: every sample (time and the three delays) instead of per-flow statistics")
    .option(
      "-j, --threads <n>",
      "worker threads (default: one per core with --keys on files of 8 MiB or more, else 1)",
      parseThreads,
    )
    .option("--keep-implausible", "keep samples whose delay exceeds the time their flow was seen (counted either way)")
    .option("--draft05", "read 0x0F options of Opt Data Len 18 as drafts -05 to -08 (Epoch), not -02")
    .option(
      "--draft15-type <type>",
      "the option type of the -15 layout (default 0x1E, until IANA assigns one)",
      parseOptionType,
    )
    .option("-v, --verbose", "say on stderr what opens the protected options (the native module or node:crypto)")
    .addHelpText(
      "after",
      `
Examples:
  pdm analyze -r fixtures/captures/rfc8250-udp.pcap
  pdm analyze -r fixtures/captures/v2-protected.pcapng -k fixtures/captures/v2-protected.keys
  tcpdump -i eth0 -w - ip6 | pdm analyze -r - --format csv
  pdm analyze -r capture.pcapng -f csv --samples > samples.csv`,
    )
    .action(async (opts) => {
      if (opts.verbose && opts.keys) process.stderr.write(`pdm analyze: protected options ${aeadBackend().note}\n`);
      const result = await analyzeWithProgress({
        input: opts.read,
        keysPath: opts.keys,
        threads: opts.threads,
        keepImplausible: opts.keepImplausible,
        layouts: { draft05: opts.draft05, draft15Type: opts.draft15Type },
      });
      if (opts.flow) {
        const filter = opts.flow;
        result.flows = result.flows.filter((f) =>
          `${f.transport} ${f.client} ${f.clientPort} ${f.server} ${f.serverPort}`.includes(filter),
        );
        if (result.flows.length === 0) throw new UsageError(`no flow matches --flow "${filter}"`);
      }
      if (opts.samples && opts.format === "table") throw new UsageError("--samples needs --format json or csv");
      const out =
        opts.format === "json"
          ? renderJson(result, { samples: opts.samples })
          : opts.format === "csv"
            ? opts.samples
              ? renderSamplesCsv(result)
              : renderCsv(result)
            : renderTable(result);
      process.stdout.write(out.endsWith("\n") ? out : `${out}\n`);
    });
}

/** An option type, decimal or 0x hex: 2 to 255, not PDM's 0x0F. */
export function parseOptionType(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 2 || n > 255 || n === 0x0f)
    throw new UsageError(`"${text}" is not an option type for the -15 layout (2 to 255, not 0x0F; e.g. 0x1E)`);
  return n;
}

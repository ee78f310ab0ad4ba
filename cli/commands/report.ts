// pdm report: a self-contained HTML report (and optionally a PNG chart) of a capture.

import { Command } from "@commander-js/extra-typings";
import { writeFileSync } from "node:fs";
import { UsageError } from "../../pdm/index.ts";
import { analyzeWithProgress, parseThreads } from "../progress.ts";
import { renderChartPng } from "../report-png.ts";
import { renderHtmlReport, timeSeriesChart } from "../../analyzer/index.ts";

export function reportCommand(): Command<
  [],
  { read: string; keys?: string; output: string; png?: string; threads?: number; keepImplausible?: true }
> {
  return new Command("report")
    .summary("write a self-contained HTML report with charts (and a PNG chart)")
    .description(
      `Analyze a capture like 'pdm analyze' and write one HTML file that opens
anywhere without a network: time series of server delay, round-trip delay and
response time per flow, their distributions (CDF), the per-flow table and every
counted anomaly. Chart.js is bundled inside the file. --png renders the
response-time chart to a PNG image without a browser.`,
    )
    .requiredOption("-r, --read <file>", 'capture file (pcap or pcapng); "-" reads stdin')
    .option("-k, --keys <file>", "key log to open PDMv2 protected options")
    .requiredOption("-o, --output <file>", "HTML file to write")
    .option("--png <file>", "also write the response-time chart as PNG")
    .option(
      "-j, --threads <n>",
      "worker threads (default: one per core with --keys on files of 8 MiB or more, else 1)",
      parseThreads,
    )
    .option("--keep-implausible", "keep samples whose delay exceeds the time their flow was seen (counted either way)")
    .addHelpText(
      "after",
      `\nExample:\n  pdm report -r fixtures/captures/v2-protected.pcapng -k fixtures/captures/v2-protected.keys -o report.html --png report.png`,
    )
    .action(async (opts) => {
      if (!opts.output.endsWith(".html") && !opts.output.endsWith(".htm"))
        throw new UsageError(`the report is HTML: name it something.html, not ${opts.output}`);
      const result = await analyzeWithProgress({
        input: opts.read,
        keysPath: opts.keys,
        threads: opts.threads,
        keepImplausible: opts.keepImplausible,
      });
      writeFileSync(opts.output, renderHtmlReport(result));
      console.log(
        `wrote ${opts.output} (${result.flows.length} flows, ${result.flows.reduce((n, f) => n + (f.responseTimeNs?.count ?? 0), 0)} samples)`,
      );
      if (opts.png) {
        await renderChartPng(timeSeriesChart(result, "responseTimeNs"), opts.png);
        console.log(`wrote ${opts.png}`);
      }
    });
}

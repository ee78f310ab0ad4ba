// pdm capture: live capture like tcpdump (libpcap), or the eBPF programs' per-packet
// records (--source ebpf), with a live per-flow table of PDM delays.

import { Command, Option } from "@commander-js/extra-typings";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  aeadBackend,
  AnalysisSession,
  DEFAULT_LIVE_LIMITS,
  openPcapWriter,
  openPcapngWriter,
  renderJson,
  renderTable,
  type CaptureWriter,
} from "../../analyzer/index.ts";
import { KeyRing, packageRoot, readKeyLog, UsageError } from "../../pdm/index.ts";
import { openLiveSource, untilStopped } from "../../probes/live/index.ts";

interface CaptureOpts {
  interface: string;
  write?: string;
  count?: number;
  duration?: number;
  quiet?: true;
  source: "pcap" | "ebpf";
  snaplen: number;
  keys?: string;
  interval: number;
  format: "table" | "json";
  idleTimeout: number;
  maxFlows: number;
  maxListed: number;
  metrics?: string;
}

export function captureCommand() {
  return new Command("capture")
    .summary("capture live traffic and show per-flow PDM delays as they come")
    .description(
      `Capture on an interface and show, refreshed every second, the server delay,
round-trip delay and response time of each flow carrying PDM.

  --source pcap  (default) libpcap, like tcpdump: every IPv6 packet matching
                 FILTER, optionally written to a pcap/pcapng file with -w.
  --source ebpf  the records the attached PDM programs emit for each packet
                 they stamp or read (pdm attach): no packet copies, lowest
                 overhead, nothing to write. Both directions are seen here.

A stamped packet's next header is Destination Options, so a filter such as
"udp port 53" does not match it: use "ip6 protochain 17", or no filter.

Stops on Ctrl-C, after -c packets or after --duration seconds, then prints the
final table (unless -q) and how many packets the kernel dropped.

Memory stays bounded however long it runs: each flow keeps its delays as
histograms (count, min, max and mean exact, percentiles within 0.5 %), a flow
without packets for --idle-timeout seconds ends (its figures stay in the report;
if it comes back it is joined to them), at most --max-flows flows are tracked at
once, and the report lists at most --max-listed ended flows, the worst first.
Every packet stays in the totals. For exact percentiles of every sample, write
the packets with -w and run pdm analyze on the file.`,
    )
    .argument("[filter...]", 'capture filter in tcpdump syntax (pcap source; default "ip6")')
    .requiredOption("-i, --interface <name>", "network interface")
    .option("-w, --write <file>", "write packets to this file: .pcapng for pcapng, otherwise pcap (ns); - for stdout")
    .option("-c, --count <n>", "stop after this many packets (records with --source ebpf)", (v) => positive(v, "-c"))
    .option("--duration <seconds>", "stop after this long", (v) => positive(v, "--duration"))
    .option("-q, --quiet", "no table, only the summary line")
    .addOption(
      new Option("--source <source>", "where packets come from")
        .choices(["pcap", "ebpf"] as const)
        .default("pcap" as const),
    )
    .option(
      "-s, --snaplen <bytes>",
      "bytes kept per packet (headers and PDM fit in 256)",
      (v) => positive(v, "--snaplen"),
      256,
    )
    .option("-k, --keys <file>", "key log to open protected PDMv2 options")
    .addOption(
      new Option("-f, --format <format>", "final report format")
        .choices(["table", "json"] as const)
        .default("table" as const),
    )
    .option("--interval <seconds>", "table refresh period on a terminal", (v) => positive(v, "--interval"), 1)
    .option(
      "--idle-timeout <seconds>",
      "a flow without packets this long ends (its figures are kept)",
      (v) => positive(v, "--idle-timeout"),
      DEFAULT_LIVE_LIMITS.idleSec,
    )
    .option(
      "--max-flows <n>",
      "flows tracked at once; past it the longest idle end early",
      (v) => wholeNumber(v, "--max-flows"),
      DEFAULT_LIVE_LIMITS.trackedFlows,
    )
    .option(
      "--max-listed <n>",
      "ended flows kept in the report, worst p99 response time first",
      (v) => wholeNumber(v, "--max-listed"),
      DEFAULT_LIVE_LIMITS.listedFlows,
    )
    .option("--metrics <addr>", "serve Prometheus metrics of what is captured at http://ADDR/metrics (e.g. [::1]:9464)")
    .addHelpText(
      "after",
      `
Examples:
  pdm capture -i eth0                                # live table of every PDM flow
  pdm capture -i eth0 -q --metrics '[::1]:9464'      # for Prometheus (metrics.md)
  pdm capture -i eth0 -w trace.pcapng -c 10000 ip6 protochain 17
  pdm capture -i eth0 --source ebpf --duration 30     # after pdm attach -i eth0`,
    )
    .action(async (filter, opts) => {
      await runCapture(filter, opts as CaptureOpts);
    });
}

function positive(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} needs a positive number, got "${v}"`);
  return n;
}

function wholeNumber(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${flag} needs a whole number of at least 1, got "${v}"`);
  return n;
}

async function runCapture(filter: string[], opts: CaptureOpts): Promise<void> {
  if (opts.source === "ebpf" && opts.write)
    throw new UsageError("--source ebpf delivers records, not packets: nothing to write with -w");
  if (opts.source === "ebpf" && filter.length)
    throw new UsageError(
      "a capture filter applies to --source pcap only (attach --ports/--prefix select flows for eBPF)",
    );
  const keyRing = opts.keys ? new KeyRing(readKeyLog(opts.keys), aeadBackend().backend) : undefined;
  // prom-client loads only when metrics are asked for: it costs every other start.
  const exporter = opts.metrics
    ? new (await import("../capture-metrics.ts")).CaptureMetrics(packageVersion())
    : undefined;
  const session = new AnalysisSession({
    keyRing,
    live: { idleSec: opts.idleTimeout, trackedFlows: opts.maxFlows, listedFlows: opts.maxListed },
    observer: exporter?.observer,
  });
  if (exporter) process.stderr.write(`metrics at ${await exporter.start(opts.metrics!, session)}\n`);
  const live = !opts.quiet && opts.format === "table" && process.stdout.isTTY === true;
  let packets = 0;
  let writer: CaptureWriter | undefined;
  const run = untilStopped(opts.duration);
  const source = openLiveSource(
    {
      kind: opts.source,
      ifname: opts.interface,
      filter: filter.length ? filter.join(" ") : undefined,
      snapLength: opts.snaplen,
    },
    {
      wanted: () => opts.count === undefined || packets < opts.count,
      packet: (p) => {
        packets += 1;
        writer?.write({
          data: p.data,
          tsNs: BigInt(p.tsSec) * 1_000_000_000n + BigInt(p.tsNsec),
          originalLength: p.originalLength,
        });
        session.addFrame(p);
        if (packets === opts.count) run.stop();
      },
      record: (r, startSec) => {
        packets += 1;
        session.addRecord(r, startSec);
        if (packets === opts.count) run.stop();
      },
    },
  );
  if (opts.write) writer = openWriter(opts.write, opts.interface, source.linkType!, source.snapLength!);

  const result = () =>
    session.result(`${opts.interface} (${opts.source})`, {
      format: opts.source === "pcap" ? "live" : "ebpf",
      packets,
      bytes: 0,
      stoppedEarly: undefined,
      warnings: [],
    });
  // On a terminal: as many flows as fit under the header and the anomaly lines.
  const render = (fit: boolean): string =>
    renderTable(result(), {
      width: process.stdout.columns,
      maxFlows: fit ? Math.max(5, (process.stdout.rows ?? 40) - 20) : undefined,
    });
  // Flows idle past --idle-timeout end once a second (packet times are wall-clock times).
  const housekeeping = setInterval(() => session.endIdle(Date.now() / 1e3), 1000);
  const redraw = live ? redrawEvery(opts.interval, () => render(true)) : undefined;
  if (!live && !opts.quiet) process.stderr.write(`capturing on ${opts.interface} (${opts.source}); Ctrl-C to stop\n`);
  await run.ended;
  redraw?.stop();
  clearInterval(housekeeping);
  const { dropped } = source.close();
  writer?.close();
  await exporter?.stop();
  if (!opts.quiet && opts.write !== "-") {
    process.stdout.write(
      opts.format === "json" ? `${renderJson(result())}\n` : `${live ? "\x1b[H\x1b[2J" : ""}${render(false)}\n`,
    );
  }
  process.stderr.write(
    `${packets} ${opts.source === "pcap" ? "packets captured" : "records received"}, ${dropped} dropped by the kernel\n`,
  );
}

/** -w FILE: pcapng when its name says so, otherwise pcap with nanoseconds; "-" is stdout. */
function openWriter(file: string, ifname: string, linkType: number, snapLength: number): CaptureWriter {
  const path = file === "-" ? "/dev/stdout" : file;
  return file.endsWith(".pcapng")
    ? openPcapngWriter(path, [{ linkType, name: ifname, snapLength, tsResolutionPow10: 9 }])
    : openPcapWriter(path, linkType, { nanoseconds: true, snapLength });
}

/**
 * The table redrawn on the terminal every `intervalSec`, or less often when drawing it
 * takes long (many flows): at most a fifth of the time goes to drawing.
 */
function redrawEvery(intervalSec: number, render: () => string): { stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  const draw = (): void => {
    const started = performance.now();
    process.stdout.write(`\x1b[H\x1b[2J${render()}\n`);
    timer = setTimeout(draw, Math.max(intervalSec * 1000, 5 * (performance.now() - started)));
  };
  timer = setTimeout(draw, intervalSec * 1000);
  return { stop: () => clearTimeout(timer) };
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8")) as { version: string }).version;
}

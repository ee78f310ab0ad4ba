// pdm attach | detach | status: the eBPF data path on an interface.

import { Command, Option } from "@commander-js/extra-typings";
import { formatCount, formatDuration } from "../../analyzer/index.ts";
import { transportName, UsageError } from "../../pdm/index.ts";
import {
  attach,
  attachedInterfaces,
  detach,
  readStatus,
  type InterfaceStatus,
  type KernelLayout,
} from "../../probes/datapath/index.ts";

const LAYOUTS: Record<string, KernelLayout> = {
  v1: "rfc8250",
  rfc8250: "rfc8250",
  v2: "v2-clear",
  "v2-clear": "v2-clear",
  "v2-protected": "v2-protected",
};

function parsePorts(text: string): number[] {
  return text.split(",").map((p) => {
    const n = Number(p.trim());
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new UsageError(`"${p}" is not a port (1-65535)`);
    return n;
  });
}

export function attachCommand() {
  return new Command("attach")
    .summary("stamp and read PDM on an interface (eBPF, tc clsact)")
    .description(
      `Load the PDM eBPF programs and attach them to an interface with tc clsact:
egress packets of the selected flows get a Destination Options header with a
PDM option; ingress packets carrying one are read, and update the state the next
stamp needs. Nothing is ever dropped: packets that cannot be stamped (another
extension header, no room under the MTU) are counted and sent as they are.

The programs keep running after this command exits; \`pdm status\` shows their
counters and flows, \`pdm capture --source ebpf\` their per-packet records, and
\`pdm detach\` removes everything attach changed. Route MTUs through the
interface are lowered by the header size (16, 24 or 40 bytes) so full-size
packets still fit; detach restores them. Attaching again replaces the previous
attachment. A flow idle for --flow-timeout seconds is forgotten, with its keys.

With --layout v2-protected each option is sealed with the deployment's AEAD
(--aead) under per-flow keys that the host's reader agent installs as the kernel
asks for them; a packet whose key is not there yet leaves without PDM.

Needs root, a BPF filesystem (mounted at /sys/fs/bpf if missing) and Linux 5.17+
(6.10+ for AES-128-GCM).`,
    )
    .requiredOption("-i, --interface <name>", "network interface")
    .addOption(
      new Option(
        "--layout <layout>",
        "PDM layout to stamp: v1 (RFC 8250), v2 (PDMv2 clear) or v2-protected (sealed; keys from the host's reader agent)",
      )
        .choices(["v1", "v2", "rfc8250", "v2-clear", "v2-protected"] as const)
        .default("v1" as const),
    )
    .option("--ports <list>", "only flows with one of these ports at either end (comma-separated, up to 8)", parsePorts)
    .option("--prefix <prefix...>", "only flows whose remote address is in one of these prefixes (up to 4)")
    .option("--strip", "remove the header on ingress after reading it (gives the receiver its fast path back)")
    .option("--no-events", "do not emit per-packet records (capture --source ebpf needs them)")
    .option("--read-only", "read incoming PDM only, stamp nothing")
    .option("--packets-per-kri <n>", "v2: rotate the Key Rotation Index after this many packets (default 32767)", (v) =>
      Number(v),
    )
    .option(
      "--kri-max-age <ms>",
      "v2: also rotate the Key Rotation Index once it has been in use this long (the rotation policy's age)",
      (v) => Number(v),
    )
    .addOption(
      new Option(
        "--aead <aead>",
        "v2-protected: the deployment's AEAD, as in its suite (aes-128-gcm needs Linux 6.10+ for the kernel's AES)",
      )
        .choices(["aes-128-gcm", "chacha20-poly1305"] as const)
        .default("aes-128-gcm" as const),
    )
    .option(
      "--flow-timeout <seconds>",
      "forget a flow, and its keys, after this long without a packet either way (0: never; a full table stamps no new flow)",
      (v) => Number(v),
      300,
    )
    .option("--no-mtu-room", "leave route MTUs alone (full-size packets are then sent unstamped)")
    .option("--no-offload", "one stamp per wire segment: GSO/TSO off and gso_max_segs 1 (slower; restored on detach)")
    .option("--empty-program", "benchmarks: attach a program that does nothing, to measure the tc hook alone")
    .addHelpText(
      "after",
      `
Examples:
  pdm attach -i eth0                                 # RFC 8250 on every IPv6 TCP/UDP/echo flow
  pdm attach -i eth0 --layout v2 --ports 443,8443     # PDMv2 on two services only
  pdm attach -i eth0 --prefix fd00::/8 --strip
  pdm attach -i eth0 --layout v2-protected            # sealed (AES-128-GCM); run the reader agent with "datapath"
  pdm status -i eth0 && pdm detach -i eth0`,
    )
    .action((opts) => {
      const layout = LAYOUTS[opts.layout]!;
      const state = attach({
        ifname: opts.interface,
        layout,
        ports: opts.ports,
        prefixes: opts.prefix,
        strip: opts.strip,
        events: opts.events,
        readOnly: opts.readOnly,
        maxPacketsPerKri: opts.packetsPerKri,
        maxKriAgeMs: opts.kriMaxAge,
        flowTimeoutS: opts.flowTimeout,
        mtuRoom: opts.mtuRoom,
        noOffload: opts.offload === false,
        emptyProgram: opts.emptyProgram,
        aead: opts.aead,
      });
      const what = opts.emptyProgram
        ? "an empty program (benchmark baseline), measuring nothing in"
        : opts.readOnly
          ? "reading"
          : `stamping ${layout} and reading`;
      process.stdout.write(
        `attached to ${state.ifname} (ifindex ${state.ifindex}): ${what} PDM; programs ${state.progIds.egress} (egress) and ${state.progIds.ingress} (ingress)\n`,
      );
      for (const r of state.routes) process.stdout.write(`  route ${r.dst}: MTU lowered to ${r.mtu}\n`);
      if (state.offloadBefore) process.stdout.write(`  segmentation offload turned off\n`);
      if (layout === "v2-protected") {
        process.stdout.write(
          `  sealing with ${state.options.aead === "chacha20-poly1305" ? "ChaCha20-Poly1305" : "AES-128-GCM"}; keys: installed by this host's reader agent (its config: "datapath": {"interface": "${state.ifname}"}); until then packets leave without PDM (skipped_nokey)\n`,
        );
      }
    });
}

export function detachCommand() {
  return new Command("detach")
    .summary("remove the PDM programs from an interface")
    .description(
      `Remove what \`pdm attach\` added to an interface: its tc filters, the clsact
qdisc if attach created it and nothing else uses it, the route MTU changes, the
offload change, and the pinned maps under /sys/fs/bpf/pdm/<interface>/.`,
    )
    .requiredOption("-i, --interface <name>", "network interface")
    .option("--force", "also clean up after an attach made in a network namespace that no longer exists")
    .action((opts) => {
      const r = detach(opts.interface, { force: opts.force });
      process.stdout.write(
        `detached from ${r.ifname}: ${r.filtersRemoved} tc filters removed${r.qdiscRemoved ? ", clsact qdisc removed" : ""}${r.routesRestored ? `, ${r.routesRestored} route MTUs restored` : ""}${r.offloadRestored ? ", offload restored" : ""}${r.pinsRemoved ? ", pins removed" : ""}\n`,
      );
      for (const p of r.problems) process.stdout.write(`  note: ${p}\n`);
    });
}

export function renderStatus(s: InterfaceStatus, opts: { flows?: number } = {}): string {
  const lines: string[] = [];
  const o = s.state?.options;
  lines.push(
    `${s.ifname}: ${o ? `${o.readOnly ? "reading" : `stamping ${o.layout}${o.layout === "v2-protected" ? ` (${o.aead ?? "chacha20-poly1305"})` : ""}`}${o.strip ? ", stripping on ingress" : ""}, attached ${s.state?.attachedAt}` : "attached (no state file)"}`,
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
    .option("--flows <n>", "flows to list per interface", (v) => Number(v), 20)
    .option("--json", "machine-readable output")
    .action((opts) => {
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

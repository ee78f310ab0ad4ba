// pdm attach: load the eBPF data path on an interface.

import { Command, Option } from "@commander-js/extra-typings";
import { UsageError } from "../../pdm/index.ts";
import { attach, isProtectedLayout, LAYOUT_NAMES } from "../../probes/datapath/index.ts";

/** A whole number in decimal or 0x-hex, at most `max`. */
function parseNumber(what: string, max: number) {
  return (text: string): number => {
    const n = /^0x[0-9a-f]+$/i.test(text) ? parseInt(text, 16) : Number(text);
    if (!Number.isInteger(n) || n < 0 || n > max) throw new UsageError(`${what}: "${text}" is not a number 0..${max}`);
    return n;
  };
}

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
interface are lowered by the header size (16, 24, 32 or 40 bytes) so full-size
packets still fit; detach restores them. Attaching again replaces the previous
attachment. A flow idle for --flow-timeout seconds is forgotten, with its keys.

Layouts, by the draft that defines them:
  v1, rfc8250      RFC 8250 (16-bit sequence numbers)
  v2, v2-clear     PDMv2 of draft-ietf-ippm-encrypted-pdmv2-02 to -04, in the clear
  v2-protected     the same, sealed (below)
  draft-14         drafts -09 to -14, the current draft (also "draft-09", "v2-draft09"):
                   option type 0x0F, 22 bytes, 32-bit PSNTP and PSNLR, Epoch 0
  draft-15         the -15 text in progress ("v2-draft15"): the same fields under an
                   option type of its own (--draft15-type, 0x1E until IANA assigns one)
  draft-15-protected  the -15 text's protected form: Epoch and PSNTP in the clear, the
                   rest sealed with a 16-byte tag (--aead; keys from the reader agent)
Every layout is read on ingress whatever the one stamped.

With --layout v2-protected (or draft-15-protected) each option is sealed with the deployment's AEAD
(--aead) under per-flow keys that the host's reader agent installs as the kernel
asks for them; a packet whose key is not there yet leaves without PDM.

Needs root, a BPF filesystem (mounted at /sys/fs/bpf if missing) and Linux 5.17+
(6.10+ for AES-128-GCM).`,
    )
    .requiredOption("-i, --interface <name>", "network interface")
    .addOption(
      new Option(
        "--layout <layout>",
        "PDM layout to stamp: v1 (RFC 8250), v2 (PDMv2 clear), v2-protected (sealed; keys from the host's reader agent), draft-14 or draft-15 (the later drafts' clear layouts; see above)",
      )
        .choices([
          "v1",
          "v2",
          "rfc8250",
          "v2-clear",
          "v2-protected",
          "draft-09",
          "draft-14",
          "v2-draft09",
          "draft-15",
          "v2-draft15",
          "draft-15-protected",
          "v2-draft15-protected",
        ] as const)
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
    .option(
      "--draft15-type <type>",
      "draft-15: layout E's option type, stamped and read (default 0x1E, RFC 4727's experimental type)",
      parseNumber("--draft15-type", 0x3f),
    )
    .option(
      "--first-psn <n>",
      "tests: every new flow's first PSNTP, not a random one (watch the sequence numbers wrap)",
      parseNumber("--first-psn", 0xffff_ffff),
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
  pdm attach -i eth0 --layout draft-14                # the current draft's layout, 32-bit sequence numbers
  pdm status -i eth0 && pdm detach -i eth0`,
    )
    .action((opts) => {
      const layout = LAYOUT_NAMES[opts.layout]!;
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
        draft15Type: opts.draft15Type,
        firstPsn: opts.firstPsn,
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
      if (isProtectedLayout(layout)) {
        process.stdout.write(
          `  sealing with ${state.options.aead === "chacha20-poly1305" ? "ChaCha20-Poly1305" : "AES-128-GCM"}; keys: installed by this host's reader agent (its config: "datapath": {"interface": "${state.ifname}"}); until then packets leave without PDM (skipped_nokey)\n`,
        );
      }
    });
}

// pdm keys export: a key log for an authorized analyzer. pdm keys renew: ask a running
// group master for a new generation now. pdm keys connectivity: a distributed group's
// connectivity key set.

import { Command } from "@commander-js/extra-typings";
import { randomBytes } from "node:crypto";
import { UsageError, formatIpv6Address, parseIpv6Address, writeKeyLog } from "../../pdm/index.ts";

/** The agent (X.509, HPKE, TLS) is loaded only by the commands that use it. */
const loadAgent = () => import("../../probes/agent/index.ts");

export function keysCommand() {
  const keys = new Command("keys").summary("key logs for analyzers");
  keys.addCommand(
    new Command("export")
      .description(
        `Fetch a key log from a writer as an authorized analyzer (mutual TLS with an
analyzer certificate) and write it with mode 0600. From the writer server, the
SharedSecret of every current generation (reads every flow); with --client, only
that client's ClientSecret (reads that client's flows only; the only thing a
writer client exports). From a group master, every generation it has made since it
started (its newest 256). Use the file with \`pdm analyze --keys\`.`,
      )
      .requiredOption("--writer <host:port>", "the writer (or group master) to ask, e.g. [fd00:1::1]:4433")
      .requiredOption("--ca <file>", "the deployment CA certificate")
      .requiredOption("--cert <file>", "this analyzer's certificate")
      .requiredOption("--key <file>", "this analyzer's private key")
      .option("--client <ipv6>", "only the ClientSecret of this reader client")
      .requiredOption("-o, --out <file>", "key log to write (0600; never through a symbolic link)")
      .option("--force", "replace an existing key log")
      .action(async (opts) => {
        const { fetchKeyLog, parseEndpoint } = await loadAgent();
        const at = parseEndpoint(opts.writer, "--writer");
        const client = opts.client ? parseIpv6Address(opts.client) : undefined;
        const entries = await fetchKeyLog(at, { ca: opts.ca, cert: opts.cert, key: opts.key }, client);
        writeKeyLog(opts.out, entries, { replace: opts.force });
        const scope = client ? `ClientSecret of ${formatIpv6Address(client)}` : "SharedSecret";
        process.stdout.write(`wrote ${entries.length} generation(s), ${scope}, to ${opts.out} (0600)\n`);
      }),
  );
  keys.addCommand(
    new Command("connectivity")
      .description(
        `Make a connectivity key set for distributed mode (groups.md 2): a CKN naming the
group, a CAK (holding it is the proof of membership) and a KGK (from which every
generation's key derives; it never appears in a message), written as JSON with mode
0600. Give the same file to every member (its "distributed.keys"); a host without
it never becomes a member.`,
      )
      .requiredOption("-o, --out <file>", "where to write it (0600; never through a symbolic link)")
      .option("--ckn <name>", "the group's name (1 to 32 bytes of text; default: 16 random bytes)")
      .option("--cak-bytes <n>", "CAK length: 16 or 32", (v) => Number(v), 16)
      .option("--force", "replace an existing file")
      .action(async (opts) => {
        if (opts.cakBytes !== 16 && opts.cakBytes !== 32) throw new UsageError("--cak-bytes must be 16 or 32");
        const ckn = opts.ckn === undefined ? randomBytes(16) : Buffer.from(opts.ckn, "utf8");
        if (ckn.length < 1 || ckn.length > 32) throw new UsageError(`--ckn must be 1 to 32 bytes, got ${ckn.length}`);
        const { writeConnectivityKeys } = await import("../../probes/ksp/index.ts");
        writeConnectivityKeys(opts.out, { ckn, cak: randomBytes(opts.cakBytes), kgk: randomBytes(16) }, opts.force);
        process.stdout.write(`wrote the connectivity key set of group ${ckn.toString("hex")} to ${opts.out} (0600)\n`);
      }),
  );
  keys.addCommand(
    new Command("renew")
      .description(
        `Ask a running group master for a new generation now (an operator's renewal,
groups.md 1): the agent started with --status-file FILE is sent SIGUSR2, and makes
the generation make-before-break as for a membership change. See it in
\`pdm status --agent FILE\`.`,
      )
      .requiredOption("--agent <file>", "the group master's status file (pdm agent --status-file)")
      .action(async (opts) => {
        const { readAgentStatusFile, signalAgent } = await import("../agent-status-file.ts");
        const file = readAgentStatusFile(opts.agent);
        if (!file.status.group) {
          throw new UsageError(`the agent "${file.status.name}" (pid ${file.pid}) is not a group master`);
        }
        signalAgent(file, "SIGUSR2");
        process.stdout.write(
          `asked the group master "${file.status.name}" (pid ${file.pid}) for a new generation after generation ${file.status.group.generation ?? "none"}\n`,
        );
      }),
  );
  return keys;
}

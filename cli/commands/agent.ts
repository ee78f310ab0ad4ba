// pdm ca | agent | keys: the deployment's private CA, the registration agent, key logs.

import { Command, Option } from "@commander-js/extra-typings";
import { formatIpv6Address, parseIpv6Address, writeKeyLog } from "../../pdm/index.ts";
import { AGENT_ROLES, ROLES, type Role } from "../../probes/agent/index.ts";

/** The agent (X.509, HPKE, TLS) is loaded only by the commands that use it. */
const loadAgent = () => import("../../probes/agent/index.ts");

export function caCommand() {
  const ca = new Command("ca").summary("make a private CA and role certificates for a deployment").description(
    `A deployment's agents authenticate each other with mutual TLS 1.3; every
certificate comes from the deployment's private CA and names the holder's role
(a SAN URI pdm:role:<role>, and the OU) and its addresses (IP SANs). A peer
must connect from an address its certificate names. Keys are ECDSA P-256;
every file is written with mode 0600.`,
  );
  ca.addCommand(
    new Command("init")
      .description("create the CA key and certificate (DIR/ca.key, DIR/ca.crt)")
      .requiredOption("--dir <dir>", "directory for the CA (made 0700; an existing one is set to 0700)")
      .option("--name <cn>", "the CA's common name", "pdm deployment CA")
      .option("--days <n>", "validity in days (1 to 36500)", (v) => Number(v), 3650)
      .option("--force", "replace an existing CA (certificates it issued stop working)")
      .action(async (opts) => {
        const { initCa } = await loadAgent();
        const files = await initCa(opts.dir, { name: opts.name, days: opts.days, force: opts.force });
        process.stdout.write(`CA certificate ${files.cert}\nCA key         ${files.key} (0600)\n`);
      }) as unknown as Command,
  );
  ca.addCommand(
    new Command("issue")
      .description("issue a role certificate and key (OUT.crt, OUT.key)")
      .requiredOption("--dir <dir>", "the CA directory made by `pdm ca init`")
      .addOption(new Option("--role <role>", "the holder's role").choices(ROLES).makeOptionMandatory())
      .requiredOption("--addr <ip...>", "the holder's addresses; the first IPv6 one is a reader client's PDM address")
      .requiredOption("-o, --out <prefix>", "output path without extension")
      .option("--name <cn>", "common name (default: role and first address)")
      .option("--days <n>", "validity in days (1 to 36500)", (v) => Number(v), 365)
      .option("--force", "replace existing OUT.crt and OUT.key")
      .addHelpText(
        "after",
        `
Example, a writer pair and one reader of each kind:
  pdm ca init  --dir ca
  pdm ca issue --dir ca --role writer-server --addr fd00:1::1 -o ws
  pdm ca issue --dir ca --role writer-client --addr fd00:2::1 -o wc
  pdm ca issue --dir ca --role reader-server --addr fd00:1::2 -o rs
  pdm ca issue --dir ca --role reader-client --addr fd00:2::2 -o rc
  pdm ca issue --dir ca --role analyzer      --addr fd00:3::1 -o analyst`,
      )
      .action(async (opts) => {
        const { issueCertificate } = await loadAgent();
        const files = await issueCertificate(opts.dir, opts.out, {
          role: opts.role as Role,
          addresses: opts.addr,
          name: opts.name,
          days: opts.days,
          force: opts.force,
        });
        process.stdout.write(`certificate ${files.cert}\nkey         ${files.key} (0600)\n`);
      }) as unknown as Command,
  );
  return ca;
}

export function agentCommand() {
  return new Command("agent")
    .summary("run the registration agent (writer and reader roles)")
    .description(
      `Run the PDMv2 registration agent in the foreground with the roles its config
file lists (${AGENT_ROLES.join(", ")}).

The writer client registers with the writer server over mutual TLS 1.3 with
HPKE (base mode) and both derive the deployment's SharedSecret; each writer
provisions its readers (reader servers get the SharedSecret, each reader client
only its own ClientSecret), resending an unacknowledged provision up to 4 times.
Before a generation's lifetime (keys x rotation period) ends the writers renew
it, make-before-break. A reader that restarts never seals under old keys again:
it may only open with them until the next generation, which its restart triggers.

The config file format is described in probes/README.md ("Agent config").
Logs go to stderr, one event per line; keys are never logged. Stop with Ctrl-C.`,
    )
    .requiredOption("-c, --config <file>", "agent config file (JSON)")
    .addOption(
      new Option("--log-format <format>", "log line format")
        .choices(["text", "json"] as const)
        .default("text" as const),
    )
    .addHelpText(
      "after",
      `
Example config (writer server that also reads):
  { "name": "ws1", "roles": ["writer-server", "reader-server"],
    "tls": { "ca": "ca/ca.crt", "cert": "ws.crt", "key": "ws.key" },
    "listen": "[fd00:1::1]:4433",
    "rotation": { "criticality": "important", "keys": 4 } }`,
    )
    .action(async (opts) => {
      const { Agent, readAgentConfig, streamLogger } = await loadAgent();
      const config = readAgentConfig(opts.config);
      const agent = new Agent(config, {
        log: streamLogger((l) => process.stderr.write(l), opts.logFormat, config.name),
      });
      await agent.start();
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.off("SIGINT", stop);
          process.off("SIGTERM", stop);
          resolve();
        };
        process.on("SIGINT", stop);
        process.on("SIGTERM", stop);
      });
      await agent.stop();
    });
}

export function keysCommand() {
  const keys = new Command("keys").summary("key logs for analyzers");
  keys.addCommand(
    new Command("export")
      .description(
        `Fetch a key log from a writer as an authorized analyzer (mutual TLS with an
analyzer certificate) and write it with mode 0600. From the writer server, the
SharedSecret of every current generation (reads every flow); with --client, only
that client's ClientSecret (reads that client's flows only; the only thing a
writer client exports). Use the file with \`pdm analyze --keys\`.`,
      )
      .requiredOption("--writer <host:port>", "the writer to ask, e.g. [fd00:1::1]:4433")
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
      }) as unknown as Command,
  );
  return keys;
}

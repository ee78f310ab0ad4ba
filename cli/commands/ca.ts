// pdm ca init | issue | release: the deployment's private CA, its role certificates,
// and the release digest a group member's certificate may carry.

import { Command, Option } from "@commander-js/extra-typings";
import { ROLES, type Role } from "../../probes/agent/roles.ts";

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
      }),
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
      .option(
        "--release <digest>",
        'the pdm release the holder runs, checked by a group master\'s "releases": 64 hex digits, or "self" for this host\'s',
      )
      .addHelpText(
        "after",
        `
Example, a writer pair and one reader of each kind:
  pdm ca init  --dir ca
  pdm ca issue --dir ca --role writer-server --addr fd00:1::1 -o ws
  pdm ca issue --dir ca --role writer-client --addr fd00:2::1 -o wc
  pdm ca issue --dir ca --role reader-server --addr fd00:1::2 -o rs
  pdm ca issue --dir ca --role reader-client --addr fd00:2::2 -o rc
  pdm ca issue --dir ca --role analyzer      --addr fd00:3::1 -o analyst

A group (group master mode): a master, and members naming the release they run:
  pdm ca issue --dir ca --role group-master --addr fd00:9::1 -o gm
  pdm ca issue --dir ca --role group-member --addr fd00:9::2 -o m1 --release self`,
      )
      .action(async (opts) => {
        const { issueCertificate, releaseDigest } = await loadAgent();
        const files = await issueCertificate(opts.dir, opts.out, {
          role: opts.role as Role,
          addresses: opts.addr,
          name: opts.name,
          days: opts.days,
          force: opts.force,
          release: opts.release === "self" ? releaseDigest() : opts.release,
        });
        process.stdout.write(`certificate ${files.cert}\nkey         ${files.key} (0600)\n`);
      }),
  );
  ca.addCommand(
    new Command("release")
      .description(
        `print this host's pdm release digest: SHA-256 over package.json, the bundled CLI
(dist/) and the kernel programs (bpf/build), as a group master's "releases"
allow-list and a member certificate's --release name it`,
      )
      .action(async () => {
        const { releaseDigest } = await loadAgent();
        process.stdout.write(`${releaseDigest()}\n`);
      }),
  );
  return ca;
}

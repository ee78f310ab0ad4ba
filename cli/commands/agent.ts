// pdm agent: the registration agent, in the foreground until Ctrl-C or SIGTERM.

import { Command, Option } from "@commander-js/extra-typings";
import { AGENT_ROLES } from "../../probes/agent/roles.ts";

/** The agent (X.509, HPKE, TLS) is loaded only by the commands that use it. */
const loadAgent = () => import("../../probes/agent/index.ts");

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

Group roles (groups.md 1): a group-master admits group-member agents by their
certificates and derives each generation from the membership (SHA-256 over the
members' certificate signatures, then scrypt), renewing it whenever a member joins
or leaves, at the rotation period, when a member asks, or on \`pdm keys renew\`.
Members recompute every generation and confirm it by its keyId.

The config file format is described in probes/README.md ("Agent config").
Logs go to stderr, one event per line; keys are never logged. Stop with Ctrl-C.`,
    )
    .requiredOption("-c, --config <file>", "agent config file (JSON)")
    .addOption(
      new Option("--log-format <format>", "log line format")
        .choices(["text", "json"] as const)
        .default("text" as const),
    )
    .option(
      "--status-file <file>",
      "keep this file (0600) current with the agent's pid and status, for pdm status --agent and pdm keys renew",
    )
    .addHelpText(
      "after",
      `
Example config (writer server that also reads):
  { "name": "ws1", "roles": ["writer-server", "reader-server"],
    "tls": { "ca": "ca/ca.crt", "cert": "ws.crt", "key": "ws.key" },
    "listen": "[fd00:1::1]:4433",
    "rotation": { "criticality": "important", "keys": 4 } }

Example configs (a group master and one member that stamps on eth0):
  { "name": "gm", "roles": ["group-master"], "listen": "[fd00:9::1]:4500",
    "tls": { "ca": "ca/ca.crt", "cert": "gm.crt", "key": "gm.key" },
    "suites": ["0020:0001:0003"], "group": { "lifeSeconds": 6, "releases": ["<pdm ca release>"] } }
  { "name": "m1", "roles": ["group-member"], "groupMaster": "[fd00:9::1]:4500",
    "tls": { "ca": "ca/ca.crt", "cert": "m1.crt", "key": "m1.key" },
    "datapath": { "interface": "eth0" } }`,
    )
    .action(async (opts) => {
      const { Agent, readAgentConfig, streamLogger } = await loadAgent();
      const config = readAgentConfig(opts.config);
      const agent = new Agent(config, {
        log: streamLogger((l) => process.stderr.write(l), opts.logFormat, config.name),
      });
      await agent.start();
      const { keepAgentStatusFile } = await import("../agent-status-file.ts");
      const stopStatusFile = opts.statusFile ? keepAgentStatusFile(agent, opts.statusFile) : undefined;
      // pdm keys renew: an operator's renewal of a group master's generation.
      const renew = (): void => {
        if (agent.groupMaster) agent.renewGroup("operator (pdm keys renew)");
      };
      process.on("SIGUSR2", renew);
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.off("SIGINT", stop);
          process.off("SIGTERM", stop);
          resolve();
        };
        process.on("SIGINT", stop);
        process.on("SIGTERM", stop);
      });
      process.off("SIGUSR2", renew);
      stopStatusFile?.();
      await agent.stop();
    });
}

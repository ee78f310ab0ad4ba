// `pdm demo --distributed`: the six hosts as members of a group master at the router
// that also run the Key Selection Protocol among themselves (groups.md 2, hybrid mode).
// The master admits them and hands each the connectivity key set (CKN, CAK, KGK) over
// its channel; its generations rule while it serves. Each agent speaks the protocol to
// the others by unicast (the hosts are on different links, behind the router). When
// the master, the only server, is stopped half-way, the members elect a key server
// among themselves and go on renewing keys; the four reader hosts install them in
// their kernels throughout. At the end the members' own key logs (each 0600) are
// merged for the analysis: after the master is gone, no server holds one.

import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeConnectivityKeys } from "../../probes/ksp/index.ts";
import type { LabProcess } from "../../lab/index.ts";
import { DEMO_HOSTS, DEMO_PORTS, DEMO_ROTATION, DISTRIBUTED_DEMO, GROUP_DEMO, type DemoHost } from "./plan.ts";
import { HOST_IF, type DemoTopology } from "./topology.ts";
import { DEMO_AEAD, PDM, type DemoContext } from "./context.ts";

export interface DistributedDeployment {
  agents: Map<string, LabProcess>;
  master: { agent: LabProcess; statusFile: string };
  generations: number[];
  statusFile: (name: string) => string;
  /** Merge the members' key logs into `to` (0600). */
  collectKeys: (to: string) => Promise<void>;
}

export async function deployDistributed(
  ctx: DemoContext,
  topo: DemoTopology,
  readers: DemoHost[],
  startMaster: (extra: Record<string, unknown>) => { agent: LabProcess; statusFile: string },
): Promise<DistributedDeployment> {
  const { lab, out, say, elapsed } = ctx;
  // The master's copy of the key set; the members get theirs over its channel.
  const keys = join(out, "pki", "group.ksp");
  writeConnectivityKeys(keys, { ckn: Buffer.from("pdm demo"), cak: randomBytes(16), kgk: randomBytes(16) }, true);
  const master = startMaster({ connectivityKeys: keys });
  master.agent.onStderrLine((line) => {
    const m = /\bgroup-renewed\b.*\bgeneration=(\d+) .*\bmembers=(\d+)/.exec(line);
    if (m) say(`[${elapsed()}] group master: generation ${m[1]} for ${m[2]} members`);
  });
  await master.agent.waitFor(/listening/, 30_000);
  const keyLog = (name: string) => join(out, "agents", `${name}.keys`);
  const statusFile = (name: string) => join(out, "agents", `${name}.status`);
  const agents = new Map<string, LabProcess>();
  DEMO_HOSTS.forEach((h, i) => {
    const config = {
      name: h.name,
      roles: ["group-member"],
      tls: { ca: "../pki/ca.crt", cert: `../pki/${h.name}.crt`, key: `../pki/${h.name}.key` },
      suites: [DEMO_AEAD === "aes-128-gcm" ? "0020:0001:0001" : "0020:0001:0003"],
      rotation: { criticality: "important", keys: DEMO_ROTATION.keys, periodSeconds: DEMO_ROTATION.periodSeconds },
      keyLog: keyLog(h.name),
      groupMaster: `[${GROUP_DEMO.masterAddr}]:${DEMO_PORTS.agent}`,
      group: { lifeSeconds: GROUP_DEMO.lifeSeconds },
      distributed: {
        knMemory: join(out, "agents", `${h.name}.kns`),
        interface: HOST_IF,
        address: h.addr,
        peers: DEMO_HOSTS.filter((x) => x !== h).map((x) => x.addr),
        // The host without workload is the key server, so that stopping it shows a re-election.
        priority: h.name === DISTRIBUTED_DEMO.keyServer ? 5 : 10 + i,
        timers: DISTRIBUTED_DEMO.timers,
      },
      ...(readers.includes(h) ? { datapath: { interface: HOST_IF } } : {}),
    };
    const file = join(out, "agents", `${h.name}.json`);
    writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
    chmodSync(file, 0o600);
    agents.set(
      h.name,
      lab.start(topo.ns[h.name]!, `agent ${h.name}`, [
        ...PDM,
        "agent",
        "-c",
        file,
        "--status-file",
        statusFile(h.name),
      ]),
    );
  });
  const generations: number[] = [];
  // What one reader host (rc1) says is what every member does: each generation it installs,
  // from the master or agreed among the members.
  agents.get("rc1")!.onStderrLine((line) => {
    const fromMaster = /\bgroup-generation-installed\b.*\bgeneration=(\d+)/.exec(line);
    const agreed = /\bksp-sealing\b.*\bgeneration=(\d+)/.exec(line);
    if (fromMaster) generations.push(Number(fromMaster[1]));
    if (agreed) {
      generations.push(Number(agreed[1]));
      say(
        `[${elapsed()}] members agreed among themselves on generation ${agreed[1]} and seal with it (make-before-break)`,
      );
    }
  });
  // Elections while the members find each other are many; the ones after it are news.
  let formed = false;
  agents.get("rc1")!.onStderrLine((line) => {
    const m = /\bksp-key-server\b.*\bkeyServer=(\S+)/.exec(line);
    if (m && formed) say(`[${elapsed()}] rc1: a new key server elected: member ${m[1]}`);
  });
  await master.agent.waitFor(new RegExp(`group-renewed .*members=${DEMO_HOSTS.length}`), 60_000);
  await Promise.all(readers.map((h) => agents.get(h.name)!.waitFor(/group-generation-installed/, 40_000)));
  await Promise.all(DEMO_HOSTS.map((h) => agents.get(h.name)!.waitFor(/ksp-peer-live/, 40_000)));
  formed = true;
  say(
    `[${elapsed()}] agents: ${DEMO_HOSTS.length} members of the group master at the router, each given the connectivity key set over its channel; they also speak the Key Selection Protocol to each other by unicast, ready to carry on without any server`,
  );
  return {
    agents,
    master,
    generations,
    statusFile,
    collectKeys: async (to) => {
      const lines = new Set<string>();
      for (const h of DEMO_HOSTS) {
        if (!existsSync(keyLog(h.name))) continue;
        for (const l of readFileSync(keyLog(h.name), "utf8").split("\n")) if (l.startsWith("PDMV2_")) lines.add(l);
      }
      writeFileSync(to, [...lines].join("\n") + "\n", { mode: 0o600 });
      chmodSync(to, 0o600);
    },
  };
}

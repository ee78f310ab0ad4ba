// The live demo's first half: everything deployed and running, as an operator would
// deploy it. The network (namespaces, delay bridges, the router's capture), a private
// CA with one certificate per role, the six registration agents until the four readers
// are provisioned, and the eBPF programs attached on every reader host. In group mode
// the six hosts are group members and the router runs their group master.

import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { initCa, issueCertificate, releaseDigest } from "../../probes/agent/index.ts";
import type { LabProcess } from "../../lab/index.ts";
import {
  DEMO_HOSTS,
  DEMO_PORTS,
  DEMO_ROTATION,
  GROUP_DEMO,
  ROUTER_CLIENT_LAN,
  SERVER_LINKS,
  host,
  type DemoHost,
} from "./plan.ts";
import { buildTopology, HOST_IF, ROUTER_CAPTURE_IF, type DemoTopology } from "./topology.ts";
import { DELAY_BRIDGE, DEMO_AEAD, DemoUnavailable, PDM, type DemoContext } from "./context.ts";
import { KeyExports } from "./key-exports.ts";
import { deployDistributed } from "./distributed.ts";

export interface Deployment {
  topo: DemoTopology;
  bridges: LabProcess[];
  capture: LabProcess;
  agents: Map<string, LabProcess>;
  /** The key log for the analysis, into files.keys: exported by the router, or merged from the members'. */
  collectKeys: () => Promise<void>;
  /** Generations the writer client registered (or the group master made), in order (a renewal adds one). */
  generations: number[];
  /** Group mode: the group master's agent and status file. */
  master?: { agent: LabProcess; statusFile: string };
  /** Distributed mode: a member's status file, by host name. */
  memberStatusFile?: (name: string) => string;
  files: { capture: string; keys: string; report: string; png: string };
}

const READERS = DEMO_HOSTS.filter((h) => h.role.startsWith("reader"));

export async function deploy(ctx: DemoContext): Promise<Deployment> {
  const { lab, out, say, elapsed } = ctx;
  for (const d of ["pki", "agents", "logs"]) mkdirSync(join(out, d), { recursive: true, mode: 0o700 });

  say(`[${elapsed()}] topology: router + 6 hosts in network namespaces (pdmdemo-*)`);
  const topo = buildTopology(lab);
  const bridges = await startDelayBridges(ctx, topo);

  const files = {
    capture: join(out, "router.pcapng"),
    keys: join(out, "keys.log"),
    report: join(out, "report.html"),
    png: join(out, "response-time.png"),
  };
  const capture = lab.start(topo.router, "router capture", [
    ...PDM,
    "capture",
    "-i",
    ROUTER_CAPTURE_IF,
    "-w",
    files.capture,
    "-f",
    "json",
    "ip6",
  ]);
  await capture.waitFor(/capturing on/, 30_000);
  say(`[${elapsed()}] capturing at the router on ${ROUTER_CAPTURE_IF} -> ${files.capture}`);

  const pki = await makePki(ctx);
  if (ctx.distributed) {
    const d = await deployDistributed(ctx, topo, READERS, (extra) => startGroupMaster(ctx, topo.router, out, extra));
    sayRotation(ctx);
    attach(ctx, topo);
    return {
      topo,
      bridges,
      capture,
      agents: d.agents,
      generations: d.generations,
      files,
      collectKeys: () => d.collectKeys(files.keys),
      memberStatusFile: d.statusFile,
      master: d.master,
    };
  }
  const agents = startAgents(ctx, topo.ns, out);
  const generations: number[] = [];
  let master: Deployment["master"];
  let keyExports: KeyExports;
  if (ctx.group) {
    master = startGroupMaster(ctx, topo.router, out);
    keyExports = new KeyExports(ctx, topo.router, pki, `[${GROUP_DEMO.masterAddr}]:${DEMO_PORTS.agent}`);
    master.agent.onStderrLine((line) => {
      const m = /\bgroup-renewed\b.*\bgeneration=(\d+) .*\bmembers=(\d+) .*\bwhy=("[^"]*"|\S+)/.exec(line);
      if (!m) return;
      generations.push(Number(m[1]));
      const why = m[3]!.replace(/^"|"$/g, "");
      say(`[${elapsed()}] group master: generation ${m[1]} for ${m[2]} members (${why}), make-before-break`);
      if (generations.length > 1) setTimeout(() => keyExports.export(`g${m[1]}`), 500);
    });
    await master.agent.waitFor(new RegExp(`group-renewed .*members=${DEMO_HOSTS.length}`), 60_000);
    await Promise.all(READERS.map((h) => agents.get(h.name)!.waitFor(/group-generation-installed/, 40_000)));
    keyExports.export("g1");
    say(
      `[${elapsed()}] agents: ${DEMO_HOSTS.length} group members admitted by the group master at the router (mutual TLS 1.3, certificates naming this pdm release); each recomputed the generation from the membership (SHA-256 over the members' certificate signatures, then scrypt) and confirmed it by keyId`,
    );
  } else {
    keyExports = new KeyExports(ctx, topo.router, pki, `[${host("ws").addr}]:${DEMO_PORTS.agent}`);
    agents.get("wc")!.onStderrLine((line) => {
      const m = /\bregistered\b.*\bgeneration=(\d+)/.exec(line);
      if (!m) return;
      generations.push(Number(m[1]));
      if (generations.length > 1) {
        say(
          `[${elapsed()}] writers renewed the keys: generation ${m[1]} registered; readers get it before it takes effect (make-before-break)`,
        );
        // once the writer server holds it (its reader-server provisioning follows the registration)
        setTimeout(() => keyExports.export(`g${m[1]}`), 1000);
      }
    });
    await Promise.all(READERS.map((h) => agents.get(h.name)!.waitFor(/provision-installed/, 40_000)));
    keyExports.export("g1");
    say(
      `[${elapsed()}] agents: writer client registered with the writer server (mutual TLS 1.3 + HPKE); 4 readers provisioned`,
    );
  }
  sayRotation(ctx);
  attach(ctx, topo);
  const collectKeys = async (): Promise<void> => {
    keyExports.export("end");
    await keyExports.mergeInto(files.keys);
  };
  return { topo, bridges, capture, agents, collectKeys, generations, files, master };
}

function sayRotation(ctx: DemoContext): void {
  ctx.say(
    `           shortened for the demo: key rotation period ${DEMO_ROTATION.periodSeconds} s, ${DEMO_ROTATION.keys} keys per generation (renewal every ~${DEMO_ROTATION.periodSeconds * DEMO_ROTATION.keys - 2} s); Kri rotates every ${DEMO_ROTATION.packetsPerKri} packets per flow`,
  );
}

function attach(ctx: DemoContext, topo: DemoTopology): void {
  attachReaders(ctx, topo);
  ctx.say(
    `[${ctx.elapsed()}] eBPF attached (tc clsact) on eth0 of rs1, rs2, rc1, rc2: sealing and opening PDMv2 protected (${DEMO_AEAD === "aes-128-gcm" ? "AES-128-GCM, the kernel's AES" : "ChaCha20-Poly1305: this kernel has no BPF crypto kfuncs for AES"})`,
  );
  ctx.say(
    `           each reader agent installs its host's keys as the kernel asks for them; no key leaves a host, and the router sees no PDM field in clear.`,
  );
}

/** One user-space delay bridge per reader server's link (this kernel has no netem). */
async function startDelayBridges(ctx: DemoContext, topo: DemoTopology): Promise<LabProcess[]> {
  for (const l of SERVER_LINKS) {
    ctx.say(
      `           router <-> ${l.host} (${host(l.host).addr}): ${l.delayMs} ms each way, jitter ±${l.jitterMs} ms, loss ${(l.loss * 100).toFixed(1)} % (user-space delay bridge: this kernel has no netem)`,
    );
  }
  const bridges = topo.delayLinks.map((d) => {
    const l = SERVER_LINKS.find((x) => x.host === d.host)!;
    return ctx.lab.start(topo.router, `delay bridge ${d.host}`, [
      ...DELAY_BRIDGE,
      d.left,
      d.right,
      String(l.delayMs),
      String(l.jitterMs),
      String(l.loss),
    ]);
  });
  await Promise.all(bridges.map((b) => b.waitFor(/bridging/, 30_000)));
  return bridges;
}

/** A private CA, one certificate per agent, one for the router as analyzer (and in group mode as master). */
async function makePki(ctx: DemoContext): Promise<string> {
  const pki = join(ctx.out, "pki");
  await initCa(pki, { name: "pdm demo CA", days: 1, force: true });
  // Group members name the pdm release they run; the master allows only it.
  const members = ctx.group || ctx.distributed;
  const release = members ? releaseDigest() : undefined;
  for (const h of DEMO_HOSTS)
    await issueCertificate(pki, join(pki, h.name), {
      role: members ? "group-member" : h.role,
      addresses: [h.addr],
      name: members ? h.name : undefined,
      days: 1,
      force: true,
      release,
    });
  await issueCertificate(pki, join(pki, "analyzer"), {
    role: "analyzer",
    addresses: [ROUTER_CLIENT_LAN, "fd00:de:10::1"],
    days: 1,
    force: true,
  });
  if (members) {
    await issueCertificate(pki, join(pki, "gm"), {
      role: "group-master",
      addresses: [GROUP_DEMO.masterAddr],
      days: 1,
      force: true,
    });
  }
  ctx.say(
    `[${ctx.elapsed()}] private CA and ${DEMO_HOSTS.length + (members ? 2 : 1)} certificates (ECDSA P-256, files 0600) in ${pki}`,
  );
  return pki;
}

/**
 * Group agents run at a lower priority: each renewal's seven scrypts (0.7 s of a core
 * each) would otherwise hold both of this machine's cores from the applications being
 * measured, and their answers would come late. On separate hosts one scrypt per host
 * does not matter; an operator may nice the agent all the same.
 */
export const GROUP_NICE = (ctx: DemoContext): string[] => (ctx.group || ctx.distributed ? ["nice", "-n", "10"] : []);

/** Writes the agents' configs and starts one agent per host. */
function startAgents(ctx: DemoContext, ns: Record<string, string>, out: string): Map<string, LabProcess> {
  const agents = new Map<string, LabProcess>();
  for (const h of DEMO_HOSTS) {
    const config = ctx.group ? memberConfig(h) : roleConfig(h);
    const file = writeConfig(out, h.name, config);
    agents.set(
      h.name,
      ctx.lab.start(ns[h.name]!, `agent ${h.name}`, [...GROUP_NICE(ctx), ...PDM, "agent", "-c", file]),
    );
  }
  return agents;
}

function writeConfig(out: string, name: string, config: object): string {
  const file = join(out, "agents", `${name}.json`);
  writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
  chmodSync(file, 0o600);
  return file;
}

const tlsOf = (name: string) => ({ ca: "../pki/ca.crt", cert: `../pki/${name}.crt`, key: `../pki/${name}.key` });
const ROTATION = { criticality: "important", keys: DEMO_ROTATION.keys, periodSeconds: DEMO_ROTATION.periodSeconds };

/** The writer/reader deployment's agent of one host (keys.md). */
function roleConfig(h: DemoHost): Record<string, unknown> {
  const ws = `[${host("ws").addr}]:${DEMO_PORTS.agent}`;
  const wc = `[${host("wc").addr}]:${DEMO_PORTS.agent}`;
  const config: Record<string, unknown> = { name: h.name, roles: [h.role], tls: tlsOf(h.name) };
  if (h.role === "writer-server") Object.assign(config, { listen: ws, rotation: ROTATION });
  if (h.role === "writer-client") Object.assign(config, { listen: wc, writerServer: ws });
  // No "suites": the default one (X25519, HKDF-SHA256, AES-128-GCM), which the data path
  // seals with the kernel's AES; on a kernel without BPF crypto kfuncs, ChaCha20-Poly1305.
  if (h.role.startsWith("writer") && DEMO_AEAD === "chacha20-poly1305") config.suites = ["0020:0001:0003"];
  if (h.role === "reader-server") config.writerServer = ws;
  if (h.role === "reader-client") config.writerClient = wc;
  if (h.role.startsWith("reader")) config.datapath = { interface: HOST_IF };
  return config;
}

/** Group mode: every host a member; those with a data path install its keys. */
function memberConfig(h: DemoHost): Record<string, unknown> {
  return {
    name: h.name,
    roles: ["group-member"],
    tls: tlsOf(h.name),
    groupMaster: `[${GROUP_DEMO.masterAddr}]:${DEMO_PORTS.agent}`,
    group: { lifeSeconds: GROUP_DEMO.lifeSeconds },
    ...(READERS.includes(h) ? { datapath: { interface: HOST_IF } } : {}),
  };
}

/** Group mode: the group master, at the router, allowing only the release this demo runs. */
export function startGroupMaster(
  ctx: DemoContext,
  routerNs: string,
  out: string,
  extra: Record<string, unknown> = {},
): { agent: LabProcess; statusFile: string } {
  const statusFile = join(out, "agents", "gm.status");
  const file = writeConfig(out, "gm", {
    name: "gm",
    roles: ["group-master"],
    tls: tlsOf("gm"),
    listen: `[${GROUP_DEMO.masterAddr}]:${DEMO_PORTS.agent}`,
    rotation: ROTATION,
    suites: [DEMO_AEAD === "aes-128-gcm" ? "0020:0001:0001" : "0020:0001:0003"],
    group: {
      lifeSeconds: GROUP_DEMO.lifeSeconds,
      leadSeconds: GROUP_DEMO.leadSeconds,
      releases: [releaseDigest()],
      ...extra,
    },
  });
  const agent = ctx.lab.start(routerNs, "group master", [
    ...GROUP_NICE(ctx),
    ...PDM,
    "agent",
    "-c",
    file,
    "--status-file",
    statusFile,
  ]);
  return { agent, statusFile };
}

/** `pdm attach` on every reader host; a kernel without the eBPF features is a machine limit, not a failed run. */
function attachReaders(ctx: DemoContext, topo: DemoTopology): void {
  for (const h of READERS) {
    try {
      ctx.lab.run(topo.ns[h.name]!, [
        ...PDM,
        "attach",
        "-i",
        HOST_IF,
        "--layout",
        "v2-protected",
        "--aead",
        DEMO_AEAD,
        "--packets-per-kri",
        String(DEMO_ROTATION.packetsPerKri),
      ]);
    } catch (e) {
      const why = (e as Error).message;
      if (/lacks a BPF feature|does not support|needs root/.test(why))
        throw new DemoUnavailable(`This machine cannot run the eBPF programs (${why.replace(/^.*?pdm: /, "").trim()})`);
      throw e;
    }
  }
}

/** Detach every reader host (before the lab's teardown, as an operator would). */
export function detachReaders(ctx: DemoContext, topo: DemoTopology): void {
  for (const h of READERS) ctx.lab.run(topo.ns[h.name]!, [...PDM, "detach", "-i", HOST_IF]);
}

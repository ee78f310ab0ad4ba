// A group on one LAN (groups.md 1): a group master and N members, each in its own
// network namespace with an eth0 on one Linux bridge (in a switch namespace), on
// fd00:<subnet>::/64 addresses made here. The CA, certificates and agent configs go to
// a temporary directory; agents run as `pdm agent` processes in their namespaces and
// report through their status files. Where the group tests, the group benchmark and
// the demo's group mode run.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initCa, issueCertificate, releaseDigest, type AgentStatus, type TlsFiles } from "../probes/agent/index.ts";
import type { ImpairedHubOptions } from "./impaired-hub.ts";
import { Lab, type LabProcess } from "./lab.ts";
import { PDM_BIN, ROOT } from "./two-hosts.ts";

export interface LanHost {
  name: string;
  ns: string;
  addr: string;
  tls: TlsFiles;
  statusFile: string;
  keyLog: string;
  agent?: LabProcess;
}

export const LAN_IF = "eth0";
const PORT = 4500;
let counter = 0;

export class GroupLan {
  readonly lab: Lab;
  readonly dir = mkdtempSync(join(tmpdir(), "pdm-group-"));
  readonly master: LanHost;
  readonly members: LanHost[];
  readonly analyzerTls: TlsFiles;
  private readonly switchNs: string;
  /** The release digest every member's certificate names and the master allows. */
  release = "";

  /** With `hub`, the switch is an impaired user-space hub (startHub) instead of a Linux bridge. */
  constructor(
    count: number,
    private readonly options: { hub?: boolean } = {},
  ) {
    counter += 1;
    const tag = `${process.pid % 10000}${String.fromCharCode(96 + counter)}`;
    const subnet = (0x9e00 + (process.pid % 200) + counter).toString(16);
    this.lab = new Lab(`pdmg${tag}-`, `/run/pdm-test-g${tag}`, `/sys/fs/bpf/pdm-test-g${tag}`, ROOT);
    const host = (name: string, i: number): LanHost => ({
      name,
      ns: `pdmg${tag}-${name}`,
      addr: `fd00:${subnet}::${(i + 1).toString(16)}`,
      tls: {
        ca: join(this.dir, "ca", "ca.crt"),
        cert: join(this.dir, `${name}.crt`),
        key: join(this.dir, `${name}.key`),
      },
      statusFile: join(this.dir, `${name}.status`),
      keyLog: join(this.dir, `${name}.keys`),
    });
    this.master = host("gm", 0);
    this.members = Array.from({ length: count }, (_, i) => host(`m${i + 1}`, i + 0x10));
    this.analyzerTls = {
      ca: join(this.dir, "ca", "ca.crt"),
      cert: join(this.dir, "analyst.crt"),
      key: join(this.dir, "analyst.key"),
    };
    try {
      this.switchNs = this.lab.addNamespace("sw");
      if (!options.hub) {
        this.lab.ip(this.switchNs, ["link", "add", "br0", "type", "bridge"]);
        this.lab.ip(this.switchNs, ["link", "set", "br0", "up"]);
      }
      [this.master, ...this.members].forEach((h, i) => {
        this.lab.addNamespace(h.name);
        const port = `p${i}`;
        this.lab.ip(this.switchNs, ["link", "add", port, "type", "veth", "peer", "name", LAN_IF, "netns", h.ns]);
        if (!options.hub) this.lab.ip(this.switchNs, ["link", "set", port, "master", "br0"]);
        this.lab.ip(this.switchNs, ["link", "set", port, "up"]);
        for (const k of ["all", "default"]) this.lab.run(h.ns, ["sysctl", "-qw", `net.ipv6.conf.${k}.accept_dad=0`]);
        this.lab.ip(h.ns, ["addr", "add", `${h.addr}/64`, "dev", LAN_IF, "nodad"]);
        this.lab.ip(h.ns, ["link", "set", LAN_IF, "up"]);
        // Frames the hub captures and injects must carry complete checksums (no checksum offload, no GSO).
        if (options.hub) this.lab.run(h.ns, ["ethtool", "-K", LAN_IF, "tx", "off", "tso", "off", "gso", "off"]);
        this.lab.ip(h.ns, ["link", "set", "lo", "up"]);
      });
    } catch (e) {
      this.cleanup();
      throw e;
    }
  }

  /**
   * Start the impaired hub that switches this LAN (constructed with `hub`), with `impair`
   * as lab/impaired-hub.ts takes it; ready once every member answers a ping from the first.
   */
  async startHub(impair: Omit<ImpairedHubOptions, "ports">): Promise<LabProcess> {
    if (!this.options.hub) throw new Error("this LAN was made with a Linux bridge, not a hub");
    const ports = [this.master, ...this.members].map((h) => this.portOf(h));
    const hub = this.lab.start(this.switchNs, "impaired hub", [
      process.execPath,
      "--import",
      "tsx",
      join(ROOT, "scripts", "impaired-hub.ts"),
      JSON.stringify({ ...impair, ports }),
    ]);
    await hub.waitFor(/hub ready/);
    // A capture's first frame is sometimes never delivered by libpcap (two-hosts.ts):
    // ping through the hub until each member answers, before a test relies on it.
    const [first, ...rest] = this.members;
    for (const m of rest) {
      let attempt = 0;
      while (this.lab.exec(first!.ns, ["ping", "-6", "-n", "-c", "1", "-W", "1", m.addr]).code !== 0) {
        if ((attempt += 1) === 8) throw new Error(`the hub forwards nothing from ${first!.name} to ${m.name}`);
      }
    }
    return hub;
  }

  /** The CA, the master's and every member's certificate (naming this host's release), an analyzer's. */
  async issue(): Promise<void> {
    // The release the agents run: the bundle is rebuilt first if a source changed.
    this.lab.run(this.master.ns, [process.execPath, PDM_BIN, "--version"]);
    this.release = releaseDigest();
    await initCa(join(this.dir, "ca"), { name: "group test CA" });
    const issue = (h: LanHost, role: "group-master" | "group-member") =>
      issueCertificate(join(this.dir, "ca"), join(this.dir, h.name), {
        role,
        addresses: [h.addr],
        name: h.name,
        release: role === "group-member" ? this.release : undefined,
      });
    await issue(this.master, "group-master");
    for (const m of this.members) await issue(m, "group-member");
    await issueCertificate(join(this.dir, "ca"), join(this.dir, "analyst"), {
      role: "analyzer",
      addresses: [this.master.addr],
      name: "analyst",
    });
  }

  get masterEndpoint(): string {
    return `[${this.master.addr}]:${PORT}`;
  }

  /** Start the master's agent; `group` and `rotation` go into its config as given. */
  async startMaster(config: { suite: string; group?: Record<string, unknown>; rotation?: Record<string, unknown> }) {
    const m = this.master;
    this.writeConfig(m, {
      name: m.name,
      roles: ["group-master"],
      tls: m.tls,
      listen: this.masterEndpoint,
      suites: [config.suite],
      keyLog: m.keyLog,
      group: { releases: [this.release], ...config.group },
      ...(config.rotation ? { rotation: config.rotation } : {}),
    });
    m.agent = this.startAgent(m);
    await m.agent.waitFor(/listening/);
  }

  /** Start a member's agent; with `datapath`, it installs the keys of the data path on its eth0. */
  startMember(
    m: LanHost,
    opts: {
      datapath?: boolean;
      lifeSeconds?: number;
      distributed?: Record<string, unknown>;
      /** With `distributed`: follow the master too (hybrid mode; the protocol takes over when it is gone). */
      withMaster?: boolean;
      suite?: string;
    } = {},
  ): LabProcess {
    this.writeConfig(m, {
      name: m.name,
      roles: ["group-member"],
      tls: m.tls,
      keyLog: m.keyLog,
      // Distributed mode (groups.md 2): no master; the members' own protocol on eth0.
      ...(opts.distributed ? { distributed: { interface: LAN_IF, address: m.addr, ...opts.distributed } } : {}),
      ...(!opts.distributed || opts.withMaster ? { groupMaster: this.masterEndpoint } : {}),
      ...(opts.suite ? { suites: [opts.suite] } : {}),
      ...(opts.lifeSeconds ? { group: { lifeSeconds: opts.lifeSeconds } } : {}),
      ...(opts.datapath ? { datapath: { interface: LAN_IF } } : {}),
    });
    m.agent = this.startAgent(m);
    return m.agent;
  }

  private writeConfig(h: LanHost, config: object): void {
    writeFileSync(join(this.dir, `${h.name}.json`), JSON.stringify(config, null, 1), { mode: 0o600 });
  }

  private startAgent(h: LanHost): LabProcess {
    rmSync(h.statusFile, { force: true });
    return this.lab.start(h.ns, `agent ${h.name}`, [
      process.execPath,
      PDM_BIN,
      "agent",
      "-c",
      join(this.dir, `${h.name}.json`),
      "--status-file",
      h.statusFile,
    ]);
  }

  /** The agent's status from its status file (undefined until it wrote one). */
  status(h: LanHost): AgentStatus | undefined {
    try {
      return (JSON.parse(readFileSync(h.statusFile, "utf8")) as { status: AgentStatus }).status;
    } catch {
      return undefined;
    }
  }

  /** `pdm attach -i eth0 --layout v2-protected` on a member. */
  attach(m: LanHost, aead: string, packetsPerKri: number): void {
    this.lab.run(m.ns, [
      process.execPath,
      PDM_BIN,
      "attach",
      "-i",
      LAN_IF,
      "--layout",
      "v2-protected",
      "--aead",
      aead,
      "--packets-per-kri",
      String(packetsPerKri),
    ]);
  }

  private portOf(h: LanHost): string {
    return `p${[this.master, ...this.members].indexOf(h)}`;
  }

  /** Cut `side` off from everyone else: their switch ports move to a second bridge. */
  partition(side: LanHost[]): void {
    if (this.options.hub) throw new Error("partition() moves bridge ports: not on a LAN made with a hub");
    if (!this.lab.ip(this.switchNs, ["-br", "link", "show", "type", "bridge"]).includes("br1")) {
      this.lab.ip(this.switchNs, ["link", "add", "br1", "type", "bridge"]);
      this.lab.ip(this.switchNs, ["link", "set", "br1", "up"]);
    }
    for (const h of side) this.lab.ip(this.switchNs, ["link", "set", this.portOf(h), "master", "br1"]);
  }

  /** Every port on the one bridge again. */
  heal(): void {
    for (const h of [this.master, ...this.members])
      this.lab.ip(this.switchNs, ["link", "set", this.portOf(h), "master", "br0"]);
  }

  cleanup(): void {
    this.lab.teardown();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// A PDMv2 deployment on loopback for agent tests and benchmarks: a private CA in a
// temporary directory, role certificates, and agents built from configs (ports chosen
// by the kernel). Real TLS 1.3 over ::1; nothing leaves the host.

import { mkdtempSync, rmSync } from "node:fs";
import tls from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  Agent,
  StreamChannel,
  clientOptions,
  initCa,
  issueCertificate,
  loadTlsMaterial,
  memoryLogger,
  parseAgentConfig,
  type AgentRole,
  type IssueOptions,
  type Role,
  type TlsFiles,
} from "../probes/agent/index.ts";

export type CertFiles = TlsFiles;

export class Deployment {
  readonly dir = mkdtempSync(join(tmpdir(), "pdm-agent-"));
  readonly caDir = join(this.dir, "ca");
  readonly agents: Agent[] = [];
  readonly logs = new Map<Agent, string[]>();
  /** Rotation and timing for every writer server made here. */
  timing = {
    criticality: "critical",
    keys: 2,
    periodSeconds: 1,
    provisionLeadSeconds: 0.3,
    graceSeconds: 1,
    ackTimeoutSeconds: 0.3,
  };

  async init(): Promise<this> {
    await initCa(this.caDir, { name: "test CA" });
    return this;
  }

  async issue(
    name: string,
    role: Role,
    addresses: string[],
    extra: Partial<IssueOptions> = {},
    caDir = this.caDir,
  ): Promise<CertFiles> {
    const files = await issueCertificate(caDir, join(this.dir, name), { role, addresses, name, ...extra });
    return { ca: join(this.caDir, "ca.crt"), ...files };
  }

  /** Make and start an agent; `links` are "[::1]:port" of its writers. */
  async agent(
    name: string,
    roles: AgentRole[],
    cert: CertFiles,
    links: {
      listen?: boolean | string;
      writerServer?: number;
      writerClient?: number;
      keyLog?: string;
      datapath?: string;
      suites?: string[];
      extra?: Record<string, unknown>;
    } = {},
  ): Promise<Agent> {
    const t = this.timing;
    const config = parseAgentConfig(
      {
        name,
        roles,
        tls: cert,
        ...(links.listen ? { listen: typeof links.listen === "string" ? links.listen : "[::1]:0" } : {}),
        ...(links.writerServer ? { writerServer: `[::1]:${links.writerServer}` } : {}),
        ...(links.writerClient ? { writerClient: `[::1]:${links.writerClient}` } : {}),
        ...(links.keyLog ? { keyLog: links.keyLog } : {}),
        ...(links.datapath ? { datapath: { interface: links.datapath } } : {}),
        ...(links.suites ? { suites: links.suites } : {}),
        rotation: { criticality: t.criticality, keys: t.keys, periodSeconds: t.periodSeconds },
        provisionLeadSeconds: t.provisionLeadSeconds,
        graceSeconds: t.graceSeconds,
        ackTimeoutSeconds: t.ackTimeoutSeconds,
        ...links.extra,
      },
      this.dir,
    );
    const log = memoryLogger();
    const agent = new Agent(config, { log });
    this.logs.set(agent, log.lines);
    this.agents.push(agent);
    await agent.start();
    return agent;
  }

  allLogLines(): string[] {
    return [...this.logs.values()].flat();
  }

  async cleanup(): Promise<void> {
    await Promise.allSettled(this.agents.map((a) => a.stop()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A raw client connection speaking the message protocol, for refusal tests. */
export function rawConnect(
  port: number,
  files: CertFiles,
  host = "::1",
): Promise<{ channel: StreamChannel; socket: tls.TLSSocket }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(clientOptions(loadTlsMaterial(files), host, port));
    socket.once("error", reject);
    socket.once("secureConnect", () => resolve({ channel: new StreamChannel(socket), socket }));
  });
}

/** Poll until `check` holds, or fail after `timeoutMs`. */
export async function eventually(what: string, check: () => boolean, timeoutMs = 8000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

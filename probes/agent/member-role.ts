// The group-member role of an agent (groups.md): it follows a group master (one
// connection at a time, group-member.ts), runs the Key Selection Protocol among the
// members (distributed mode, probes/ksp) with the connectivity key set from a file, a
// writer or the master, and keeps a key log of every generation it installed. Both
// sources feed one reader key store, so the kernel's keys, Kri rotation and
// make-before-break switching see generations and nothing of where they came from.

import { X509Certificate, createHash } from "node:crypto";
import { KspMember, fileKnMemory, readConnectivityKeys, type ConnectivityKeys } from "../ksp/index.ts";
import type { KeyLogEntry } from "../../pdm/index.ts";
import { GROUP_FRAME_BYTES, MAX_FRAME_BYTES, type Channel } from "./channel.ts";
import type { AgentConfig, DistributedConfig, Endpoint } from "./config.ts";
import { RegistrationError } from "./errors.ts";
import { lifetimeMs } from "./generation.ts";
import { followGroupMaster, type CheckedCertificate } from "./group-member.ts";
import type { Logger } from "./log.ts";
import type { Role } from "./messages.ts";
import { retryForever } from "./reconnect.ts";
import type { ReaderKeyStore } from "./reader-keys.ts";
import type { PeerIdentity } from "./tls.ts";

/** What the agent lends its member role. */
export interface MemberHost {
  readonly config: AgentConfig;
  readonly log: Logger;
  readonly store: ReaderKeyStore;
  /** The deployment's CA (PEM) and this agent's own certificate (DER). */
  readonly caPem: string;
  readonly ownCertificate: Uint8Array;
  connect(at: Endpoint, roles: Role[], maxFrameBytes: number): Promise<{ channel: Channel; peer: PeerIdentity }>;
  pause(ms: number): Promise<void>;
  stopped(): boolean;
  /** A generation was installed (the agent's "installed" event). */
  installed(keyIdHex: string): void;
  writeKeyLog(entries: KeyLogEntry[]): void;
}

/** How many generations a group master or member keeps in its key log and answers analyzers with. */
export const KEPT_GROUP_GENERATIONS = 256;

/** A distributed generation's effectiveAt until the member seals with it: the largest Date. */
const RECEIVE_ONLY = 8.64e15;

export class GroupMemberRole {
  /** The highest generation seen from any source (a restarted master, or the key server, continues above it). */
  private readonly seen = { generation: 0 };
  private readonly keyLog: KeyLogEntry[] = [];
  /** The connection to the master, while there is one. */
  private masterLink: Channel | undefined;
  /** Distributed mode: the Key Selection Protocol member, once it has its connectivity keys. */
  private ksp: KspMember | undefined;
  private kspStarting = false;
  private kriReportedAt = 0;

  constructor(private readonly host: MemberHost) {}

  /** Start what the config asks for; returns the loops that end once the agent stops. */
  async start(): Promise<Promise<void>[]> {
    const { config } = this.host;
    const loops: Promise<void>[] = [];
    if (config.groupMaster) loops.push(this.followMaster(config.groupMaster));
    const d = config.distributed;
    // Distributed mode with its own key file starts now; from a writer, once it answers;
    // from the group master, once it sends them.
    if (d?.keys) await this.startDistributed(d, readConnectivityKeys(d.keys));
    else if (d?.keysFrom) loops.push(this.keysFromWriter(d, d.keysFrom));
    return loops;
  }

  stop(): void {
    this.ksp?.stop();
  }

  private async startDistributed(d: DistributedConfig, keys: ConnectivityKeys): Promise<void> {
    const { config, log, store } = this.host;
    const dropsLogged = { at: 0, count: 0 };
    this.ksp = await KspMember.start({
      keys,
      // Hybrid mode: while this member follows a live group master, its generations rule.
      served: config.groupMaster ? () => this.masterLink?.isOpen === true : undefined,
      generationFloor: () => this.seen.generation,
      memberId:
        d.memberId ?? new Uint8Array(createHash("sha256").update(this.host.ownCertificate).digest().subarray(0, 8)),
      priority: d.priority,
      suite: config.suites[0]!,
      timers: { ...d.timers, rotationMs: lifetimeMs(config.rotation) },
      kns: fileKnMemory(d.knMemory, keys),
      transport: { interface: d.interface, address: d.address, port: d.port, group: d.group, peers: d.peers },
      onEvent: (e) => {
        switch (e.type) {
          case "installed": {
            const g = e.generation;
            store.install({
              type: "provision",
              keyId: g.keyId,
              generation: g.generation,
              effectiveAt: RECEIVE_ONLY,
              suite: g.suite,
              salt: g.salt,
              rotation: config.rotation,
              grant: { kind: "shared", secret: g.sharedSecret },
              sealAllowed: true,
            });
            this.seen.generation = Math.max(this.seen.generation, g.generation);
            this.record(g.keyIdHex);
            log.log("info", "ksp-generation-installed", { generation: g.generation, keyId: g.keyIdHex });
            break;
          }
          case "sealing":
            store.sealFrom(e.generation.keyIdHex, Date.now());
            log.log("info", "ksp-sealing", { generation: e.generation.generation, keyId: e.generation.keyIdHex });
            this.host.installed(e.generation.keyIdHex);
            break;
          case "retired":
            store.forget(e.generation.keyIdHex);
            log.log("info", "ksp-retired", { generation: e.generation.generation });
            break;
          case "elected":
            log.log("info", "ksp-key-server", { keyServer: e.keyServer, self: e.self });
            break;
          default:
            log.log("info", `ksp-${e.type}`, { member: e.memberId });
        }
      },
      onDrop: (reason) => {
        // At most 5 lines per 10 s: a flood of forged datagrams must not flood the log.
        const now = Date.now();
        if (now - dropsLogged.at > 10_000) Object.assign(dropsLogged, { at: now, count: 0 });
        if ((dropsLogged.count += 1) <= 5) log.log("warn", "ksp-dropped", { reason });
      },
    });
    log.log("info", "ksp-started", {
      interface: d.interface,
      address: d.address,
      mode: d.peers ? `unicast to ${d.peers.length} peers` : "multicast",
    });
  }

  /** Join the master; keep keys across reconnects, discard them when refused. */
  private followMaster(at: Endpoint): Promise<void> {
    const { config, log, store } = this.host;
    const ca = new X509Certificate(this.host.caPem);
    const checked = new Map<string, CheckedCertificate>();
    return retryForever({
      stopped: () => this.host.stopped(),
      pause: (ms) => this.host.pause(ms),
      attempt: async (succeeded, retryMs) => {
        const { channel, peer } = await this.host.connect(at, ["group-master"], GROUP_FRAME_BYTES);
        log.log("info", "connected", { to: peer.name, role: peer.role });
        this.masterLink = channel;
        await followGroupMaster(channel, store, {
          log,
          ca,
          own: this.host.ownCertificate,
          lifeMs: config.group.lifeMs,
          seen: this.seen,
          checked,
          onConnectivityKeys: (keys) => this.keysFromMaster(keys),
          onInstall: (keyIdHex) => {
            succeeded();
            this.record(keyIdHex);
            this.host.installed(keyIdHex);
          },
        });
        if (!this.host.stopped()) log.log("warn", "group-master-lost", { retryMs: retryMs() });
      },
      failed: (e, retryMs) => {
        const code = e instanceof RegistrationError ? e.code : "error";
        if (code === "peer-error" || code === "membership-invalid") {
          // Dropped or refused: this member seals nothing more under what it holds.
          store.discardAll();
          log.log("error", "keys-discarded", { reason: (e as Error).message });
        } else {
          log.log("warn", "join-failed", { code, reason: (e as Error).message, retryMs });
        }
      },
    });
  }

  /** Hybrid mode: the group master gave the connectivity key set; the protocol starts (once). */
  private keysFromMaster(keys: ConnectivityKeys): void {
    const d = this.host.config.distributed;
    if (!d || d.keys || d.keysFrom || this.ksp || this.kspStarting) return;
    this.kspStarting = true;
    this.startDistributed(d, keys).catch((e: unknown) =>
      this.host.log.log("error", "ksp-not-started", { reason: (e as Error).message }),
    );
  }

  /**
   * Ask a writer for the connectivity key set over mutual TLS until it gives it, then
   * start the protocol: the writers may be down for good afterwards.
   */
  private keysFromWriter(d: DistributedConfig, at: Endpoint): Promise<void> {
    const { log } = this.host;
    return retryForever({
      stopped: () => this.host.stopped() || this.ksp !== undefined,
      pause: (ms) => this.host.pause(ms),
      attempt: async () => {
        const { channel, peer } = await this.host.connect(at, ["writer-server", "writer-client"], MAX_FRAME_BYTES);
        let keys: ConnectivityKeys;
        try {
          channel.send({ type: "connectivity-keys-request" });
          const m = await channel.receive(["connectivity-keys"]);
          keys = { ckn: m.ckn, cak: m.cak, kgk: m.kgk };
        } finally {
          channel.close();
        }
        log.log("info", "connectivity-keys-received", { from: peer.name });
        await this.startDistributed(d, keys);
      },
      failed: (e, retryMs) => {
        const code = e instanceof RegistrationError ? e.code : "error";
        log.log("warn", "connectivity-keys-not-received", { code, reason: (e as Error).message, retryMs });
      },
    });
  }

  /**
   * A flow's Kri space is running out, so ask for a new generation (at most once a
   * minute: every flow near the end asks at once): the master, or the key server.
   */
  reportKriRunningOut(): void {
    if (Date.now() - this.kriReportedAt < 60_000) return;
    this.kriReportedAt = Date.now();
    if (this.masterLink?.isOpen) this.masterLink.send({ type: "renew-request", reason: "kri-exhausted" });
    this.ksp?.participant.requestNewKey();
    this.host.log.log("warn", "kri-running-out", { action: "asked for a new generation" });
  }

  /** The key log holds every generation installed since the agent started (the newest KEPT_GROUP_GENERATIONS). */
  private record(keyIdHex: string): void {
    const g = this.host.store.openingGenerations().find((x) => x.keyIdHex === keyIdHex);
    if (!g || g.grant.kind !== "shared") return;
    this.keyLog.push({ kind: "shared", keyId: g.keyId, suite: g.suite, salt: g.salt, secret: g.grant.secret });
    if (this.keyLog.length > KEPT_GROUP_GENERATIONS) this.keyLog.shift();
    this.host.writeKeyLog(this.keyLog);
  }

  status(): MemberStatus {
    const { config, store } = this.host;
    const sealing = store.sealingGeneration();
    const master = config.groupMaster;
    const d = config.distributed;
    return {
      master: master ? `[${master.host}]:${master.port}` : "none (distributed)",
      connectivityKeys: !d
        ? undefined
        : d.keys
          ? `file ${d.keys}`
          : d.keysFrom
            ? `writer [${d.keysFrom.host}]:${d.keysFrom.port}${this.ksp ? "" : " (not received yet)"}`
            : `group master${this.ksp ? "" : " (not received yet)"}`,
      distributed: this.ksp?.status(),
      generation: this.seen.generation || undefined,
      sealingKeyId: sealing?.keyIdHex,
      sealingGeneration: sealing?.generation,
    };
  }
}

export interface MemberStatus {
  master: string;
  /** Distributed mode: where the connectivity key set came from (or is awaited from). */
  connectivityKeys: string | undefined;
  /** Distributed mode: members live and potential, the key server, generations, drops by reason. */
  distributed: ReturnType<KspMember["status"]> | undefined;
  /** The newest generation installed. */
  generation: number | undefined;
  /** The generation this member seals with now. */
  sealingKeyId: string | undefined;
  sealingGeneration: number | undefined;
}

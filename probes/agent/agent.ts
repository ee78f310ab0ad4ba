// One agent process playing the roles its config lists (keys.md section 1):
//
//   writer-server  listens; registers writer clients, provisions reader servers, answers
//                  analyzers with SharedSecret key logs, asks for renewals (writer-role.ts).
//   writer-client  registers with the writer server and renews before each generation's
//                  lifetime ends; listens for reader clients (ClientSecrets) and analyzers.
//   reader-*       joins its writer, installs provisions, reconnects on loss; discards
//                  everything and joins afresh when the writer refuses it.
//   group-master   admits group members and makes a generation from each membership
//                  (groups.md 1, group-master.ts); answers analyzers with its key log.
//   group-member   joins its group master, recomputes and installs each generation,
//                  or agrees on generations with the other members (distributed mode),
//                  holding what a reader server holds (member-role.ts).
//
// Writers also give distributed mode's connectivity key set to the group members that
// ask, when their config names one (connectivityKeys).
//
// A reader role next to its own writer role is fed in-process (same messages, no TLS).

import { EventEmitter } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { readConnectivityKeys, type ConnectivityKeys } from "../ksp/index.ts";
import type net from "node:net";
import tls from "node:tls";
import { AdmissionGate, type AdmissionStats } from "./admission.ts";
import type { RenewalLimiterStats } from "./renewal-limiter.ts";
import { hex, type KeyLogEntry, writeKeyLog } from "../../pdm/index.ts";
import { certificateIdentity, type CertificateIdentity } from "./certs.ts";
import { Channel, MAX_FRAME_BYTES, StreamChannel, memoryChannelPair } from "./channel.ts";
import { GroupMaster, type GroupStatus } from "./group-master.ts";
import { GroupMemberRole, KEPT_GROUP_GENERATIONS, type MemberStatus } from "./member-role.ts";
import type { AgentConfig, Endpoint } from "./config.ts";
import { RegistrationError } from "./errors.ts";
import type { Generation } from "./generation.ts";
import { silentLogger, type Logger } from "./log.ts";
import type { MessageOf, Role } from "./messages.ts";
import { ProvisioningService, followWriterForever, type ReaderPeer } from "./provisioning.ts";
import { ReaderKeyStore } from "./reader-keys.ts";
import { DataPathFollower, readerStkSource } from "./kernel-keys.ts";
import type { KeyInstallerStats } from "../kernel-keys/index.ts";
import { WriterRole } from "./writer-role.ts";
import { answerKeyLogExport } from "./key-export.ts";
import {
  clientOptions,
  loadTlsMaterial,
  ownCertificateDer,
  serverOptions,
  verifyPeer,
  type PeerIdentity,
  type TlsMaterial,
} from "./tls.ts";

export interface AgentEvents {
  generation: [Generation];
  installed: [string];
}

export class Agent extends EventEmitter<AgentEvents> {
  readonly readerStore: ReaderKeyStore | undefined;
  private readonly material: TlsMaterial;
  private readonly own: CertificateIdentity;
  private readonly log: Logger;
  /** writer roles: registration, renewal and provisioning (writer-role.ts). */
  private readonly writer: WriterRole | undefined;
  private server: tls.Server | undefined;
  /** The listener's limits on connections that have not finished their handshake. */
  private gate: AdmissionGate | undefined;
  private stopped = false;
  private endPauses: () => void = () => {};
  private readonly stopping = new Promise<void>((resolve) => (this.endPauses = resolve));
  private readonly channels = new Set<Channel>();
  private readonly loops: Promise<void>[] = [];
  private readerKind: "server" | "client" | "group" | undefined;
  /** group-master: the group (groups.md 1). */
  readonly groupMaster: GroupMaster | undefined;
  /** group-member: follows the master, or runs the Key Selection Protocol (member-role.ts). */
  private readonly member: GroupMemberRole | undefined;
  /** writers: the connectivity key set they give group members that ask (distributed mode). */
  private readonly connectivityKeys: ConnectivityKeys | undefined;
  /** Installs the protected layout's keys into the host's data path (config `datapath`). */
  private dataPath: DataPathFollower | undefined;

  constructor(
    readonly config: AgentConfig,
    options: { log?: Logger } = {},
  ) {
    super();
    this.log = options.log ?? silentLogger;
    this.material = loadTlsMaterial(config.tls);
    this.own = certificateIdentity(ownCertificateDer(this.material));
    const has = (r: Role): boolean => config.roles.includes(r as never);
    if (has("writer-server") || has("writer-client")) {
      this.writer = new WriterRole({
        config,
        log: this.log,
        connect: (at, roles) => this.connect(at, roles),
        pause: (ms) => this.pause(ms),
        stopped: () => this.stopped,
        published: (g) => {
          this.writeOwnKeyLog(this.writer!.provisioning.current.map(sharedEntry));
          this.emit("generation", g);
        },
      });
    }
    if (has("reader-server") || has("reader-client")) {
      const kind = has("reader-server") ? "server" : "client";
      if (kind === "client" && !this.own.pdmAddress) {
        throw new RegistrationError(
          "invalid-provision",
          "a reader-client certificate must name the host's IPv6 address (--addr)",
        );
      }
      this.readerStore = new ReaderKeyStore({ kind, ownAddress: this.own.pdmAddress, graceMs: config.graceMs });
      this.readerKind = kind;
    }
    if (has("group-member")) {
      // A member holds each generation's SharedSecret, as a reader server does.
      const store = new ReaderKeyStore({ kind: "server", graceMs: config.graceMs });
      this.readerStore = store;
      this.readerKind = "group";
      this.member = new GroupMemberRole({
        config,
        log: this.log,
        store,
        caPem: this.material.ca,
        ownCertificate: new Uint8Array(ownCertificateDer(this.material)),
        connect: (at, roles, maxFrameBytes) => this.connect(at, roles, maxFrameBytes),
        pause: (ms) => this.pause(ms),
        stopped: () => this.stopped,
        installed: (keyIdHex) => this.emit("installed", keyIdHex),
        writeKeyLog: (entries) => this.writeOwnKeyLog(entries),
      });
    }
    if (config.connectivityKeys) this.connectivityKeys = readConnectivityKeys(config.connectivityKeys);
    if (has("group-master")) {
      this.groupMaster = new GroupMaster({
        suite: config.suites[0]!,
        rotation: config.rotation,
        lifeMs: config.group.lifeMs,
        leadMs: config.group.leadMs,
        ackTimeoutMs: config.group.ackTimeoutMs,
        releases: config.group.releases,
        maxMembers: config.group.maxMembers,
        gatherMs: config.group.gatherMs,
        connectivityKeys: config.group.connectivityKeys
          ? readConnectivityKeys(config.group.connectivityKeys)
          : undefined,
        keep: KEPT_GROUP_GENERATIONS,
        log: this.log,
        onGeneration: (g) => {
          this.writeOwnKeyLog(this.groupMaster!.kept.map(sharedEntry));
          this.emit("generation", g);
        },
      });
    }
  }

  private has(role: Role): boolean {
    return this.config.roles.includes(role as never);
  }

  /** Listen and connect as the roles require; returns once listening (not once provisioned). */
  async start(): Promise<void> {
    const { config } = this;
    this.log.log("info", "agent-start", { name: config.name, roles: config.roles.join(",") });
    if (this.has("writer-server") || this.has("writer-client") || this.has("group-master"))
      await this.listen(config.listen!);
    if (this.member) this.loops.push(...(await this.member.start()));
    if (this.has("writer-client")) this.loops.push(this.writer!.registrationLoop(config.writerServer!));
    if (this.has("reader-server")) {
      this.loops.push(
        this.has("writer-server")
          ? this.localReader("server")
          : this.followWriter(config.writerServer!, "writer-server"),
      );
    }
    if (this.has("reader-client")) {
      this.loops.push(
        this.has("writer-client")
          ? this.localReader("client")
          : this.followWriter(config.writerClient!, "writer-client"),
      );
    }
    if (config.datapath && this.readerStore) {
      const store = this.readerStore;
      this.dataPath = new DataPathFollower(
        config.datapath.interface,
        (aead, warn) =>
          readerStkSource(store, this.readerKind!, this.own.pdmAddress, aead, warn, () =>
            this.member?.reportKriRunningOut(),
          ),
        this.log,
      );
      this.loops.push(this.dataPath.run());
    }
  }

  get port(): number | undefined {
    const a = this.server?.address();
    return typeof a === "object" && a ? a.port : undefined;
  }

  /** Wait before a reconnection, cut short by stop(): an agent stops at once, not a backoff later. */
  private pause(ms: number): Promise<void> {
    return Promise.race([sleep(ms), this.stopping]);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.endPauses();
    this.dataPath?.stop();
    for (const c of this.channels) c.close();
    this.gate?.stop();
    this.writer?.stop();
    await this.groupMaster?.stop();
    this.member?.stop();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    await Promise.allSettled(this.loops);
    this.readerStore?.discardAll();
    this.log.log("info", "agent-stop", { name: this.config.name });
  }

  /** Resolves with the first generation this agent's reader role installs. */
  whenInstalled(): Promise<string> {
    return new Promise((resolve) => this.once("installed", resolve));
  }

  /** Resolves with the next generation this agent's writer role commits. */
  nextGeneration(): Promise<Generation> {
    return new Promise((resolve) => this.once("generation", resolve));
  }

  // ---- writer roles ------------------------------------------------------------------

  private listen(at: Endpoint): Promise<void> {
    const allowed: Role[] = this.has("group-master")
      ? ["group-member", "analyzer"]
      : this.has("writer-server")
        ? ["writer-client", "reader-server", "analyzer", "group-member"]
        : ["reader-client", "analyzer", "group-member"];
    const gate = new AdmissionGate(this.config.admission, this.log);
    this.gate = gate;
    this.server = tls.createServer(
      { ...serverOptions(this.material), handshakeTimeout: gate.limits.handshakeMs },
      (socket) => {
        gate.authenticated(socket);
        this.serveConnection(socket, allowed).catch((e: unknown) =>
          this.log.log("error", "connection-failed", { error: String(e) }),
        );
      },
    );
    this.server.maxConnections = gate.limits.maxConnections;
    // Counted from the first byte: a peer that never finishes its handshake holds a
    // descriptor, so the unauthenticated ones are capped (admission.ts).
    this.server.on("connection", (socket: net.Socket) => gate.admit(socket));
    // A TLS handshake that fails or times out (garbage, wrong protocol, a peer that
    // says nothing) is counted and logged within a rate limit, and closed: with a
    // listener here Node leaves the socket open.
    this.server.on("tlsClientError", (e, socket) => {
      gate.handshakeFailed(socket.remoteAddress, e);
      socket.destroy();
    });
    return new Promise((resolve, reject) => {
      this.server!.once("error", reject);
      // A deployment's readers all reconnect at once after a writer restart: a deep backlog
      // keeps their SYNs from being dropped (and retried only a second later).
      this.server!.listen({ port: at.port, host: at.host, backlog: 4096 }, () => {
        this.server!.off("error", reject);
        this.log.log("info", "listening", { address: at.host, port: this.port });
        resolve();
      });
    });
  }

  private async serveConnection(socket: tls.TLSSocket, allowed: Role[]): Promise<void> {
    const channel = this.track(new StreamChannel(socket));
    let peer: PeerIdentity | undefined;
    try {
      peer = verifyPeer(socket, allowed, {
        bindAddress: this.has("group-master") ? this.config.group.addressBinding : true,
      });
      const first = await channel.receive([
        "hello",
        "join",
        "export-request",
        "member-join",
        "connectivity-keys-request",
      ]);
      if (first.type === "connectivity-keys-request") {
        this.requireRole(peer, "group-member", "ask for the connectivity key set");
        this.giveConnectivityKeys(channel, peer);
      } else if (first.type === "member-join") {
        this.requireRole(peer, "group-member", "join a group");
        if (!this.groupMaster)
          throw new RegistrationError(
            "unexpected-message",
            "this agent is a writer, not a group master: no group to join",
          );
        await this.groupMaster!.serve(channel, peer, new Uint8Array(socket.getPeerX509Certificate()!.raw), first);
      } else if (first.type === "hello") {
        this.requireRole(peer, "writer-client", "register");
        await this.writer!.serveWriterClient(channel, peer, first);
      } else if (first.type === "join") {
        const readerRole: Role = this.has("writer-server") ? "reader-server" : "reader-client";
        this.requireRole(peer, readerRole, "join");
        const reader: ReaderPeer = {
          id: peer.fingerprint,
          name: peer.name,
          kind: readerRole === "reader-server" ? "server" : "client",
        };
        if (reader.kind === "client") {
          if (!peer.pdmAddress)
            throw new RegistrationError("wrong-address", "a reader-client certificate must name an IPv6 address");
          reader.address = peer.pdmAddress;
        }
        this.log.log("info", "reader-joined", { reader: peer.name, holds: first.holds.length });
        await this.writer!.provisioning.serveReader(channel, reader, first);
      } else {
        this.requireRole(peer, "analyzer", "export keys");
        this.answerExport(channel, peer, first);
      }
    } catch (e) {
      if (e instanceof RegistrationError) {
        if (e.code !== "closed") {
          this.groupMaster?.countRefusal(e.code);
          this.log.log("warn", "refused", {
            peer: peer?.name ?? socket.remoteAddress,
            code: e.code,
            reason: e.message,
          });
          channel.refuse(e);
        }
        return;
      }
      channel.close();
      throw e;
    } finally {
      this.channels.delete(channel);
    }
  }

  private requireRole(peer: PeerIdentity, role: Role, what: string): void {
    if (peer.role !== role)
      throw new RegistrationError("wrong-role", `a ${peer.role} may not ${what} here (only a ${role})`);
  }

  /** The config's key log (0600), rewritten whole: it is our own file. */
  private writeOwnKeyLog(entries: KeyLogEntry[]): void {
    if (!this.config.keyLog) return;
    try {
      writeKeyLog(this.config.keyLog, entries, { replace: true });
    } catch (e) {
      // A refused path (a symbolic link planted there) must not stop key distribution.
      this.log.log("error", "key-log-not-written", { file: this.config.keyLog, reason: (e as Error).message });
    }
  }

  /** group-master: make a new generation now (an operator's command). */
  renewGroup(reason: string): void {
    if (!this.groupMaster) throw new RegistrationError("wrong-role", "only a group master renews a group");
    this.log.log("info", "renewal-requested", { by: "operator", reason });
    this.groupMaster.requestRenewal(reason);
  }

  /** writers: a group member of distributed mode asks for its connectivity key set (groups.md 2). */
  private giveConnectivityKeys(channel: Channel, peer: PeerIdentity): void {
    const keys = this.connectivityKeys;
    if (this.has("group-master"))
      throw new RegistrationError(
        "unexpected-message",
        "a group master sends the connectivity key set to its members unasked, after member-join",
      );
    if (!keys)
      throw new RegistrationError(
        "no-connectivity-keys",
        "this writer gives no connectivity key set (its config has no connectivityKeys)",
      );
    channel.send({ type: "connectivity-keys", ckn: keys.ckn, cak: keys.cak, kgk: keys.kgk });
    this.log.log("info", "connectivity-keys-given", { member: peer.name });
    channel.close();
  }

  private answerExport(channel: Channel, peer: PeerIdentity, request: MessageOf<"export-request">): void {
    answerKeyLogExport(channel, peer, request, {
      generations: this.groupMaster ? this.groupMaster.kept : this.writer!.provisioning.current,
      clientSecretsOnly: this.has("writer-client"),
      log: this.log,
    });
  }

  // ---- reader roles ------------------------------------------------------------------

  /** reader-*: join the writer over TLS; keep keys across reconnects, discard them when refused. */
  private followWriter(at: Endpoint, writerRole: Role): Promise<void> {
    return followWriterForever(this.readerStore!, {
      log: this.log,
      connect: () => this.connect(at, [writerRole]),
      pause: (ms) => this.pause(ms),
      stopped: () => this.stopped,
      installed: (keyIdHex) => this.emit("installed", keyIdHex),
    });
  }

  /** A reader role next to its own writer: the same join/provision/ack, in memory. */
  private localReader(kind: "server" | "client"): Promise<void> {
    const [writerEnd, readerEnd] = memoryChannelPair();
    const reader = { id: `local:${this.own.fingerprint}`, name: `${this.config.name} (local)`, kind };
    return this.writer!.provisionLocalReader(
      this.track(writerEnd),
      this.track(readerEnd),
      { ...reader, address: this.own.pdmAddress },
      this.readerStore!,
      (keyIdHex) => this.emit("installed", keyIdHex),
    );
  }

  // ---- connections ---------------------------------------------------------------------

  private connect(
    at: Endpoint,
    roles: Role[],
    maxFrameBytes = MAX_FRAME_BYTES,
  ): Promise<{ channel: Channel; peer: PeerIdentity }> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect(clientOptions(this.material, at.host, at.port));
      socket.once("error", (e) =>
        reject(
          new RegistrationError("closed", `cannot connect to ${at.host} port ${at.port}: ${e.message}`, { cause: e }),
        ),
      );
      socket.once("secureConnect", () => {
        const channel = this.track(new StreamChannel(socket, maxFrameBytes));
        try {
          resolve({ channel, peer: verifyPeer(socket, roles) });
        } catch (e) {
          this.log.log("warn", "refused", {
            peer: `${at.host} port ${at.port}`,
            code: (e as RegistrationError).code,
            reason: (e as Error).message,
          });
          channel.refuse(e as RegistrationError);
          reject(e);
        }
      });
    });
  }

  private track<C extends Channel>(channel: C): C {
    this.channels.add(channel);
    channel.onClose(() => this.channels.delete(channel));
    return channel;
  }

  status(): AgentStatus {
    const provisioning = this.writer?.provisioning;
    const generations = (provisioning?.current ?? []).map((g) => ({
      keyId: hex(g.keyId),
      generation: g.generation,
      effectiveAt: g.effectiveAt,
    }));
    return {
      name: this.config.name,
      roles: this.config.roles,
      generations,
      provisioning: provisioning ? { ...provisioning.stats } : undefined,
      readerHolds: this.readerStore?.holds().map(hex),
      kernelKeys: this.dataPath?.stats,
      connections: this.gate?.stats(),
      renewals: this.writer ? { ...this.writer.renewals.stats } : undefined,
      group: this.groupMaster?.status(),
      member: this.member?.status(),
    };
  }
}

function sharedEntry(g: Generation): KeyLogEntry {
  return { kind: "shared", keyId: g.keyId, suite: g.suite, salt: g.salt, secret: g.sharedSecret };
}

export type { MemberStatus };

export interface AgentStatus {
  name: string;
  roles: string[];
  generations: { keyId: string; generation: number; effectiveAt: number }[];
  provisioning: ProvisioningService["stats"] | undefined;
  readerHolds: string[] | undefined;
  /** A reader with a data path: what its key installer did (needs read, keys installed, flows resumed, ...). */
  kernelKeys: KeyInstallerStats | undefined;
  /** A listening agent: connections mid-handshake, and those closed by the admission limits. */
  connections: AdmissionStats | undefined;
  /** A writer: renewals its readers' restarts asked for at once, and those deferred (renewal-limiter.ts). */
  renewals: RenewalLimiterStats | undefined;
  /** A group master: the members in order, the generation, when it renews, what it refused. */
  group: GroupStatus | undefined;
  /** A group member: its master and the generation it seals with. */
  member: MemberStatus | undefined;
}

// One agent process playing the roles its config lists (keys.md section 1):
//
//   writer-server  listens; registers writer clients, provisions reader servers, answers
//                  analyzers with SharedSecret key logs, asks for renewals.
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
import { readConnectivityKeys, type ConnectivityKeys } from "../ksp/index.ts";
import type net from "node:net";
import tls from "node:tls";
import { AdmissionGate, type AdmissionStats } from "./admission.ts";
import { RenewalLimiter, type RenewalLimiterStats } from "./renewal-limiter.ts";
import { hex, type KeyLogEntry, formatIpv6Address, writeKeyLog } from "../../pdm/index.ts";
import { certificateIdentity, type CertificateIdentity } from "./certs.ts";
import { Channel, MAX_FRAME_BYTES, StreamChannel, memoryChannelPair } from "./channel.ts";
import { GroupMaster, type GroupStatus } from "./group-master.ts";
import { GroupMemberRole, KEPT_GROUP_GENERATIONS, type MemberStatus } from "./member-role.ts";
import type { AgentConfig, Endpoint } from "./config.ts";
import { RegistrationError } from "./errors.ts";
import { grantFor, lifetimeMs, type Generation } from "./generation.ts";
import { retryForever } from "./reconnect.ts";
import { silentLogger, type Logger } from "./log.ts";
import type { KeyLogGrant, MessageOf, Role } from "./messages.ts";
import { ProvisioningService, followWriter, type ReaderPeer } from "./provisioning.ts";
import { ReaderKeyStore } from "./reader-keys.ts";
import { KernelKeys, readerStkSource } from "./kernel-keys.ts";
import type { KeyInstallerStats } from "../kernel-keys/index.ts";
import { RegistrationServer, register } from "./registration.ts";
import {
  clientOptions,
  loadTlsMaterial,
  serverOptions,
  verifyPeer,
  type PeerIdentity,
  type TlsMaterial,
} from "./tls.ts";

const FOREVER_MS = 2 ** 31 - 1;
/** A reader that keeps restarting causes at most one renewal in this long (renewal-limiter.ts). */
const RESTART_RENEWAL_INTERVAL_MS = 30_000;

export interface AgentEvents {
  generation: [Generation];
  installed: [string];
}

export class Agent extends EventEmitter<AgentEvents> {
  readonly provisioning: ProvisioningService | undefined;
  readonly readerStore: ReaderKeyStore | undefined;
  private readonly material: TlsMaterial;
  private readonly own: CertificateIdentity;
  private readonly log: Logger;
  private readonly registrar: RegistrationServer | undefined;
  private readonly renewals = new RenewalLimiter(RESTART_RENEWAL_INTERVAL_MS, (reason) => this.requestRenewal(reason));
  private server: tls.Server | undefined;
  /** The listener's limits on connections that have not finished their handshake. */
  private gate: AdmissionGate | undefined;
  private writerClientLink: Channel | undefined;
  /** The certificate fingerprint of the writer client that registered first (no writerClients in the config). */
  private writerClientPin: string | undefined;
  private renewWanted = false;
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
  private kernelKeys: KernelKeys | undefined;
  /** Ends the kernel-keys loop's wait at once (stop). */
  private wakeKernelKeys: (() => void) | undefined;

  constructor(
    readonly config: AgentConfig,
    options: { log?: Logger } = {},
  ) {
    super();
    this.log = options.log ?? silentLogger;
    this.material = loadTlsMaterial(config.tls);
    this.own = certificateIdentity(pemToDer(this.material.cert));
    const has = (r: Role): boolean => config.roles.includes(r as never);
    if (has("writer-server")) {
      this.registrar = new RegistrationServer({
        acceptedSuites: config.suites,
        rotation: config.rotation,
        provisionLeadMs: config.provisionLeadMs,
      });
    }
    if (has("writer-server") || has("writer-client")) {
      this.provisioning = new ProvisioningService({
        ackTimeoutMs: config.ackTimeoutMs,
        maxResends: 4,
        graceMs: config.graceMs,
        log: this.log,
        onRestartedReader: (reader) => {
          if (this.renewals.request(reader.id, `reader ${reader.name} restarted`) === "deferred") {
            this.log.log("info", "renewal-deferred", {
              reader: reader.name,
              why: `one renewal per reader per ${RESTART_RENEWAL_INTERVAL_MS / 1000} s`,
            });
          }
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
        ownCertificate: new Uint8Array(pemToDer(this.material.cert)),
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
    if (this.has("writer-client")) this.loops.push(this.registrationLoop(config.writerServer!));
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
    if (config.datapath && this.readerStore) this.loops.push(this.kernelKeysLoop(config.datapath.interface));
  }

  /**
   * Install the data path's keys once it is attached on `ifname`: the agent may well
   * start first (it needs its keys before traffic does), so it looks again each second.
   * Then it follows the interface: attached again, it serves the new data path.
   */
  private async kernelKeysLoop(ifname: string): Promise<void> {
    const warn = (message: string): void =>
      this.log.log("warn", "kernel-key-missing", { interface: ifname, detail: message });
    const notice = (message: string): void =>
      this.log.log("info", "kernel-flow-resumed", { interface: ifname, detail: message });
    const source = (aead: number) =>
      readerStkSource(this.readerStore!, this.readerKind!, this.own.pdmAddress, aead, warn, () =>
        this.member?.reportKriRunningOut(),
      );
    let waiting = false;
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        this.wakeKernelKeys = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    while (!this.stopped) {
      try {
        if (!this.kernelKeys) {
          this.kernelKeys = KernelKeys.start(ifname, source, warn, notice);
          this.log.log("info", "kernel-keys-started", { interface: ifname });
        } else if (this.kernelKeys.follow()) {
          this.log.log("info", "kernel-keys-reattached", { interface: ifname });
        }
        waiting = false;
      } catch (e) {
        if (!waiting) this.log.log("info", "kernel-keys-waiting", { interface: ifname, reason: (e as Error).message });
        waiting = true;
      }
      await sleep(this.kernelKeys && !waiting ? 2000 : 1000);
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
    this.wakeKernelKeys?.();
    this.kernelKeys?.close();
    for (const c of this.channels) c.close();
    this.gate?.stop();
    this.renewals.stop();
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
        await this.serveWriterClient(channel, peer, first);
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
        await this.provisioning!.serveReader(channel, reader, first);
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

  /**
   * One deployment, one writer client: a second writer-client certificate registering
   * would replace the deployment's keys behind the real writer client's back (its
   * readers would hold keys the others lack). Allowed only when the config names it.
   */
  private admitWriterClient(peer: PeerIdentity): void {
    const listed = this.config.writerClients;
    if (listed) {
      if (!listed.includes(peer.name)) {
        throw new RegistrationError(
          "writer-client-not-allowed",
          `the writer client "${peer.name}" is not in this writer server's writerClients`,
        );
      }
      return;
    }
    if (this.writerClientPin !== undefined && this.writerClientPin !== peer.fingerprint) {
      throw new RegistrationError(
        "writer-client-not-allowed",
        `another writer client's certificate already registered this deployment; "${peer.name}" may register only if the writer server's config lists it in writerClients`,
      );
    }
  }

  private requireRole(peer: PeerIdentity, role: Role, what: string): void {
    if (peer.role !== role)
      throw new RegistrationError("wrong-role", `a ${peer.role} may not ${what} here (only a ${role})`);
  }

  private async serveWriterClient(channel: Channel, peer: PeerIdentity, hello: MessageOf<"hello">): Promise<void> {
    for (;;) {
      const g = await this.registrar!.serve(channel, hello, () => this.admitWriterClient(peer));
      this.writerClientPin ??= peer.fingerprint;
      this.log.log("info", "registered", {
        peer: peer.name,
        keyId: hex(g.keyId),
        generation: g.generation,
        purpose: hello.purpose,
      });
      this.writerClientLink = channel;
      this.publish(g);
      if (this.renewWanted) this.requestRenewal("pending request");
      hello = await channel.receive(["hello"], FOREVER_MS);
    }
  }

  /** Ask the writer client for a fresh generation (a reader lost its state). */
  private requestRenewal(reason: string): void {
    if (this.has("writer-client")) {
      this.renewWanted = true; // the registration loop picks it up
      return;
    }
    const link = this.writerClientLink;
    if (link?.isOpen) {
      this.renewWanted = false;
      link.send({ type: "renew-request", reason });
      this.log.log("info", "renewal-requested", { reason });
    } else {
      this.renewWanted = true;
      this.log.log("warn", "renewal-pending", { reason, why: "no writer client connected" });
    }
  }

  private publish(g: Generation): void {
    this.provisioning!.publish(g);
    this.writeOwnKeyLog(this.provisioning!.current.map(sharedEntry));
    this.emit("generation", g);
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
    if (this.has("writer-client") && !request.client) {
      throw new RegistrationError(
        "wrong-role",
        "a writer client exports ClientSecrets only: ask for one client address",
      );
    }
    const generations = this.groupMaster ? this.groupMaster.kept : this.provisioning!.current;
    const entries: KeyLogGrant[] = generations.map((g) => ({
      keyId: g.keyId,
      suite: g.suite,
      salt: g.salt,
      grant: request.client
        ? grantFor(g, { kind: "client", address: request.client })
        : grantFor(g, { kind: "server" }),
    }));
    channel.send({ type: "key-log", entries });
    this.log.log("info", "keys-exported", {
      analyzer: peer.name,
      generations: entries.length,
      scope: request.client ? formatIpv6Address(request.client) : "shared",
    });
    channel.close();
  }

  /** writer-client: register, then renew before each lifetime ends or when asked. */
  private registrationLoop(at: Endpoint): Promise<void> {
    let purpose: "register" | "renew" = "register";
    return retryForever({
      stopped: () => this.stopped,
      pause: (ms) => this.pause(ms),
      attempt: async (succeeded) => {
        const { channel, peer } = await this.connect(at, ["writer-server"]);
        this.log.log("info", "connected", { to: peer.name, role: peer.role });
        while (!this.stopped) {
          this.renewWanted = false;
          const g = await register(channel, { purpose, offer: this.config.suites });
          succeeded();
          purpose = "renew";
          this.log.log("info", "registered", {
            with: peer.name,
            keyId: hex(g.keyId),
            generation: g.generation,
            effectiveAt: new Date(g.effectiveAt).toISOString(),
          });
          this.publish(g);
          await this.waitForRenewal(channel, g);
        }
      },
      failed: (e, retryMs) => {
        const code = e instanceof RegistrationError ? e.code : "error";
        this.log.log("warn", "registration-lost", { code, reason: (e as Error).message, retryMs });
        purpose = "register"; // a new connection starts from a fresh registration (keys.md section 7)
      },
    });
  }

  /** Until the renewal time, a renew-request from the writer server, or a restarted reader of ours. */
  private async waitForRenewal(channel: Channel, g: Generation): Promise<void> {
    const slack = Math.min(1_000, lifetimeMs(g.rotation) / 10);
    const renewAt = g.effectiveAt + lifetimeMs(g.rotation) - this.config.provisionLeadMs - slack;
    while (!this.stopped && !this.renewWanted && Date.now() < renewAt) {
      try {
        const m = await channel.receive(["renew-request"], Math.max(1, Math.min(250, renewAt - Date.now())));
        this.log.log("info", "renewal-requested", { by: "writer-server", reason: m.reason });
        return;
      } catch (e) {
        if (!(e instanceof RegistrationError && e.code === "timeout")) throw e;
      }
    }
  }

  // ---- reader roles ------------------------------------------------------------------

  /** reader-*: join the writer over TLS; keep keys across reconnects, discard them when refused. */
  private followWriter(at: Endpoint, writerRole: Role): Promise<void> {
    return retryForever({
      stopped: () => this.stopped,
      pause: (ms) => this.pause(ms),
      attempt: async (succeeded, retryMs) => {
        const { channel, peer } = await this.connect(at, [writerRole]);
        this.log.log("info", "connected", { to: peer.name, role: peer.role });
        await followWriter(channel, this.readerStore!, {
          log: this.log,
          onInstall: (keyIdHex) => {
            succeeded();
            this.emit("installed", keyIdHex);
          },
        });
        if (!this.stopped) this.log.log("warn", "writer-connection-lost", { retryMs: retryMs() });
      },
      failed: (e, retryMs) => {
        const code = e instanceof RegistrationError ? e.code : "error";
        if (code === "peer-error" || code === "invalid-provision") {
          // Refused by the writer (for example no ack in time): all keys go, and we join afresh.
          this.readerStore!.discardAll();
          this.log.log("error", "keys-discarded", { reason: (e as Error).message });
        } else {
          this.log.log("warn", "join-failed", { code, reason: (e as Error).message, retryMs });
        }
      },
    });
  }

  /** A reader role next to its own writer: the same join/provision/ack, in memory. */
  private async localReader(kind: "server" | "client"): Promise<void> {
    const [writerEnd, readerEnd] = memoryChannelPair();
    this.track(writerEnd);
    this.track(readerEnd);
    const reader: ReaderPeer = {
      id: `local:${this.own.fingerprint}`,
      name: `${this.config.name} (local)`,
      kind,
      address: this.own.pdmAddress,
    };
    const served = writerEnd
      .receive(["join"], FOREVER_MS)
      .then((join) => this.provisioning!.serveReader(writerEnd, reader, join));
    await Promise.allSettled([
      served,
      followWriter(readerEnd, this.readerStore!, { log: this.log, onInstall: (k) => this.emit("installed", k) }),
    ]);
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
    const generations = (this.provisioning?.current ?? []).map((g) => ({
      keyId: hex(g.keyId),
      generation: g.generation,
      effectiveAt: g.effectiveAt,
    }));
    return {
      name: this.config.name,
      roles: this.config.roles,
      generations,
      provisioning: this.provisioning ? { ...this.provisioning.stats } : undefined,
      readerHolds: this.readerStore?.holds().map(hex),
      kernelKeys: this.kernelKeys ? { ...this.kernelKeys.installer.stats } : undefined,
      connections: this.gate?.stats(),
      renewals: this.provisioning ? { ...this.renewals.stats } : undefined,
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

function pemToDer(pem: string): Buffer {
  const body = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(pem)?.[1];
  if (!body)
    throw new RegistrationError("bad-certificate", "the agent's own certificate file holds no PEM certificate");
  return Buffer.from(body.replace(/\s+/g, ""), "base64");
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `pdm keys export`: ask a writer or a group master for a key log over mutual TLS, as an analyzer. */
export async function fetchKeyLog(
  at: Endpoint,
  files: { ca: string; cert: string; key: string },
  client?: Uint8Array,
): Promise<KeyLogEntry[]> {
  const material = loadTlsMaterial(files);
  const socket = tls.connect(clientOptions(material, at.host, at.port));
  await new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", resolve);
    socket.once("error", (e) =>
      reject(
        new RegistrationError("closed", `cannot connect to ${at.host} port ${at.port}: ${e.message}`, { cause: e }),
      ),
    );
  });
  const channel = new StreamChannel(socket);
  try {
    verifyPeer(socket, ["writer-server", "writer-client", "group-master"]);
    channel.send(client ? { type: "export-request", client } : { type: "export-request" });
    const reply = await channel.receive(["key-log"]);
    return reply.entries.map((e): KeyLogEntry =>
      e.grant.kind === "shared"
        ? { kind: "shared", keyId: e.keyId, suite: e.suite, salt: e.salt, secret: e.grant.secret }
        : {
            kind: "client",
            keyId: e.keyId,
            suite: e.suite,
            clientAddress: e.grant.clientAddress,
            salt: e.salt,
            secret: e.grant.secret,
          },
    );
  } finally {
    channel.close();
  }
}

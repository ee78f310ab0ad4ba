// The writer roles of an agent (keys.md sections 2-5): the writer server registers its
// writer client (one per deployment unless the config lists several), the writer client
// registers and renews before each generation's lifetime ends, and either provisions its
// readers with every generation. A reader that restarts asks for a renewal, at most one
// per reader per 30 s (renewal-limiter.ts), carried to the writer client wherever it is.

import { hex } from "../../pdm/index.ts";
import type { Channel } from "./channel.ts";
import type { AgentConfig, Endpoint } from "./config.ts";
import { RegistrationError } from "./errors.ts";
import { lifetimeMs, type Generation } from "./generation.ts";
import type { Logger } from "./log.ts";
import type { MessageOf, Role } from "./messages.ts";
import { ProvisioningService, followWriter, type ReaderPeer } from "./provisioning.ts";
import type { ReaderKeyStore } from "./reader-keys.ts";
import { retryForever } from "./reconnect.ts";
import { RegistrationServer, register } from "./registration.ts";
import { RenewalLimiter } from "./renewal-limiter.ts";
import type { PeerIdentity } from "./tls.ts";

const FOREVER_MS = 2 ** 31 - 1;
/** A reader that keeps restarting causes at most one renewal in this long (renewal-limiter.ts). */
const RESTART_RENEWAL_INTERVAL_MS = 30_000;

/** What the agent lends its writer role. */
export interface WriterHost {
  readonly config: AgentConfig;
  readonly log: Logger;
  connect(at: Endpoint, roles: Role[]): Promise<{ channel: Channel; peer: PeerIdentity }>;
  pause(ms: number): Promise<void>;
  stopped(): boolean;
  /** A generation was registered: the agent's key log and "generation" event. */
  published(g: Generation): void;
}

export class WriterRole {
  readonly provisioning: ProvisioningService;
  readonly renewals = new RenewalLimiter(RESTART_RENEWAL_INTERVAL_MS, (reason) => this.requestRenewal(reason));
  private readonly registrar: RegistrationServer | undefined;
  private readonly isClient: boolean;
  /** writer-server: the registered writer client's connection, where renew-requests go. */
  private writerClientLink: Channel | undefined;
  /** The certificate fingerprint of the writer client that registered first (no writerClients in the config). */
  private writerClientPin: string | undefined;
  private renewWanted = false;

  constructor(private readonly host: WriterHost) {
    const { config, log } = host;
    this.isClient = config.roles.includes("writer-client");
    if (!this.isClient) {
      this.registrar = new RegistrationServer({
        acceptedSuites: config.suites,
        rotation: config.rotation,
        provisionLeadMs: config.provisionLeadMs,
      });
    }
    this.provisioning = new ProvisioningService({
      ackTimeoutMs: config.ackTimeoutMs,
      maxResends: 4,
      graceMs: config.graceMs,
      log,
      onRestartedReader: (reader) => {
        if (this.renewals.request(reader.id, `reader ${reader.name} restarted`) === "deferred") {
          log.log("info", "renewal-deferred", {
            reader: reader.name,
            why: `one renewal per reader per ${RESTART_RENEWAL_INTERVAL_MS / 1000} s`,
          });
        }
      },
    });
  }

  stop(): void {
    this.renewals.stop();
  }

  /**
   * One deployment, one writer client: a second writer-client certificate registering
   * would replace the deployment's keys behind the real writer client's back (its
   * readers would hold keys the others lack). Allowed only when the config names it.
   */
  private admitWriterClient(peer: PeerIdentity): void {
    const listed = this.host.config.writerClients;
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

  /** writer-server: a writer client's registrations on one connection, until it closes. */
  async serveWriterClient(channel: Channel, peer: PeerIdentity, hello: MessageOf<"hello">): Promise<void> {
    for (;;) {
      const g = await this.registrar!.serve(channel, hello, () => this.admitWriterClient(peer));
      this.writerClientPin ??= peer.fingerprint;
      this.host.log.log("info", "registered", {
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
    if (this.isClient) {
      this.renewWanted = true; // the registration loop picks it up
      return;
    }
    const link = this.writerClientLink;
    if (link?.isOpen) {
      this.renewWanted = false;
      link.send({ type: "renew-request", reason });
      this.host.log.log("info", "renewal-requested", { reason });
    } else {
      this.renewWanted = true;
      this.host.log.log("warn", "renewal-pending", { reason, why: "no writer client connected" });
    }
  }

  private publish(g: Generation): void {
    this.provisioning.publish(g);
    this.host.published(g);
  }

  /** A reader role next to this writer (the same agent): the same join, provision and ack, in memory. */
  async provisionLocalReader(
    writerEnd: Channel,
    readerEnd: Channel,
    reader: ReaderPeer,
    store: ReaderKeyStore,
    onInstall: (keyIdHex: string) => void,
  ): Promise<void> {
    const served = writerEnd
      .receive(["join"], FOREVER_MS)
      .then((join) => this.provisioning.serveReader(writerEnd, reader, join));
    await Promise.allSettled([served, followWriter(readerEnd, store, { log: this.host.log, onInstall })]);
  }

  /** writer-client: register before each lifetime ends or when asked. */
  registrationLoop(at: Endpoint): Promise<void> {
    const { host } = this;
    let purpose: "register" | "renew" = "register";
    return retryForever({
      stopped: () => host.stopped(),
      pause: (ms) => host.pause(ms),
      attempt: async (succeeded) => {
        const { channel, peer } = await host.connect(at, ["writer-server"]);
        host.log.log("info", "connected", { to: peer.name, role: peer.role });
        while (!host.stopped()) {
          this.renewWanted = false;
          const g = await register(channel, { purpose, offer: host.config.suites });
          succeeded();
          purpose = "renew";
          host.log.log("info", "registered", {
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
        host.log.log("warn", "registration-lost", { code, reason: (e as Error).message, retryMs });
        purpose = "register"; // a new connection starts from a fresh registration (keys.md section 7)
      },
    });
  }

  /** Until the renewal time, a renew-request from the writer server, or a restarted reader of ours. */
  private async waitForRenewal(channel: Channel, g: Generation): Promise<void> {
    const slack = Math.min(1_000, lifetimeMs(g.rotation) / 10);
    const renewAt = g.effectiveAt + lifetimeMs(g.rotation) - this.host.config.provisionLeadMs - slack;
    while (!this.host.stopped() && !this.renewWanted && Date.now() < renewAt) {
      try {
        const m = await channel.receive(["renew-request"], Math.max(1, Math.min(250, renewAt - Date.now())));
        this.host.log.log("info", "renewal-requested", { by: "writer-server", reason: m.reason });
        return;
      } catch (e) {
        if (!(e instanceof RegistrationError && e.code === "timeout")) throw e;
      }
    }
  }
}

// Provisioning readers, keys.md section 5.
//
// Writer side: every connected reader has a ReaderLink that sends each generation as a
// `provision` and waits for its `ack`; unacknowledged, it resends up to 4 times, then
// marks the reader failed and closes (the reader discards all its keys and joins again).
//
// Reader side: `followWriter` joins, installs each provision and acks it.
//
// Restarts (keys.md section 7): a reader's `join` lists the keyIds it holds. A reader
// this writer already provisioned that now holds none of them has restarted and lost
// its Kri state, so sealing again under those generations could repeat a (key, nonce).
// It gets them with sealAllowed=false (open only) and the writer asks for a renewal; it
// seals again from the next generation.

import type { Channel } from "./channel.ts";
import { RegistrationError } from "./errors.ts";
import { grantFor, lifetimeMs, type Generation } from "./generation.ts";
import type { Logger } from "./log.ts";
import type { MessageOf } from "./messages.ts";
import type { ReaderKeyStore } from "./reader-keys.ts";
import { retryForever } from "./reconnect.ts";
import { hex } from "../../pdm/index.ts";

/** A reader as its certificate names it. */
export interface ReaderPeer {
  /** SHA-256 fingerprint of the certificate: the reader's identity across reconnects. */
  id: string;
  name: string;
  kind: "server" | "client";
  /** The reader client's PDM address (first IPv6 address of its certificate). */
  address?: Uint8Array;
}

export interface ProvisioningOptions {
  ackTimeoutMs: number;
  /** keys.md section 5: resent up to 4 times. */
  maxResends: number;
  /** How long a generation is still provisioned after the next one took effect. */
  graceMs: number;
  log: Logger;
  /** A reader restarted: ask for a fresh generation. */
  onRestartedReader(reader: ReaderPeer): void;
  now?: () => number;
}

export interface ProvisioningStats {
  readers: number;
  provisionsSent: number;
  provisionsAcked: number;
  resends: number;
  failedReaders: number;
  restartedReaders: number;
}

export class ProvisioningService {
  private generations: Generation[] = [];
  private readonly links = new Set<ReaderLink>();
  /** Per reader id: every keyId ever sent to it (sent, not acked: an install may precede a lost ack). */
  private readonly sentTo = new Map<string, Set<string>>();
  /** Per reader id: keyIds it may open with but not seal with (it restarted). */
  private readonly openOnly = new Map<string, Set<string>>();
  readonly stats: ProvisioningStats = {
    readers: 0,
    provisionsSent: 0,
    provisionsAcked: 0,
    resends: 0,
    failedReaders: 0,
    restartedReaders: 0,
  };

  constructor(private readonly options: ProvisioningOptions) {}

  /** The generations readers should hold now (current, previous in grace, pending). */
  get current(): readonly Generation[] {
    return this.generations;
  }

  /** A writer committed a new generation: every connected reader gets it. */
  publish(g: Generation): void {
    this.generations.push(g);
    this.prune();
    for (const link of this.links) link.enqueue(g);
  }

  prune(now = (this.options.now ?? Date.now)()): void {
    const effective = this.generations.filter((g) => g.effectiveAt <= now);
    const newest = effective[effective.length - 1];
    if (!newest) return;
    this.generations = this.generations.filter(
      (g) =>
        g === newest ||
        g.effectiveAt > now ||
        (g === effective[effective.length - 2] && now < newest.effectiveAt + this.options.graceMs),
    );
  }

  /** The generation every sender uses now and the time its lifetime ends. */
  renewalDue(): number | undefined {
    const newest = this.generations[this.generations.length - 1];
    return newest ? newest.effectiveAt + lifetimeMs(newest.rotation) : undefined;
  }

  /** Serve one reader connection after its `join`, until it closes or fails. */
  async serveReader(channel: Channel, peer: ReaderPeer, join: MessageOf<"join">): Promise<void> {
    const held = new Set(join.holds.map(hex));
    const sent = this.sentTo.get(peer.id) ?? new Set<string>();
    this.sentTo.set(peer.id, sent);
    const lost = this.generations.filter((g) => sent.has(hex(g.keyId)) && !held.has(hex(g.keyId)));
    if (lost.length > 0) {
      const openOnly = this.openOnly.get(peer.id) ?? new Set<string>();
      for (const g of lost) openOnly.add(hex(g.keyId));
      this.openOnly.set(peer.id, openOnly);
      this.stats.restartedReaders += 1;
      this.options.log.log("warn", "reader-restarted", {
        reader: peer.name,
        generations: lost.length,
        action: "open-only until renewal",
      });
      this.options.onRestartedReader(peer);
    }
    const link = new ReaderLink(channel, peer, this, this.options);
    this.links.add(link);
    this.stats.readers = this.links.size;
    for (const g of this.generations) if (!held.has(hex(g.keyId))) link.enqueue(g);
    try {
      await link.run();
    } finally {
      this.links.delete(link);
      this.stats.readers = this.links.size;
    }
  }

  /** The provision message for one reader. */
  provisionFor(g: Generation, peer: ReaderPeer): MessageOf<"provision"> {
    const keyIdHex = hex(g.keyId);
    this.sentTo.get(peer.id)?.add(keyIdHex);
    const grant =
      peer.kind === "server"
        ? grantFor(g, { kind: "server" })
        : grantFor(g, { kind: "client", address: peer.address! });
    return {
      type: "provision",
      keyId: g.keyId,
      generation: g.generation,
      effectiveAt: g.effectiveAt,
      suite: g.suite,
      salt: g.salt,
      rotation: g.rotation,
      grant,
      sealAllowed: !this.openOnly.get(peer.id)?.has(keyIdHex),
    };
  }
}

/** One connected reader: a queue of generations to provision, each until acked. */
class ReaderLink {
  private readonly queue: Generation[] = [];
  private wake: (() => void) | undefined;
  private readonly acked = new Set<string>();

  constructor(
    private readonly channel: Channel,
    private readonly peer: ReaderPeer,
    private readonly service: ProvisioningService,
    private readonly options: ProvisioningOptions,
  ) {
    channel.onClose(() => this.wake?.());
  }

  enqueue(g: Generation): void {
    this.queue.push(g);
    this.wake?.();
  }

  async run(): Promise<void> {
    const { log } = this.options;
    while (this.channel.isOpen) {
      const g = this.queue.shift();
      if (!g) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      const message = this.service.provisionFor(g, this.peer);
      const keyIdHex = hex(g.keyId);
      let done = false;
      for (let attempt = 0; attempt <= this.options.maxResends && !done; attempt += 1) {
        if (attempt > 0) {
          this.service.stats.resends += 1;
          log.log("warn", "provision-resend", { reader: this.peer.name, keyId: keyIdHex, attempt });
        }
        this.channel.send(message);
        this.service.stats.provisionsSent += 1;
        done = await this.awaitAck(g);
      }
      if (!done) {
        this.service.stats.failedReaders += 1;
        const e = new RegistrationError(
          "provision-unacknowledged",
          `no ack for generation ${g.generation} after ${this.options.maxResends} resends: register again`,
        );
        log.log("error", "reader-failed", { reader: this.peer.name, keyId: keyIdHex, code: e.code });
        this.channel.refuse(e);
        return;
      }
      this.service.stats.provisionsAcked += 1;
      log.log("info", "reader-provisioned", {
        reader: this.peer.name,
        keyId: keyIdHex,
        generation: g.generation,
        sealAllowed: message.sealAllowed,
      });
    }
  }

  /** Wait one ack timeout for the ack of `g`; late acks of earlier provisions are skipped. */
  private async awaitAck(g: Generation): Promise<boolean> {
    const deadline = Date.now() + this.options.ackTimeoutMs;
    const want = hex(g.keyId);
    while (Date.now() < deadline) {
      let ack: MessageOf<"ack">;
      try {
        ack = await this.channel.receive(["ack"], Math.max(1, deadline - Date.now()));
      } catch (e) {
        if (e instanceof RegistrationError && e.code === "timeout") return false;
        throw e;
      }
      const got = hex(ack.keyId);
      if (got === want && ack.generation === g.generation) {
        this.acked.add(got);
        return true;
      }
      if (!this.acked.has(got))
        throw new RegistrationError(
          "unexpected-message",
          `ack for generation ${ack.generation} that was not provisioned`,
        );
    }
    return false;
  }
}

/**
 * Reader side: join the writer and install every provision it sends, until the channel
 * closes (resolves) or the writer refuses this reader (rejects with its error).
 */
export async function followWriter(
  channel: Channel,
  store: ReaderKeyStore,
  options: { log: Logger; name?: string; onInstall?: (keyIdHex: string) => void },
): Promise<void> {
  channel.send({ type: "join", holds: store.holds() });
  for (;;) {
    let p: MessageOf<"provision">;
    try {
      p = await channel.receive(["provision"], 2 ** 31 - 1);
    } catch (e) {
      if (e instanceof RegistrationError && e.code === "closed") return;
      throw e;
    }
    let g;
    try {
      g = store.install(p);
    } catch (e) {
      if (e instanceof RegistrationError) channel.refuse(e);
      throw e;
    }
    channel.send({ type: "ack", keyId: p.keyId, generation: p.generation });
    options.log.log("info", "provision-installed", {
      keyId: g.keyIdHex,
      generation: g.generation,
      sealAllowed: g.sealAllowed,
      effectiveAt: new Date(g.effectiveAt).toISOString(),
    });
    options.onInstall?.(g.keyIdHex);
  }
}

/**
 * A reader's link to its writer for as long as the agent runs: join over TLS, install
 * what it provisions, reconnect on loss keeping every key, and discard them all and
 * join afresh when the writer refuses this reader (for example an ack that never came).
 */
export function followWriterForever(
  store: ReaderKeyStore,
  link: {
    log: Logger;
    connect: () => Promise<{ channel: Channel; peer: { name: string; role: string } }>;
    pause: (ms: number) => Promise<void>;
    stopped: () => boolean;
    installed: (keyIdHex: string) => void;
  },
): Promise<void> {
  const { log } = link;
  return retryForever({
    stopped: link.stopped,
    pause: link.pause,
    attempt: async (succeeded, retryMs) => {
      const { channel, peer } = await link.connect();
      log.log("info", "connected", { to: peer.name, role: peer.role });
      await followWriter(channel, store, {
        log,
        onInstall: (keyIdHex) => {
          succeeded();
          link.installed(keyIdHex);
        },
      });
      if (!link.stopped()) log.log("warn", "writer-connection-lost", { retryMs: retryMs() });
    },
    failed: (e, retryMs) => {
      const code = e instanceof RegistrationError ? e.code : "error";
      if (code === "peer-error" || code === "invalid-provision") {
        store.discardAll();
        log.log("error", "keys-discarded", { reason: (e as Error).message });
      } else {
        log.log("warn", "join-failed", { code, reason: (e as Error).message, retryMs });
      }
    },
  });
}

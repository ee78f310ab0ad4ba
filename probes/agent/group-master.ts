// The group master of groups.md 1: it admits members by certificate, derives every
// generation from the exact membership (master key, then SK by scrypt), and makes a new
// generation whenever the membership changes, the rotation period ends, an operator or
// a member asks.
//
// A renewal, make-before-break: the inputs of g+1 go to every live member with an
// effectiveAt `leadMs` ahead; each member recomputes SK, installs it for opening at
// once and sealing from effectiveAt, and acknowledges with its keyId. A member that
// acknowledges another keyId, or none within `ackTimeoutMs`, is dropped, which is
// itself a membership change. Changes that arrive while a renewal runs are gathered
// into the next one.
//
// A member never receives a generation made before it joined: a newcomer cannot read
// what was sealed before it came, and a member that restarted (its kernel's Kri state
// lost) never seals again under a key it used before. So every join renews.

import { randomBytes } from "node:crypto";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { setTimeout as delay } from "node:timers/promises";
import {
  deriveGroupSecretKey,
  deriveKeyId,
  groupMasterKey,
  hex,
  orderMembers,
  GROUP_SALT_LENGTH,
  GROUP_SEED_LENGTH,
  type Suite,
} from "../../pdm/index.ts";
import type { Channel } from "./channel.ts";
import { certificateSignature } from "./certs.ts";
import { RegistrationError } from "./errors.ts";
import { lifetimeMs, type Generation } from "./generation.ts";
import type { Logger } from "./log.ts";
import type { MessageOf, RotationAttributes } from "./messages.ts";
import type { PeerIdentity } from "./tls.ts";
import type { ConnectivityKeys } from "../ksp/index.ts";

export interface GroupMasterOptions {
  suite: Suite;
  rotation: RotationAttributes;
  /** A member that says nothing (heartbeat, ack) for this long is dropped (groups.md 1's `life`). */
  lifeMs: number;
  /** How far ahead of its making a generation takes effect: room for every member's scrypt. */
  leadMs: number;
  /** How long a member has to acknowledge a generation. */
  ackTimeoutMs: number;
  /** The release digests members may run; undefined: no release check. */
  releases: readonly string[] | undefined;
  maxMembers: number;
  /** How many generations are kept for the key log and analyzers (newest). */
  keep: number;
  log: Logger;
  /** A generation was made (its SK computed); it goes to the key log and analyzers. */
  onGeneration(g: Generation, members: readonly string[]): void;
  /** Changes closer together than this make one renewal. */
  gatherMs?: number;
  /** Distributed mode's key set, given to every member it admits (groups.md 2: "installed by a group master"). */
  connectivityKeys?: ConnectivityKeys;
}

/** One admitted member and its connection. */
interface Member {
  id: string;
  name: string;
  der: Uint8Array;
  signature: Uint8Array;
  channel: Channel;
  joinedAt: number;
  /** The generation it must acknowledge, and where its ack goes. */
  pending?: { generation: number; resolve(keyIdHex: string | undefined): void };
}

export interface GroupMasterStats {
  joins: number;
  leaves: number;
  renewals: number;
  /** Members dropped for a missing or wrong acknowledgement. */
  dropped: number;
  /** Refusals of joining members, by code. */
  refused: Record<string, number>;
  /** The last renewal: from its cause to every member's acknowledgement, and the scrypt alone. */
  lastRenewalMs: number | undefined;
  lastScryptMs: number | undefined;
  /** The longest the event loop (heartbeats, acks, other members) waited during the last renewal. */
  lastRenewalLoopStallMs: number | undefined;
}

export interface GroupStatus {
  members: { name: string; id: string; joinedAt: number }[];
  generation: number | undefined;
  keyId: string | undefined;
  effectiveAt: number | undefined;
  /** When the rotation period makes the next generation (a change may come sooner). */
  renewsAt: number | undefined;
  stats: GroupMasterStats;
}

const GATHER_MS = 50;

export class GroupMaster {
  private readonly members = new Map<string, Member>();
  private readonly generations: { g: Generation; members: string[] }[] = [];
  private nextGeneration = 1;
  private reasons: string[] = [];
  private running: Promise<void> | undefined;
  private rotationTimer: NodeJS.Timeout | undefined;
  private readonly heartbeat: NodeJS.Timeout;
  private stopped = false;
  readonly stats: GroupMasterStats = {
    joins: 0,
    leaves: 0,
    renewals: 0,
    dropped: 0,
    refused: {},
    lastRenewalMs: undefined,
    lastScryptMs: undefined,
    lastRenewalLoopStallMs: undefined,
  };

  constructor(private readonly options: GroupMasterOptions) {
    // The master's side of liveness: a member that hears nothing for `life` reconnects.
    this.heartbeat = setInterval(() => {
      for (const m of this.members.values()) if (m.channel.isOpen) m.channel.send({ type: "heartbeat" });
    }, options.lifeMs / 3);
    this.heartbeat.unref();
  }

  /** Generations made and still kept, oldest first (for the key log and analyzers). */
  get kept(): readonly Generation[] {
    return this.generations.map((x) => x.g);
  }

  /** Count a refusal of a joining peer (also those refused before `serve`, by the TLS checks). */
  countRefusal(code: string): void {
    this.stats.refused[code] = (this.stats.refused[code] ?? 0) + 1;
  }

  /** Admit a member after its member-join and serve its connection until it ends. */
  async serve(channel: Channel, peer: PeerIdentity, der: Uint8Array, join: MessageOf<"member-join">): Promise<void> {
    const { options } = this;
    if (options.releases) {
      if (!peer.release) {
        throw new RegistrationError("release-not-allowed", "the member's certificate names no pdm release");
      }
      if (!options.releases.includes(peer.release)) {
        throw new RegistrationError(
          "release-not-allowed",
          `the member runs pdm release ${peer.release.slice(0, 16)}..., not in this group master's releases`,
        );
      }
    }
    const previous = this.members.get(peer.fingerprint);
    if (!previous && this.members.size >= options.maxMembers) {
      throw new RegistrationError("group-full", `the group has its ${options.maxMembers} members`);
    }
    if (previous) {
      // The same certificate again: its old connection is half-open or the member restarted.
      previous.channel.refuse(
        new RegistrationError("member-replaced", "this member connected again: the newer connection serves it"),
      );
    }
    // A master that restarted continues above every generation its members have seen.
    this.nextGeneration = Math.max(this.nextGeneration, join.generation + 1);
    const member: Member = {
      id: peer.fingerprint,
      name: peer.name,
      der,
      signature: certificateSignature(der),
      channel,
      joinedAt: Date.now(),
    };
    this.members.set(member.id, member);
    this.stats.joins += 1;
    const cks = options.connectivityKeys;
    if (cks) channel.send({ type: "connectivity-keys", ckn: cks.ckn, cak: cks.cak, kgk: cks.kgk });
    options.log.log("info", "member-joined", { member: member.name, members: this.members.size });
    this.requestRenewal(`${member.name} joined`);
    try {
      await this.follow(member);
    } finally {
      if (this.members.get(member.id) === member) {
        this.members.delete(member.id);
        this.stats.leaves += 1;
        member.pending?.resolve(undefined);
        options.log.log("info", "member-left", { member: member.name, members: this.members.size });
        if (!this.stopped) this.requestRenewal(`${member.name} left`);
      }
    }
  }

  /** A member's messages: heartbeats, acknowledgements, renewal requests; silence for `life` drops it. */
  private async follow(member: Member): Promise<void> {
    for (;;) {
      let m: MessageOf<"heartbeat" | "ack" | "renew-request" | "member-join">;
      try {
        m = await member.channel.receive(["heartbeat", "ack", "renew-request", "member-join"], this.options.lifeMs);
      } catch (e) {
        if (e instanceof RegistrationError && e.code === "timeout") {
          throw new RegistrationError(
            "heartbeat-missed",
            `nothing from ${member.name} for ${this.options.lifeMs} ms: dropped from the group`,
          );
        }
        throw e;
      }
      if (m.type === "member-join") {
        throw new RegistrationError("replayed-join", "a second member-join on one connection");
      }
      if (m.type === "renew-request") {
        this.options.log.log("info", "renewal-requested", { by: member.name, reason: m.reason });
        this.requestRenewal(`${member.name}: ${m.reason}`);
      } else if (m.type === "ack") {
        if (!member.pending || member.pending.generation !== m.generation) {
          // A late ack of a generation it was already dropped from, or one never sent.
          if (m.generation >= this.nextGeneration) {
            throw new RegistrationError("unexpected-message", `ack for generation ${m.generation}, never sent`);
          }
          continue;
        }
        const p = member.pending;
        member.pending = undefined;
        p.resolve(hex(m.keyId));
      }
    }
  }

  /** Make a new generation soon, for `reason`; requests that come while one is made go into the next. */
  requestRenewal(reason: string): void {
    if (this.stopped) return;
    this.reasons.push(reason);
    this.running ??= this.renewLoop().finally(() => (this.running = undefined));
  }

  private async renewLoop(): Promise<void> {
    while (this.reasons.length > 0 && !this.stopped) {
      await delay(this.options.gatherMs ?? GATHER_MS);
      const reasons = this.reasons.splice(0);
      try {
        await this.renew(reasons);
      } catch (e) {
        this.options.log.log("error", "renewal-failed", { reason: (e as Error).message });
      }
    }
  }

  private async renew(reasons: string[]): Promise<void> {
    const { options } = this;
    const started = Date.now();
    const ordered = orderMembers(this.members.values());
    if (ordered.length === 0) {
      options.log.log("info", "group-empty", { why: reasons.join("; ") });
      return;
    }
    const loop = monitorEventLoopDelay({ resolution: 5 });
    loop.enable();
    try {
      await this.makeGeneration(ordered, reasons, started);
    } finally {
      loop.disable();
      this.stats.lastRenewalLoopStallMs = Math.round(loop.max / 1e5) / 10;
    }
  }

  private async makeGeneration(ordered: Member[], reasons: string[], started: number): Promise<void> {
    const { options } = this;
    const generation = this.nextGeneration++;
    const seed = new Uint8Array(randomBytes(GROUP_SEED_LENGTH));
    const salt = new Uint8Array(randomBytes(GROUP_SALT_LENGTH));
    const effectiveAt = started + options.leadMs;
    const message: MessageOf<"group-generation"> = {
      type: "group-generation",
      generation,
      seed,
      timestamp: effectiveAt,
      salt,
      suite: options.suite,
      effectiveAt,
      rotation: options.rotation,
      members: ordered.map((m) => m.der),
    };
    const acks = ordered.map(
      (m) =>
        new Promise<string | undefined>((resolve) => {
          const timer = setTimeout(() => resolve(undefined), options.ackTimeoutMs);
          m.pending = {
            generation,
            resolve: (k) => {
              clearTimeout(timer);
              resolve(k);
            },
          };
          try {
            m.channel.send(message);
          } catch {
            m.pending.resolve(undefined); // already gone: its leave renews again
          }
        }),
    );
    // The master's own scrypt runs while the members run theirs.
    const scryptStart = Date.now();
    const master = groupMasterKey({
      seed,
      generation,
      timestamp: effectiveAt,
      signatures: ordered.map((m) => m.signature),
    });
    const sk = await deriveGroupSecretKey(master, salt, options.suite.aead);
    this.stats.lastScryptMs = Date.now() - scryptStart;
    const g: Generation = {
      keyId: deriveKeyId(options.suite.kdf, sk, salt),
      generation,
      effectiveAt,
      suite: options.suite,
      salt,
      sharedSecret: sk,
      rotation: options.rotation,
    };
    const names = ordered.map((m) => m.name);
    // Kept and logged before the acks: a member may seal with it as soon as it has it.
    this.generations.push({ g, members: names });
    if (this.generations.length > options.keep) this.generations.shift();
    options.onGeneration(g, names);
    const want = hex(g.keyId);
    const got = await Promise.all(acks);
    let acked = 0;
    ordered.forEach((m, i) => {
      const keyId = got[i];
      if (keyId === want) {
        acked += 1;
        return;
      }
      if (this.members.get(m.id) !== m) return; // left meanwhile
      this.stats.dropped += 1;
      const e =
        keyId === undefined
          ? new RegistrationError(
              "provision-unacknowledged",
              `no acknowledgement of generation ${generation} within ${options.ackTimeoutMs} ms: dropped from the group`,
            )
          : new RegistrationError(
              "key-id-mismatch",
              `the member derived keyId ${keyId} for generation ${generation}, the master ${want}`,
            );
      options.log.log("warn", "member-dropped", { member: m.name, code: e.code, generation });
      m.channel.refuse(e); // its connection ends, and its leave renews again
    });
    this.stats.renewals += 1;
    this.stats.lastRenewalMs = Date.now() - started;
    options.log.log("info", "group-renewed", {
      generation,
      keyId: want,
      members: names.length,
      acknowledged: acked,
      why: reasons.join("; ").slice(0, 300),
      effectiveAt: new Date(effectiveAt).toISOString(),
      renewalMs: this.stats.lastRenewalMs,
      scryptMs: this.stats.lastScryptMs,
    });
    this.scheduleRotation(g);
  }

  /** The rotation period (keys.md 6): the next generation takes effect as this one's lifetime ends. */
  private scheduleRotation(g: Generation): void {
    clearTimeout(this.rotationTimer);
    const at = g.effectiveAt + lifetimeMs(g.rotation) - this.options.leadMs;
    const wait = Math.min(2 ** 31 - 1, Math.max(0, at - Date.now()));
    this.rotationTimer = setTimeout(() => this.requestRenewal("rotation period"), wait);
    this.rotationTimer.unref();
  }

  status(): GroupStatus {
    const newest = this.generations[this.generations.length - 1]?.g;
    return {
      members: orderMembers(this.members.values()).map((m) => ({ name: m.name, id: m.id, joinedAt: m.joinedAt })),
      generation: newest?.generation,
      keyId: newest ? hex(newest.keyId) : undefined,
      effectiveAt: newest?.effectiveAt,
      renewsAt: newest ? newest.effectiveAt + lifetimeMs(newest.rotation) - this.options.leadMs : undefined,
      stats: { ...this.stats, refused: { ...this.stats.refused } },
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.rotationTimer);
    for (const m of this.members.values()) m.pending?.resolve(undefined);
    await this.running;
  }
}

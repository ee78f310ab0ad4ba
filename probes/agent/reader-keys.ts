// What a reader holds (keys.md sections 4-5): the generations its writer provisioned,
// the rules for which one seals and which ones open, and per-flow keys derived on
// demand. The kernel data path (and anything else that seals or opens) plugs in
// through KeySink, the one narrow interface keys leave the agent by.

import { hex, KeyError, deriveClientSecret, deriveStk, formatIpv6Address, type FlowTuple } from "../../pdm/index.ts";
import { RegistrationError } from "./errors.ts";
import { maxKriAgeMs } from "./generation.ts";
import type { MessageOf } from "./messages.ts";

/** An installed provision (its fields, sealAllowed included), plus what readers look up often. */
export type ReaderGeneration = Omit<MessageOf<"provision">, "type"> & {
  keyIdHex: string;
  /** The longest one Kri may be used for sealing, from the rotation attributes. */
  maxKriAgeMs: number;
};

/** Where installed keys go: the kernel's key map (in-kernel protected layout), a test, a key log. */
export interface KeySink {
  install(g: ReaderGeneration): void;
  retire(keyIdHex: string): void;
  discardAll(): void;
}

export interface ReaderKeyStoreOptions {
  /** "server": holds SharedSecrets; "client": holds the ClientSecret of `ownAddress`. */
  kind: "server" | "client";
  ownAddress?: Uint8Array;
  /** How long the previous generation still opens packets after the next one's effectiveAt. */
  graceMs: number;
  now?: () => number;
}

const MAX_CACHED_CLIENT_SECRETS = 4096;

export class ReaderKeyStore {
  private generations: ReaderGeneration[] = []; // oldest first
  /** ClientSecrets derived per generation (reader server); they go with their generation. */
  private readonly clientSecrets = new WeakMap<ReaderGeneration, Map<string, Uint8Array>>();
  private readonly sinks: KeySink[] = [];
  private readonly now: () => number;

  constructor(private readonly options: ReaderKeyStoreOptions) {
    this.now = options.now ?? Date.now;
  }

  addSink(sink: KeySink): void {
    this.sinks.push(sink);
    for (const g of this.generations) sink.install(g);
  }

  /** keyIds held now (sent in `join` so the writer can tell a reconnect from a restart). */
  holds(): Uint8Array[] {
    return this.generations.map((g) => g.keyId);
  }

  get size(): number {
    return this.generations.length;
  }

  /**
   * Install a provision. Idempotent for a resent provision (same keyId). Refuses a grant
   * of the wrong kind, or a ClientSecret for an address that is not this reader's.
   */
  install(p: MessageOf<"provision">): ReaderGeneration {
    const kind = this.options.kind === "server" ? "shared" : "client";
    if (p.grant.kind !== kind) {
      throw new RegistrationError(
        "invalid-provision",
        `a reader ${this.options.kind} expects a ${kind} secret, got a ${p.grant.kind} secret`,
      );
    }
    if (p.grant.kind === "client" && !sameAddress(p.grant.clientAddress, this.options.ownAddress)) {
      throw new RegistrationError(
        "invalid-provision",
        `the ClientSecret is for ${formatIpv6Address(p.grant.clientAddress)}, not for this reader's address`,
      );
    }
    const keyIdHex = hex(p.keyId);
    const existing = this.generations.find((g) => g.keyIdHex === keyIdHex);
    if (existing) return existing;
    const { type: _type, ...fields } = p;
    const g: ReaderGeneration = { ...fields, keyIdHex, maxKriAgeMs: maxKriAgeMs(p.rotation) };
    this.generations.push(g);
    this.generations.sort((a, b) => a.effectiveAt - b.effectiveAt || a.generation - b.generation);
    for (const s of this.sinks) s.install(g);
    this.prune();
    return g;
  }

  /**
   * A generation installed for receiving only (effectiveAt in the future) seals from
   * `at` on: the distributed protocol's switch, once every live peer has it.
   */
  sealFrom(keyIdHex: string, at: number): void {
    const g = this.generations.find((x) => x.keyIdHex === keyIdHex);
    if (!g) return;
    g.effectiveAt = at;
    this.generations.sort((a, b) => a.effectiveAt - b.effectiveAt || a.generation - b.generation);
  }

  /** Drop one generation now (the distributed protocol retired it); the sinks forget it too. */
  forget(keyIdHex: string): void {
    const before = this.generations.length;
    this.generations = this.generations.filter((g) => g.keyIdHex !== keyIdHex);
    if (this.generations.length !== before) for (const s of this.sinks) s.retire(keyIdHex);
  }

  /** The generation a sender seals with now: the newest effective one, if sealing is allowed. */
  sealingGeneration(now = this.now()): ReaderGeneration | undefined {
    const effective = this.generations.filter((g) => g.effectiveAt <= now);
    const newest = effective[effective.length - 1];
    return newest?.sealAllowed ? newest : undefined;
  }

  /** Generations a receiver tries, best first: current, previous (in its grace), then pending. */
  openingGenerations(now = this.now()): ReaderGeneration[] {
    const effective = this.generations.filter((g) => g.effectiveAt <= now).reverse();
    const out: ReaderGeneration[] = [];
    if (effective[0]) out.push(effective[0]);
    if (effective[1] && now < effective[0]!.effectiveAt + this.options.graceMs) out.push(effective[1]);
    out.push(...this.generations.filter((g) => g.effectiveAt > now)); // a peer whose clock runs ahead
    return out;
  }

  /**
   * STK(flow, kri) of a generation. `clientAddress` is the reader-client end of the flow:
   * a reader client passes its own address, a reader server the peer's.
   */
  stk(g: ReaderGeneration, flow: FlowTuple, kri: number, clientAddress: Uint8Array): Uint8Array {
    let clientSecret: Uint8Array;
    if (g.grant.kind === "client") {
      if (!sameAddress(g.grant.clientAddress, clientAddress)) {
        throw new KeyError(`a reader client only holds keys for flows of ${formatIpv6Address(g.grant.clientAddress)}`);
      }
      clientSecret = g.grant.secret;
    } else {
      clientSecret = this.clientSecretOf(g, clientAddress);
    }
    return deriveStk(g.suite, clientSecret, g.salt, flow, kri);
  }

  /**
   * A reader server's ClientSecret for one client, derived once per generation: a key
   * installer trying a peer's Kri values asks for many STKs of one flow in a row.
   */
  private clientSecretOf(g: ReaderGeneration, clientAddress: Uint8Array): Uint8Array {
    let secrets = this.clientSecrets.get(g);
    if (!secrets) this.clientSecrets.set(g, (secrets = new Map()));
    const client = Buffer.from(clientAddress).toString("hex");
    let secret = secrets.get(client);
    if (!secret) {
      if (secrets.size >= MAX_CACHED_CLIENT_SECRETS) secrets.clear();
      secret = deriveClientSecret(g.suite.kdf, g.grant.secret, g.salt, clientAddress);
      secrets.set(client, secret);
    }
    return secret;
  }

  /** Forget everything (failed provisioning, or shutdown): the sinks forget too. */
  discardAll(): void {
    this.generations = [];
    for (const s of this.sinks) s.discardAll();
  }

  /** Drop generations no receiver will try again: older than previous, or previous past its grace. */
  prune(now = this.now()): void {
    const effective = this.generations.filter((g) => g.effectiveAt <= now);
    const current = effective[effective.length - 1];
    if (!current) return;
    const keep = new Set(this.openingGenerations(now));
    const dropped = this.generations.filter((g) => !keep.has(g) && g.effectiveAt <= current.effectiveAt);
    if (dropped.length === 0) return;
    this.generations = this.generations.filter((g) => !dropped.includes(g));
    for (const g of dropped) for (const s of this.sinks) s.retire(g.keyIdHex);
  }
}

function sameAddress(a: Uint8Array, b: Uint8Array | undefined): boolean {
  return b !== undefined && Buffer.from(a).equals(Buffer.from(b));
}

// What a reader or analyzer can derive from the secrets it holds (key log entries):
// for a given sender 5-tuple, every (generation, client end) context whose STKs might
// have sealed it. With a SharedSecret either end of a flow may be the reader client,
// so both are candidates; with a ClientSecret only flows touching that client are.

import { nodeCryptoAead, type AeadBackend, type KeyOpener } from "./aead.ts";
import { KeyError } from "./errors.ts";
import { aeadKeyLength, deriveClientSecret, deriveStk, type Suite } from "./key-schedule.ts";
import type { KeyLogEntry } from "./key-log.ts";
import type { FlowTuple } from "./flow.ts";

import { hex } from "./hex.ts";

/** One way to key a flow: a generation plus the ClientSecret of one client end. */
export class FlowKeyContext {
  private readonly cache = new Map<number, Uint8Array>();
  private readonly openers = new Map<number, KeyOpener>();
  constructor(
    readonly keyId: string,
    readonly suite: Suite,
    private readonly salt: Uint8Array,
    private readonly clientSecret: Uint8Array,
    private readonly flow: FlowTuple,
    private readonly aead: AeadBackend = nodeCryptoAead,
  ) {}

  /** STK for this flow at `kri`, derived once and cached (a flow uses few Kri values). */
  stk(kri: number): Uint8Array {
    let key = this.cache.get(kri);
    if (!key) {
      if (this.cache.size > 8) this.cache.clear(); // old Kri values are never needed again
      key = deriveStk(this.suite, this.clientSecret, this.salt, this.flow, kri);
      this.cache.set(kri, key);
    }
    return key;
  }

  /**
   * The opener of the STK at `kri`, made once: a native backend's cipher context lives
   * as long as it is cached here, so contexts go with their flow (at most 9 per flow).
   */
  opener(kri: number): KeyOpener {
    let opener = this.openers.get(kri);
    if (!opener) {
      if (this.openers.size > 8) this.openers.clear();
      const key = this.stk(kri);
      if (key.length !== aeadKeyLength(this.suite.aead))
        throw new KeyError(`the STK has ${key.length} bytes, the AEAD wants ${aeadKeyLength(this.suite.aead)}`);
      opener = this.aead.opener(this.suite.aead, key);
      this.openers.set(kri, opener);
    }
    return opener;
  }
}

export class KeyRing {
  private readonly clientSecrets = new Map<string, Uint8Array>();

  /** `aead`: where options are opened (node:crypto unless a native backend is given). */
  constructor(
    private readonly entries: readonly KeyLogEntry[],
    readonly aead: AeadBackend = nodeCryptoAead,
  ) {}

  get size(): number {
    return this.entries.length;
  }

  /**
   * Every context that may have keyed packets sent on `flow` (addresses must outlive
   * the call). A SharedSecret gives one per end that may be the reader client; those
   * whose client is `likelyClient` (the end the caller believes is the client) come
   * first, so that the usual case opens at the first try.
   */
  contextsFor(flow: FlowTuple, likelyClient?: Uint8Array): FlowKeyContext[] {
    const likely: FlowKeyContext[] = [];
    const others: FlowKeyContext[] = [];
    const add = (context: FlowKeyContext, client: Uint8Array): void => {
      (likelyClient && sameAddress(client, likelyClient) ? likely : others).push(context);
    };
    for (const e of this.entries) {
      const keyId = hex(e.keyId);
      if (e.kind === "client") {
        if (sameAddress(e.clientAddress, flow.src) || sameAddress(e.clientAddress, flow.dst)) {
          add(new FlowKeyContext(keyId, e.suite, e.salt, e.secret, flow, this.aead), e.clientAddress);
        }
        continue;
      }
      const ends = sameAddress(flow.src, flow.dst) ? [flow.src] : [flow.src, flow.dst];
      for (const client of ends) {
        add(new FlowKeyContext(keyId, e.suite, e.salt, this.clientSecretOf(e, keyId, client), flow, this.aead), client);
      }
    }
    return [...likely, ...others];
  }

  private clientSecretOf(e: KeyLogEntry & { kind: "shared" }, keyId: string, client: Uint8Array): Uint8Array {
    const id = `${keyId}|${hex(client)}`;
    let secret = this.clientSecrets.get(id);
    if (!secret) {
      secret = deriveClientSecret(e.suite.kdf, e.secret, e.salt, client);
      this.clientSecrets.set(id, secret);
    }
    return secret;
  }
}

export function sameAddress(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
  return true;
}

// A key generation: one SharedSecret from one HPKE registration, with what a writer
// needs to provision readers from it. Secrets live only in memory (keys.md section 7:
// a restarted agent registers afresh), and no log line ever includes these fields.

import { randomBytes } from "node:crypto";
import { CRITICALITY_MAX_AGE_MS, deriveClientSecret, type Suite } from "../../pdm/index.ts";
import type { RotationAttributes, SecretGrant } from "./messages.ts";

export interface Generation {
  keyId: Uint8Array;
  /** Counts up per writer server from 1; keyId is what names a generation everywhere. */
  generation: number;
  /** ms since the epoch: senders switch to this generation at this instant. */
  effectiveAt: number;
  suite: Suite;
  salt: Uint8Array;
  sharedSecret: Uint8Array;
  rotation: RotationAttributes;
}

/** How long one generation serves: `keys` rotation periods (keys.md section 6). */
export function lifetimeMs(r: RotationAttributes): number {
  return r.keys * r.periodMs;
}

/** The longest a sender may use one Kri: the criticality's limit, or the shorter demo period. */
export function maxKriAgeMs(r: RotationAttributes): number {
  return Math.min(CRITICALITY_MAX_AGE_MS[r.criticality], r.periodMs);
}

/** Default rotation attributes for a criticality: its period, 4 periods per generation. */
export function rotationFor(
  criticality: RotationAttributes["criticality"],
  keys = 4,
  periodMs?: number,
): RotationAttributes {
  return { criticality, keys, periodMs: periodMs ?? CRITICALITY_MAX_AGE_MS[criticality] };
}

/** What a reader of `role` gets from a generation: the SharedSecret, or one ClientSecret. */
export function grantFor(
  g: Generation,
  reader: { kind: "server" } | { kind: "client"; address: Uint8Array },
): SecretGrant {
  if (reader.kind === "server") return { kind: "shared", secret: g.sharedSecret };
  return {
    kind: "client",
    clientAddress: reader.address,
    secret: deriveClientSecret(g.suite.kdf, g.sharedSecret, g.salt, reader.address),
  };
}

export function freshSalt(): Uint8Array {
  return new Uint8Array(randomBytes(32));
}

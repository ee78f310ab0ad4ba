// The registration and provisioning messages of keys.md sections 2-5, and their schema.
//
// On the wire every message is a JSON object with `v` (protocol version) and `type`;
// binary values are base64url. `parseMessage` is the only way bytes become a Message:
// it checks every field's presence, type, range and decoded length, and names the
// field in its error, so the rest of the agent only ever sees well-formed messages.

import { aeadKeyLength, formatIpv6Address, hex4, kdfDigest, parseIpv6Address, type Suite } from "../../pdm/index.ts";
import { RegistrationError } from "./errors.ts";

export const PROTOCOL_VERSION = 1;

import { ROLES, type Role } from "./roles.ts";
export { ROLES, type Role };

export const CRITICALITIES = ["critical", "important", "medium", "low"] as const;
export type CriticalityName = (typeof CRITICALITIES)[number];

/** keys.md section 6, chosen by the writer server and sent in hello-ack and provision. */
export interface RotationAttributes {
  criticality: CriticalityName;
  /** How many rotation periods one generation serves. */
  keys: number;
  /** The rotation period in ms: the criticality's, or shorter for demos and tests. */
  periodMs: number;
}

export type SecretGrant =
  { kind: "shared"; secret: Uint8Array } | { kind: "client"; clientAddress: Uint8Array; secret: Uint8Array };

export type Message =
  | { type: "hello"; purpose: "register" | "renew"; suites: Suite[] }
  | { type: "hello-ack"; suite: Suite; publicKey: Uint8Array; rotation: RotationAttributes }
  | { type: "kem"; enc: Uint8Array; salt: Uint8Array }
  | { type: "registered"; keyId: Uint8Array; generation: number; effectiveAt: number }
  | { type: "confirm"; keyId: Uint8Array }
  | { type: "join"; holds: Uint8Array[] }
  | {
      type: "provision";
      keyId: Uint8Array;
      generation: number;
      effectiveAt: number;
      suite: Suite;
      salt: Uint8Array;
      rotation: RotationAttributes;
      grant: SecretGrant;
      /** false: the reader may open with this generation but never seal (keys.md section 7). */
      sealAllowed: boolean;
    }
  | { type: "ack"; keyId: Uint8Array; generation: number }
  | { type: "renew-request"; reason: string }
  | { type: "export-request"; client?: Uint8Array }
  | { type: "key-log"; entries: KeyLogGrant[] }
  | { type: "error"; code: string; message: string }
  // group master mode (groups.md 1)
  | { type: "member-join"; holds: Uint8Array[]; generation: number }
  | {
      type: "group-generation";
      generation: number;
      seed: Uint8Array;
      /** ms since the epoch, hashed into the master key: the generation's effectiveAt. */
      timestamp: number;
      salt: Uint8Array;
      suite: Suite;
      effectiveAt: number;
      rotation: RotationAttributes;
      /** The members' certificates (DER), in membership order. */
      members: Uint8Array[];
    }
  | { type: "heartbeat" }
  // the connectivity key set of distributed mode (groups.md 2): a member asks a writer for
  // it; a writer, or a group master unasked, sends it
  | { type: "connectivity-keys-request" }
  | { type: "connectivity-keys"; ckn: Uint8Array; cak: Uint8Array; kgk: Uint8Array };

export type MessageType = Message["type"];
export type MessageOf<T extends MessageType> = Extract<Message, { type: T }>;

export interface KeyLogGrant {
  keyId: Uint8Array;
  suite: Suite;
  salt: Uint8Array;
  grant: SecretGrant;
}

// ---- encoding -------------------------------------------------------------------------

const b64 = (b: Uint8Array): string => Buffer.from(b).toString("base64url");
const suiteJson = (s: Suite): object => ({ kem: s.kem, kdf: s.kdf, aead: s.aead });
const grantJson = (g: SecretGrant): object =>
  g.kind === "shared"
    ? { kind: "shared", secret: b64(g.secret) }
    : { kind: "client", clientAddress: formatIpv6Address(g.clientAddress), secret: b64(g.secret) };

/** The JSON object of a message, `v` included. */
export function messageToJson(m: Message): Record<string, unknown> {
  const out: Record<string, unknown> = { v: PROTOCOL_VERSION, type: m.type };
  switch (m.type) {
    case "hello":
      return { ...out, purpose: m.purpose, suites: m.suites.map(suiteJson) };
    case "hello-ack":
      return { ...out, suite: suiteJson(m.suite), publicKey: b64(m.publicKey), rotation: { ...m.rotation } };
    case "kem":
      return { ...out, enc: b64(m.enc), salt: b64(m.salt) };
    case "registered":
      return { ...out, keyId: b64(m.keyId), generation: m.generation, effectiveAt: m.effectiveAt };
    case "confirm":
      return { ...out, keyId: b64(m.keyId) };
    case "join":
      return { ...out, holds: m.holds.map(b64) };
    case "provision":
      return {
        ...out,
        keyId: b64(m.keyId),
        generation: m.generation,
        effectiveAt: m.effectiveAt,
        suite: suiteJson(m.suite),
        salt: b64(m.salt),
        rotation: { ...m.rotation },
        grant: grantJson(m.grant),
        sealAllowed: m.sealAllowed,
      };
    case "ack":
      return { ...out, keyId: b64(m.keyId), generation: m.generation };
    case "renew-request":
      return { ...out, reason: m.reason };
    case "export-request":
      return m.client ? { ...out, client: formatIpv6Address(m.client) } : out;
    case "key-log":
      return {
        ...out,
        entries: m.entries.map((e) => ({
          keyId: b64(e.keyId),
          suite: suiteJson(e.suite),
          salt: b64(e.salt),
          grant: grantJson(e.grant),
        })),
      };
    case "error":
      return { ...out, code: m.code, message: m.message };
    case "member-join":
      return { ...out, holds: m.holds.map(b64), generation: m.generation };
    case "group-generation":
      return {
        ...out,
        generation: m.generation,
        seed: b64(m.seed),
        timestamp: m.timestamp,
        salt: b64(m.salt),
        suite: suiteJson(m.suite),
        effectiveAt: m.effectiveAt,
        rotation: { ...m.rotation },
        members: m.members.map(b64),
      };
    case "heartbeat":
    case "connectivity-keys-request":
      return out;
    case "connectivity-keys":
      return { ...out, ckn: b64(m.ckn), cak: b64(m.cak), kgk: b64(m.kgk) };
  }
}

// ---- decoding -------------------------------------------------------------------------

/** Reads typed fields out of an untrusted object; every failure names the field path. */
class Fields {
  constructor(
    private readonly obj: Record<string, unknown>,
    private readonly path: string,
  ) {}

  private fail(name: string, want: string): never {
    throw new RegistrationError("malformed-message", `${this.path}${name}: expected ${want}`);
  }

  raw(name: string): unknown {
    if (!(name in this.obj)) this.fail(name, "a value (field missing)");
    return this.obj[name];
  }

  object(name: string): Fields {
    const v = this.raw(name);
    if (typeof v !== "object" || v === null || Array.isArray(v)) this.fail(name, "an object");
    return new Fields(v as Record<string, unknown>, `${this.path}${name}.`);
  }

  array(name: string, max: number): unknown[] {
    const v = this.raw(name);
    if (!Array.isArray(v) || v.length > max) this.fail(name, `an array of at most ${max} items`);
    return v as unknown[];
  }

  integer(name: string, min: number, max: number): number {
    const v = this.raw(name);
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)
      this.fail(name, `an integer in [${min}, ${max}]`);
    return v as number;
  }

  string(name: string, maxLength: number): string {
    const v = this.raw(name);
    if (typeof v !== "string" || v.length > maxLength) this.fail(name, `a string of at most ${maxLength} characters`);
    return v as string;
  }

  boolean(name: string): boolean {
    const v = this.raw(name);
    if (typeof v !== "boolean") this.fail(name, "true or false");
    return v as boolean;
  }

  oneOf<T extends string>(name: string, values: readonly T[]): T {
    const v = this.raw(name);
    if (typeof v !== "string" || !values.includes(v as T)) this.fail(name, `one of ${values.join(", ")}`);
    return v as T;
  }

  bytes(name: string, length: number | [number, number]): Uint8Array {
    const [lo, hi] = typeof length === "number" ? [length, length] : length;
    return decodeB64(this.raw(name), `${this.path}${name}`, lo, hi);
  }

  address(name: string): Uint8Array {
    const v = this.raw(name);
    if (typeof v !== "string") this.fail(name, "an IPv6 address");
    try {
      return parseIpv6Address(v as string);
    } catch {
      return this.fail(name, "an IPv6 address");
    }
  }

  suite(name: string): Suite {
    const s = this.object(name);
    return parseSuite(s, `${this.path}${name}`);
  }
}

function decodeB64(v: unknown, field: string, min: number, max: number): Uint8Array {
  const want = min === max ? `${min} bytes` : `${min}-${max} bytes`;
  if (typeof v !== "string" || !/^[A-Za-z0-9_-]*$/.test(v)) {
    throw new RegistrationError("malformed-message", `${field}: expected base64url (${want})`);
  }
  const bytes = new Uint8Array(Buffer.from(v, "base64url"));
  if (bytes.length < min || bytes.length > max) {
    throw new RegistrationError("malformed-message", `${field}: expected ${want}, got ${bytes.length}`);
  }
  return bytes;
}

function parseSuite(f: Fields, field: string): Suite {
  const suite = {
    kem: f.integer("kem", 0, 0xffff),
    kdf: f.integer("kdf", 0, 0xffff),
    aead: f.integer("aead", 0, 0xffff),
  };
  try {
    kdfDigest(suite.kdf);
    aeadKeyLength(suite.aead);
  } catch (e) {
    throw new RegistrationError("malformed-message", `${field}: ${(e as Error).message}`);
  }
  return suite;
}

function parseRotation(f: Fields): RotationAttributes {
  return {
    criticality: f.oneOf("criticality", CRITICALITIES),
    keys: f.integer("keys", 1, 1_000_000),
    periodMs: f.integer("periodMs", 1, 24 * 3_600_000),
  };
}

function parseGrant(f: Fields): SecretGrant {
  const kind = f.oneOf("kind", ["shared", "client"] as const);
  // 16 bytes: a group generation's SharedSecret for AES-128-GCM (groups.md 1).
  const secret = kind === "shared" ? f.bytes("secret", [16, 32]) : f.bytes("secret", 32);
  return kind === "shared" ? { kind, secret } : { kind, clientAddress: f.address("clientAddress"), secret };
}

const TIME_MAX = 8.64e15; // the largest Date, in ms
/** The most members one group generation lists (a frame of them fits GROUP_FRAME_BYTES). */
export const MAX_GROUP_MEMBERS = 1024;
const MAX_HPKE_KEY = 133; // uncompressed P-521 point; X25519 and P-256 are shorter

/** Validate an untrusted JSON value as a Message; throws RegistrationError naming the field. */
export function parseMessage(value: unknown): Message {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new RegistrationError("malformed-message", "message: expected a JSON object");
  }
  const f = new Fields(value as Record<string, unknown>, "");
  const v = f.raw("v");
  if (v !== PROTOCOL_VERSION) {
    throw new RegistrationError(
      "unsupported-version",
      `v: this agent speaks protocol version ${PROTOCOL_VERSION}, the peer sent ${describeValue(v)}`,
    );
  }
  const type = f.string("type", 32);
  switch (type) {
    case "hello": {
      const suites = f.array("suites", 16).map((s, i) => {
        if (typeof s !== "object" || s === null)
          throw new RegistrationError("malformed-message", `suites[${i}]: expected an object`);
        return parseSuite(new Fields(s as Record<string, unknown>, `suites[${i}].`), `suites[${i}]`);
      });
      if (suites.length === 0) throw new RegistrationError("malformed-message", "suites: expected at least one suite");
      return { type, purpose: f.oneOf("purpose", ["register", "renew"] as const), suites };
    }
    case "hello-ack":
      return {
        type,
        suite: f.suite("suite"),
        publicKey: f.bytes("publicKey", [32, MAX_HPKE_KEY]),
        rotation: parseRotation(f.object("rotation")),
      };
    case "kem":
      return { type, enc: f.bytes("enc", [32, MAX_HPKE_KEY]), salt: f.bytes("salt", 32) };
    case "registered":
      return {
        type,
        keyId: f.bytes("keyId", 8),
        generation: f.integer("generation", 1, 0xffff_ffff),
        effectiveAt: f.integer("effectiveAt", 0, TIME_MAX),
      };
    case "confirm":
      return { type, keyId: f.bytes("keyId", 8) };
    case "join":
      return { type, holds: f.array("holds", 8).map((h, i) => decodeB64(h, `holds[${i}]`, 8, 8)) };
    case "provision":
      return {
        type,
        keyId: f.bytes("keyId", 8),
        generation: f.integer("generation", 1, 0xffff_ffff),
        effectiveAt: f.integer("effectiveAt", 0, TIME_MAX),
        suite: f.suite("suite"),
        salt: f.bytes("salt", 32),
        rotation: parseRotation(f.object("rotation")),
        grant: parseGrant(f.object("grant")),
        sealAllowed: f.boolean("sealAllowed"),
      };
    case "ack":
      return { type, keyId: f.bytes("keyId", 8), generation: f.integer("generation", 1, 0xffff_ffff) };
    case "renew-request":
      return { type, reason: f.string("reason", 200) };
    case "export-request": {
      const obj = value as Record<string, unknown>;
      return obj.client === undefined ? { type } : { type, client: f.address("client") };
    }
    case "key-log":
      return {
        type,
        entries: f.array("entries", 64).map((e, i) => {
          if (typeof e !== "object" || e === null)
            throw new RegistrationError("malformed-message", `entries[${i}]: expected an object`);
          const g = new Fields(e as Record<string, unknown>, `entries[${i}].`);
          return {
            keyId: g.bytes("keyId", 8),
            suite: g.suite("suite"),
            salt: g.bytes("salt", 32),
            grant: parseGrant(g.object("grant")),
          };
        }),
      };
    case "error":
      return { type, code: f.string("code", 64), message: f.string("message", 500) };
    case "member-join":
      return {
        type,
        holds: f.array("holds", 8).map((h, i) => decodeB64(h, `holds[${i}]`, 8, 8)),
        generation: f.integer("generation", 0, 0xffff_ffff),
      };
    case "group-generation": {
      const members = f.array("members", MAX_GROUP_MEMBERS).map((d, i) => decodeB64(d, `members[${i}]`, 64, 4096));
      if (members.length === 0) throw new RegistrationError("malformed-message", "members: expected at least one");
      return {
        type,
        generation: f.integer("generation", 1, 0xffff_ffff),
        seed: f.bytes("seed", 32),
        timestamp: f.integer("timestamp", 0, TIME_MAX),
        salt: f.bytes("salt", 32),
        suite: f.suite("suite"),
        effectiveAt: f.integer("effectiveAt", 0, TIME_MAX),
        rotation: parseRotation(f.object("rotation")),
        members,
      };
    }
    case "heartbeat":
    case "connectivity-keys-request":
      return { type };
    case "connectivity-keys": {
      const cak = f.bytes("cak", [16, 32]);
      if (cak.length !== 16 && cak.length !== 32)
        throw new RegistrationError("malformed-message", "cak: expected 16 or 32 bytes");
      return { type, ckn: f.bytes("ckn", [1, 32]), cak, kgk: f.bytes("kgk", 16) };
    }
    default:
      throw new RegistrationError("malformed-message", `type: unknown message type ${describeValue(type)}`);
  }
}

/**
 * A peer's value, for an error message: a short number or string as it is, anything
 * else by its kind. Never the whole value (it may be 60 KB) and never by recursion
 * (a deeply nested array would overflow the stack).
 */
function describeValue(v: unknown): string {
  if (typeof v === "number") return String(v).slice(0, 24);
  if (typeof v === "string") return v.length <= 24 ? JSON.stringify(v) : `a string of ${v.length} characters`;
  if (Array.isArray(v)) return "an array";
  return v === null ? "null" : `a value of type ${typeof v}`;
}

export function describeSuite(s: Suite): string {
  return `${hex4(s.kem)}:${hex4(s.kdf)}:${hex4(s.aead)}`;
}

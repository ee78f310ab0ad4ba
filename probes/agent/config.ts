// The agent's config file: JSON, documented in probes/README.md ("Agent config").
// Every problem is a ConfigError that names the field (`rotation.keys: ...`), unknown
// fields included, so a typo never silently falls back to a default.

import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { dirname, isAbsolute, resolve } from "node:path";
import type { Suite } from "../../pdm/index.ts";
import { ConfigError } from "./errors.ts";
import { rotationFor } from "./generation.ts";
import { DEFAULT_OFFER, isSupportedSuite } from "./hpke.ts";
import { CRITICALITIES, type RotationAttributes, type Role } from "./messages.ts";
import { parseEndpoint, type TlsFiles } from "./tls.ts";
import { DEFAULT_ADMISSION, type AdmissionLimits } from "./admission.ts";

import { AGENT_ROLES, type AgentRole } from "./roles.ts";
export { AGENT_ROLES, type AgentRole };

export interface Endpoint {
  host: string;
  port: number;
}

export interface AgentConfig {
  name: string;
  roles: AgentRole[];
  tls: TlsFiles;
  /** writer roles: where writer clients, readers and analyzers connect. */
  listen?: Endpoint;
  /** writer-client and reader-server: the writer server. */
  writerServer?: Endpoint;
  /** reader-client: its writer client. */
  writerClient?: Endpoint;
  /** writer-server: the rotation attributes it hands out. */
  rotation: RotationAttributes;
  /** writer-server: suites accepted; writer-client: suites offered, best first. */
  suites: Suite[];
  provisionLeadMs: number;
  graceMs: number;
  ackTimeoutMs: number;
  /** writers: keep a key log (0600) of the generations readers hold, for a local analyzer. */
  keyLog?: string;
  /** reader roles: install the protected layout's keys into the data path attached on this interface. */
  datapath?: { interface: string };
  /** writer roles: limits on connections that have not finished their handshake (admission.ts). */
  admission: AdmissionLimits;
  /**
   * writer-server: the common names of the writer-client certificates that may
   * register. Unset: the first writer client to register is the deployment's, and
   * another certificate is refused until this agent restarts.
   */
  writerClients?: string[];
  /** group-member: the group master's "[addr]:port". */
  groupMaster?: Endpoint;
  /** group roles (groups.md 1). */
  group: GroupConfig;
  /** group-member without a master: the Key Selection Protocol among the members (groups.md 2). */
  distributed?: DistributedConfig;
}

export interface DistributedConfig {
  /** The connectivity key set (CKN, CAK, KGK), a 0600 JSON file; unset: the group master gives it. */
  keys: string | undefined;
  /** The KNs accepted and the highest generation, kept across restarts (0600). */
  knMemory: string;
  interface: string;
  /** This host's IPv6 address on `interface`: the source of its messages. */
  address: string;
  port: number;
  group: string | undefined;
  peers: string[] | undefined;
  /** Lower values win the key-server election. */
  priority: number;
  /** 8 bytes; default: the first 8 bytes of SHA-256 of the agent's certificate. */
  memberId: Uint8Array | undefined;
  timers: { helloMs: number; lifeMs: number; retireMs: number; minRekeyMs: number };
}

export interface GroupConfig {
  /** Silence (no heartbeat) for this long drops a member, or makes a member give up its master. */
  lifeMs: number;
  /** group-master: a generation takes effect this long after it is made (every member's scrypt fits in). */
  leadMs: number;
  /** group-master: how long a member has to acknowledge a generation. */
  ackTimeoutMs: number;
  /** group-master: the connection must come from an address the member's certificate names. */
  addressBinding: boolean;
  /** group-master: the pdm release digests members may run (unset: not checked). */
  releases: string[] | undefined;
  maxMembers: number;
  /** group-master: changes closer together than this make one renewal (hosts booting together). */
  gatherMs: number;
  /** group-master: the connectivity key set (0600) it gives every member for distributed mode. */
  connectivityKeys: string | undefined;
}

export const GROUP_DEFAULTS = {
  lifeSeconds: 6,
  leadSeconds: 3,
  ackTimeoutSeconds: 10,
  addressBinding: true,
  maxMembers: 1024,
  gatherSeconds: 0.05,
};

const FIELDS = new Set([
  "name",
  "roles",
  "tls",
  "listen",
  "writerServer",
  "writerClient",
  "rotation",
  "suites",
  "provisionLeadSeconds",
  "graceSeconds",
  "ackTimeoutSeconds",
  "keyLog",
  "datapath",
  "connections",
  "writerClients",
  "groupMaster",
  "group",
  "distributed",
]);

export const CONFIG_DEFAULTS = { provisionLeadSeconds: 2, graceSeconds: 30, ackTimeoutSeconds: 2, keys: 4 };

export function readAgentConfig(path: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError("(file)", `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, path);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError("(file)", `not valid JSON: ${(e as Error).message}`, path);
  }
  return parseAgentConfig(json, dirname(resolve(path)), path);
}

/** Validate a parsed config; relative paths are resolved against `baseDir`. */
export function parseAgentConfig(json: unknown, baseDir: string, file?: string): AgentConfig {
  const fail = (field: string, detail: string): never => {
    throw new ConfigError(field, detail, file);
  };
  if (typeof json !== "object" || json === null || Array.isArray(json)) return fail("(file)", "expected a JSON object");
  const c = json as Record<string, unknown>;
  for (const key of Object.keys(c)) if (!FIELDS.has(key)) fail(key, `unknown field (known: ${[...FIELDS].join(", ")})`);

  const str = (field: string, v: unknown): string =>
    typeof v === "string" && v !== "" ? v : fail(field, "expected a non-empty string");
  const seconds = (field: string, fallback: number, min: number): number => {
    const v = c[field] ?? fallback;
    return typeof v === "number" && v >= min && v <= 86_400
      ? Math.round(v * 1000)
      : fail(field, `expected seconds in [${min}, 86400]`);
  };
  const path = (field: string, v: unknown): string => {
    const p = str(field, v);
    return isAbsolute(p) ? p : resolve(baseDir, p);
  };
  const endpoint = (field: string): Endpoint | undefined => {
    if (c[field] === undefined) return undefined;
    try {
      return parseEndpoint(str(field, c[field]), field);
    } catch (e) {
      return fail(field, (e as Error).message.replace(`${field}: `, ""));
    }
  };

  if (!Array.isArray(c.roles) || c.roles.length === 0)
    fail("roles", `expected a non-empty array of ${AGENT_ROLES.join(", ")}`);
  const roles = (c.roles as unknown[]).map((r, i) =>
    AGENT_ROLES.includes(r as AgentRole)
      ? (r as AgentRole)
      : fail(`roles[${i}]`, `"${String(r)}" is not one of ${AGENT_ROLES.join(", ")}`),
  );
  if (roles.includes("writer-server") && roles.includes("writer-client"))
    fail("roles", "one agent cannot be both writer-server and writer-client");
  if (roles.includes("reader-server") && roles.includes("reader-client"))
    fail("roles", "one agent cannot be both reader-server and reader-client");
  const grouped = roles.filter((r) => r === "group-master" || r === "group-member");
  if (grouped.length > 0 && roles.length > 1)
    fail("roles", `${grouped[0]} stands alone: a group master or member plays no other role in the same agent`);
  const has = (r: Role): boolean => roles.includes(r as AgentRole);

  if (typeof c.tls !== "object" || c.tls === null) fail("tls", "expected an object with ca, cert and key paths");
  const t = c.tls as Record<string, unknown>;
  for (const key of Object.keys(t))
    if (!["ca", "cert", "key"].includes(key)) fail(`tls.${key}`, "unknown field (known: ca, cert, key)");
  const tls = { ca: path("tls.ca", t.ca), cert: path("tls.cert", t.cert), key: path("tls.key", t.key) };

  const listen = endpoint("listen");
  const writerServer = endpoint("writerServer");
  const writerClient = endpoint("writerClient");
  if ((has("writer-server") || has("writer-client") || has("group-master")) && !listen)
    fail("listen", `a ${has("group-master") ? "group master" : "writer role"} needs listen: "[addr]:port"`);
  const groupMaster = endpoint("groupMaster");
  if (has("group-member") && !groupMaster && c.distributed === undefined)
    fail("groupMaster", 'a group-member needs its group master\'s "[addr]:port", or "distributed" settings');

  if (groupMaster && !has("group-member")) fail("groupMaster", "only a group-member connects to a group master");
  if (has("writer-client") && !writerServer)
    fail("writerServer", 'a writer-client needs the writer server\'s "[addr]:port"');
  if (has("reader-server") && !has("writer-server") && !writerServer)
    fail("writerServer", 'a reader-server needs its writer server\'s "[addr]:port"');
  if (has("reader-client") && !has("writer-client") && !writerClient)
    fail("writerClient", 'a reader-client needs its writer client\'s "[addr]:port"');

  let rotation = rotationFor("important", CONFIG_DEFAULTS.keys);
  if (c.rotation !== undefined) {
    if (typeof c.rotation !== "object" || c.rotation === null) fail("rotation", "expected an object");
    const r = c.rotation as Record<string, unknown>;
    for (const key of Object.keys(r))
      if (!["criticality", "keys", "periodSeconds"].includes(key))
        fail(`rotation.${key}`, "unknown field (known: criticality, keys, periodSeconds)");
    const criticality = r.criticality ?? "important";
    if (!CRITICALITIES.includes(criticality as RotationAttributes["criticality"]))
      fail("rotation.criticality", `expected one of ${CRITICALITIES.join(", ")}`);
    const keys = r.keys ?? CONFIG_DEFAULTS.keys;
    if (typeof keys !== "number" || !Number.isInteger(keys) || keys < 1 || keys > 10_000)
      fail("rotation.keys", "expected an integer in [1, 10000]");
    const base = rotationFor(criticality as RotationAttributes["criticality"], keys as number);
    let periodMs = base.periodMs;
    if (r.periodSeconds !== undefined) {
      const p = r.periodSeconds;
      if (typeof p !== "number" || p < 0.1 || p * 1000 > base.periodMs) {
        fail(
          "rotation.periodSeconds",
          `expected seconds in [0.1, ${base.periodMs / 1000}] (at most the criticality's period)`,
        );
      }
      periodMs = Math.round((p as number) * 1000);
    }
    rotation = { ...base, periodMs };
  }

  let suites = DEFAULT_OFFER;
  if (c.suites !== undefined) {
    if (!Array.isArray(c.suites) || c.suites.length === 0)
      fail("suites", 'expected a non-empty array such as ["0020:0001:0001"]');
    suites = (c.suites as unknown[]).map((s, i) => {
      const m = typeof s === "string" ? /^([0-9a-fA-F]{4}):([0-9a-fA-F]{4}):([0-9a-fA-F]{4})$/.exec(s) : null;
      if (!m) return fail(`suites[${i}]`, 'expected "kem:kdf:aead" as 4 hex digits each, such as "0020:0001:0001"');
      const suite = { kem: parseInt(m[1]!, 16), kdf: parseInt(m[2]!, 16), aead: parseInt(m[3]!, 16) };
      if (!isSupportedSuite(suite))
        fail(`suites[${i}]`, `${s} is not supported (KEM 0020 or 0010, KDF 0001-0003, AEAD 0001 or 0003)`);
      return suite;
    });
  }

  return {
    name: c.name === undefined ? roles.join("+") : str("name", c.name),
    roles,
    tls,
    listen,
    writerServer,
    writerClient,
    rotation,
    suites,
    provisionLeadMs: seconds("provisionLeadSeconds", CONFIG_DEFAULTS.provisionLeadSeconds, 0),
    graceMs: seconds("graceSeconds", CONFIG_DEFAULTS.graceSeconds, 0),
    ackTimeoutMs: seconds("ackTimeoutSeconds", CONFIG_DEFAULTS.ackTimeoutSeconds, 0.01),
    keyLog: c.keyLog === undefined ? undefined : path("keyLog", c.keyLog),
    datapath: c.datapath === undefined ? undefined : datapathOf(c.datapath, roles, fail),
    admission: admissionOf(c.connections, fail),
    writerClients: c.writerClients === undefined ? undefined : writerClientsOf(c.writerClients, roles, fail),
    groupMaster,
    group: groupOf(c.group, roles, baseDir, fail),
    distributed:
      c.distributed === undefined
        ? undefined
        : distributedOf(c.distributed, roles, baseDir, fail, groupMaster !== undefined),
  };
}

function distributedOf(
  v: unknown,
  roles: AgentRole[],
  baseDir: string,
  fail: (field: string, why: string) => never,
  hasMaster: boolean,
): DistributedConfig {
  if (!roles.includes("group-member")) fail("distributed", "only a group-member runs the distributed protocol");
  if (typeof v !== "object" || v === null || Array.isArray(v))
    fail("distributed", 'expected an object such as {"keys": "ksp.keys", "interface": "eth0", "address": "fd00::1"}');
  const o = v as Record<string, unknown>;
  const known = [
    "keys",
    "knMemory",
    "interface",
    "address",
    "port",
    "group",
    "peers",
    "priority",
    "memberId",
    "timers",
  ];
  for (const k of Object.keys(o))
    if (!known.includes(k)) fail(`distributed.${k}`, `unknown field (known: ${known.join(", ")})`);
  const text = (k: string): string =>
    typeof o[k] === "string" && o[k] !== ""
      ? (o[k] as string)
      : fail(`distributed.${k}`, "expected a non-empty string");
  const path = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));
  const ipv6 = (k: string, value: unknown): string => {
    if (typeof value !== "string" || isIP(value) !== 6) fail(k, "expected an IPv6 address");
    return value as string;
  };
  // With a group master, the keys may come from it (hybrid mode: the protocol takes over when it is gone).
  if (o.keys === undefined && !hasMaster)
    fail("distributed.keys", "expected the connectivity key file (or a groupMaster that gives the keys)");
  const keys = o.keys === undefined ? undefined : path(text("keys"));
  const port = o.port ?? 4530;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535)
    fail("distributed.port", "expected a port number");
  const priority = o.priority ?? 16;
  if (typeof priority !== "number" || !Number.isInteger(priority) || priority < 0 || priority > 255)
    fail("distributed.priority", "expected an integer in [0, 255] (lower wins the key-server election)");
  let peers: string[] | undefined;
  if (o.peers !== undefined) {
    if (!Array.isArray(o.peers) || o.peers.length === 0 || o.peers.length > 64)
      fail("distributed.peers", 'expected 1 to 64 IPv6 addresses, or "[addr]:port" (unicast instead of multicast)');
    peers = (o.peers as unknown[]).map((p, i) => {
      const m = typeof p === "string" ? /^\[([^\]]+)\]:(\d+)$/.exec(p) : null;
      if (m) {
        ipv6(`distributed.peers[${i}]`, m[1]);
        if (!(Number(m[2]) >= 1 && Number(m[2]) <= 65535))
          fail(`distributed.peers[${i}]`, "expected a port in [1, 65535]");
        return p as string;
      }
      return ipv6(`distributed.peers[${i}]`, p);
    });
  }
  const group = o.group === undefined ? undefined : ipv6("distributed.group", o.group);
  if (group && !/^ff0[0-9a-f]:/i.test(group)) fail("distributed.group", "expected a multicast address (ff0X::...)");
  let memberId: Uint8Array | undefined;
  if (o.memberId !== undefined) {
    if (typeof o.memberId !== "string" || !/^[0-9a-fA-F]{16}$/.test(o.memberId))
      fail("distributed.memberId", "expected 8 bytes in hex (16 digits)");
    memberId = new Uint8Array(Buffer.from(o.memberId as string, "hex"));
  }
  const t = (o.timers ?? {}) as Record<string, unknown>;
  if (typeof t !== "object" || Array.isArray(t)) fail("distributed.timers", "expected an object of milliseconds");
  const timerNames = ["helloMs", "lifeMs", "retireMs", "minRekeyMs"];
  for (const k of Object.keys(t))
    if (!timerNames.includes(k)) fail(`distributed.timers.${k}`, `unknown field (known: ${timerNames.join(", ")})`);
  const ms = (k: string, fallback: number): number => {
    const x = t[k] ?? fallback;
    return typeof x === "number" && Number.isInteger(x) && x >= 10 && x <= 3_600_000
      ? x
      : fail(`distributed.timers.${k}`, "expected milliseconds in [10, 3600000]");
  };
  const timers = {
    helloMs: ms("helloMs", 2000),
    lifeMs: ms("lifeMs", 6000),
    retireMs: ms("retireMs", 3000),
    minRekeyMs: ms("minRekeyMs", 6000),
  };
  if (timers.lifeMs <= timers.helloMs) fail("distributed.timers.lifeMs", "must be longer than helloMs");
  return {
    keys,
    knMemory:
      o.knMemory !== undefined
        ? path(text("knMemory"))
        : keys
          ? `${keys}.kns`
          : fail("distributed.knMemory", "expected a file for the KNs accepted (the keys come from the group master)"),
    interface: text("interface"),
    address: ipv6("distributed.address", o.address),
    port: port as number,
    group,
    peers,
    priority: priority as number,
    memberId,
    timers,
  };
}

function groupOf(
  v: unknown,
  roles: AgentRole[],
  baseDir: string,
  fail: (field: string, why: string) => never,
): GroupConfig {
  const master = roles.includes("group-master");
  if (v !== undefined && !master && !roles.includes("group-member"))
    fail("group", "only a group-master or group-member has group settings");
  if (v !== undefined && (typeof v !== "object" || v === null || Array.isArray(v)))
    fail("group", 'expected an object such as {"lifeSeconds": 6}');
  const o = (v ?? {}) as Record<string, unknown>;
  const masterOnly = [
    "leadSeconds",
    "ackTimeoutSeconds",
    "addressBinding",
    "releases",
    "maxMembers",
    "gatherSeconds",
    "connectivityKeys",
  ];
  const known = ["lifeSeconds", ...masterOnly];
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) fail(`group.${k}`, `unknown field (known: ${known.join(", ")})`);
    if (!master && masterOnly.includes(k)) fail(`group.${k}`, "a group master's setting (this agent is a member)");
  }
  const seconds = (field: string, fallback: number, min: number, max: number): number => {
    const s = o[field] ?? fallback;
    return typeof s === "number" && s >= min && s <= max
      ? Math.round(s * 1000)
      : fail(`group.${field}`, `expected seconds in [${min}, ${max}]`);
  };
  const binding = o.addressBinding ?? GROUP_DEFAULTS.addressBinding;
  if (typeof binding !== "boolean") fail("group.addressBinding", "expected true or false");
  let releases: string[] | undefined;
  if (o.releases !== undefined) {
    if (!Array.isArray(o.releases) || o.releases.length === 0 || o.releases.length > 64)
      fail("group.releases", "expected 1 to 64 release digests (64 hex digits each, from pdm ca release)");
    releases = (o.releases as unknown[]).map((r, i) =>
      typeof r === "string" && /^[0-9a-f]{64}$/.test(r)
        ? r
        : fail(`group.releases[${i}]`, "expected 64 lowercase hex digits (a SHA-256)"),
    );
  }
  const maxMembers = o.maxMembers ?? GROUP_DEFAULTS.maxMembers;
  if (typeof maxMembers !== "number" || !Number.isInteger(maxMembers) || maxMembers < 1 || maxMembers > 1024)
    fail("group.maxMembers", "expected an integer in [1, 1024]");
  return {
    lifeMs: seconds("lifeSeconds", GROUP_DEFAULTS.lifeSeconds, 0.3, 3600),
    leadMs: seconds("leadSeconds", GROUP_DEFAULTS.leadSeconds, 0, 3600),
    ackTimeoutMs: seconds("ackTimeoutSeconds", GROUP_DEFAULTS.ackTimeoutSeconds, 0.1, 3600),
    addressBinding: binding as boolean,
    releases,
    maxMembers: maxMembers as number,
    gatherMs: seconds("gatherSeconds", GROUP_DEFAULTS.gatherSeconds, 0, 60),
    connectivityKeys:
      o.connectivityKeys === undefined
        ? undefined
        : typeof o.connectivityKeys === "string" && o.connectivityKeys !== ""
          ? isAbsolute(o.connectivityKeys)
            ? o.connectivityKeys
            : resolve(baseDir, o.connectivityKeys)
          : fail("group.connectivityKeys", "expected the path of a connectivity key file"),
  };
}

function admissionOf(v: unknown, fail: (field: string, why: string) => never): AdmissionLimits {
  if (v === undefined) return DEFAULT_ADMISSION;
  if (typeof v !== "object" || v === null || Array.isArray(v))
    return fail("connections", 'expected an object such as {"handshakeSeconds": 5}');
  const o = v as Record<string, unknown>;
  const known = ["handshakeSeconds", "maxUnauthenticated", "maxUnauthenticatedPerSource", "max"];
  for (const k of Object.keys(o))
    if (!known.includes(k)) fail(`connections.${k}`, `unknown field (known: ${known.join(", ")})`);
  const count = (field: string, fallback: number): number => {
    const n = o[field] ?? fallback;
    return typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= 1_000_000
      ? n
      : fail(`connections.${field}`, "expected an integer in [1, 1000000]");
  };
  const seconds = o.handshakeSeconds ?? DEFAULT_ADMISSION.handshakeMs / 1000;
  if (typeof seconds !== "number" || seconds < 0.1 || seconds > 120)
    fail("connections.handshakeSeconds", "expected seconds in [0.1, 120]");
  return {
    handshakeMs: Math.round((seconds as number) * 1000),
    maxUnauthenticated: count("maxUnauthenticated", DEFAULT_ADMISSION.maxUnauthenticated),
    maxPerSource: count("maxUnauthenticatedPerSource", DEFAULT_ADMISSION.maxPerSource),
    maxConnections: count("max", DEFAULT_ADMISSION.maxConnections),
  };
}

function writerClientsOf(v: unknown, roles: AgentRole[], fail: (field: string, why: string) => never): string[] {
  if (!roles.includes("writer-server")) fail("writerClients", "only a writer server accepts writer clients");
  if (!Array.isArray(v) || v.length === 0 || v.length > 16)
    fail("writerClients", 'expected 1 to 16 certificate common names, such as ["wc1"]');
  return (v as unknown[]).map((n, i) =>
    typeof n === "string" && n !== "" ? n : fail(`writerClients[${i}]`, "expected a certificate common name"),
  );
}

function datapathOf(
  v: unknown,
  roles: AgentRole[],
  fail: (field: string, why: string) => never,
): { interface: string } {
  if (typeof v !== "object" || v === null || Array.isArray(v))
    fail("datapath", 'expected an object such as {"interface": "eth0"}');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== "interface") fail(`datapath.${k}`, "unknown field");
  if (typeof o.interface !== "string" || o.interface === "") fail("datapath.interface", "expected an interface name");
  if (!roles.includes("reader-server") && !roles.includes("reader-client") && !roles.includes("group-member"))
    fail(
      "datapath",
      "only a reader role or a group member stamps and reads, so only it installs keys into a data path",
    );
  return { interface: o.interface as string };
}

// The agent's config file: JSON, documented in probes/README.md ("Agent config").
// Every problem is a ConfigError that names the field (`rotation.keys: ...`), unknown
// fields included, so a typo never silently falls back to a default.

import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import type { Suite } from "../../pdm/index.ts";
import { ConfigError } from "./errors.ts";
import { rotationFor } from "./generation.ts";
import { DEFAULT_OFFER, isSupportedSuite } from "./hpke.ts";
import { CRITICALITIES, type RotationAttributes, type Role } from "./messages.ts";
import { parseEndpoint, type TlsFiles } from "./tls.ts";
import { DEFAULT_ADMISSION, type AdmissionLimits } from "./admission.ts";
import { distributedOf, groupOf, type DistributedConfig, type GroupConfig } from "./group-config.ts";
export { GROUP_DEFAULTS, type DistributedConfig, type GroupConfig } from "./group-config.ts";

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
  /** writer roles: the connectivity key set (0600) given to group members that ask (their distributed.keysFrom). */
  connectivityKeys?: string;
}

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
  "connectivityKeys",
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
    connectivityKeys:
      c.connectivityKeys === undefined
        ? undefined
        : has("writer-server") || has("writer-client")
          ? path("connectivityKeys", c.connectivityKeys)
          : fail(
              "connectivityKeys",
              has("group-master")
                ? "a group master gives the set from group.connectivityKeys"
                : "only a writer gives group members their connectivity key set",
            ),
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

// The group settings of the agent's config (groups.md): `group` for a group master and
// its members, `distributed` for the Key Selection Protocol among members. Each problem
// names its field, as config.ts does for the rest of the file.

import { isIP } from "node:net";
import { isAbsolute, resolve } from "node:path";
import type { AgentRole } from "./roles.ts";
import { parseEndpoint } from "./tls.ts";

type Fail = (field: string, why: string) => never;

export interface DistributedConfig {
  /** The connectivity key set (CKN, CAK, KGK), a 0600 JSON file. */
  keys: string | undefined;
  /** Or a writer's "[addr]:port" that gives the set over mutual TLS (else the group master gives it). */
  keysFrom: { host: string; port: number } | undefined;
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

export function distributedOf(
  v: unknown,
  roles: AgentRole[],
  baseDir: string,
  fail: Fail,
  hasMaster: boolean,
): DistributedConfig {
  if (!roles.includes("group-member")) fail("distributed", "only a group-member runs the distributed protocol");
  if (typeof v !== "object" || v === null || Array.isArray(v))
    fail("distributed", 'expected an object such as {"keys": "ksp.keys", "interface": "eth0", "address": "fd00::1"}');
  const o = v as Record<string, unknown>;
  const known = [
    "keys",
    "keysFrom",
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
  // The set comes from a file, from a writer (keysFrom), or from the group master (hybrid
  // mode: the protocol takes over when the master is gone).
  if (o.keys !== undefined && o.keysFrom !== undefined)
    fail("distributed.keysFrom", "give the connectivity keys either as a file (keys) or from a writer (keysFrom)");
  if (o.keys === undefined && o.keysFrom === undefined && !hasMaster)
    fail(
      "distributed.keys",
      'expected the connectivity key file, keysFrom (a writer\'s "[addr]:port" that gives them), or a groupMaster that gives them',
    );
  const keys = o.keys === undefined ? undefined : path(text("keys"));
  let keysFrom: { host: string; port: number } | undefined;
  if (o.keysFrom !== undefined) {
    try {
      keysFrom = parseEndpoint(text("keysFrom"), "distributed.keysFrom");
    } catch (e) {
      fail("distributed.keysFrom", (e as Error).message.replace("distributed.keysFrom: ", ""));
    }
  }
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
    keysFrom,
    knMemory:
      o.knMemory !== undefined
        ? path(text("knMemory"))
        : keys
          ? `${keys}.kns`
          : fail(
              "distributed.knMemory",
              "expected a file for the KNs accepted (the keys come from a writer or the master)",
            ),
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

export function groupOf(v: unknown, roles: AgentRole[], baseDir: string, fail: Fail): GroupConfig {
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

// The measuring service's config file (JSON, /etc/pdm/service.json by default). Every
// field is checked at start and on reload: an unknown field, a bad address or a value
// out of range is refused with the field named, and nothing starts.
//
//   {
//     "interfaces": [{ "name": "eth0", "attach": { "layout": "v2", "ports": [443] } }],
//     "metrics": { "listen": "[::1]:9464", "prefixLength": 48, "prefixNames": { "dc1": "fd00:1::/32" },
//                  "topPrefixes": 10, "maxLabelSets": 64, "labelTtlSeconds": 600,
//                  "serverPorts": [443], "buckets": [0.001, 0.01, 0.1, 1] },
//     "live": { "idleSeconds": 60, "maxFlows": 20000 },
//     "otlp": { "endpoint": "http://collector:4318/v1/metrics", "intervalSeconds": 10 },
//     "agent": "agent.json"
//   }
//
// "attach" attaches the data path when the interface has none (and detaches it at
// stop); without it the service reads what is attached already. "otlp" also pushes the
// metrics to an OpenTelemetry collector (its endpoint, or the OTEL_EXPORTER_OTLP_*
// variables). "agent" runs the registration agent in the service (the key installer
// of the protected layout).

import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { UsageError } from "../../pdm/index.ts";
import { parseMetricsAddress } from "../../metrics/index.ts";
import { LAYOUT_NAMES, type KernelLayout } from "../../probes/datapath/index.ts";

export interface AttachSpec {
  layout: KernelLayout;
  aead?: "aes-128-gcm" | "chacha20-poly1305";
  ports?: number[];
  prefixes?: string[];
  flowTimeoutS?: number;
}

export interface ServiceConfig {
  file: string;
  interfaces: Array<{ name: string; attach: AttachSpec | undefined }>;
  metrics: {
    listen: string;
    prefixLength: number;
    prefixNames: Array<{ name: string; prefix: string }>;
    topPrefixes: number;
    maxLabelSets: number;
    labelTtlSeconds: number;
    serverPorts: number[] | undefined;
    buckets: number[] | undefined;
  };
  live: { idleSeconds: number; maxFlows: number };
  /** OTLP push, when configured: the endpoint (else OTEL_EXPORTER_OTLP_*) and the interval. */
  otlp: { endpoint: string | undefined; intervalSeconds: number } | undefined;
  /** The agent's config file, resolved against the service config's directory. */
  agent: string | undefined;
}

export function readServiceConfig(path: string): ServiceConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new UsageError(`${path}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${path}: not valid JSON: ${(e as Error).message}`);
  }
  return parseServiceConfig(json, path);
}

export function parseServiceConfig(json: unknown, file: string): ServiceConfig {
  const fail = (field: string, detail: string): never => {
    throw new UsageError(`${file}: ${field}: ${detail}`);
  };
  const object = (field: string, v: unknown, known: readonly string[]): Record<string, unknown> => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return fail(field, "expected an object");
    for (const k of Object.keys(v))
      if (!known.includes(k)) fail(field ? `${field}.${k}` : k, `unknown field (known: ${known.join(", ")})`);
    return v as Record<string, unknown>;
  };
  const int = (field: string, v: unknown, min: number, max: number, fallback?: number): number => {
    if (v === undefined && fallback !== undefined) return fallback;
    return typeof v === "number" && Number.isInteger(v) && v >= min && v <= max
      ? v
      : fail(field, `expected a whole number from ${min} to ${max}`);
  };
  const ports = (field: string, v: unknown): number[] =>
    Array.isArray(v) && v.length > 0
      ? v.map((p, i) => int(`${field}[${i}]`, p, 1, 65535))
      : fail(field, "expected a list of ports");

  const c = object("", json, ["interfaces", "metrics", "live", "otlp", "agent"]);
  if (!Array.isArray(c.interfaces) || c.interfaces.length === 0)
    fail("interfaces", 'expected a list of interfaces, e.g. [{ "name": "eth0" }]');
  const interfaces = (c.interfaces as unknown[]).map((raw, i) => {
    const f = `interfaces[${i}]`;
    const o = object(f, raw, ["name", "attach"]);
    if (typeof o.name !== "string" || !/^[A-Za-z0-9_.:@-]{1,15}$/.test(o.name))
      fail(`${f}.name`, "expected an interface name");
    let attach: AttachSpec | undefined;
    if (o.attach !== undefined) {
      const a = object(`${f}.attach`, o.attach, ["layout", "aead", "ports", "prefixes", "flowTimeoutSeconds"]);
      const layout =
        LAYOUT_NAMES[String(a.layout ?? "v1")] ??
        fail(`${f}.attach.layout`, `one of ${Object.keys(LAYOUT_NAMES).join(", ")}`);
      if (a.aead !== undefined && a.aead !== "aes-128-gcm" && a.aead !== "chacha20-poly1305")
        fail(`${f}.attach.aead`, "aes-128-gcm or chacha20-poly1305");
      if (a.prefixes !== undefined && (!Array.isArray(a.prefixes) || a.prefixes.some((p) => typeof p !== "string")))
        fail(`${f}.attach.prefixes`, "expected a list of IPv6 prefixes");
      attach = {
        layout,
        aead: a.aead as AttachSpec["aead"],
        ports: a.ports === undefined ? undefined : ports(`${f}.attach.ports`, a.ports),
        prefixes: a.prefixes as string[] | undefined,
        flowTimeoutS:
          a.flowTimeoutSeconds === undefined
            ? undefined
            : int(`${f}.attach.flowTimeoutSeconds`, a.flowTimeoutSeconds, 0, 86_400),
      };
    }
    return { name: o.name as string, attach };
  });
  if (new Set(interfaces.map((i) => i.name)).size !== interfaces.length)
    fail("interfaces", "an interface is listed twice");

  const m = object("metrics", c.metrics ?? {}, [
    "listen",
    "prefixLength",
    "prefixNames",
    "topPrefixes",
    "maxLabelSets",
    "labelTtlSeconds",
    "serverPorts",
    "buckets",
  ]);
  const listen =
    m.listen === undefined
      ? "[::1]:9464"
      : typeof m.listen === "string"
        ? m.listen
        : fail("metrics.listen", "expected an address such as [::1]:9464");
  try {
    parseMetricsAddress(listen);
  } catch (e) {
    fail("metrics.listen", (e as Error).message);
  }
  const names = object("metrics.prefixNames", m.prefixNames ?? {}, Object.keys((m.prefixNames as object) ?? {}));
  const prefixNames = Object.entries(names).map(([name, prefix]) =>
    typeof prefix === "string" ? { name, prefix } : fail(`metrics.prefixNames.${name}`, "expected an IPv6 prefix"),
  );
  let buckets: number[] | undefined;
  if (m.buckets !== undefined) {
    if (!Array.isArray(m.buckets) || m.buckets.length === 0 || m.buckets.length > 64)
      fail("metrics.buckets", "expected 1 to 64 bucket bounds in seconds");
    buckets = (m.buckets as unknown[]).map((b, i) =>
      typeof b === "number" && b > 0 && (i === 0 || b > (m.buckets as number[])[i - 1]!)
        ? b
        : fail(`metrics.buckets[${i}]`, "expected ascending positive seconds"),
    );
  }
  const live = object("live", c.live ?? {}, ["idleSeconds", "maxFlows"]);
  let otlp: ServiceConfig["otlp"];
  if (c.otlp !== undefined) {
    const o = object("otlp", c.otlp, ["endpoint", "intervalSeconds"]);
    if (o.endpoint !== undefined && (typeof o.endpoint !== "string" || !/^https?:\/\/\S+$/.test(o.endpoint)))
      fail("otlp.endpoint", "expected an http:// or https:// URL");
    otlp = {
      endpoint: o.endpoint as string | undefined,
      intervalSeconds: int("otlp.intervalSeconds", o.intervalSeconds, 1, 3600, 10),
    };
  }
  if (c.agent !== undefined && (typeof c.agent !== "string" || c.agent === ""))
    fail("agent", "expected the agent's config file");
  return {
    file,
    interfaces,
    metrics: {
      listen,
      prefixLength: int("metrics.prefixLength", m.prefixLength, 0, 128, 48),
      prefixNames,
      topPrefixes: int("metrics.topPrefixes", m.topPrefixes, 1, 1000, 10),
      maxLabelSets: int("metrics.maxLabelSets", m.maxLabelSets, 1, 10_000, 64),
      labelTtlSeconds: int("metrics.labelTtlSeconds", m.labelTtlSeconds, 5, 86_400, 600),
      serverPorts: m.serverPorts === undefined ? undefined : ports("metrics.serverPorts", m.serverPorts),
      buckets,
    },
    live: {
      idleSeconds: int("live.idleSeconds", live.idleSeconds, 1, 86_400, 60),
      maxFlows: int("live.maxFlows", live.maxFlows, 1, 1_000_000, 20_000),
    },
    otlp,
    agent: typeof c.agent === "string" ? resolve(dirname(resolve(file)), c.agent) : undefined,
  };
}

// The live demo: the whole product deployed on one machine, measured, and checked
// against the delays it injected (cli/demo/plan.ts has the topology and values).
//
//  1. namespaces: a router between three clients and three servers, delay bridges on
//     the reader servers' links, a capture on the router's client side;
//  2. a private CA and one certificate per role; the six agents register (mutual TLS
//     1.3, HPKE) and provision the four readers;
//  3. the eBPF programs attached on every reader host (`pdm attach`);
//  4. real applications (HTTP over TCP, UDP request/response, ping) for a while;
//  5. `pdm status` on a reader, the key log exported by the router as an authorized
//     analyzer, the capture analyzed: table, report.html, PNG, measured vs injected;
//  6. teardown of everything, also on Ctrl-C or failure.

import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  analyzeCapture,
  fileSource,
  formatDuration,
  readCapture,
  renderHtmlReport,
  renderTable,
  timeSeriesChart,
  type AnalysisResult,
  type FlowReport,
} from "../../analyzer/index.ts";
import { ipv6Offset, formatIpv6Address, parseIpv6 } from "../../pdm/index.ts";
import { initCa, issueCertificate } from "../../probes/agent/index.ts";
import { aesDataPathUnavailable, packageRoot } from "../../probes/datapath/index.ts";
import { Lab, type LabProcess } from "../../lab/index.ts";
import {
  DEMO_HOSTS,
  DEMO_PORTS,
  DEMO_ROTATION,
  ROUTER_CLIENT_LAN,
  SERVER_APPS,
  SERVER_LINKS,
  WORKLOADS,
  host,
} from "./plan.ts";
import { buildTopology, HOST_IF, ROUTER_CAPTURE_IF } from "./topology.ts";
import { renderChartPng } from "../report-png.ts";

const ROOT = packageRoot();
const PDM = [process.execPath, join(ROOT, "bin", "pdm.js")];
const APPS = [process.execPath, "--import", "tsx", join(ROOT, "cli", "demo", "apps.ts")];
/** The deployment's AEAD: the default suite's AES-128-GCM where the kernel can seal it (Linux 6.10+, the pdm_gcm build). */
const DEMO_AEAD = !aesDataPathUnavailable() ? ("aes-128-gcm" as const) : ("chacha20-poly1305" as const);
const DELAY_BRIDGE = [process.execPath, "--import", "tsx", join(ROOT, "scripts", "delay-bridge.ts")];
const MS = 1e6;

export interface LiveDemoOptions {
  /** Seconds of workload. */
  duration: number;
  /** Where the capture, key log, report, PNG, certificates and logs go. */
  outDir: string;
  say: (line: string) => void;
}

export interface LiveDemoResult {
  /** Every comparison within its tolerance. */
  ok: boolean;
  files: { capture: string; keys: string; report: string; png: string };
}

/** Thrown when a step shows the machine cannot run the live demo at all (not a bug in a run). */
export class DemoUnavailable extends Error {}

export async function runLiveDemo(opts: LiveDemoOptions): Promise<LiveDemoResult> {
  const say = opts.say;
  const out = resolve(opts.outDir);
  const lab = new Lab("pdmdemo-", "/run/pdm-demo", "/sys/fs/bpf/pdm-demo", ROOT);
  const leftovers = lab.removeLeftovers();
  if (leftovers.length) say(`removed what an interrupted earlier run left: ${leftovers.join(", ")}`);

  // Ctrl-C, kill, or a crash: take everything down before exiting.
  const onSignal = (signal: NodeJS.Signals): void => {
    say(`\n${signal}: tearing down the demo (namespaces, programs, pins, processes)`);
    lab.teardown();
    process.exit(130);
  };
  const onExit = (): void => lab.teardown();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  process.once("exit", onExit);
  const t0 = Date.now();
  const elapsed = (): string => `${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s`;
  try {
    for (const d of ["pki", "agents", "logs"]) mkdirSync(join(out, d), { recursive: true, mode: 0o700 });

    say(`[${elapsed()}] topology: router + 6 hosts in network namespaces (pdmdemo-*)`);
    const topo = buildTopology(lab);
    for (const l of SERVER_LINKS) {
      say(
        `           router <-> ${l.host} (${host(l.host).addr}): ${l.delayMs} ms each way, jitter ±${l.jitterMs} ms, loss ${(l.loss * 100).toFixed(1)} % (user-space delay bridge: this kernel has no netem)`,
      );
    }
    const bridges = topo.delayLinks.map((d) => {
      const l = SERVER_LINKS.find((x) => x.host === d.host)!;
      return lab.start(topo.router, `delay bridge ${d.host}`, [
        ...DELAY_BRIDGE,
        d.left,
        d.right,
        String(l.delayMs),
        String(l.jitterMs),
        String(l.loss),
      ]);
    });
    await Promise.all(bridges.map((b) => b.waitFor(/bridging/, 30_000)));

    const files = {
      capture: join(out, "router.pcapng"),
      keys: join(out, "keys.log"),
      report: join(out, "report.html"),
      png: join(out, "response-time.png"),
    };
    const capture = lab.start(topo.router, "router capture", [
      ...PDM,
      "capture",
      "-i",
      ROUTER_CAPTURE_IF,
      "-w",
      files.capture,
      "-f",
      "json",
      "ip6",
    ]);
    await capture.waitFor(/capturing on/, 30_000);
    say(`[${elapsed()}] capturing at the router on ${ROUTER_CAPTURE_IF} -> ${files.capture}`);

    // PKI: a private CA, one certificate per agent, one for the router as analyzer.
    const pki = join(out, "pki");
    await initCa(pki, { name: "pdm demo CA", days: 1, force: true });
    for (const h of DEMO_HOSTS)
      await issueCertificate(pki, join(pki, h.name), { role: h.role, addresses: [h.addr], days: 1, force: true });
    await issueCertificate(pki, join(pki, "analyzer"), {
      role: "analyzer",
      addresses: [ROUTER_CLIENT_LAN, "fd00:de:10::1"],
      days: 1,
      force: true,
    });
    say(`[${elapsed()}] private CA and 7 certificates (ECDSA P-256, files 0600) in ${pki}`);

    const agents = startAgents(lab, topo.ns, out);
    const generations: number[] = [];
    // The router, as an authorized analyzer, exports the key log at each renewal: writers
    // forget old generations, and the capture holds packets sealed under each of them.
    const exportArgs = (file: string) => [
      ...PDM,
      "keys",
      "export",
      "--writer",
      `[${host("ws").addr}]:${DEMO_PORTS.agent}`,
      "--ca",
      join(pki, "ca.crt"),
      "--cert",
      join(pki, "analyzer.crt"),
      "--key",
      join(pki, "analyzer.key"),
      "-o",
      file,
      "--force",
    ];
    const exports: Array<Promise<void>> = [];
    const keyLogs: string[] = [];
    const exportKeys = (tag: string): void => {
      const file = join(out, `keys-${tag}.log`);
      keyLogs.push(file);
      // At the lowest priority: an export during the workload must not delay the bridges.
      const p = lab.start(topo.router, `key export ${tag}`, ["nice", "-n", "19", ...exportArgs(file)]);
      exports.push(
        p.exited(60_000).then(
          () => undefined,
          () => undefined,
        ),
      ); // a failed export only loses what it would have added
    };
    agents.get("wc")!.onStderrLine((line) => {
      const m = /\bregistered\b.*\bgeneration=(\d+)/.exec(line);
      if (m) {
        generations.push(Number(m[1]));
        if (generations.length > 1) {
          say(
            `[${elapsed()}] writers renewed the keys: generation ${m[1]} registered; readers get it before it takes effect (make-before-break)`,
          );
          // once the writer server holds it (its reader-server provisioning follows the registration)
          setTimeout(() => exportKeys(`g${m[1]}`), 1000);
        }
      }
    });
    await Promise.all(
      DEMO_HOSTS.filter((h) => h.role.startsWith("reader")).map((h) =>
        agents.get(h.name)!.waitFor(/provision-installed/, 40_000),
      ),
    );
    exportKeys("g1");
    say(
      `[${elapsed()}] agents: writer client registered with the writer server (mutual TLS 1.3 + HPKE); 4 readers provisioned`,
    );
    say(
      `           shortened for the demo: key rotation period ${DEMO_ROTATION.periodSeconds} s, ${DEMO_ROTATION.keys} keys per generation (renewal every ~${DEMO_ROTATION.periodSeconds * DEMO_ROTATION.keys - 2} s); Kri rotates every ${DEMO_ROTATION.packetsPerKri} packets per flow`,
    );

    for (const h of DEMO_HOSTS.filter((x) => x.role.startsWith("reader"))) {
      try {
        lab.run(topo.ns[h.name]!, [
          ...PDM,
          "attach",
          "-i",
          HOST_IF,
          "--layout",
          "v2-protected",
          "--aead",
          DEMO_AEAD,
          "--packets-per-kri",
          String(DEMO_ROTATION.packetsPerKri),
        ]);
      } catch (e) {
        // A kernel without the eBPF features is a machine limit, not a failed run.
        const why = (e as Error).message;
        if (/lacks a BPF feature|does not support|needs root/.test(why))
          throw new DemoUnavailable(
            `This machine cannot run the eBPF programs (${why.replace(/^.*?pdm: /, "").trim()})`,
          );
        throw e;
      }
    }
    say(
      `[${elapsed()}] eBPF attached (tc clsact) on eth0 of rs1, rs2, rc1, rc2: sealing and opening PDMv2 protected (${DEMO_AEAD === "aes-128-gcm" ? "AES-128-GCM, the kernel's AES" : "ChaCha20-Poly1305: this kernel has no BPF crypto kfuncs for AES"})`,
    );
    say(
      `           each reader agent installs its host's keys as the kernel asks for them; no key leaves a host, and the router sees no PDM field in clear.`,
    );

    const servers = SERVER_APPS.map((a) =>
      lab.start(topo.ns[a.host]!, `apps on ${a.host}`, [...APPS, "serve", String(a.httpHoldMs), String(a.udpHoldMs)]),
    );
    await Promise.all(servers.map((s) => s.waitFor(/ready/, 30_000)));
    for (const a of SERVER_APPS)
      say(
        `           ${a.host}: HTTP server holds each request ${a.httpHoldMs} ms, UDP service ${a.udpHoldMs} ms, ICMPv6 echo by the kernel`,
      );
    say(
      `[${elapsed()}] workload for ${opts.duration} s: ${WORKLOADS.map((w) => `${w.client} -> ${w.server}`).join(", ")} (HTTP keep-alive every 100 ms, UDP every 100 ms, ping every 200 ms)`,
    );
    const clients = WORKLOADS.map((w) =>
      lab.start(topo.ns[w.client]!, `client ${w.client}`, [
        ...APPS,
        "client",
        host(w.server).addr,
        String(opts.duration),
      ]),
    );
    const ticker = setInterval(() => say(`[${elapsed()}] ... workload running`), 10_000);
    const codes = await Promise.all(clients.map((c) => c.exited((opts.duration + 30) * 1000))).finally(() =>
      clearInterval(ticker),
    );
    codes.forEach((code, i) => {
      if (code !== 0)
        throw new Error(`the workload client on ${WORKLOADS[i]!.client} failed: ${clients[i]!.output().stderr.trim()}`);
    });
    for (const [i, w] of WORKLOADS.entries()) {
      const r = JSON.parse(clients[i]!.output().stdout) as Record<
        "http" | "udp" | "ping",
        { sent: number; ok?: number; answered?: number }
      >;
      say(
        `           ${w.client}: HTTP ${r.http.ok}/${r.http.sent} answered, UDP ${r.udp.answered}/${r.udp.sent}, ping ${r.ping.answered}/${r.ping.sent}`,
      );
    }

    say(`\n[${elapsed()}] pdm status -i eth0 on rc1:`);
    say(indent(lab.run(topo.ns.rc1!, [...PDM, "status", "-i", HOST_IF]).trimEnd()));

    exportKeys("end");
    await Promise.all(exports);
    mergeKeyLogs(keyLogs, files.keys);
    say(
      `\n[${elapsed()}] key log exported by the router as an authorized analyzer at each renewal (mutual TLS, analyzer certificate) -> ${files.keys} (0600)`,
    );

    await lab.stop(capture, "SIGINT");
    for (const s of servers) await lab.stop(s);
    for (const [name, a] of agents) {
      await lab.stop(a);
      writeFileSync(join(out, "logs", `${name}.log`), a.output().stderr, { mode: 0o600 });
    }
    for (const b of bridges) await lab.stop(b);
    const kriFlips = await countKriRotations(files.capture);

    for (const h of DEMO_HOSTS.filter((x) => x.role.startsWith("reader")))
      lab.run(topo.ns[h.name]!, [...PDM, "detach", "-i", HOST_IF]);
    lab.teardown();
    say(`[${elapsed()}] detached and torn down: namespaces, programs, pins and processes removed`);

    // Analysis, as the authorized analyzer at the router would do it.
    const result = await analyzeCapture({ input: files.capture, keysPath: files.keys });
    say(
      `\npdm analyze -r ${files.capture} -k ${files.keys}   (flows with PDM; ${result.flows.filter((f) => f.pdmPackets === 0).length} without, such as neighbor discovery and the writers' TLS, in the report)\n`,
    );
    say(renderTable({ ...result, flows: result.flows.filter((f) => f.pdmPackets > 0) }, { width: 200 }));
    writeFileSync(files.report, renderHtmlReport(result));
    await renderChartPng(timeSeriesChart(result, "responseTimeNs"), files.png);
    say(`\nwrote ${files.report} and ${files.png}`);

    say(
      `\nduring the run: ${Math.max(0, generations.length - 1)} key renewal(s) (generations ${generations.join(", ") || "none"}); ${kriFlips} Kri rotations seen in the capture (F bit flips)`,
    );
    const ok = compareWithInjected(result, say) && generations.length > 1 && kriFlips > 0;
    if (generations.length <= 1)
      say("expected at least one key renewal during the run: make the run longer (--duration)");
    if (kriFlips === 0) say("expected at least one Kri rotation during the run: make the run longer (--duration)");
    say(
      `\n[${elapsed()}] ${ok ? "every figure within its tolerance" : "SOME FIGURES OUTSIDE THEIR TOLERANCE (see above)"}`,
    );
    return { ok, files };
  } finally {
    lab.teardown();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    process.off("exit", onExit);
  }
}

/** The union of the exported key logs (each generation once), written 0600. */
function mergeKeyLogs(parts: string[], to: string): void {
  const lines = new Set<string>();
  for (const part of parts) {
    if (!existsSync(part)) continue;
    for (const line of readFileSync(part, "utf8").split("\n")) if (line.startsWith("PDMV2_")) lines.add(line);
    rmSync(part, { force: true });
  }
  writeFileSync(to, [...lines].join("\n") + "\n", { mode: 0o600 });
  chmodSync(to, 0o600);
}

/** Writes the agents' configs and starts one agent per host. */
function startAgents(lab: Lab, ns: Record<string, string>, out: string): Map<string, LabProcess> {
  const ws = `[${host("ws").addr}]:${DEMO_PORTS.agent}`;
  const wc = `[${host("wc").addr}]:${DEMO_PORTS.agent}`;
  const agents = new Map<string, LabProcess>();
  for (const h of DEMO_HOSTS) {
    const config: Record<string, unknown> = {
      name: h.name,
      roles: [h.role],
      tls: { ca: "../pki/ca.crt", cert: `../pki/${h.name}.crt`, key: `../pki/${h.name}.key` },
    };
    if (h.role === "writer-server") {
      config.listen = ws;
      config.rotation = {
        criticality: "important",
        keys: DEMO_ROTATION.keys,
        periodSeconds: DEMO_ROTATION.periodSeconds,
      };
    }
    if (h.role === "writer-client") Object.assign(config, { listen: wc, writerServer: ws });
    // No "suites": the default one (X25519, HKDF-SHA256, AES-128-GCM), which the data path
    // seals with the kernel's AES; on a kernel without BPF crypto kfuncs, ChaCha20-Poly1305.
    if (h.role.startsWith("writer") && DEMO_AEAD === "chacha20-poly1305") config.suites = ["0020:0001:0003"];
    if (h.role === "reader-server") config.writerServer = ws;
    if (h.role === "reader-client") config.writerClient = wc;
    if (h.role.startsWith("reader")) config.datapath = { interface: HOST_IF };
    const file = join(out, "agents", `${h.name}.json`);
    writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
    chmodSync(file, 0o600);
    agents.set(h.name, lab.start(ns[h.name]!, `agent ${h.name}`, [...PDM, "agent", "-c", file]));
  }
  return agents;
}

interface Expected {
  label: string;
  flow: FlowReport | undefined;
  serverDelayMs: number;
  roundTripMs: number;
  jitterMs: number;
}

/**
 * Measured p50 against injected values. The median, not the mean: TCP's own
 * acknowledgements and the links' loss add a few samples that belong to neither.
 * Tolerances: the injected value is a floor the stacks and the delay bridge add to
 * (the bridge is late by up to ~1 ms: it waits from the capture timestamp and
 * injects through libpcap); jitter moves the round trip either way.
 */
function compareWithInjected(result: AnalysisResult, say: (l: string) => void): boolean {
  const expected: Expected[] = [];
  for (const w of WORKLOADS) {
    const c = host(w.client).addr;
    const s = host(w.server).addr;
    const link = SERVER_LINKS.find((l) => l.host === w.server)!;
    const apps = SERVER_APPS.find((a) => a.host === w.server)!;
    const pick = (transport: string, port?: number): FlowReport | undefined =>
      result.flows
        .filter(
          (f) =>
            f.transport === transport &&
            f.client === c &&
            f.server === s &&
            (port === undefined || f.serverPort === port),
        )
        .sort((a, b) => b.pdmPackets - a.pdmPackets)[0];
    const rtt = 2 * link.delayMs;
    expected.push(
      {
        label: `HTTP   ${w.client} -> ${w.server}`,
        flow: pick("tcp", DEMO_PORTS.http),
        serverDelayMs: apps.httpHoldMs,
        roundTripMs: rtt,
        jitterMs: link.jitterMs,
      },
      {
        label: `UDP    ${w.client} -> ${w.server}`,
        flow: pick("udp", DEMO_PORTS.udp),
        serverDelayMs: apps.udpHoldMs,
        roundTripMs: rtt,
        jitterMs: link.jitterMs,
      },
      {
        label: `ICMPv6 ${w.client} -> ${w.server}`,
        flow: pick("icmpv6"),
        serverDelayMs: 0,
        roundTripMs: rtt,
        jitterMs: link.jitterMs,
      },
    );
  }
  say("\nmeasured (p50) vs injected:");
  let ok = true;
  for (const e of expected) {
    const samples = e.flow?.responseTimeNs?.count ?? 0;
    say(`  ${e.label}  (${samples} samples)`);
    if (!e.flow || samples < 10) {
      say("    too few samples: the flow was not measured");
      ok = false;
      continue;
    }
    const rows: Array<[string, number | undefined, number, number, number]> = [
      ["server delay", e.flow.serverDelayNs?.p50, e.serverDelayMs * MS, -0.1 * MS, 1.5 * MS],
      ["round-trip delay", e.flow.roundTripDelayNs?.p50, e.roundTripMs * MS, -(2 * e.jitterMs + 0.1) * MS, 2 * MS],
      [
        "response time",
        e.flow.responseTimeNs?.p50,
        (e.serverDelayMs + e.roundTripMs) * MS,
        -(2 * e.jitterMs + 0.2) * MS,
        3 * MS,
      ],
    ];
    for (const [name, measured, injected, below, above] of rows) {
      const error = (measured ?? NaN) - injected;
      const within = error >= below && error <= above;
      ok &&= within;
      const sign = error >= 0 ? "+" : "-";
      say(
        `    ${name.padEnd(17)} injected ${formatDuration(injected).padStart(9)}  measured ${formatDuration(measured).padStart(9)}  error ${`${sign}${formatDuration(Math.abs(error))}`.padStart(9)}  ${within ? "ok" : `OUTSIDE [${formatDuration(below)}, +${formatDuration(above)}]`}`,
      );
    }
  }
  say(
    "  tolerance: -0.1 ms to +1.5 ms on server delay (the stacks add to the hold), ± twice the jitter and up to +2 ms on the round trip (the delay bridge is late by up to ~1 ms)",
  );
  return ok;
}

/** Kri rotations the writers made: flips of the F bit within each direction of each flow. */
async function countKriRotations(file: string): Promise<number> {
  const lastF = new Map<string, number>();
  let flips = 0;
  const source = await fileSource(file);
  try {
    await readCapture(source, (p) => {
      const at = ipv6Offset(p.linkType, p.data, p.data.length);
      if (at < 0) return;
      const parsed = parseIpv6(p.data, at);
      if (!parsed.ok) return;
      const v = parsed.value;
      if (v.pdm?.layout !== "v2-clear" && v.pdm?.layout !== "v2-protected") return; // F is in the clear in both
      const key = `${formatIpv6Address(p.data.subarray(v.srcOffset, v.srcOffset + 16))} ${formatIpv6Address(p.data.subarray(v.dstOffset, v.dstOffset + 16))} ${v.protocol} ${v.sport} ${v.dport}`;
      const f = v.pdm.fBit;
      const before = lastF.get(key);
      if (before !== undefined && before !== f) flips += 1;
      lastF.set(key, f);
    });
  } finally {
    await source.close();
  }
  return flips;
}

function indent(text: string): string {
  return text
    .split("\n")
    .map((l) => `  ${l}`)
    .join("\n");
}

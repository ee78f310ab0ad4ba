// The live demo's workload: real applications on the servers (an HTTP server and a UDP
// service, each holding requests for the plan's time; the kernel answers pings) and
// clients that use them for the run's duration.

import type { LabProcess } from "../../lab/index.ts";
import { SERVER_APPS, WORKLOADS, host } from "./plan.ts";
import type { DemoTopology } from "./topology.ts";
import { APPS, type DemoContext } from "./context.ts";

/** Starts the servers' applications; resolves once all are listening. */
export async function startServers(ctx: DemoContext, topo: DemoTopology): Promise<LabProcess[]> {
  const servers = SERVER_APPS.map((a) =>
    ctx.lab.start(topo.ns[a.host]!, `apps on ${a.host}`, [...APPS, "serve", String(a.httpHoldMs), String(a.udpHoldMs)]),
  );
  await Promise.all(servers.map((s) => s.waitFor(/ready/, 30_000)));
  for (const a of SERVER_APPS)
    ctx.say(
      `           ${a.host}: HTTP server holds each request ${a.httpHoldMs} ms, UDP service ${a.udpHoldMs} ms, ICMPv6 echo by the kernel`,
    );
  return servers;
}

/** Runs every client for `durationSec` and reports what each got answered. */
export async function driveWorkload(ctx: DemoContext, topo: DemoTopology, durationSec: number): Promise<void> {
  const { say, elapsed } = ctx;
  say(
    `[${elapsed()}] workload for ${durationSec} s: ${WORKLOADS.map((w) => `${w.client} -> ${w.server}`).join(", ")} (HTTP keep-alive every 100 ms, UDP every 100 ms, ping every 200 ms)`,
  );
  const clients = WORKLOADS.map((w) =>
    ctx.lab.start(topo.ns[w.client]!, `client ${w.client}`, [
      ...APPS,
      "client",
      host(w.server).addr,
      String(durationSec),
    ]),
  );
  const ticker = setInterval(() => say(`[${elapsed()}] ... workload running`), 10_000);
  const codes = await Promise.all(clients.map((c) => c.exited((durationSec + 30) * 1000))).finally(() =>
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
}

// The live demo's verdict: each workload flow's measured delays (p50) next to what the
// plan injected, with the error and whether it is within its tolerance.

import { formatDuration, type AnalysisResult, type FlowReport } from "../../analyzer/index.ts";
import { DEMO_PORTS, SERVER_APPS, SERVER_LINKS, WORKLOADS, host } from "./plan.ts";

const MS = 1e6;

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
export function compareWithInjected(result: AnalysisResult, say: (l: string) => void): boolean {
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

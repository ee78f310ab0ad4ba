// One conversation as the reports show it: who talked to whom, how many packets, the
// three delays' summaries and the conversation's anomalies. Also how two reports of
// the same flow combine (a live capture's flow that went idle, ended and came back).

import { endpointPorts, formatIpv6Address, transportName, type AnyLayout } from "../pdm/index.ts";
import type { Conversation, Counters, SampleSink } from "./flow-table.ts";
import type { Summary } from "./stats.ts";

export interface FlowReport {
  id: string;
  transport: string;
  client: string;
  server: string;
  clientPort: number;
  serverPort: number;
  layout: AnyLayout | undefined;
  packets: { clientToServer: number; serverToClient: number };
  pdmPackets: number;
  firstSec: number;
  lastSec: number;
  serverDelayNs: Summary | undefined;
  roundTripDelayNs: Summary | undefined;
  responseTimeNs: Summary | undefined;
  counters: Omit<Counters, "packets">;
}

/** The three delays' summaries of a flow. */
export type FlowDelays = Pick<FlowReport, "serverDelayNs" | "roundTripDelayNs" | "responseTimeNs">;

export function flowReport(c: Conversation<SampleSink>, delays: FlowDelays, startSec: number): FlowReport {
  const up = c.up.tuple;
  const { packets: _p, ...upCounters } = c.up.counters;
  const merged = { ...upCounters };
  for (const k of Object.keys(merged) as Array<keyof typeof merged>) merged[k] += c.down.counters[k];
  const { clientPort, serverPort } = endpointPorts(up);
  const transport = transportName(up.proto);
  return {
    id: `${formatIpv6Address(up.src)}.${clientPort}-${formatIpv6Address(up.dst)}.${serverPort}-${transport ?? up.proto}`,
    transport: transport ?? `proto-${up.proto}`,
    client: formatIpv6Address(up.src),
    server: formatIpv6Address(up.dst),
    clientPort,
    serverPort,
    layout: c.layout,
    packets: { clientToServer: c.up.packets, serverToClient: c.down.packets },
    pdmPackets: c.up.pdmPackets + c.down.pdmPackets,
    firstSec: startSec + c.firstNs / 1e9,
    lastSec: startSec + c.lastNs / 1e9,
    ...delays,
    counters: merged,
  };
}

/** Two reports of one flow (same id) as one: counts added, the time spans joined, `delays` for the whole. */
export function mergeFlowReports(a: FlowReport, b: FlowReport, delays: FlowDelays): FlowReport {
  const counters = { ...a.counters };
  for (const k of Object.keys(counters) as Array<keyof typeof counters>) counters[k] += b.counters[k];
  return {
    ...a,
    layout: a.layout ?? b.layout,
    packets: {
      clientToServer: a.packets.clientToServer + b.packets.clientToServer,
      serverToClient: a.packets.serverToClient + b.packets.serverToClient,
    },
    pdmPackets: a.pdmPackets + b.pdmPackets,
    firstSec: Math.min(a.firstSec, b.firstSec),
    lastSec: Math.max(a.lastSec, b.lastSec),
    ...delays,
    counters,
  };
}

// The demo's embedded default topology and everything it injects: addresses, the
// router's per-server delay, jitter and loss, the servers' hold times, the workload.
// The comparison at the end of the demo reads its expected values from here.
//
//   writer client  wc   fd00:de:c::10 ─┐                 ┌─ fd00:de:10::2  ws   writer server
//   reader client  rc1  fd00:de:c::11 ─┤   router        ├─ fd00:de:11::2  rs1  reader server (5 ms each way)
//   reader client  rc2  fd00:de:c::12 ─┘ (bridge "brc",  └─ fd00:de:12::2  rs2  reader server (15 ms each way)
//                                        capture here)
//
// Clients share one LAN with the router (a Linux bridge, where the capture is taken,
// so it sees every client-server packet once); each server has its own link, and the
// reader servers' links pass through a delay bridge (the stand-in for netem, which
// this kernel lacks: lab/delay-bridge.ts).

import type { Role } from "../../probes/agent/index.ts";
export type { Role };

export interface DemoHost {
  /** Short name: namespace suffix, certificate name, log prefix. */
  name: string;
  role: Role;
  addr: string;
  /** The router's address on this host's link: the default gateway. */
  gateway: string;
}

export interface ServerLink {
  host: string;
  /** One-way delay each direction, ms. */
  delayMs: number;
  jitterMs: number;
  /** Fraction of frames dropped each direction. */
  loss: number;
}

export interface ServerApps {
  host: string;
  /** How long the HTTP handler holds each request before answering, ms. */
  httpHoldMs: number;
  /** How long the UDP service holds each request, ms. */
  udpHoldMs: number;
}

export interface ClientWorkload {
  client: string;
  server: string;
}

export const DEMO_PORTS = { agent: 4433, http: 8080, udp: 7000 } as const;

export const DEMO_HOSTS: DemoHost[] = [
  { name: "ws", role: "writer-server", addr: "fd00:de:10::2", gateway: "fd00:de:10::1" },
  { name: "wc", role: "writer-client", addr: "fd00:de:c::10", gateway: "fd00:de:c::1" },
  { name: "rs1", role: "reader-server", addr: "fd00:de:11::2", gateway: "fd00:de:11::1" },
  { name: "rs2", role: "reader-server", addr: "fd00:de:12::2", gateway: "fd00:de:12::1" },
  { name: "rc1", role: "reader-client", addr: "fd00:de:c::11", gateway: "fd00:de:c::1" },
  { name: "rc2", role: "reader-client", addr: "fd00:de:c::12", gateway: "fd00:de:c::1" },
];

/** The router's addresses: client LAN, then one per server link (it is also the analyzer). */
export const ROUTER_CLIENT_LAN = "fd00:de:c::1";

export const SERVER_LINKS: ServerLink[] = [
  { host: "rs1", delayMs: 5, jitterMs: 0.2, loss: 0.005 },
  { host: "rs2", delayMs: 15, jitterMs: 0.5, loss: 0.005 },
];

export const SERVER_APPS: ServerApps[] = [
  { host: "rs1", httpHoldMs: 4, udpHoldMs: 1 },
  { host: "rs2", httpHoldMs: 12, udpHoldMs: 3 },
];

export const WORKLOADS: ClientWorkload[] = [
  { client: "rc1", server: "rs1" },
  { client: "rc2", server: "rs2" },
];

/**
 * Group mode (`pdm demo --group`): every host is a group member and the router runs
 * the group master; this member is removed half-way through the workload. It carries
 * no workload, so the measurement must go on across the renewal without a gap.
 */
export const GROUP_DEMO = {
  masterAddr: ROUTER_CLIENT_LAN,
  removed: "wc",
  lifeSeconds: 3,
  leadSeconds: 2,
  /**
   * The longest a workload flow may go without a measurement. Its traffic runs every
   * 100-200 ms, but a lost UDP answer waits 1 s and the next answer pairs with nothing;
   * a renewal that broke sealing or opening would stop samples for seconds.
   */
  maxGapSeconds: 2.5,
};

/**
 * Distributed mode (`pdm demo --distributed`): every host a member of the group master
 * at the router and of the Key Selection Protocol among themselves, by unicast (the
 * hosts are on different links). The master, the only server, is stopped half-way: the
 * members elect a key server (ws has the lowest priority value) and renew on their own.
 */
export const DISTRIBUTED_DEMO = {
  keyServer: "ws",
  timers: { helloMs: 1000, lifeMs: 3000, retireMs: 1000, minRekeyMs: 2000 },
};

/** Shortened periods so rotation and renewal happen within a short run. */
export const DEMO_ROTATION = {
  /** Kernel: Kri (and the F bit) rotate after this many packets per flow and direction. */
  packetsPerKri: 64,
  /** Agent: rotation period and keys per generation; a generation lives 3 x 4 s. */
  periodSeconds: 4,
  keys: 3,
};

export function host(name: string): DemoHost {
  const h = DEMO_HOSTS.find((x) => x.name === name);
  if (!h) throw new Error(`no demo host ${name}`);
  return h;
}

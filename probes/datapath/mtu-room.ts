// Route MTU room for the stamped header (wire.md section 1, datapath.md "measured").
//
// A full-size packet that gains a 16-40 byte Destination Options header no longer fits
// the link and would be dropped by the device, so `attach` lowers the MTU of every
// IPv6 unicast route through the interface by the header size (TCP then advertises
// and sends smaller segments) and `detach` puts each route back as it was.

import { ip, ipJson } from "./system.ts";

interface RouteJson {
  type?: string;
  dst: string;
  gateway?: string;
  protocol?: string;
  metric?: number;
  pref?: string;
  metrics?: Array<Record<string, number>>;
}

/** One route changed by attach: the `ip` arguments that put it back. */
export interface RouteChange {
  dst: string;
  mtu: number;
  restore: string[];
}

function routeArgs(r: RouteJson, ifname: string): string[] {
  const args = ["-6", "route", "change", r.dst];
  if (r.gateway) args.push("via", r.gateway);
  args.push("dev", ifname);
  if (r.protocol) args.push("proto", r.protocol);
  if (r.metric !== undefined) args.push("metric", String(r.metric));
  if (r.pref) args.push("pref", r.pref);
  return args;
}

function routeMtu(r: RouteJson): number | undefined {
  for (const m of r.metrics ?? []) if (typeof m.mtu === "number") return m.mtu;
  return undefined;
}

/** Lowers every unicast IPv6 route via `ifname` by `headerBytes`; returns how to undo it. */
export function makeMtuRoom(ifname: string, linkMtu: number, headerBytes: number): RouteChange[] {
  const routes = ipJson<RouteJson[]>(["-6", "route", "show", "dev", ifname, "table", "main"]);
  const changes: RouteChange[] = [];
  for (const r of routes) {
    if ((r.type && r.type !== "unicast") || r.dst.startsWith("ff")) continue;
    const before = routeMtu(r);
    const mtu = Math.max(1280, Math.min(before ?? linkMtu, linkMtu) - headerBytes);
    const args = routeArgs(r, ifname);
    ip([...args, "mtu", String(mtu)]);
    changes.push({ dst: r.dst, mtu, restore: before === undefined ? args : [...args, "mtu", String(before)] });
  }
  return changes;
}

/** Puts routes back; a route that has gone meanwhile is not an error. Returns failures. */
export function undoMtuRoom(changes: RouteChange[]): string[] {
  const failures: string[] = [];
  for (const c of changes) {
    try {
      ip(c.restore);
    } catch (err) {
      failures.push(`${c.dst}: ${(err as Error).message}`);
    }
  }
  return failures;
}

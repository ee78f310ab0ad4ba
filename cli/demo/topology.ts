// Builds the demo topology of plan.ts in network namespaces of a Lab.
//
// Every host gets one interface, eth0, and a default route via the router. The
// router forwards IPv6; its client side is a Linux bridge (brc) with the clients'
// links as ports. A reader server's link runs through a delay bridge: the router's
// own end (sN) is a veth whose peer (sNx) and the server's link (sNp) are bridged by
// lab/delay-bridge.ts, which captures on one and injects on the other after the
// delay. That bridge forwards frames exactly as captured, so segmentation and
// checksum offloads are turned off everywhere: frames must be wire-sized and
// carry complete checksums.

import { Lab } from "../../lab/index.ts";
import { DEMO_HOSTS, ROUTER_CLIENT_LAN, SERVER_LINKS, type DemoHost } from "./plan.ts";

export const HOST_IF = "eth0";
export const ROUTER_CAPTURE_IF = "brc";

export interface DemoTopology {
  router: string;
  /** Namespace of each host, by host name. */
  ns: Record<string, string>;
  /** The pairs of router interfaces each delay bridge joins, per reader server. */
  delayLinks: Array<{ host: string; left: string; right: string }>;
}

const OFFLOADS_OFF = ["tx", "off", "tso", "off", "gso", "off", "gro", "off"];

export function buildTopology(lab: Lab): DemoTopology {
  const router = lab.addNamespace("router");
  const ns: Record<string, string> = {};
  for (const h of DEMO_HOSTS) ns[h.name] = lab.addNamespace(h.name);

  const quiet = (n: string): void => {
    // No duplicate address detection: addresses usable at once, no 1-2 s wait.
    for (const k of ["all", "default"]) lab.run(n, ["sysctl", "-qw", `net.ipv6.conf.${k}.accept_dad=0`]);
    lab.ip(n, ["link", "set", "lo", "up"]);
  };
  quiet(router);
  lab.run(router, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
  lab.ip(router, ["link", "add", ROUTER_CAPTURE_IF, "type", "bridge"]);
  lab.ip(router, ["addr", "add", `${ROUTER_CLIENT_LAN}/64`, "dev", ROUTER_CAPTURE_IF, "nodad"]);

  const delayLinks: DemoTopology["delayLinks"] = [];
  const routerIfs: string[] = [ROUTER_CAPTURE_IF];
  for (const h of DEMO_HOSTS) {
    quiet(ns[h.name]!);
    const onClientLan = h.gateway === ROUTER_CLIENT_LAN;
    const peer = onClientLan ? `c-${h.name}` : `s-${h.name}p`;
    lab.ip(router, ["link", "add", peer, "type", "veth", "peer", "name", HOST_IF, "netns", ns[h.name]!]);
    routerIfs.push(peer);
    if (onClientLan) {
      lab.ip(router, ["link", "set", peer, "master", ROUTER_CAPTURE_IF]);
    } else {
      const delayed = SERVER_LINKS.some((l) => l.host === h.name);
      if (delayed) {
        // Router end sN <-> sNx, then the delay bridge joins sNx and the server's link sNp.
        const own = `s-${h.name}`;
        lab.ip(router, ["link", "add", own, "type", "veth", "peer", "name", `s-${h.name}x`]);
        routerIfs.push(own, `s-${h.name}x`);
        lab.ip(router, ["addr", "add", `${h.gateway}/64`, "dev", own, "nodad"]);
        delayLinks.push({ host: h.name, left: `s-${h.name}x`, right: peer });
      } else {
        lab.ip(router, ["addr", "add", `${h.gateway}/64`, "dev", peer, "nodad"]);
      }
    }
    configureHost(lab, ns[h.name]!, h);
  }
  for (const i of routerIfs) {
    lab.run(router, ["ethtool", "-K", i, ...OFFLOADS_OFF]);
    lab.ip(router, ["link", "set", i, "up"]);
  }
  knowNeighbors(lab, router, ns);
  return { router, ns, delayLinks };
}

/**
 * Every host and the router know each other's MACs on each link from the start:
 * neighbor discovery between namespaces sometimes loses its first exchange on this VM,
 * and its 1 s retry would then delay the first packets of the run.
 */
function knowNeighbors(lab: Lab, router: string, ns: Record<string, string>): void {
  const macOf = (n: string, ifname: string): string =>
    (JSON.parse(lab.run(n, ["ip", "-j", "link", "show", ifname])) as Array<{ address: string }>)[0]!.address;
  type End = { ns: string; ifname: string; addr: string };
  const segments: End[][] = [[{ ns: router, ifname: ROUTER_CAPTURE_IF, addr: ROUTER_CLIENT_LAN }]];
  for (const h of DEMO_HOSTS) {
    const end = { ns: ns[h.name]!, ifname: HOST_IF, addr: h.addr };
    if (h.gateway === ROUTER_CLIENT_LAN) segments[0]!.push(end);
    else {
      const delayed = SERVER_LINKS.some((l) => l.host === h.name);
      segments.push([{ ns: router, ifname: delayed ? `s-${h.name}` : `s-${h.name}p`, addr: h.gateway }, end]);
    }
  }
  for (const segment of segments) {
    const macs = segment.map((e) => macOf(e.ns, e.ifname));
    segment.forEach((x, i) =>
      segment.forEach((y, j) => {
        if (i !== j)
          lab.ip(x.ns, ["-6", "neigh", "replace", y.addr, "lladdr", macs[j]!, "dev", x.ifname, "nud", "permanent"]);
      }),
    );
  }
}

function configureHost(lab: Lab, ns: string, h: DemoHost): void {
  lab.ip(ns, ["addr", "add", `${h.addr}/64`, "dev", HOST_IF, "nodad"]);
  lab.run(ns, ["ethtool", "-K", HOST_IF, ...OFFLOADS_OFF]);
  lab.ip(ns, ["link", "set", HOST_IF, "up"]);
  lab.ip(ns, ["-6", "route", "add", "default", "via", h.gateway, "dev", HOST_IF]);
}

// The Key Selection Protocol over UDP (groups.md 2): IPv6 multicast on one interface
// (a group in ff02::/16, hop limit 1, loopback off, a fixed port), or a unicast peer
// list for routed groups.
//
// Two sockets share the port: one bound to the wildcard address receives the group's
// datagrams; one bound to this host's own address sends, so that the source address
// receivers see (and put in the ICV's pseudo-header) is the one this host signs with,
// and receives what peers send to that address in unicast mode.

import dgram from "node:dgram";
import { parseIpv6Address } from "../../pdm/index.ts";
import type { KspGuard, Route } from "./guard.ts";
import type { KspMessage } from "./mkpdu.ts";

export const KSP_PORT = 4530;
/** The default group: link-local scope ("PD" "KS" in its last two groups). */
export const KSP_GROUP = "ff02::5044:4b53";

export interface KspTransportOptions {
  /** The interface the group lives on. */
  interface: string;
  /** This host's own IPv6 address on it: the source of every message. */
  address: string;
  port?: number;
  group?: string;
  /** Unicast peers instead of multicast, for routed groups: "addr", or "[addr]:port" for a port of its own. */
  peers?: string[];
}

/** A unicast peer: its address and port (the group's port unless it names one). */
function peerOf(text: string, port: number): { address: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text);
  return m ? { address: m[1]!, port: Number(m[2]) } : { address: text, port };
}

export class KspUdpTransport {
  private constructor(
    private readonly o: Required<Omit<KspTransportOptions, "peers">> & { peers: string[] | undefined },
    private readonly rx: dgram.Socket | undefined,
    private readonly tx: dgram.Socket,
  ) {}

  static async open(
    options: KspTransportOptions,
    deliver: (bytes: Buffer, route: Route) => void,
  ): Promise<KspUdpTransport> {
    const o = {
      interface: options.interface,
      address: options.address,
      port: options.port ?? KSP_PORT,
      group: options.group ?? KSP_GROUP,
      peers: options.peers,
    };
    const own = parseIpv6Address(o.address);
    const bind = (s: dgram.Socket, address: string): Promise<void> =>
      new Promise((resolve, reject) => {
        s.once("error", reject);
        s.bind({ port: o.port, address, exclusive: true }, () => {
          s.off("error", reject);
          resolve();
        });
      });
    const receive = (dst: Uint8Array) => (bytes: Buffer, rinfo: dgram.RemoteInfo) => {
      let src: Uint8Array;
      try {
        src = parseIpv6Address(rinfo.address.replace(/%.*$/, ""));
      } catch {
        return;
      }
      deliver(bytes, { src, srcPort: rinfo.port, dst, dstPort: o.port });
    };
    const tx = dgram.createSocket({ type: "udp6", reuseAddr: true, ipv6Only: true });
    tx.on("message", receive(own));
    tx.on("error", () => undefined); // a send to a peer that is gone: the protocol's hellos retry
    await bind(tx, o.address);
    let rx: dgram.Socket | undefined;
    if (!o.peers) {
      tx.setMulticastInterface(`::%${o.interface}`);
      tx.setMulticastTTL(1);
      tx.setMulticastLoopback(false);
      rx = dgram.createSocket({ type: "udp6", reuseAddr: true, ipv6Only: true });
      rx.on("message", receive(parseIpv6Address(o.group)));
      rx.on("error", () => undefined);
      await bind(rx, "::");
      rx.addMembership(o.group, `::%${o.interface}`);
    }
    return new KspUdpTransport(o, rx, tx);
  }

  /** Sign `m` for each destination (the group, or every peer) and send it. */
  send(m: KspMessage, guard: KspGuard): void {
    const src = parseIpv6Address(this.o.address);
    const destinations = this.o.peers
      ? this.o.peers.map((p) => peerOf(p, this.o.port))
      : [{ address: this.o.group, port: this.o.port }];
    for (const d of destinations) {
      const route: Route = { src, srcPort: this.o.port, dst: parseIpv6Address(d.address), dstPort: d.port };
      const target = this.o.peers ? d.address : `${d.address}%${this.o.interface}`;
      this.tx.send(guard.sign(m, route), d.port, target);
    }
  }

  close(): void {
    this.rx?.close();
    this.tx.close();
  }
}

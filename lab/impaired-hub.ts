// A user-space Ethernet switch with impairments: the LAN of the group tests when the
// kernel has no netem. A frame captured on one port leaves by the port that learned
// its destination MAC (every other port for multicast and unknown destinations), each
// copy after its own random delay in [delayMs, delayMs + jitterMs], so frames overtake
// one another (reordering); a `loss` fraction of frames is dropped. The datagrams sent
// to one UDP port (the Key Selection Protocol's) can also be replayed later, or
// tampered with: one payload byte flipped and the UDP checksum made right again, so
// that it is the receiver's ICV that refuses the datagram, not its kernel.

import { BpfError } from "../probes/datapath/index.ts";
import { xorshift32 } from "./xorshift.ts";
import { openPcapPort, type PcapPort } from "./pcap-port.ts";

export interface ImpairedHubOptions {
  ports: string[];
  delayMs?: number;
  /** Each copy waits up to this much more, at random: frames reorder. */
  jitterMs?: number;
  /** Fraction of frames dropped, 0..1. */
  loss?: number;
  seed?: number;
  /** The UDP destination port whose datagrams `replayEvery` and `tamperEvery` count. */
  udpPort?: number;
  /** Every Nth datagram to `udpPort` is sent again `replayAfterMs` later (default 400). */
  replayEvery?: number;
  replayAfterMs?: number;
  /** Every Nth datagram to `udpPort` has one payload byte flipped. */
  tamperEvery?: number;
}

export interface ImpairedHubStats {
  forwarded: number;
  dropped: number;
  /** Copies sent out before one that arrived earlier. */
  reordered: number;
  replayed: number;
  tampered: number;
}

export interface ImpairedHub {
  stats(): ImpairedHubStats;
  close(): void;
}

interface Pending {
  dueMs: number;
  frame: Buffer;
  out: PcapPort;
}

const ETH_HLEN = 14;
const IPV6_HLEN = 40;
const NEXTHDR_UDP = 17;
/** Extension headers a datagram may carry before UDP: hop-by-hop, routing, destination options. */
const EXTENSION_HEADERS = new Set([0, 43, 60]);

/** Where the UDP header of an IPv6 frame is, or -1. */
export function udpOffsetOf(frame: Buffer): number {
  if (frame.length < ETH_HLEN + IPV6_HLEN + 8 || frame.readUInt16BE(12) !== 0x86dd) return -1;
  let next = frame[ETH_HLEN + 6]!;
  let at = ETH_HLEN + IPV6_HLEN;
  while (EXTENSION_HEADERS.has(next)) {
    if (at + 8 > frame.length) return -1;
    next = frame[at]!;
    at += (frame[at + 1]! + 1) * 8;
  }
  return next === NEXTHDR_UDP && at + 8 <= frame.length ? at : -1;
}

/** The UDP checksum over the IPv6 pseudo-header (RFC 8200 8.1), written into the frame. */
export function fixUdpChecksum(frame: Buffer, udp: number): void {
  const length = frame.readUInt16BE(udp + 4);
  frame.writeUInt16BE(0, udp + 6);
  let sum = 0;
  for (let i = ETH_HLEN + 8; i < ETH_HLEN + 40; i += 2) sum += frame.readUInt16BE(i); // source, destination
  sum += length + NEXTHDR_UDP;
  const end = Math.min(udp + length, frame.length);
  for (let i = udp; i < end; i += 2) sum += i + 1 < end ? frame.readUInt16BE(i) : frame[i]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  frame.writeUInt16BE(~sum & 0xffff || 0xffff, udp + 6);
}

const isGroupAddress = (frame: Buffer): boolean => (frame[0]! & 1) === 1;
const macKey = (frame: Buffer, at: number): string => frame.toString("hex", at, at + 6);

export function startImpairedHub(opts: ImpairedHubOptions): ImpairedHub {
  const random = xorshift32(opts.seed ?? 7);
  const stats: ImpairedHubStats = { forwarded: 0, dropped: 0, reordered: 0, replayed: 0, tampered: 0 };
  const learned = new Map<string, PcapPort>();
  const queue: Pending[] = []; // by due time
  let datagrams = 0;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const send = (): void => {
    timer = undefined;
    const now = Date.now();
    while (queue.length && queue[0]!.dueMs <= now) {
      const p = queue.shift()!;
      try {
        p.out.inject(p.frame);
        stats.forwarded += 1;
      } catch {
        stats.dropped += 1;
      }
    }
    if (queue.length && !closed) timer = setTimeout(send, Math.max(1, queue[0]!.dueMs - now));
  };
  const schedule = (frame: Buffer, out: PcapPort, dueMs: number): void => {
    let i = queue.length;
    while (i > 0 && queue[i - 1]!.dueMs > dueMs) i -= 1;
    if (i < queue.length) stats.reordered += 1;
    queue.splice(i, 0, { dueMs, frame, out });
    if (i === 0) {
      if (timer) clearTimeout(timer);
      timer = setTimeout(send, Math.max(1, dueMs - Date.now()));
    }
  };

  const ports: PcapPort[] = [];
  const arrived = (from: PcapPort, frame: Buffer, tsMs: number): void => {
    if (closed || frame.length < ETH_HLEN) return;
    learned.set(macKey(frame, 6), from);
    if (opts.loss && random() < opts.loss) {
      stats.dropped += 1;
      return;
    }
    let replay = false;
    if (opts.udpPort !== undefined) {
      const udp = udpOffsetOf(frame);
      if (udp >= 0 && frame.readUInt16BE(udp + 2) === opts.udpPort) {
        datagrams += 1;
        if (opts.tamperEvery && datagrams % opts.tamperEvery === 0 && udp + 8 + 24 < frame.length) {
          frame[udp + 8 + 24]! ^= 0x10; // inside the basic parameter set
          fixUdpChecksum(frame, udp);
          stats.tampered += 1;
        } else if (opts.replayEvery && datagrams % opts.replayEvery === 0) {
          replay = true;
        }
      }
    }
    const known = isGroupAddress(frame) ? undefined : learned.get(macKey(frame, 0));
    const outs = known ? (known === from ? [] : [known]) : ports.filter((p) => p !== from);
    const base = Math.max(tsMs, Date.now() - 50) + (opts.delayMs ?? 0);
    for (const out of outs) {
      schedule(frame, out, base + random() * (opts.jitterMs ?? 0));
      if (replay) schedule(frame, out, base + (opts.replayAfterMs ?? 400));
    }
    if (replay) stats.replayed += 1;
  };
  try {
    for (const name of opts.ports) {
      const port: PcapPort = openPcapPort(name, (frame, tsMs) => arrived(port, frame, tsMs));
      ports.push(port);
    }
  } catch (err) {
    for (const p of ports) p.close();
    throw new BpfError(`Cannot open the hub's ports ${opts.ports.join(", ")}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return {
    stats: () => ({ ...stats }),
    close: () => {
      closed = true;
      if (timer) clearTimeout(timer);
      for (const p of ports) p.close();
    },
  };
}

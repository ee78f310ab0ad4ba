// Live packet capture through libpcap (the `pcap` package, node_pcap), delivering
// frames in the analyzer's CapturedPacket shape. Settings that matter under bursts
// (datapath issue notes): a short snap length (headers and PDM fit in 256 bytes),
// a large kernel buffer, a non-zero buffer timeout, and draining every packet that
// is ready on each wake-up instead of node_pcap's one packet per poll.

import { createRequire } from "node:module";
import type { CapturedPacket } from "../../pdm/index.ts";
import { LINKTYPE } from "../../pdm/index.ts";
import { BpfError } from "../datapath/index.ts";

interface PcapBinding {
  warningHandler: (message: string) => void;
  createSession(
    device: string,
    options: {
      filter?: string;
      buffer_size?: number;
      snap_length?: number;
      buffer_timeout?: number;
      promiscuous?: boolean;
    },
  ): PcapSessionLike;
}

interface PcapSessionLike {
  link_type: string;
  buf: Buffer;
  header: Buffer;
  session: { dispatch(buf: Buffer, header: Buffer): number; read_callback: () => void };
  on(event: "packet", cb: (p: { buf: Buffer; header: Buffer; link_type: string }) => void): void;
  close(): void;
  stats(): { ps_recv: number; ps_drop: number; ps_ifdrop: number };
}

const LINK_TYPES: Record<string, number> = {
  LINKTYPE_NULL: LINKTYPE.null,
  LINKTYPE_ETHERNET: LINKTYPE.ethernet,
  LINKTYPE_RAW: LINKTYPE.raw,
  LINKTYPE_LINUX_SLL: LINKTYPE.linuxSll,
};

export interface LiveCaptureOptions {
  ifname: string;
  /** BPF filter expression (tcpdump syntax); default "ip6". */
  filter?: string;
  snapLength?: number;
  bufferBytes?: number;
  /** Milliseconds libpcap may hold packets before waking us. */
  bufferTimeoutMs?: number;
}

export interface LiveCapture {
  readonly linkType: number;
  readonly snapLength: number;
  /** Kernel-side counters: received by the filter, dropped for lack of buffer. */
  stats(): { received: number; dropped: number; ifDropped: number };
  close(): void;
}

/** Starts capturing; `onPacket` gets each frame (a view valid during the call). */
export function openLiveCapture(options: LiveCaptureOptions, onPacket: (p: CapturedPacket) => void): LiveCapture {
  let pcap: PcapBinding;
  try {
    pcap = createRequire(import.meta.url)("pcap") as PcapBinding;
  } catch (err) {
    throw new BpfError("Live capture needs the pcap package built against libpcap: run `bash scripts/setup.sh`.", {
      cause: err,
    });
  }
  // libpcap's warnings go to stderr, minus the one about IPv4 on IPv6-only links.
  pcap.warningHandler = (message: string) => {
    if (!/no IPv4 address assigned|SIOCGIFADDR/.test(message)) process.stderr.write(`pdm capture: ${message.trim()}\n`);
  };
  const snapLength = options.snapLength ?? 256;
  let session: PcapSessionLike;
  try {
    session = pcap.createSession(options.ifname, {
      filter: options.filter ?? "ip6",
      snap_length: snapLength,
      buffer_size: options.bufferBytes ?? 32 * 1024 * 1024,
      buffer_timeout: options.bufferTimeoutMs ?? 10,
      promiscuous: false,
    });
  } catch (err) {
    const msg = (err as Error).message ?? String(err);
    if (/permission|not permitted/i.test(msg))
      throw new BpfError(`Capturing on ${options.ifname} needs root (CAP_NET_RAW): run it with sudo.`, { cause: err });
    if (/no such device|doesn't exist/i.test(msg))
      throw new BpfError(`No network interface named ${options.ifname} in this network namespace.`, { cause: err });
    if (/syntax|filter/i.test(msg))
      throw new BpfError(`Bad capture filter "${options.filter}": ${msg}`, { cause: err });
    throw new BpfError(`Cannot capture on ${options.ifname}: ${msg}`, { cause: err });
  }
  const linkType = LINK_TYPES[session.link_type];
  if (linkType === undefined) {
    session.close();
    throw new BpfError(
      `Capturing on ${options.ifname} gives link type ${session.link_type}, which the analyzer does not read.`,
    );
  }
  let number = 0;
  const packet: CapturedPacket & { data: Buffer } = {
    data: Buffer.alloc(0),
    buffer: Buffer.alloc(0),
    start: 0,
    end: 0,
    originalLength: 0,
    tsSec: 0,
    tsNsec: 0,
    linkType,
    interfaceId: 0,
    number: 0,
  };
  session.on("packet", (raw) => {
    const h = raw.header;
    const caplen = h.readUInt32LE(8);
    packet.data = raw.buf.subarray(0, Math.min(caplen, raw.buf.length));
    packet.buffer = raw.buf;
    packet.end = packet.data.length;
    packet.originalLength = h.readUInt32LE(12);
    packet.tsSec = h.readUInt32LE(0);
    packet.tsNsec = h.readUInt32LE(4) * 1000;
    packet.number = ++number;
    onPacket(packet);
  });
  // node_pcap dispatches one packet per wake-up; drain everything that is ready.
  const inner = session.session;
  inner.read_callback = () => {
    while (inner.dispatch(session.buf, session.header) > 0) {
      // each dispatch emitted one "packet" event
    }
  };
  let closed = false;
  return {
    linkType,
    snapLength,
    stats: () => {
      const s = session.stats();
      return { received: s.ps_recv, dropped: s.ps_drop, ifDropped: s.ps_ifdrop };
    },
    close: () => {
      if (closed) return;
      closed = true;
      session.close();
    },
  };
}

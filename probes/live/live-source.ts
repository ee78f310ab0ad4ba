// The two live sources behind one interface: libpcap (any interface, packets from any
// PDM stamper, which can also be written to a file) and the eBPF data path's ring
// buffer (records of the packets the kernel stamped and read: no copies). A consumer
// handles what arrives the same way whichever the host has.

import { emptyPdmRecord, type CapturedPacket, type PdmRecord } from "../../pdm/index.ts";
import { EVENT } from "../datapath/index.ts";
import { eventKtimeNs, eventToRecord, openEventStream } from "./kernel-events.ts";
import { openLiveCapture } from "./pcap-source.ts";

export type LiveSourceKind = "pcap" | "ebpf";

export interface LiveSourceOptions {
  kind: LiveSourceKind;
  ifname: string;
  /** pcap: a filter in tcpdump syntax (default "ip6"). */
  filter?: string;
  /** pcap: bytes kept per packet. */
  snapLength?: number;
}

export interface LiveHandlers {
  /** pcap: one captured packet. */
  packet(p: CapturedPacket): void;
  /** ebpf: one measurement record; `startSec` is the wall-clock second its time 0 stands for. */
  record(r: PdmRecord, startSec: number): void;
  /** More are wanted (a packet count not reached yet). */
  wanted(): boolean;
}

export interface LiveSource {
  readonly kind: LiveSourceKind;
  /** pcap: the link type and snap length of the packets delivered (for writing them). */
  readonly linkType: number | undefined;
  readonly snapLength: number | undefined;
  /** Stop delivering; what the kernel dropped for want of buffer. */
  close(): { dropped: number };
}

export function openLiveSource(options: LiveSourceOptions, handlers: LiveHandlers): LiveSource {
  return options.kind === "pcap" ? openPcap(options, handlers) : openEbpf(options.ifname, handlers);
}

function openPcap(options: LiveSourceOptions, handlers: LiveHandlers): LiveSource {
  const capture = openLiveCapture(
    { ifname: options.ifname, filter: options.filter, snapLength: options.snapLength },
    (p) => {
      if (handlers.wanted()) handlers.packet(p);
    },
  );
  return {
    kind: "pcap",
    linkType: capture.linkType,
    snapLength: capture.snapLength,
    close: () => {
      const s = capture.stats();
      capture.close();
      return { dropped: s.dropped + s.ifDropped };
    },
  };
}

function openEbpf(ifname: string, handlers: LiveHandlers): LiveSource {
  let originNs: number | undefined;
  let delivered = 0;
  // One record object, refilled for each event: the consumer copies what it keeps.
  const record = emptyPdmRecord();
  const stream = openEventStream(ifname, (batch, count) => {
    for (let i = 0; i < count && handlers.wanted(); i++) {
      const at = i * EVENT.size;
      if (originNs === undefined) originNs = eventKtimeNs(batch, at);
      if (!eventToRecord(batch, at, record, originNs, delivered + 1)) continue;
      delivered += 1;
      // ktime is CLOCK_MONOTONIC, as is hrtime: anchor the first record to wall time.
      const startSec = Date.now() / 1e3 - (Number(process.hrtime.bigint()) - originNs) / 1e9;
      handlers.record(record, startSec);
    }
  });
  return {
    kind: "ebpf",
    linkType: undefined,
    snapLength: undefined,
    close: () => {
      stream.drain();
      stream.close();
      return { dropped: 0 };
    },
  };
}

/**
 * A live session's end: the first of stop() (a count reached), `durationSec` elapsed,
 * or Ctrl-C / SIGTERM. Its timer and signal handlers go once it ends.
 */
export function untilStopped(durationSec?: number): { ended: Promise<void>; stop(): void } {
  let stop: () => void = () => {};
  const ended = new Promise<void>((resolve) => {
    const timer = durationSec ? setTimeout(() => stop(), durationSec * 1000) : undefined;
    stop = () => {
      if (timer) clearTimeout(timer);
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  return { ended, stop: () => stop() };
}

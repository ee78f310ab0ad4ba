// Live sources of PDM packets on this host: libpcap (any interface, any PDM stamper)
// and the eBPF data path's ring buffer of stamped and read packets. Only this file is
// imported from outside live/.

export { decodeEvent, eventOption, eventToRecord, eventKtimeNs, openEventStream } from "./kernel-events.ts";
export type { KernelEvent, EventStream } from "./kernel-events.ts";
export { openLiveCapture } from "./pcap-source.ts";
export type { LiveCapture, LiveCaptureOptions } from "./pcap-source.ts";
export { openLiveSource, untilStopped } from "./live-source.ts";
export type { LiveHandlers, LiveSource, LiveSourceKind, LiveSourceOptions } from "./live-source.ts";

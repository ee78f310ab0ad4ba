// The eBPF capture: ring-buffer records (struct pdm_event) from the attached programs,
// decoded and turned into the analyzer's PdmRecords, so live per-flow delays come
// from the same metrics code as captures, without copying packets to user space.

import { join } from "node:path";
import { EPOCH_MASK, type AnyPdmOption, type PdmRecord } from "../../pdm/index.ts";
import {
  EVENT,
  PDM_EV,
  PDM_EVF_GSO,
  PDM_LAYOUT,
  explainNativeError,
  PIN,
  pinDir,
  nativeBpf,
} from "../datapath/index.ts";

export type KernelEventType = keyof typeof PDM_EV;
const EVENT_TYPE_NAME = new Map<number, KernelEventType>(
  Object.entries(PDM_EV).map(([k, v]) => [v, k as KernelEventType]),
);

const O = Object.fromEntries(EVENT.fields.map((f) => [f.name, f.offset])) as Record<string, number>;
const off = (name: string): number => {
  const v = O[name];
  if (v === undefined) throw new Error(`pdm_event has no ${name}`);
  return v;
};
const AT = {
  ktime: off("ktime_ns"),
  src: off("src"),
  dst: off("dst"),
  sport: off("src_port"),
  dport: off("dst_port"),
  psntp: off("psntp"),
  psnlr: off("psnlr"),
  dtlr: off("delta_tlr"),
  dtls: off("delta_tls"),
  rnf: off("random_f"),
  stlr: off("scale_dtlr"),
  stls: off("scale_dtls"),
  gp: off("global_pointer"),
  kri: off("kri"),
  ifindex: off("ifindex"),
  type: off("type"),
  layout: off("layout"),
  proto: off("proto"),
  flags: off("flags"),
};

export interface KernelEvent {
  type: KernelEventType | "unknown";
  ktimeNs: number;
  src: Uint8Array;
  dst: Uint8Array;
  srcPort: number;
  dstPort: number;
  proto: number;
  layout: number;
  option: AnyPdmOption | undefined;
  kri: number;
  ifindex: number;
  gso: boolean;
}

/** The PDM option a stamped/read event describes (as the clear layout, for a sealed or opened one). */
export function eventOption(b: Buffer, at: number): AnyPdmOption | undefined {
  const times = {
    scaleDtlr: b[at + AT.stlr]!,
    scaleDtls: b[at + AT.stls]!,
    psnTp: b.readUInt32LE(at + AT.psntp),
    psnLr: b.readUInt32LE(at + AT.psnlr),
    deltaTlr: b.readUInt16LE(at + AT.dtlr),
    deltaTls: b.readUInt16LE(at + AT.dtls),
  };
  const layout = b[at + AT.layout];
  if (layout === PDM_LAYOUT.rfc8250) return { layout: "rfc8250", ...times };
  // The later drafts' clear layouts: 32-bit sequence numbers, the Epoch in `kri`.
  if (
    layout === PDM_LAYOUT["v2-draft09"] ||
    layout === PDM_LAYOUT["v2-draft15"] ||
    layout === PDM_LAYOUT["v2-draft15-protected"]
  ) {
    return {
      layout: layout === PDM_LAYOUT["v2-draft09"] ? "v2-draft09" : "v2-draft15",
      ...times,
      epoch: b.readUInt32LE(at + AT.kri) & EPOCH_MASK,
      globalPointer: b.readUInt32LE(at + AT.gp),
    };
  }
  // A protected option's event carries the fields the kernel sealed or opened (and
  // verified): the clear layout's shape. eventToRecord notes the wire layout.
  if (layout === PDM_LAYOUT["v2-clear"] || layout === PDM_LAYOUT["v2-protected"]) {
    const rnf = b.readUInt16LE(at + AT.rnf);
    return {
      layout: "v2-clear",
      ...times,
      randomNumber: rnf >>> 1,
      fBit: (rnf & 1) as 0 | 1,
      globalPointer: b.readUInt32LE(at + AT.gp),
    };
  }
  return undefined;
}

export function decodeEvent(b: Buffer, at = 0): KernelEvent {
  const type = EVENT_TYPE_NAME.get(b[at + AT.type]!) ?? "unknown";
  return {
    type,
    ktimeNs: Number(b.readBigUInt64LE(at + AT.ktime)),
    src: b.subarray(at + AT.src, at + AT.src + 16),
    dst: b.subarray(at + AT.dst, at + AT.dst + 16),
    srcPort: b.readUInt16LE(at + AT.sport),
    dstPort: b.readUInt16LE(at + AT.dport),
    proto: b[at + AT.proto]!,
    layout: b[at + AT.layout]!,
    option: type === "stamped" || type === "read" ? eventOption(b, at) : undefined,
    kri: b.readUInt32LE(at + AT.kri),
    ifindex: b.readUInt32LE(at + AT.ifindex),
    gso: (b[at + AT.flags]! & PDM_EVF_GSO) !== 0,
  };
}

/**
 * Fills `record` from the event at `at` if it is a stamped/read packet; false for
 * other events. `originNs` is the monotonic time that becomes 0 in the record.
 */
export function eventToRecord(b: Buffer, at: number, record: PdmRecord, originNs: number, number: number): boolean {
  const type = b[at + AT.type];
  if (type !== PDM_EV.stamped && type !== PDM_EV.read) return false;
  record.timeNs = Number(b.readBigUInt64LE(at + AT.ktime)) - originNs;
  record.addresses = b;
  record.srcOffset = at + AT.src;
  record.dstOffset = at + AT.dst;
  record.sport = b.readUInt16LE(at + AT.sport);
  record.dport = b.readUInt16LE(at + AT.dport);
  record.proto = b[at + AT.proto]!;
  record.pdm = eventOption(b, at);
  const wire = b[at + AT.layout];
  record.wireLayout =
    wire === PDM_LAYOUT["v2-protected"]
      ? "v2-protected"
      : wire === PDM_LAYOUT["v2-draft15-protected"]
        ? "v2-draft15-protected"
        : undefined;
  record.pdmError = undefined;
  record.number = number;
  return true;
}

export const eventKtimeNs = (b: Buffer, at: number): number => Number(b.readBigUInt64LE(at + AT.ktime));

export interface EventStream {
  /** Delivers what is waiting now. */
  drain(): number;
  close(): void;
}

/** Streams the ring-buffer records of an attached interface to `onBatch`. */
export function openEventStream(ifname: string, onBatch: (records: Buffer, count: number) => void): EventStream {
  const native = nativeBpf();
  const path = join(pinDir(ifname), PIN.events);
  let fd: number;
  try {
    fd = native.objGet(path);
  } catch (err) {
    throw explainNativeError(`opening the event ring buffer of ${ifname} (is it attached?)`, err);
  }
  const rb = new native.RingBuffer(fd, EVENT.size, (records, count) => onBatch(records, count));
  return {
    drain: () => rb.consume(),
    close: () => {
      rb.close();
      native.closeFd(fd);
    },
  };
}

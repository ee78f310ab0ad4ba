// Reads the pinned maps of an attached interface: counters (summed over CPUs), flows,
// Global Pointers, program run statistics. What `pdm status` prints.

import { join } from "node:path";
import { decodeDeltaNs, formatIpv6Address } from "../../pdm/index.ts";
import {
  COUNTER_NAMES,
  COUNTERS,
  FLOW_KEY,
  FLOW_STATE,
  isWideLayout,
  PDM_FLOW_HAS_RECEIVED,
  type CounterName,
} from "./abi.ts";
import { BpfError, explainNativeError } from "./errors.ts";
import { PIN, pinDir, readAttachState, type AttachState } from "./attach.ts";
import { nativeBpf, type NativeBpf, type ProgInfo } from "./native.ts";

export interface FlowStatus {
  local: string;
  remote: string;
  localPort: number;
  remotePort: number;
  proto: number;
  /** PSNTP the next stamped packet will carry. */
  psnNext: number;
  psnLastReceived: number;
  kri: number;
  peerKri: number;
  txPackets: number;
  rxPackets: number;
  gsoRepeats: number;
  /** The peer's last DeltaTLR / DeltaTLS as read from its packets. */
  peerDeltaTlrNs: number | undefined;
  peerDeltaTlsNs: number | undefined;
  /** Monotonic-clock times (ns) of the flow's first packet, last send, last receipt. */
  firstNs: number;
  lastSendNs: number;
  lastRecvNs: number;
}

export interface InterfaceStatus {
  ifname: string;
  state: AttachState | undefined;
  counters: Record<CounterName, number>;
  flows: FlowStatus[];
  globalPointers: { linkLocal: number; global: number };
  programs: { egress: ProgInfo; ingress: ProgInfo };
}

function withPin<T>(native: NativeBpf, path: string, use: (fd: number) => T): T {
  let fd: number;
  try {
    fd = native.objGet(path);
  } catch (err) {
    throw explainNativeError(`opening ${path}`, err);
  }
  try {
    return use(fd);
  } finally {
    native.closeFd(fd);
  }
}

/** Per-CPU counters summed. Values of per-CPU maps come as one 8-byte-aligned slot per possible CPU. */
export function readCounters(native: NativeBpf, dir: string): Record<CounterName, number> {
  return withPin(native, join(dir, PIN.counters), (fd) => sumCounters(native, fd));
}

/** The counters map (by fd) summed over CPUs. */
export function sumCounters(native: NativeBpf, fd: number): Record<CounterName, number> {
  const cpus = native.numPossibleCpus();
  const slot = Math.ceil(COUNTERS.size / 8) * 8;
  const value = Buffer.alloc(slot * cpus);
  native.mapLookup(fd, Buffer.alloc(4), value);
  const sums = Object.fromEntries(COUNTER_NAMES.map((n) => [n, 0])) as Record<CounterName, number>;
  for (let cpu = 0; cpu < cpus; cpu++) {
    for (const name of COUNTER_NAMES) sums[name] += Number(value.readBigUInt64LE(cpu * slot + COUNTERS.offset(name)));
  }
  return sums;
}

/** The flows of an attachment; `wide`: its layout counts sequence numbers in 32 bits, not 16. */
export function readFlows(native: NativeBpf, dir: string, limit = Infinity, wide = false): FlowStatus[] {
  const psnMask = wide ? 0xffff_ffff : 0xffff;
  return withPin(native, join(dir, PIN.flows), (fd) => {
    const flows: FlowStatus[] = [];
    let key: Buffer | null = null;
    const next = Buffer.alloc(FLOW_KEY.size);
    const value = Buffer.alloc(FLOW_STATE.size);
    while (flows.length < limit && native.mapNextKey(fd, key, next)) {
      key = Buffer.from(next);
      if (!native.mapLookup(fd, key, value)) continue; // deleted meanwhile
      const u64 = (name: string): number => Number(value.readBigUInt64LE(FLOW_STATE.offset(name)));
      const received = (value.readUInt16LE(FLOW_STATE.offset("flags")) & PDM_FLOW_HAS_RECEIVED) !== 0;
      flows.push({
        local: formatIpv6Address(key.subarray(FLOW_KEY.offset("local"), FLOW_KEY.offset("local") + 16)),
        remote: formatIpv6Address(key.subarray(FLOW_KEY.offset("remote"), FLOW_KEY.offset("remote") + 16)),
        localPort: key.readUInt16LE(FLOW_KEY.offset("local_port")),
        remotePort: key.readUInt16LE(FLOW_KEY.offset("remote_port")),
        proto: key.readUInt8(FLOW_KEY.offset("proto")),
        psnNext: (value.readUInt32LE(FLOW_STATE.offset("psn_next")) & psnMask) >>> 0,
        psnLastReceived: value.readUInt32LE(FLOW_STATE.offset("psn_lr")),
        kri: value.readUInt32LE(FLOW_STATE.offset("kri")),
        peerKri: value.readUInt32LE(FLOW_STATE.offset("peer_kri")),
        txPackets: u64("tx_packets"),
        rxPackets: u64("rx_packets"),
        gsoRepeats: u64("gso_repeats"),
        peerDeltaTlrNs: received
          ? decodeDeltaNs(
              value.readUInt16LE(FLOW_STATE.offset("last_rx_delta_tlr")),
              value.readUInt8(FLOW_STATE.offset("last_rx_scale_dtlr")),
            )
          : undefined,
        peerDeltaTlsNs: received
          ? decodeDeltaNs(
              value.readUInt16LE(FLOW_STATE.offset("last_rx_delta_tls")),
              value.readUInt8(FLOW_STATE.offset("last_rx_scale_dtls")),
            )
          : undefined,
        firstNs: u64("first_ns"),
        lastSendNs: u64("last_send_ns"),
        lastRecvNs: u64("last_recv_ns"),
      });
    }
    return flows;
  });
}

export function readStatus(ifname: string, opts: { flowLimit?: number } = {}): InterfaceStatus {
  const native = nativeBpf();
  const dir = pinDir(ifname);
  const state = readAttachState(ifname);
  try {
    native.closeFd(native.objGet(join(dir, PIN.counters)));
  } catch {
    throw new BpfError(`Nothing is attached to ${ifname}: run \`pdm attach -i ${ifname}\` first.`);
  }
  const gp = withPin(native, join(dir, PIN.globalPointers), (fd) => {
    const v = Buffer.alloc(4);
    const read = (i: number): number => {
      const k = Buffer.alloc(4);
      k.writeUInt32LE(i);
      return native.mapLookup(fd, k, v) ? v.readUInt32LE(0) : 0;
    };
    return { linkLocal: read(0), global: read(1) };
  });
  return {
    ifname,
    state,
    counters: readCounters(native, dir),
    flows: readFlows(native, dir, opts.flowLimit, state ? isWideLayout(state.options.layout) : false),
    globalPointers: gp,
    programs: {
      egress: withPin(native, join(dir, PIN.egress), (fd) => native.progInfo(fd)),
      ingress: withPin(native, join(dir, PIN.ingress), (fd) => native.progInfo(fd)),
    },
  };
}

// A user-space Ethernet bridge that delays frames: the stand-in for `tc qdisc netem`
// on kernels built without it (this machine's has no sch_netem, sch_fq or sch_etf).
//
// It runs in a router namespace between two veth ends, captures every frame arriving
// on one side (libpcap, filtered on the far host's source MAC so its own injections are
// not captured again), and injects it on the other side once `delay` (+ jitter) has
// passed since the kernel's capture timestamp, dropping a `loss` fraction. Delays are
// measured from the capture timestamp, so libpcap's buffering does not add to them;
// the last millisecond is waited out by spinning, since Node's timers are coarser.

import { BpfError } from "../probes/datapath/index.ts";
import { xorshift32 } from "./xorshift.ts";
import { openPcapPort, type PcapPort } from "./pcap-port.ts";

export interface DelayBridgeOptions {
  left: string;
  right: string;
  /** One-way delay per direction, milliseconds. */
  delayMs: number;
  jitterMs?: number;
  /** Fraction of frames dropped, 0..1. */
  loss?: number;
  /** Deterministic jitter/loss for tests. */
  seed?: number;
  /**
   * Tests of the protected layouts (A and E): flip one bit in the sealed part of the PDM
   * option of every Nth frame (per direction) that carries one right after the IPv6 header.
   */
  tamperEvery?: number;
}

interface Pending {
  dueMs: number;
  frame: Buffer;
  out: PcapPort;
}

export interface DelayBridge {
  forwarded(): number;
  dropped(): number;
  /** Frames tampered with, from left to right and from right to left. */
  tampered(): { leftToRight: number; rightToLeft: number };
  close(): void;
}

const ETH_HLEN = 14;
const NEXTHDR_DEST = 60;
/** The protected options a tampering bridge flips a bit in: type, Opt Data Len, where the sealed bytes start. */
const PROTECTED_OPTIONS = [
  { type: 0x0f, length: 34, sealed: 6 }, // -02's layout A: past the 4 clear bytes
  { type: 0x1e, length: 38, sealed: 8 }, // layout E (default type): past Ver + Epoch and PSNTP
];

/** Where the byte to flip is: the first sealed byte of a protected option right after the IPv6 header, or -1. */
function sealedByteOf(frame: Buffer): number {
  const opt = ETH_HLEN + 40 + 2;
  if (frame.length < opt + 2 || frame.readUInt16BE(12) !== 0x86dd || frame[ETH_HLEN + 6] !== NEXTHDR_DEST) return -1;
  const o = PROTECTED_OPTIONS.find((p) => frame[opt] === p.type && frame[opt + 1] === p.length);
  return o && frame.length >= opt + 2 + o.length ? opt + o.sealed : -1;
}

export function startDelayBridge(opts: DelayBridgeOptions): DelayBridge {
  const random = xorshift32(opts.seed ?? 1);
  const wallMs = (): number => performance.timeOrigin + performance.now();
  const queue: Pending[] = [];
  let forwarded = 0;
  let dropped = 0;
  const tampered = { leftToRight: 0, rightToLeft: 0 };
  const seen = { leftToRight: 0, rightToLeft: 0 };
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const flush = (): void => {
    timer = undefined;
    while (queue.length) {
      const head = queue[0]!;
      const wait = head.dueMs - wallMs();
      if (wait > 1.5) {
        timer = setTimeout(flush, wait - 1);
        return;
      }
      while (head.dueMs > wallMs()) {
        // spin out the last millisecond
      }
      queue.shift();
      try {
        head.out.inject(head.frame);
        forwarded += 1;
      } catch {
        dropped += 1;
      }
    }
  };

  const ports: PcapPort[] = [];
  const open = (from: string, to: () => PcapPort, direction: "leftToRight" | "rightToLeft"): PcapPort =>
    openPcapPort(from, (frame, tsMs) => {
      if (closed) return;
      if (opts.loss && random() < opts.loss) {
        dropped += 1;
        return;
      }
      if (opts.tamperEvery) {
        const at = sealedByteOf(frame);
        if (at >= 0 && ++seen[direction] % opts.tamperEvery === 0) {
          frame[at]! ^= 0x01;
          tampered[direction] += 1;
        }
      }
      const jitter = opts.jitterMs ? (random() * 2 - 1) * opts.jitterMs : 0;
      // FIFO per direction: jitter never reorders frames (netem's default as well).
      const due = Math.max(tsMs + opts.delayMs + jitter, queue.length ? queue[queue.length - 1]!.dueMs : 0);
      queue.push({ dueMs: due, frame, out: to() });
      if (!timer) flush();
    });
  let left: PcapPort;
  let right: PcapPort;
  try {
    left = open(opts.left, () => right, "leftToRight");
    ports.push(left);
    right = open(opts.right, () => left, "rightToLeft");
    ports.push(right);
  } catch (err) {
    for (const p of ports) p.close();
    throw new BpfError(`Cannot bridge ${opts.left} and ${opts.right}: ${(err as Error).message}`, { cause: err });
  }
  return {
    forwarded: () => forwarded,
    dropped: () => dropped,
    tampered: () => ({ ...tampered }),
    close: () => {
      closed = true;
      if (timer) clearTimeout(timer);
      for (const p of ports) p.close();
    },
  };
}

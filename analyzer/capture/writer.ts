// Capture writers: classic pcap (micro- or nanosecond timestamps) and pcapng
// (one section, interfaces declared up front, Enhanced Packet Blocks), both in
// little-endian. Used by the fixture generator and `pdm capture -w`.

import { closeSync, openSync, writeSync } from "node:fs";

export interface PacketToWrite {
  data: Uint8Array;
  /** Capture time in nanoseconds since the epoch. */
  tsNs: bigint;
  interfaceId?: number;
  originalLength?: number;
}

export interface CaptureWriter {
  write(packet: PacketToWrite): void;
  close(): void;
}

/** Buffered output to a file descriptor, flushed in large writes. */
class Output {
  private chunks: Buffer[] = [];
  private pending = 0;
  constructor(private readonly fd: number) {}
  push(b: Buffer): void {
    this.chunks.push(b);
    this.pending += b.length;
    if (this.pending >= 1 << 20) this.flush();
  }
  flush(): void {
    if (this.pending === 0) return;
    writeSync(this.fd, Buffer.concat(this.chunks, this.pending));
    this.chunks = [];
    this.pending = 0;
  }
  close(): void {
    this.flush();
    closeSync(this.fd);
  }
}

export function openPcapWriter(
  path: string,
  linkType: number,
  opts: { nanoseconds?: boolean; snapLength?: number } = {},
): CaptureWriter {
  const out = new Output(openSync(path, "w"));
  const nanos = opts.nanoseconds ?? false;
  const header = Buffer.alloc(24);
  header.writeUInt32LE(nanos ? 0xa1b23c4d : 0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(opts.snapLength ?? 262_144, 16);
  header.writeUInt32LE(linkType, 20);
  out.push(header);
  return {
    write(p) {
      const record = Buffer.alloc(16 + p.data.length);
      const sec = p.tsNs / 1_000_000_000n;
      const ns = Number(p.tsNs % 1_000_000_000n);
      record.writeUInt32LE(Number(sec), 0);
      record.writeUInt32LE(nanos ? ns : Math.floor(ns / 1000), 4);
      record.writeUInt32LE(p.data.length, 8);
      record.writeUInt32LE(p.originalLength ?? p.data.length, 12);
      record.set(p.data, 16);
      out.push(record);
    },
    close: () => out.close(),
  };
}

export interface PcapngInterfaceSpec {
  linkType: number;
  name?: string;
  /** Timestamp resolution as a power of ten: 6 (microseconds, the default) or 9 (ns). */
  tsResolutionPow10?: number;
  snapLength?: number;
}

function option(code: number, value: Buffer): Buffer {
  const padded = Buffer.alloc(4 + Math.ceil(value.length / 4) * 4);
  padded.writeUInt16LE(code, 0);
  padded.writeUInt16LE(value.length, 2);
  value.copy(padded, 4);
  return padded;
}

function block(type: number, body: Buffer): Buffer {
  const b = Buffer.alloc(12 + body.length);
  b.writeUInt32LE(type, 0);
  b.writeUInt32LE(b.length, 4);
  body.copy(b, 8);
  b.writeUInt32LE(b.length, b.length - 4);
  return b;
}

export function openPcapngWriter(path: string, interfaces: PcapngInterfaceSpec[]): CaptureWriter {
  const out = new Output(openSync(path, "w"));
  const shb = Buffer.alloc(16);
  shb.writeUInt32LE(0x1a2b3c4d, 0);
  shb.writeUInt16LE(1, 4);
  shb.writeBigInt64LE(-1n, 8); // section length unknown
  out.push(block(0x0a0d0d0a, shb));
  const units = interfaces.map((i) => 10n ** BigInt(i.tsResolutionPow10 ?? 6));
  for (const i of interfaces) {
    const fixed = Buffer.alloc(8);
    fixed.writeUInt16LE(i.linkType, 0);
    fixed.writeUInt32LE(i.snapLength ?? 262_144, 4);
    const opts: Buffer[] = [];
    if (i.name) opts.push(option(2, Buffer.from(i.name)));
    if (i.tsResolutionPow10 !== undefined && i.tsResolutionPow10 !== 6)
      opts.push(option(9, Buffer.of(i.tsResolutionPow10)));
    if (opts.length) opts.push(Buffer.alloc(4)); // opt_endofopt
    out.push(block(1, Buffer.concat([fixed, ...opts])));
  }
  return {
    write(p) {
      const iface = p.interfaceId ?? 0;
      const perSecond = units[iface];
      if (perSecond === undefined) throw new RangeError(`interface ${iface} was not declared`);
      const ts = (p.tsNs * perSecond) / 1_000_000_000n;
      const body = Buffer.alloc(20 + Math.ceil(p.data.length / 4) * 4);
      body.writeUInt32LE(iface, 0);
      body.writeUInt32LE(Number(ts >> 32n), 4);
      body.writeUInt32LE(Number(ts & 0xffff_ffffn), 8);
      body.writeUInt32LE(p.data.length, 12);
      body.writeUInt32LE(p.originalLength ?? p.data.length, 16);
      body.set(p.data, 20);
      out.push(block(6, body));
    },
    close: () => out.close(),
  };
}

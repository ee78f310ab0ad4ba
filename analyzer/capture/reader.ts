// Streaming reader for pcap (micro/nanosecond, either byte order) and pcapng
// (sections, several interfaces, per-interface link type and timestamp resolution).
//
// Buffer ownership: one working buffer is filled from the ByteSource, records are
// handed out as views into it, and the unread tail is moved to the front before
// each refill (consume/refill, as rusticata/pcap-parser does). Memory stays
// constant whatever the file size. A damaged or truncated file ends the read with
// a warning saying where; everything before the damage has been delivered.

import { CaptureError, type CapturedPacket } from "../../pdm/index.ts";
import type { ByteSource } from "./byte-source.ts";

export interface CaptureWarning {
  offset: number;
  packet: number;
  message: string;
}

export interface CaptureSummary {
  /** "live" and "ebpf" are the capture command's sources (no file). */
  format: "pcap" | "pcapng" | "live" | "ebpf";
  packets: number;
  bytes: number;
  /** Set when the read stopped early on damage; the packets before it were delivered. */
  stoppedEarly: CaptureWarning | undefined;
  /** The first few warnings of each kind (WARNING_EXAMPLES), in file order. */
  warnings: CaptureWarning[];
  /** Warnings beyond those listed: a hostile file may carry one per packet. */
  warningsNotListed?: number;
}

/** How many warnings of one kind are kept as examples; the rest are only counted. */
export const WARNING_EXAMPLES = 5;
/**
 * Interfaces one pcapng section may describe. Real captures have a few; a file with
 * millions of Interface Description Blocks must not cost a table that size.
 */
export const MAX_INTERFACES = 65_536;

/** Record a warning: listed while its kind has fewer than WARNING_EXAMPLES, else counted. */
function warn(summary: CaptureSummary, listed: Map<string, number>, kind: string, warning: CaptureWarning): void {
  const seen = listed.get(kind) ?? 0;
  if (seen < WARNING_EXAMPLES) {
    listed.set(kind, seen + 1);
    summary.warnings.push(warning);
  } else {
    summary.warningsNotListed = (summary.warningsNotListed ?? 0) + 1;
  }
}

export interface ReadOptions {
  onProgress?: (bytesRead: number, totalBytes: number | undefined) => void;
}

const PCAP_MAGIC_US = 0xa1b2c3d4;
const PCAP_MAGIC_NS = 0xa1b23c4d;
const PCAPNG_SHB = 0x0a0d0d0a;
const PCAPNG_BOM = 0x1a2b3c4d;
/** tcpdump's largest snapshot length; a bigger record length means the file is damaged. */
const MAX_RECORD = 262_144;
const MAX_BLOCK = 16 * 1024 * 1024;
const PROGRESS_EVERY_BYTES = 8 * 1024 * 1024;

/** The packet handed to the callback: one object reused for every record, its `data` view made only if asked for. */
class FrameView implements CapturedPacket {
  buffer: Buffer;
  start = 0;
  end = 0;
  originalLength = 0;
  tsSec = 0;
  tsNsec = 0;
  linkType = 0;
  interfaceId = 0;
  number = 0;
  constructor(buffer: Buffer) {
    this.buffer = buffer;
  }
  get data(): Buffer {
    return this.buffer.subarray(this.start, this.end);
  }
}

// Unsigned integers straight from the bytes: cheaper per packet than Buffer's
// bounds-checked readUInt32LE behind a byte-order closure.
const le32 = (b: Buffer, i: number): number => (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
const be32 = (b: Buffer, i: number): number => ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;

class Cursor {
  buf = Buffer.allocUnsafe(1 << 20);
  pos = 0;
  end = 0;
  private base = 0; // file offset of buf[0]
  private eof = false;
  /** Set when the source failed (EIO, ...): the input ended there. */
  readError: string | undefined;
  constructor(private readonly source: ByteSource) {}

  get offset(): number {
    return this.base + this.pos;
  }
  get available(): number {
    return this.end - this.pos;
  }

  /** Make `n` bytes available at pos; false when the input ends first. */
  async need(n: number): Promise<boolean> {
    if (this.end - this.pos >= n) return true;
    if (this.pos > 0) {
      this.buf.copy(this.buf, 0, this.pos, this.end);
      this.base += this.pos;
      this.end -= this.pos;
      this.pos = 0;
    }
    if (n > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(n, this.buf.length * 2));
      this.buf.copy(bigger, 0, 0, this.end);
      this.buf = bigger;
    }
    while (this.end < n && !this.eof) {
      let got: number;
      try {
        got = await this.source.read(this.buf, this.end, this.buf.length - this.end);
      } catch (e) {
        // A disk or device error mid-file: what was read is delivered, the rest is
        // reported as unreadable (readCapture), like damage.
        this.readError = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
        got = 0;
      }
      if (got === 0) this.eof = true;
      else this.end += got;
    }
    return this.end - this.pos >= n;
  }
}

/** Read a whole capture, calling `onPacket` for every record in file order. */
export async function readCapture(
  source: ByteSource,
  onPacket: (p: CapturedPacket) => void,
  options: ReadOptions = {},
): Promise<CaptureSummary> {
  const cur = new Cursor(source);
  if (!(await cur.need(4))) {
    if (cur.readError) throw new CaptureError(`cannot read the capture: ${cur.readError}`);
    throw new CaptureError("not a capture file: fewer than 4 bytes", {
      hint: "Check the path; an empty file has no packets.",
    });
  }
  const magicLe = cur.buf.readUInt32LE(0);
  const magicBe = cur.buf.readUInt32BE(0);
  if (magicBe === PCAPNG_SHB) return withReadError(cur, await readPcapng(cur, onPacket, options, source.size));
  if ([PCAP_MAGIC_US, PCAP_MAGIC_NS].includes(magicLe) || [PCAP_MAGIC_US, PCAP_MAGIC_NS].includes(magicBe)) {
    return withReadError(cur, await readPcap(cur, onPacket, options, source.size));
  }
  throw new CaptureError(`not a pcap or pcapng file (magic 0x${magicBe.toString(16).padStart(8, "0")})`, {
    hint: "Write captures with tcpdump -w, tshark -w or pdm capture -w.",
  });
}

/** A read that ended on a source error says so, in place of whatever the cut-off looked like. */
function withReadError(cur: Cursor, summary: CaptureSummary): CaptureSummary {
  if (!cur.readError) return summary;
  const warning = {
    offset: cur.offset,
    packet: summary.packets + 1,
    message: `read error (${cur.readError}) at byte ${cur.offset}`,
  };
  summary.warnings = summary.warnings.filter((w) => w !== summary.stoppedEarly);
  summary.stoppedEarly = warning;
  summary.warnings.push(warning);
  return summary;
}

function progress(options: ReadOptions, cur: Cursor, size: number | undefined, state: { next: number }): void {
  if (options.onProgress && cur.offset >= state.next) {
    options.onProgress(cur.offset, size);
    state.next = cur.offset + PROGRESS_EVERY_BYTES;
  }
}

/** A fresh summary, and `stop`: record where the damage is and end the read with what came before. */
function newSummary(
  format: CaptureSummary["format"],
  cur: Cursor,
): { summary: CaptureSummary; stop: (message: string) => CaptureSummary } {
  const summary: CaptureSummary = { format, packets: 0, bytes: 0, stoppedEarly: undefined, warnings: [] };
  const stop = (message: string): CaptureSummary => {
    summary.stoppedEarly = { offset: cur.offset, packet: summary.packets + 1, message };
    summary.warnings.push(summary.stoppedEarly);
    return summary;
  };
  return { summary, stop };
}

async function readPcap(
  cur: Cursor,
  onPacket: (p: CapturedPacket) => void,
  options: ReadOptions,
  size: number | undefined,
): Promise<CaptureSummary> {
  const { summary, stop } = newSummary("pcap", cur);
  if (!(await cur.need(24))) return stop("file header cut off (need 24 bytes)");
  const le = cur.buf.readUInt32LE(0) === PCAP_MAGIC_US || cur.buf.readUInt32LE(0) === PCAP_MAGIC_NS;
  const u32 = le ? (at: number) => cur.buf.readUInt32LE(at) : (at: number) => cur.buf.readUInt32BE(at);
  const nanos = u32(0) === PCAP_MAGIC_NS;
  const linkType = u32(20) & 0x0fff_ffff; // the high bits may carry FCS information
  cur.pos += 24;
  const packet = new FrameView(cur.buf);
  packet.linkType = linkType;
  const tick = { next: PROGRESS_EVERY_BYTES };
  for (;;) {
    if (cur.available < 16 && !(await cur.need(16))) {
      if (cur.available === 0) break; // clean end of file
      return stop(`capture truncated inside a record header (${cur.available} of 16 bytes)`);
    }
    const p = cur.pos;
    const capLen = u32(p + 8);
    if (capLen > MAX_RECORD) return stop(`corrupt record header: captured length ${capLen} exceeds ${MAX_RECORD}`);
    if (cur.available < 16 + capLen && !(await cur.need(16 + capLen))) {
      return stop(`capture truncated inside packet data (${cur.available - 16} of ${capLen} bytes)`);
    }
    const q = cur.pos; // need() may have moved the record to the buffer's start
    packet.buffer = cur.buf;
    packet.start = q + 16;
    packet.end = q + 16 + capLen;
    packet.tsSec = u32(q);
    packet.tsNsec = nanos ? u32(q + 4) : u32(q + 4) * 1000;
    packet.originalLength = u32(q + 12);
    packet.number = ++summary.packets;
    summary.bytes += capLen;
    cur.pos = q + 16 + capLen;
    onPacket(packet);
    progress(options, cur, size, tick);
  }
  options.onProgress?.(cur.offset, size);
  return summary;
}

interface PcapngInterface {
  linkType: number;
  snapLength: number;
  /** Timestamp units per second, and whether it is 10^6 (the fast exact path). */
  unitsPerSecond: bigint;
  /** 10^6 or 10^9 units per second: the exact double-arithmetic fast paths. */
  micro: boolean;
  nano: boolean;
  offsetSeconds: number;
}

async function readPcapng(
  cur: Cursor,
  onPacket: (p: CapturedPacket) => void,
  options: ReadOptions,
  size: number | undefined,
): Promise<CaptureSummary> {
  const { summary, stop } = newSummary("pcapng", cur);
  const listed = new Map<string, number>(); // warnings listed so far, by kind
  let le = true;
  let interfaces: PcapngInterface[] = [];
  // Byte-order readers for parseInterface, chosen once per section.
  const u32le = (at: number): number => cur.buf.readUInt32LE(at);
  const u16le = (at: number): number => cur.buf.readUInt16LE(at);
  const u32be = (at: number): number => cur.buf.readUInt32BE(at);
  const u16be = (at: number): number => cur.buf.readUInt16BE(at);
  const packet = new FrameView(cur.buf);
  let nextProgress = PROGRESS_EVERY_BYTES;
  for (;;) {
    if (cur.end - cur.pos < 12 && !(await cur.need(12))) {
      if (cur.available === 0) break;
      return stop(`capture truncated inside a block header (${cur.available} of 12 bytes)`);
    }
    let buf = cur.buf;
    let p = cur.pos;
    const type = le32(buf, p); // SHB's type reads the same either way
    if (type === PCAPNG_SHB) {
      const bom = le32(buf, p + 8);
      if (bom === PCAPNG_BOM) le = true;
      else if (be32(buf, p + 8) === PCAPNG_BOM) le = false;
      else return stop("section header with an unknown byte-order magic");
      interfaces = [];
    }
    const blockType = le ? type : be32(buf, p);
    const length = le ? le32(buf, p + 4) : be32(buf, p + 4);
    if (length < 12 || length % 4 !== 0 || length > MAX_BLOCK)
      return stop(`corrupt block: length ${length} (block type 0x${blockType.toString(16)})`);
    if (cur.end - cur.pos < length) {
      if (!(await cur.need(length)))
        return stop(`capture truncated inside a block (${cur.available} of ${length} bytes)`);
      buf = cur.buf;
      p = cur.pos;
    }
    const trailing = le ? le32(buf, p + length - 4) : be32(buf, p + length - 4);
    if (trailing !== length) return stop(`corrupt block: trailing length ${trailing} differs from leading ${length}`);
    const at = cur.offset;
    cur.pos = p + length; // the block is consumed whatever happens below

    if (blockType === 1) {
      if (interfaces.length < MAX_INTERFACES)
        interfaces.push(parseInterface(buf, p, length, le ? u16le : u16be, le ? u32le : u32be, le));
      else
        warn(summary, listed, "interfaces", {
          offset: at,
          packet: summary.packets + 1,
          message: `more than ${MAX_INTERFACES} interfaces in one section; this one is ignored`,
        });
      continue;
    }
    let iface: number;
    let capLen: number;
    let dataAt: number;
    let high = 0;
    let low = 0;
    if (blockType === 6 || blockType === 2) {
      if (length < 32) return stop(`corrupt packet block: length ${length}`);
      if (le) {
        iface = blockType === 6 ? le32(buf, p + 8) : buf[p + 8]! | (buf[p + 9]! << 8);
        high = le32(buf, p + 12);
        low = le32(buf, p + 16);
        capLen = le32(buf, p + 20);
        packet.originalLength = le32(buf, p + 24);
      } else {
        iface = blockType === 6 ? be32(buf, p + 8) : (buf[p + 8]! << 8) | buf[p + 9]!;
        high = be32(buf, p + 12);
        low = be32(buf, p + 16);
        capLen = be32(buf, p + 20);
        packet.originalLength = be32(buf, p + 24);
      }
      dataAt = p + 28;
      if (capLen > length - 32) return stop(`corrupt packet block: captured length ${capLen} exceeds the block`);
    } else if (blockType === 3) {
      iface = 0;
      packet.originalLength = le ? le32(buf, p + 8) : be32(buf, p + 8);
      dataAt = p + 12;
      capLen = Math.min(packet.originalLength, length - 16, interfaces[0]?.snapLength || Infinity);
    } else {
      continue; // name resolution, statistics, custom, decryption secrets...: not ours
    }
    const info = interfaces[iface];
    if (!info) {
      warn(summary, listed, "interface", {
        offset: at,
        packet: summary.packets + 1,
        message: `packet names interface ${iface}, which was never described; skipped`,
      });
      continue;
    }
    if (info.micro) {
      const value = high * 4294967296 + low;
      const sec = Math.floor(value / 1e6);
      packet.tsSec = sec + info.offsetSeconds;
      packet.tsNsec = (value - sec * 1e6) * 1000;
    } else if (info.nano) {
      nanoTimestamp(high, low, packet);
      packet.tsSec += info.offsetSeconds;
    } else {
      const value = (BigInt(high) << 32n) | BigInt(low);
      packet.tsSec = Number(value / info.unitsPerSecond) + info.offsetSeconds;
      packet.tsNsec = Number(((value % info.unitsPerSecond) * 1_000_000_000n) / info.unitsPerSecond);
    }
    packet.buffer = buf;
    packet.start = dataAt;
    packet.end = dataAt + capLen;
    packet.linkType = info.linkType;
    packet.interfaceId = iface;
    packet.number = ++summary.packets;
    summary.bytes += capLen;
    onPacket(packet);
    if (options.onProgress && at >= nextProgress) {
      options.onProgress(at, size);
      nextProgress = at + PROGRESS_EVERY_BYTES;
    }
  }
  options.onProgress?.(cur.offset, size);
  return summary;
}

function parseInterface(
  buf: Buffer,
  p: number,
  length: number,
  u16: (at: number) => number,
  u32: (at: number) => number,
  le: boolean,
): PcapngInterface {
  const info: PcapngInterface = {
    linkType: u16(p + 8),
    snapLength: u32(p + 12),
    unitsPerSecond: 1_000_000n,
    micro: true,
    nano: false,
    offsetSeconds: 0,
  };
  let at = p + 16;
  const end = p + length - 4;
  while (at + 4 <= end) {
    const code = u16(at);
    const len = u16(at + 2);
    const value = at + 4;
    if (code === 0 || value + len > end) break; // opt_endofopt, or a damaged option list
    if (code === 9 && len >= 1) {
      const r = buf[value]!;
      info.unitsPerSecond = r & 0x80 ? 1n << BigInt(r & 0x7f) : 10n ** BigInt(r);
      info.micro = info.unitsPerSecond === 1_000_000n;
      info.nano = info.unitsPerSecond === 1_000_000_000n;
    } else if (code === 14 && len >= 8) {
      info.offsetSeconds = Number(le ? buf.readBigInt64LE(value) : buf.readBigInt64BE(value));
    }
    at = value + Math.ceil(len / 4) * 4;
  }
  return info;
}

/**
 * Split a 64-bit nanosecond count (high, low words) into seconds and ns exactly,
 * without BigInt (too slow per packet): 2^32 = 4 x 10^9 + 294967296, and the high
 * word is split again so that every partial product stays below 2^53.
 */
function nanoTimestamp(high: number, low: number, out: { tsSec: number; tsNsec: number }): void {
  const hh = high >>> 16;
  const hl = high & 0xffff;
  // 294967296 x 2^16 = 19330 x 10^9 + 976710656
  const rest = hh * 976710656 + hl * 294967296 + low;
  const carry = Math.floor(rest / 1e9);
  out.tsSec = high * 4 + hh * 19330 + carry;
  out.tsNsec = rest - carry * 1e9;
}

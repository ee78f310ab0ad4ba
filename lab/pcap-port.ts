// One interface of a user-space bridge or hub: libpcap captures every frame that
// arrives on it from outside (its own injections are outbound, and filtered out by the
// interface's own source MAC) and injects frames into it. The delay bridge and the
// impaired hub are built from these.

import { createRequire } from "node:module";
import { execFileSync } from "node:child_process";

export interface PcapPort {
  readonly ifname: string;
  inject(frame: Buffer): void;
  close(): void;
}

interface PcapSession {
  on(event: "packet", cb: (p: { buf: Buffer; header: Buffer }) => void): void;
  inject(data: Buffer): void;
  close(): void;
  buf: Buffer;
  header: Buffer;
  session: { dispatch(buf: Buffer, header: Buffer): number; read_callback: () => void };
}

const pcap = (): {
  createSession(
    dev: string,
    o: { filter: string; snap_length: number; buffer_timeout: number; buffer_size: number },
  ): PcapSession;
} => createRequire(import.meta.url)("pcap");

const macOf = (ifname: string): string =>
  (
    JSON.parse(execFileSync("ip", ["-j", "link", "show", "dev", ifname], { encoding: "utf8" }))[0] as {
      address: string;
    }
  ).address;

/**
 * Capture what arrives on `ifname`; `onFrame` gets a copy of each frame and the
 * kernel's capture time (ms since the epoch), so delays are measured from arrival and
 * libpcap's buffering does not add to them.
 */
export function openPcapPort(ifname: string, onFrame: (frame: Buffer, tsMs: number) => void): PcapPort {
  const s = pcap().createSession(ifname, {
    filter: `inbound and not ether src ${macOf(ifname)}`,
    snap_length: 65535,
    buffer_timeout: 1,
    buffer_size: 16 * 1024 * 1024,
  });
  s.on("packet", (p) => {
    const caplen = p.header.readUInt32LE(8);
    const tsMs = p.header.readUInt32LE(0) * 1e3 + p.header.readUInt32LE(4) / 1e3;
    onFrame(Buffer.from(p.buf.subarray(0, caplen)), tsMs);
  });
  const inner = s.session;
  inner.read_callback = () => {
    while (inner.dispatch(s.buf, s.header) > 0) {
      // drain everything ready
    }
  };
  return { ifname, inject: (frame) => s.inject(frame), close: () => s.close() };
}

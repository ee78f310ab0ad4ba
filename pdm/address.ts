// IPv6 addresses as 16 bytes: text <-> bytes (RFC 4291 input, RFC 5952 output),
// and the source-address classes of the Global Pointer (wire.md section 3).

import { isIPv6 } from "node:net";
import { UsageError } from "./errors.ts";

/** Parse textual IPv6 (with "::" and an optional trailing dotted IPv4) into 16 bytes. */
export function parseIpv6Address(text: string): Uint8Array {
  const bare = text.replace(/%.*$/, ""); // drop a zone id such as %eth0
  if (!isIPv6(bare)) throw new UsageError(`"${text}" is not an IPv6 address`);
  let head = bare;
  const out = new Uint8Array(16);
  let tailV4: number[] = [];
  const lastColon = head.lastIndexOf(":");
  if (head.slice(lastColon + 1).includes(".")) {
    tailV4 = head
      .slice(lastColon + 1)
      .split(".")
      .map(Number);
    head = head.slice(0, lastColon + 1) + "0:0"; // placeholder groups, overwritten below
  }
  const [left, right] = head.includes("::") ? head.split("::") : [head, undefined];
  const groups = (s: string | undefined): number[] =>
    s
      ? s
          .split(":")
          .filter((g) => g !== "")
          .map((g) => parseInt(g, 16))
      : [];
  const l = groups(left);
  const r = groups(right);
  const all = right === undefined ? l : [...l, ...new Array<number>(8 - l.length - r.length).fill(0), ...r];
  all.forEach((g, i) => {
    out[i * 2] = g >>> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  if (tailV4.length === 4) out.set(tailV4, 12);
  return out;
}

/** RFC 5952 text: lower case, longest run (>= 2) of zero groups as "::". */
export function formatIpv6Address(bytes: Uint8Array): string {
  if (bytes.length !== 16) throw new RangeError(`IPv6 address must be 16 bytes, got ${bytes.length}`);
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((bytes[i]! << 8) | bytes[i + 1]!);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i += 1;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j += 1;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((v) => v.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

/** Global Pointer classes: RFC 8250 keeps one counter for link-local and one for global sources. */
export type AddressClass = "link-local" | "global";

/**
 * fe80::/10 is link-local; every other unicast source (global, ULA fd00::/8,
 * loopback) counts in the global class: the spec names only these two classes.
 */
export function addressClass(addr: Uint8Array): AddressClass {
  return addr[0] === 0xfe && (addr[1]! & 0xc0) === 0x80 ? "link-local" : "global";
}

/** The Global Pointer counters of one host: per source class, first stamp 1, wrapping modulo 2^32. */
export class GlobalPointers {
  private readonly counters: Record<AddressClass, number> = { "link-local": 0, global: 0 };
  /** The Global Pointer for the next stamped packet from `src`. */
  next(src: Uint8Array): number {
    const cls = addressClass(src);
    this.counters[cls] = (this.counters[cls] + 1) >>> 0;
    return this.counters[cls];
  }
}

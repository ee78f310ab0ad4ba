// The pdm_peer_prefix label's raw value (metrics.md 2): the name of the first entry of
// the user's CIDR map that holds the peer ("dc1"), else the peer's prefix of the
// configured length ("2001:db8:1::/48"). Never the peer's full address.

import { formatIpv6Address, parseIpv6Address, UsageError } from "../pdm/index.ts";

export interface NamedPrefix {
  name: string;
  prefix: string;
}

interface ParsedPrefix {
  name: string;
  addr: Uint8Array;
  len: number;
}

export class PeerPrefixes {
  private readonly named: ParsedPrefix[];

  /** `length`: the prefix length peers are grouped by (default 48); `names`: the CIDR map, first match wins. */
  constructor(
    readonly length = 48,
    names: readonly NamedPrefix[] = [],
  ) {
    if (!Number.isInteger(length) || length < 0 || length > 128)
      throw new UsageError(`the peer prefix length must be 0 to 128, got ${length}`);
    this.named = names.map(({ name, prefix }) => {
      const [text = "", lenText = "128"] = prefix.split("/");
      const len = Number(lenText);
      if (!Number.isInteger(len) || len < 0 || len > 128)
        throw new UsageError(`"${prefix}" (named ${name}) is not an IPv6 prefix (for example fd00:1::/48)`);
      if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(name) || name === "other")
        throw new UsageError(`"${name}" cannot name a prefix: 1 to 64 letters, digits, _ . : -, and not "other"`);
      return { name, addr: parseIpv6Address(text), len };
    });
  }

  /** The label value for a peer's 16-byte address. */
  of(address: Uint8Array): string {
    for (const p of this.named) if (within(address, p.addr, p.len)) return p.name;
    const masked = new Uint8Array(16);
    for (let bit = 0, i = 0; bit < this.length; bit += 8, i += 1) {
      const keep = Math.min(8, this.length - bit);
      masked[i] = address[i]! & (0xff << (8 - keep));
    }
    return `${formatIpv6Address(masked)}/${this.length}`;
  }
}

function within(a: Uint8Array, prefix: Uint8Array, len: number): boolean {
  for (let bit = 0, i = 0; bit < len; bit += 8, i += 1) {
    const keep = Math.min(8, len - bit);
    const mask = 0xff << (8 - keep);
    if ((a[i]! & mask) !== (prefix[i]! & mask)) return false;
  }
  return true;
}

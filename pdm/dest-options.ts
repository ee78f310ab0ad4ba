// The IPv6 Destination Options header around a PDM option (RFC 8200 section 4.6,
// wire.md section 1).
//
//  +-------------+-------------+-------------------------------+
//  | Next Header | Hdr Ext Len |  options (TLV) ...            |
//  +-------------+-------------+-------------------------------+
//  total length = (Hdr Ext Len + 1) x 8 octets, padded with Pad1 (type 0) or PadN (type 1).
//
// The stamper puts the PDM option first and the padding after it. Readers accept
// the option anywhere in the header and skip unknown options by their length,
// resynchronising at start + length like Wireshark's option walker.

import { WireError, fail, ok, type Result } from "./errors.ts";
import { PDM_OPTION_TYPE } from "./option.ts";
import { DRAFT15_DEFAULT_TYPE } from "./draft-layouts.ts";

export const NEXT_HEADER_DEST_OPTS = 60;
const PAD1 = 0;
const PADN = 1;

/** Wrap one encoded option (Type and Opt Data Len included) in a padded Destination Options header. */
export function encodeDestOptionsHeader(nextHeader: number, option: Uint8Array): Uint8Array {
  if (!Number.isInteger(nextHeader) || nextHeader < 0 || nextHeader > 255) {
    throw new RangeError(`nextHeader must be 0..255, got ${nextHeader}`);
  }
  const unpadded = 2 + option.length;
  const total = Math.ceil(unpadded / 8) * 8;
  if (total > 2048) throw new RangeError(`option of ${option.length} bytes does not fit one header`);
  const out = new Uint8Array(total); // zero-filled: PadN data and Pad1 are zeros
  out[0] = nextHeader;
  out[1] = total / 8 - 1;
  out.set(option, 2);
  const pad = total - unpadded;
  if (pad === 1) out[unpadded] = PAD1;
  else if (pad >= 2) {
    out[unpadded] = PADN;
    out[unpadded + 1] = pad - 2;
  }
  return out;
}

/** Header size in bytes for one option of `optionLength` bytes: 16, 24 or 40 for the three layouts. */
export function destOptionsHeaderSize(optionLength: number): number {
  return Math.ceil((2 + optionLength) / 8) * 8;
}

/**
 * Find the PDM option in the Destination Options header spanning [start, end).
 * Returns the offset of its Type byte, or -1 when the header has none.
 */
export function findPdmOption(buf: Uint8Array, start: number, end: number): Result<number> {
  const found = findPdmOptionOrError(buf, start, end);
  return typeof found === "number" ? ok(found) : fail(found);
}

/**
 * findPdmOption without the Result wrapper (the IPv6 walk: one allocation less per
 * packet). `draft15Type`: layout E's option type, a PDM option as well.
 */
export function findPdmOptionOrError(
  buf: Uint8Array,
  start: number,
  end: number,
  draft15Type: number = DRAFT15_DEFAULT_TYPE,
): number | WireError {
  let at = start + 2;
  let found = -1;
  while (at < end) {
    const type = buf[at]!;
    if (type === PAD1) {
      at += 1;
      continue;
    }
    if (at + 2 > end) return new WireError("truncated", "dstopt.opt_len", at + 1, "option length byte missing");
    const next = at + 2 + buf[at + 1]!;
    if (next > end)
      return new WireError("bad-length", "dstopt.opt_len", at + 1, `option runs ${next - end} bytes past the header`);
    if (type === PDM_OPTION_TYPE || type === draft15Type) {
      if (found >= 0) return new WireError("duplicate-pdm", "pdm", at, `second PDM option (first at ${found})`);
      found = at;
    }
    at = next;
  }
  return found;
}

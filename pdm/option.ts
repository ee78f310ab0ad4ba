// The PDM option and its three layouts, wire.md section 2. All integers big-endian.
// Offsets in the diagrams are into the option *data* (after Type and Opt Data Len).
//
// RFC 8250 PDM, Opt Data Len 10:
//   0          1          2          3
//  +----------+----------+---------------------+
//  |ScaleDTLR |ScaleDTLS |        PSNTP        |  0-3
//  +----------+----------+---------------------+
//  |        PSNLR        |      DeltaTLR       |  4-7
//  +---------------------+---------------------+
//  |      DeltaTLS       |                         8-9
//  +---------------------+
//
// PDMv2 clear, Opt Data Len 18:
//  +----+---------------+--------------------+-+
//  |Ver |  reserved(12) |  Random Number(15) |F|  0-3   Ver = 2
//  +----------+---------+--------------------+-+
//  |ScaleDTLR |ScaleDTLS|     Global Pointer ...   4-7
//  +----------+---------+---------------------+
//  ... Global Pointer   |       PSNTP         |    8-11
//  +---------------------+---------------------+
//  |        PSNLR        |      DeltaTLR       |  12-15
//  +---------------------+---------------------+
//  |      DeltaTLS       |                         16-17
//  +---------------------+
//
// PDMv2 protected, Opt Data Len 34: bytes 0-3 as above (in clear, and the AEAD's
// associated data), then 30 bytes: AEAD(bytes 4-17 of the clear layout) || 16-byte tag.

import { put16, put32, u16, u32 } from "./bytes.ts";
import { WireError, fail, ok, type Result } from "./errors.ts";

export const PDM_OPTION_TYPE = 0x0f;
export const PDM_VERSION_2 = 2;

/** Opt Data Len of each layout; the length is what tells them apart. */
export const OPT_DATA_LEN = {
  rfc8250: 10,
  "v2-clear": 18,
  "v2-protected": 34,
} as const;
export type Layout = keyof typeof OPT_DATA_LEN;
export const LAYOUTS = Object.keys(OPT_DATA_LEN) as Layout[];

/** Where each field of an RFC 8250 option sits in its option data (the diagram above). */
export const RFC8250_OFFSET = { scaleDtlr: 0, scaleDtls: 1, psnTp: 2, psnLr: 4, deltaTlr: 6, deltaTls: 8 } as const;

/**
 * Where each field of a PDMv2 option sits in its option data. The protected layout seals
 * bytes `sealed` to `tag` - 1 in place and puts its tag at `tag`.
 */
export const V2_OFFSET = {
  version: 0,
  randomNumberF: 2,
  scaleDtlr: 4,
  scaleDtls: 5,
  globalPointer: 6,
  psnTp: 10,
  psnLr: 12,
  deltaTlr: 14,
  deltaTls: 16,
  sealed: 4,
  tag: 18,
} as const;
/** The first 16 bits of PDMv2 option data: version 2, 12 reserved bits zero. */
export const V2_VERSION_WORD = PDM_VERSION_2 << 12;

/** Bytes 4-17 of the clear layout, the plaintext that the protected layout seals. */
export const SEALED_PLAINTEXT_LEN = 14;
export const AEAD_TAG_LEN = 16;
export const SEALED_LEN = SEALED_PLAINTEXT_LEN + AEAD_TAG_LEN; // 30

/** The measurement fields every layout carries (names as in the spec, style guide). */
export interface PdmTimes {
  scaleDtlr: number;
  scaleDtls: number;
  psnTp: number;
  psnLr: number;
  deltaTlr: number;
  deltaTls: number;
}

export interface PdmV1Option extends PdmTimes {
  layout: "rfc8250";
}

/** Fields of a PDMv2 option in the clear (or of a protected one after opening). */
export interface PdmV2Fields extends PdmTimes {
  randomNumber: number;
  fBit: 0 | 1;
  globalPointer: number;
}

export interface PdmV2ClearOption extends PdmV2Fields {
  layout: "v2-clear";
}

/** A protected option as it sits on the wire: only the clear prefix is readable. */
export interface PdmV2ProtectedOption {
  layout: "v2-protected";
  randomNumber: number;
  fBit: 0 | 1;
  /** The bytes the option lies in, and the offset of its Type byte (36 bytes from there). */
  bytes: Uint8Array;
  at: number;
  /** Type, Opt Data Len and option-data bytes 0-3: the AEAD associated data (6 bytes). */
  readonly aad: Uint8Array;
  /** Ciphertext || tag (30 bytes). A view into the packet: copy it to keep it. */
  readonly sealed: Uint8Array;
}

/**
 * The decoder's PdmV2ProtectedOption: `aad` and `sealed` are views made only when
 * asked for, because the analyzer's opener reads bytes[at..] directly and a view
 * costs more than the rest of the decode.
 */
class ProtectedOptionView implements PdmV2ProtectedOption {
  readonly layout = "v2-protected";
  constructor(
    readonly randomNumber: number,
    readonly fBit: 0 | 1,
    readonly bytes: Uint8Array,
    readonly at: number,
  ) {}
  get aad(): Uint8Array {
    return this.bytes.subarray(this.at, this.at + 6);
  }
  get sealed(): Uint8Array {
    return this.bytes.subarray(this.at + 6, this.at + 6 + SEALED_LEN);
  }
}

export type PdmOption = PdmV1Option | PdmV2ClearOption | PdmV2ProtectedOption;

/**
 * Decode one PDM option whose Type byte sits at `at` in `buf`. `end` is where the
 * enclosing header ends. Never throws, never reads at or past `end`.
 */
export function decodePdmOption(buf: Uint8Array, at: number, end: number = buf.length): Result<PdmOption> {
  const decoded = decodePdmOptionOrError(buf, at, end);
  return decoded instanceof WireError ? fail(decoded) : ok(decoded);
}

/** decodePdmOption without the Result wrapper (one allocation less per packet: the IPv6 walk uses it). */
export function decodePdmOptionOrError(buf: Uint8Array, at: number, end: number = buf.length): PdmOption | WireError {
  const limit = Math.min(end, buf.length);
  if (at + 2 > limit) return new WireError("truncated", "pdm.opt_data_len", at + 1, "option header cut off");
  const len = buf[at + 1]!;
  const data = at + 2;
  if (data + len > limit) {
    return new WireError("truncated", "pdm.opt_data", data, `Opt Data Len ${len} runs past the header end`);
  }
  switch (len) {
    case OPT_DATA_LEN.rfc8250:
      return {
        layout: "rfc8250",
        scaleDtlr: buf[data]!,
        scaleDtls: buf[data + 1]!,
        psnTp: u16(buf, data + 2),
        psnLr: u16(buf, data + 4),
        deltaTlr: u16(buf, data + 6),
        deltaTls: u16(buf, data + 8),
      };
    case OPT_DATA_LEN["v2-clear"]:
    case OPT_DATA_LEN["v2-protected"]: {
      const version = buf[data]! >>> 4;
      if (version !== PDM_VERSION_2) {
        return new WireError("bad-version", "pdm.version", data, `expected 2, found ${version}`);
      }
      if ((buf[data]! & 0x0f) !== 0 || buf[data + 1] !== 0) {
        return new WireError("reserved-set", "pdm.reserved", data, "reserved bits must be zero");
      }
      const rnf = u16(buf, data + 2);
      const randomNumber = rnf >>> 1;
      const fBit = (rnf & 1) as 0 | 1;
      if (len === OPT_DATA_LEN["v2-protected"]) {
        return new ProtectedOptionView(randomNumber, fBit, buf, at);
      }
      return { layout: "v2-clear", ...decodeV2Fields(randomNumber, fBit, buf, data + 4) };
    }
    default:
      return new WireError("unknown-layout", "pdm.opt_data_len", at + 1, `length ${len} is none of 10, 18, 34`);
  }
}

/**
 * The PDMv2 fields: the clear Random Number and F, and the 14 bytes at `at` (bytes
 * 4-17 of the clear layout, or an opened protected option), in a new object.
 */
export function decodeV2Fields(randomNumber: number, fBit: 0 | 1, buf: Uint8Array, at: number): PdmV2Fields {
  return decodeV2FieldsInto(emptyV2Fields(), randomNumber, fBit, buf, at);
}

/** decodeV2Fields into an object the caller reuses (the per-packet path allocates nothing). */
export function decodeV2FieldsInto(
  f: PdmV2Fields,
  randomNumber: number,
  fBit: 0 | 1,
  buf: Uint8Array,
  at: number,
): PdmV2Fields {
  f.randomNumber = randomNumber;
  f.fBit = fBit;
  f.scaleDtlr = buf[at]!;
  f.scaleDtls = buf[at + 1]!;
  f.globalPointer = u32(buf, at + 2);
  f.psnTp = u16(buf, at + 6);
  f.psnLr = u16(buf, at + 8);
  f.deltaTlr = u16(buf, at + 10);
  f.deltaTls = u16(buf, at + 12);
  return f;
}

/** Fields to decode into; all zero. */
export function emptyV2Fields(): PdmV2Fields {
  return {
    randomNumber: 0,
    fBit: 0,
    scaleDtlr: 0,
    scaleDtls: 0,
    globalPointer: 0,
    psnTp: 0,
    psnLr: 0,
    deltaTlr: 0,
    deltaTls: 0,
  };
}

/** Write the 14 plaintext bytes that the protected layout seals. */
export function encodeSealedPlaintext(
  f: PdmTimes & { globalPointer: number },
  out = new Uint8Array(14),
  at = 0,
): Uint8Array {
  checkFields(f);
  checkRange("globalPointer", f.globalPointer, 0xffff_ffff);
  out[at] = f.scaleDtlr;
  out[at + 1] = f.scaleDtls;
  put32(out, at + 2, f.globalPointer);
  put16(out, at + 6, f.psnTp);
  put16(out, at + 8, f.psnLr);
  put16(out, at + 10, f.deltaTlr);
  put16(out, at + 12, f.deltaTls);
  return out;
}

/** The 4 clear bytes that open every PDMv2 option: version, reserved, Random Number, F. */
export function encodeV2Prefix(randomNumber: number, fBit: 0 | 1, out = new Uint8Array(4), at = 0): Uint8Array {
  checkRange("randomNumber", randomNumber, 0x7fff);
  if (fBit !== 0 && fBit !== 1) throw new RangeError(`fBit must be 0 or 1, got ${String(fBit)}`);
  out[at] = PDM_VERSION_2 << 4;
  out[at + 1] = 0;
  put16(out, at + 2, (randomNumber << 1) | fBit);
  return out;
}

/** Encode a clear option (RFC 8250 or PDMv2 clear) including its Type and Opt Data Len bytes. */
export function encodePdmOption(opt: PdmV1Option | PdmV2ClearOption): Uint8Array {
  const len = OPT_DATA_LEN[opt.layout];
  const out = new Uint8Array(2 + len);
  out[0] = PDM_OPTION_TYPE;
  out[1] = len;
  checkFields(opt);
  if (opt.layout === "rfc8250") {
    out[2] = opt.scaleDtlr;
    out[3] = opt.scaleDtls;
    put16(out, 4, opt.psnTp);
    put16(out, 6, opt.psnLr);
    put16(out, 8, opt.deltaTlr);
    put16(out, 10, opt.deltaTls);
  } else {
    encodeV2Prefix(opt.randomNumber, opt.fBit, out, 2);
    encodeSealedPlaintext(opt, out, 6);
  }
  return out;
}

function checkFields(f: PdmTimes): void {
  checkRange("scaleDtlr", f.scaleDtlr, 0xff);
  checkRange("scaleDtls", f.scaleDtls, 0xff);
  checkRange("psnTp", f.psnTp, 0xffff);
  checkRange("psnLr", f.psnLr, 0xffff);
  checkRange("deltaTlr", f.deltaTlr, 0xffff);
  checkRange("deltaTls", f.deltaTls, 0xffff);
}

function checkRange(name: string, v: number, max: number): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`${name} must be an integer 0..${max}, got ${v}`);
}

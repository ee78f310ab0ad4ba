// The PDMv2 layouts of the drafts after -02 (draft-layouts.md). Offsets count from the
// Option Type byte (o0 = type, o1 = Opt Data Len, o2 = first data byte); all integers
// big-endian; Ver is the high nibble of o2 and is 2 in every layout.
//
// B, drafts -05 to -08: type 0x0F, Opt Data Len 18 (read as B only when asked: with
// Epoch 0 it is byte-identical to -02's layout A, the one implemented everywhere)
//   o2-3 Ver + Epoch(12)   o4-5 PSNTP   o6-7 reserved   o8-11 Global Pointer
//   o12 ScaleDTLR   o13 ScaleDTLS   o14-15 PSNLR   o16-17 DeltaTLR   o18-19 DeltaTLS
//
// C/D, drafts -09 to -14 (the current draft): type 0x0F, Opt Data Len 22
//   o2-3 Ver + Epoch   o4-7 PSNTP(32)   o8-11 PSNLR(32)   o12-15 Global Pointer
//   o16 ScaleDTLR   o17 ScaleDTLS   o18-19 reserved   o20-21 DeltaTLR   o22-23 DeltaTLS
// Its "encrypted" form has no room for a tag: never produced, and 0x0F/22 is read as clear.
//
// E, the -15 text in progress: a type of its own (configurable, default 0x1E)
//   clear, Opt Data Len 22: as C/D
//   protected, Opt Data Len 38: o0-7 clear (type, length, Ver + Epoch, PSNTP),
//   o8-23 the clear form's o8-23 encrypted, o24-39 a 16-byte tag.
//   Nonce = six zero bytes || o2-7; AAD = o0-7; the key is the STK (keys.md 4) of the
//   sender's key index, whose low 12 bits are the Epoch.

import { createCipheriv, createDecipheriv } from "node:crypto";
import { put16, put32, u16, u32 } from "./bytes.ts";
import { KeyError, WireError } from "./errors.ts";
import { AeadId, aeadKeyLength, hex4 } from "./key-schedule.ts";
import { PDM_OPTION_TYPE, PDM_VERSION_2, type Layout, type PdmOption, type PdmTimes } from "./option.ts";

export type DraftLayout = "v2-draft05" | "v2-draft09" | "v2-draft15" | "v2-draft15-protected";
/** Every layout the analyzer reads: -02's (RFC 8250, A clear and protected) and the later ones. */
export type AnyLayout = Layout | DraftLayout;
export type AnyPdmOption = PdmOption | DraftOption;

/** Layouts whose PSNTP and PSNLR are 32 bits (C/D and E); the others count modulo 2^16. */
export function hasWidePsn(layout: AnyLayout): boolean {
  return layout === "v2-draft09" || layout === "v2-draft15" || layout === "v2-draft15-protected";
}

/** Opt Data Len of each later layout. */
export const DRAFT_OPT_DATA_LEN = {
  "v2-draft05": 18,
  "v2-draft09": 22,
  "v2-draft15": 22,
  "v2-draft15-protected": 38,
} as const satisfies Record<DraftLayout, number>;

/** Layout E's option type until IANA assigns one: RFC 4727's experimental type (top bits 00: skip if unknown). */
export const DRAFT15_DEFAULT_TYPE = 0x1e;
/** The Epoch: the low 12 bits of the sender's key index. */
export const EPOCH_BITS = 12;
export const EPOCH_MASK = (1 << EPOCH_BITS) - 1;
/** Layout E's sealed bytes (o8-23) and tag (o24-39). */
export const DRAFT15_SEALED_LEN = 16;
export const DRAFT15_TAG_LEN = 16;

/** Where each field sits, counted from the Option Type byte. */
export const DRAFT05_OFFSET = {
  versionEpoch: 2,
  psnTp: 4,
  reserved: 6,
  globalPointer: 8,
  scaleDtlr: 12,
  scaleDtls: 13,
  psnLr: 14,
  deltaTlr: 16,
  deltaTls: 18,
} as const;
export const DRAFT09_OFFSET = {
  versionEpoch: 2,
  psnTp: 4,
  psnLr: 8,
  globalPointer: 12,
  scaleDtlr: 16,
  scaleDtls: 17,
  reserved: 18,
  deltaTlr: 20,
  deltaTls: 22,
} as const;

/** The fields of B, C/D and E (clear, or protected once opened). PSNTP and PSNLR are 32 bits in C/D/E. */
export interface DraftFields extends PdmTimes {
  epoch: number;
  globalPointer: number;
}

export interface DraftClearOption extends DraftFields {
  layout: "v2-draft05" | "v2-draft09" | "v2-draft15";
}

/** Layout E protected as it sits on the wire: only Epoch and PSNTP are readable without the key. */
export interface Draft15ProtectedOption {
  layout: "v2-draft15-protected";
  epoch: number;
  psnTp: number;
  /** The bytes the option lies in, and the offset of its Type byte (40 bytes from there). */
  bytes: Uint8Array;
  at: number;
}

export type DraftOption = DraftClearOption | Draft15ProtectedOption;

export interface DraftDecodeOptions {
  /** Read 0x0F/18 as layout B (drafts -05 to -08) rather than -02's A. */
  draft05?: boolean;
  /** Layout E's option type (default 0x1E). */
  draft15Type?: number;
}

/**
 * Which later layout an option of this type and Opt Data Len is, when it is one:
 * 0x0F/22 is C/D, 0x0F/18 is B only when asked; layout E's type with 22 or 38.
 * undefined for everything else (-02's layouts included).
 */
export function draftLayoutOf(
  type: number,
  optDataLen: number,
  options: DraftDecodeOptions = {},
): DraftLayout | undefined {
  if (type === PDM_OPTION_TYPE) {
    if (optDataLen === DRAFT_OPT_DATA_LEN["v2-draft09"]) return "v2-draft09";
    if (optDataLen === DRAFT_OPT_DATA_LEN["v2-draft05"] && options.draft05) return "v2-draft05";
    return undefined;
  }
  if (type === (options.draft15Type ?? DRAFT15_DEFAULT_TYPE)) {
    if (optDataLen === DRAFT_OPT_DATA_LEN["v2-draft15"]) return "v2-draft15";
    if (optDataLen === DRAFT_OPT_DATA_LEN["v2-draft15-protected"]) return "v2-draft15-protected";
  }
  return undefined;
}

/**
 * Decode the later-layout option whose Type byte is at `at` (`end`: where its header
 * ends). A value, or a WireError naming the field; never throws, never reads past `end`.
 * Layout E's type with a length other than 22 or 38 is an error, not a guess.
 */
export function decodeDraftOption(
  buf: Uint8Array,
  at: number,
  end: number = buf.length,
  options: DraftDecodeOptions = {},
): DraftOption | WireError {
  const limit = Math.min(end, buf.length);
  if (at + 2 > limit) return new WireError("truncated", "pdm.opt_data_len", at + 1, "option header cut off");
  const type = buf[at]!;
  const len = buf[at + 1]!;
  const layout = draftLayoutOf(type, len, options);
  if (!layout) {
    return new WireError(
      "unknown-layout",
      "pdm.opt_data_len",
      at + 1,
      `type 0x${type.toString(16)} with length ${len} is no PDMv2 layout (layout E: 22 or 38)`,
    );
  }
  if (at + 2 + len > limit) {
    return new WireError("truncated", "pdm.opt_data", at + 2, `Opt Data Len ${len} runs past the header end`);
  }
  const version = buf[at + 2]! >>> 4;
  if (version !== PDM_VERSION_2)
    return new WireError("bad-version", "pdm.version", at + 2, `expected 2, found ${version}`);
  const epoch = u16(buf, at + 2) & EPOCH_MASK;
  if (layout === "v2-draft15-protected") return { layout, epoch, psnTp: u32(buf, at + 4), bytes: buf, at };
  if (layout === "v2-draft05") {
    const o = DRAFT05_OFFSET;
    if (u16(buf, at + o.reserved) !== 0)
      return new WireError("reserved-set", "pdm.reserved", at + o.reserved, "reserved bits must be zero");
    return {
      layout,
      epoch,
      psnTp: u16(buf, at + o.psnTp),
      psnLr: u16(buf, at + o.psnLr),
      globalPointer: u32(buf, at + o.globalPointer),
      scaleDtlr: buf[at + o.scaleDtlr]!,
      scaleDtls: buf[at + o.scaleDtls]!,
      deltaTlr: u16(buf, at + o.deltaTlr),
      deltaTls: u16(buf, at + o.deltaTls),
    };
  }
  return decodeDraft09Fields(layout, epoch, buf, at);
}

/** C/D and E's clear fields, the option's Type byte at `at` (or an opened E's, rebuilt). */
function decodeDraft09Fields(
  layout: "v2-draft09" | "v2-draft15",
  epoch: number,
  buf: Uint8Array,
  at: number,
): DraftClearOption | WireError {
  const o = DRAFT09_OFFSET;
  if (u16(buf, at + o.reserved) !== 0)
    return new WireError("reserved-set", "pdm.reserved", at + o.reserved, "reserved bits must be zero");
  return {
    layout,
    epoch,
    psnTp: u32(buf, at + o.psnTp),
    psnLr: u32(buf, at + o.psnLr),
    globalPointer: u32(buf, at + o.globalPointer),
    scaleDtlr: buf[at + o.scaleDtlr]!,
    scaleDtls: buf[at + o.scaleDtls]!,
    deltaTlr: u16(buf, at + o.deltaTlr),
    deltaTls: u16(buf, at + o.deltaTls),
  };
}

/** Encode a clear later-layout option (Type and Opt Data Len included). `type`: layout E's (default 0x1E). */
export function encodeDraftOption(opt: DraftClearOption, type: number = DRAFT15_DEFAULT_TYPE): Uint8Array {
  checkFields(opt);
  const len = DRAFT_OPT_DATA_LEN[opt.layout];
  const out = new Uint8Array(2 + len);
  out[0] = opt.layout === "v2-draft15" ? checkType(type) : PDM_OPTION_TYPE;
  out[1] = len;
  put16(out, 2, (PDM_VERSION_2 << 12) | opt.epoch);
  if (opt.layout === "v2-draft05") {
    const o = DRAFT05_OFFSET;
    put16(out, o.psnTp, opt.psnTp);
    put32(out, o.globalPointer, opt.globalPointer);
    out[o.scaleDtlr] = opt.scaleDtlr;
    out[o.scaleDtls] = opt.scaleDtls;
    put16(out, o.psnLr, opt.psnLr);
    put16(out, o.deltaTlr, opt.deltaTlr);
    put16(out, o.deltaTls, opt.deltaTls);
    return out;
  }
  const o = DRAFT09_OFFSET;
  put32(out, o.psnTp, opt.psnTp);
  put32(out, o.psnLr, opt.psnLr);
  put32(out, o.globalPointer, opt.globalPointer);
  out[o.scaleDtlr] = opt.scaleDtlr;
  out[o.scaleDtls] = opt.scaleDtls;
  put16(out, o.deltaTlr, opt.deltaTlr);
  put16(out, o.deltaTls, opt.deltaTls);
  return out;
}

function checkFields(f: DraftClearOption): void {
  const psnMax = f.layout === "v2-draft05" ? 0xffff : 0xffff_ffff;
  const ranges: Array<[string, number, number]> = [
    ["epoch", f.epoch, EPOCH_MASK],
    ["psnTp", f.psnTp, psnMax],
    ["psnLr", f.psnLr, psnMax],
    ["globalPointer", f.globalPointer, 0xffff_ffff],
    ["scaleDtlr", f.scaleDtlr, 0xff],
    ["scaleDtls", f.scaleDtls, 0xff],
    ["deltaTlr", f.deltaTlr, 0xffff],
    ["deltaTls", f.deltaTls, 0xffff],
  ];
  for (const [name, v, max] of ranges)
    if (!Number.isInteger(v) || v < 0 || v > max)
      throw new RangeError(`${name} must be an integer 0..${max}, got ${v}`);
}

function checkType(type: number): number {
  if (!Number.isInteger(type) || type < 0 || type > 0xff || type === PDM_OPTION_TYPE || type <= 1)
    throw new RangeError(`layout E's option type must be 2..255 and not 0x0F, got ${type}`);
  return type;
}

const CIPHER: Record<number, "aes-128-gcm" | "chacha20-poly1305"> = {
  [AeadId.Aes128Gcm]: "aes-128-gcm",
  [AeadId.Chacha20Poly1305]: "chacha20-poly1305",
};

function cipherOf(aead: number, key: Uint8Array): "aes-128-gcm" | "chacha20-poly1305" {
  const name = CIPHER[aead];
  if (!name) throw new KeyError(`AEAD id 0x${hex4(aead)} is not allowed for PDMv2`);
  if (key.length !== aeadKeyLength(aead))
    throw new KeyError(`"key" expected ${aeadKeyLength(aead)} bytes, got ${key.length}`);
  return name;
}

/** Layout E's nonce: six zero bytes, then o2-7 (Ver + Epoch, PSNTP) as on the wire. */
function draft15Nonce(option: Uint8Array, at: number): Buffer {
  const nonce = Buffer.alloc(12);
  for (let i = 0; i < 6; i += 1) nonce[6 + i] = option[at + 2 + i]!;
  return nonce;
}

/**
 * Seal layout E: the clear option of `fields` (type `type`), its o8-23 encrypted under
 * `key` (the STK of the key index whose low 12 bits are fields.epoch) and a tag
 * appended: 40 bytes. Raw primitive: the caller never repeats (key, Epoch, PSNTP).
 */
export function sealDraft15(
  aead: number,
  key: Uint8Array,
  fields: DraftFields,
  type: number = DRAFT15_DEFAULT_TYPE,
): Uint8Array {
  const name = cipherOf(aead, key);
  const clear = encodeDraftOption({ ...fields, layout: "v2-draft15" }, type);
  const out = new Uint8Array(2 + DRAFT_OPT_DATA_LEN["v2-draft15-protected"]);
  out.set(clear.subarray(0, 8));
  out[1] = DRAFT_OPT_DATA_LEN["v2-draft15-protected"];
  const cipher = createCipheriv(name as "aes-128-gcm", key, draft15Nonce(out, 0), { authTagLength: DRAFT15_TAG_LEN });
  cipher.setAAD(out.subarray(0, 8), { plaintextLength: DRAFT15_SEALED_LEN });
  const body = Buffer.concat([cipher.update(clear.subarray(8, 24)), cipher.final()]);
  out.set(body, 8);
  out.set(cipher.getAuthTag(), 24);
  return out;
}

/** Open layout E under `key`: its fields, or undefined when the tag does not verify. */
export function openDraft15(
  aead: number,
  key: Uint8Array,
  option: Draft15ProtectedOption,
): DraftClearOption | undefined {
  const name = cipherOf(aead, key);
  const { bytes, at } = option;
  const decipher = createDecipheriv(name as "aes-128-gcm", key, draft15Nonce(bytes, at), {
    authTagLength: DRAFT15_TAG_LEN,
  });
  decipher.setAAD(bytes.subarray(at, at + 8), { plaintextLength: DRAFT15_SEALED_LEN });
  decipher.setAuthTag(bytes.subarray(at + 24, at + 40));
  const opened = decipher.update(bytes.subarray(at + 8, at + 24));
  try {
    decipher.final();
  } catch {
    return undefined;
  }
  const clear = new Uint8Array(24);
  clear.set(bytes.subarray(at, at + 8));
  clear.set(opened, 8);
  const fields = decodeDraft09Fields("v2-draft15", option.epoch, clear, 0);
  return fields instanceof WireError ? undefined : fields;
}

/**
 * The key indexes a receiver tries for an Epoch, best first: the one nearest its last
 * accepted index with those low 12 bits, then the next and the previous (draft-layouts.md).
 */
export function keyIndexCandidates(lastIndex: number, epoch: number): number[] {
  const base = lastIndex - (lastIndex & EPOCH_MASK);
  const span = EPOCH_MASK + 1;
  const options = [base - span + epoch, base + epoch, base + span + epoch].filter((i) => i >= 0 && i <= 0xffff_ffff);
  const nearest = options.reduce((best, i) => (Math.abs(i - lastIndex) < Math.abs(best - lastIndex) ? i : best));
  return [nearest, nearest + span, nearest - span].filter((i) => i >= 0 && i <= 0xffff_ffff);
}

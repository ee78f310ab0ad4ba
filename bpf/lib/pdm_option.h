/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * pdm_option.h: the PDM option's bytes, written and read (wire.md 2), at the offsets
 * pdm_abi.h names. Pure byte work: no maps, no helpers.
 *
 * A stamper writes one Destination Options header: Next Header, Hdr Ext Len, the PDM
 * option, then PadN up to the 8-byte boundary (16, 24, 32 or 40 bytes). A reader accepts any header of at most PDM_DEST_OPTS_MAX bytes and finds the
 * option among others by walking them (pdm_opt_walk_step).
 */
#ifndef PDM_OPTION_H
#define PDM_OPTION_H

#include <linux/types.h>

#include "../include/pdm_abi.h"

#define PDM_DEST_OPTS_MAX 64 /* bytes of a Destination Options header the reader scans */
#define PDM_OPT_PAD1 0
#define PDM_OPT_PADN 1

/* A PDM option's fields, to write or as read (in the clear or opened). */
struct pdm_fields {
	__u32 psntp, psnlr; /* 16 bits in RFC 8250 and -02's layouts, 32 in the later drafts' */
	__u16 dtlr, dtls, rn_f;
	__u8 stlr, stls;
	__u32 gp;
	__u32 kri; /* v2: the Kri (protected: the one whose key opened it); later drafts: the Epoch */
	__u8 layout;
	__u8 type; /* the option type written or read */
};

static __always_inline void pdm_put16(__u8 *b, __u32 off, __u16 v)
{
	b[off] = v >> 8;
	b[off + 1] = v & 0xff;
}

static __always_inline void pdm_put32(__u8 *b, __u32 off, __u32 v)
{
	pdm_put16(b, off, v >> 16);
	pdm_put16(b, off + 2, v & 0xffff);
}

static __always_inline __u16 pdm_be16(const __u8 *b)
{
	return ((__u16)b[0] << 8) | b[1];
}

/* A big-endian u16 at `off` in a header buffer of PDM_DEST_OPTS_MAX bytes (the mask
 * keeps every index in bounds for the verifier). */
static __always_inline __u16 pdm_opt_get16(const __u8 *h, __u32 off)
{
	return ((__u16)h[off & (PDM_DEST_OPTS_MAX - 1)] << 8) | h[(off + 1) & (PDM_DEST_OPTS_MAX - 1)];
}

static __always_inline __u8 pdm_opt_get8(const __u8 *h, __u32 off)
{
	return h[off & (PDM_DEST_OPTS_MAX - 1)];
}

static __always_inline __u32 pdm_opt_get32(const __u8 *h, __u32 off)
{
	return ((__u32)pdm_opt_get16(h, off) << 16) | pdm_opt_get16(h, off + 2);
}

/* The later drafts' layouts: 32-bit sequence numbers, no Random Number (draft-layouts.md). */
static __always_inline int pdm_layout_is_wide(__u32 layout)
{
	return layout == PDM_LAYOUT_DRAFT09 || layout == PDM_LAYOUT_DRAFT15 || layout == PDM_LAYOUT_DRAFT15_PROTECTED;
}

/* The layouts sealed under per-flow keys: -02's protected (A) and the -15 text's (E). */
static __always_inline int pdm_layout_is_protected(__u32 layout)
{
	return layout == PDM_LAYOUT_V2_PROTECTED || layout == PDM_LAYOUT_DRAFT15_PROTECTED;
}

/*
 * The whole Destination Options header of `hdr_len` bytes for f->layout into h (zeroed
 * by the caller). The protected layout's bytes 4-17 are written in the clear here and
 * sealed in place afterwards (pdm_seal).
 */
static __always_inline void pdm_option_write(__u8 *h, __u8 next, __u32 hdr_len, const struct pdm_fields *f)
{
	__u8 *d = h + 4; /* option data */
	h[0] = next;
	h[1] = hdr_len / 8 - 1;
	h[2] = PDM_OPTION_TYPE;
	if (pdm_layout_is_wide(f->layout)) {
		/* E protected: the clear form's fields at the same places, sealed in place later
		 * (pdm_seal), the tag after them */
		const __u32 odl = f->layout == PDM_LAYOUT_DRAFT15_PROTECTED ? PDM_ODL_DRAFT15_PROTECTED : PDM_ODL_WIDE;
		h[2] = f->type;
		h[3] = odl;
		pdm_put16(d, PDM_WIDE_VER_EPOCH, PDM_V2_VERSION_WORD | (f->kri & 0xfff));
		pdm_put32(d, PDM_WIDE_PSNTP, f->psntp);
		pdm_put32(d, PDM_WIDE_PSNLR, f->psnlr);
		pdm_put32(d, PDM_WIDE_GP, f->gp);
		d[PDM_WIDE_SCALE_DTLR] = f->stlr;
		d[PDM_WIDE_SCALE_DTLS] = f->stls;
		pdm_put16(d, PDM_WIDE_DTLR, f->dtlr);
		pdm_put16(d, PDM_WIDE_DTLS, f->dtls);
		/* PadN covering the header's last 6 bytes: 4 bytes of padding data, zero */
		d[odl] = PDM_OPT_PADN;
		d[odl + 1] = 4;
		return;
	}
	if (f->layout == PDM_LAYOUT_RFC8250) {
		h[3] = PDM_ODL_RFC8250;
		d[PDM_RFC8250_SCALE_DTLR] = f->stlr;
		d[PDM_RFC8250_SCALE_DTLS] = f->stls;
		pdm_put16(d, PDM_RFC8250_PSNTP, f->psntp);
		pdm_put16(d, PDM_RFC8250_PSNLR, f->psnlr);
		pdm_put16(d, PDM_RFC8250_DTLR, f->dtlr);
		pdm_put16(d, PDM_RFC8250_DTLS, f->dtls);
		d[PDM_ODL_RFC8250] = PDM_OPT_PADN;
		return;
	}
	const int protect = f->layout == PDM_LAYOUT_V2_PROTECTED;
	h[3] = protect ? PDM_ODL_V2_PROTECTED : PDM_ODL_V2_CLEAR;
	pdm_put16(d, PDM_V2_VERSION, PDM_V2_VERSION_WORD);
	pdm_put16(d, PDM_V2_RN_F, f->rn_f);
	d[PDM_V2_SCALE_DTLR] = f->stlr;
	d[PDM_V2_SCALE_DTLS] = f->stls;
	pdm_put16(d, PDM_V2_GP, f->gp >> 16);
	pdm_put16(d, PDM_V2_GP + 2, f->gp & 0xffff);
	pdm_put16(d, PDM_V2_PSNTP, f->psntp);
	pdm_put16(d, PDM_V2_PSNLR, f->psnlr);
	pdm_put16(d, PDM_V2_DTLR, f->dtlr);
	pdm_put16(d, PDM_V2_DTLS, f->dtls);
	d[protect ? PDM_ODL_V2_PROTECTED : PDM_ODL_V2_CLEAR] = PDM_OPT_PADN;
}

/*
 * Walking the options of a Destination Options header: where the PDM option sits,
 * and whether the header holds nothing else but padding (then it may be stripped).
 * One bpf_loop step per option keeps the verifier's work independent of the number
 * of paths through the walk.
 */
struct pdm_opt_walk {
	__u8 h[PDM_DEST_OPTS_MAX]; /* the header, zero beyond len */
	__u32 len;		   /* header length in bytes */
	__u32 i;		   /* offset of the next option */
	__u32 at;		   /* offset of the PDM option type byte, 0 if none yet */
	__u32 only_pdm;		   /* 1 while every other option is Pad1/PadN */
	__u32 e_type;		   /* layout E's option type: a PDM option as well */
};

static long pdm_opt_walk_step(__u64 n, void *ctx)
{
	struct pdm_opt_walk *w = ctx;
	__u32 i = w->i;
	if (i >= w->len)
		return 1;
	__u8 type = pdm_opt_get8(w->h, i);
	if (type == PDM_OPT_PAD1) {
		w->i = i + 1;
		return 0;
	}
	__u32 olen = pdm_opt_get8(w->h, i + 1);
	if ((type == PDM_OPTION_TYPE || type == w->e_type) && !w->at)
		w->at = i;
	else if (type != PDM_OPT_PADN)
		w->only_pdm = 0;
	w->i = i + 2 + olen;
	return 0;
}

/* The header as PDM stampers write it: the option at 2, then one PadN to its end. */
static __always_inline int pdm_opt_is_stamped_form(const __u8 *h, __u32 len, __u32 e_type)
{
	__u32 olen = h[3];
	if (olen > PDM_DEST_OPTS_MAX - 6)
		return 0;
	return (h[2] == PDM_OPTION_TYPE || h[2] == e_type) && h[4 + olen] == PDM_OPT_PADN &&
	       4 + olen + 2 + h[5 + olen] == len;
}

/* PDMv2's first 16 bits are right: version 2, reserved bits zero. */
static __always_inline int pdm_v2_version_ok(const __u8 *h, __u32 o)
{
	return pdm_opt_get16(h, o) == PDM_V2_VERSION_WORD;
}

/*
 * The fields of a clear option whose option data starts at h[o]: RFC 8250, PDMv2 clear
 * or C/D (type 0x0F, told apart by `olen`), or E clear (`type` is layout E's). 0; -1
 * for any other length, or a PDMv2 version word that is wrong (malformed): an option of
 * E's type with an unknown length is reported, never guessed at.
 */
static __always_inline int pdm_option_read_clear(const __u8 *h, __u32 o, __u8 type, __u8 olen, __u32 e_type,
						 struct pdm_fields *f)
{
	f->type = type;
	if (type == e_type || olen == PDM_ODL_WIDE) {
		if (olen != PDM_ODL_WIDE ||
		    (pdm_opt_get16(h, o + PDM_WIDE_VER_EPOCH) & 0xf000) != PDM_V2_VERSION_WORD ||
		    pdm_opt_get16(h, o + PDM_WIDE_RESERVED))
			return -1;
		f->layout = type == e_type ? PDM_LAYOUT_DRAFT15 : PDM_LAYOUT_DRAFT09;
		f->kri = pdm_opt_get16(h, o + PDM_WIDE_VER_EPOCH) & 0xfff;
		f->psntp = pdm_opt_get32(h, o + PDM_WIDE_PSNTP);
		f->psnlr = pdm_opt_get32(h, o + PDM_WIDE_PSNLR);
		f->gp = pdm_opt_get32(h, o + PDM_WIDE_GP);
		f->stlr = pdm_opt_get8(h, o + PDM_WIDE_SCALE_DTLR);
		f->stls = pdm_opt_get8(h, o + PDM_WIDE_SCALE_DTLS);
		f->dtlr = pdm_opt_get16(h, o + PDM_WIDE_DTLR);
		f->dtls = pdm_opt_get16(h, o + PDM_WIDE_DTLS);
		return 0;
	}
	if (type != PDM_OPTION_TYPE || (olen != PDM_ODL_RFC8250 && olen != PDM_ODL_V2_CLEAR))
		return -1;
	if (olen == PDM_ODL_RFC8250) {
		f->layout = PDM_LAYOUT_RFC8250;
		f->stlr = pdm_opt_get8(h, o + PDM_RFC8250_SCALE_DTLR);
		f->stls = pdm_opt_get8(h, o + PDM_RFC8250_SCALE_DTLS);
		f->psntp = pdm_opt_get16(h, o + PDM_RFC8250_PSNTP);
		f->psnlr = pdm_opt_get16(h, o + PDM_RFC8250_PSNLR);
		f->dtlr = pdm_opt_get16(h, o + PDM_RFC8250_DTLR);
		f->dtls = pdm_opt_get16(h, o + PDM_RFC8250_DTLS);
		return 0;
	}
	if (!pdm_v2_version_ok(h, o))
		return -1;
	f->layout = PDM_LAYOUT_V2_CLEAR;
	f->rn_f = pdm_opt_get16(h, o + PDM_V2_RN_F);
	f->stlr = pdm_opt_get8(h, o + PDM_V2_SCALE_DTLR);
	f->stls = pdm_opt_get8(h, o + PDM_V2_SCALE_DTLS);
	f->gp = ((__u32)pdm_opt_get16(h, o + PDM_V2_GP) << 16) | pdm_opt_get16(h, o + PDM_V2_GP + 2);
	f->psntp = pdm_opt_get16(h, o + PDM_V2_PSNTP);
	f->psnlr = pdm_opt_get16(h, o + PDM_V2_PSNLR);
	f->dtlr = pdm_opt_get16(h, o + PDM_V2_DTLR);
	f->dtls = pdm_opt_get16(h, o + PDM_V2_DTLS);
	return 0;
}

/* The fields of an opened protected option: `t` holds its opened bytes (option data
 * PDM_V2_SEALED on); the Random Number and F and the Kri come from outside them. */
#define PDM_OPENED(field) ((field)-PDM_V2_SEALED)
static __always_inline void pdm_option_read_opened(const __u8 *t, __u16 rn_f, __u32 kri, struct pdm_fields *f)
{
	f->stlr = t[PDM_OPENED(PDM_V2_SCALE_DTLR)];
	f->stls = t[PDM_OPENED(PDM_V2_SCALE_DTLS)];
	f->gp = ((__u32)pdm_be16(t + PDM_OPENED(PDM_V2_GP)) << 16) | pdm_be16(t + PDM_OPENED(PDM_V2_GP) + 2);
	f->psntp = pdm_be16(t + PDM_OPENED(PDM_V2_PSNTP));
	f->psnlr = pdm_be16(t + PDM_OPENED(PDM_V2_PSNLR));
	f->dtlr = pdm_be16(t + PDM_OPENED(PDM_V2_DTLR));
	f->dtls = pdm_be16(t + PDM_OPENED(PDM_V2_DTLS));
	f->rn_f = rn_f;
	f->kri = kri;
	f->layout = PDM_LAYOUT_V2_PROTECTED;
}

/*
 * The fields of an opened layout E option: `o` is the option (Type byte first, PSNTP in
 * the clear), `t` its 16 opened bytes (the clear form's o8-23), `index` the sender's key
 * index whose key opened it. -1 when the reserved bits are set (malformed).
 */
static __always_inline int pdm_option_read_opened_e(const __u8 *o, const __u8 *t, __u32 index, struct pdm_fields *f)
{
	if (t[PDM_WIDE_RESERVED + 2 - PDM_E_SEALED] | t[PDM_WIDE_RESERVED + 3 - PDM_E_SEALED])
		return -1;
	f->type = o[0];
	f->psntp = ((__u32)pdm_be16(o + 2 + PDM_WIDE_PSNTP) << 16) | pdm_be16(o + 4 + PDM_WIDE_PSNTP);
	f->psnlr = ((__u32)pdm_be16(t + PDM_WIDE_PSNLR + 2 - PDM_E_SEALED) << 16) |
		   pdm_be16(t + PDM_WIDE_PSNLR + 4 - PDM_E_SEALED);
	f->gp = ((__u32)pdm_be16(t + PDM_WIDE_GP + 2 - PDM_E_SEALED) << 16) |
		pdm_be16(t + PDM_WIDE_GP + 4 - PDM_E_SEALED);
	f->stlr = t[PDM_WIDE_SCALE_DTLR + 2 - PDM_E_SEALED];
	f->stls = t[PDM_WIDE_SCALE_DTLS + 2 - PDM_E_SEALED];
	f->dtlr = pdm_be16(t + PDM_WIDE_DTLR + 2 - PDM_E_SEALED);
	f->dtls = pdm_be16(t + PDM_WIDE_DTLS + 2 - PDM_E_SEALED);
	f->rn_f = 0;
	f->kri = index;
	f->layout = PDM_LAYOUT_DRAFT15_PROTECTED;
	return 0;
}

#endif /* PDM_OPTION_H */

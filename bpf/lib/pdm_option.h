/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * pdm_option.h: the PDM option's bytes, written and read (wire.md 2), at the offsets
 * pdm_abi.h names. Pure byte work: no maps, no helpers.
 *
 * A stamper writes one Destination Options header: Next Header, Hdr Ext Len, the PDM
 * option, then PadN with no padding data up to the 8-byte boundary (16, 24 or 40
 * bytes). A reader accepts any header of at most PDM_DEST_OPTS_MAX bytes and finds the
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
	__u16 psntp, psnlr, dtlr, dtls, rn_f;
	__u8 stlr, stls;
	__u32 gp;
	__u32 kri; /* v2: the Kri (protected: the one whose key opened it) */
	__u8 layout;
};

static __always_inline void pdm_put16(__u8 *b, __u32 off, __u16 v)
{
	b[off] = v >> 8;
	b[off + 1] = v & 0xff;
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
	if (type == PDM_OPTION_TYPE && !w->at)
		w->at = i;
	else if (type != PDM_OPT_PADN)
		w->only_pdm = 0;
	w->i = i + 2 + olen;
	return 0;
}

/* The header as PDM stampers write it: the option at 2, then PadN(0) to its end. */
static __always_inline int pdm_opt_is_stamped_form(const __u8 *h, __u32 len)
{
	return h[2] == PDM_OPTION_TYPE && 4 + (__u32)h[3] + 2 == len && h[4 + h[3]] == PDM_OPT_PADN && h[5 + h[3]] == 0;
}

/* PDMv2's first 16 bits are right: version 2, reserved bits zero. */
static __always_inline int pdm_v2_version_ok(const __u8 *h, __u32 o)
{
	return pdm_opt_get16(h, o) == PDM_V2_VERSION_WORD;
}

/*
 * The fields of a clear option (RFC 8250 or PDMv2 clear, told apart by `olen`) whose
 * option data starts at h[o]. 0; -1 when PDMv2's version word is wrong (malformed).
 */
static __always_inline int pdm_option_read_clear(const __u8 *h, __u32 o, __u8 olen, struct pdm_fields *f)
{
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

#endif /* PDM_OPTION_H */

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * pdm_chacha20poly1305.h: the ChaCha20-Poly1305 AEAD of RFC 8439 for the PDMv2
 * protected layouts (wire.md section 4, draft-layouts.md), in BPF C, for exactly the
 * sizes PDM uses: 6 bytes of associated data and 14 of plaintext (layout A), or 8 and
 * 16 (layout E), a 16-byte tag.
 *
 * Sizes known at compile time (each caller passes constants into always-inlined code)
 * keep every loop bound constant and every buffer offset known to the verifier. The Poly1305 arithmetic uses five 26-bit limbs so that each product fits
 * in 64 bits (BPF has no wider multiply). The tag comparison looks at every byte
 * whatever the first difference, so its time does not depend on where it is.
 *
 * Checked byte for byte against node:crypto and @noble/ciphers on random inputs and
 * against the shared vectors (test/bpf/aead.test.ts, through BPF_PROG_TEST_RUN).
 */
#ifndef PDM_CHACHA20POLY1305_H
#define PDM_CHACHA20POLY1305_H

#include <linux/types.h>

#define PDM_AEAD_KEY_LEN 32
#define PDM_AEAD_NONCE_LEN 12
#define PDM_AEAD_AAD_LEN 6
#define PDM_AEAD_TEXT_LEN 14
#define PDM_AEAD_E_AAD_LEN 8
#define PDM_AEAD_E_TEXT_LEN 16
#define PDM_AEAD_TEXT_MAX 16 /* buffers: the most plaintext of any layout */
#define PDM_AEAD_TAG_LEN 16

/*
 * The AEAD's working memory. A caller with room on its stack can keep it there (the
 * AEAD alone, in aead_test.bpf.c); the data path, whose stack is nearly full, passes
 * a per-CPU map value.
 */
struct pdm_aead_work {
	__u32 state[16]; /* a ChaCha20 block's input */
	__u32 x[16];	 /* and its rounds */
	__u8 ks[64];	 /* keystream block */
	__u8 poly_key[32];
	__u8 block[16]; /* one Poly1305 input block */
	__u8 tag[PDM_AEAD_TAG_LEN];
};

static __always_inline __u32 pdm_le32(const __u8 *p)
{
	return (__u32)p[0] | ((__u32)p[1] << 8) | ((__u32)p[2] << 16) | ((__u32)p[3] << 24);
}

static __always_inline void pdm_put_le32(__u8 *p, __u32 v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

static __always_inline __u32 pdm_rotl32(__u32 v, int n)
{
	return (v << n) | (v >> (32 - n));
}

#define PDM_QR(x, a, b, c, d)                       \
	do {                                        \
		x[a] += x[b];                       \
		x[d] = pdm_rotl32(x[d] ^ x[a], 16); \
		x[c] += x[d];                       \
		x[b] = pdm_rotl32(x[b] ^ x[c], 12); \
		x[a] += x[b];                       \
		x[d] = pdm_rotl32(x[d] ^ x[a], 8);  \
		x[c] += x[d];                       \
		x[b] = pdm_rotl32(x[b] ^ x[c], 7);  \
	} while (0)

/* One 64-byte ChaCha20 block (RFC 8439 2.3) for block counter `counter`, into w->ks. */
static __always_inline void pdm_chacha20_block(struct pdm_aead_work *w, const __u8 key[PDM_AEAD_KEY_LEN],
					       const __u8 nonce[PDM_AEAD_NONCE_LEN], __u32 counter)
{
	__u32 *s = w->state, *x = w->x;
	s[0] = 0x61707865; /* "expand 32-byte k" */
	s[1] = 0x3320646e;
	s[2] = 0x79622d32;
	s[3] = 0x6b206574;
#pragma unroll
	for (int i = 0; i < 8; i++)
		s[4 + i] = pdm_le32(key + 4 * i);
	s[12] = counter;
	s[13] = pdm_le32(nonce);
	s[14] = pdm_le32(nonce + 4);
	s[15] = pdm_le32(nonce + 8);
#pragma unroll
	for (int i = 0; i < 16; i++)
		x[i] = s[i];
	for (int round = 0; round < 10; round++) {
		PDM_QR(x, 0, 4, 8, 12);
		PDM_QR(x, 1, 5, 9, 13);
		PDM_QR(x, 2, 6, 10, 14);
		PDM_QR(x, 3, 7, 11, 15);
		PDM_QR(x, 0, 5, 10, 15);
		PDM_QR(x, 1, 6, 11, 12);
		PDM_QR(x, 2, 7, 8, 13);
		PDM_QR(x, 3, 4, 9, 14);
	}
#pragma unroll
	for (int i = 0; i < 16; i++)
		pdm_put_le32(w->ks + 4 * i, x[i] + s[i]);
}

#define PDM_M26 0x3ffffff

struct pdm_poly1305 {
	__u32 r[5], h[5];
	__u32 s[4];
};

static __always_inline void pdm_poly1305_init(struct pdm_poly1305 *p, const __u8 key[32])
{
	/* r clamped (RFC 8439 2.5) and split into 26-bit limbs. */
	p->r[0] = pdm_le32(key + 0) & 0x3ffffff;
	p->r[1] = (pdm_le32(key + 3) >> 2) & 0x3ffff03;
	p->r[2] = (pdm_le32(key + 6) >> 4) & 0x3ffc0ff;
	p->r[3] = (pdm_le32(key + 9) >> 6) & 0x3f03fff;
	p->r[4] = (pdm_le32(key + 12) >> 8) & 0x00fffff;
#pragma unroll
	for (int i = 0; i < 5; i++)
		p->h[i] = 0;
#pragma unroll
	for (int i = 0; i < 4; i++)
		p->s[i] = pdm_le32(key + 16 + 4 * i);
}

/* h = (h + block + 2^128) * r mod 2^130 - 5, for one full 16-byte block. */
static __always_inline void pdm_poly1305_block(struct pdm_poly1305 *p, const __u8 m[16])
{
	__u32 r0 = p->r[0], r1 = p->r[1], r2 = p->r[2], r3 = p->r[3], r4 = p->r[4];
	__u32 s1 = r1 * 5, s2 = r2 * 5, s3 = r3 * 5, s4 = r4 * 5;
	__u32 h0 = p->h[0] + (pdm_le32(m + 0) & PDM_M26);
	__u32 h1 = p->h[1] + ((pdm_le32(m + 3) >> 2) & PDM_M26);
	__u32 h2 = p->h[2] + ((pdm_le32(m + 6) >> 4) & PDM_M26);
	__u32 h3 = p->h[3] + ((pdm_le32(m + 9) >> 6) & PDM_M26);
	__u32 h4 = p->h[4] + ((pdm_le32(m + 12) >> 8) | (1 << 24));

	__u64 d0 = (__u64)h0 * r0 + (__u64)h1 * s4 + (__u64)h2 * s3 + (__u64)h3 * s2 + (__u64)h4 * s1;
	__u64 d1 = (__u64)h0 * r1 + (__u64)h1 * r0 + (__u64)h2 * s4 + (__u64)h3 * s3 + (__u64)h4 * s2;
	__u64 d2 = (__u64)h0 * r2 + (__u64)h1 * r1 + (__u64)h2 * r0 + (__u64)h3 * s4 + (__u64)h4 * s3;
	__u64 d3 = (__u64)h0 * r3 + (__u64)h1 * r2 + (__u64)h2 * r1 + (__u64)h3 * r0 + (__u64)h4 * s4;
	__u64 d4 = (__u64)h0 * r4 + (__u64)h1 * r3 + (__u64)h2 * r2 + (__u64)h3 * r1 + (__u64)h4 * r0;

	__u64 c;
	c = d0 >> 26;
	h0 = d0 & PDM_M26;
	d1 += c;
	c = d1 >> 26;
	h1 = d1 & PDM_M26;
	d2 += c;
	c = d2 >> 26;
	h2 = d2 & PDM_M26;
	d3 += c;
	c = d3 >> 26;
	h3 = d3 & PDM_M26;
	d4 += c;
	c = d4 >> 26;
	h4 = d4 & PDM_M26;
	h0 += (__u32)c * 5;
	h1 += h0 >> 26;
	h0 &= PDM_M26;
	p->h[0] = h0;
	p->h[1] = h1;
	p->h[2] = h2;
	p->h[3] = h3;
	p->h[4] = h4;
}

/* tag = (h mod 2^130 - 5) + s mod 2^128 */
static __always_inline void pdm_poly1305_finish(struct pdm_poly1305 *p, __u8 tag[16])
{
	__u32 h0 = p->h[0], h1 = p->h[1], h2 = p->h[2], h3 = p->h[3], h4 = p->h[4], c;
	c = h1 >> 26;
	h1 &= PDM_M26;
	h2 += c;
	c = h2 >> 26;
	h2 &= PDM_M26;
	h3 += c;
	c = h3 >> 26;
	h3 &= PDM_M26;
	h4 += c;
	c = h4 >> 26;
	h4 &= PDM_M26;
	h0 += c * 5;
	c = h0 >> 26;
	h0 &= PDM_M26;
	h1 += c;

	/* g = h - p = h + 5 - 2^130; keep g when it is not negative. */
	__u32 g0 = h0 + 5;
	c = g0 >> 26;
	g0 &= PDM_M26;
	__u32 g1 = h1 + c;
	c = g1 >> 26;
	g1 &= PDM_M26;
	__u32 g2 = h2 + c;
	c = g2 >> 26;
	g2 &= PDM_M26;
	__u32 g3 = h3 + c;
	c = g3 >> 26;
	g3 &= PDM_M26;
	__u32 g4 = h4 + c - (1 << 26);
	__u32 keep_g = (g4 >> 31) - 1; /* all ones when g4 did not go below zero */
	h0 = (h0 & ~keep_g) | (g0 & keep_g);
	h1 = (h1 & ~keep_g) | (g1 & keep_g);
	h2 = (h2 & ~keep_g) | (g2 & keep_g);
	h3 = (h3 & ~keep_g) | (g3 & keep_g);
	h4 = (h4 & ~keep_g) | (g4 & keep_g);

	/* Back to four 32-bit words (mod 2^128), then add s. */
	__u32 w0 = h0 | (h1 << 26);
	__u32 w1 = (h1 >> 6) | (h2 << 20);
	__u32 w2 = (h2 >> 12) | (h3 << 14);
	__u32 w3 = (h3 >> 18) | (h4 << 8);
	__u64 f;
	f = (__u64)w0 + p->s[0];
	pdm_put_le32(tag + 0, (__u32)f);
	f = (__u64)w1 + p->s[1] + (f >> 32);
	pdm_put_le32(tag + 4, (__u32)f);
	f = (__u64)w2 + p->s[2] + (f >> 32);
	pdm_put_le32(tag + 8, (__u32)f);
	f = (__u64)w3 + p->s[3] + (f >> 32);
	pdm_put_le32(tag + 12, (__u32)f);
}

/*
 * The Poly1305 tag over aad || pad || ciphertext || pad || le64 lengths (RFC 8439 2.8),
 * into w->tag. Both fit one block each (at most 16 bytes).
 */
static __always_inline void pdm_aead_tag(struct pdm_aead_work *w, const __u8 *aad, const int aad_len, const __u8 *ct,
					 const int text_len)
{
	struct pdm_poly1305 p;
	__u8 *block = w->block;
	pdm_poly1305_init(&p, w->poly_key);
#pragma unroll
	for (int i = 0; i < 16; i++)
		block[i] = i < aad_len ? aad[i] : 0;
	pdm_poly1305_block(&p, block);
#pragma unroll
	for (int i = 0; i < 16; i++)
		block[i] = i < text_len ? ct[i] : 0;
	pdm_poly1305_block(&p, block);
#pragma unroll
	for (int i = 0; i < 16; i++)
		block[i] = 0;
	block[0] = aad_len;
	block[8] = text_len;
	pdm_poly1305_block(&p, block);
	pdm_poly1305_finish(&p, w->tag);
}

/* Seal: ct = plaintext XOR keystream(counter 1), tag over aad and ct. `pt` may be `ct`. */
static __always_inline void pdm_chacha20poly1305_seal_n(struct pdm_aead_work *w, const __u8 key[PDM_AEAD_KEY_LEN],
							const __u8 nonce[PDM_AEAD_NONCE_LEN], const __u8 *aad,
							const int aad_len, const __u8 *pt, __u8 *ct, const int text_len,
							__u8 tag[PDM_AEAD_TAG_LEN])
{
	pdm_chacha20_block(w, key, nonce, 0); /* the first 32 bytes are the one-time Poly1305 key */
#pragma unroll
	for (int i = 0; i < 32; i++)
		w->poly_key[i] = w->ks[i];
	pdm_chacha20_block(w, key, nonce, 1);
#pragma unroll
	for (int i = 0; i < PDM_AEAD_TEXT_MAX; i++)
		if (i < text_len)
			ct[i] = pt[i] ^ w->ks[i];
	pdm_aead_tag(w, aad, aad_len, ct, text_len);
#pragma unroll
	for (int i = 0; i < PDM_AEAD_TAG_LEN; i++)
		tag[i] = w->tag[i];
}

/* Open: 0 and the plaintext when the tag verifies; -1 (plaintext untouched) otherwise. */
static __always_inline int pdm_chacha20poly1305_open_n(struct pdm_aead_work *w, const __u8 key[PDM_AEAD_KEY_LEN],
						       const __u8 nonce[PDM_AEAD_NONCE_LEN], const __u8 *aad,
						       const int aad_len, const __u8 *ct, const int text_len,
						       const __u8 tag[PDM_AEAD_TAG_LEN], __u8 *pt)
{
	pdm_chacha20_block(w, key, nonce, 0);
#pragma unroll
	for (int i = 0; i < 32; i++)
		w->poly_key[i] = w->ks[i];
	pdm_aead_tag(w, aad, aad_len, ct, text_len);
	__u8 diff = 0;
#pragma unroll
	for (int i = 0; i < PDM_AEAD_TAG_LEN; i++)
		diff |= w->tag[i] ^ tag[i];
	if (diff)
		return -1;
	pdm_chacha20_block(w, key, nonce, 1);
#pragma unroll
	for (int i = 0; i < PDM_AEAD_TEXT_MAX; i++)
		if (i < text_len)
			pt[i] = ct[i] ^ w->ks[i];
	return 0;
}

/* Layout A's sizes: 6 bytes of associated data, 14 of plaintext. */
static __always_inline void pdm_chacha20poly1305_seal(struct pdm_aead_work *w, const __u8 key[PDM_AEAD_KEY_LEN],
						      const __u8 nonce[PDM_AEAD_NONCE_LEN],
						      const __u8 aad[PDM_AEAD_AAD_LEN],
						      const __u8 pt[PDM_AEAD_TEXT_LEN], __u8 ct[PDM_AEAD_TEXT_LEN],
						      __u8 tag[PDM_AEAD_TAG_LEN])
{
	pdm_chacha20poly1305_seal_n(w, key, nonce, aad, PDM_AEAD_AAD_LEN, pt, ct, PDM_AEAD_TEXT_LEN, tag);
}

static __always_inline int pdm_chacha20poly1305_open(struct pdm_aead_work *w, const __u8 key[PDM_AEAD_KEY_LEN],
						     const __u8 nonce[PDM_AEAD_NONCE_LEN],
						     const __u8 aad[PDM_AEAD_AAD_LEN], const __u8 ct[PDM_AEAD_TEXT_LEN],
						     const __u8 tag[PDM_AEAD_TAG_LEN], __u8 pt[PDM_AEAD_TEXT_LEN])
{
	return pdm_chacha20poly1305_open_n(w, key, nonce, aad, PDM_AEAD_AAD_LEN, ct, PDM_AEAD_TEXT_LEN, tag, pt);
}

#endif

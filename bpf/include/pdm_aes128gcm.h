/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * pdm_aes128gcm.h: AES-128-GCM (NIST SP 800-38D) for the PDMv2 protected layout
 * (wire.md section 4) and layout E (draft-layouts.md), for exactly the sizes PDM uses: a
 * 96-bit nonce, 6 bytes of associated data and 14 of plaintext (A) or 8 and 16 (E), a
 * 16-byte tag.
 *
 * The block cipher is the kernel's, through the BPF crypto kfuncs (an "ecb(aes)"
 * context made for the key). Per packet the caller encrypts two blocks
 * (pdm_gcm_counter_blocks):
 *
 *   nonce || 00000001   -> E(K, J0), which masks the tag
 *   nonce || 00000002   -> the keystream for the plaintext (14 or 16 bytes)
 *
 * What is left is done here: the XOR with the keystream, and GHASH. With one block of
 * associated data A, one of ciphertext C and the lengths block L, GHASH is
 * ((A·H ^ C)·H ^ L)·H = A·H^3 ^ C·H^2 ^ L·H. L is the same for every option of a
 * layout, so L·H is computed once per key (for each layout's sizes), with tables for H^2 and H^3 (pdm_gcm_key_init, from H =
 * E(K, 0^128); Shoup's 4-bit method: each power times every 4-bit value). Per packet
 * that leaves two products, over A's 6 bytes and C's 14 (the zero bytes after them
 * add nothing): 40 table steps instead of the 96 of three full products. The table
 * lookups are indexed by the data being hashed; the reduction table, indexed by
 * secret bits, fits in one cache line. The tag comparison looks at every byte.
 *
 * Checked byte for byte against node:crypto on random inputs and against the shared
 * vectors (test/bpf/aes-gcm.test.ts, through BPF_PROG_TEST_RUN).
 */
#ifndef PDM_AES128GCM_H
#define PDM_AES128GCM_H

#include <linux/types.h>

#define PDM_GCM_NONCE_LEN 12
#define PDM_GCM_AAD_LEN 6
#define PDM_GCM_TEXT_LEN 14
#define PDM_GCM_E_AAD_LEN 8
#define PDM_GCM_E_TEXT_LEN 16
#define PDM_GCM_TAG_LEN 16
#define PDM_GCM_BLOCKS_LEN 32 /* the two blocks the kernel's AES encrypts per packet */

/* X times each 4-bit value, in GCM's bit order (index 8 is X itself). */
struct pdm_gcm_htable {
	__u64 hi[16];
	__u64 lo[16];
};

/* What one key needs per packet, besides the kernel's AES context. */
struct pdm_gcm_key_tables {
	struct pdm_gcm_htable h2; /* times H^2: the ciphertext block */
	struct pdm_gcm_htable h3; /* times H^3: the associated-data block */
	__u64 lh_hi, lh_lo;	  /* the lengths block times H: layout A's sizes */
	__u64 lh_e_hi, lh_e_lo;	  /* and layout E's */
};

/* x^-4 reduction, per remainder nibble, already shifted to the top 16 bits. In a
 * read-only section of its own: .rodata is the data path's config, which user space
 * fills before load and checks by size. */
static const __u64 pdm_gcm_rem4[16] __attribute__((section(".rodata.pdm_gcm"))) = {
	0x0000ULL << 48, 0x1C20ULL << 48, 0x3840ULL << 48, 0x2460ULL << 48, 0x7080ULL << 48, 0x6CA0ULL << 48,
	0x48C0ULL << 48, 0x54E0ULL << 48, 0xE100ULL << 48, 0xFD20ULL << 48, 0xD940ULL << 48, 0xC560ULL << 48,
	0x9180ULL << 48, 0x8DA0ULL << 48, 0xA9C0ULL << 48, 0xB5E0ULL << 48,
};

static __always_inline __u64 pdm_be64(const __u8 *p)
{
	return ((__u64)p[0] << 56) | ((__u64)p[1] << 48) | ((__u64)p[2] << 40) | ((__u64)p[3] << 32) |
	       ((__u64)p[4] << 24) | ((__u64)p[5] << 16) | ((__u64)p[6] << 8) | (__u64)p[7];
}

/* The two counter-mode inputs for `nonce`: J0 = nonce || 1, then J0 + 1. */
static __always_inline void pdm_gcm_counter_blocks(__u8 blocks[PDM_GCM_BLOCKS_LEN], const __u8 nonce[PDM_GCM_NONCE_LEN])
{
#pragma unroll
	for (int i = 0; i < PDM_GCM_NONCE_LEN; i++) {
		blocks[i] = nonce[i];
		blocks[16 + i] = nonce[i];
	}
	blocks[12] = 0;
	blocks[13] = 0;
	blocks[14] = 0;
	blocks[15] = 1;
	blocks[28] = 0;
	blocks[29] = 0;
	blocks[30] = 0;
	blocks[31] = 2;
}

/* The table for X, 16 big-endian bytes as (hi, lo). */
static __always_inline void pdm_gcm_htable_init(struct pdm_gcm_htable *t, __u64 hi, __u64 lo)
{
	t->hi[0] = 0;
	t->lo[0] = 0;
	t->hi[8] = hi;
	t->lo[8] = lo;
#pragma unroll
	for (int i = 4; i > 0; i >>= 1) { /* times x^-1: shift right, reduce what falls off */
		__u64 r = 0xe100000000000000ULL & (0 - (lo & 1));
		lo = (hi << 63) | (lo >> 1);
		hi = (hi >> 1) ^ r;
		t->hi[i] = hi;
		t->lo[i] = lo;
	}
#pragma unroll
	for (int i = 2; i < 16; i <<= 1) {
#pragma unroll
		for (int j = 1; j < i; j++) {
			t->hi[i + j] = t->hi[i] ^ t->hi[j];
			t->lo[i + j] = t->lo[i] ^ t->lo[j];
		}
	}
}

/* Z = Z * x^4 (in GCM's bit order: a 4-bit shift right, reduced), then Z ^= H * k. */
#define PDM_GCM_STEP(t, zh, zl, k)                       \
	do {                                             \
		__u64 rem_ = (zl)&15;                    \
		(zl) = ((zh) << 60) | ((zl) >> 4);       \
		(zh) = ((zh) >> 4) ^ pdm_gcm_rem4[rem_]; \
		(zh) ^= (t)->hi[(k)&15];                 \
		(zl) ^= (t)->lo[(k)&15];                 \
	} while (0)

/*
 * (*hi, *lo) = X * (the table's value), X given as its first `len` big-endian bytes
 * (the rest zero), a nibble at a time from the end. Zero bytes at the end would add
 * nothing (Z stays 0 through them), so they are skipped.
 */
static __always_inline void pdm_gcm_mult(const struct pdm_gcm_htable *t, const __u8 *x, int len, __u64 *hi, __u64 *lo)
{
	__u8 n = x[len - 1];
	__u64 zh = t->hi[n & 15], zl = t->lo[n & 15];
	PDM_GCM_STEP(t, zh, zl, n >> 4);
	for (int i = len - 2; i >= 0; i--) { /* a real loop: unrolled, it overflows the stack */
		n = x[i];
		PDM_GCM_STEP(t, zh, zl, n);
		PDM_GCM_STEP(t, zh, zl, n >> 4);
	}
	*hi = zh;
	*lo = zl;
}

static __always_inline void pdm_put_be64(__u8 *p, __u64 v)
{
#pragma unroll
	for (int i = 0; i < 8; i++)
		p[i] = v >> (56 - 8 * i);
}

/*
 * A key's tables from H = E(K, 0^128) (16 big-endian bytes). `h1` is scratch room for
 * the table of H itself, needed only here.
 */
static __always_inline void pdm_gcm_key_init(struct pdm_gcm_key_tables *k, struct pdm_gcm_htable *h1, const __u8 h[16])
{
	__u8 x[16];
	__u64 hi, lo;
	pdm_gcm_htable_init(h1, pdm_be64(h), pdm_be64(h + 8));
	pdm_gcm_mult(h1, h, 16, &hi, &lo); /* H^2 */
	pdm_gcm_htable_init(&k->h2, hi, lo);
	pdm_put_be64(x, hi);
	pdm_put_be64(x + 8, lo);
	pdm_gcm_mult(h1, x, 16, &hi, &lo); /* H^3 */
	pdm_gcm_htable_init(&k->h3, hi, lo);
	/* L = len(A) || len(C) in bits, 64 bits each */
	pdm_put_be64(x, (__u64)PDM_GCM_AAD_LEN * 8);
	pdm_put_be64(x + 8, (__u64)PDM_GCM_TEXT_LEN * 8);
	pdm_gcm_mult(h1, x, 16, &k->lh_hi, &k->lh_lo);
	pdm_put_be64(x, (__u64)PDM_GCM_E_AAD_LEN * 8);
	pdm_put_be64(x + 8, (__u64)PDM_GCM_E_TEXT_LEN * 8);
	pdm_gcm_mult(h1, x, 16, &k->lh_e_hi, &k->lh_e_lo);
}

/*
 * The tag over aad and ct: GHASH of (aad padded, ct padded, bit lengths), that is
 * A·H^3 ^ C·H^2 ^ L·H, masked with E(K, J0), the first of the two blocks in `cipher`.
 */
static __always_inline void pdm_gcm_tag(const struct pdm_gcm_key_tables *k, const __u8 cipher[PDM_GCM_BLOCKS_LEN],
					const __u8 *aad, const int aad_len, const __u8 *ct, const int text_len,
					__u8 tag[PDM_GCM_TAG_LEN])
{
	__u64 ah, al, ch, cl;
	const int e = aad_len == PDM_GCM_E_AAD_LEN;
	pdm_gcm_mult(&k->h3, aad, aad_len, &ah, &al);
	pdm_gcm_mult(&k->h2, ct, text_len, &ch, &cl);
	pdm_put_be64(tag, ah ^ ch ^ (e ? k->lh_e_hi : k->lh_hi) ^ pdm_be64(cipher));
	pdm_put_be64(tag + 8, al ^ cl ^ (e ? k->lh_e_lo : k->lh_lo) ^ pdm_be64(cipher + 8));
}

/* Seal, once the kernel has encrypted the counter blocks into `cipher`. */
static __always_inline void pdm_gcm_seal_n(const struct pdm_gcm_key_tables *t, const __u8 cipher[PDM_GCM_BLOCKS_LEN],
					   const __u8 *aad, const int aad_len, const __u8 *pt, __u8 *ct,
					   const int text_len, __u8 tag[PDM_GCM_TAG_LEN])
{
#pragma unroll
	for (int i = 0; i < 16; i++)
		if (i < text_len)
			ct[i] = pt[i] ^ cipher[16 + i];
	pdm_gcm_tag(t, cipher, aad, aad_len, ct, text_len, tag);
}

/* Open: 0 and the plaintext when the tag verifies; -1 (plaintext untouched) otherwise. */
static __always_inline int pdm_gcm_open_n(const struct pdm_gcm_key_tables *t, const __u8 cipher[PDM_GCM_BLOCKS_LEN],
					  const __u8 *aad, const int aad_len, const __u8 *ct, const int text_len,
					  const __u8 tag[PDM_GCM_TAG_LEN], __u8 *pt)
{
	__u8 expected[PDM_GCM_TAG_LEN];
	pdm_gcm_tag(t, cipher, aad, aad_len, ct, text_len, expected);
	__u8 diff = 0;
#pragma unroll
	for (int i = 0; i < PDM_GCM_TAG_LEN; i++)
		diff |= expected[i] ^ tag[i];
	if (diff)
		return -1;
#pragma unroll
	for (int i = 0; i < 16; i++)
		if (i < text_len)
			pt[i] = ct[i] ^ cipher[16 + i];
	return 0;
}

/* Layout A's sizes: 6 bytes of associated data, 14 of plaintext. */
static __always_inline void pdm_gcm_seal(const struct pdm_gcm_key_tables *t, const __u8 cipher[PDM_GCM_BLOCKS_LEN],
					 const __u8 aad[PDM_GCM_AAD_LEN], const __u8 pt[PDM_GCM_TEXT_LEN],
					 __u8 ct[PDM_GCM_TEXT_LEN], __u8 tag[PDM_GCM_TAG_LEN])
{
	pdm_gcm_seal_n(t, cipher, aad, PDM_GCM_AAD_LEN, pt, ct, PDM_GCM_TEXT_LEN, tag);
}

static __always_inline int pdm_gcm_open(const struct pdm_gcm_key_tables *t, const __u8 cipher[PDM_GCM_BLOCKS_LEN],
					const __u8 aad[PDM_GCM_AAD_LEN], const __u8 ct[PDM_GCM_TEXT_LEN],
					const __u8 tag[PDM_GCM_TAG_LEN], __u8 pt[PDM_GCM_TEXT_LEN])
{
	return pdm_gcm_open_n(t, cipher, aad, PDM_GCM_AAD_LEN, ct, PDM_GCM_TEXT_LEN, tag, pt);
}

#endif

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * pdm_codec.h: the arithmetic of PDM that both the eBPF programs and the host C
 * test harness compile (no helpers, no maps): delta-time encoding (wire.md section 3)
 * and the Random Number LFSR (wire.md section 4).
 *
 * Delta encoding without 128-bit arithmetic: N ns = N x 10^9 attoseconds
 * = (N x 5^9) << 9. N x 5^9 needs up to 85 bits, so it is computed as two 64-bit
 * halves; the 16 most significant bits of the product are DELTA (the << 9 does not
 * change them) and SCALE counts the bits dropped below them, plus the 9.
 */
#ifndef PDM_CODEC_H
#define PDM_CODEC_H

#include <linux/types.h>

#ifndef PDM_INLINE
#define PDM_INLINE static inline __attribute__((always_inline))
#endif

#define PDM_FIVE_POW_9 1953125ULL
#define PDM_LFSR_MASK 0x6000

/* Number of significant bits of v (0 for 0), loop-free for the verifier. */
PDM_INLINE __u32 pdm_bitlen64(__u64 v)
{
	__u32 n = 0;
	if (v >> 32) {
		n += 32;
		v >>= 32;
	}
	if (v >> 16) {
		n += 16;
		v >>= 16;
	}
	if (v >> 8) {
		n += 8;
		v >>= 8;
	}
	if (v >> 4) {
		n += 4;
		v >>= 4;
	}
	if (v >> 2) {
		n += 2;
		v >>= 2;
	}
	if (v >> 1) {
		n += 1;
		v >>= 1;
	}
	return n + (__u32)v;
}

/* Encode an interval of ns nanoseconds (any u64) as (delta, scale). 0 -> (0, 0). */
PDM_INLINE void pdm_encode_delta_ns(__u64 ns, __u16 *delta, __u8 *scale)
{
	if (ns == 0) {
		*delta = 0;
		*scale = 0;
		return;
	}
	/* m = ns * 5^9 as hi:lo. Each partial product is below 2^53. */
	__u64 a = (ns >> 32) * PDM_FIVE_POW_9;
	__u64 b = (ns & 0xffffffffULL) * PDM_FIVE_POW_9;
	__u64 lo = (a << 32) + b;
	__u64 hi = (a >> 32) + (lo < b ? 1 : 0);
	__u32 shift; /* bits of m below its top 16 */
	__u64 top;
	if (hi) {
		__u32 bits = 64 + pdm_bitlen64(hi);
		shift = bits - 16; /* >= 49 */
		if (shift >= 64)
			top = hi >> (shift - 64);
		else
			top = (hi << (64 - shift)) | (lo >> shift);
	} else {
		/* ns >= 1 makes m >= 5^9 > 2^16, so bits > 16 */
		shift = pdm_bitlen64(lo) - 16;
		top = lo >> shift;
	}
	*delta = (__u16)top;
	*scale = (__u8)(shift + 9);
}

/* One Galois step of x^15 + x^14 + 1 (mask 0x6000): the next Random Number. */
PDM_INLINE __u16 pdm_lfsr_step(__u16 state)
{
	__u16 next = state >> 1;
	return (state & 1) ? (next ^ PDM_LFSR_MASK) : next;
}

/* A non-zero 15-bit LFSR start state from 32 random bits. */
PDM_INLINE __u16 pdm_lfsr_seed(__u32 random)
{
	return (__u16)(1 + random % 32767);
}

#endif /* PDM_CODEC_H */

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * pdm_nonce.h: the protected layout's AEAD nonce (wire.md 4), built in one place for
 * sealing and opening: six zero bytes, the Kri (32 bits, big-endian), then the Random
 * Number and F as they are on the wire (option-data bytes PDM_V2_RN_F and on).
 *
 * Never the same nonce twice under one key: a key belongs to one flow, one direction
 * and one Kri, and within a Kri the Random Numbers are an LFSR's period without repeat
 * (rotation before it runs out, pdm_egress).
 *
 * Layout E's nonce (draft-layouts.md) is six zero bytes and the option's bytes 2-7: Ver
 * + Epoch and PSNTP. A key belongs to one key index, which moves on long before PSNTP
 * (32 bits, +1 per packet) could come back to a value (rotation every few thousand
 * packets at most), so under one key PSNTP never repeats either.
 */
#ifndef PDM_NONCE_H
#define PDM_NONCE_H

#include <linux/types.h>

#include "../include/pdm_chacha20poly1305.h" /* PDM_AEAD_NONCE_LEN */

static __always_inline void pdm_nonce(__u8 nonce[PDM_AEAD_NONCE_LEN], __u32 kri, const __u8 rn_f[2])
{
	__builtin_memset(nonce, 0, 6);
	nonce[6] = kri >> 24;
	nonce[7] = kri >> 16;
	nonce[8] = kri >> 8;
	nonce[9] = kri;
	nonce[10] = rn_f[0];
	nonce[11] = rn_f[1];
}

/* Layout E: `o` is the option from its Type byte. */
static __always_inline void pdm_nonce_e(__u8 nonce[PDM_AEAD_NONCE_LEN], const __u8 *o)
{
	__builtin_memset(nonce, 0, 6);
#pragma unroll
	for (int i = 0; i < 6; i++)
		nonce[6 + i] = o[2 + i];
}

#endif /* PDM_NONCE_H */

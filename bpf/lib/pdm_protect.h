/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * pdm_protect.h: sealing and opening the protected layout's option (wire.md 4) with the
 * deployment's AEAD: ChaCha20-Poly1305 in BPF C, or AES-128-GCM (the kernel's AES, GHASH
 * in BPF C) in the PDM_WITH_GCM build. What is sealed is option-data bytes
 * PDM_V2_SEALED..PDM_V2_TAG-1, in place, the tag after them; the associated data is
 * Option Type, Opt Data Len and option-data bytes 0-3 (version and Random Number + F).
 * Layout E (draft-layouts.md) seals the option's bytes 8-23 in place, the tag after them,
 * with bytes 0-7 (Type, length, Ver + Epoch, PSNTP) as the associated data.
 */
#ifndef PDM_PROTECT_H
#define PDM_PROTECT_H

#include "pdm_maps.h"
#include "pdm_keys.h"
#include "pdm_nonce.h"

/* Offsets in an option that starts at its Type byte. */
#define PDM_PROT_AAD 0			    /* Type, Opt Data Len, option-data bytes 0-3 */
#define PDM_PROT_RN_F (2 + PDM_V2_RN_F)	    /* Random Number and F */
#define PDM_PROT_SEALED (2 + PDM_V2_SEALED) /* ciphertext */
#define PDM_PROT_TAG (2 + PDM_V2_TAG)	    /* tag */

/*
 * Seal the option in w->out (its clear fields written there already) in place, under
 * the key egress copied into w->key (pdm_take_key), or with AES-128-GCM the key at
 * w->gcm_id. 0 once sealed; -1 when the AES key went missing meanwhile.
 */
static __always_inline int pdm_seal(struct pdm_seal_work *w)
{
	__u32 kri = w->kri;
	__u8 *o = w->out + PDM_IPV6_HLEN - 4 + 2; /* the option, after Next Header and Hdr Ext Len */
	if (cfg.layout == PDM_LAYOUT_DRAFT15_PROTECTED) {
		pdm_nonce_e(w->nonce, o);
		__builtin_memcpy(w->pt, o + PDM_E_SEALED, PDM_E_SEALED_LEN);
#ifdef PDM_WITH_GCM
		if (cfg.aead == PDM_AEAD_AES128GCM) {
			struct pdm_gcm_key *k = pdm_gcm_blocks(&w->gcm_id, kri, w->nonce, w->gcm_in, w->gcm_out);
			if (!k)
				return -1;
			pdm_gcm_seal_n(&k->tables, w->gcm_out, o, PDM_E_AAD_LEN, w->pt, o + PDM_E_SEALED,
				       PDM_E_SEALED_LEN, o + PDM_E_TAG);
			return 0;
		}
#endif
		pdm_chacha20poly1305_seal_n(&w->aead, w->key, w->nonce, o, PDM_E_AAD_LEN, w->pt, o + PDM_E_SEALED,
					    PDM_E_SEALED_LEN, o + PDM_E_TAG);
		return 0;
	}
	pdm_nonce(w->nonce, kri, o + PDM_PROT_RN_F);
	__builtin_memcpy(w->pt, o + PDM_PROT_SEALED, PDM_AEAD_TEXT_LEN);
#ifdef PDM_WITH_GCM
	if (cfg.aead == PDM_AEAD_AES128GCM) {
		struct pdm_gcm_key *k = pdm_gcm_blocks(&w->gcm_id, kri, w->nonce, w->gcm_in, w->gcm_out);
		if (!k)
			return -1;
		pdm_gcm_seal(&k->tables, w->gcm_out, o + PDM_PROT_AAD, w->pt, o + PDM_PROT_SEALED, o + PDM_PROT_TAG);
		return 0;
	}
#endif
	pdm_chacha20poly1305_seal(&w->aead, w->key, w->nonce, o + PDM_PROT_AAD, w->pt, o + PDM_PROT_SEALED,
				  o + PDM_PROT_TAG);
	return 0;
}

/*
 * One try at opening w->option under `key` (w->nonce ready). A function of its own, not
 * inlined: the AEAD's registers spill onto a stack frame of their own this way.
 */
static __noinline int pdm_open_option(struct pdm_open_work *w, const __u8 *key)
{
	const __u8 *o = w->option;
#ifdef PDM_WITH_GCM
	if (cfg.aead == PDM_AEAD_AES128GCM)
		return -1; /* see pdm_open_option_gcm */
#endif
	return pdm_chacha20poly1305_open(&w->aead, key, w->nonce, o + PDM_PROT_AAD, o + PDM_PROT_SEALED,
					 o + PDM_PROT_TAG, w->pt);
}

/* The same for layout E, in a frame of its own too (one function with both would not fit). */
static __noinline int pdm_open_option_e(struct pdm_open_work *w, const __u8 *key)
{
	const __u8 *o = w->option;
#ifdef PDM_WITH_GCM
	if (cfg.aead == PDM_AEAD_AES128GCM)
		return -1; /* see pdm_open_option_gcm */
#endif
	return pdm_chacha20poly1305_open_n(&w->aead, key, w->nonce, o, PDM_E_AAD_LEN, o + PDM_E_SEALED,
					   PDM_E_SEALED_LEN, o + PDM_E_TAG, w->pt);
}

#ifdef PDM_WITH_GCM
/* The same with AES-128-GCM: the key of w->gcm_id (its slot set by the caller) for `kri`. */
static __noinline int pdm_open_option_gcm(struct pdm_open_work *w, __u32 kri)
{
	const __u8 *o = w->option;
	struct pdm_gcm_key *k = pdm_gcm_blocks(&w->gcm_id, kri, w->nonce, w->gcm_in, w->gcm_out);
	if (!k)
		return -1;
	if (cfg.layout == PDM_LAYOUT_DRAFT15_PROTECTED)
		return pdm_gcm_open_n(&k->tables, w->gcm_out, o, PDM_E_AAD_LEN, o + PDM_E_SEALED, PDM_E_SEALED_LEN,
				      o + PDM_E_TAG, w->pt);
	return pdm_gcm_open(&k->tables, w->gcm_out, o + PDM_PROT_AAD, o + PDM_PROT_SEALED, o + PDM_PROT_TAG, w->pt);
}
#endif

/*
 * Open w->option with the peer's `keys`: each installed key whose Kri has the option's
 * F (layout E: whose low 12 bits are the option's Epoch), so the current, previous and
 * next Kri when the agent has installed them. 0 with *kri the Kri that opened it (w->pt
 * then holds the opened bytes), else -1. `rn_f` is layout A's Random Number and F word,
 * layout E's Ver + Epoch word.
 */
static __always_inline int pdm_open_with_peer_keys(struct pdm_open_work *w, const struct pdm_flow_key *flow,
						   const struct pdm_flow_keys *keys, __u16 rn_f, __u32 *kri_out)
{
	int opened = -1;
	__u32 kri = 0;
#ifdef PDM_WITH_GCM
	w->gcm_id.flow = *flow;
	w->gcm_id.side = PDM_GCM_PEER;
#endif
#pragma nounroll
	for (int slot = 0; slot < PDM_KEY_SLOTS; slot++) { /* not unrolled: three AEADs overflow the stack */
		if (opened == 0 || !keys->present[slot])
			continue;
		if (cfg.layout == PDM_LAYOUT_DRAFT15_PROTECTED) {
			if ((keys->kri[slot] & PDM_EPOCH_MASK) != (rn_f & PDM_EPOCH_MASK))
				continue;
			kri = keys->kri[slot];
			pdm_nonce_e(w->nonce, w->option);
		} else {
			if ((keys->kri[slot] & 1) != (rn_f & 1))
				continue;
			kri = keys->kri[slot];
			pdm_nonce(w->nonce, kri, w->option + PDM_PROT_RN_F);
		}
#ifdef PDM_WITH_GCM
		if (cfg.aead == PDM_AEAD_AES128GCM) {
			w->gcm_id.slot = slot;
			opened = pdm_open_option_gcm(w, kri);
			continue;
		}
#endif
		opened = cfg.layout == PDM_LAYOUT_DRAFT15_PROTECTED ? pdm_open_option_e(w, keys->key[slot])
								    : pdm_open_option(w, keys->key[slot]);
	}
	*kri_out = kri;
	return opened;
}

#endif /* PDM_PROTECT_H */

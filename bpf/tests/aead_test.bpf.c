// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * aead_test.bpf.c: the in-kernel AEAD on its own, for BPF_PROG_TEST_RUN (never
 * attached). Each program reads its inputs from the test packet and writes its
 * result back into it, so a test can compare the bytes with node:crypto.
 *
 *   aead_seal  in:  key(32) nonce(12) aad(6) plaintext(14)      at 0..63
 *              out: ciphertext(14) tag(16)                      at 64..93
 *   aead_open  in:  key(32) nonce(12) aad(6) ciphertext(14) tag(16)  at 0..79
 *              out: plaintext(14) at 80..93; returns 1 if the tag verified, 2 if not
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "../include/pdm_chacha20poly1305.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct aead_in {
	__u8 key[PDM_AEAD_KEY_LEN];
	__u8 nonce[PDM_AEAD_NONCE_LEN];
	__u8 aad[PDM_AEAD_AAD_LEN];
	__u8 text[PDM_AEAD_TEXT_LEN];
	__u8 tag[PDM_AEAD_TAG_LEN];
};

SEC("tc")
int aead_seal(struct __sk_buff *skb)
{
	struct aead_in in;
	if (bpf_skb_load_bytes(skb, 0, &in, 64))
		return TC_ACT_SHOT;
	__u8 out[PDM_AEAD_TEXT_LEN + PDM_AEAD_TAG_LEN];
	struct pdm_aead_work w;
	pdm_chacha20poly1305_seal(&w, in.key, in.nonce, in.aad, in.text, out, out + PDM_AEAD_TEXT_LEN);
	if (bpf_skb_store_bytes(skb, 64, out, sizeof(out), 0))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

SEC("tc")
int aead_open(struct __sk_buff *skb)
{
	struct aead_in in;
	if (bpf_skb_load_bytes(skb, 0, &in, sizeof(in)))
		return TC_ACT_SHOT;
	__u8 pt[PDM_AEAD_TEXT_LEN];
	struct pdm_aead_work w;
	if (pdm_chacha20poly1305_open(&w, in.key, in.nonce, in.aad, in.text, in.tag, pt))
		return 2;
	if (bpf_skb_store_bytes(skb, 80, pt, sizeof(pt), 0))
		return TC_ACT_SHOT;
	return 1;
}

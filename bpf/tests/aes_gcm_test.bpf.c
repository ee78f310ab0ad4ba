// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * aes_gcm_test.bpf.c: the in-kernel AES-128-GCM on its own, for BPF_PROG_TEST_RUN
 * (never attached): the kernel's AES through the BPF crypto kfuncs, GHASH in BPF C
 * (include/pdm_aes128gcm.h).
 *
 *   gcm_setup  (syscall program) in: key(16); out: err(4) at 16. Makes the "ecb(aes)"
 *              context for the key and keeps it in gcm_key. Returns 0 or what failed.
 *   gcm_htable then, once per key: the GHASH tables from H = E(K, 0^128), into gcm_key.
 *              Returns 0 or what failed.
 *   gcm_seal   in:  nonce(12) aad(6) plaintext(14)        at 0..31
 *              out: ciphertext(14) tag(16)                at 32..61
 *   gcm_open   in:  nonce(12) aad(6) ciphertext(14) tag(16)   at 0..47
 *              out: plaintext(14) at 48..61; returns 1 if the tag verified, 2 if not
 *
 * Needs clang 15 or later: the context lives in a map as a kptr, which older clang
 * cannot describe in BTF. Built by bpf/Makefile with $(CLANG_KPTR).
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "../include/pdm_aes128gcm.h"
#include "../include/pdm_bpf_crypto.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* One key: the kernel's AES context, and the GHASH tables from H = E(K, 0^128). */
struct gcm_key_value {
	struct bpf_crypto_ctx __kptr *ctx;
	struct pdm_gcm_key_tables tables;
};
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gcm_key_value);
} gcm_key SEC(".maps");

/* Per-packet blocks in and out of the kernel's AES (a map value: dynptrs need one),
 * and the table of H while a key's tables are made. */
struct gcm_blocks {
	__u8 in[PDM_GCM_BLOCKS_LEN];
	__u8 out[PDM_GCM_BLOCKS_LEN];
	struct pdm_gcm_htable h1;
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gcm_blocks);
} gcm_scratch SEC(".maps");

struct setup_args {
	__u8 key[16];
	__s32 err;
};

/* 408 bytes: too big for the stack next to the table, so a global (setup runs one at a time). */
struct bpf_crypto_params setup_params = {
	.type = "skcipher",
	.algo = "ecb(aes)",
	.key_len = 16,
};

SEC("syscall")
int gcm_setup(struct setup_args *args)
{
	__builtin_memcpy(setup_params.key, args->key, 16);
	int err = 0;
	struct bpf_crypto_ctx *ctx = bpf_crypto_ctx_create(&setup_params, sizeof(setup_params), &err);
	__builtin_memset(setup_params.key, 0, 16); /* the key stays in the kernel's context only */
	args->err = err;
	if (!ctx)
		return 1;
	__u32 zero = 0;
	struct gcm_key_value *v = bpf_map_lookup_elem(&gcm_key, &zero);
	if (!v) {
		bpf_crypto_ctx_release(ctx);
		return 2;
	}
	ctx = bpf_kptr_xchg(&v->ctx, ctx);
	if (ctx)
		bpf_crypto_ctx_release(ctx);
	return 0;
}

/*
 * The second step of setting a key: H = E(K, 0^128) and its GHASH table, once per key
 * rather than per packet. A tc program, run once through BPF_PROG_TEST_RUN, because
 * the kernel lets only those (not syscall programs) encrypt.
 */
SEC("tc")
int gcm_htable(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct gcm_key_value *v = bpf_map_lookup_elem(&gcm_key, &zero);
	struct gcm_blocks *b = bpf_map_lookup_elem(&gcm_scratch, &zero);
	if (!v || !b)
		return 1;
	struct bpf_crypto_ctx *ctx = v->ctx;
	if (!ctx)
		return 2;
	__builtin_memset(b->in, 0, 16);
	struct bpf_dynptr src, dst;
	bpf_dynptr_from_mem(b->in, 16, 0, &src);
	bpf_dynptr_from_mem(b->out, 16, 0, &dst);
	if (bpf_crypto_encrypt(ctx, &src, &dst, NULL))
		return 3;
	pdm_gcm_key_init(&v->tables, &b->h1, b->out);
	__builtin_memset(b->out, 0, 16); /* H stays in the table only */
	return 0;
}

/* E(K, J0) and the keystream for `nonce` into b->out; the key, or NULL if there is none or the kernel refused. */
static __always_inline struct gcm_key_value *encrypt_blocks(const __u8 nonce[PDM_GCM_NONCE_LEN],
							    struct gcm_blocks **blocks)
{
	__u32 zero = 0;
	struct gcm_key_value *v = bpf_map_lookup_elem(&gcm_key, &zero);
	struct gcm_blocks *b = bpf_map_lookup_elem(&gcm_scratch, &zero);
	if (!v || !b)
		return NULL;
	struct bpf_crypto_ctx *ctx = v->ctx;
	if (!ctx)
		return NULL;
	pdm_gcm_counter_blocks(b->in, nonce);
	struct bpf_dynptr src, dst;
	bpf_dynptr_from_mem(b->in, PDM_GCM_BLOCKS_LEN, 0, &src);
	bpf_dynptr_from_mem(b->out, PDM_GCM_BLOCKS_LEN, 0, &dst);
	if (bpf_crypto_encrypt(ctx, &src, &dst, NULL))
		return NULL;
	*blocks = b;
	return v;
}

struct seal_in {
	__u8 nonce[PDM_GCM_NONCE_LEN];
	__u8 aad[PDM_GCM_AAD_LEN];
	__u8 text[PDM_GCM_TEXT_LEN];
	__u8 tag[PDM_GCM_TAG_LEN];
};

SEC("tc")
int gcm_seal(struct __sk_buff *skb)
{
	struct seal_in in;
	if (bpf_skb_load_bytes(skb, 0, &in, 32))
		return TC_ACT_SHOT;
	struct gcm_blocks *b;
	struct gcm_key_value *k = encrypt_blocks(in.nonce, &b);
	if (!k)
		return TC_ACT_SHOT;
	__u8 out[PDM_GCM_TEXT_LEN + PDM_GCM_TAG_LEN];
	pdm_gcm_seal(&k->tables, b->out, in.aad, in.text, out, out + PDM_GCM_TEXT_LEN);
	if (bpf_skb_store_bytes(skb, 32, out, sizeof(out), 0))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

SEC("tc")
int gcm_open(struct __sk_buff *skb)
{
	struct seal_in in;
	if (bpf_skb_load_bytes(skb, 0, &in, 48))
		return TC_ACT_SHOT;
	struct gcm_blocks *b;
	struct gcm_key_value *k = encrypt_blocks(in.nonce, &b);
	if (!k)
		return TC_ACT_SHOT;
	__u8 pt[PDM_GCM_TEXT_LEN] = {};
	int bad = pdm_gcm_open(&k->tables, b->out, in.aad, in.text, in.tag, pt);
	if (bpf_skb_store_bytes(skb, 48, pt, sizeof(pt), 0))
		return TC_ACT_SHOT;
	return bad ? 2 : 1;
}

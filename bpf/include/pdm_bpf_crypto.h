/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * pdm_bpf_crypto.h: the kernel's BPF crypto kfuncs (Linux 6.10 and later), declared
 * for the programs that use the kernel's AES (include/pdm_aes128gcm.h). A crypto
 * context is kept in a map value as a kptr, which needs the BTF type tags of clang
 * 15 or later; bpf/Makefile builds those objects with $(CLANG_KPTR).
 */
#ifndef PDM_BPF_CRYPTO_H
#define PDM_BPF_CRYPTO_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define __kptr __attribute__((btf_type_tag("kptr")))

/* The kernel's types, as far as the kfuncs need them. A complete struct, not a
 * forward declaration: libbpf 1.1 refuses to match a forward one against the kernel's. */
struct bpf_crypto_ctx {
	int opaque;
};
struct bpf_crypto_params {
	char type[14];
	__u8 reserved[2];
	char algo[128];
	__u8 key[256];
	__u32 key_len;
	__u32 authsize;
};
extern struct bpf_crypto_ctx *bpf_crypto_ctx_create(const struct bpf_crypto_params *params, __u32 params__sz,
						    int *err) __ksym;
extern void bpf_crypto_ctx_release(struct bpf_crypto_ctx *ctx) __ksym;
extern int bpf_crypto_encrypt(struct bpf_crypto_ctx *ctx, const struct bpf_dynptr *src, const struct bpf_dynptr *dst,
			      const struct bpf_dynptr *siv__nullable) __ksym;

#endif

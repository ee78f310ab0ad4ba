/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * pdm_maps.h: every map and global of the data path, in one place, with the values
 * only the kernel side uses (what user space also reads is in pdm_abi.h). The maps
 * user space opens are pinned by `pdm attach` under /sys/fs/bpf/pdm/<ifname>/ and
 * listed in bpf/README.md.
 */
#ifndef PDM_MAPS_H
#define PDM_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "../include/pdm_abi.h"
#include "../include/pdm_chacha20poly1305.h"
#ifdef PDM_WITH_GCM
#include "../include/pdm_aes128gcm.h"
#include "../include/pdm_bpf_crypto.h"
#endif
#include "pdm_parse.h"
#include "pdm_option.h"

/* Layout, policy and flags: filled by user space before load, so the verifier prunes
 * what the layout does not use. */
const volatile struct pdm_config cfg = {};

/* Each flow's state, keyed as this host sees the flow. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PDM_FLOWS_MAX);
	__type(key, struct pdm_flow_key);
	__type(value, struct pdm_flow_state);
} pdm_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pdm_counters);
} pdm_counters SEC(".maps");

/* The Global Pointer of each source class (PDM_GP_LINK_LOCAL, PDM_GP_GLOBAL). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} pdm_global_ptrs SEC(".maps");

/* One struct pdm_event per PDM packet stamped or read, new flow and rotation. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, PDM_EVENTS_BYTES);
} pdm_events SEC(".maps");

/* Protected layout: each flow's sealing keys, installed by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PDM_FLOWS_MAX);
	__type(key, struct pdm_flow_key);
	__type(value, struct pdm_flow_keys);
} pdm_keys SEC(".maps");

/* And each flow's peer's keys, for opening what the peer sealed. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PDM_FLOWS_MAX);
	__type(key, struct pdm_flow_key);
	__type(value, struct pdm_flow_keys);
} pdm_peer_keys SEC(".maps");

/* Which flows need which keys: read by the agent, which installs them (pdm_abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, PDM_KEY_NEEDS_BYTES);
} pdm_key_needs SEC(".maps");

#ifdef PDM_WITH_GCM
/* One installed AES-128-GCM key: the kernel's AES context for it, its GHASH tables. */
struct pdm_gcm_key {
	struct bpf_crypto_ctx __kptr *ctx;
	__u32 kri;
	__u32 pad;
	struct pdm_gcm_key_tables tables;
};
/* Allocated as keys come (no preallocation: 3 slots, 2 sides, 65,536 flows, 544 bytes). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * PDM_KEY_SLOTS * PDM_FLOWS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pdm_gcm_key_id);
	__type(value, struct pdm_gcm_key);
} pdm_gcm_keys SEC(".maps");

/* What pdm_gcm_install asks the kernel for ("ecb(aes)": the two counter blocks per
 * packet are encrypted as single blocks). A global: 408 bytes do not fit the stack. */
struct bpf_crypto_params pdm_gcm_params = {
	.type = "skcipher",
	.algo = "ecb(aes)",
	.key_len = 16,
};
/* A new pdm_gcm_keys entry starts as zeros (read-only: just a source of them). */
static const __u8 pdm_gcm_zero_key[sizeof(struct pdm_gcm_key)] __attribute__((section(".rodata.pdm_gcm")));
#endif

/*
 * The flow sweep (pdm_flow.h): the timer that forgets idle flows and evicts when the
 * table is full, with one run's counts. Pinned: the kernel cancels a map's timers once
 * no file descriptor or pin holds it.
 */
struct pdm_sweep {
	struct bpf_timer timer;
	__u32 started;
	__u32 evict;	/* a new flow was refused: evict on the next run */
	__u64 evict_ns; /* when eviction was last asked for */
	/* One run's work, kept here rather than on the stack: the verifier then sees unknown
	 * values, not constants it would follow through every count of a walk. */
	__u32 freed;			     /* flows expired or evicted in this run */
	__u32 quota[2];			     /* flows of each class still to evict... */
	__u32 from_power[2];		     /* ...among those idle for at least this power */
	__u32 idle_hist[2][PDM_IDLE_POWERS]; /* flows per class and power of two of idle ms */
};
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pdm_sweep);
} pdm_sweep SEC(".maps");

/*
 * Protected layout: what the egress program hands to the sealing program, which takes
 * over through a tail call because sealing needs more stack than the egress program
 * has left. Per CPU, so a packet's work is its own.
 */
struct pdm_seal_work {
	struct pdm_aead_work aead;
	__u8 nonce[PDM_AEAD_NONCE_LEN];
	__u8 pt[PDM_AEAD_TEXT_MAX];
	__u8 key[PDM_AEAD_KEY_LEN]; /* the flow's key for kri, copied by egress (one lookup) */
	__u32 kri;
	__u32 l3;
	__u32 send_event;
	/* IPv6 header bytes 4-39 as they must end up, then the new header (clear fields) */
	__u8 out[PDM_IPV6_HLEN - 4 + PDM_HDR_LEN_DRAFT15_PROTECTED]; /* layout A's uses the first 76 bytes */
	struct pdm_event event;					     /* sent once stamped, when events are on */
#ifdef PDM_WITH_GCM
	struct pdm_gcm_key_id gcm_id; /* AES-128-GCM: where the flow's key is */
	__u8 gcm_in[PDM_GCM_BLOCKS_LEN];
	__u8 gcm_out[PDM_GCM_BLOCKS_LEN];
#endif
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pdm_seal_work);
} pdm_seal_work SEC(".maps");

#define PDM_OPEN_NO_KEY 1
#define PDM_OPEN_AUTH_FAIL 2

/* The same on ingress: what the reader hands to the opening program. Per CPU. */
struct pdm_open_work {
	struct pdm_aead_work aead;
	__u8 nonce[PDM_AEAD_NONCE_LEN];
	__u8 pt[PDM_AEAD_TEXT_MAX];
	__u8 option[PDM_E_OPTION_LEN]; /* Type, Opt Data Len, option data (layout A's: 36 bytes) */
	struct pdm_pkt p;
	__u32 len;
	__u32 only_pdm;
	__u32 failed;		  /* 0: opened; PDM_OPEN_NO_KEY or PDM_OPEN_AUTH_FAIL */
	__u32 highest;		  /* not opened: the highest Kri the flow had keys for */
	struct pdm_fields fields; /* once opened, for pdm_ingress_read */
#ifdef PDM_WITH_GCM
	struct pdm_gcm_key_id gcm_id;
	__u8 gcm_in[PDM_GCM_BLOCKS_LEN];
	__u8 gcm_out[PDM_GCM_BLOCKS_LEN];
#endif
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pdm_open_work);
} pdm_open_work SEC(".maps");

/* The tail calls, one program each (pinned: the kernel empties a program array nobody
 * holds): egress to sealing, ingress to opening, opening to the reader's bookkeeping. */
int pdm_egress_seal(struct __sk_buff *skb);
int pdm_ingress_open(struct __sk_buff *skb);
int pdm_ingress_read(struct __sk_buff *skb);

/* A program array of one entry, `prog`, so that a program can tail-call it. */
#define PDM_TAIL_CALL(name, prog)                         \
	struct {                                          \
		__uint(type, BPF_MAP_TYPE_PROG_ARRAY);    \
		__uint(max_entries, 1);                   \
		__uint(key_size, sizeof(__u32));          \
		__array(values, int(struct __sk_buff *)); \
	} name SEC(".maps") = {                           \
		.values = {[0] = (void *)&prog},          \
	}

PDM_TAIL_CALL(pdm_seal_call, pdm_egress_seal);
PDM_TAIL_CALL(pdm_open_call, pdm_ingress_open);
PDM_TAIL_CALL(pdm_read_call, pdm_ingress_read);

/* This CPU's counters (NULL only if the map were missing: PDM_COUNT allows it). */
static __always_inline struct pdm_counters *pdm_counters_here(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&pdm_counters, &zero);
}

#define PDM_COUNT(c, field)           \
	do {                          \
		if (c)                \
			(c)->field++; \
	} while (0)

static __always_inline struct pdm_seal_work *pdm_seal_work_here(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&pdm_seal_work, &zero);
}

static __always_inline struct pdm_open_work *pdm_open_work_here(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&pdm_open_work, &zero);
}

#endif /* PDM_MAPS_H */

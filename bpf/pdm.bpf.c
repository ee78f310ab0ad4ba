// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * pdm.bpf.c: the PDM data path on tc clsact (datapath.md).
 *
 *   pdm_egress   inserts a Destination Options header carrying a PDM option (RFC 8250,
 *                PDMv2 clear or PDMv2 protected) right after the fixed IPv6 header of
 *                each selected TCP, UDP or ICMPv6 echo packet, filled from the flow's
 *                state. For the protected layout it hands over to pdm_egress_seal
 *                (tail call), which seals the option under the flow's key (pdm_keys).
 *   pdm_ingress  reads the PDM option of each arriving packet, updates the state the
 *                next egress packet needs (PSNLR, receive time), counts what it saw,
 *                and optionally removes the header. A protected option goes to
 *                pdm_ingress_open (tail call), which verifies it under the peer's keys
 *                (pdm_peer_keys), then to pdm_ingress_read for the same bookkeeping.
 *
 * The protected layout seals with ChaCha20-Poly1305 in BPF C (pdm.bpf.o). Built with
 * PDM_WITH_GCM (pdm_gcm.bpf.o: clang 15+, Linux 6.10+), it also seals with AES-128-GCM:
 * the kernel's AES through the BPF crypto kfuncs, GHASH in BPF C, each key's context
 * and table installed by user space through pdm_gcm_install (a syscall program).
 *
 * Rule for both: measurement never breaks traffic. Anything this program cannot or
 * should not stamp is counted and passed on unchanged (TC_ACT_OK), never dropped.
 * Layout, policy and flags come from `cfg`, a const volatile global user space fills
 * before load (include/pdm_abi.h), so the verifier prunes what the layout does not use.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "include/pdm_abi.h"
#include "include/pdm_codec.h"
#include "include/pdm_chacha20poly1305.h"
#ifdef PDM_WITH_GCM
#include "include/pdm_aes128gcm.h"
#include "include/pdm_bpf_crypto.h"
#endif

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile struct pdm_config cfg = {};

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

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} pdm_global_ptrs SEC(".maps");

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

/* Which flows need which keys: read by the agent, which installs them (pdm_abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, PDM_KEY_NEEDS_BYTES);
} pdm_key_needs SEC(".maps");

/* And each flow's peer's keys, for opening what the peer sealed. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PDM_FLOWS_MAX);
	__type(key, struct pdm_flow_key);
	__type(value, struct pdm_flow_keys);
} pdm_peer_keys SEC(".maps");

#ifdef PDM_WITH_GCM
/* One installed AES-128-GCM key: the kernel's AES context for it, its GHASH tables. */
struct gcm_key {
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
	__type(value, struct gcm_key);
} pdm_gcm_keys SEC(".maps");

/* What pdm_gcm_install asks the kernel for ("ecb(aes)": the two counter blocks per
 * packet are encrypted as single blocks). A global: 408 bytes do not fit the stack. */
struct bpf_crypto_params gcm_params = {
	.type = "skcipher",
	.algo = "ecb(aes)",
	.key_len = 16,
};
/* A new pdm_gcm_keys entry starts as zeros (read-only: just a source of them). */
static const __u8 gcm_zero_key[sizeof(struct gcm_key)] __attribute__((section(".rodata.pdm_gcm")));

/*
 * Install one AES-128-GCM key (run by user space through BPF_PROG_TEST_RUN, one at a
 * time): the kernel's AES context for it and the GHASH table of H, into pdm_gcm_keys
 * at the key's flow, side and slot, replacing (and releasing) what the slot held.
 * Returns 0, or 1 when the kernel refused the key (args->err), 2 when the map is full.
 */
SEC("syscall")
int pdm_gcm_install(struct pdm_gcm_install_args *args)
{
	__builtin_memcpy(gcm_params.key, args->key, 16);
	int err = 0;
	struct bpf_crypto_ctx *ctx = bpf_crypto_ctx_create(&gcm_params, sizeof(gcm_params), &err);
	__builtin_memset(gcm_params.key, 0, 16); /* the key stays in the kernel's context only */
	args->err = err;
	if (!ctx)
		return 1;
	/* A fresh entry (the slot's previous key, if any, is released with its entry),
	 * its tables made in place, its context set last: until then packets find no
	 * context and treat the slot as keyless. */
	struct pdm_gcm_key_id id = args->id;
	struct pdm_gcm_htable h1;
	if (bpf_map_update_elem(&pdm_gcm_keys, &id, gcm_zero_key, BPF_ANY)) {
		bpf_crypto_ctx_release(ctx);
		return 2;
	}
	struct gcm_key *v = bpf_map_lookup_elem(&pdm_gcm_keys, &id);
	if (!v) {
		bpf_crypto_ctx_release(ctx);
		return 2;
	}
	__u8 h[16];
	__builtin_memcpy(h, args->h, 16); /* the tables read it at computed offsets, which a context may not have */
	pdm_gcm_key_init(&v->tables, &h1, h);
	v->kri = args->kri;
	ctx = bpf_kptr_xchg(&v->ctx, ctx);
	if (ctx)
		bpf_crypto_ctx_release(ctx);
	return 0;
}

/*
 * The AES part of one AES-128-GCM option: the two counter blocks for `nonce` (in[]),
 * encrypted under the key of `id` into out[]. The key's table, or NULL when the slot
 * holds no key for `kri` (not installed yet, or already replaced).
 */
static __always_inline struct gcm_key *gcm_blocks(const struct pdm_gcm_key_id *id, __u32 kri, const __u8 *nonce,
						  __u8 *in, __u8 *out)
{
	struct gcm_key *k = bpf_map_lookup_elem(&pdm_gcm_keys, id);
	if (!k || k->kri != kri)
		return NULL;
	struct bpf_crypto_ctx *ctx = k->ctx;
	if (!ctx)
		return NULL;
	pdm_gcm_counter_blocks(in, nonce);
	struct bpf_dynptr src, dst;
	bpf_dynptr_from_mem(in, PDM_GCM_BLOCKS_LEN, 0, &src);
	bpf_dynptr_from_mem(out, PDM_GCM_BLOCKS_LEN, 0, &dst);
	if (bpf_crypto_encrypt(ctx, &src, &dst, NULL))
		return NULL;
	return k;
}
#endif

/*
 * Protected layout: what the egress program hands to the sealing program (below),
 * which takes over through a tail call because sealing needs more stack than the
 * egress program has left. Per CPU, so a packet's work is its own.
 */
struct seal_work {
	struct pdm_aead_work aead;
	__u8 nonce[PDM_AEAD_NONCE_LEN];
	__u8 pt[PDM_AEAD_TEXT_LEN];
	__u8 key[PDM_AEAD_KEY_LEN]; /* the flow's key for kri, copied by egress (one lookup) */
	__u32 kri;
	__u32 l3;
	__u32 send_event;
	/* IPv6 header bytes 4-39 as they must end up, then the new header (clear fields) */
	__u8 out[36 + PDM_HDR_LEN_V2_PROTECTED];
	struct pdm_event event; /* sent once stamped, when events are on */
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
	__type(value, struct seal_work);
} pdm_seal_work SEC(".maps");

#define IPV6_HLEN 40
#define IPV6_MIN_MTU 1280
#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_ESP 50
#define NEXTHDR_AUTH 51
#define NEXTHDR_DEST 60
#define NEXTHDR_MOBILITY 135
#define NEXTHDR_HIP 139
#define NEXTHDR_SHIM6 140
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129
#define DEST_OPTS_MAX 64 /* bytes of a Destination Options header the reader scans */

/* Packet facts both programs need, read once. */
struct pkt {
	struct ipv6hdr ip6;
	__u32 l3;	  /* offset of the IPv6 header */
	__u32 l4;	  /* offset of the transport header */
	__u8 proto;	  /* transport protocol */
	__u16 wire_sport; /* as on the wire; ICMPv6: type<<8|code */
	__u16 wire_dport; /* ICMPv6: identifier */
	__u16 flow_sport; /* as in the flow key; ICMPv6 echo: identifier */
	__u16 flow_dport;
};

static __always_inline struct pdm_counters *counters(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&pdm_counters, &zero);
}

#define COUNT(c, field)               \
	do {                          \
		if (c)                \
			(c)->field++; \
	} while (0)

/*
 * bpf_skb_load_bytes without the helper call when the bytes sit in the skb's linear
 * area, as headers nearly always do (the helper stays the fallback). `n` is a
 * compile-time constant; `off` may vary within the verifier's bounds.
 */
static __always_inline int load_fixed(struct __sk_buff *skb, __u32 off, void *to, const __u32 n)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	void *at = data + off;
	if (at + n <= end) {
		__builtin_memcpy(to, at, n);
		return 0;
	}
	return bpf_skb_load_bytes(skb, off, to, n);
}

static __always_inline int is_extension_header(__u8 nh)
{
	return nh == NEXTHDR_HOP || nh == NEXTHDR_ROUTING || nh == NEXTHDR_FRAGMENT || nh == NEXTHDR_ESP ||
	       nh == NEXTHDR_AUTH || nh == NEXTHDR_DEST || nh == NEXTHDR_MOBILITY || nh == NEXTHDR_HIP ||
	       nh == NEXTHDR_SHIM6;
}

/* Read the transport ports (or ICMPv6 type/code/identifier) at p->l4. 0 if not ours. */
static __always_inline int load_ports(struct __sk_buff *skb, struct pkt *p)
{
	__u8 l4[8];
	if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) {
		if (load_fixed(skb, p->l4, l4, 4))
			return 0;
		p->wire_sport = ((__u16)l4[0] << 8) | l4[1];
		p->wire_dport = ((__u16)l4[2] << 8) | l4[3];
		p->flow_sport = p->wire_sport;
		p->flow_dport = p->wire_dport;
		return 1;
	}
	if (p->proto == IPPROTO_ICMPV6) {
		if (load_fixed(skb, p->l4, l4, 8))
			return 0;
		/* Only echo: NDP and errors must stay untouched (hop-limit and size rules). */
		if (l4[0] != ICMPV6_ECHO_REQUEST && l4[0] != ICMPV6_ECHO_REPLY)
			return 0;
		__u16 id = ((__u16)l4[4] << 8) | l4[5];
		p->wire_sport = ((__u16)l4[0] << 8) | l4[1];
		p->wire_dport = id;
		p->flow_sport = id;
		p->flow_dport = id;
		return 1;
	}
	return 0;
}

static __always_inline int prefix_match(const struct in6_addr *a, __u32 i)
{
	__u32 len = cfg.prefixes[i].len;
	for (int b = 0; b < 16; b++) {
		if (len == 0)
			return 1;
		__u8 mask = len >= 8 ? 0xff : (__u8)(0xff << (8 - len));
		if ((a->s6_addr[b] ^ cfg.prefixes[i].addr[b]) & mask)
			return 0;
		len = len >= 8 ? len - 8 : 0;
	}
	return 1;
}

/* Policy (datapath.md "config"), part 1: the remote address is in a listed prefix. */
static __always_inline int prefix_selects(const struct in6_addr *remote)
{
	if (!cfg.n_prefixes)
		return 1;
	for (__u32 i = 0; i < PDM_MAX_PREFIXES; i++)
		if (i < cfg.n_prefixes && prefix_match(remote, i))
			return 1;
	return 0;
}

/* Policy, part 2: either port is listed. */
static __always_inline int ports_select(__u16 sport, __u16 dport)
{
	if (!cfg.n_ports)
		return 1;
	int hit = 0;
#pragma unroll
	for (__u32 i = 0; i < PDM_MAX_PORTS; i++)
		if (i < cfg.n_ports && (cfg.ports[i] == sport || cfg.ports[i] == dport))
			hit = 1;
	return hit;
}

static __always_inline int is_link_local(const struct in6_addr *a)
{
	return a->s6_addr[0] == 0xfe && (a->s6_addr[1] & 0xc0) == 0x80;
}

/*
 * Idle flows are forgotten (cfg.flow_timeout_s): a timer, started with the first flow,
 * walks the flow table every quarter of the timeout (at least each second) and deletes
 * each flow with no packet either way for that long, with its keys, so that the table
 * never fills up with flows long gone. Its map is pinned: the kernel cancels a map's
 * timers once no file descriptor or pin holds it.
 *
 * A full table is not left full until the timeout: anyone can fill it with spoofed PDM
 * packets, one flow each. A new flow the table refuses (flows_full) also asks the timer
 * to run at once (at most every PDM_EVICT_GAP_NS), and that run, after the expiry,
 * frees PDM_EVICT_TARGET entries by deleting the idlest flows (flows_evicted):
 *   - first those no key protects, which are all a spoofer can make: flows this host
 *     has not sent on, and in the protected layout flows without a sealing key of
 *     their own;
 *   - then, only if those are too few, the idlest of the others, never one this host
 *     sent on in the last PDM_EVICT_KEEP_NS.
 * "Idlest" is by power of two of the milliseconds since a flow's last packet: a first
 * walk counts the flows per class and power, a second deletes from the oldest power
 * down. A packet of a flow that was evicted starts it again (a protected one resumes,
 * as after expiry).
 */
struct sweep {
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
	__type(value, struct sweep);
} pdm_sweep SEC(".maps");

#define CLOCK_MONOTONIC 1
#define NS_PER_S 1000000000ULL

static __always_inline __u64 sweep_interval_ns(void)
{
	__u64 quarter = (__u64)cfg.flow_timeout_s * NS_PER_S / 4;
	return quarter > NS_PER_S ? quarter : NS_PER_S;
}

/* Delete a flow's keys, both sides (they are keyed by the same flow key). */
static __always_inline void forget_keys(struct pdm_flow_key *key)
{
	bpf_map_delete_elem(&pdm_keys, key);
	bpf_map_delete_elem(&pdm_peer_keys, key);
#ifdef PDM_WITH_GCM
	struct pdm_gcm_key_id id = {.flow = *key};
	for (__u8 side = 0; side < 2; side++) {
		id.side = side;
		for (__u8 slot = 0; slot < PDM_KEY_SLOTS; slot++) {
			id.slot = slot;
			bpf_map_delete_elem(&pdm_gcm_keys, &id); /* releases the AES context */
		}
	}
#endif
}

/* Time since the flow's last packet either way (0 for a time ahead of `now`). */
static __always_inline __u64 idle_ns(const struct pdm_flow_state *st, __u64 now)
{
	__u64 last = st->first_ns;
	if (st->last_send_ns > last)
		last = st->last_send_ns;
	if (st->last_recv_ns > last)
		last = st->last_recv_ns;
	return last > now ? 0 : now - last;
}

/* 0: no key protects the flow (evicted first); 1: this host sends on it under its key. */
static __always_inline __u32 evict_class(struct pdm_flow_key *key, const struct pdm_flow_state *st)
{
	if (!(st->flags & PDM_FLOW_HAS_SENT))
		return 0;
	if (cfg.layout == PDM_LAYOUT_V2_PROTECTED && !bpf_map_lookup_elem(&pdm_keys, key))
		return 0;
	return 1;
}

/* floor(log2(ms + 1)), capped: the flow's idleness on the scale eviction sorts by */
static __always_inline __u32 idle_power(__u64 idle_ns)
{
	__u64 v = (idle_ns >> 20) + 1; /* ~ms (1.05 ms units) */
	__u32 power = 0;
#pragma unroll
	for (__u32 shift = 32; shift; shift >>= 1) {
		if (v >> shift) {
			v >>= shift;
			power += shift;
		}
	}
	return power < PDM_IDLE_POWERS ? power : PDM_IDLE_POWERS - 1;
}

struct sweep_ctx {
	__u64 now;
	struct pdm_counters *c;
	struct sweep *s;
};

/* Delete a flow with its keys; 0 when this call deleted it (not another CPU or user space). */
static __always_inline long delete_flow(struct pdm_flow_key *key)
{
	struct pdm_flow_key k = *key;
	long err = bpf_map_delete_elem(&pdm_flows, &k);
	if (cfg.layout == PDM_LAYOUT_V2_PROTECTED)
		forget_keys(&k);
	return err;
}

/* First walk: expire idle flows; when evicting, count the others by class and idleness. */
static long expire_flow(void *map, struct pdm_flow_key *key, struct pdm_flow_state *st, struct sweep_ctx *x)
{
	__u64 idle = idle_ns(st, x->now);
	if (cfg.flow_timeout_s && idle >= (__u64)cfg.flow_timeout_s * NS_PER_S) {
		if (delete_flow(key) == 0) {
			COUNT(x->c, flows_expired);
			x->s->freed++;
		}
		return 0;
	}
	if (x->s->evict) {
		__u32 cls = evict_class(key, st);
		__u32 power = idle_power(idle);
		if (cls == 1 && idle < PDM_EVICT_KEEP_NS)
			return 0; /* in use: never evicted */
		if (cls < 2 && power < PDM_IDLE_POWERS)
			x->s->idle_hist[cls][power]++;
	}
	return 0;
}

/* Second walk: delete the idlest flows the first walk chose, class by class. */
static long evict_flow(void *map, struct pdm_flow_key *key, struct pdm_flow_state *st, struct sweep_ctx *x)
{
	__u64 idle = idle_ns(st, x->now);
	struct sweep *s = x->s;
	__u32 cls = evict_class(key, st);
	if (cls > 1 || !s->quota[cls] || idle_power(idle) < s->from_power[cls])
		return 0;
	if (cls == 1 && idle < PDM_EVICT_KEEP_NS)
		return 0;
	if (delete_flow(key))
		return 0;
	COUNT(x->c, flows_evicted);
	s->quota[cls]--;
	return s->quota[0] || s->quota[1] ? 0 : 1; /* 1 stops the walk */
}

/* From the idlest power down, how far to go to evict `want` flows of one class: one
 * step of bpf_loop per power (a loop the verifier checks once, not per iteration). */
struct choose_ctx {
	const __u32 *hist;
	__u32 want;
	__u32 sum;
	__u32 from;
};

static long choose_step(__u32 i, struct choose_ctx *k)
{
	__u32 power = PDM_IDLE_POWERS - 1 - i;
	if (power >= PDM_IDLE_POWERS)
		return 1;
	k->sum += k->hist[power];
	k->from = power;
	return k->sum >= k->want ? 1 : 0;
}

static __always_inline __u32 choose_power(const __u32 *hist, __u32 want, __u32 *taken)
{
	struct choose_ctx k = {.hist = hist, .want = want};
	bpf_loop(PDM_IDLE_POWERS, choose_step, &k, 0);
	*taken = k.sum < want ? k.sum : want;
	return k.from;
}

static int sweep_flows(void *map, __u32 *key, struct sweep *s)
{
	struct sweep_ctx x = {.now = bpf_ktime_get_ns(), .c = counters(), .s = s};
	s->freed = 0;
	if (s->evict)
		__builtin_memset(s->idle_hist, 0, sizeof(s->idle_hist));
	bpf_for_each_map_elem(&pdm_flows, expire_flow, &x, 0);
	if (s->evict) {
		s->evict = 0;
		__u32 freed = s->freed;
		if (freed < PDM_EVICT_TARGET) {
			__u32 want = PDM_EVICT_TARGET - freed, quota0 = 0, quota1 = 0;
			s->from_power[0] = choose_power(s->idle_hist[0], want, &quota0);
			s->from_power[1] =
				quota0 < want ? choose_power(s->idle_hist[1], want - quota0, &quota1) : PDM_IDLE_POWERS;
			s->quota[0] = quota0;
			s->quota[1] = quota1;
			if (quota0 || quota1)
				bpf_for_each_map_elem(&pdm_flows, evict_flow, &x, 0);
		}
	}
	if (cfg.flow_timeout_s)
		bpf_timer_start(&s->timer, sweep_interval_ns(), 0);
	return 0;
}

/* Start the sweeping timer, once (with the first flow); with no timeout it runs only to evict. */
static __always_inline void start_sweeping(void)
{
	__u32 zero = 0;
	struct sweep *s = bpf_map_lookup_elem(&pdm_sweep, &zero);
	if (!s || s->started)
		return;
	s->started = 1;
	if (bpf_timer_init(&s->timer, &pdm_sweep, CLOCK_MONOTONIC))
		return; /* another CPU was first */
	bpf_timer_set_callback(&s->timer, sweep_flows);
	if (cfg.flow_timeout_s)
		bpf_timer_start(&s->timer, sweep_interval_ns(), 0);
}

/* The table refused a new flow: have the timer evict at once, unless it did just now. */
static __always_inline void ask_eviction(__u64 now)
{
	__u32 zero = 0;
	struct sweep *s = bpf_map_lookup_elem(&pdm_sweep, &zero);
	if (!s || !s->started || now - s->evict_ns < PDM_EVICT_GAP_NS)
		return;
	s->evict_ns = now;
	s->evict = 1;
	bpf_timer_start(&s->timer, 0, 0);
}

/* Find or create the flow's state. New flows start at a random PSNTP and LFSR state. */
static __always_inline struct pdm_flow_state *flow_state(const struct pdm_flow_key *key, __u64 now,
							 struct pdm_counters *c, int *created)
{
	struct pdm_flow_state *st = bpf_map_lookup_elem(&pdm_flows, key);
	*created = 0;
	if (st)
		return st;
	struct pdm_flow_state init = {};
	__u32 r = bpf_get_prandom_u32();
	init.psn_next = (__u16)r;
	init.rn_state = pdm_lfsr_seed(bpf_get_prandom_u32());
	init.first_ns = now;
	init.kri_since_ns = now;
	if (bpf_map_update_elem(&pdm_flows, key, &init, BPF_NOEXIST) == 0) {
		*created = 1;
		COUNT(c, flows_created);
		start_sweeping();
	}
	st = bpf_map_lookup_elem(&pdm_flows, key);
	if (!st) {
		COUNT(c, flows_full);
		ask_eviction(now);
	}
	return st;
}

static __always_inline void emit(struct pdm_counters *c, const struct pkt *p, __u8 type, __u64 now, __u16 psntp,
				 __u16 psnlr, __u16 dtlr, __u8 stlr, __u16 dtls, __u8 stls, __u32 gp, __u16 rn_f,
				 __u32 kri, __u8 flags, __u32 ifindex)
{
	if (!(cfg.flags & PDM_CFG_EVENTS))
		return;
	struct pdm_event *e = bpf_ringbuf_reserve(&pdm_events, sizeof(*e), 0);
	if (!e) {
		COUNT(c, events_lost);
		return;
	}
	e->ktime_ns = now;
	__builtin_memcpy(e->src, &p->ip6.saddr, 16);
	__builtin_memcpy(e->dst, &p->ip6.daddr, 16);
	e->src_port = p->wire_sport;
	e->dst_port = p->wire_dport;
	e->psntp = psntp;
	e->psnlr = psnlr;
	e->delta_tlr = dtlr;
	e->delta_tls = dtls;
	e->random_f = rn_f;
	e->scale_dtlr = stlr;
	e->scale_dtls = stls;
	e->global_pointer = gp;
	e->kri = kri;
	e->ifindex = ifindex;
	e->type = type;
	e->layout = (__u8)cfg.layout;
	e->proto = p->proto;
	e->flags = flags;
	bpf_ringbuf_submit(e, 0);
}

/* The flow a packet belongs to, as this host sees it: for a packet this host sends,
 * local is the source; for one it receives, local is the destination. */
static __always_inline void flow_key_of(const struct pkt *p, int outgoing, struct pdm_flow_key *key)
{
	__builtin_memcpy(key->local, outgoing ? &p->ip6.saddr : &p->ip6.daddr, 16);
	__builtin_memcpy(key->remote, outgoing ? &p->ip6.daddr : &p->ip6.saddr, 16);
	key->local_port = outgoing ? p->flow_sport : p->flow_dport;
	key->remote_port = outgoing ? p->flow_dport : p->flow_sport;
	key->proto = p->proto;
}

/* Rewrites the fixed header's payload length and next header after a header was
 * inserted or removed (they are adjacent: bytes 4-6). */
static __always_inline int fix_ipv6_header(struct __sk_buff *skb, __u32 l3, __u16 payload_len, __u8 next, __u64 flags)
{
	__u8 fix[3] = {payload_len >> 8, payload_len & 0xff, next};
	return bpf_skb_store_bytes(skb, l3 + 4, fix, 3, flags);
}

static __always_inline void put16(__u8 *b, __u32 off, __u16 v)
{
	b[off] = v >> 8;
	b[off + 1] = v & 0xff;
}

/* The protected layout's AEAD is one this build seals with. */
static __always_inline int aead_supported(void)
{
#ifdef PDM_WITH_GCM
	if (cfg.aead == PDM_AEAD_AES128GCM)
		return 1;
#endif
	return cfg.aead == PDM_AEAD_CHACHA20POLY1305;
}

/* The flow's key for `kri`, or NULL when it is not installed. */
static __always_inline const __u8 *key_for(const struct pdm_flow_key *flow, __u32 kri)
{
	struct pdm_flow_keys *keys = bpf_map_lookup_elem(&pdm_keys, flow);
	__u32 slot = kri % PDM_KEY_SLOTS;
	asm volatile("" : "+r"(slot)); /* so that the check below stays: the verifier cannot bound a remainder */
	if (!keys || slot >= PDM_KEY_SLOTS || !keys->present[slot] || keys->kri[slot] != kri)
		return NULL;
	return keys->key[slot];
}

/*
 * Tell the agent that `flow` needs keys (kind PDM_NEED_OWN or PDM_NEED_PEER); `option`,
 * when not NULL, is a received option no installed key opened (PDM_NEEDF_OPTION).
 */
static __always_inline void need_keys(struct pdm_counters *c, const struct pdm_flow_key *flow, __u32 kri, __u8 kind,
				      __u8 icmp_type, const __u8 *option)
{
	struct pdm_key_need *n = bpf_ringbuf_reserve(&pdm_key_needs, sizeof(*n), 0);
	if (!n) {
		COUNT(c, events_lost);
		return;
	}
	n->flow = *flow;
	n->kri = kri;
	n->kind = kind;
	n->icmp_type = icmp_type;
	n->pad = 0;
	if (option) {
		n->flags = PDM_NEEDF_OPTION;
		__builtin_memcpy(n->option, option, PDM_PROTECTED_OPTION_LEN);
	} else {
		n->flags = 0;
		__builtin_memset(n->option, 0, PDM_PROTECTED_OPTION_LEN);
	}
	bpf_ringbuf_submit(n, 0);
}

/*
 * A flow whose keys are missing asks again at most every PDM_NEED_INTERVAL_MS, however
 * many packets it sends: a flow the agent cannot key (a peer outside the deployment)
 * would otherwise put a record on the ring for each of its packets. The racy store is
 * fine: at worst two CPUs both ask.
 */
#define PDM_NEED_INTERVAL_MS 10
static __always_inline int may_ask(struct pdm_flow_state *st, __u64 now)
{
	__u32 ms = (__u32)(now / 1000000) | 1; /* never 0, which means "never asked" */
	if (st->asked_ms && ms - st->asked_ms < PDM_NEED_INTERVAL_MS)
		return 0;
	st->asked_ms = ms;
	return 1;
}

/*
 * Ingress, a flow without the keys it needs: make the flow (so that its asking is paced
 * and its keys expire with it) and ask for its peer's or its own keys of Kri `kri`, at
 * most every PDM_NEED_INTERVAL_MS, with the option no key opened if there is one.
 */
static __always_inline void ask_for_keys(struct __sk_buff *skb, struct pdm_counters *c, const struct pkt *p,
					 const struct pdm_flow_key *key, __u32 kri, __u8 kind, __u8 icmp_type,
					 const __u8 *option)
{
	__u64 now = bpf_ktime_get_ns();
	int created;
	struct pdm_flow_state *st = flow_state(key, now, c, &created);
	if (!st)
		return;
	if (created)
		emit(c, p, PDM_EV_NEW_FLOW, now, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, skb->ifindex);
	if (may_ask(st, now))
		need_keys(c, key, kri, kind, icmp_type, option);
}

/* Copy the flow's key for `kri` into the sealing work (AES-128-GCM: where it is); 0 when it is not installed. */
static __always_inline int take_key(const struct pdm_flow_key *flow, __u32 kri)
{
	__u32 zero = 0;
	struct seal_work *w = bpf_map_lookup_elem(&pdm_seal_work, &zero);
	const __u8 *k = key_for(flow, kri);
	if (!w || !k)
		return 0;
#ifdef PDM_WITH_GCM
	if (cfg.aead == PDM_AEAD_AES128GCM) {
		w->gcm_id.flow = *flow;
		w->gcm_id.side = PDM_GCM_OWN;
		w->gcm_id.slot = kri % PDM_KEY_SLOTS;
		return 1;
	}
#endif
	__builtin_memcpy(w->key, k, PDM_AEAD_KEY_LEN);
	return 1;
}

/* The lowest Kri above `kri` the flow has a sealing key for; 0 when none. */
static __always_inline __u32 later_key(const struct pdm_flow_key *flow, __u32 kri)
{
	struct pdm_flow_keys *keys = bpf_map_lookup_elem(&pdm_keys, flow);
	__u32 later = 0;
	if (!keys)
		return 0;
	for (int slot = 0; slot < PDM_KEY_SLOTS; slot++)
		if (keys->present[slot] && keys->kri[slot] > kri && (!later || keys->kri[slot] < later))
			later = keys->kri[slot];
	return later;
}

/*
 * Move the flow from `kri`, which has no key, to `later`, the lowest later Kri that has one, with
 * a fresh random sequence, and draw this packet's Random Number (*kri, *rn). Safe for
 * nonces: the agent gives each sealing key once, so nothing was sealed under it yet.
 * Returns 1 when moved, 0 when another CPU moved the flow first (the number drawn is
 * then the next of its sequence), -1 when that sequence has no number left.
 */
static __always_inline int resume_at_later_kri(struct pdm_flow_state *st, __u32 kri, __u32 later, __u16 reseed,
					       __u32 per_kri, __u64 now, __u32 *kri_out, __u16 *rn_out)
{
	int moved = 0;
	bpf_spin_lock(&st->lock);
	if (st->kri == kri) {
		st->kri = later;
		st->rn_state = reseed;
		st->rn_drawn = 0;
		st->kri_since_ns = now;
		moved = 1;
	} else if (st->rn_drawn >= per_kri) {
		bpf_spin_unlock(&st->lock);
		return -1;
	}
	st->rn_state = pdm_lfsr_step(st->rn_state);
	st->rn_drawn++;
	*rn_out = st->rn_state;
	*kri_out = st->kri;
	bpf_spin_unlock(&st->lock);
	return moved;
}

/*
 * Protected layout (wire.md section 4): seal option-data bytes 4-17 of the header in
 * w->out (the clear layout's fields, written there already) in place, ciphertext then
 * tag, under the key egress copied into w->key (take_key), or with AES-128-GCM the
 * key at w->gcm_id. 0 once sealed; -1 when the AES key went missing meanwhile.
 */
static __always_inline int seal(struct seal_work *w)
{
	__u32 kri = w->kri;
	__u8 *h = w->out + 36;
	/* nonce: six zero bytes, Kri, then the Random Number and F as on the wire */
	__builtin_memset(w->nonce, 0, 6);
	w->nonce[6] = kri >> 24;
	w->nonce[7] = kri >> 16;
	w->nonce[8] = kri >> 8;
	w->nonce[9] = kri;
	w->nonce[10] = h[6];
	w->nonce[11] = h[7];
	__builtin_memcpy(w->pt, h + 8, PDM_AEAD_TEXT_LEN);
	/* associated data: Option Type, Opt Data Len, option-data bytes 0-3 (h[2..7]) */
#ifdef PDM_WITH_GCM
	if (cfg.aead == PDM_AEAD_AES128GCM) {
		struct gcm_key *k = gcm_blocks(&w->gcm_id, kri, w->nonce, w->gcm_in, w->gcm_out);
		if (!k)
			return -1;
		pdm_gcm_seal(&k->tables, w->gcm_out, h + 2, w->pt, h + 8, h + 8 + PDM_AEAD_TEXT_LEN);
		return 0;
	}
#endif
	pdm_chacha20poly1305_seal(&w->aead, w->key, w->nonce, h + 2, w->pt, h + 8, h + 8 + PDM_AEAD_TEXT_LEN);
	return 0;
}

/* The protected layout's second half of egress: seal, make room, write the header. */
SEC("tc")
int pdm_egress_seal(struct __sk_buff *skb)
{
	struct pdm_counters *c = counters();
	__u32 zero = 0;
	struct seal_work *w = bpf_map_lookup_elem(&pdm_seal_work, &zero);
	if (!w)
		return TC_ACT_OK;
	if (seal(w)) {
		COUNT(c,
		      skipped_nokey); /* the key was replaced between egress and here: no PDM rather than PDM in the clear */
		return TC_ACT_OK;
	}
	if (bpf_skb_adjust_room(skb, PDM_HDR_LEN_V2_PROTECTED, BPF_ADJ_ROOM_NET, 0)) {
		COUNT(c, skipped_room);
		return TC_ACT_OK;
	}
	if (bpf_skb_store_bytes(skb, w->l3 + 4, w->out, sizeof(w->out), 0)) {
		COUNT(c, skipped_room);
		return TC_ACT_OK;
	}
	COUNT(c, stamped);
	if (w->send_event && bpf_ringbuf_output(&pdm_events, &w->event, sizeof(w->event), 0))
		COUNT(c, events_lost);
	return TC_ACT_OK;
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__array(values, int(struct __sk_buff *));
} pdm_seal_call SEC(".maps") = {
	.values = {[0] = (void *)&pdm_egress_seal},
};

SEC("tc")
int pdm_egress(struct __sk_buff *skb)
{
	if (cfg.layout == PDM_LAYOUT_V2_PROTECTED && !aead_supported())
		return TC_ACT_OK; /* user space refuses this at attach; never stamp in the clear */
	if ((cfg.flags & PDM_CFG_NO_STAMP) || skb->protocol != bpf_htons(ETH_P_IPV6))
		return TC_ACT_OK;

	struct pkt p = {};
	p.l3 = cfg.l2_len;
	if (load_fixed(skb, p.l3, &p.ip6, IPV6_HLEN))
		return TC_ACT_OK;
	if ((p.ip6.version) != 6 || p.ip6.daddr.s6_addr[0] == 0xff)
		return TC_ACT_OK; /* not IPv6, or multicast: never stamped */

	struct pdm_counters *c = counters();
	p.proto = p.ip6.nexthdr;
	if (is_extension_header(p.proto)) {
		/* wire.md 1: the header goes right after the fixed header or not at all */
		/* Its ports sit behind the other header, so only the prefixes can select it. */
		if (prefix_selects(&p.ip6.daddr))
			COUNT(c, skipped_exthdr);
		return TC_ACT_OK;
	}
	p.l4 = p.l3 + IPV6_HLEN;
	if (!load_ports(skb, &p))
		return TC_ACT_OK;
	if (!prefix_selects(&p.ip6.daddr) || !ports_select(p.flow_sport, p.flow_dport))
		return TC_ACT_OK;

	const __u32 hdr_len = cfg.layout == PDM_LAYOUT_RFC8250	  ? PDM_HDR_LEN_RFC8250
			      : cfg.layout == PDM_LAYOUT_V2_CLEAR ? PDM_HDR_LEN_V2_CLEAR
								  : PDM_HDR_LEN_V2_PROTECTED;
	/* The MTU check is needed only by a packet that could outgrow its link: not a GSO
	 * packet (adjust_room lowers its gso_size by the header, and bpf_check_mtu passes
	 * any GSO packet), nor one of at most 1280 bytes with the header (IPv6's minimum
	 * link MTU). Skipping the helper for the others saves it on nearly every packet. */
	if (!skb->gso_size && skb->len - p.l3 + hdr_len > IPV6_MIN_MTU) {
		__u32 mtu_len = 0;
		if (bpf_check_mtu(skb, 0, &mtu_len, hdr_len, 0)) {
			COUNT(c, skipped_mtu);
			return TC_ACT_OK;
		}
	}

	struct pdm_flow_key key = {};
	flow_key_of(&p, 1, &key);

	__u64 now = bpf_ktime_get_ns();
	int created;
	struct pdm_flow_state *st = flow_state(&key, now, c, &created);
	if (!st)
		return TC_ACT_OK;
	const int v2 = cfg.layout != PDM_LAYOUT_RFC8250;
	const int protect = cfg.layout == PDM_LAYOUT_V2_PROTECTED;
	__u16 reseed = v2 ? pdm_lfsr_seed(bpf_get_prandom_u32()) : 0;
	const __u32 per_kri = cfg.max_packets_per_kri && cfg.max_packets_per_kri < PDM_LFSR_PERIOD
				      ? cfg.max_packets_per_kri
				      : PDM_LFSR_PERIOD;

	/* Everything that must be consistent across CPUs happens under the flow's lock. */
	__u16 psntp, psnlr, rn = 0;
	__u64 tlr_ns = 0, tls_ns = 0;
	__u32 kri = 0;
	int rotated = 0;
	bpf_spin_lock(&st->lock);
	psntp = st->psn_next++;
	psnlr = st->psn_lr;
	if (st->flags & PDM_FLOW_HAS_RECEIVED) {
		tlr_ns = now - st->last_recv_ns;
		if ((st->flags & PDM_FLOW_HAS_SENT) && st->last_recv_ns >= st->last_send_ns)
			tls_ns = st->last_recv_ns - st->last_send_ns;
	}
	st->last_send_ns = now;
	st->flags |= PDM_FLOW_HAS_SENT;
	st->tx_packets++;
	if (v2) {
		/* Rotate when the Kri's Random Numbers run out (or the policy's count), or when it
		 * has been in use for the policy's longest age (keys.md 6). */
		int aged = cfg.max_kri_age_ms && now - st->kri_since_ns >= (__u64)cfg.max_kri_age_ms * 1000000;
		if ((st->rn_drawn >= per_kri || aged) && st->kri != 0xffffffff) {
			st->kri++;
			st->rn_state = reseed;
			st->rn_drawn = 0;
			st->kri_since_ns = now;
			rotated = 1;
		}
		st->rn_state = pdm_lfsr_step(st->rn_state);
		st->rn_drawn++;
		rn = st->rn_state;
		kri = st->kri;
	}
	bpf_spin_unlock(&st->lock);

	__u16 dtlr, dtls;
	__u8 stlr, stls;
	pdm_encode_delta_ns(tlr_ns, &dtlr, &stlr);
	pdm_encode_delta_ns(tls_ns, &dtls, &stls);

	/* Header: next header, Hdr Ext Len, PDM option, then PadN(0) to the 8-byte boundary. */
	__u8 h[PDM_HDR_LEN_V2_PROTECTED] = {};
	__u32 gp = 0;
	__u16 rn_f = 0;
	h[0] = p.proto;
	h[1] = hdr_len / 8 - 1;
	h[2] = PDM_OPTION_TYPE;
	if (!v2) {
		h[3] = 10;
		h[4] = stlr;
		h[5] = stls;
		put16(h, 6, psntp);
		put16(h, 8, psnlr);
		put16(h, 10, dtlr);
		put16(h, 12, dtls);
		h[14] = 1; /* PadN, 0 bytes of padding data */
	} else {
		if (protect) {
			/* First, the events that tell the agent which keys to install next. */
			if (created)
				emit(c, &p, PDM_EV_NEW_FLOW, now, psntp, 0, 0, 0, 0, 0, 0, 0, kri, 0, skb->ifindex);
			if (rotated)
				emit(c, &p, PDM_EV_ROTATED, now, psntp, 0, 0, 0, 0, 0, 0, 0, kri, 0, skb->ifindex);
			int have = take_key(&key, kri);
			__u32 later = have ? 0 : later_key(&key, kri);
			if (later) {
				/* The agent gave keys of a later, never used Kri: a flow this kernel
				 * forgot resumes there instead of starting over under its old keys. */
				int moved = resume_at_later_kri(st, kri, later, reseed, per_kri, now, &kri, &rn);
				if (moved > 0)
					emit(c, &p, PDM_EV_ROTATED, now, psntp, 0, 0, 0, 0, 0, 0, 0, kri, 0,
					     skb->ifindex);
				if (moved >= 0)
					have = take_key(&key, kri);
			}
			if (created || rotated || (!have && may_ask(st, now)))
				need_keys(c, &key, kri, PDM_NEED_OWN, p.proto == IPPROTO_ICMPV6 ? p.wire_sport >> 8 : 0,
					  NULL);
			if (!have) {
				/* No key for this Kri yet: no PDM at all rather than PDM in the clear
				 * (checked before the Global Pointer, which counts PDM packets only). */
				COUNT(c, skipped_nokey);
				return TC_ACT_OK;
			}
		}
		__u32 cls = is_link_local(&p.ip6.saddr) ? PDM_GP_LINK_LOCAL : PDM_GP_GLOBAL;
		__u32 *ctr = bpf_map_lookup_elem(&pdm_global_ptrs, &cls);
		if (ctr)
			gp = __sync_fetch_and_add(ctr, 1) + 1;
		rn_f = (__u16)(rn << 1) | (kri & 1);
		h[3] = protect ? 34 : 18;
		h[4] = 0x20; /* version 2, reserved 0 */
		h[5] = 0;
		put16(h, 6, rn_f);
		h[8] = stlr;
		h[9] = stls;
		put16(h, 10, gp >> 16);
		put16(h, 12, gp & 0xffff);
		put16(h, 14, psntp);
		put16(h, 16, psnlr);
		put16(h, 18, dtlr);
		put16(h, 20, dtls);
		h[protect ? 38 : 22] = 1;
	}
	if (protect) {
		__u32 zero = 0;
		struct seal_work *w = bpf_map_lookup_elem(&pdm_seal_work, &zero);
		if (!w)
			return TC_ACT_OK;
		w->kri = kri;
		w->l3 = p.l3;
		__builtin_memcpy(w->out, (__u8 *)&p.ip6 + 4, IPV6_HLEN - 4);
		put16(w->out, 0, bpf_ntohs(p.ip6.payload_len) + PDM_HDR_LEN_V2_PROTECTED);
		w->out[2] = NEXTHDR_DEST;
		__builtin_memcpy(w->out + 36, h, PDM_HDR_LEN_V2_PROTECTED);
		/* The STAMPED event, sent by the sealing program once the packet is stamped. */
		w->send_event = (cfg.flags & PDM_CFG_EVENTS) != 0;
		struct pdm_event *e = &w->event;
		if (!w->send_event)
			goto seal;
		e->ktime_ns = now;
		__builtin_memcpy(e->src, &p.ip6.saddr, 16);
		__builtin_memcpy(e->dst, &p.ip6.daddr, 16);
		e->src_port = p.wire_sport;
		e->dst_port = p.wire_dport;
		e->psntp = psntp;
		e->psnlr = psnlr;
		e->delta_tlr = dtlr;
		e->delta_tls = dtls;
		e->random_f = rn_f;
		e->scale_dtlr = stlr;
		e->scale_dtls = stls;
		e->global_pointer = gp;
		e->kri = kri;
		e->ifindex = skb->ifindex;
		e->type = PDM_EV_STAMPED;
		e->layout = PDM_LAYOUT_V2_PROTECTED;
		e->proto = p.proto;
		e->flags = skb->gso_segs > 1 ? PDM_EVF_GSO : 0;
	seal:
		bpf_tail_call(skb, &pdm_seal_call, 0);
		COUNT(c, skipped_nokey); /* only if the sealing program is missing: never stamp in the clear */
		return TC_ACT_OK;
	}

	if (bpf_skb_adjust_room(skb, hdr_len, BPF_ADJ_ROOM_NET, 0)) {
		COUNT(c, skipped_room);
		return TC_ACT_OK;
	}
	/* One store from the payload length on: payload_len grows by the header, next
	 * header becomes Destination Options, the addresses are written back as they
	 * were, and the new header follows (one helper call instead of two). */
	struct {
		__u8 fixed[IPV6_HLEN - 4];
		__u8 h[PDM_HDR_LEN_V2_CLEAR]; /* the clear layouts only: the protected one went above */
	} out;
	__builtin_memcpy(out.fixed, (__u8 *)&p.ip6 + 4, IPV6_HLEN - 4);
	put16(out.fixed, 0, bpf_ntohs(p.ip6.payload_len) + hdr_len);
	out.fixed[2] = NEXTHDR_DEST;
	__builtin_memcpy(out.h, h, PDM_HDR_LEN_V2_CLEAR);
	if (bpf_skb_store_bytes(skb, p.l3 + 4, &out, IPV6_HLEN - 4 + hdr_len, 0)) {
		/* Cannot happen after a successful adjust_room; counted should it ever. */
		COUNT(c, skipped_room);
		return TC_ACT_OK;
	}
	COUNT(c, stamped);
	__u8 flags = skb->gso_segs > 1 ? PDM_EVF_GSO : 0;
	if (created)
		emit(c, &p, PDM_EV_NEW_FLOW, now, psntp, 0, 0, 0, 0, 0, 0, 0, 0, 0, skb->ifindex);
	if (rotated)
		emit(c, &p, PDM_EV_ROTATED, now, psntp, 0, 0, 0, 0, 0, 0, rn_f, kri, 0, skb->ifindex);
	emit(c, &p, PDM_EV_STAMPED, now, psntp, psnlr, dtlr, stlr, dtls, stls, gp, rn_f, kri, flags, skb->ifindex);
	return TC_ACT_OK;
}

/*
 * Walking the options of a Destination Options header: where the PDM option sits,
 * and whether the header holds nothing else but padding (then it may be stripped).
 * One bpf_loop step per option keeps the verifier's work independent of the number
 * of paths through the walk.
 */
struct opt_walk {
	__u8 h[DEST_OPTS_MAX]; /* the header, zero beyond len */
	__u32 len;	       /* header length in bytes */
	__u32 i;	       /* offset of the next option */
	__u32 at;	       /* offset of the PDM option type byte, 0 if none yet */
	__u32 only_pdm;	       /* 1 while every other option is Pad1/PadN */
};

static long opt_walk_step(__u64 n, void *ctx)
{
	struct opt_walk *w = ctx;
	__u32 i = w->i;
	if (i >= w->len)
		return 1;
	__u8 type = w->h[i & (DEST_OPTS_MAX - 1)];
	if (type == 0) { /* Pad1 */
		w->i = i + 1;
		return 0;
	}
	__u32 olen = w->h[(i + 1) & (DEST_OPTS_MAX - 1)];
	if (type == PDM_OPTION_TYPE && !w->at)
		w->at = i;
	else if (type != 1)
		w->only_pdm = 0;
	w->i = i + 2 + olen;
	return 0;
}

static __always_inline __u16 get16(const __u8 *h, __u32 off)
{
	return ((__u16)h[off & (DEST_OPTS_MAX - 1)] << 8) | h[(off + 1) & (DEST_OPTS_MAX - 1)];
}

/* A PDM option's fields, read in the clear or opened. */
struct read_fields {
	__u16 psntp, psnlr, dtlr, dtls, rn_f;
	__u8 stlr, stls;
	__u32 gp;
	__u32 kri; /* protected: the Kri whose key opened it */
	__u8 layout;
};

/* `pair` is one of the flow's recent (Kri, Random Number and F) pairs. */
static __always_inline int seen_before(struct pdm_flow_state *st, __u32 pair)
{
	int hit = 0;
#pragma unroll
	for (int i = 0; i < PDM_RX_RECENT; i++)
		if (st->rx_recent[i] == pair)
			hit = 1;
	return hit;
}

/*
 * The end of reading an option, whatever its layout: the flow's state (PSNLR, receive
 * time, the peer's Kri), counters, events, and the strip. `len` is the Destination
 * Options header's length, `only_pdm` whether it holds nothing else.
 */
static __always_inline int finish_read(struct __sk_buff *skb, struct pdm_counters *c, struct pkt *p,
				       struct read_fields *f, __u32 len, int only_pdm)
{
	/* The reverse of this packet's 5-tuple is the flow this host stamps. */
	struct pdm_flow_key key = {};
	flow_key_of(p, 0, &key);
	__u64 now = bpf_ktime_get_ns();
	int created;
	struct pdm_flow_state *st = flow_state(&key, now, c, &created);
	if (st) {
		int repeat = 0, replay = 0;
		const int protected = f->layout == PDM_LAYOUT_V2_PROTECTED;
		/* Kri and Random Number + F: what a protected stamp may never repeat */
		__u32 pair = (f->kri << 16) | f->rn_f;
		bpf_spin_lock(&st->lock);
		/* wire.md 5: a GSO burst's segments carry one stamp; count it once */
		if ((st->flags & PDM_FLOW_HAS_RECEIVED) && st->psn_lr == f->psntp && st->peer_rn_f == f->rn_f &&
		    (!protected || st->peer_kri == f->kri))
			repeat = 1;
		else if (protected && seen_before(st, pair))
			replay = 1;
		if (!replay) {
			if (protected) {
				st->rx_recent[st->rx_recent_next % PDM_RX_RECENT] = pair;
				st->rx_recent_next++;
				if (f->kri > st->peer_kri)
					st->peer_kri = f->kri;
			} else if (f->layout == PDM_LAYOUT_V2_CLEAR && (st->flags & PDM_FLOW_HAS_RECEIVED) &&
				   ((st->peer_rn_f ^ f->rn_f) & 1)) {
				st->peer_kri++;
			}
			st->psn_lr = f->psntp;
			st->peer_rn_f = f->rn_f;
			st->last_recv_ns = now;
			st->flags |= PDM_FLOW_HAS_RECEIVED;
			st->rx_packets++;
			if (repeat)
				st->gso_repeats++;
			st->last_rx_delta_tlr = f->dtlr;
			st->last_rx_delta_tls = f->dtls;
			st->last_rx_scale_dtlr = f->stlr;
			st->last_rx_scale_dtls = f->stls;
		}
		bpf_spin_unlock(&st->lock);
		if (replay) {
			COUNT(c, replay); /* counted, its sample not taken; the packet passes */
			return TC_ACT_OK;
		}
		if (repeat)
			COUNT(c, gso_repeat);
	}
	COUNT(c, read);
	if (created)
		emit(c, p, PDM_EV_NEW_FLOW, now, f->psntp, 0, 0, 0, 0, 0, 0, 0, 0, 0, skb->ifindex);
	emit(c, p, PDM_EV_READ, now, f->psntp, f->psnlr, f->dtlr, f->stlr, f->dtls, f->stls, f->gp, f->rn_f, f->kri, 0,
	     skb->ifindex);

	if ((cfg.flags & PDM_CFG_STRIP) && only_pdm) {
		/* Give the receiving stack its fast path back (datapath.md, measured findings). */
		if (bpf_skb_adjust_room(skb, -(__s32)len, BPF_ADJ_ROOM_NET, 0) == 0 &&
		    fix_ipv6_header(skb, p->l3, bpf_ntohs(p->ip6.payload_len) - len, p->proto, BPF_F_RECOMPUTE_CSUM) ==
			    0)
			COUNT(c, stripped);
	}
	return TC_ACT_OK;
}

/*
 * Protected layout on ingress: what the reader hands to the opening program (below),
 * which takes over through a tail call, as on egress, for stack room. Per CPU.
 */
struct open_work {
	struct pdm_aead_work aead;
	__u8 nonce[PDM_AEAD_NONCE_LEN];
	__u8 pt[PDM_AEAD_TEXT_LEN];
	__u8 option[PDM_PROTECTED_OPTION_LEN]; /* Type, Opt Data Len, option data */
	struct pkt p;
	__u32 len;
	__u32 only_pdm;
	struct read_fields fields; /* once opened, for pdm_ingress_read */
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
	__type(value, struct open_work);
} pdm_open_work SEC(".maps");

static __always_inline __u16 be16_at(const __u8 *b)
{
	return ((__u16)b[0] << 8) | b[1];
}

/* `keys` holds the key for `kri`. */
static __always_inline int has_peer_key(const struct pdm_flow_keys *keys, __u32 kri)
{
	__u32 slot = kri % PDM_KEY_SLOTS;
	asm volatile("" : "+r"(slot)); /* the verifier cannot bound a remainder */
	return slot < PDM_KEY_SLOTS && keys->present[slot] && keys->kri[slot] == kri;
}

/*
 * One try at opening w->option under `key` (w->nonce ready). A function of its own, not
 * inlined: the AEAD's registers spill onto a stack frame of their own this way.
 */
static __noinline int open_option(struct open_work *w, const __u8 *key)
{
	const __u8 *o = w->option;
#ifdef PDM_WITH_GCM
	if (cfg.aead == PDM_AEAD_AES128GCM)
		return -1; /* see open_option_gcm */
#endif
	/* associated data: Type, Opt Data Len, option-data bytes 0-3 */
	return pdm_chacha20poly1305_open(&w->aead, key, w->nonce, o, o + 6, o + 6 + PDM_AEAD_TEXT_LEN, w->pt);
}

#ifdef PDM_WITH_GCM
/* The same with AES-128-GCM: the key of w->gcm_id (its slot set by the caller) for `kri`. */
static __noinline int open_option_gcm(struct open_work *w, __u32 kri)
{
	const __u8 *o = w->option;
	struct gcm_key *k = gcm_blocks(&w->gcm_id, kri, w->nonce, w->gcm_in, w->gcm_out);
	if (!k)
		return -1;
	return pdm_gcm_open(&k->tables, w->gcm_out, o, o + 6, o + 6 + PDM_AEAD_TEXT_LEN, w->pt);
}
#endif

/* Forward: pdm_ingress_open hands over to pdm_ingress_read through this. */
int pdm_ingress_read(struct __sk_buff *skb);
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__array(values, int(struct __sk_buff *));
} pdm_read_call SEC(".maps") = {
	.values = {[0] = (void *)&pdm_ingress_read},
};

/*
 * Verify and open a protected option with the peer's keys (pdm_peer_keys): each
 * installed key whose Kri has the option's F, so the current, previous and next Kri
 * when the agent has installed them. A tag that no key verifies is an auth failure:
 * counted, the sample dropped, the packet untouched.
 */
SEC("tc")
int pdm_ingress_open(struct __sk_buff *skb)
{
	struct pdm_counters *c = counters();
	__u32 zero = 0;
	struct open_work *w = bpf_map_lookup_elem(&pdm_open_work, &zero);
	if (!w)
		return TC_ACT_OK;
	struct pdm_flow_key key = {};
	flow_key_of(&w->p, 0, &key);
	struct pdm_flow_keys *keys = bpf_map_lookup_elem(&pdm_peer_keys, &key);
	const __u8 *o = w->option;
	const __u8 icmp_type = w->p.proto == IPPROTO_ICMPV6 ? w->p.wire_sport >> 8 : 0;
	__u16 rn_f = be16_at(o + 4);
	int opened = -1;
	__u32 kri = 0;
	if (keys) {
#ifdef PDM_WITH_GCM
		w->gcm_id.flow = key;
		w->gcm_id.side = PDM_GCM_PEER;
#endif
		__builtin_memset(w->nonce, 0, 6);
		w->nonce[10] = o[4];
		w->nonce[11] = o[5];
#pragma nounroll
		for (int slot = 0; slot < PDM_KEY_SLOTS; slot++) { /* not unrolled: three AEADs overflow the stack */
			if (opened == 0 || !keys->present[slot] || (keys->kri[slot] & 1) != (rn_f & 1))
				continue;
			kri = keys->kri[slot];
			w->nonce[6] = kri >> 24;
			w->nonce[7] = kri >> 16;
			w->nonce[8] = kri >> 8;
			w->nonce[9] = kri;
#ifdef PDM_WITH_GCM
			if (cfg.aead == PDM_AEAD_AES128GCM) {
				w->gcm_id.slot = slot;
				opened = open_option_gcm(w, kri);
				continue;
			}
#endif
			opened = open_option(w, keys->key[slot]);
		}
	}
	if (opened) {
		/* No keys at all for this flow: not an authentication failure but a flow the
		 * agent has not keyed yet, which learns of it here. With keys, a failure is a
		 * forgery, or a peer that resumed the flow at a Kri these keys do not reach
		 * (this host forgot it, or the peer did). Either way the agent is shown the
		 * option, paced: it finds the Kri that opens it, if any. */
		__u32 highest = 0;
		if (!keys) {
			COUNT(c, rx_nokey);
		} else {
			COUNT(c, auth_fail);
			for (int slot = 0; slot < PDM_KEY_SLOTS; slot++)
				if (keys->present[slot] && keys->kri[slot] > highest)
					highest = keys->kri[slot];
		}
		ask_for_keys(skb, c, &w->p, &key, highest, PDM_NEED_PEER, icmp_type, w->option);
		return TC_ACT_OK;
	}
	/* The peer reached the last Kri installed: the next one, before it is needed. */
	if (!has_peer_key(keys, kri + 1))
		need_keys(c, &key, kri + 1, PDM_NEED_PEER, icmp_type, NULL);
	const __u8 *t = w->pt; /* the clear layout's option-data bytes 4-17 */
	struct read_fields *f = &w->fields;
	f->stlr = t[0];
	f->stls = t[1];
	f->gp = ((__u32)be16_at(t + 2) << 16) | be16_at(t + 4);
	f->psntp = be16_at(t + 6);
	f->psnlr = be16_at(t + 8);
	f->dtlr = be16_at(t + 10);
	f->dtls = be16_at(t + 12);
	f->rn_f = rn_f;
	f->kri = kri;
	f->layout = PDM_LAYOUT_V2_PROTECTED;
	/* The rest as for a clear option, in a third program: with the AEAD's, its stack
	 * would not fit in one. */
	bpf_tail_call(skb, &pdm_read_call, 0);
	return TC_ACT_OK;
}

/* A protected option once opened: the flow's state, counters, events, strip. */
SEC("tc")
int pdm_ingress_read(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct open_work *w = bpf_map_lookup_elem(&pdm_open_work, &zero);
	if (!w)
		return TC_ACT_OK;
	struct read_fields f = w->fields;
	struct pkt p = w->p;
	return finish_read(skb, counters(), &p, &f, w->len, w->only_pdm);
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__array(values, int(struct __sk_buff *));
} pdm_open_call SEC(".maps") = {
	.values = {[0] = (void *)&pdm_ingress_open},
};

/*
 * Protected layout: a packet of a selected flow arrived without PDM (a new flow's first,
 * whose sender had no key yet), and this host has no key to seal its answers with.
 * Asking now rather than when the first answer leaves gives the agent the time the
 * application takes to answer, so a responder's first answer is sealed too. The flow
 * is made here, so that it expires with its keys should no answer ever leave.
 */
static __always_inline void ask_keys_for_answers(struct __sk_buff *skb, struct pkt *p)
{
	if (p->ip6.daddr.s6_addr[0] == 0xff || is_extension_header(p->ip6.nexthdr))
		return; /* multicast is never stamped; behind another header, PDM never goes */
	p->proto = p->ip6.nexthdr;
	p->l4 = p->l3 + IPV6_HLEN;
	if (!load_ports(skb, p) || !prefix_selects(&p->ip6.saddr) || !ports_select(p->flow_sport, p->flow_dport))
		return;
	struct pdm_flow_key key = {};
	flow_key_of(p, 0, &key);
	if (bpf_map_lookup_elem(&pdm_keys, &key))
		return; /* keyed already */
	/* An echo's answer is the other echo type, which the answer's 5-tuple carries. */
	__u8 answer_type = 0;
	if (p->proto == IPPROTO_ICMPV6)
		answer_type = (p->wire_sport >> 8) == ICMPV6_ECHO_REQUEST ? ICMPV6_ECHO_REPLY : ICMPV6_ECHO_REQUEST;
	ask_for_keys(skb, counters(), p, &key, 0, PDM_NEED_OWN, answer_type, NULL);
}

SEC("tc")
int pdm_ingress(struct __sk_buff *skb)
{
	if (skb->protocol != bpf_htons(ETH_P_IPV6))
		return TC_ACT_OK;
	struct pkt p = {};
	p.l3 = cfg.l2_len;
	if (load_fixed(skb, p.l3, &p.ip6, IPV6_HLEN))
		return TC_ACT_OK;
	if (p.ip6.version != 6)
		return TC_ACT_OK;
	if (p.ip6.nexthdr != NEXTHDR_DEST) {
		if (cfg.layout == PDM_LAYOUT_V2_PROTECTED && aead_supported())
			ask_keys_for_answers(skb, &p);
		return TC_ACT_OK;
	}

	struct pdm_counters *c = counters();
	struct opt_walk w = {};
	if (load_fixed(skb, p.l3 + IPV6_HLEN, w.h, 2))
		return TC_ACT_OK;
	__u32 len = ((__u32)w.h[1] + 1) * 8;
	if (len > DEST_OPTS_MAX)
		return TC_ACT_OK; /* longer than any header a PDM stamper writes: not ours */
	/* Keeps the bound just checked on the register the helper gets: without it clang
	 * compares a derived value and the verifier loses the bound. */
	asm volatile("" : "+r"(len));
	/* The two sizes PDM stampers write are read in place; others through the helper. */
	int short_read = len == PDM_HDR_LEN_RFC8250    ? load_fixed(skb, p.l3 + IPV6_HLEN, w.h, PDM_HDR_LEN_RFC8250)
			 : len == PDM_HDR_LEN_V2_CLEAR ? load_fixed(skb, p.l3 + IPV6_HLEN, w.h, PDM_HDR_LEN_V2_CLEAR)
						       : bpf_skb_load_bytes(skb, p.l3 + IPV6_HLEN, w.h, len);
	if (short_read) {
		COUNT(c, malformed); /* Hdr Ext Len points past the packet */
		return TC_ACT_OK;
	}
	w.len = len;
	if (w.h[2] == PDM_OPTION_TYPE && 4 + (__u32)w.h[3] + 2 == len && w.h[4 + w.h[3]] == 1 && w.h[5 + w.h[3]] == 0) {
		/* Fast path: the header as PDM stampers write it, the option then PadN(0). */
		w.at = 2;
		w.only_pdm = 1;
	} else {
		w.i = 2;
		w.only_pdm = 1;
		bpf_loop(DEST_OPTS_MAX / 2, opt_walk_step, &w, 0);
		if (w.i != len) { /* the options overrun or do not fill the header */
			if (w.at)
				COUNT(c, malformed);
			return TC_ACT_OK;
		}
	}
	if (!w.at)
		return TC_ACT_OK; /* a Destination Options header without PDM: not ours */
	const __u8 *h = w.h;
	__u32 o = w.at + 2; /* option data */
	__u8 olen = h[(w.at + 1) & (DEST_OPTS_MAX - 1)];

	__u16 psntp, psnlr, dtlr, dtls, rn_f = 0;
	__u8 stlr, stls;
	__u32 gp = 0;
	__u8 layout;
	if (olen == 10) {
		layout = PDM_LAYOUT_RFC8250;
		stlr = h[o & (DEST_OPTS_MAX - 1)];
		stls = h[(o + 1) & (DEST_OPTS_MAX - 1)];
		psntp = get16(h, o + 2);
		psnlr = get16(h, o + 4);
		dtlr = get16(h, o + 6);
		dtls = get16(h, o + 8);
	} else if (olen == 18) {
		__u16 ver = get16(h, o);
		if (ver != 0x2000) { /* version nibble 2, 12 reserved bits 0 */
			COUNT(c, malformed);
			return TC_ACT_OK;
		}
		layout = PDM_LAYOUT_V2_CLEAR;
		rn_f = get16(h, o + 2);
		stlr = h[(o + 4) & (DEST_OPTS_MAX - 1)];
		stls = h[(o + 5) & (DEST_OPTS_MAX - 1)];
		gp = ((__u32)get16(h, o + 6) << 16) | get16(h, o + 8);
		psntp = get16(h, o + 10);
		psnlr = get16(h, o + 12);
		dtlr = get16(h, o + 14);
		dtls = get16(h, o + 16);
	} else if (olen == 34) {
		/* Protected: opened by pdm_ingress_open (tail call) when this host reads that
		 * layout with an AEAD this build has; otherwise left as it is. */
		if (cfg.layout != PDM_LAYOUT_V2_PROTECTED || !aead_supported())
			return TC_ACT_OK;
		if (get16(h, o) != 0x2000) { /* version 2, reserved 0: malformed, as in the clear */
			COUNT(c, malformed);
			return TC_ACT_OK;
		}
		__u32 zero = 0;
		struct open_work *ow = bpf_map_lookup_elem(&pdm_open_work, &zero);
		if (!ow)
			return TC_ACT_OK;
		p.proto = h[0];
		p.l4 = p.l3 + IPV6_HLEN + len;
		if (!load_ports(skb, &p))
			return TC_ACT_OK;
		ow->p = p;
		ow->len = len;
		ow->only_pdm = w.only_pdm;
#pragma unroll
		for (int i = 0; i < 36; i++)
			ow->option[i] = h[(w.at + i) & (DEST_OPTS_MAX - 1)];
		bpf_tail_call(skb, &pdm_open_call, 0);
		return TC_ACT_OK;
	} else {
		COUNT(c, malformed);
		return TC_ACT_OK;
	}

	p.proto = h[0];
	p.l4 = p.l3 + IPV6_HLEN + len;
	if (!load_ports(skb, &p))
		return TC_ACT_OK; /* PDM ahead of something other than TCP/UDP/echo */

	struct read_fields f = {.psntp = psntp,
				.psnlr = psnlr,
				.dtlr = dtlr,
				.dtls = dtls,
				.rn_f = rn_f,
				.stlr = stlr,
				.stls = stls,
				.gp = gp,
				.layout = layout};
	return finish_read(skb, c, &p, &f, len, w.only_pdm);
}

/* Does nothing: the fair baseline for benchmarks (the cost of the tc hook alone). */
SEC("tc")
int pdm_empty(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

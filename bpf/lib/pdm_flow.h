/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * pdm_flow.h: each flow's state, from its first packet to its expiry or eviction.
 * A flow is found or made by pdm_flow_state(); a timer forgets it, with its keys, once
 * it is idle or when the table is full and it is among the idlest.
 */
#ifndef PDM_FLOW_H
#define PDM_FLOW_H

#include "pdm_maps.h"
#include "../include/pdm_codec.h"
#include "pdm_option.h"

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
#define PDM_CLOCK_MONOTONIC 1
#define PDM_NS_PER_S 1000000000ULL

static __always_inline __u64 pdm_sweep_interval_ns(void)
{
	__u64 quarter = (__u64)cfg.flow_timeout_s * PDM_NS_PER_S / 4;
	return quarter > PDM_NS_PER_S ? quarter : PDM_NS_PER_S;
}

/* Delete a flow's keys, both sides (they are keyed by the same flow key). */
static __always_inline void pdm_forget_keys(struct pdm_flow_key *key)
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
static __always_inline __u64 pdm_idle_ns(const struct pdm_flow_state *st, __u64 now)
{
	__u64 last = st->first_ns;
	if (st->last_send_ns > last)
		last = st->last_send_ns;
	if (st->last_recv_ns > last)
		last = st->last_recv_ns;
	return last > now ? 0 : now - last;
}

/* 0: no key protects the flow (evicted first); 1: this host sends on it under its key. */
static __always_inline __u32 pdm_evict_class(struct pdm_flow_key *key, const struct pdm_flow_state *st)
{
	if (!(st->flags & PDM_FLOW_HAS_SENT))
		return 0;
	if (pdm_layout_is_protected(cfg.layout) && !bpf_map_lookup_elem(&pdm_keys, key))
		return 0;
	return 1;
}

/* floor(log2(ms + 1)), capped: the flow's idleness on the scale eviction sorts by */
static __always_inline __u32 pdm_idle_power(__u64 idle_ns)
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

struct pdm_sweep_ctx {
	__u64 now;
	struct pdm_counters *c;
	struct pdm_sweep *s;
};

/* Delete a flow with its keys; 0 when this call deleted it (not another CPU or user space). */
static __always_inline long pdm_delete_flow(struct pdm_flow_key *key)
{
	struct pdm_flow_key k = *key;
	long err = bpf_map_delete_elem(&pdm_flows, &k);
	if (pdm_layout_is_protected(cfg.layout))
		pdm_forget_keys(&k);
	return err;
}

/* First walk: expire idle flows; when evicting, count the others by class and idleness. */
static long pdm_expire_flow(void *map, struct pdm_flow_key *key, struct pdm_flow_state *st, struct pdm_sweep_ctx *x)
{
	__u64 idle = pdm_idle_ns(st, x->now);
	if (cfg.flow_timeout_s && idle >= (__u64)cfg.flow_timeout_s * PDM_NS_PER_S) {
		if (pdm_delete_flow(key) == 0) {
			PDM_COUNT(x->c, flows_expired);
			x->s->freed++;
		}
		return 0;
	}
	if (x->s->evict) {
		__u32 cls = pdm_evict_class(key, st);
		__u32 power = pdm_idle_power(idle);
		if (cls == 1 && idle < PDM_EVICT_KEEP_NS)
			return 0; /* in use: never evicted */
		if (cls < 2 && power < PDM_IDLE_POWERS)
			x->s->idle_hist[cls][power]++;
	}
	return 0;
}

/* Second walk: delete the idlest flows the first walk chose, class by class. */
static long pdm_evict_flow(void *map, struct pdm_flow_key *key, struct pdm_flow_state *st, struct pdm_sweep_ctx *x)
{
	__u64 idle = pdm_idle_ns(st, x->now);
	struct pdm_sweep *s = x->s;
	__u32 cls = pdm_evict_class(key, st);
	if (cls > 1 || !s->quota[cls] || pdm_idle_power(idle) < s->from_power[cls])
		return 0;
	if (cls == 1 && idle < PDM_EVICT_KEEP_NS)
		return 0;
	if (pdm_delete_flow(key))
		return 0;
	PDM_COUNT(x->c, flows_evicted);
	s->quota[cls]--;
	return s->quota[0] || s->quota[1] ? 0 : 1; /* 1 stops the walk */
}

/* From the idlest power down, how far to go to evict `want` flows of one class: one
 * step of bpf_loop per power (a loop the verifier checks once, not per iteration). */
struct pdm_choose_ctx {
	const __u32 *hist;
	__u32 want;
	__u32 sum;
	__u32 from;
};

static long pdm_choose_step(__u32 i, struct pdm_choose_ctx *k)
{
	__u32 power = PDM_IDLE_POWERS - 1 - i;
	if (power >= PDM_IDLE_POWERS)
		return 1;
	k->sum += k->hist[power];
	k->from = power;
	return k->sum >= k->want ? 1 : 0;
}

static __always_inline __u32 pdm_choose_power(const __u32 *hist, __u32 want, __u32 *taken)
{
	struct pdm_choose_ctx k = {.hist = hist, .want = want};
	bpf_loop(PDM_IDLE_POWERS, pdm_choose_step, &k, 0);
	*taken = k.sum < want ? k.sum : want;
	return k.from;
}

static int pdm_sweep_flows(void *map, __u32 *key, struct pdm_sweep *s)
{
	struct pdm_sweep_ctx x = {.now = bpf_ktime_get_ns(), .c = pdm_counters_here(), .s = s};
	s->freed = 0;
	if (s->evict)
		__builtin_memset(s->idle_hist, 0, sizeof(s->idle_hist));
	bpf_for_each_map_elem(&pdm_flows, pdm_expire_flow, &x, 0);
	if (s->evict) {
		s->evict = 0;
		__u32 freed = s->freed;
		if (freed < PDM_EVICT_TARGET) {
			__u32 want = PDM_EVICT_TARGET - freed, quota0 = 0, quota1 = 0;
			s->from_power[0] = pdm_choose_power(s->idle_hist[0], want, &quota0);
			s->from_power[1] = quota0 < want ? pdm_choose_power(s->idle_hist[1], want - quota0, &quota1)
							 : PDM_IDLE_POWERS;
			s->quota[0] = quota0;
			s->quota[1] = quota1;
			if (quota0 || quota1)
				bpf_for_each_map_elem(&pdm_flows, pdm_evict_flow, &x, 0);
		}
	}
	if (cfg.flow_timeout_s)
		bpf_timer_start(&s->timer, pdm_sweep_interval_ns(), 0);
	return 0;
}

/* Start the sweeping timer, once (with the first flow); with no timeout it runs only to evict. */
static __always_inline void pdm_start_sweeping(void)
{
	__u32 zero = 0;
	struct pdm_sweep *s = bpf_map_lookup_elem(&pdm_sweep, &zero);
	if (!s || s->started)
		return;
	s->started = 1;
	if (bpf_timer_init(&s->timer, &pdm_sweep, PDM_CLOCK_MONOTONIC))
		return; /* another CPU was first */
	bpf_timer_set_callback(&s->timer, pdm_sweep_flows);
	if (cfg.flow_timeout_s)
		bpf_timer_start(&s->timer, pdm_sweep_interval_ns(), 0);
}

/* The table refused a new flow: have the timer evict at once, unless it did just now. */
static __always_inline void pdm_ask_eviction(__u64 now)
{
	__u32 zero = 0;
	struct pdm_sweep *s = bpf_map_lookup_elem(&pdm_sweep, &zero);
	if (!s || !s->started || now - s->evict_ns < PDM_EVICT_GAP_NS)
		return;
	s->evict_ns = now;
	s->evict = 1;
	bpf_timer_start(&s->timer, 0, 0);
}

/*
 * Find or create the flow's state. New flows start at a random PSNTP (16 or 32 bits, as
 * the layout counts) and LFSR state, or at the configured first PSNTP (tests of the wrap).
 */
static __always_inline struct pdm_flow_state *pdm_flow_state(const struct pdm_flow_key *key, __u64 now,
							     struct pdm_counters *c, int *created)
{
	struct pdm_flow_state *st = bpf_map_lookup_elem(&pdm_flows, key);
	*created = 0;
	if (st)
		return st;
	struct pdm_flow_state init = {};
	__u32 r = bpf_get_prandom_u32();
	init.psn_next = (cfg.flags & PDM_CFG_FIRST_PSN) ? cfg.first_psn : pdm_layout_is_wide(cfg.layout) ? r : (__u16)r;
	init.rn_state = pdm_lfsr_seed(bpf_get_prandom_u32());
	init.first_ns = now;
	init.kri_since_ns = now;
	if (bpf_map_update_elem(&pdm_flows, key, &init, BPF_NOEXIST) == 0) {
		*created = 1;
		PDM_COUNT(c, flows_created);
		pdm_start_sweeping();
	}
	st = bpf_map_lookup_elem(&pdm_flows, key);
	if (!st) {
		PDM_COUNT(c, flows_full);
		pdm_ask_eviction(now);
	}
	return st;
}

/* Rotate a Kri after this many Random Numbers: the policy's count, at most the LFSR's period. */
static __always_inline __u32 pdm_per_kri(void)
{
	return cfg.max_packets_per_kri && cfg.max_packets_per_kri < PDM_LFSR_PERIOD ? cfg.max_packets_per_kri
										    : PDM_LFSR_PERIOD;
}

/* What one stamp takes from its flow. */
struct pdm_stamp {
	__u64 tlr_ns; /* since the last packet received (0: none yet) */
	__u64 tls_ns; /* from the last packet sent to the last received after it (0: none) */
	__u32 kri;
	__u32 psntp, psnlr; /* as the layout counts: 16 or 32 bits */
	__u16 rn;
	int rotated; /* the Kri advanced with this packet */
};

/*
 * Take the next stamp of a flow this host sends on, under the flow's lock, so CPUs
 * never hand out the same PSNTP or Random Number. PDMv2 (`v2`) rotates the Kri when its
 * Random Numbers run out (or the policy's count), or when it has been in use for the
 * policy's longest age (keys.md 6), starting the new Kri's sequence at `reseed`.
 */
static __always_inline void pdm_flow_take_stamp(struct pdm_flow_state *st, __u64 now, int v2, __u16 reseed,
						__u32 per_kri, struct pdm_stamp *s)
{
	bpf_spin_lock(&st->lock);
	s->psntp = st->psn_next++;
	if (!pdm_layout_is_wide(cfg.layout))
		s->psntp &= 0xffff; /* RFC 8250 and -02's layouts count modulo 2^16 */
	s->psnlr = st->psn_lr;
	if (st->flags & PDM_FLOW_HAS_RECEIVED) {
		s->tlr_ns = now - st->last_recv_ns;
		if ((st->flags & PDM_FLOW_HAS_SENT) && st->last_recv_ns >= st->last_send_ns)
			s->tls_ns = st->last_recv_ns - st->last_send_ns;
	}
	st->last_send_ns = now;
	st->flags |= PDM_FLOW_HAS_SENT;
	st->tx_packets++;
	if (v2) {
		int aged = cfg.max_kri_age_ms && now - st->kri_since_ns >= (__u64)cfg.max_kri_age_ms * 1000000;
		if ((st->rn_drawn >= per_kri || aged) && st->kri != 0xffffffff) {
			st->kri++;
			st->rn_state = reseed;
			st->rn_drawn = 0;
			st->kri_since_ns = now;
			s->rotated = 1;
		}
		st->rn_state = pdm_lfsr_step(st->rn_state);
		st->rn_drawn++;
		s->rn = st->rn_state;
		s->kri = st->kri;
	}
	bpf_spin_unlock(&st->lock);
}

#endif /* PDM_FLOW_H */

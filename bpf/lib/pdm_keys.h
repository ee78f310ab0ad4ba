/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * pdm_keys.h: the protected layout's keys in the kernel (keys.md 5-6). User space (the
 * agent's key installer) puts each flow's own keys in pdm_keys and its peer's in
 * pdm_peer_keys, the key of Kri k in slot k % PDM_KEY_SLOTS; with AES-128-GCM the key
 * itself lives in a kernel AES context in pdm_gcm_keys. What is missing, the kernel asks
 * for on pdm_key_needs, paced per flow. Nothing is ever stamped without its key.
 */
#ifndef PDM_KEYS_H
#define PDM_KEYS_H

#include "pdm_maps.h"
#include "pdm_events.h"
#include "pdm_flow.h"
#include "pdm_policy.h"

/* The flow's key for `kri`, or NULL when it is not installed. */
static __always_inline const __u8 *pdm_key_for(const struct pdm_flow_key *flow, __u32 kri)
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
static __always_inline void pdm_need_keys(struct pdm_counters *c, const struct pdm_flow_key *flow, __u32 kri, __u8 kind,
					  __u8 icmp_type, const __u8 *option)
{
	struct pdm_key_need *n = bpf_ringbuf_reserve(&pdm_key_needs, sizeof(*n), 0);
	if (!n) {
		PDM_COUNT(c, events_lost);
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
static __always_inline int pdm_may_ask(struct pdm_flow_state *st, __u64 now)
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
static __always_inline void pdm_ask_for_keys(struct __sk_buff *skb, struct pdm_counters *c, const struct pdm_pkt *p,
					     const struct pdm_flow_key *key, __u32 kri, __u8 kind, __u8 icmp_type,
					     const __u8 *option)
{
	__u64 now = bpf_ktime_get_ns();
	int created;
	struct pdm_flow_state *st = pdm_flow_state(key, now, c, &created);
	if (!st)
		return;
	if (created)
		pdm_emit_flow(c, p, PDM_EV_NEW_FLOW, now, 0, 0, 0, skb->ifindex);
	if (pdm_may_ask(st, now))
		pdm_need_keys(c, key, kri, kind, icmp_type, option);
}

/* Copy the flow's key for `kri` into the sealing work (AES-128-GCM: where it is); 0 when it is not installed. */
static __always_inline int pdm_take_key(const struct pdm_flow_key *flow, __u32 kri)
{
	struct pdm_seal_work *w = pdm_seal_work_here();
	const __u8 *k = pdm_key_for(flow, kri);
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
static __always_inline __u32 pdm_later_key(const struct pdm_flow_key *flow, __u32 kri)
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
static __always_inline int pdm_resume_at_later_kri(struct pdm_flow_state *st, __u32 kri, __u32 later, __u16 reseed,
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
 * Egress, protected layout: the key for the stamp's Kri, into the sealing work. First
 * the events that tell the agent which keys to install next. A flow this kernel forgot
 * whose agent gave keys of a later, never used Kri resumes there (s->kri and s->rn
 * change) instead of starting over under its old keys. 1 when the key is there; 0 when
 * not: then no PDM at all rather than PDM in the clear.
 */
static __always_inline int pdm_egress_key(struct __sk_buff *skb, struct pdm_counters *c, const struct pdm_pkt *p,
					  const struct pdm_flow_key *key, struct pdm_flow_state *st, __u64 now,
					  int created, struct pdm_stamp *s, __u16 reseed, __u32 per_kri)
{
	if (created)
		pdm_emit_flow(c, p, PDM_EV_NEW_FLOW, now, s->psntp, 0, s->kri, skb->ifindex);
	if (s->rotated)
		pdm_emit_flow(c, p, PDM_EV_ROTATED, now, s->psntp, 0, s->kri, skb->ifindex);
	int have = pdm_take_key(key, s->kri);
	__u32 later = have ? 0 : pdm_later_key(key, s->kri);
	if (later) {
		int moved = pdm_resume_at_later_kri(st, s->kri, later, reseed, per_kri, now, &s->kri, &s->rn);
		if (moved > 0)
			pdm_emit_flow(c, p, PDM_EV_ROTATED, now, s->psntp, 0, s->kri, skb->ifindex);
		if (moved >= 0)
			have = pdm_take_key(key, s->kri);
	}
	if (created || s->rotated || (!have && pdm_may_ask(st, now)))
		pdm_need_keys(c, key, s->kri, PDM_NEED_OWN, pdm_icmp_type(p), NULL);
	return have;
}

/* The peer's `keys` hold the key for `kri`. */
static __always_inline int pdm_has_peer_key(const struct pdm_flow_keys *keys, __u32 kri)
{
	__u32 slot = kri % PDM_KEY_SLOTS;
	asm volatile("" : "+r"(slot)); /* the verifier cannot bound a remainder */
	return slot < PDM_KEY_SLOTS && keys->present[slot] && keys->kri[slot] == kri;
}

/*
 * Protected layout: a packet of a selected flow arrived without PDM (a new flow's first,
 * whose sender had no key yet), and this host has no key to seal its answers with.
 * Asking now rather than when the first answer leaves gives the agent the time the
 * application takes to answer, so a responder's first answer is sealed too. The flow
 * is made here, so that it expires with its keys should no answer ever leave.
 */
static __always_inline void pdm_ask_keys_for_answers(struct __sk_buff *skb, struct pdm_pkt *p)
{
	if (pdm_is_multicast(&p->ip6.daddr) || pdm_is_extension_header(p->ip6.nexthdr))
		return; /* multicast is never stamped; behind another header, PDM never goes */
	p->proto = p->ip6.nexthdr;
	p->l4 = p->l3 + PDM_IPV6_HLEN;
	if (!pdm_load_ports(skb, p) || !pdm_selects(&p->ip6.saddr, p))
		return;
	struct pdm_flow_key key = {};
	pdm_flow_key_of(p, 0, &key);
	if (bpf_map_lookup_elem(&pdm_keys, &key))
		return; /* keyed already */
	pdm_ask_for_keys(skb, pdm_counters_here(), p, &key, 0, PDM_NEED_OWN, pdm_answer_icmp_type(p), NULL);
}

#ifdef PDM_WITH_GCM
/*
 * The AES part of one AES-128-GCM option: the two counter blocks for `nonce` (in[]),
 * encrypted under the key of `id` into out[]. The key's table, or NULL when the slot
 * holds no key for `kri` (not installed yet, or already replaced).
 */
static __always_inline struct pdm_gcm_key *pdm_gcm_blocks(const struct pdm_gcm_key_id *id, __u32 kri, const __u8 *nonce,
							  __u8 *in, __u8 *out)
{
	struct pdm_gcm_key *k = bpf_map_lookup_elem(&pdm_gcm_keys, id);
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

#endif /* PDM_KEYS_H */

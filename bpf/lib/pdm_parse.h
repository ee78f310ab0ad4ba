/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * pdm_parse.h: reading a packet's headers, the one place the data path trusts
 * nothing it has not bounded.
 *
 * Contract. Every read goes through pdm_load_fixed (or bpf_skb_load_bytes), so a packet
 * shorter than what is read is a failed read, never an out-of-bounds access. A packet
 * is PDM's only when it is IPv6 (version 6, at cfg.l2_len), and its transport is TCP,
 * UDP or ICMPv6 echo (request 128, reply 129); everything else, NDP and ICMPv6 errors
 * included, is left as it is. An ICMPv6 echo's flow uses its identifier as both ports
 * (wire.md 1), so a request and its reply are one flow. Nothing here writes to the
 * packet but pdm_fix_ipv6_header, which rewrites the two fields a header insertion or
 * removal changes.
 */
#ifndef PDM_PARSE_H
#define PDM_PARSE_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>

#include "../include/pdm_abi.h"

#define PDM_IPV6_HLEN 40
#define PDM_IPV6_MIN_MTU 1280
#define PDM_NEXTHDR_HOP 0
#define PDM_NEXTHDR_ROUTING 43
#define PDM_NEXTHDR_FRAGMENT 44
#define PDM_NEXTHDR_ESP 50
#define PDM_NEXTHDR_AUTH 51
#define PDM_NEXTHDR_DEST 60
#define PDM_NEXTHDR_MOBILITY 135
#define PDM_NEXTHDR_HIP 139
#define PDM_NEXTHDR_SHIM6 140
#define PDM_ICMPV6_ECHO_REQUEST 128
#define PDM_ICMPV6_ECHO_REPLY 129

/* Packet facts every program needs, read once. */
struct pdm_pkt {
	struct ipv6hdr ip6;
	__u32 l3;	  /* offset of the IPv6 header */
	__u32 l4;	  /* offset of the transport header */
	__u8 proto;	  /* transport protocol */
	__u16 wire_sport; /* as on the wire; ICMPv6: type<<8|code */
	__u16 wire_dport; /* ICMPv6: identifier */
	__u16 flow_sport; /* as in the flow key; ICMPv6 echo: identifier */
	__u16 flow_dport;
};

/*
 * bpf_skb_load_bytes without the helper call when the bytes sit in the skb's linear
 * area, as headers nearly always do (the helper stays the fallback). `n` is a
 * compile-time constant; `off` may vary within the verifier's bounds.
 */
static __always_inline int pdm_load_fixed(struct __sk_buff *skb, __u32 off, void *to, const __u32 n)
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

static __always_inline int pdm_is_extension_header(__u8 nh)
{
	return nh == PDM_NEXTHDR_HOP || nh == PDM_NEXTHDR_ROUTING || nh == PDM_NEXTHDR_FRAGMENT ||
	       nh == PDM_NEXTHDR_ESP || nh == PDM_NEXTHDR_AUTH || nh == PDM_NEXTHDR_DEST ||
	       nh == PDM_NEXTHDR_MOBILITY || nh == PDM_NEXTHDR_HIP || nh == PDM_NEXTHDR_SHIM6;
}

/* Read the transport ports (or ICMPv6 type/code/identifier) at p->l4. 0 if not ours. */
static __always_inline int pdm_load_ports(struct __sk_buff *skb, struct pdm_pkt *p)
{
	__u8 l4[8];
	if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) {
		if (pdm_load_fixed(skb, p->l4, l4, 4))
			return 0;
		p->wire_sport = ((__u16)l4[0] << 8) | l4[1];
		p->wire_dport = ((__u16)l4[2] << 8) | l4[3];
		p->flow_sport = p->wire_sport;
		p->flow_dport = p->wire_dport;
		return 1;
	}
	if (p->proto == IPPROTO_ICMPV6) {
		if (pdm_load_fixed(skb, p->l4, l4, 8))
			return 0;
		/* Only echo: NDP and errors must stay untouched (hop-limit and size rules). */
		if (l4[0] != PDM_ICMPV6_ECHO_REQUEST && l4[0] != PDM_ICMPV6_ECHO_REPLY)
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

/* The ICMPv6 type of an echo packet (0 for TCP and UDP): it says which way a need goes. */
static __always_inline __u8 pdm_icmp_type(const struct pdm_pkt *p)
{
	return p->proto == IPPROTO_ICMPV6 ? p->wire_sport >> 8 : 0;
}

/* The ICMPv6 type of the answers to an echo packet: the other echo type (0 for TCP and
 * UDP). A request and its reply are one flow, told apart by type. */
static __always_inline __u8 pdm_answer_icmp_type(const struct pdm_pkt *p)
{
	if (p->proto != IPPROTO_ICMPV6)
		return 0;
	return pdm_icmp_type(p) == PDM_ICMPV6_ECHO_REQUEST ? PDM_ICMPV6_ECHO_REPLY : PDM_ICMPV6_ECHO_REQUEST;
}

/* The flow a packet belongs to, as this host sees it: for a packet this host sends,
 * local is the source; for one it receives, local is the destination. */
static __always_inline void pdm_flow_key_of(const struct pdm_pkt *p, int outgoing, struct pdm_flow_key *key)
{
	__builtin_memcpy(key->local, outgoing ? &p->ip6.saddr : &p->ip6.daddr, 16);
	__builtin_memcpy(key->remote, outgoing ? &p->ip6.daddr : &p->ip6.saddr, 16);
	key->local_port = outgoing ? p->flow_sport : p->flow_dport;
	key->remote_port = outgoing ? p->flow_dport : p->flow_sport;
	key->proto = p->proto;
}

static __always_inline int pdm_is_multicast(const struct in6_addr *a)
{
	return a->s6_addr[0] == 0xff;
}

static __always_inline int pdm_is_link_local(const struct in6_addr *a)
{
	return a->s6_addr[0] == 0xfe && (a->s6_addr[1] & 0xc0) == 0x80;
}

/* Rewrites the fixed header's payload length and next header after a header was
 * inserted or removed (they are adjacent: bytes 4-6). */
static __always_inline int pdm_fix_ipv6_header(struct __sk_buff *skb, __u32 l3, __u16 payload_len, __u8 next,
					       __u64 flags)
{
	__u8 fix[3] = {payload_len >> 8, payload_len & 0xff, next};
	return bpf_skb_store_bytes(skb, l3 + 4, fix, 3, flags);
}

#endif /* PDM_PARSE_H */

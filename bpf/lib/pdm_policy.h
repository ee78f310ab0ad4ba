/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * pdm_policy.h: which packets are stamped (datapath.md "config"). A packet is selected
 * when its remote address is in one of cfg.prefixes and either of its ports is one of
 * cfg.ports; an empty list selects everything. Read from the const volatile cfg, so
 * the verifier drops the loops when nothing is listed.
 */
#ifndef PDM_POLICY_H
#define PDM_POLICY_H

#include "pdm_maps.h"

static __always_inline int pdm_prefix_match(const struct in6_addr *a, __u32 i)
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

/* The remote address is in a listed prefix. */
static __always_inline int pdm_prefix_selects(const struct in6_addr *remote)
{
	if (!cfg.n_prefixes)
		return 1;
	for (__u32 i = 0; i < PDM_MAX_PREFIXES; i++)
		if (i < cfg.n_prefixes && pdm_prefix_match(remote, i))
			return 1;
	return 0;
}

/* Either port is listed. */
static __always_inline int pdm_ports_select(__u16 sport, __u16 dport)
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

/* Both: the packet's flow is one this host stamps and reads. */
static __always_inline int pdm_selects(const struct in6_addr *remote, const struct pdm_pkt *p)
{
	return pdm_prefix_selects(remote) && pdm_ports_select(p->flow_sport, p->flow_dport);
}

/* The protected layout's AEAD is one this build seals with. */
static __always_inline int pdm_aead_supported(void)
{
#ifdef PDM_WITH_GCM
	if (cfg.aead == PDM_AEAD_AES128GCM)
		return 1;
#endif
	return cfg.aead == PDM_AEAD_CHACHA20POLY1305;
}

#endif /* PDM_POLICY_H */

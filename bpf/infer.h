/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Protocol inference from the first bytes of a message, in the kernel. Each protocol is a
 * pure function of the bytes; protocols/src/infer.rs holds the same rules for user space and
 * tests them on fixture bytes. Keep the two in step.
 */
#ifndef WIRELENS_INFER_H
#define WIRELENS_INFER_H

#include "wirelens.h"

enum wl_msg_kind {
	WL_MSG_NONE = 0,
	WL_MSG_REQUEST = 1,
	WL_MSG_RESPONSE = 2,
};

static __always_inline int wl_prefix(const __u8 *b, __u32 n, const char *lit, __u32 len)
{
	if (n < len)
		return 0;
#pragma unroll
	for (int i = 0; i < 8; i++) {
		if (i >= len)
			break;
		if (b[i] != (__u8)lit[i])
			return 0;
	}
	return 1;
}

/*
 * HTTP/1.x (RFC 9112 sections 3 and 4).
 * Requests start with a method token followed by one space; only the registered methods of
 * RFC 9110 section 9 plus PATCH are accepted, which keeps binary protocols out (their first
 * bytes are lengths or type codes, rarely upper-case ASCII followed by a space). An inline
 * Redis command "GET k" shares the first four bytes: user space settles that case by the
 * " HTTP/1." that follows the target.
 * Responses start with "HTTP/1." then a version digit and a space: nothing else sends that.
 */
static __always_inline int wl_infer_http(const __u8 *b, __u32 n)
{
	if (wl_prefix(b, n, "GET ", 4) || wl_prefix(b, n, "POST ", 5) ||
	    wl_prefix(b, n, "PUT ", 4) || wl_prefix(b, n, "DELETE ", 7) ||
	    wl_prefix(b, n, "HEAD ", 5) || wl_prefix(b, n, "OPTIONS ", 8) ||
	    wl_prefix(b, n, "PATCH ", 6) || wl_prefix(b, n, "CONNECT ", 8) ||
	    wl_prefix(b, n, "TRACE ", 6))
		return WL_MSG_REQUEST;
	if (n >= 9 && wl_prefix(b, n, "HTTP/1.", 7) && b[7] >= '0' && b[7] <= '9' && b[8] == ' ')
		return WL_MSG_RESPONSE;
	return WL_MSG_NONE;
}

/* Runs every enabled protocol's rule; returns the message kind and sets *proto. */
static __always_inline int wl_infer(const __u8 *b, __u32 n, __u8 *proto)
{
	int kind = wl_infer_http(b, n);
	if (kind != WL_MSG_NONE) {
		*proto = WL_PROTO_HTTP;
		return kind;
	}
	return WL_MSG_NONE;
}

#endif /* WIRELENS_INFER_H */

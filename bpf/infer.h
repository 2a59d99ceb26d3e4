/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Protocol inference from the first bytes of a message, in the kernel. Each protocol is a
 * pure function of (bytes, captured count n, real call length total, socket type); the
 * buffer always holds at least WL_INFER_BYTES readable bytes (the per-CPU scratch area), so
 * constant indexes below that are safe and `n` only decides what they mean.
 * protocols/src/infer.rs holds the same rules for user space and tests them on fixture
 * bytes. Keep the two in step.
 */
#ifndef WIRELENS_INFER_H
#define WIRELENS_INFER_H

#include "wirelens.h"

enum wl_msg_kind {
	WL_MSG_NONE = 0,
	WL_MSG_REQUEST = 1,
	WL_MSG_RESPONSE = 2,
};

#define WL_SOCK_STREAM 1
#define WL_SOCK_DGRAM 2

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

static __always_inline int wl_digit(__u8 c)
{
	return c >= '0' && c <= '9';
}

/*
 * HTTP/1.x (RFC 9112 sections 3 and 4).
 * Requests start with a method token followed by one space; only the registered methods of
 * RFC 9110 section 9 plus PATCH are accepted, which keeps binary protocols out (their first
 * bytes are lengths or type codes, rarely upper-case ASCII followed by a space). An inline
 * Redis command "GET k" shares the first four bytes; Redis clients send RESP arrays, so the
 * inline form is rare enough to accept the confusion here (user space re-checks).
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
	if (n >= 9 && wl_prefix(b, n, "HTTP/1.", 7) && wl_digit(b[7]) && b[8] == ' ')
		return WL_MSG_RESPONSE;
	return WL_MSG_NONE;
}

/*
 * PostgreSQL frontend/backend protocol 3.0 (PostgreSQL docs, "Message Formats").
 * StartupMessage: int32 length (>= 8) then int32 196608 (3.0); SSLRequest and
 * GSSENCRequest: length exactly 8 then 80877103 / 80877104. Those codes are chosen by the
 * protocol never to be a valid version, and no other protocol here starts with a big-endian
 * length followed by them. A simple Query ('Q') mid-connection: the type byte, then an int32
 * length that covers exactly the rest of the call; a Parse ('P') or Bind ('B', prepared
 * statements) whose length fits in the call (Bind/Execute/Sync go out together).
 * Backend: an AuthenticationRequest ('R', length 8..2^16, code 0..12) answers the startup
 * message; a ReadyForQuery ('Z', length 5, status I/T/E) ends every exchange.
 */
static __always_inline int wl_infer_pgsql(const __u8 *b, __u32 n, __u64 total)
{
	if (n < 6)
		return WL_MSG_NONE;
	__u32 len = ((__u32)b[0] << 24) | ((__u32)b[1] << 16) | ((__u32)b[2] << 8) | b[3];
	__u32 code = ((__u32)b[4] << 24) | ((__u32)b[5] << 16) | ((__u32)b[6] << 8) | b[7];
	if (n >= 8 && len == 8 && (code == 80877103 || code == 80877104))
		return WL_MSG_REQUEST;
	if (n >= 8 && code == 196608 && len >= 8 && len <= 10000 && len == total)
		return WL_MSG_REQUEST;
	__u32 mlen = ((__u32)b[1] << 24) | ((__u32)b[2] << 16) | ((__u32)b[3] << 8) | b[4];
	if ((b[0] == 'Q' || b[0] == 'P' || b[0] == 'B') && mlen >= 5 && (__u64)mlen + 1 <= total &&
	    (b[0] != 'Q' || (__u64)mlen + 1 == total))
		return WL_MSG_REQUEST;
	if (n >= 9 && b[0] == 'R' && mlen >= 8 && mlen < 65536 && b[5] == 0 && b[6] == 0 && b[7] == 0 &&
	    b[8] <= 12)
		return WL_MSG_RESPONSE;
	if (b[0] == 'Z' && mlen == 5 && (b[5] == 'I' || b[5] == 'T' || b[5] == 'E'))
		return WL_MSG_RESPONSE;
	return WL_MSG_NONE;
}

/*
 * MySQL client/server protocol (MySQL internals, "MySQL Packets", "Command Phase").
 * Every packet: int<3> payload length, int<1> sequence id. The server speaks first with a
 * Handshake v10: sequence 0, payload[0] = 0x0a, then a NUL-terminated version that starts
 * with a digit. A command mid-connection: sequence 0, a known command byte, and (for
 * COM_QUERY, COM_STMT_PREPARE, COM_INIT_DB) a payload length that covers exactly the rest of
 * the call, which keeps small binary messages of other protocols out.
 */
/* Command bytes a client sends in the command phase (MySQL internals, "Text Protocol" and
 * "Prepared Statements"): QUIT, INIT_DB, QUERY, FIELD_LIST, PING, STMT_PREPARE/EXECUTE/
 * SEND_LONG_DATA/CLOSE/RESET/FETCH, SET_OPTION. */
static __always_inline int wl_mysql_command(__u8 c)
{
	return c == 0x01 || c == 0x02 || c == 0x03 || c == 0x04 || c == 0x0e ||
	       (c >= 0x16 && c <= 0x1c);
}

static __always_inline int wl_infer_mysql(const __u8 *b, __u32 n, __u64 total)
{
	if (n < 5)
		return WL_MSG_NONE;
	__u32 len = b[0] | ((__u32)b[1] << 8) | ((__u32)b[2] << 16);
	if (b[3] != 0 || len == 0)
		return WL_MSG_NONE;
	if (b[4] == 0x0a && n >= 6 && wl_digit(b[5]) && len >= 20 && (__u64)len + 4 <= total)
		return WL_MSG_RESPONSE;
	__u8 cmd = b[4];
	if ((cmd == 0x03 || cmd == 0x16 || cmd == 0x02) && len >= 2 && (__u64)len + 4 == total)
		return WL_MSG_REQUEST;
	/* COM_STMT_EXECUTE: statement id (4), flags (1), iteration count (4) = 1. */
	if (cmd == 0x17 && len >= 10 && (__u64)len + 4 == total && n >= 14 && b[10] == 1 &&
	    b[11] == 0 && b[12] == 0 && b[13] == 0)
		return WL_MSG_REQUEST;
	/* COM_PING: a one-byte payload. */
	if (cmd == 0x0e && len == 1 && total == 5)
		return WL_MSG_REQUEST;
	return WL_MSG_NONE;
}

/*
 * Redis RESP2/RESP3 (redis.io "Redis serialization protocol specification").
 * Clients send commands as arrays of bulk strings: '*', 1-4 digits, CRLF, then '$'. Nothing
 * else here starts with '*' followed by digits and CRLF.
 * Replies seen first (a connection opened before the agent): a simple string "+OK"/"+PONG"
 * or an error "-ERR"/"-WRONGTYPE"/"-NOAUTH", an integer ':' or a bulk string '$' of digits
 * (or "-1") ending in CRLF within the first bytes.
 */
static __always_inline int wl_infer_redis(const __u8 *b, __u32 n)
{
	if (n < 4)
		return WL_MSG_NONE;
	if (b[0] == '*' && wl_digit(b[1])) {
		int i = 2;
#pragma unroll
		for (int k = 0; k < 3; k++) {
			if (wl_digit(b[i]))
				i++;
		}
		if ((__u32)i + 2 < n && b[i] == '\r' && b[i + 1] == '\n' && b[i + 2] == '$')
			return WL_MSG_REQUEST;
		return WL_MSG_NONE;
	}
	if (wl_prefix(b, n, "+OK\r\n", 5) || wl_prefix(b, n, "+PONG\r\n", 7) ||
	    wl_prefix(b, n, "-ERR ", 5) || wl_prefix(b, n, "-WRONGTYPE", 8) ||
	    wl_prefix(b, n, "-NOAUTH", 7))
		return WL_MSG_RESPONSE;
	if (b[0] == ':' || b[0] == '$') {
		int i = 1;
		if (b[1] == '-')
			i = 2;
		if (!wl_digit(b[i]))
			return WL_MSG_NONE;
#pragma unroll
		for (int k = 0; k < 10; k++) {
			if (wl_digit(b[i]))
				i++;
		}
		if ((__u32)i + 1 < n && b[i] == '\r' && b[i + 1] == '\n')
			return WL_MSG_RESPONSE;
	}
	return WL_MSG_NONE;
}

/*
 * DNS (RFC 1035 section 4.1.1). Over UDP a message is the datagram; over TCP it is preceded
 * by a two-byte length; the first message must fit in the call (RFC 1035 section 4.2.2,
 * several may follow when queries are pipelined). Header checks: opcode QUERY, NOTIFY,
 * UPDATE or DSO, Z bit 0, one question (what every resolver sends) or none with an EDNS OPT
 * record (a cookie-only query), and for a query no answer or authority records and at most
 * two additional ones (EDNS OPT, a cookie). The first byte of the question name is a label length (1..63) or 0
 * for the root. Random data passes all of these with a probability below 2^-30.
 */
static __always_inline int wl_infer_dns(const __u8 *b, __u32 n, __u64 total, __u8 sock_type)
{
	int o = 0;
	if (sock_type == WL_SOCK_STREAM) {
		if (n < 14)
			return WL_MSG_NONE;
		__u32 len = ((__u32)b[0] << 8) | b[1];
		/* Several messages may go in one call (pipelined queries): the first must fit. */
		if (len < 12 || (__u64)len + 2 > total)
			return WL_MSG_NONE;
		o = 2;
	} else if (sock_type != WL_SOCK_DGRAM) {
		return WL_MSG_NONE;
	}
	if (n < (__u32)o + 13)
		return WL_MSG_NONE;
	__u8 f1 = b[o + 2], f2 = b[o + 3];
	int qr = f1 >> 7, opcode = (f1 >> 3) & 0xf, z = (f2 >> 6) & 1;
	__u32 qd = ((__u32)b[o + 4] << 8) | b[o + 5];
	__u32 an = ((__u32)b[o + 6] << 8) | b[o + 7];
	__u32 ns = ((__u32)b[o + 8] << 8) | b[o + 9];
	__u32 ar = ((__u32)b[o + 10] << 8) | b[o + 11];
	__u8 label = b[o + 12];
	/* QUERY, NOTIFY, UPDATE, DSO (RFC 6895 section 2.2); one question, or none in a
	 * cookie-only query that carries an EDNS OPT record. */
	if (!(opcode == 0 || opcode == 2 || opcode == 4 || opcode == 5) || z != 0 || qd > 1 ||
	    (qd == 0 && ar == 0) || label > 63)
		return WL_MSG_NONE;
	if (!qr)
		return (an == 0 && ns == 0 && ar <= 2) ? WL_MSG_REQUEST : WL_MSG_NONE;
	return WL_MSG_RESPONSE;
}

/* Runs every enabled protocol's rule, most specific first; returns the message kind and
 * sets *proto. `mask` has bit (1 << protocol) set for each enabled protocol. */
static __always_inline int wl_infer(const __u8 *b, __u32 n, __u64 total, __u8 sock_type,
				    __u32 mask, __u8 *proto)
{
	int kind;
	if (sock_type == WL_SOCK_STREAM) {
		if ((mask & (1 << WL_PROTO_HTTP)) && (kind = wl_infer_http(b, n))) {
			*proto = WL_PROTO_HTTP;
			return kind;
		}
		if ((mask & (1 << WL_PROTO_PGSQL)) && (kind = wl_infer_pgsql(b, n, total))) {
			*proto = WL_PROTO_PGSQL;
			return kind;
		}
		if ((mask & (1 << WL_PROTO_MYSQL)) && (kind = wl_infer_mysql(b, n, total))) {
			*proto = WL_PROTO_MYSQL;
			return kind;
		}
		if ((mask & (1 << WL_PROTO_REDIS)) && (kind = wl_infer_redis(b, n))) {
			*proto = WL_PROTO_REDIS;
			return kind;
		}
	}
	if ((mask & (1 << WL_PROTO_DNS)) && (kind = wl_infer_dns(b, n, total, sock_type))) {
		*proto = WL_PROTO_DNS;
		return kind;
	}
	return WL_MSG_NONE;
}

#endif /* WIRELENS_INFER_H */

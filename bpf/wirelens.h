/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * The kernel/user-space boundary of wirelens, written once.
 *
 * Every struct that crosses the ring buffer or a map is defined here. Rust reads the types
 * that libbpf-cargo generates from the BTF of the compiled object (see the dummy instances in
 * wirelens.bpf.c); nothing is copied by hand. Rules: a type tag first, explicit padding,
 * fixed-width fields only, no bool.
 */
#ifndef WIRELENS_H
#define WIRELENS_H

#include "limits.h"

/* Event type tag, the first byte of every ring-buffer record. */
enum wl_event_type {
	WL_EV_DATA = 1,  /* a read or write on a tracked connection, with a payload prefix */
	WL_EV_CLOSE = 2, /* a tracked connection was closed */
	WL_EV_EXEC = 3,  /* a process called execve: user space decides whether to keep it */
};

/* Values of the filter control maps. */
enum wl_decision {
	WL_KEEP = 1,
	WL_DROP = 2,
};

/* Values of the port control map. */
enum wl_port_rule {
	WL_PORT_INCLUDE = 1,
	WL_PORT_EXCLUDE = 2,
};

/* The one entry of the `settings` control map; user space rewrites it on reload. */
struct wl_settings {
	__u32 proto_mask;    /* bit (1 << enum wl_protocol) per protocol to infer */
	__u8 filter;         /* 1: processes are decided by tgid_filter, cgroup_filter, undecided */
	__u8 undecided_drop; /* 1: a process in neither map is dropped (else captured) */
	__u8 drop_loopback;  /* 1: connections between two loopback addresses are ignored */
	__u8 port_include;   /* 1: only connections with a port marked WL_PORT_INCLUDE */
	__u8 exec_redecide;  /* 1: exec clears a process's decision and asks user space again */
	__u8 _pad[3];
};

/* Direction of a data event, seen from the traced process. */
enum wl_direction {
	WL_DIR_EGRESS = 0,  /* the process wrote/sent these bytes */
	WL_DIR_INGRESS = 1, /* the process read/received these bytes */
};

/* Which side of the connection the traced process is. */
enum wl_role {
	WL_ROLE_UNKNOWN = 0,
	WL_ROLE_CLIENT = 1, /* it called connect(), or sent the first request */
	WL_ROLE_SERVER = 2, /* it got the socket from accept(), or received the first request */
};

/* Application protocols; equal to wirelens_protocols::Protocol's discriminants. */
enum wl_protocol {
	WL_PROTO_UNKNOWN = 0,
	WL_PROTO_HTTP = 1,
	WL_PROTO_MYSQL = 2,
	WL_PROTO_PGSQL = 3,
	WL_PROTO_REDIS = 4,
	WL_PROTO_DNS = 5,
	WL_PROTO_IGNORED = 255, /* inference gave up: the connection sends no more data */
};

/* Flags of a data event. */
enum wl_data_flags {
	WL_DATA_READ_FAILED = 1, /* bpf_probe_read_user failed: payload absent, not empty */
	WL_DATA_IOV_TRUNCATED = 2, /* more iovecs than walked: captured < what the cap allowed */
};

/* Slots of the per-CPU counter array `counters`. */
enum wl_counter {
	WL_CNT_RB_FULL_DATA = 0,  /* data events lost: ring buffer full */
	WL_CNT_RB_FULL_CLOSE = 1, /* close events lost: ring buffer full */
	WL_CNT_READ_FAULT = 2,    /* payload copies that faulted (event still sent, flagged) */
	WL_CNT_DATA_EVENTS = 3,   /* data events sent */
	WL_CNT_CONN_TABLE_FULL = 4, /* connections not tracked: table update failed */
	WL_CNT_INFLIGHT_FULL = 5, /* no longer counted: data calls keep nothing in flight */
	WL_CNT_RB_FULL_EXEC = 6,  /* exec events lost: ring buffer full */
	WL_CNT_CLOSE_EVENTS = 7,  /* close events sent */
	WL_CNT_MAX = 8,
};

/* Key of the connection table. */
struct wl_conn_key {
	__u32 tgid;
	__s32 fd;
};

/* Connection identity and addresses, as the traced process sees them. */
struct wl_conn {
	__u32 tgid;
	__s32 fd;
	__u64 start_ns;      /* when the table entry was made: tells fd reuse apart */
	__u8 laddr[16];      /* local address: IPv4 in the first 4 bytes, or IPv6 */
	__u8 raddr[16];      /* remote address */
	__u16 lport;         /* host byte order */
	__u16 rport;         /* host byte order */
	__u16 family;        /* AF_INET or AF_INET6 */
	__u8 role;           /* enum wl_role */
	__u8 protocol;       /* enum wl_protocol */
	__u8 sock_type;      /* SOCK_STREAM or SOCK_DGRAM */
	__u8 infer_tries;    /* data calls seen without a protocol match (kernel only) */
	__u8 stash[4];       /* 1-4 bytes read/written alone: maybe a length header (kernel only) */
	__u8 stash_len;      /* how many bytes stash holds */
	__u8 stash_dir;      /* its direction */
	/* Bytes of TCP data calls whose events the ring buffer could not take since the last
	 * event of this connection that it did take, per direction: reported with that next
	 * event, so user space skips them as a gap where they were instead of joining the
	 * bytes around them. */
	__u32 lost_in;
	__u32 lost_out;
};

/* Header of a WL_EV_DATA record; `captured` payload bytes follow it in the same record. */
struct wl_data_event {
	__u8 type;           /* WL_EV_DATA */
	__u8 dir;            /* enum wl_direction */
	__u16 flags;         /* enum wl_data_flags */
	__u32 captured;      /* payload bytes that follow this header */
	__u64 ts_ns;         /* CLOCK_MONOTONIC (bpf_ktime_get_ns) at syscall exit */
	__u64 total;         /* real byte count of the call */
	char comm[16];
	struct wl_conn conn;
};

/* A WL_EV_EXEC record. */
struct wl_exec_event {
	__u8 type;           /* WL_EV_EXEC */
	__u8 _pad[3];
	__u32 tgid;
	__u64 ts_ns;
};

/* A WL_EV_CLOSE record. */
struct wl_close_event {
	__u8 type;           /* WL_EV_CLOSE */
	__u8 _pad[7];
	__u64 ts_ns;
	struct wl_conn conn;
};

#endif /* WIRELENS_H */

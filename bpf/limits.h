/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* All kernel-side limits and map sizes of wirelens, in one place. */
#ifndef WIRELENS_LIMITS_H
#define WIRELENS_LIMITS_H

/* Largest payload prefix one event can carry; `capture_bytes` is clamped to it (the per-CPU
 * scratch buffer, twice this plus a header, must stay under the 32 KiB per-CPU limit). A power of
 * two so that offsets can be masked for the verifier. */
#define WL_MAX_CAPTURE 8192
/* Default prefix per call (user space overrides it before load). */
#define WL_DEFAULT_CAPTURE 4096
/* iovecs walked per readv/writev/sendmsg/recvmsg call. */
#define WL_MAX_IOV 8
/* Messages of one sendmmsg/recvmmsg captured: the kernel's own cap on vlen (UIO_MAXIOV). */
#define WL_MMSG_MAX 1024
/* Connection table entries (LRU: the oldest idle entries go first). */
#define WL_CONN_TABLE_SIZE 65536
/* connect() calls in flight between enter and exit (one per thread). */
#define WL_INFLIGHT_SIZE 16384
/* Data events of a CPU between two looks at the ring buffer's fill level (a power of two). */
#define WL_WAKEUP_EVERY 16
/* Entries of the per-process and per-cgroup filter decisions. */
#define WL_TGID_FILTER_SIZE 65536
#define WL_CGROUP_FILTER_SIZE 16384
/* Entries of the port rules. */
#define WL_PORT_FILTER_SIZE 1024
/* Ring buffer size in bytes (a power of two, multiple of the page size). */
#define WL_RINGBUF_SIZE (16 * 1024 * 1024)
/* Data calls a connection may make without a protocol match before it is ignored. */
#define WL_INFER_ATTEMPTS 8
/* Bytes looked at by inference. */
#define WL_INFER_BYTES 16

#endif /* WIRELENS_LIMITS_H */

/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* The maps of wirelens; sizes come from limits.h. */
#ifndef WIRELENS_MAPS_H
#define WIRELENS_MAPS_H

#include "wirelens.h"

/* Kinds of buffer argument a data syscall has. */
enum wl_buf_kind {
	WL_BUF_PLAIN = 0, /* read/write/sendto/recvfrom: one buffer */
	WL_BUF_IOV = 1,   /* readv/writev, and sendmsg/recvmsg after reading the msghdr */
	WL_BUF_MMSG = 2,  /* sendmmsg/recvmmsg: an mmsghdr array, `iovlen` long */
	WL_BUF_NONE = 3,  /* sendfile: the bytes never pass through user memory */
};

/* A data syscall's arguments, as its exit reads them (kernel only). */
struct wl_args {
	__u64 buf;    /* buffer or iovec array (user pointer) */
	__u64 iovlen; /* number of iovecs, for WL_BUF_IOV */
	__u64 addr;   /* peer sockaddr of sendto/recvfrom/sendmsg/recvmsg (user pointer), or 0 */
	__s32 fd;
	__u8 dir;     /* enum wl_direction */
	__u8 kind;    /* enum wl_buf_kind */
	__u8 _pad[2];
};

/* Per thread (task-local storage): the thread's filter verdict (enum wl_verdict), valid
 * while both filter generations and the thread's cgroup are those it was decided with (see
 * `excluded`). */
struct wl_task {
	__u64 verdict_gen_user;
	__u64 verdict_gen_kernel;
	__u64 verdict_cgroup;
	__u8 verdict;
	__u8 _pad[7];
};

enum wl_verdict {
	WL_VERDICT_NONE = 0,
	WL_VERDICT_KEEP = 1,
	WL_VERDICT_DROP = 2,
};

/* A thread that made a data call on this CPU and its verdict. */
struct wl_cpu_verdict {
	__u64 id;            /* pid_tgid of the thread */
	__u64 verdict_gen_user;
	__u64 verdict_gen_kernel;
	__u64 verdict_cgroup;
	__u8 verdict;        /* enum wl_verdict of `id`, NONE when not decided */
	__u8 _pad[7];
};

/* Per CPU: the threads of the last data calls on this CPU, two of them, and their verdicts.
 * While a thread is one of the two, its verdict spares the thread's storage. Two, because
 * the two ends of a loopback exchange (a client and its server on one CPU) take turns.
 * Programs run without preemption, so one run's reads and writes of the entry are not
 * interleaved with another's. */
struct wl_cpu_last {
	struct wl_cpu_verdict slot[2];
	__u8 older;          /* the slot a third thread takes */
	__u8 _pad[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct wl_cpu_last);
} cpu_last SEC(".maps");

/* Per-CPU scratch space for one data event: header plus payload. The payload area is twice
 * the largest capture so that masked offsets plus bounded lengths stay inside it. */
struct wl_scratch {
	struct wl_data_event hdr;
	__u8 data[2 * WL_MAX_CAPTURE];
};

/* (tgid, fd) -> connection. Non-socket fds get an entry with protocol WL_PROTO_IGNORED so
 * that later calls on them cost one lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WL_CONN_TABLE_SIZE);
	__type(key, struct wl_conn_key);
	__type(value, struct wl_conn);
} conn_table SEC(".maps");

/* Per thread: its filter verdict. Task-local storage costs a pointer walk where a hash map
 * would hash; a thread's slot is made at its first traced call and freed with the thread. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct wl_task);
} task_verdict SEC(".maps");

/* pid_tgid -> fd of a connect() in flight. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WL_INFLIGHT_SIZE);
	__type(key, __u64);
	__type(value, __s32);
} connecting SEC(".maps");

/* Control maps, written by user space at start and on reload; the programs are never
 * reloaded. A process is decided by its tgid, else by its cgroup, else by `undecided`. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct wl_settings);
} settings SEC(".maps");

/* Filter generations: [0] written by user space after each change of the decisions or
 * settings (values never repeat), [1] incremented here when the kernel removes a decision
 * that live threads may still use. A thread's cached verdict holds while both are unchanged.
 * [2] is not a generation: non-zero while `cgroup_filter` holds a decision (written by user
 * space before [0]); while it is zero, the programs neither read the thread's cgroup nor
 * look it up. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} filter_gen SEC(".maps");

/* tgid -> enum wl_decision. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WL_TGID_FILTER_SIZE);
	__type(key, __u32);
	__type(value, __u8);
} tgid_filter SEC(".maps");

/* cgroup v2 id (bpf_get_current_cgroup_id) -> enum wl_decision. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WL_CGROUP_FILTER_SIZE);
	__type(key, __u64);
	__type(value, __u8);
} cgroup_filter SEC(".maps");

/* port (host order) -> enum wl_port_rule. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WL_PORT_FILTER_SIZE);
	__type(key, __u16);
	__type(value, __u8);
} port_filter SEC(".maps");

/* Events to user space. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, WL_RINGBUF_SIZE);
} events SEC(".maps");

/* Counters, enum wl_counter; user space sums the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WL_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct wl_scratch);
} scratch SEC(".maps");

/* Per CPU: events sent, to ask the ring's fill level only every WL_WAKEUP_EVERY-th time. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} wakeup_tick SEC(".maps");

#endif /* WIRELENS_MAPS_H */

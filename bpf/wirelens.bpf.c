// SPDX-License-Identifier: GPL-2.0
/*
 * wirelens kernel side: syscall tracepoints on socket data calls and connection lifecycle.
 *
 * Data calls are traced at their exit alone: filter by tgid, read the call's arguments from
 * the registers the thread entered the kernel with, find or make the connection entry for
 * (tgid, fd), infer the protocol on the first calls, copy a bounded payload prefix and send
 * it with the call's real byte count through the ring buffer.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "wirelens.h"
#include "maps.h"
#include "infer.h"

#define AF_INET 2
#define AF_INET6 10
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define EINPROGRESS 115

/* Knobs set by user space before load. */
const volatile __u32 capture_bytes = WL_DEFAULT_CAPTURE;
const volatile __u32 self_tgid = 0;
/* Wake the reader only when this much is queued; it also drains on a timer. */
const volatile __u64 wakeup_bytes = 256 * 1024;

/* Dummy instances so that libbpf-cargo emits these types for Rust. */
struct wl_data_event _wl_data_event = {};
struct wl_close_event _wl_close_event = {};
struct wl_conn_key _wl_conn_key = {};
struct wl_exec_event _wl_exec_event = {};
struct wl_settings _wl_settings = {};
enum wl_decision _wl_decision = 0;
enum wl_port_rule _wl_port_rule = 0;
enum wl_event_type _wl_event_type = 0;
enum wl_direction _wl_direction = 0;
enum wl_role _wl_role = 0;
enum wl_protocol _wl_protocol = 0;
enum wl_data_flags _wl_data_flags = 0;
enum wl_counter _wl_counter = 0;

static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &slot);
	if (v)
		*v += 1;
}

static __always_inline struct wl_settings *get_settings(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&settings, &zero);
}

static __always_inline __u64 filter_gen_of(__u32 which)
{
	__u64 *g = bpf_map_lookup_elem(&filter_gen, &which);
	return g ? *g : 0;
}

/* After the kernel removed a decision that other threads may have cached. */
static __always_inline void filter_changed(void)
{
	__u32 k = 1;
	__u64 *g = bpf_map_lookup_elem(&filter_gen, &k);
	if (g)
		__sync_fetch_and_add(g, 1);
}

/* The decision from the maps: the tgid's, else the cgroup's (`cg` 0: no cgroup decisions),
 * else `undecided`. */
static __always_inline int decide(struct wl_settings *st, __u32 tgid, __u64 cg)
{
	__u8 *d = bpf_map_lookup_elem(&tgid_filter, &tgid);
	if (d)
		return *d == WL_DROP;
	if (cg) {
		d = bpf_map_lookup_elem(&cgroup_filter, &cg);
		if (d)
			return *d == WL_DROP;
	}
	return st->undecided_drop;
}

/* True when calls of this process are to be dropped here: the agent itself, and, when
 * filtering, a process whose tgid or cgroup is decided `drop`, or an undecided one when
 * undecided processes are dropped.
 *
 * The verdict is kept in the thread's task-local storage with the two filter generations
 * and the cgroup it was made with: while none of them changes, one storage lookup and two
 * array reads replace the two hash lookups. The generations are read before the maps, and
 * every writer changes a map before its generation, so a verdict is never stamped with a
 * generation newer than the maps it was read from. A copy stamped the same way sits in a
 * slot of this CPU's `cpu_last` (data calls only, `last` non-NULL, its `id` already this
 * thread's): while the thread is one of the last two making data calls here, not even the
 * storage is looked up. */
static __always_inline int excluded_as(__u64 id, struct wl_cpu_verdict *last,
				       struct task_struct *task)
{
	__u32 tgid = id >> 32;
	if (tgid == self_tgid)
		return 1;
	struct wl_settings *st = get_settings();
	if (!st || !st->filter)
		return 0;
	__u64 gu = filter_gen_of(0), gk = filter_gen_of(1);
	/* Without cgroup decisions a thread's cgroup decides nothing: not read (the root
	 * cgroup's id is 1, so 0 stands for none). */
	__u64 cg = filter_gen_of(2) ? bpf_get_current_cgroup_id() : 0;
	/* This thread made one of this CPU's last data calls: its verdict, if still valid. */
	if (last && last->id == id && last->verdict != WL_VERDICT_NONE &&
	    last->verdict_gen_user == gu && last->verdict_gen_kernel == gk &&
	    last->verdict_cgroup == cg)
		return last->verdict == WL_VERDICT_DROP;
	/* The task only now: a verdict from `cpu_last` does without it. */
	if (!task)
		task = bpf_get_current_task_btf();
	struct wl_task *t = bpf_task_storage_get(&task_verdict, task, 0,
						 BPF_LOCAL_STORAGE_GET_F_CREATE);
	int drop;
	if (t && t->verdict != WL_VERDICT_NONE && t->verdict_gen_user == gu &&
	    t->verdict_gen_kernel == gk && t->verdict_cgroup == cg) {
		drop = t->verdict == WL_VERDICT_DROP;
	} else {
		drop = decide(st, tgid, cg);
		if (t) {
			t->verdict = drop ? WL_VERDICT_DROP : WL_VERDICT_KEEP;
			t->verdict_gen_user = gu;
			t->verdict_gen_kernel = gk;
			t->verdict_cgroup = cg;
		}
	}
	if (last && last->id == id) {
		last->verdict = drop ? WL_VERDICT_DROP : WL_VERDICT_KEEP;
		last->verdict_gen_user = gu;
		last->verdict_gen_kernel = gk;
		last->verdict_cgroup = cg;
	}
	return drop;
}

/* `excluded_as` for callers outside the data calls. */
static __always_inline int excluded(__u64 id)
{
	return excluded_as(id, NULL, NULL);
}

/* This thread's slot in this CPU's record of its last data calls: the one it had, else the
 * older one, emptied for it. NULL only if the map cannot be read. */
static __always_inline struct wl_cpu_verdict *cpu_last_slot(__u64 id)
{
	__u32 zero = 0;
	struct wl_cpu_last *last = bpf_map_lookup_elem(&cpu_last, &zero);
	if (!last)
		return NULL;
	if (last->slot[0].id == id) {
		last->older = 1;
		return &last->slot[0];
	}
	if (last->slot[1].id == id) {
		last->older = 0;
		return &last->slot[1];
	}
	__u8 o = last->older & 1;
	struct wl_cpu_verdict *v = &last->slot[o];
	v->id = id;
	v->verdict = WL_VERDICT_NONE;
	last->older = o ^ 1;
	return v;
}

static __always_inline int is_loopback(__u16 family, const __u8 *a)
{
	if (family == AF_INET)
		return a[0] == 127;
	/* ::1, or ::ffff:127.x.x.x */
	__u32 w0, w1, w2, w3;
	__builtin_memcpy(&w0, a, 4);
	__builtin_memcpy(&w1, a + 4, 4);
	__builtin_memcpy(&w2, a + 8, 4);
	__builtin_memcpy(&w3, a + 12, 4);
	if (w0 || w1)
		return 0;
	if (w2 == 0 && w3 == bpf_htonl(1))
		return 1;
	return w2 == bpf_htonl(0xffff) && a[12] == 127;
}

/* Applies the connection-level rules (loopback, ports) to a fresh socket entry. */
static __always_inline void conn_rules(struct wl_conn *c)
{
	if (c->protocol == WL_PROTO_IGNORED)
		return;
	struct wl_settings *st = get_settings();
	if (!st)
		return;
	if (st->drop_loopback && is_loopback(c->family, c->laddr) &&
	    is_loopback(c->family, c->raddr)) {
		c->protocol = WL_PROTO_IGNORED;
		return;
	}
	__u8 *l = bpf_map_lookup_elem(&port_filter, &c->lport);
	__u8 *r = bpf_map_lookup_elem(&port_filter, &c->rport);
	if ((l && *l == WL_PORT_EXCLUDE) || (r && *r == WL_PORT_EXCLUDE)) {
		c->protocol = WL_PROTO_IGNORED;
		return;
	}
	if (st->port_include && !(l && *l == WL_PORT_INCLUDE) && !(r && *r == WL_PORT_INCLUDE))
		c->protocol = WL_PROTO_IGNORED;
}

/* The socket behind (current task, fd) read with CO-RE, or NULL when the fd is not a
 * socket. */
static __always_inline struct sock *sock_of(__s32 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd < 0)
		return NULL;
	unsigned int max = BPF_CORE_READ(fdt, max_fds);
	if ((unsigned int)fd >= max)
		return NULL;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = NULL;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	umode_t mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return NULL;
	struct socket *sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return NULL;
	return BPF_CORE_READ(sock, sk);
}

/*
 * Reads the socket behind (current task, fd) with CO-RE and fills `c`. Works for sockets
 * opened before the agent started. Returns 0 for an IPv4/IPv6 socket, -1 otherwise (then
 * `c` is marked ignored).
 */
static __always_inline int read_socket(__s32 fd, struct wl_conn *c)
{
	c->protocol = WL_PROTO_IGNORED;
	struct sock *sk = sock_of(fd);
	if (!sk)
		return -1;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family == AF_INET) {
		__u32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 r = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(c->laddr, &l, 4);
		__builtin_memcpy(c->raddr, &r, 4);
	} else if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&c->laddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&c->raddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		return -1;
	}
	c->family = family;
	c->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	c->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	c->sock_type = (__u8)BPF_CORE_READ(sk, sk_type);
	c->protocol = WL_PROTO_UNKNOWN;
	return 0;
}

/* A UDP socket that was not bound when its entry was made (a client's first sendto binds it
 * to a port of the kernel's choosing): its local port, and address if one was chosen, once
 * the call that bound it has returned. Read once: the entry keeps them. */
static __always_inline void read_bound(struct wl_conn *c, __s32 fd)
{
	struct sock *sk = sock_of(fd);
	if (!sk)
		return;
	c->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (c->family == AF_INET) {
		__u32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__builtin_memcpy(c->laddr, &l, 4);
	} else if (c->family == AF_INET6) {
		BPF_CORE_READ_INTO(&c->laddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
	}
}

/* The peer of one datagram on an unconnected UDP socket, from the call's sockaddr. */
static __always_inline void read_peer(struct wl_conn *c, __u64 uaddr)
{
	struct sockaddr_in6 sa = {};
	if (bpf_probe_read_user(&sa, sizeof(sa), (void *)uaddr))
		return;
	if (sa.sin6_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&sa;
		__builtin_memcpy(c->raddr, &in->sin_addr.s_addr, 4);
		c->rport = bpf_ntohs(in->sin_port);
	} else if (sa.sin6_family == AF_INET6) {
		__builtin_memcpy(c->raddr, sa.sin6_addr.in6_u.u6_addr8, 16);
		c->rport = bpf_ntohs(sa.sin6_port);
	}
}

/* Makes a fresh table entry for (tgid, fd); returns it, or NULL. */
static __always_inline struct wl_conn *track(__u32 tgid, __s32 fd, __u8 role)
{
	struct wl_conn_key key = { .tgid = tgid, .fd = fd };
	struct wl_conn c = {};
	c.tgid = tgid;
	c.fd = fd;
	c.start_ns = bpf_ktime_get_ns();
	c.role = role;
	read_socket(fd, &c);
	conn_rules(&c);
	if (bpf_map_update_elem(&conn_table, &key, &c, BPF_ANY)) {
		count(WL_CNT_CONN_TABLE_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(&conn_table, &key);
}

/* Clamps a length for the verifier: the barrier keeps clang from testing a copy of the
 * register and then using the unclamped original. */
static __always_inline __u64 clamp_len(__u64 n)
{
	if (n > WL_MAX_CAPTURE)
		n = WL_MAX_CAPTURE;
	barrier_var(n);
	return n;
}

/* Copies up to `want` bytes of the call's data into s->data; returns the count or < 0. */
static __always_inline long copy_payload(struct wl_scratch *s, struct wl_args *a, __u64 want)
{
	if (a->kind == WL_BUF_NONE)
		return 0;
	if (a->kind == WL_BUF_PLAIN) {
		__u64 n = clamp_len(want);
		if (bpf_probe_read_user(s->data, n, (void *)a->buf))
			return -1;
		return n;
	}
	__u64 off = 0;
	struct iovec iov;
#pragma unroll
	for (int i = 0; i < WL_MAX_IOV; i++) {
		if (i >= a->iovlen || off >= want)
			break;
		if (bpf_probe_read_user(&iov, sizeof(iov), (void *)(a->buf + i * sizeof(iov))))
			return off ? off : -1;
		__u64 n = want - off;
		if (n > iov.iov_len)
			n = iov.iov_len;
		n = clamp_len(n);
		__u64 o = off & (WL_MAX_CAPTURE - 1);
		if (n && bpf_probe_read_user(s->data + o, n, iov.iov_base))
			return off ? off : -1;
		off += n;
	}
	if (off < want)
		s->hdr.flags |= WL_DATA_IOV_TRUNCATED;
	return off;
}

/* Wake the reader only once `wakeup_bytes` are queued; its timer drains the rest. */
static __always_inline __u64 wakeup_flags(void)
{
	/* Asking the ring how full it is reads its positions, which the reader on another CPU
	 * writes: only every WL_WAKEUP_EVERY-th event of a CPU asks. */
	__u32 zero = 0;
	__u32 *n = bpf_map_lookup_elem(&wakeup_tick, &zero);
	if (n && (++*n & (WL_WAKEUP_EVERY - 1)) != 0)
		return BPF_RB_NO_WAKEUP;
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
									     : BPF_RB_NO_WAKEUP;
}

/* The name of `task`'s process: its thread group leader's, as `ps` and /proc/PID/comm show
 * it, read from the task_structs (the helper bpf_get_current_comm copies and pads the
 * thread's own name through a call). A thread's own name (a pool's `http-nio-8080-exec-1`,
 * `tokio-runtime-w`) would make every named thread a service of its own. Bytes after the
 * name's NUL may be left from a longer earlier name; user space stops at the NUL. */
static __always_inline void current_comm(char out[16], struct task_struct *task)
{
	__builtin_memcpy(out, task->group_leader->comm, 16);
}

/* A data event of `bytes` in direction `dir` was lost: the next event of the connection says
 * so. Saturates rather than wraps (user space then sees a gap too large to bridge, and
 * resynchronises). */
static __always_inline void note_lost(struct wl_conn *c, __u8 dir, long bytes)
{
	__u64 b = bytes > 0 ? (__u64)bytes : 0;
	if (dir == WL_DIR_INGRESS)
		c->lost_in = (__u64)c->lost_in + b > 0xffffffffULL ? 0xffffffff : c->lost_in + b;
	else
		c->lost_out = (__u64)c->lost_out + b > 0xffffffffULL ? 0xffffffff : c->lost_out + b;
}

/* Sends the stashed length header as its own data event, before the message it announced. */
static __always_inline void emit_stash(struct wl_conn *c, __u8 dir, __u8 proto,
				       struct task_struct *task)
{
	struct {
		struct wl_data_event hdr;
		__u8 data[8];
	} e = {};
	e.hdr.type = WL_EV_DATA;
	e.hdr.dir = dir;
	__u32 n = c->stash_len > 4 ? 4 : c->stash_len;
	e.hdr.captured = n;
	e.hdr.total = n;
	e.hdr.ts_ns = bpf_ktime_get_ns();
	current_comm(e.hdr.comm, task);
	e.hdr.conn = *c;
	e.hdr.conn.protocol = proto;
	/* Losses are reported by the event that follows, the one that made this stash go out. */
	e.hdr.conn.lost_in = 0;
	e.hdr.conn.lost_out = 0;
	e.data[0] = c->stash[0];
	e.data[1] = c->stash[1];
	e.data[2] = c->stash[2];
	e.data[3] = c->stash[3];
	c->stash_len = 0;
	if (bpf_ringbuf_output(&events, &e, sizeof(e.hdr) + (n & 7), wakeup_flags()))
		count(WL_CNT_RB_FULL_DATA);
	else
		count(WL_CNT_DATA_EVENTS);
}

/* The data of one call, or of one message of sendmmsg/recvmmsg (`ret` bytes): infer the
 * protocol while it is unknown, then send the event. `c` is the connection's entry, `task`
 * the current thread. */
static __always_inline int emit_body(struct wl_conn *c, struct wl_args *ap, long ret,
				     struct task_struct *task)
{
	struct wl_args args = *ap;
	if (ret <= 0)
		return 0;
	__u32 zero = 0;
	struct wl_scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return 0;

	__u64 cap = capture_bytes;
	__u64 want = (__u64)ret < cap ? (__u64)ret : cap;
	s->hdr.flags = 0;
	long got = copy_payload(s, &args, want);

	if (c->protocol == WL_PROTO_UNKNOWN) {
		/* Bytes never seen tell nothing of the protocol (nor are they an attempt). */
		if (args.kind == WL_BUF_NONE)
			return 0;
		int stashed = 0;
		__u8 proto = WL_PROTO_UNKNOWN;
		struct wl_settings *st = get_settings();
		__u32 proto_mask = st ? st->proto_mask : 0;
		int kind = got > 0 ? wl_infer(s->data, (__u32)got, (__u64)ret, c->sock_type,
					      proto_mask, &proto)
				   : WL_MSG_NONE;
		/* DNS over TCP read in two calls (the 2-byte length, then the message), as
		 * dnsmasq and others do: the message alone must carry exactly that length. */
		if (kind == WL_MSG_NONE && c->stash_len == 2 && args.dir == c->stash_dir &&
		    (proto_mask & (1 << WL_PROTO_DNS)) &&
		    (((__u64)c->stash[0] << 8) | c->stash[1]) == (__u64)ret) {
			kind = got > 0 ? wl_infer_dns(s->data, (__u32)got, ret, WL_SOCK_DGRAM)
				       : WL_MSG_NONE;
			if (kind != WL_MSG_NONE) {
				proto = WL_PROTO_DNS;
				stashed = 1;
			}
		}
		/* MySQL read in two calls (the 4-byte packet header, then the payload), as
		 * mariadbd does: a command after a header of sequence 0 announcing its length. */
		if (kind == WL_MSG_NONE && c->stash_len == 4 && args.dir == c->stash_dir &&
		    (proto_mask & (1 << WL_PROTO_MYSQL)) && c->stash[3] == 0 && got > 0 &&
		    (c->stash[0] | ((__u64)c->stash[1] << 8) | ((__u64)c->stash[2] << 16)) ==
			    (__u64)ret &&
		    wl_mysql_command(s->data[0])) {
			kind = WL_MSG_REQUEST;
			proto = WL_PROTO_MYSQL;
			stashed = 1;
		}
		if (kind == WL_MSG_NONE) {
			/* Keep up to two bytes read or written alone (dnsmasq reads the
			 * length one byte at a time). */
			if (c->sock_type == WL_SOCK_STREAM && got == ret && (ret == 2 || ret == 4)) {
				c->stash[0] = s->data[0];
				c->stash[1] = s->data[1];
				c->stash[2] = s->data[2];
				c->stash[3] = s->data[3];
				c->stash_len = ret;
				c->stash_dir = args.dir;
			} else if (c->sock_type == WL_SOCK_STREAM && got == ret && ret == 1 &&
				   (c->stash_len == 0 ||
				    (c->stash_len == 1 && c->stash_dir == args.dir))) {
				if (c->stash_len == 0)
					c->stash[0] = s->data[0];
				else
					c->stash[1] = s->data[0];
				c->stash_len++;
				c->stash_dir = args.dir;
			} else {
				c->stash_len = 0;
			}
			if (++c->infer_tries >= WL_INFER_ATTEMPTS)
				c->protocol = WL_PROTO_IGNORED;
			return 0;
		}
		c->protocol = proto;
		if (c->role == WL_ROLE_UNKNOWN) {
			int req_out = (kind == WL_MSG_REQUEST) == (args.dir == WL_DIR_EGRESS);
			c->role = req_out ? WL_ROLE_CLIENT : WL_ROLE_SERVER;
		}
		if (stashed)
			emit_stash(c, args.dir, proto, task);
	}

	s->hdr.type = WL_EV_DATA;
	s->hdr.dir = args.dir;
	s->hdr.ts_ns = bpf_ktime_get_ns();
	s->hdr.total = ret;
	if (got < 0) {
		count(WL_CNT_READ_FAULT);
		s->hdr.flags |= WL_DATA_READ_FAILED;
		got = 0;
	}
	__u64 n = clamp_len(got);
	s->hdr.captured = n;
	current_comm(s->hdr.comm, task);
	if (c->sock_type == WL_SOCK_DGRAM && c->lport == 0)
		read_bound(c, args.fd);
	s->hdr.conn = *c;
	if (c->sock_type == WL_SOCK_DGRAM && args.addr)
		read_peer(&s->hdr.conn, args.addr);

	if (bpf_ringbuf_output(&events, s, sizeof(s->hdr) + n, wakeup_flags())) {
		count(WL_CNT_RB_FULL_DATA);
		if (c->sock_type == WL_SOCK_STREAM)
			note_lost(c, args.dir, ret);
	} else {
		count(WL_CNT_DATA_EVENTS);
		/* What this event reported is no longer owed (a loss on another CPU meanwhile
		 * stays for the next one). */
		c->lost_in -= s->hdr.conn.lost_in;
		c->lost_out -= s->hdr.conn.lost_out;
	}
	return 0;
}

/* The same, as a global function for the message loop of the mmsg calls: the verifier
 * checks a global function once, on its own, with every argument unknown, instead of once
 * per call site and state (as a static function inside the loop's callback, it went past
 * the verifier's million instructions on kernel 6.18.44). The other exit programs inline
 * it, and so verify as fast as they did before mmsg was traced. */
__noinline int emit_data(struct wl_args *ap, long ret, __u32 tgid)
{
	if (!ap)
		return 0;
	struct wl_conn_key key = { .tgid = tgid, .fd = ap->fd };
	struct wl_conn *c = bpf_map_lookup_elem(&conn_table, &key);
	if (!c || c->protocol == WL_PROTO_IGNORED)
		return 0;
	return emit_body(c, ap, ret, bpf_get_current_task_btf());
}

/* sendmmsg/recvmmsg: what the loop over their messages needs. */
struct wl_mmsg_loop {
	struct wl_args args;
	__u32 tgid;
};

/* Message `i` of an mmsg call: its msghdr and the bytes the kernel says it carried. */
static long mmsg_one(__u64 i, void *ctx)
{
	struct wl_mmsg_loop *x = ctx;
	struct mmsghdr m;
	if (bpf_probe_read_user(&m, sizeof(m), (void *)(x->args.buf + i * sizeof(struct mmsghdr))))
		return 1;
	struct wl_args one = x->args;
	one.buf = (__u64)m.msg_hdr.msg_iov;
	one.iovlen = m.msg_hdr.msg_iovlen;
	one.addr = (__u64)m.msg_hdr.msg_name;
	one.kind = WL_BUF_IOV;
	emit_data(&one, m.msg_len, x->tgid);
	return 0;
}

/* `track` for a data call's first sight of an fd, as a function of its own: its entry is
 * built on its own stack, not on that of the exit, which the mmsg calls' message loop adds
 * to. Returns 0 when the entry was made. */
static __noinline int track_new(__u32 tgid, __s32 fd)
{
	return track(tgid, fd, WL_ROLE_UNKNOWN) ? 0 : -1;
}

/* The start of a data call's exit: the connection entry of a call to be captured (else
 * NULL), with `a` holding the call's fd, buffer and direction, `*regs` the registers and
 * `*taskp` the current thread. The arguments are read from the registers the thread entered
 * the kernel with, which these calls leave as they were, so no program runs at their enter.
 * (x86-64: arguments in di, si, dx, r10, r8, r9.)
 *
 * The thread's ids come from its task_struct, whose pointer the rest of the call reuses
 * (thread storage, registers, name): one helper call for the thread where a captured call
 * made three (its ids, its task for the registers, its task for the name). On the test
 * machines a helper call costs about 25 ns, a good part of a program's time. */
static __always_inline struct wl_conn *data_call(long ret, __u8 dir, struct wl_args *a,
						   struct pt_regs **regs,
						   struct task_struct **taskp)
{
	if (ret <= 0)
		return NULL;
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 tgid = task->tgid;
	__u64 id = (__u64)tgid << 32 | (__u32)task->pid;
	/* This call is one of the CPU's last two now. */
	if (excluded_as(id, cpu_last_slot(id), task))
		return NULL;
	*taskp = task;
	struct pt_regs *r = (struct pt_regs *)bpf_task_pt_regs(task);
	*regs = r;
	a->fd = r->di;
	a->buf = r->si;
	a->iovlen = 0;
	a->addr = 0;
	a->dir = dir;
	a->kind = WL_BUF_PLAIN;
	struct wl_conn_key key = { .tgid = tgid, .fd = a->fd };
	struct wl_conn *c = bpf_map_lookup_elem(&conn_table, &key);
	if (!c && track_new(tgid, a->fd) == 0)
		c = bpf_map_lookup_elem(&conn_table, &key);
	return c && c->protocol != WL_PROTO_IGNORED ? c : NULL;
}

/* How a data call passes its buffer. */
enum wl_call {
	WL_CALL_PLAIN,	/* (fd, buf, len): read, write */
	WL_CALL_ADDR,	/* (fd, buf, len, flags, addr, addrlen): recvfrom, sendto */
	WL_CALL_VEC,	/* (fd, iov, iovcnt): readv, writev */
};

/* The exit of a data call of one buffer or one iovec array that returned `ret`. */
/* A receive with MSG_PEEK leaves the bytes queued: the read that takes them reports them
 * (nginx peeks one byte of a client connection to tell whether it broke; DNS servers peek a
 * datagram's size). Reported twice, they would be parsed twice. */
#define WL_MSG_PEEK 0x2
static __always_inline int peeked(__u8 dir, __u64 flags)
{
	return dir == WL_DIR_INGRESS && (flags & WL_MSG_PEEK);
}

static __always_inline int data_exit(long ret, __u8 dir, enum wl_call call)
{
	struct wl_args a;
	struct pt_regs *regs;
	struct task_struct *task;
	struct wl_conn *c = data_call(ret, dir, &a, &regs, &task);
	if (!c)
		return 0;
	if (call == WL_CALL_ADDR) {
		/* recvfrom(fd, buf, len, flags, ...): flags in r10. */
		if (peeked(dir, regs->r10))
			return 0;
		a.addr = regs->r8;
	} else if (call == WL_CALL_VEC) {
		a.iovlen = regs->dx;
		a.kind = WL_BUF_IOV;
	}
	return emit_body(c, &a, ret, task);
}

/* sendfile(out_fd, in_fd, offset, count): the file's bytes go from the page cache to the
 * socket `out_fd` without passing through user memory, so none can be copied. The event
 * carries their count alone, and the parser skips them in place: a static file's body sent
 * after its head (nginx's `sendfile on`, Java's transferTo), which otherwise read the next
 * response's head as that body. */
static __always_inline int sendfile_exit(long ret)
{
	struct wl_args a;
	struct pt_regs *regs;
	struct task_struct *task;
	struct wl_conn *c = data_call(ret, WL_DIR_EGRESS, &a, &regs, &task);
	if (!c)
		return 0;
	a.kind = WL_BUF_NONE;
	return emit_body(c, &a, ret, task);
}

/* sendmsg/recvmsg: the iovec array and its length come from the user's msghdr. */
static __always_inline int msg_exit(long ret, __u8 dir)
{
	struct wl_args a;
	struct pt_regs *regs;
	struct task_struct *task;
	struct wl_conn *c = data_call(ret, dir, &a, &regs, &task);
	if (!c)
		return 0;
	/* recvmsg(fd, msg, flags): flags in dx. */
	if (peeked(dir, regs->dx))
		return 0;
	struct user_msghdr msg;
	if (bpf_probe_read_user(&msg, sizeof(msg), (void *)a.buf))
		return 0;
	a.buf = (__u64)msg.msg_iov;
	a.iovlen = msg.msg_iovlen;
	a.addr = (__u64)msg.msg_name;
	a.kind = WL_BUF_IOV;
	return emit_body(c, &a, ret, task);
}

/* sendmmsg/recvmmsg: `ret` messages were sent or received, each an event of its own. */
static __always_inline int mmsg_exit(long ret, __u8 dir)
{
	struct wl_mmsg_loop x = {};
	struct pt_regs *regs;
	struct task_struct *task;
	if (!data_call(ret, dir, &x.args, &regs, &task))
		return 0;
	/* recvmmsg(fd, msgvec, vlen, flags, timeout): flags in r10. */
	if (peeked(dir, regs->r10))
		return 0;
	x.tgid = task->tgid;
	x.args.iovlen = regs->dx;
	x.args.kind = WL_BUF_MMSG;
	__u64 n = (__u64)ret < x.args.iovlen ? (__u64)ret : x.args.iovlen;
	bpf_loop(n < WL_MMSG_MAX ? n : WL_MMSG_MAX, mmsg_one, &x, 0);
	return 0;
}

/* ---- data calls: exits only ---- */

SEC("tracepoint/syscalls/sys_exit_read")
int tp_exit_read(struct trace_event_raw_sys_exit *ctx)
{
	return data_exit(ctx->ret, WL_DIR_INGRESS, WL_CALL_PLAIN);
}

SEC("tracepoint/syscalls/sys_exit_write")
int tp_exit_write(struct trace_event_raw_sys_exit *ctx)
{
	return data_exit(ctx->ret, WL_DIR_EGRESS, WL_CALL_PLAIN);
}

SEC("tracepoint/syscalls/sys_exit_recvfrom")
int tp_exit_recvfrom(struct trace_event_raw_sys_exit *ctx)
{
	return data_exit(ctx->ret, WL_DIR_INGRESS, WL_CALL_ADDR);
}

SEC("tracepoint/syscalls/sys_exit_sendto")
int tp_exit_sendto(struct trace_event_raw_sys_exit *ctx)
{
	return data_exit(ctx->ret, WL_DIR_EGRESS, WL_CALL_ADDR);
}

SEC("tracepoint/syscalls/sys_exit_readv")
int tp_exit_readv(struct trace_event_raw_sys_exit *ctx)
{
	return data_exit(ctx->ret, WL_DIR_INGRESS, WL_CALL_VEC);
}

SEC("tracepoint/syscalls/sys_exit_writev")
int tp_exit_writev(struct trace_event_raw_sys_exit *ctx)
{
	return data_exit(ctx->ret, WL_DIR_EGRESS, WL_CALL_VEC);
}

SEC("tracepoint/syscalls/sys_exit_recvmsg")
int tp_exit_recvmsg(struct trace_event_raw_sys_exit *ctx)
{
	return msg_exit(ctx->ret, WL_DIR_INGRESS);
}

SEC("tracepoint/syscalls/sys_exit_sendmsg")
int tp_exit_sendmsg(struct trace_event_raw_sys_exit *ctx)
{
	return msg_exit(ctx->ret, WL_DIR_EGRESS);
}

/* sendmmsg/recvmmsg: an array of mmsghdr, `vlen` long; the exit returns how many were
 * done, each with its own length (glibc's resolver sends its A and AAAA queries this way). */
SEC("tracepoint/syscalls/sys_exit_sendfile64")
int tp_exit_sendfile64(struct trace_event_raw_sys_exit *ctx)
{
	return sendfile_exit(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_recvmmsg")
int tp_exit_recvmmsg(struct trace_event_raw_sys_exit *ctx)
{
	return mmsg_exit(ctx->ret, WL_DIR_INGRESS);
}

SEC("tracepoint/syscalls/sys_exit_sendmmsg")
int tp_exit_sendmmsg(struct trace_event_raw_sys_exit *ctx)
{
	return mmsg_exit(ctx->ret, WL_DIR_EGRESS);
}

/* ---- connection lifecycle ---- */

SEC("tracepoint/syscalls/sys_enter_connect")
int tp_enter_connect(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (excluded(id))
		return 0;
	__s32 fd = ctx->args[0];
	bpf_map_update_elem(&connecting, &id, &fd, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int tp_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__s32 *fdp = bpf_map_lookup_elem(&connecting, &id);
	if (!fdp)
		return 0;
	__s32 fd = *fdp;
	bpf_map_delete_elem(&connecting, &id);
	if (ctx->ret == 0 || ctx->ret == -EINPROGRESS)
		track(id >> 32, fd, WL_ROLE_CLIENT);
	return 0;
}

static __always_inline int accept_exit(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	if (ret < 0 || excluded(id))
		return 0;
	track(tgid, (__s32)ret, WL_ROLE_SERVER);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int tp_exit_accept(struct trace_event_raw_sys_exit *ctx) { return accept_exit(ctx->ret); }
SEC("tracepoint/syscalls/sys_exit_accept4")
int tp_exit_accept4(struct trace_event_raw_sys_exit *ctx) { return accept_exit(ctx->ret); }

SEC("tracepoint/syscalls/sys_enter_close")
int tp_enter_close(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct wl_conn_key key = { .tgid = tgid, .fd = ctx->args[0] };
	struct wl_conn *c = bpf_map_lookup_elem(&conn_table, &key);
	if (!c)
		return 0;
	if (c->protocol != WL_PROTO_UNKNOWN && c->protocol != WL_PROTO_IGNORED) {
		struct wl_close_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (e) {
			e->type = WL_EV_CLOSE;
			e->ts_ns = bpf_ktime_get_ns();
			e->conn = *c;
			/* Batched like data events: a close needs no reader of its own. */
			bpf_ringbuf_submit(e, wakeup_flags());
			count(WL_CNT_CLOSE_EVENTS);
		} else {
			count(WL_CNT_RB_FULL_CLOSE);
		}
	}
	bpf_map_delete_elem(&conn_table, &key);
	return 0;
}

/* ---- process lifecycle: keep the filter decisions right across fork, exec and exit ---- */

/* A child inherits its parent's decision at once, so a fork never leaks traffic before user
 * space has seen it. (For a new thread this adds an entry keyed by its tid; exit removes it.) */
SEC("tracepoint/sched/sched_process_fork")
int tp_sched_fork(struct trace_event_raw_sched_process_fork *ctx)
{
	__u32 parent = bpf_get_current_pid_tgid() >> 32;
	__u32 child = ctx->child_pid;
	__u8 *d = bpf_map_lookup_elem(&tgid_filter, &parent);
	if (d) {
		__u8 v = *d;
		bpf_map_update_elem(&tgid_filter, &child, &v, BPF_ANY);
	}
	return 0;
}

/* After exec the process is someone else: its old decision goes (the cgroup's decision or
 * `undecided` applies) and user space is told to decide it again. */
SEC("tracepoint/sched/sched_process_exec")
int tp_sched_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct wl_settings *st = get_settings();
	if (!st || !st->filter || !st->exec_redecide)
		return 0;
	if (bpf_map_delete_elem(&tgid_filter, &tgid) == 0)
		filter_changed();
	struct wl_exec_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(WL_CNT_RB_FULL_EXEC);
		return 0;
	}
	e->type = WL_EV_EXEC;
	e->tgid = tgid;
	e->ts_ns = bpf_ktime_get_ns();
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
	return 0;
}

/* Sends the close event of a tracked connection (as a close() would) and counts it. */
static __always_inline void emit_close(struct wl_conn *c)
{
	struct wl_close_event e = {};
	e.type = WL_EV_CLOSE;
	e.ts_ns = bpf_ktime_get_ns();
	e.conn = *c;
	if (bpf_ringbuf_output(&events, &e, sizeof(e), wakeup_flags()) == 0)
		count(WL_CNT_CLOSE_EVENTS);
	else
		count(WL_CNT_RB_FULL_CLOSE);
}

/* Connections of an exiting process removed from conn_table at once; more stay until the
 * table's LRU evicts them (user space has their close events either way). */
#define WL_EXIT_DELETES 32

struct exit_walk {
	__u32 tgid;
	__u32 n;
	struct wl_conn_key keys[WL_EXIT_DELETES];
};

/* bpf_for_each_map_elem callback over conn_table: sends the close event of each connection
 * of one process and notes its key. Nothing is deleted during the walk: an LRU element freed
 * here can be reused by another CPU while the walk still stands on it. */
static long end_conn_of(struct bpf_map *map, struct wl_conn_key *key, struct wl_conn *c,
			struct exit_walk *w)
{
	if (key->tgid != w->tgid)
		return 0;
	if (c->protocol != WL_PROTO_UNKNOWN && c->protocol != WL_PROTO_IGNORED)
		emit_close(c);
	__u32 i = w->n;
	if (i < WL_EXIT_DELETES) {
		w->keys[i & (WL_EXIT_DELETES - 1)] = *key;
		w->n = i + 1;
	}
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int tp_sched_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 pid = (__u32)id;
	__u32 tgid = id >> 32;
	/* A thread's own entry (made at fork) goes with it; the leader's is the process's
	 * decision, which its other threads, still running, may have cached. */
	if (bpf_map_delete_elem(&tgid_filter, &pid) == 0 && pid == tgid)
		filter_changed();
	/* The last thread of the process: its fd table goes, and with it every connection it
	 * did not close() (a PostgreSQL backend exits without closing its socket). The kernel
	 * has already counted this thread out of signal->live here. The walk visits the whole
	 * table, once per process exit. */
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	struct exit_walk w = { .tgid = tgid };
	bpf_for_each_map_elem(&conn_table, end_conn_of, &w, 0);
	for (__u32 i = 0; i < WL_EXIT_DELETES; i++) {
		if (i >= w.n)
			break;
		bpf_map_delete_elem(&conn_table, &w.keys[i]);
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";

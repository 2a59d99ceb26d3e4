// SPDX-License-Identifier: GPL-2.0
/*
 * Empty programs on the same tracepoints as wirelens.bpf.c: the floor that overhead
 * benchmarks compare against (the cost of the tracepoint path itself). Not used by the agent.
 *
 * The fl_raw_* pair is the alternative the overhead benchmark measures beside it (`wirelens
 * bench-floor --raw`, loaded instead of the others): raw tracepoints on sys_enter/sys_exit,
 * which run for every syscall of every process and return at once unless the syscall is one
 * the agent hooks (x86_64 numbers). They skip the per-syscall tracepoints' own work before a
 * program runs (building the event record), at the price of a test on every other syscall.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("tracepoint/syscalls/sys_exit_read")
int fl_exit_read(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_write")
int fl_exit_write(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_recvfrom")
int fl_exit_recvfrom(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_sendto")
int fl_exit_sendto(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_readv")
int fl_exit_readv(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_writev")
int fl_exit_writev(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_sendmsg")
int fl_exit_sendmsg(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_recvmsg")
int fl_exit_recvmsg(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_sendmmsg")
int fl_exit_sendmmsg(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_recvmmsg")
int fl_exit_recvmmsg(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_sendfile64")
int fl_exit_sendfile64(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_enter_connect")
int fl_enter_connect(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_connect")
int fl_exit_connect(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_accept")
int fl_exit_accept(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_accept4")
int fl_exit_accept4(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_enter_close")
int fl_enter_close(void *ctx) { return 0; }

/* read, write, close, readv, writev, sendfile, connect, accept, sendto, recvfrom, sendmsg,
 * recvmsg, accept4, recvmmsg, sendmmsg (arch/x86/entry/syscalls/syscall_64.tbl), tested at exit:
 * the agent hooks their exits, except close's (its enter), kept here as one case more. */
static __always_inline int hooked(long id)
{
	switch (id) {
	case 0: case 1: case 3: case 19: case 20: case 40: case 42: case 43: case 44: case 45:
	case 46: case 47: case 288: case 299: case 307:
		return 1;
	}
	return 0;
}

/* close and connect: the only enters the agent hooks. */
static __always_inline int hooked_enter(long id)
{
	return id == 3 || id == 42;
}

/* Counted so that the test is not optimised away. */
__u64 fl_raw_hooked;

SEC("raw_tracepoint/sys_enter")
int fl_raw_enter(struct bpf_raw_tracepoint_args *ctx)
{
	if (hooked_enter(ctx->args[1]))
		__sync_fetch_and_add(&fl_raw_hooked, 1);
	return 0;
}

SEC("raw_tracepoint/sys_exit")
int fl_raw_exit(struct bpf_raw_tracepoint_args *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
	long id = -1;

	bpf_probe_read_kernel(&id, sizeof(id), &regs->orig_ax);
	if (hooked(id))
		__sync_fetch_and_add(&fl_raw_hooked, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";

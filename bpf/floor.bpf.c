// SPDX-License-Identifier: GPL-2.0
/*
 * Empty programs on the same tracepoints as wirelens.bpf.c: the floor that overhead
 * benchmarks compare against (the cost of the tracepoint path itself). Not used by the agent.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("tracepoint/syscalls/sys_enter_read")
int fl_enter_read(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_read")
int fl_exit_read(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_enter_write")
int fl_enter_write(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_write")
int fl_exit_write(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_enter_recvfrom")
int fl_enter_recvfrom(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_recvfrom")
int fl_exit_recvfrom(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_enter_sendto")
int fl_enter_sendto(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_sendto")
int fl_exit_sendto(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_enter_readv")
int fl_enter_readv(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_readv")
int fl_exit_readv(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_enter_writev")
int fl_enter_writev(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_writev")
int fl_exit_writev(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_enter_sendmsg")
int fl_enter_sendmsg(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_sendmsg")
int fl_exit_sendmsg(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_enter_recvmsg")
int fl_enter_recvmsg(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_recvmsg")
int fl_exit_recvmsg(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_enter_sendmmsg")
int fl_enter_sendmmsg(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_sendmmsg")
int fl_exit_sendmmsg(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_enter_recvmmsg")
int fl_enter_recvmmsg(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_recvmmsg")
int fl_exit_recvmmsg(void *ctx) { return 0; }

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

char LICENSE[] SEC("license") = "GPL";

// SPDX-License-Identifier: GPL-2.0
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "wirelens.h"

struct wl_data_event _wl_data_event = {};
struct wl_close_event _wl_close_event = {};

char LICENSE[] SEC("license") = "GPL";

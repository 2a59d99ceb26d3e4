//! What the live source needs from the host: tracefs, BTF, privileges.

use std::path::Path;

pub const TRACEFS: &str = "/sys/kernel/tracing";
pub const BTF: &str = "/sys/kernel/btf/vmlinux";

/// Makes sure tracefs is mounted at /sys/kernel/tracing, mounting it when it is not.
pub fn ensure_tracefs() -> Result<(), String> {
    if tracefs_ready() {
        return Ok(());
    }
    let target = std::ffi::CString::new(TRACEFS).map_err(|e| e.to_string())?;
    let fstype = std::ffi::CString::new("tracefs").map_err(|e| e.to_string())?;
    // SAFETY: all pointers are valid NUL-terminated strings; data may be NULL.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 || !tracefs_ready() {
        return Err(format!(
            "tracefs is not mounted at {TRACEFS} and mounting it failed ({}); \
             run `mount -t tracefs tracefs {TRACEFS}` as root",
            std::io::Error::last_os_error()
        ));
    }
    tracing::info!("mounted tracefs at {TRACEFS}");
    Ok(())
}

pub fn tracefs_ready() -> bool {
    Path::new(TRACEFS).join("events/syscalls").is_dir()
}

/// Effective capabilities of this process, from /proc/self/status (`CapEff`).
pub fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;

pub fn has_cap(caps: u64, cap: u32) -> bool {
    caps & (1u64 << cap) != 0
}

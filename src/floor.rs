//! `wirelens bench-floor` (hidden): attaches empty programs to the tracepoints the agent uses
//! and waits for SIGINT/SIGTERM. The overhead benchmark measures a syscall with these attached
//! to know what the tracepoint path alone costs on this machine. With `--raw`, two raw
//! tracepoints on sys_enter/sys_exit that test the syscall number instead, to compare the two
//! kinds of hook (`bench/syscall-overhead.sh`, setup `rawfloor`).

use std::mem::MaybeUninit;

use anyhow::Context;
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};

use crate::capture::skel::floor::FloorSkelBuilder;

pub fn run(raw: bool) -> anyhow::Result<()> {
    crate::preflight::require_privileges()?;
    crate::capture::sys::ensure_tracefs().map_err(anyhow::Error::msg)?;
    let mut object = MaybeUninit::uninit();
    let mut open = FloorSkelBuilder::default()
        .open(&mut object)
        .context("opening the floor programs")?;
    for mut prog in open.open_object_mut().progs_mut() {
        let is_raw = prog.name().to_string_lossy().starts_with("fl_raw_");
        prog.set_autoload(is_raw == raw);
    }
    let skel = open.load().context("loading the floor programs")?;
    let mut links = Vec::new();
    for prog in skel.object().progs_mut() {
        if !prog.autoload() {
            continue;
        }
        let name = prog.name().to_string_lossy().into_owned();
        links.push(prog.attach().with_context(|| format!("attaching {name}"))?);
    }
    eprintln!("wirelens: floor attached ({} programs)", links.len());
    let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: plain libc signal-set calls on a local, initialised set.
    unsafe {
        libc::sigemptyset(&mut mask);
        libc::sigaddset(&mut mask, libc::SIGINT);
        libc::sigaddset(&mut mask, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &mask, std::ptr::null_mut());
        let mut sig = 0;
        libc::sigwait(&mask, &mut sig);
    }
    drop(links);
    Ok(())
}

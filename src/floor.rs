//! `wirelens bench-floor` (hidden): attaches empty programs to the tracepoints the agent uses
//! and waits for SIGINT/SIGTERM. The overhead benchmark measures a syscall with these attached
//! to know what the tracepoint path alone costs on this machine.

use std::mem::MaybeUninit;

use anyhow::Context;
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};

use crate::capture::skel::floor::FloorSkelBuilder;

pub fn run() -> anyhow::Result<()> {
    crate::preflight::require_privileges()?;
    crate::capture::sys::ensure_tracefs().map_err(anyhow::Error::msg)?;
    let mut object = MaybeUninit::uninit();
    let open = FloorSkelBuilder::default()
        .open(&mut object)
        .context("opening the floor programs")?;
    let skel = open.load().context("loading the floor programs")?;
    let mut links = Vec::new();
    for prog in skel.object().progs_mut() {
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

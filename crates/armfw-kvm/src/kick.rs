// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Getting a vCPU thread out of KVM_RUN from another thread, as a VMM does to pause a guest:
//! [`KICK_SIGNAL`] sent to the thread makes a KVM_RUN in progress return EINTR.
//!
//! The handler does nothing: a signal that lands just before the thread enters KVM_RUN is
//! lost, so the pausing thread sends it again until the vCPU thread says it has stopped
//! (the vCPU thread checks for a pause before every KVM_RUN). A thread is named by its
//! `JoinHandle`, which keeps its pthread id valid until it is joined.

use std::sync::OnceLock;
use std::thread::JoinHandle;

use libc::{c_int, c_void, siginfo_t};
use vmm_sys_util::signal::Killable;

use crate::sys::errno;
use crate::{Errno, Error};

/// The signal that interrupts a KVM_RUN. Distinct from [`crate::WATCHDOG_SIGNAL`].
pub const KICK_SIGNAL: c_int = libc::SIGUSR2;

extern "C" fn on_kick(_: c_int, _: *mut siginfo_t, _: *mut c_void) {}

/// Installs the handler of [`KICK_SIGNAL`] (once per process; without SA_RESTART, so that
/// KVM_RUN returns EINTR). A signal without a handler would end the process.
pub fn install() -> Result<(), Error> {
    static INSTALLED: OnceLock<Result<(), Errno>> = OnceLock::new();
    let result = INSTALLED.get_or_init(|| {
        vmm_sys_util::signal::register_signal_handler(KICK_SIGNAL, on_kick).map_err(errno)
    });
    result.map_err(|errno| Error::Sys {
        op: "sigaction(KICK_SIGNAL)",
        errno,
    })
}

/// Sends [`KICK_SIGNAL`] to `thread` (a vCPU thread not yet joined; [`install`] first).
pub fn kick<T>(thread: &JoinHandle<T>) -> Result<(), Errno> {
    thread.kill(KICK_SIGNAL).map_err(errno)
}

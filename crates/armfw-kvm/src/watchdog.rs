// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The wait limit of a call: a watchdog that interrupts a KVM_RUN which does not return.
//!
//! A vCPU that executes CPU_OFF or CPU_SUSPEND, or that is STOPPED or SUSPENDED, makes
//! KVM_RUN wait for an event that a test VM never sends. When the limit runs out, a helper
//! thread sends [`WATCHDOG_SIGNAL`] to the thread in KVM_RUN, which then returns EINTR.
//! The handler sets `kvm_run.immediate_exit`, so a signal that lands just before the
//! ioctl is entered still makes it return at once; it is installed without SA_RESTART,
//! and a handler is needed anyway for a signal to reach a process running as PID 1.
//! The signal is repeated every [`RESEND_PERIOD`] until the KVM_RUN has returned.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use libc::{c_int, c_void, siginfo_t};

use crate::sys::{errno, io_errno};
use crate::{Errno, Error};

/// The signal the watchdog sends to a thread blocked in KVM_RUN. A thread that calls
/// [`crate::TestVm::call`] must not block it, and nothing else in the process should
/// install a handler for it.
pub const WATCHDOG_SIGNAL: c_int = libc::SIGUSR1;

/// How often the signal is repeated while KVM_RUN has not returned.
pub const RESEND_PERIOD: Duration = Duration::from_millis(200);

/// How long disarming waits for a signal already sent to be handled.
const DELIVERY_LIMIT: Duration = Duration::from_secs(2);

thread_local! {
    /// `&kvm_run.immediate_exit` of the vCPU this thread is running, or null.
    static IMMEDIATE_EXIT: Cell<*mut u8> = const { Cell::new(std::ptr::null_mut()) };
    /// Watchdog signals handled on this thread so far.
    static HANDLED: Cell<u64> = const { Cell::new(0) };
}

extern "C" fn on_watchdog_signal(_: c_int, _: *mut siginfo_t, _: *mut c_void) {
    // Both thread-locals are const-initialised and have no destructor: accessing them is a
    // plain TLS access, which is async-signal-safe.
    HANDLED.with(|h| h.set(h.get() + 1));
    let immediate_exit = IMMEDIATE_EXIT.with(Cell::get);
    if !immediate_exit.is_null() {
        // SAFETY: not a system call but the one write this handler exists for.
        // `immediate_exit` points into the kvm_run page of the vCPU that this thread is
        // running; the page stays mapped while the pointer is set (Watchdog::arm sets it,
        // Watchdog's drop clears it, both on this thread, and the vCPU outlives the
        // Watchdog). The kernel reads the byte on entry to KVM_RUN; a volatile byte store
        // is what kvm_run.immediate_exit is documented for (api.rst, "immediate_exit").
        unsafe { immediate_exit.write_volatile(1) };
    }
}

fn install_handler() -> Result<(), Error> {
    static INSTALLED: OnceLock<Result<(), Errno>> = OnceLock::new();
    let result = INSTALLED.get_or_init(|| {
        // sigaction with SA_SIGINFO and no SA_RESTART, all signals blocked in the handler.
        vmm_sys_util::signal::register_signal_handler(WATCHDOG_SIGNAL, on_watchdog_signal)
            .map_err(errno)
    });
    result.map_err(|errno| Error::Sys {
        op: "sigaction(WATCHDOG_SIGNAL)",
        errno,
    })
}

/// An armed watchdog for the calling thread's next KVM_RUN. Dropping it disarms it: the
/// helper thread is stopped and joined, and any signal it sent has been handled.
#[derive(Debug)]
pub(crate) struct Watchdog {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    fired: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    handled_before: u64,
}

impl Watchdog {
    /// Arms a watchdog that signals the calling thread after `limit`. `immediate_exit` is
    /// the `immediate_exit` byte of the kvm_run page of the vCPU this thread is about to run;
    /// it must stay mapped until the Watchdog is dropped.
    pub(crate) fn arm(limit: Duration, immediate_exit: *mut u8) -> Result<Watchdog, Error> {
        install_handler()?;
        // SAFETY: pthread_self is a libc call without side effects (no system call); the
        // handle is used by the helper thread only while this thread waits to join it. It
        // travels as an integer (pthread_t is a pointer on musl, and not Send).
        let target = unsafe { libc::pthread_self() } as usize;
        let (stop, stopped) = mpsc::channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (fired2, sent2) = (Arc::clone(&fired), Arc::clone(&sent));
        let thread = thread::Builder::new()
            .name("armfw-kvm-watchdog".into())
            .spawn(move || {
                if stopped.recv_timeout(limit) != Err(RecvTimeoutError::Timeout) {
                    return;
                }
                fired2.store(true, Ordering::SeqCst);
                loop {
                    sent2.fetch_add(1, Ordering::SeqCst);
                    // SAFETY: one tgkill system call. `target` is the thread that armed
                    // this watchdog; it joins this thread before it can exit, so the handle
                    // is valid. A failure leaves `sent` one too high, which disarming
                    // reports as an error instead of waiting for ever.
                    unsafe { libc::pthread_kill(target as libc::pthread_t, WATCHDOG_SIGNAL) };
                    if stopped.recv_timeout(RESEND_PERIOD) != Err(RecvTimeoutError::Timeout) {
                        return;
                    }
                }
            })
            .map_err(|e| Error::Sys {
                op: "spawning the watchdog thread",
                errno: io_errno(&e),
            })?;
        IMMEDIATE_EXIT.with(|p| p.set(immediate_exit));
        Ok(Watchdog {
            stop: Some(stop),
            thread: Some(thread),
            fired,
            sent,
            handled_before: HANDLED.with(Cell::get),
        })
    }

    /// Whether the limit has run out (the signal has been or is being sent).
    pub(crate) fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Stops the helper thread and waits until every signal it sent has been handled, so
    /// that none can arrive later and make the next KVM_RUN return early.
    pub(crate) fn disarm(mut self) -> Result<(), Error> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), Error> {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // Once the helper has exited, its signals are pending on this thread and are
        // delivered on the next return from the kernel; wait for that to have happened.
        let deadline = Instant::now() + DELIVERY_LIMIT;
        let sent = self.sent.load(Ordering::SeqCst);
        let mut result = Ok(());
        while HANDLED.with(Cell::get) - self.handled_before < sent {
            if Instant::now() > deadline {
                result = Err(Error::WatchdogSignals {
                    sent,
                    handled: HANDLED.with(Cell::get) - self.handled_before,
                });
                break;
            }
            thread::yield_now();
        }
        IMMEDIATE_EXIT.with(|p| p.set(std::ptr::null_mut()));
        result
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Real Linux KVM on arm64, as the firmware that armfw models sees it.
//!
//! `TestVm` creates one VM with N initialised vCPUs and lets each of them make single
//! PSCI/SMCCC calls (`hvc #0` or `smc #0`), read and write any ONE_REG register (the
//! firmware pseudo-registers among them), list the registers, read and set MP states, and
//! program the SMCCC filter. The free functions probe the host (`kernel_release`,
//! `check_extension`).
//!
//! The crate is Linux/aarch64 only: on every other target it is empty. It needs
//! `/dev/kvm`; the conformance harness (`conformance/`) provides one by booting Debian's
//! arm64 kernels under QEMU with EL2, with a static program built from this crate as
//! `/init` (see `examples/kvm-smoke.rs` and docs/kvm-backend-notes.md).
//!
//! The modules follow kvm-ioctls' split: `sys` makes the raw ioctls that kvm-ioctls lacks
//! and turns OS errors into the core's `Errno`, `vm` creates the VM and its vCPUs and
//! reads and writes their state, `run` runs a vCPU for one call (KVM_RUN under the
//! watchdog) and says how it ended (`CallExit`).
//!
//! Unsafe code is limited to one ioctl or system call per `unsafe` block, the one
//! exception being the watchdog's signal handler, which stores to `kvm_run.immediate_exit`.
#![cfg(all(target_os = "linux", target_arch = "aarch64"))]
// Guest registers are u64 and KVM's fields narrower: every narrowing is explicit here.
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

mod error;
mod guest;
pub mod init;
pub mod kick;
pub mod memory;
pub mod migrate;
pub mod probe;
pub mod regs;
mod run;
pub mod scenario;
pub mod serve;
mod sys;
pub mod vgic;
mod vm;
mod watchdog;

/// The errno of a failed ioctl or system call: the core's type, which every armfw crate uses.
pub use armfw::abi::Errno;
pub use error::Error;
pub use run::{CallExit, Conduit};
pub use vm::{
    DEFAULT_WAIT_LIMIT, MP_STATE_RUNNABLE, MP_STATE_STOPPED, MP_STATE_SUSPENDED, TestVm, VmSpec,
    mp_state_from_name, mp_state_name, set_leak_on_drop, system_event_name,
};
pub use watchdog::{RESEND_PERIOD, WATCHDOG_SIGNAL};

/// The running kernel's release (`uname -r`), e.g. `6.12.117+deb12-arm64`.
pub fn kernel_release() -> Result<String, Errno> {
    sys::uname_release()
}

/// KVM_CHECK_EXTENSION `cap` on `/dev/kvm` (the system-wide answer; the VM-level
/// `KVM_CAP_ARM_*` values are read this way too). 0 means absent.
pub fn check_extension(cap: u32) -> Result<i32, Errno> {
    let kvm = kvm_ioctls::Kvm::new().map_err(sys::errno)?;
    Ok(kvm.check_extension_raw(libc::c_ulong::from(cap)))
}

// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Errors of VM set-up and of calls.

use crate::Errno;

/// Why a VM could not be set up or a call did not produce a [`crate::CallExit`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The [`crate::VmSpec`] cannot be set up as given.
    #[error("invalid VM specification: {0}")]
    InvalidSpec(String),
    /// A KVM ioctl or another system call failed.
    #[error("{op} failed: {errno}")]
    Sys {
        /// What failed (the ioctl's name, with its argument where that helps).
        op: &'static str,
        /// The errno it returned.
        errno: Errno,
    },
    /// A vCPU index at or beyond the VM's vCPU count.
    #[error("vCPU {index} does not exist (the VM has {count})")]
    NoSuchVcpu {
        /// The index asked for.
        index: usize,
        /// The VM's vCPU count.
        count: usize,
    },
    /// The guest took an exception instead of completing the call.
    #[error(
        "vCPU {vcpu}: guest exception ({vector}): ESR_EL1 {esr:#x}, ELR_EL1 {elr:#x}, FAR_EL1 {far:#x}"
    )]
    GuestException {
        /// The vCPU.
        vcpu: usize,
        /// The exception vector taken.
        vector: &'static str,
        /// ESR_EL1 (the syndrome).
        esr: u64,
        /// ELR_EL1 (where the exception was taken).
        elr: u64,
        /// FAR_EL1 (the faulting address, for aborts).
        far: u64,
    },
    /// KVM_RUN ended with an exit that no call produces.
    #[error("vCPU {vcpu}: unexpected exit from KVM_RUN: {exit}")]
    UnexpectedExit {
        /// The vCPU.
        vcpu: usize,
        /// The exit, as kvm-ioctls describes it.
        exit: String,
    },
    /// armfw's firmware engine refused a call (a VMM error, e.g. a call on a vCPU it has not
    /// been told runs).
    #[error("firmware engine: {0}")]
    Firmware(String),
    /// The watchdog could not be set up or torn down cleanly.
    #[error("watchdog: {0}")]
    Watchdog(String),
}

impl Error {
    /// The errno, for a failed ioctl or system call.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Sys { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Errors of VM set-up and of calls.
//!
//! Each variant carries the values involved; messages are short, and a `#[source]` is never
//! repeated in the message (the chain is printed by whoever reports the error).

use armfw::FieldError;
use armfw::abi::Errno;
use armfw::firmware::VcpuError;

use crate::CallExit;
use crate::sys::{ToErrno, describe};

/// Why a VM could not be set up or a call did not produce a [`crate::CallExit`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A [`crate::VmSpec`] with no vCPU.
    #[error("invalid VM specification: a VM needs at least one vCPU")]
    NoVcpus,
    /// A [`crate::VmSpec`] whose `power_off` names a vCPU the VM does not have.
    #[error("invalid VM specification: power_off names vCPU {index}, the VM has {vcpus}")]
    PowerOffOutOfRange {
        /// The vCPU named.
        index: usize,
        /// The VM's vCPU count.
        vcpus: usize,
    },
    /// A KVM ioctl or another system call failed.
    #[error("{op} failed: {errno} ({})", describe(*.errno))]
    Sys {
        /// What failed (the ioctl's name, with its argument where that helps).
        op: &'static str,
        /// The errno it returned.
        errno: Errno,
    },
    /// KVM refused to read or write a register of the vGIC.
    #[error("{} the vGIC's {group} register {attr:#x}: {errno} ({})", if *.write { "writing" } else { "reading" }, describe(*.errno))]
    Vgic {
        /// The register group: `distributor`, `redistributor`, `CPU interface` or
        /// `line level`.
        group: &'static str,
        /// The attribute (affinity in bits 63:32, offset or encoding below).
        attr: u64,
        /// A write (else a read).
        write: bool,
        /// KVM's answer.
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
    /// The guest accessed an address that no call stub or vector uses.
    #[error("vCPU {vcpu}: unexpected MMIO {} {addr:#x}", if *.write { "write to" } else { "read of" })]
    UnexpectedMmio {
        /// The vCPU.
        vcpu: usize,
        /// The guest physical address.
        addr: u64,
        /// A write (else a read).
        write: bool,
    },
    /// KVM_RUN ended with an exit that no call produces.
    #[error("vCPU {vcpu}: unexpected exit from KVM_RUN: {exit}")]
    UnexpectedExit {
        /// The vCPU.
        vcpu: usize,
        /// The exit, as kvm-ioctls describes it.
        exit: String,
    },
    /// A call ended otherwise than by returning to the guest, where only a return was
    /// expected.
    #[error("call {function_id:#x} did not return to the guest")]
    NotReturned {
        /// x0 of the call.
        function_id: u64,
        /// How it ended.
        exit: Box<CallExit>,
    },
    /// armfw's firmware engine refused a call (a VMM error, e.g. a call on a vCPU it has not
    /// been told runs).
    #[error("firmware engine")]
    Engine(#[from] VcpuError),
    /// A vCPU is in an MP state that arm64 KVM does not use.
    #[error("vCPU {vcpu}: MP state {state} is not an arm64 state")]
    UnknownMpState {
        /// The vCPU.
        vcpu: usize,
        /// KVM_GET_MP_STATE's value.
        state: u32,
    },
    /// A pool baseline could not be applied to the VM.
    #[error("baseline")]
    Baseline(#[from] armfw::compat::ApplyError),
    /// The host answered the probe in a way no profile can describe.
    #[error("probe: {0}")]
    Probe(String),
    /// The probed profile does not pass [`armfw::profile::Profile::validate`].
    #[error("probed profile is inconsistent")]
    InconsistentProfile(#[source] FieldError),
    /// Guest RAM could not be registered as memory slots.
    #[error("guest RAM")]
    GuestMemory(#[source] vm_memory::GuestMemoryError),
    /// The watchdog's signals were not all handled in time when it was disarmed.
    #[error("watchdog: {sent} signal(s) sent, {handled} handled")]
    WatchdogSignals {
        /// Signals the watchdog sent.
        sent: u64,
        /// Signals handled on the vCPU thread.
        handled: u64,
    },
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

/// Maps a failed ioctl's errno (the core's or kvm-ioctls') to [`Error::Sys`] named `op`.
pub(crate) fn sys<E: ToErrno>(op: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::Sys {
        op,
        errno: e.to_errno(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sys_error_message_names_op_errno_and_description() {
        let e = Error::Sys {
            op: "KVM_CREATE_VM",
            errno: Errno::EINVAL,
        };
        assert_eq!(
            e.to_string(),
            "KVM_CREATE_VM failed: EINVAL (Invalid argument)"
        );
    }

    #[test]
    fn engine_error_message_does_not_repeat_its_source() {
        let e = Error::from(VcpuError::NotRunnable(1));
        assert_eq!(e.to_string(), "firmware engine");
    }
}

//! The operations of a restore, as a VMM makes them against KVM.

use std::fmt;

use crate::abi::FwReg;

/// One operation of a restore, as the VMM would make it against KVM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// KVM_ENABLE_CAP(KVM_CAP_ARM_SYSTEM_SUSPEND) on the VM.
    EnableSystemSuspend,
    /// KVM_ARM_VCPU_INIT of a vCPU with the snapshot's PSCI family.
    InitVcpu {
        /// The vCPU.
        vcpu: usize,
    },
    /// KVM_SET_DEVICE_ATTR(SMCCC_FILTER) with the snapshot's range `range`.
    SetSmcccFilter {
        /// The index of the range in the snapshot.
        range: usize,
    },
    /// KVM_SET_ONE_REG of a firmware register on a vCPU.
    SetOneReg {
        /// The vCPU.
        vcpu: usize,
        /// The register id.
        id: u64,
    },
    /// KVM_ARM_VCPU_PVTIME_IPA of a vCPU.
    SetPvTimeIpa {
        /// The vCPU.
        vcpu: usize,
    },
    /// KVM_SET_MP_STATE of a vCPU.
    SetMpState {
        /// The vCPU.
        vcpu: usize,
    },
    /// The CPU_ON start that was pending at save time (the vCPU's reset to its entry point).
    StartVcpu {
        /// The vCPU.
        vcpu: usize,
    },
}

impl Step {
    /// The name used in JSON reports (snake case).
    pub const fn name(self) -> &'static str {
        match self {
            Step::EnableSystemSuspend => "enable_system_suspend",
            Step::InitVcpu { .. } => "init_vcpu",
            Step::SetSmcccFilter { .. } => "set_smccc_filter",
            Step::SetOneReg { .. } => "set_one_reg",
            Step::SetPvTimeIpa { .. } => "set_pv_time_ipa",
            Step::SetMpState { .. } => "set_mp_state",
            Step::StartVcpu { .. } => "start_vcpu",
        }
    }

    /// The vCPU the operation is on, if it is a vCPU operation.
    pub const fn vcpu(self) -> Option<usize> {
        match self {
            Step::EnableSystemSuspend | Step::SetSmcccFilter { .. } => None,
            Step::InitVcpu { vcpu }
            | Step::SetOneReg { vcpu, .. }
            | Step::SetPvTimeIpa { vcpu }
            | Step::SetMpState { vcpu }
            | Step::StartVcpu { vcpu } => Some(vcpu),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Step::EnableSystemSuspend => f.write_str("KVM_ENABLE_CAP(KVM_CAP_ARM_SYSTEM_SUSPEND)"),
            Step::InitVcpu { vcpu } => write!(f, "KVM_ARM_VCPU_INIT of vCPU {vcpu}"),
            Step::SetSmcccFilter { range } => {
                write!(f, "SMCCC filter range {range} (KVM_SET_DEVICE_ATTR)")
            }
            Step::SetOneReg { vcpu, id } => match FwReg::from_id(id) {
                Some(reg) => write!(f, "KVM_SET_ONE_REG {reg} on vCPU {vcpu}"),
                None => write!(f, "KVM_SET_ONE_REG {id:#018x} on vCPU {vcpu}"),
            },
            Step::SetPvTimeIpa { vcpu } => write!(f, "KVM_ARM_VCPU_PVTIME_IPA of vCPU {vcpu}"),
            Step::SetMpState { vcpu } => write!(f, "KVM_SET_MP_STATE of vCPU {vcpu}"),
            Step::StartVcpu { vcpu } => write!(f, "the pending CPU_ON start of vCPU {vcpu}"),
        }
    }
}

//! The operations of a restore, as a VMM makes them against KVM.

use std::fmt;

/// One operation of a restore, as the VMM would make it against KVM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// KVM_ENABLE_CAP(KVM_CAP_ARM_SYSTEM_SUSPEND) on the VM.
    EnableSystemSuspend,
    /// KVM_ENABLE_CAP(KVM_CAP_ARM_WRITABLE_IMP_ID_REGS) on the VM.
    EnableWritableImpIdRegs,
    /// KVM_ARM_SET_COUNTER_OFFSET on the VM.
    SetCounterOffset,
    /// KVM_ARM_VCPU_INIT of a vCPU with the snapshot's PSCI family and vCPU features (with
    /// SVE: SVE_VLS and KVM_ARM_VCPU_FINALIZE; with the PMU: its initialisation).
    InitVcpu {
        /// The vCPU.
        vcpu: usize,
    },
    /// KVM_SET_DEVICE_ATTR(SMCCC_FILTER) with the snapshot's range `range`.
    SetSmcccFilter {
        /// The index of the range in the snapshot.
        range: usize,
    },
    /// KVM_SET_ONE_REG of a register on a vCPU.
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
            Step::EnableWritableImpIdRegs => "enable_writable_imp_id_regs",
            Step::SetCounterOffset => "set_counter_offset",
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
            Step::EnableSystemSuspend
            | Step::EnableWritableImpIdRegs
            | Step::SetCounterOffset
            | Step::SetSmcccFilter { .. } => None,
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
            Step::EnableWritableImpIdRegs => {
                f.write_str("KVM_ENABLE_CAP(KVM_CAP_ARM_WRITABLE_IMP_ID_REGS)")
            }
            Step::SetCounterOffset => f.write_str("KVM_ARM_SET_COUNTER_OFFSET"),
            Step::InitVcpu { vcpu } => write!(f, "KVM_ARM_VCPU_INIT of vCPU {vcpu}"),
            Step::SetSmcccFilter { range } => {
                write!(f, "SMCCC filter range {range} (KVM_SET_DEVICE_ATTR)")
            }
            Step::SetOneReg { vcpu, id } => write!(
                f,
                "KVM_SET_ONE_REG {} on vCPU {vcpu}",
                crate::vcpu::names::reg_name(id)
            ),
            Step::SetPvTimeIpa { vcpu } => write!(f, "KVM_ARM_VCPU_PVTIME_IPA of vCPU {vcpu}"),
            Step::SetMpState { vcpu } => write!(f, "KVM_SET_MP_STATE of vCPU {vcpu}"),
            Step::StartVcpu { vcpu } => write!(f, "the pending CPU_ON start of vCPU {vcpu}"),
        }
    }
}

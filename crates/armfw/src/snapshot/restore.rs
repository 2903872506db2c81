//! Restoring a snapshot into a model VM, atomically, under a policy.

use std::fmt;

use super::sequence::{self, RestoreTarget, SaveSource};
use super::{FilterRange, PendingStart, Snapshot, filter_action_value};
use crate::abi::{Errno, FwReg};
use crate::compat::{self, Finding, Verdict};
use crate::firmware::{Firmware, MpState, VcpuFeatures, VcpuStart};
use crate::json::FieldError;

/// How a snapshot's registers are written back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RestorePolicy {
    /// As today's VMMs do: every saved register, in saved order, on every vCPU; the first
    /// write KVM refuses ends the restore. [`compat::check`] predicts the outcome
    /// ([`compat::Report::strict`]).
    Strict,
    /// armfw's plan ([`compat::check`]): refuse up front if the destination cannot keep the
    /// guest's firmware, else write what the plan says and skip what it skips.
    Armfw,
}

/// One operation of a restore, as the VMM would make it against KVM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// What a successful restore leaves for the VMM to do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// CPU_ON starts that were pending at save time: reset each vCPU to its entry point with
    /// the context id in x0 before it runs.
    pub starts: Vec<VcpuStart>,
}

/// Why a restore did not happen. The VM is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// The snapshot breaks an invariant.
    #[error("invalid snapshot: {0}")]
    Invalid(#[from] FieldError),
    /// The VM has run: its bitmaps and SMCCC filter are locked (EBUSY).
    #[error("the VM has already run; restore into a VM before its first KVM_RUN")]
    HasRun,
    /// The VM has vCPUs, but not as many as the snapshot.
    #[error("the snapshot has {snapshot} vCPUs, the VM {vm}")]
    VcpuCount {
        /// vCPUs in the snapshot.
        snapshot: usize,
        /// vCPUs in the VM.
        vm: usize,
    },
    /// A vCPU of the VM is uninitialised or has another PSCI family than the snapshot.
    #[error("vCPU {0} is not initialised with the snapshot's PSCI family")]
    VcpuFeatures(usize),
    /// armfw's policy: the destination cannot keep the guest's firmware.
    #[error("incompatible: {0}")]
    Incompatible(Finding),
    /// An operation failed (the strict policy's first refused write, for example).
    #[error("{step}: {errno}")]
    Failed {
        /// The operation.
        step: Step,
        /// KVM's answer.
        errno: Errno,
    },
}

impl Firmware {
    /// Restore `snapshot` into this VM, atomically: on success the VM holds the snapshot's
    /// firmware state; on any error nothing has changed.
    ///
    /// The VM must not have run. If it has no vCPUs, the snapshot's vCPUs are created and
    /// initialised; otherwise it must have as many, initialised with the snapshot's PSCI
    /// family. The operations follow KVM's ordering rules: the capability and the SMCCC filter
    /// before any vCPU runs, the registers (bitmaps included) before the first KVM_RUN, then the
    /// stolen-time IPAs and MP states. The registers are written under `policy`.
    pub fn restore(
        &mut self,
        snapshot: &Snapshot,
        policy: RestorePolicy,
    ) -> Result<Restored, RestoreError> {
        if self.has_run() {
            return Err(RestoreError::HasRun);
        }
        snapshot.validate()?;
        let report = match policy {
            RestorePolicy::Armfw => {
                let report = compat::check(snapshot, self.profile());
                if report.verdict == Verdict::Incompatible {
                    if let Some(f) = report.findings().find(|f| f.is_refused()) {
                        return Err(RestoreError::Incompatible(*f));
                    }
                }
                Some(report)
            }
            RestorePolicy::Strict => None,
        };
        let n = snapshot.vcpus.len();
        if self.vcpu_count() != 0 && self.vcpu_count() != n {
            return Err(RestoreError::VcpuCount {
                snapshot: n,
                vm: self.vcpu_count(),
            });
        }
        for i in 0..self.vcpu_count() {
            if self.vcpu_features(i).map(|f| f.psci_0_2) != Some(snapshot.vm.psci_0_2) {
                return Err(RestoreError::VcpuFeatures(i));
            }
        }
        let mut work = ModelVm {
            fw: self.clone(),
            starts: Vec::new(),
        };
        sequence::restore_into(&mut work, snapshot, report.as_ref())
            .map_err(|(step, errno)| RestoreError::Failed { step, errno })?;
        *self = work.fw;
        Ok(Restored {
            starts: work.starts,
        })
    }
}

/// A model VM as the restore sequence's target: the engine, and the CPU_ON starts the
/// restore hands to the VMM.
#[derive(Debug)]
pub(crate) struct ModelVm {
    pub(crate) fw: Firmware,
    pub(crate) starts: Vec<VcpuStart>,
}

impl SaveSource for Firmware {
    fn vcpu_count(&self) -> usize {
        Firmware::vcpu_count(self)
    }

    fn reg_list(&self, vcpu: usize) -> Result<Vec<u64>, Errno> {
        Firmware::reg_list(self, vcpu)
    }

    fn get_one_reg(&self, vcpu: usize, id: u64) -> Result<u64, Errno> {
        Firmware::get_one_reg(self, vcpu, id)
    }

    fn mp_state(&self, vcpu: usize) -> Result<MpState, Errno> {
        // An uninitialised vCPU (a save checks every vCPU before it reads any).
        Firmware::mp_state(self, vcpu).map_err(|_| Errno::ENOEXEC)
    }

    fn pv_time_ipa(&self, vcpu: usize) -> Result<Option<u64>, Errno> {
        Ok(Firmware::pv_time_ipa(self, vcpu))
    }
}

impl SaveSource for ModelVm {
    fn vcpu_count(&self) -> usize {
        self.fw.vcpu_count()
    }

    fn reg_list(&self, vcpu: usize) -> Result<Vec<u64>, Errno> {
        self.fw.reg_list(vcpu)
    }

    fn get_one_reg(&self, vcpu: usize, id: u64) -> Result<u64, Errno> {
        self.fw.get_one_reg(vcpu, id)
    }

    fn mp_state(&self, vcpu: usize) -> Result<MpState, Errno> {
        SaveSource::mp_state(&self.fw, vcpu)
    }

    fn pv_time_ipa(&self, vcpu: usize) -> Result<Option<u64>, Errno> {
        Ok(self.fw.pv_time_ipa(vcpu))
    }
}

impl RestoreTarget for ModelVm {
    fn enable_system_suspend(&mut self) -> Result<(), Errno> {
        self.fw.enable_system_suspend()
    }

    fn create_vcpus(&mut self, count: usize, psci_0_2: bool) -> Result<(), (usize, Errno)> {
        // A VM whose vCPUs exist was checked against the snapshot before the sequence.
        if self.fw.vcpu_count() != 0 {
            return Ok(());
        }
        for vcpu in 0..count {
            self.fw.add_vcpu().map_err(|e| (vcpu, e))?;
            let features = VcpuFeatures {
                psci_0_2,
                power_off: false,
            };
            self.fw.init_vcpu(vcpu, features).map_err(|e| (vcpu, e))?;
        }
        Ok(())
    }

    fn set_smccc_filter(&mut self, range: &FilterRange) -> Result<(), Errno> {
        self.fw.set_smccc_filter(
            range.base,
            range.nr_functions,
            filter_action_value(range.action),
            [0; 15],
        )
    }

    fn set_one_reg(&mut self, vcpu: usize, id: u64, value: u64) -> Result<(), Errno> {
        self.fw.set_one_reg(vcpu, id, value)
    }

    fn set_pv_time_ipa(&mut self, vcpu: usize, ipa: u64) -> Result<(), Errno> {
        self.fw.set_pv_time_ipa(vcpu, ipa)
    }

    fn set_mp_state(&mut self, vcpu: usize, state: MpState) -> Result<(), Errno> {
        self.fw.set_mp_state(vcpu, state.kvm_value())
    }

    fn start_vcpu(&mut self, vcpu: usize, start: PendingStart) -> Result<(), Errno> {
        self.starts.push(VcpuStart {
            vcpu,
            entry: start.entry,
            context_id: start.context_id,
        });
        Ok(())
    }
}

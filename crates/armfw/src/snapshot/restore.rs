//! Restoring a snapshot into a model VM, atomically, under a policy.

use std::fmt;

use super::{Snapshot, filter_action_value};
use crate::abi::{Errno, FwReg};
use crate::compat::{self, Finding, PlanAction, Verdict};
use crate::firmware::{Firmware, VcpuFeatures, VcpuStart};
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
        let mut work = self.clone();
        let failed = |step| move |errno| RestoreError::Failed { step, errno };
        if snapshot.vm.system_suspend {
            work.enable_system_suspend()
                .map_err(failed(Step::EnableSystemSuspend))?;
        }
        if work.vcpu_count() == 0 {
            for vcpu in 0..n {
                let step = Step::InitVcpu { vcpu };
                work.add_vcpu().map_err(failed(step))?;
                let features = VcpuFeatures {
                    psci_0_2: snapshot.vm.psci_0_2,
                    power_off: false,
                };
                work.init_vcpu(vcpu, features).map_err(failed(step))?;
            }
        }
        for (range, r) in snapshot.vm.smccc_filter.iter().enumerate() {
            work.set_smccc_filter(
                r.base,
                r.nr_functions,
                filter_action_value(r.action),
                [0; 15],
            )
            .map_err(failed(Step::SetSmcccFilter { range }))?;
        }
        for vcpu in 0..n {
            match &report {
                None => {
                    for r in &snapshot.vm.registers {
                        work.set_one_reg(vcpu, r.id, r.value)
                            .map_err(failed(Step::SetOneReg { vcpu, id: r.id }))?;
                    }
                }
                Some(report) => {
                    for action in report.plan() {
                        if let PlanAction::Write { id, value } = *action {
                            work.set_one_reg(vcpu, id, value)
                                .map_err(failed(Step::SetOneReg { vcpu, id }))?;
                        }
                    }
                }
            }
        }
        let mut starts = Vec::new();
        for (vcpu, v) in snapshot.vcpus.iter().enumerate() {
            if let Some(ipa) = v.pv_time_ipa {
                work.set_pv_time_ipa(vcpu, ipa)
                    .map_err(failed(Step::SetPvTimeIpa { vcpu }))?;
            }
            work.set_mp_state(vcpu, v.mp_state.kvm_value())
                .map_err(failed(Step::SetMpState { vcpu }))?;
            if let Some(p) = v.pending_start {
                starts.push(VcpuStart {
                    vcpu,
                    entry: p.entry,
                    context_id: p.context_id,
                });
            }
        }
        *self = work;
        Ok(Restored { starts })
    }
}

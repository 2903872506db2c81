//! The model VM under the one sequence: save, restore (atomically, under a policy) and
//! baseline application for [`Firmware`].

use super::sequence::{self, RestoreTarget, SaveSource};
use super::{RestoreError, RestorePolicy, Restored};
use crate::abi::Errno;
use crate::compat::{self, ApplyError, Baseline, Verdict};
use crate::firmware::{Firmware, MpState, VcpuFeatures, VcpuStart};
use crate::snapshot::{FilterRange, PendingStart, Snapshot};

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
            range.action.kvm_value(),
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

impl Baseline {
    /// Apply the baseline to a VM, atomically: write PSCI_VERSION (on a PSCI_0_2 VM) and the
    /// bitmaps on every vCPU ([`sequence::apply_baseline`], the sequence real vCPUs use too). Call it after KVM_ARM_VCPU_INIT and before the first KVM_RUN.
    /// A register the VM's host lacks is left out where the baseline's value means its
    /// absence (VENDOR_HYP_BMAP_2 = 0).
    pub fn apply(&self, fw: &mut Firmware) -> Result<(), ApplyError> {
        if fw.has_run() {
            return Err(ApplyError::HasRun);
        }
        let features = fw.vcpu_features(0).ok_or(ApplyError::NoVcpu)?;
        let mut work = ModelVm {
            fw: fw.clone(),
            starts: Vec::new(),
        };
        sequence::apply_baseline(&mut work, features.psci_0_2, self)?;
        *fw = work.fw;
        Ok(())
    }
}

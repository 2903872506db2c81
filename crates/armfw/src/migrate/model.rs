//! The model VM under the one sequence: save, restore (atomically, under a policy) and
//! baseline application for [`Firmware`].

use super::sequence::{self, RegWriter, RestoreTarget, SaveSource, VcpuInit};
use super::{RestoreError, RestorePolicy, Restored};
use crate::abi::{Errno, OneRegId};
use crate::compat::{self, ApplyError, Baseline, Verdict};
use crate::firmware::{Firmware, MpState, VcpuFeatures, VcpuStart};
use crate::snapshot::{FilterRange, PendingStart, Snapshot};
use crate::vcpu::{VcpuModel, VcpuSetup, VcpuTemplate};
use std::sync::Arc;

/// ID_AA64PFR1_EL1.
const ID_AA64PFR1: u64 = crate::abi::vcpu_reg::sysreg_id(3, 0, 0, 4, 1);

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
        let mut work = ModelVm::new(self.clone());
        sequence::restore_into(&mut work, snapshot, report.as_ref())
            .map_err(|(step, errno)| RestoreError::Failed { step, errno })?;
        *self = work.fw;
        Ok(Restored {
            starts: work.starts,
        })
    }
}

/// A model VM as the restore sequence's target: the engine, the whole-vCPU registers once
/// the vCPUs exist (on a profile that has them), and the CPU_ON starts the restore hands to
/// the VMM.
#[derive(Debug)]
pub struct ModelVm {
    pub(crate) fw: Firmware,
    pub(crate) vcpu: Option<VcpuModel>,
    pub(crate) imp_writable: bool,
    pub(crate) starts: Vec<VcpuStart>,
    /// What vCPUs the restore makes are made from, where their set-up fits it.
    template: Option<Arc<VcpuTemplate>>,
}

impl ModelVm {
    /// A VM on the model, holding `fw` (vCPUs made by the restore get their registers from
    /// `fw`'s profile).
    pub fn new(fw: Firmware) -> ModelVm {
        ModelVm {
            fw,
            vcpu: None,
            imp_writable: false,
            starts: Vec::new(),
            template: None,
        }
    }

    /// The same VM, whose vCPUs (when a restore makes them) come from `template` where their
    /// set-up fits it: a template of the same host decoded once for many restores.
    pub fn with_template(mut self, template: Arc<VcpuTemplate>) -> ModelVm {
        self.template = Some(template);
        self
    }

    /// The firmware engine.
    pub fn firmware(&self) -> &Firmware {
        &self.fw
    }

    /// The whole-vCPU registers, once the vCPUs exist on a profile that has them.
    pub fn registers(&self) -> Option<&VcpuModel> {
        self.vcpu.as_ref()
    }

    /// KVM_RUN of `vcpu` that enters the guest and comes back (the first run's changes).
    pub fn run(&mut self, vcpu: usize) -> Result<(), crate::firmware::VcpuError> {
        self.fw.vcpu_run(vcpu)?;
        if let Some(v) = self.vcpu.as_mut() {
            v.ran(vcpu);
        }
        Ok(())
    }
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

    fn get_reg(&self, vcpu: usize, id: u64) -> Result<Vec<u8>, Errno> {
        Firmware::get_one_reg(self, vcpu, id).map(|v| {
            let mut buf = v.to_le_bytes().to_vec();
            buf.resize(OneRegId(id).size_bytes(), 0);
            buf
        })
    }
}

impl SaveSource for ModelVm {
    fn vcpu_count(&self) -> usize {
        self.fw.vcpu_count()
    }

    fn reg_list(&self, vcpu: usize) -> Result<Vec<u64>, Errno> {
        self.listed_ids(vcpu)
    }

    fn get_one_reg(&self, vcpu: usize, id: u64) -> Result<u64, Errno> {
        self.fw.get_one_reg(vcpu, id)
    }

    fn get_reg(&self, vcpu: usize, id: u64) -> Result<Vec<u8>, Errno> {
        match &self.vcpu {
            Some(v) if !OneRegId(id).is_firmware_class() => v.get(vcpu, id),
            _ => self.fw.get_one_reg(vcpu, id).map(|v| {
                let mut buf = v.to_le_bytes().to_vec();
                buf.resize(OneRegId(id).size_bytes(), 0);
                buf
            }),
        }
    }

    fn mp_state(&self, vcpu: usize) -> Result<MpState, Errno> {
        SaveSource::mp_state(&self.fw, vcpu)
    }

    fn pv_time_ipa(&self, vcpu: usize) -> Result<Option<u64>, Errno> {
        Ok(self.fw.pv_time_ipa(vcpu))
    }
}

impl RegWriter for ModelVm {
    fn set_reg(&mut self, vcpu: usize, id: u64, data: &[u8]) -> Result<(), Errno> {
        match self.vcpu.as_mut() {
            Some(v) if !OneRegId(id).is_firmware_class() => {
                v.set(vcpu, id, data)?;
                if id == ID_AA64PFR1 {
                    // KVM's WORKAROUND_2 level follows the VM's SSBS.
                    let host = v.host_value(id).unwrap_or(0);
                    let now = v.get(vcpu, id).map_or(host, |b| crate::json::le_u64(&b));
                    self.fw
                        .set_ssbs_hidden(crate::register::ssbs_hidden(host, now));
                }
                Ok(())
            }
            // Without the whole-vCPU part the host's other ids are unknown: not listed.
            None if !OneRegId(id).is_firmware_class() => Err(Errno::ENOENT),
            _ => {
                if data.len() != OneRegId(id).size_bytes() {
                    return Err(Errno::EINVAL);
                }
                self.fw.set_one_reg(vcpu, id, crate::json::le_u64(data))
            }
        }
    }

    fn set_one_reg(&mut self, vcpu: usize, id: u64, value: u64) -> Result<(), Errno> {
        self.fw.set_one_reg(vcpu, id, value)
    }
}

impl RestoreTarget for ModelVm {
    fn enable_system_suspend(&mut self) -> Result<(), Errno> {
        self.fw.enable_system_suspend()
    }

    fn enable_writable_imp_id_regs(&mut self) -> Result<(), Errno> {
        let has = self
            .fw
            .profile()
            .vcpu()
            .is_some_and(|v| v.capabilities.writable_imp_id_regs);
        if !has || self.fw.vcpu_count() != 0 {
            return Err(Errno::EINVAL);
        }
        self.imp_writable = true;
        Ok(())
    }

    fn create_vcpus(&mut self, count: usize, init: &VcpuInit) -> Result<(), (usize, Errno)> {
        // A VM whose vCPUs exist was checked against the snapshot before the sequence.
        if self.fw.vcpu_count() != 0 {
            return Ok(());
        }
        for vcpu in 0..count {
            self.fw.add_vcpu().map_err(|e| (vcpu, e))?;
            let features = VcpuFeatures {
                psci_0_2: init.psci_0_2,
                power_off: false,
            };
            self.fw.init_vcpu(vcpu, features).map_err(|e| (vcpu, e))?;
        }
        let setup = VcpuSetup {
            vcpus: count,
            features: init.features,
            sve_vls: init.sve_vls.clone(),
            writable_imp_id_regs: self.imp_writable,
        };
        if let Some(t) = self.template.as_ref().filter(|t| t.fits(&setup)) {
            self.vcpu = Some(VcpuModel::from_template(t, count));
            return Ok(());
        }
        self.vcpu = match VcpuModel::new(self.fw.profile(), &setup) {
            Some(Ok(model)) => Some(model),
            // KVM_ARM_VCPU_INIT (a feature the host lacks) or the SVE_VLS write refused it.
            Some(Err(_)) => return Err((0, Errno::EINVAL)),
            // A version-1 profile answers for the firmware registers alone.
            None if init.features == crate::abi::CpuFeatures::NONE => None,
            None => return Err((0, Errno::EINVAL)),
        };
        Ok(())
    }

    fn set_counter_offset(&mut self, offset: u64) -> Result<(), Errno> {
        self.vcpu
            .as_mut()
            .ok_or(Errno::EINVAL)?
            .set_counter_offset(offset)
    }

    fn listed_ids(&self, vcpu: usize) -> Result<Vec<u64>, Errno> {
        self.fw.reg_list(vcpu)?;
        Ok(match &self.vcpu {
            Some(v) => v.reg_list(),
            None => self.fw.reg_list(vcpu)?,
        })
    }

    fn set_smccc_filter(&mut self, range: &FilterRange) -> Result<(), Errno> {
        self.fw.set_smccc_filter(
            range.base,
            range.nr_functions,
            range.action.kvm_value(),
            [0; 15],
        )
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
        let mut work = ModelVm::new(fw.clone());
        sequence::apply_baseline(&mut work, features.psci_0_2, Some(self), None)?;
        *fw = work.fw;
        Ok(())
    }
}

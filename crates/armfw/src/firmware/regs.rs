//! The firmware pseudo-registers: KVM_GET_ONE_REG, KVM_SET_ONE_REG and KVM_GET_REG_LIST for
//! classes 0x14 and 0x16 (Linux `arch/arm64/kvm/hypercalls.c`, `kvm_arm_get_fw_reg()`,
//! `kvm_arm_set_fw_reg()`, `kvm_arm_set_fw_reg_bmap()`; `arch/arm64/kvm/guest.c`).

use super::{Firmware, VcpuFeatures, Vm};
use crate::abi::reg::{
    KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_AVAIL, KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_ENABLED,
    KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_NOT_AVAIL,
    KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_NOT_REQUIRED, KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_UNKNOWN,
    KVM_REG_FEATURE_LEVEL_MASK,
};
use crate::abi::{Errno, FwReg, OneRegId, PsciVersion};

impl Firmware {
    /// KVM_GET_REG_LIST, the firmware part: the ids of the host's firmware registers in
    /// KVM's order. ENOEXEC for an uninitialised vCPU.
    pub fn reg_list(&self, vcpu: usize) -> Result<Vec<u64>, Errno> {
        self.one_reg_vcpu(vcpu)?;
        Ok(self.vm.reg_list())
    }

    /// KVM_GET_ONE_REG for a firmware register.
    ///
    /// ENOEXEC for an uninitialised vCPU; EINVAL for an id that is not arm64; for the
    /// firmware classes, ENOENT (EINVAL before 5.2) for an id the host does not have, which
    /// includes every size but 64 bits. Ids of other classes are outside the engine (the VMM
    /// serves them from KVM) and get ENOENT.
    pub fn get_one_reg(&self, vcpu: usize, id: u64) -> Result<u64, Errno> {
        let features = self.one_reg_vcpu(vcpu)?;
        self.vm.get_one_reg(features, id)
    }

    /// KVM_SET_ONE_REG for a firmware register, `value` being the register's 64-bit content.
    ///
    /// Errors as [`Firmware::get_one_reg`], then the register's own rule:
    /// - `PSCI_VERSION`: 0.1 only without PSCI_0_2, the host's 0.2+ versions only with it,
    ///   anything else EINVAL; the value is VM-wide and may change at any time.
    /// - WORKAROUND_1/3: EINVAL for bits above 3:0 or a level above the host's; nothing is
    ///   stored.
    /// - WORKAROUND_2: EINVAL for bits outside 0x1f, ENABLED without AVAIL, a level of 4..15,
    ///   or a level (mapped {0,1}→0, {2,3}→3) above the host's; nothing is stored.
    /// - bitmaps: EINVAL for a bit outside the supported set; EBUSY for a different value once
    ///   the VM has run; the value is VM-wide.
    pub fn set_one_reg(&mut self, vcpu: usize, id: u64, value: u64) -> Result<(), Errno> {
        let features = self.one_reg_vcpu(vcpu)?;
        self.vm.set_one_reg(features, id, value)
    }

    /// The value of a bitmap register (0 where the host lacks it).
    pub fn bitmap(&self, reg: FwReg) -> u64 {
        self.vm.bitmap(reg)
    }

    /// The vCPU checks every ONE_REG ioctl makes first: ENOEXEC unless initialised.
    fn one_reg_vcpu(&self, vcpu: usize) -> Result<VcpuFeatures, Errno> {
        self.vcpus
            .get(vcpu)
            .and_then(|v| v.features)
            .ok_or(Errno::ENOEXEC)
    }
}

/// The register rules proper, on the VM-wide state; `features` are the accessing vCPU's.
impl Vm {
    pub(super) fn reg_list(&self) -> Vec<u64> {
        self.profile.registers.iter().map(|r| r.reg.id()).collect()
    }

    pub(super) fn get_one_reg(&self, features: VcpuFeatures, id: u64) -> Result<u64, Errno> {
        let reg = self.lookup(id)?;
        Ok(match reg {
            FwReg::PsciVersion => u64::from(self.psci_version_for(features).0),
            FwReg::SmcccArchWorkaround1
            | FwReg::SmcccArchWorkaround2
            | FwReg::SmcccArchWorkaround3 => self.host_level(reg) & KVM_REG_FEATURE_LEVEL_MASK,
            _ => reg.bitmap_index().map_or(0, |i| self.bitmaps[i]),
        })
    }

    pub(super) fn set_one_reg(
        &mut self,
        features: VcpuFeatures,
        id: u64,
        value: u64,
    ) -> Result<(), Errno> {
        let reg = self.lookup(id)?;
        match reg {
            FwReg::PsciVersion => {
                let wants_02 = features.psci_0_2;
                let v = u32::try_from(value).ok().map(PsciVersion);
                match v {
                    Some(PsciVersion::V0_1) if !wants_02 => {}
                    Some(v) if wants_02 && self.profile.psci_versions.contains(&v) => {}
                    _ => return Err(Errno::EINVAL),
                }
                self.psci_version = v;
                Ok(())
            }
            FwReg::SmcccArchWorkaround1 | FwReg::SmcccArchWorkaround3 => {
                if value & !KVM_REG_FEATURE_LEVEL_MASK != 0 || self.host_level(reg) < value {
                    return Err(Errno::EINVAL);
                }
                Ok(())
            }
            FwReg::SmcccArchWorkaround2 => {
                if value
                    & !(KVM_REG_FEATURE_LEVEL_MASK | KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_ENABLED)
                    != 0
                {
                    return Err(Errno::EINVAL);
                }
                let level = value & KVM_REG_FEATURE_LEVEL_MASK;
                if value & KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_ENABLED != 0
                    && level != KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_AVAIL
                {
                    return Err(Errno::EINVAL);
                }
                let mapped = match level {
                    KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_NOT_AVAIL
                    | KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_UNKNOWN => {
                        KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_NOT_AVAIL
                    }
                    KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_AVAIL
                    | KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_NOT_REQUIRED => {
                        KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_NOT_REQUIRED
                    }
                    _ => return Err(Errno::EINVAL),
                };
                if self.host_level(reg) < mapped {
                    return Err(Errno::EINVAL);
                }
                Ok(())
            }
            _ => {
                let (i, writable) = match (
                    reg.bitmap_index(),
                    self.profile.register(reg).and_then(|r| r.writable),
                ) {
                    (Some(i), Some(w)) => (i, w),
                    // lookup() only returns registers of the profile, and the profile gives
                    // every bitmap register its writable mask.
                    _ => return Err(self.unknown_reg_errno()),
                };
                if value & !writable != 0 {
                    return Err(Errno::EINVAL);
                }
                if self.has_run && value != self.bitmaps[i] {
                    return Err(Errno::EBUSY);
                }
                self.bitmaps[i] = value;
                Ok(())
            }
        }
    }

    /// The value of a bitmap register (0 where the host lacks it).
    pub(super) fn bitmap(&self, reg: FwReg) -> u64 {
        reg.bitmap_index().map_or(0, |i| self.bitmaps[i])
    }

    fn unknown_reg_errno(&self) -> Errno {
        if self.rules.unknown_fw_reg_is_enoent {
            Errno::ENOENT
        } else {
            Errno::EINVAL
        }
    }

    /// The firmware register `id` names on this host, with KVM's errors.
    fn lookup(&self, id: u64) -> Result<FwReg, Errno> {
        let id = OneRegId(id);
        if !id.is_arm64() {
            return Err(Errno::EINVAL);
        }
        if !id.is_firmware_class() {
            return Err(Errno::ENOENT);
        }
        FwReg::from_id(id.0)
            .filter(|r| self.profile.register(*r).is_some())
            .ok_or_else(|| self.unknown_reg_errno())
    }

    pub(super) fn host_level(&self, reg: FwReg) -> u64 {
        self.profile.workaround_level(reg).unwrap_or(0)
    }
}

//! The firmware pseudo-registers: KVM_GET_ONE_REG, KVM_SET_ONE_REG and KVM_GET_REG_LIST for
//! classes 0x14 and 0x16 (Linux `arch/arm64/kvm/hypercalls.c`, `kvm_arm_get_fw_reg()`,
//! `kvm_arm_set_fw_reg()`, `kvm_arm_set_fw_reg_bmap()`; `arch/arm64/kvm/guest.c`).

use super::{Firmware, VcpuFeatures, Vm};
use crate::abi::{Errno, FwReg, OneRegId};
use crate::register::{self, Scope, SetContext, SetEffect};

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
    /// Errors as [`Firmware::get_one_reg`], then the register's own rule from the register
    /// table ([`crate::register::SetRule`]): PSCI_VERSION takes the host's versions (0.1
    /// without PSCI_0_2), a WORKAROUND register a level up to the host's and stores nothing,
    /// a bitmap a subset of its writable bits (EBUSY for a change once the VM has run).
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

/// The register rules proper, on the VM-wide state; `features` are the accessing vCPU's. The
/// rules themselves are the register table's ([`crate::register`]).
impl Vm {
    pub(super) fn reg_list(&self) -> Vec<u64> {
        self.profile
            .registers()
            .iter()
            .map(|r| r.reg.id())
            .collect()
    }

    pub(super) fn get_one_reg(&self, features: VcpuFeatures, id: u64) -> Result<u64, Errno> {
        let reg = self.lookup(id)?;
        Ok(match register::firmware(reg).scope {
            Scope::Host => self.host_level(reg),
            Scope::Vm if reg == FwReg::PsciVersion => u64::from(self.psci_version_for(features).0),
            Scope::Vm => self.bitmap(reg),
        })
    }

    pub(super) fn set_one_reg(
        &mut self,
        features: VcpuFeatures,
        id: u64,
        value: u64,
    ) -> Result<(), Errno> {
        let reg = self.lookup(id)?;
        let ctx = SetContext {
            psci_0_2: features.psci_0_2,
            has_run: self.has_run,
            current: self.bitmap(reg),
            ssbs_hidden: self.ssbs_hidden,
        };
        match register::firmware(reg)
            .rule
            .set(reg, &self.profile, ctx, value)?
        {
            SetEffect::PsciVersion(v) => self.psci_version = Some(v),
            SetEffect::Store(v) => {
                if let Some(i) = reg.bitmap_index() {
                    self.bitmaps[i] = v;
                }
            }
            SetEffect::Nothing => {}
        }
        Ok(())
    }

    /// The value of a bitmap register (0 where the host lacks it).
    pub(super) fn bitmap(&self, reg: FwReg) -> u64 {
        reg.bitmap_index().map_or(0, |i| self.bitmaps[i])
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
            .ok_or(self.rules.unknown_fw_reg_errno())
    }

    /// The level of a host-scope (WORKAROUND) register this VM sees, 0 where the host lacks
    /// it ([`register::vm_level`]).
    pub(super) fn host_level(&self, reg: FwReg) -> u64 {
        register::vm_level(reg, &self.profile, self.ssbs_hidden).unwrap_or(0)
    }
}

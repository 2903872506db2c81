//! The register table: one descriptor per register armfw knows, the single source of every
//! register fact.
//!
//! It reads like the kernel's own tables: `struct sys_reg_desc` in
//! `arch/arm64/kvm/sys_regs.c` (per register its encoding, name, reset, `set_user` and
//! visibility) and `kvm_arm_fw_reg_ids[]` in `arch/arm64/kvm/hypercalls.c` (the firmware
//! registers in KVM_GET_REG_LIST order). A [`RegDesc`] holds the id, the name, the class, the
//! scope, when the host lists it, where its default comes from, its SET rule, the releases
//! where it or its rule changed, and the kernel source of all that.
//!
//! Everything that needs a register fact reads it here: the engine's KVM_GET_ONE_REG /
//! KVM_SET_ONE_REG / KVM_GET_REG_LIST ([`crate::firmware`]), the strict-restore prediction and
//! the plan ([`crate::compat`]), `armfw regs` ([`crate::catalog`]), and the validation of
//! profiles and snapshots. A SET is decided by [`SetRule::set`] and nowhere else, so the model
//! and the prediction of a restore cannot disagree.
//!
//! [`RegClass`] names every class. The firmware registers are rows here; the other classes,
//! whose lists and reset values a probe records per host and feature set
//! ([`crate::profile::VcpuProfile`]), get their rule from one classification of the id,
//! [`crate::vcpu::rules`] (`kind` and `sys_rule`: the kernel's dispatch in `kvm_arm_get_reg()`
//! and the `set_user` of its `sys_reg_descs[]` rows), with the kernel's field tables in
//! [`ftr`] and the architectural names in [`names`].

mod firmware;
pub mod ftr;
mod level;
pub mod names;

pub use firmware::{FIRMWARE, WA2_FOLLOWS_VM_SSBS, ssbs_hidden, vm_level};
pub use level::{LevelKind, WorkaroundLevel};

use crate::abi::{Errno, FwReg, PsciVersion};
use crate::profile::Profile;
use crate::release::Release;

/// A register class: bits 27:16 of an arm64 ONE_REG id (Linux
/// `arch/arm64/include/uapi/asm/kvm.h`, `KVM_REG_ARM_*` "coproc" values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RegClass {
    /// 0x0010 `KVM_REG_ARM_CORE`: x0..x30, sp, pc, pstate, the EL1 banked registers, V/FP.
    Core,
    /// 0x0011 `KVM_REG_ARM_DEMUX`: the CCSIDR cache-geometry demux.
    Demux,
    /// 0x0013 `KVM_REG_ARM64_SYSREG`: system registers by (op0, op1, CRn, CRm, op2).
    SysReg,
    /// 0x0014 `KVM_REG_ARM_FW`: the "KVM as firmware" registers.
    Firmware,
    /// 0x0015 `KVM_REG_ARM64_SVE`: Z, P, FFR and the vector-length set.
    Sve,
    /// 0x0016 `KVM_REG_ARM_FW_FEAT_BMAP`: the firmware feature bitmaps.
    FirmwareBitmap,
}

impl RegClass {
    /// The class field value (bits 27:16 of the id).
    pub const fn value(self) -> u16 {
        match self {
            RegClass::Core => 0x0010,
            RegClass::Demux => 0x0011,
            RegClass::SysReg => 0x0013,
            RegClass::Firmware => 0x0014,
            RegClass::Sve => 0x0015,
            RegClass::FirmwareBitmap => 0x0016,
        }
    }

    /// The class's name in reports (`core`, `demux`, `sysreg`, `firmware`, `sve`,
    /// `firmware_bitmap`).
    pub const fn name(self) -> &'static str {
        match self {
            RegClass::Core => "core",
            RegClass::Demux => "demux",
            RegClass::SysReg => "sysreg",
            RegClass::Firmware => "firmware",
            RegClass::Sve => "sve",
            RegClass::FirmwareBitmap => "firmware_bitmap",
        }
    }

    /// The class with this field value.
    pub const fn from_value(value: u16) -> Option<RegClass> {
        Some(match value {
            0x0010 => RegClass::Core,
            0x0011 => RegClass::Demux,
            0x0013 => RegClass::SysReg,
            0x0014 => RegClass::Firmware,
            0x0015 => RegClass::Sve,
            0x0016 => RegClass::FirmwareBitmap,
            _ => return None,
        })
    }
}

/// Where a register's value lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One value for the VM, read and written through any vCPU.
    Vm,
    /// A property of the host: GET reports it, SET only validates and stores nothing.
    Host,
}

impl Scope {
    /// The name used in JSON: `vm` or `host`.
    pub const fn name(self) -> &'static str {
        match self {
            Scope::Vm => "vm",
            Scope::Host => "host",
        }
    }
}

/// When a host lists the register in KVM_GET_REG_LIST.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Visibility {
    /// Every host of a release that has the register lists it (the probe records the list;
    /// a profile that lacks the register describes a kernel without it).
    Listed,
}

/// Where the value of a fresh VM comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DefaultFrom {
    /// The profile's probed `default` (for host-scope registers: the host's own value).
    Probed,
}

/// A release in which the register or its rule changed, and what changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Change {
    /// The first release with the change.
    pub release: Release,
    /// What changed, with the kernel commit or file.
    pub what: &'static str,
}

/// One register, described. See the [module documentation](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RegDesc {
    /// The ONE_REG id.
    pub id: u64,
    /// The name as scenarios, profiles and reports spell it (for firmware registers: without
    /// the `KVM_REG_ARM_` prefix).
    pub name: &'static str,
    /// The class.
    pub class: RegClass,
    /// Where the value lives.
    pub scope: Scope,
    /// When a host lists it.
    pub visibility: Visibility,
    /// Where a fresh VM's value comes from.
    pub default: DefaultFrom,
    /// What SET accepts and what it changes.
    pub rule: SetRule,
    /// The first upstream release with the register.
    pub since: Release,
    /// Later releases that changed the register or its rule.
    pub changes: &'static [Change],
    /// The value that tells the guest exactly what a kernel without the register tells it,
    /// where one exists (VENDOR_HYP_BMAP_2 = 0: KVM_FEATURES word 2 reads 0 before 6.15).
    /// WORKAROUND levels have their own: [`WorkaroundLevel::NotAvail`].
    pub absence: Option<u64>,
    /// What the register means and its rule, in one sentence.
    pub meaning: &'static str,
    /// The kernel source of these facts.
    pub source: &'static str,
}

/// What SET_ONE_REG of a register accepts and what it changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SetRule {
    /// `KVM_REG_ARM_PSCI_VERSION` (`kvm_arm_set_fw_reg()`): 0.1 only on vCPUs without
    /// PSCI_0_2, one of the host's 0.2+ versions only with it, anything else EINVAL; the
    /// value is VM-wide and may change at any time.
    PsciVersion,
    /// A WORKAROUND level (`kvm_arm_set_fw_reg()`): EINVAL for a value that is not a level of
    /// its kind ([`LevelKind::decode`]) or whose level is above the host's; nothing is stored.
    HostLevel(LevelKind),
    /// A feature bitmap (`kvm_arm_set_fw_reg_bmap()`): EINVAL for a bit outside the host's
    /// writable mask; EBUSY for a different value once the VM has run; VM-wide.
    FeatureBitmap,
}

/// What a SET needs to know of the VM and the accessing vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetContext {
    /// The accessing vCPU has `KVM_ARM_VCPU_PSCI_0_2`.
    pub psci_0_2: bool,
    /// A vCPU of the VM has run.
    pub has_run: bool,
    /// The register's current value (bitmaps: the VM's value).
    pub current: u64,
    /// The VM shows no SSBS where the host has it ([`ssbs_hidden`]; changes
    /// SMCCC_ARCH_WORKAROUND_2's level, [`vm_level`]).
    pub ssbs_hidden: bool,
}

/// What a SET that KVM accepts changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetEffect {
    /// The VM's PSCI version becomes this one.
    PsciVersion(PsciVersion),
    /// The VM-wide value becomes this one.
    Store(u64),
    /// Nothing is stored (a host property that SET only validates).
    Nothing,
}

impl SetRule {
    /// KVM's answer to SET_ONE_REG(`value`) of the register `reg` on the host `host`, in the
    /// state `ctx`: what changes, or the errno. The id checks (architecture, class, listed)
    /// come before and are the caller's.
    pub fn set(
        self,
        reg: FwReg,
        host: &Profile,
        ctx: SetContext,
        value: u64,
    ) -> Result<SetEffect, Errno> {
        match self {
            SetRule::PsciVersion => {
                let v = u32::try_from(value).map(PsciVersion);
                match v {
                    Ok(PsciVersion::V0_1) if !ctx.psci_0_2 => {
                        Ok(SetEffect::PsciVersion(PsciVersion::V0_1))
                    }
                    Ok(v) if ctx.psci_0_2 && host.psci_versions().contains(&v) => {
                        Ok(SetEffect::PsciVersion(v))
                    }
                    _ => Err(Errno::EINVAL),
                }
            }
            SetRule::HostLevel(kind) => {
                let host_level = vm_level(reg, host, ctx.ssbs_hidden)
                    .and_then(|l| kind.decode(l))
                    .unwrap_or(WorkaroundLevel::NotAvail);
                match kind.decode(value) {
                    Some(level) if level <= host_level => Ok(SetEffect::Nothing),
                    _ => Err(Errno::EINVAL),
                }
            }
            SetRule::FeatureBitmap => {
                let writable = host.register(reg).and_then(|r| r.writable).unwrap_or(0);
                if value & !writable != 0 {
                    return Err(Errno::EINVAL);
                }
                if ctx.has_run && value != ctx.current {
                    return Err(Errno::EBUSY);
                }
                Ok(SetEffect::Store(value))
            }
        }
    }

    /// Whether GET of a register with this rule can report `value` on some release, for a VM
    /// whose vCPUs have PSCI_0_2 or not: what a saved state may hold.
    pub fn reportable(self, value: u64, psci_0_2: bool) -> bool {
        match self {
            SetRule::PsciVersion => match u32::try_from(value).ok().map(PsciVersion) {
                Some(PsciVersion::V0_1) => !psci_0_2,
                Some(v) => psci_0_2 && v.is_kvm_version(),
                None => false,
            },
            SetRule::HostLevel(kind) => kind.decode(value).is_some(),
            SetRule::FeatureBitmap => true,
        }
    }

    /// Whether a host can report `value` as its own value of a host-scope register (what a
    /// profile's `default` may hold); always true for the other rules.
    pub fn is_host_value(self, value: u64) -> bool {
        match self {
            SetRule::HostLevel(kind) => kind.host_value(value).is_some(),
            _ => true,
        }
    }
}

/// The descriptor of a firmware register.
pub fn firmware(reg: FwReg) -> &'static RegDesc {
    &FIRMWARE[reg.index()]
}

/// The descriptor of the register with this exact id, if armfw knows it.
pub fn lookup(id: u64) -> Option<&'static RegDesc> {
    FwReg::from_id(id).map(firmware)
}

/// Whether `id` is one of QEMU's "cpreg" ids: every id KVM_GET_REG_LIST gives but the core
/// and SVE ones, which QEMU saves apart (`kvm_arm_reg_syncs_via_cpreg_list()`,
/// target/arm/kvm.c). VMMs that follow QEMU's layout write them as one sorted list.
pub fn is_cpreg(id: u64) -> bool {
    !matches!(
        RegClass::from_value(crate::abi::OneRegId(id).class()),
        Some(RegClass::Core | RegClass::Sve)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firmware_rows_are_in_fw_reg_order_with_their_ids_and_names() {
        for reg in FwReg::ALL {
            let d = firmware(reg);
            assert_eq!(d.id, reg.id());
            assert_eq!(d.name, reg.name());
            assert_eq!(d.class.value(), crate::abi::OneRegId(d.id).class());
        }
    }

    #[test]
    fn class_values_round_trip() {
        for c in [
            RegClass::Core,
            RegClass::Demux,
            RegClass::SysReg,
            RegClass::Firmware,
            RegClass::Sve,
            RegClass::FirmwareBitmap,
        ] {
            assert_eq!(RegClass::from_value(c.value()), Some(c));
        }
        assert_eq!(RegClass::from_value(0x0012), None);
    }
}

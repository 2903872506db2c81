//! The save: what a VMM knows besides KVM's answers, and the reads in their order.

use super::{MachineSetup, SaveSource};
use crate::abi::{Errno, OneRegId};
use crate::snapshot::machine::is_vm_wide;
use crate::snapshot::{
    FilterRange, Machine, RegValue, SavedReg, Snapshot, Source, VcpuState, VmState,
};

/// The VM-wide facts a save cannot read through KVM: what the VMM set up and knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaveContext {
    /// Where the state is taken.
    pub source: Source,
    /// Whether the vCPUs have PSCI_0_2.
    pub psci_0_2: bool,
    /// Whether any vCPU has run.
    pub has_run: bool,
    /// Whether KVM_CAP_ARM_SYSTEM_SUSPEND is enabled.
    pub system_suspend: bool,
    /// The SMCCC filter ranges the VMM installed (KVM cannot read them back).
    pub smccc_filter: Vec<FilterRange>,
    /// With this, the save is of the whole VM (every listed register, format 2.0); without
    /// it, of the firmware state alone (format 1.0).
    pub machine: Option<MachineSetup>,
}

/// A failed save: the operation and KVM's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SaveFailure {
    /// What was being read: `KVM_GET_REG_LIST`, `KVM_GET_ONE_REG`, `KVM_GET_MP_STATE` or
    /// `KVM_ARM_VCPU_PVTIME_IPA`.
    pub op: &'static str,
    /// The register, for KVM_GET_ONE_REG.
    pub id: Option<u64>,
    /// The vCPU.
    pub vcpu: usize,
    /// KVM's answer.
    pub errno: Errno,
}

/// Save a VM's firmware state: every firmware register KVM_GET_REG_LIST names, with its value
/// (through vCPU 0: the values are VM-wide), then each vCPU's MP state and stolen-time IPA.
pub fn save_from(source: &impl SaveSource, ctx: SaveContext) -> Result<Snapshot, SaveFailure> {
    let fail = |op, id, vcpu| {
        move |errno| SaveFailure {
            op,
            id,
            vcpu,
            errno,
        }
    };
    let mut registers = Vec::new();
    let list = source
        .reg_list(0)
        .map_err(fail("KVM_GET_REG_LIST", None, 0))?;
    for &id in &list {
        if OneRegId(id).is_firmware_class() {
            let value = source
                .get_one_reg(0, id)
                .map_err(fail("KVM_GET_ONE_REG", Some(id), 0))?;
            registers.push(SavedReg { id, value });
        }
    }
    let machine = match ctx.machine {
        None => None,
        Some(setup) => {
            let get = |vcpu: usize, id: u64| {
                source
                    .get_reg(vcpu, id)
                    .map(|value| RegValue { id, value })
                    .map_err(fail("KVM_GET_ONE_REG", Some(id), vcpu))
            };
            let mut vm_registers = Vec::new();
            for &id in list.iter().filter(|&&id| is_vm_wide(id)) {
                vm_registers.push(get(0, id)?);
            }
            let mut vcpus = Vec::with_capacity(source.vcpu_count());
            for vcpu in 0..source.vcpu_count() {
                let own = list
                    .iter()
                    .filter(|&&id| !is_vm_wide(id) && !OneRegId(id).is_firmware_class());
                let mut regs = Vec::new();
                for &id in own {
                    regs.push(get(vcpu, id)?);
                }
                vcpus.push(regs);
            }
            let sve_vls = match setup.sve_vls {
                Some(v) => Some(v),
                None if setup.features.has(crate::abi::CpuFeature::Sve) => {
                    let id = crate::abi::vcpu_reg::SVE_VLS;
                    Some(get(0, id)?.value)
                }
                None => None,
            };
            Some(Machine {
                features: setup.features,
                sve_vls,
                writable_imp_id_regs: setup.writable_imp_id_regs,
                counter_offset: setup.counter_offset,
                reg_list: list,
                vm_registers,
                vcpus,
            })
        }
    };
    let mut vcpus = Vec::with_capacity(source.vcpu_count());
    for vcpu in 0..source.vcpu_count() {
        vcpus.push(VcpuState {
            mp_state: source
                .mp_state(vcpu)
                .map_err(fail("KVM_GET_MP_STATE", None, vcpu))?,
            pending_start: None,
            pv_time_ipa: source.pv_time_ipa(vcpu).map_err(fail(
                "KVM_ARM_VCPU_PVTIME_IPA",
                None,
                vcpu,
            ))?,
        });
    }
    Ok(Snapshot {
        machine,
        source: ctx.source,
        vm: VmState {
            psci_0_2: ctx.psci_0_2,
            has_run: ctx.has_run,
            system_suspend: ctx.system_suspend,
            smccc_filter: ctx.smccc_filter,
            registers,
        },
        vcpus,
    })
}

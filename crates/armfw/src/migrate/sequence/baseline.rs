//! A pool baseline written into a VM before its first run.

use super::{RegWriter, SaveSource};
use crate::abi::{FwReg, OneRegId};
use crate::compat::{ApplyError, Baseline, CpuRecipe};
use crate::register;
use crate::snapshot::machine::is_vm_wide;

/// Write a pool baseline into a VM before it first runs, in KVM's order: the CPU recipe's
/// registers first (the ID registers, implementation ids, CTR_EL0 and cache geometry the
/// pool's CPU baseline gives, [`crate::compat::CpuBaseline::recipe`]; the VM-wide ones on
/// vCPU 0, the others on every vCPU), then the firmware baseline's PSCI_VERSION (on PSCI_0_2
/// VMs) and bitmaps on every vCPU. A firmware register the host does not list is left out
/// where the baseline's value means its absence (the register table's
/// [`register::RegDesc::absence`]). The recipe's set-up (features, SVE lengths, the
/// implementation-id capability) is the VM's creation, before this. It reads the vCPUs and
/// their register list ([`SaveSource`]) and writes registers ([`RegWriter`]), nothing else: a
/// VM whose vCPUs exist needs no [`RestoreTarget`](super::RestoreTarget) for it.
pub fn apply_baseline<T: SaveSource + RegWriter>(
    vm: &mut T,
    psci_0_2: bool,
    baseline: Option<&Baseline>,
    cpu: Option<&CpuRecipe>,
) -> Result<(), ApplyError> {
    if vm.vcpu_count() == 0 {
        return Err(ApplyError::NoVcpu);
    }
    let listed = vm.reg_list(0).map_err(|_| ApplyError::NoVcpu)?;
    for &(id, value) in cpu.map_or(&[][..], |c| &c.writes) {
        let size = OneRegId(id).size_bytes().min(8);
        let bytes = value.to_le_bytes();
        let vcpus = if is_vm_wide(id) { 1 } else { vm.vcpu_count() };
        for vcpu in 0..vcpus {
            vm.set_reg(vcpu, id, &bytes[..size])
                .map_err(|errno| ApplyError::CpuRegister { id, value, errno })?;
        }
    }
    for (reg, value) in baseline.into_iter().flat_map(Baseline::registers) {
        if reg == FwReg::PsciVersion && !psci_0_2 {
            continue;
        }
        if !listed.contains(&reg.id()) {
            if register::firmware(reg).absence == Some(value) {
                continue;
            }
            return Err(ApplyError::MissingRegister(reg));
        }
        for vcpu in 0..vm.vcpu_count() {
            vm.set_one_reg(vcpu, reg.id(), value)
                .map_err(|errno| ApplyError::Register { reg, value, errno })?;
        }
    }
    Ok(())
}

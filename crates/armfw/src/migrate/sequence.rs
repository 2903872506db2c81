//! The one save and restore sequence, over a small trait pair: what a save reads of a VM
//! ([`SaveSource`]) and what a restore writes into one ([`RestoreTarget`]).
//!
//! Both the model ([`crate::Firmware`]) and real vCPUs (`armfw_kvm::migrate`) implement the
//! pair, and [`save_from`], [`restore_into`] and [`apply_baseline`] are the only code that
//! orders the operations. So a real restore makes exactly the operations the model makes, in
//! the same order, and its first refused operation is the one [`crate::compat::check`]
//! predicts: the prediction, the model and real KVM cannot drift apart.
//!
//! The order is KVM's (Linux `Documentation/virt/kvm/api.rst`): VM capabilities before the
//! vCPUs exist, KVM_ARM_VCPU_INIT, the SMCCC filter and every register (the bitmaps among
//! them) before the first KVM_RUN, then the stolen-time IPAs and MP states, and last the
//! CPU_ON starts that were pending.

use crate::abi::{Errno, FwReg, OneRegId};
use crate::compat::{ApplyError, Baseline, PlanAction, Report};
use crate::firmware::MpState;
use crate::register;
use crate::snapshot::{
    FilterRange, PendingStart, SavedReg, Snapshot, Source, Step, VcpuState, VmState,
};

/// What a save reads of a VM, through KVM's vCPU interface.
pub trait SaveSource {
    /// How many vCPUs the VM has.
    fn vcpu_count(&self) -> usize;
    /// KVM_GET_REG_LIST of a vCPU.
    fn reg_list(&self, vcpu: usize) -> Result<Vec<u64>, Errno>;
    /// KVM_GET_ONE_REG of a 64-bit register.
    fn get_one_reg(&self, vcpu: usize, id: u64) -> Result<u64, Errno>;
    /// KVM_GET_MP_STATE.
    fn mp_state(&self, vcpu: usize) -> Result<MpState, Errno>;
    /// KVM_GET_DEVICE_ATTR(KVM_ARM_VCPU_PVTIME_IPA): the stolen-time IPA, if set.
    fn pv_time_ipa(&self, vcpu: usize) -> Result<Option<u64>, Errno>;
}

/// What a restore writes into a VM, through KVM's interface. Each method is one KVM
/// operation (or, for [`RestoreTarget::create_vcpus`], the creation of every vCPU).
pub trait RestoreTarget {
    /// KVM_ENABLE_CAP(KVM_CAP_ARM_SYSTEM_SUSPEND) on the VM, before the vCPUs exist.
    fn enable_system_suspend(&mut self) -> Result<(), Errno>;
    /// Create `count` vCPUs and KVM_ARM_VCPU_INIT each with PSCI_0_2 as given (a target whose
    /// vCPUs already exist checks them instead). The error names the vCPU.
    fn create_vcpus(&mut self, count: usize, psci_0_2: bool) -> Result<(), (usize, Errno)>;
    /// KVM_SET_DEVICE_ATTR(KVM_ARM_VM_SMCCC_FILTER) of one range.
    fn set_smccc_filter(&mut self, range: &FilterRange) -> Result<(), Errno>;
    /// KVM_SET_ONE_REG of a 64-bit register.
    fn set_one_reg(&mut self, vcpu: usize, id: u64, value: u64) -> Result<(), Errno>;
    /// KVM_SET_DEVICE_ATTR(KVM_ARM_VCPU_PVTIME_IPA).
    fn set_pv_time_ipa(&mut self, vcpu: usize, ipa: u64) -> Result<(), Errno>;
    /// KVM_SET_MP_STATE.
    fn set_mp_state(&mut self, vcpu: usize, state: MpState) -> Result<(), Errno>;
    /// Apply a CPU_ON start that was pending at save time (the model hands it to the VMM;
    /// a real VMM resets the vCPU to the entry point).
    fn start_vcpu(&mut self, vcpu: usize, start: PendingStart) -> Result<(), Errno>;
}

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
    for id in source
        .reg_list(0)
        .map_err(fail("KVM_GET_REG_LIST", None, 0))?
    {
        if OneRegId(id).is_firmware_class() {
            let value = source
                .get_one_reg(0, id)
                .map_err(fail("KVM_GET_ONE_REG", Some(id), 0))?;
            registers.push(SavedReg { id, value });
        }
    }
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

/// Restore `snapshot` into `target` in KVM's order: the capability, the vCPUs, the SMCCC
/// filter ranges, every vCPU's registers — every saved register in saved order (`plan` =
/// `None`, the strict policy of today's VMMs) or the writes of armfw's plan (`Some(report)`,
/// whose verdict the caller has checked) — then each vCPU's stolen-time IPA, MP state and
/// pending start. The first refused operation ends it.
pub fn restore_into(
    target: &mut impl RestoreTarget,
    snapshot: &Snapshot,
    plan: Option<&Report>,
) -> Result<(), (Step, Errno)> {
    let vm = &snapshot.vm;
    if vm.system_suspend {
        target
            .enable_system_suspend()
            .map_err(|e| (Step::EnableSystemSuspend, e))?;
    }
    target
        .create_vcpus(snapshot.vcpus.len(), vm.psci_0_2)
        .map_err(|(vcpu, e)| (Step::InitVcpu { vcpu }, e))?;
    for (range, r) in vm.smccc_filter.iter().enumerate() {
        target
            .set_smccc_filter(r)
            .map_err(|e| (Step::SetSmcccFilter { range }, e))?;
    }
    for vcpu in 0..snapshot.vcpus.len() {
        let mut write = |id, value| {
            target
                .set_one_reg(vcpu, id, value)
                .map_err(|e| (Step::SetOneReg { vcpu, id }, e))
        };
        match plan {
            None => {
                for r in &vm.registers {
                    write(r.id, r.value)?;
                }
            }
            Some(report) => {
                for action in report.plan() {
                    if let PlanAction::Write { id, value } = *action {
                        write(id, value)?;
                    }
                }
            }
        }
    }
    for (vcpu, v) in snapshot.vcpus.iter().enumerate() {
        if let Some(ipa) = v.pv_time_ipa {
            target
                .set_pv_time_ipa(vcpu, ipa)
                .map_err(|e| (Step::SetPvTimeIpa { vcpu }, e))?;
        }
        target
            .set_mp_state(vcpu, v.mp_state)
            .map_err(|e| (Step::SetMpState { vcpu }, e))?;
        if let Some(p) = v.pending_start {
            target
                .start_vcpu(vcpu, p)
                .map_err(|e| (Step::StartVcpu { vcpu }, e))?;
        }
    }
    Ok(())
}

/// Write `baseline`'s registers on every vCPU of a VM before it first runs: PSCI_VERSION (on
/// PSCI_0_2 VMs) and the bitmaps, in KVM's order. A register the host does not list is left
/// out where the baseline's value means its absence (the register table's
/// [`register::RegDesc::absence`]).
pub fn apply_baseline<T: SaveSource + RestoreTarget>(
    vm: &mut T,
    psci_0_2: bool,
    baseline: &Baseline,
) -> Result<(), ApplyError> {
    if vm.vcpu_count() == 0 {
        return Err(ApplyError::NoVcpu);
    }
    let listed = vm.reg_list(0).map_err(|_| ApplyError::NoVcpu)?;
    for (reg, value) in baseline.registers() {
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

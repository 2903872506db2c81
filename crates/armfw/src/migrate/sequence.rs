//! The one save and restore sequence, over three small traits: what a save reads of a VM
//! ([`SaveSource`]), the register writes into its vCPUs ([`RegWriter`], all that a baseline
//! makes), and what a restore does besides them ([`RestoreTarget`], a [`RegWriter`] that also
//! enables the capabilities, creates the vCPUs and sets the VM up).
//!
//! Both the model ([`crate::Firmware`]) and real vCPUs (`armfw_kvm::migrate`) implement the
//! traits, and [`save_from`], [`restore_into`] and [`apply_baseline`] are the only code that
//! orders the operations. So a real restore makes exactly the operations the model makes, in
//! the same order, and its first refused operation is the one [`crate::compat::check`]
//! predicts: the prediction, the model and real KVM cannot drift apart.
//!
//! The order is KVM's (Linux `Documentation/virt/kvm/api.rst`): VM capabilities before the
//! vCPUs exist, KVM_ARM_VCPU_INIT, the SMCCC filter and every register (the bitmaps among
//! them) before the first KVM_RUN, then the stolen-time IPAs and MP states, and last the
//! CPU_ON starts that were pending.

use crate::abi::{CpuFeatures, Errno};
use crate::firmware::MpState;
use crate::snapshot::{FilterRange, PendingStart};

mod baseline;
mod restore;
mod save;

pub use baseline::apply_baseline;
pub use restore::{QemuIdSet, Refusal, RestoreStop, VmmPolicy, Writes, restore_into, restore_with};
pub use save::{SaveContext, SaveFailure, save_from};

/// What a save reads of a VM, through KVM's vCPU interface.
pub trait SaveSource {
    /// How many vCPUs the VM has.
    fn vcpu_count(&self) -> usize;
    /// KVM_GET_REG_LIST of a vCPU.
    fn reg_list(&self, vcpu: usize) -> Result<Vec<u64>, Errno>;
    /// KVM_GET_ONE_REG of a 64-bit register.
    fn get_one_reg(&self, vcpu: usize, id: u64) -> Result<u64, Errno>;
    /// KVM_GET_ONE_REG of a register of any size: the buffer.
    fn get_reg(&self, vcpu: usize, id: u64) -> Result<Vec<u8>, Errno>;
    /// KVM_GET_MP_STATE.
    fn mp_state(&self, vcpu: usize) -> Result<MpState, Errno>;
    /// KVM_GET_DEVICE_ATTR(KVM_ARM_VCPU_PVTIME_IPA): the stolen-time IPA, if set.
    fn pv_time_ipa(&self, vcpu: usize) -> Result<Option<u64>, Errno>;
}

/// The register writes into a VM's vCPUs, through KVM's interface: what a baseline writes
/// ([`apply_baseline`]) and the register phase of a restore. Each method is one
/// KVM_SET_ONE_REG.
pub trait RegWriter {
    /// KVM_SET_ONE_REG of a register of any size from `data` (the id's size).
    fn set_reg(&mut self, vcpu: usize, id: u64, data: &[u8]) -> Result<(), Errno>;
    /// KVM_SET_ONE_REG of a 64-bit register.
    fn set_one_reg(&mut self, vcpu: usize, id: u64, value: u64) -> Result<(), Errno>;
}

/// What a restore does to a VM besides the register writes ([`RegWriter`]), through KVM's
/// interface: the capabilities, the vCPUs, the counter offset, the SMCCC filter, then the
/// stolen-time IPAs, MP states and pending starts. Each method is one KVM operation (or, for
/// [`RestoreTarget::create_vcpus`], the creation of every vCPU).
pub trait RestoreTarget: RegWriter {
    /// KVM_ENABLE_CAP(KVM_CAP_ARM_SYSTEM_SUSPEND) on the VM, before the vCPUs exist.
    fn enable_system_suspend(&mut self) -> Result<(), Errno>;
    /// KVM_ENABLE_CAP(KVM_CAP_ARM_WRITABLE_IMP_ID_REGS) on the VM, before the vCPUs exist.
    fn enable_writable_imp_id_regs(&mut self) -> Result<(), Errno>;
    /// Create `count` vCPUs and set each up as `init` says: KVM_ARM_VCPU_INIT with PSCI_0_2
    /// and the features, then with SVE the SVE_VLS write and KVM_ARM_VCPU_FINALIZE, with the
    /// PMU its initialisation (a target whose vCPUs already exist checks them instead). The
    /// error names the vCPU.
    fn create_vcpus(&mut self, count: usize, init: &VcpuInit) -> Result<(), (usize, Errno)>;
    /// KVM_ARM_SET_COUNTER_OFFSET on the VM.
    fn set_counter_offset(&mut self, offset: u64) -> Result<(), Errno>;
    /// KVM_GET_REG_LIST of a vCPU of the target (what QEMU compares the incoming ids with).
    fn listed_ids(&self, vcpu: usize) -> Result<Vec<u64>, Errno>;
    /// KVM_SET_DEVICE_ATTR(KVM_ARM_VM_SMCCC_FILTER) of one range.
    fn set_smccc_filter(&mut self, range: &FilterRange) -> Result<(), Errno>;
    /// KVM_SET_DEVICE_ATTR(KVM_ARM_VCPU_PVTIME_IPA).
    fn set_pv_time_ipa(&mut self, vcpu: usize, ipa: u64) -> Result<(), Errno>;
    /// KVM_SET_MP_STATE.
    fn set_mp_state(&mut self, vcpu: usize, state: MpState) -> Result<(), Errno>;
    /// Apply a CPU_ON start that was pending at save time (the model hands it to the VMM;
    /// a real VMM resets the vCPU to the entry point).
    fn start_vcpu(&mut self, vcpu: usize, start: PendingStart) -> Result<(), Errno>;
}

/// How the vCPUs of a restored VM are set up before any register is written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VcpuInit {
    /// KVM_ARM_VCPU_PSCI_0_2.
    pub psci_0_2: bool,
    /// The other vCPU features.
    pub features: CpuFeatures,
    /// With SVE, the SVE_VLS value written before finalizing (none: the host's default).
    pub sve_vls: Option<Vec<u8>>,
}

/// What a whole-VM save needs besides KVM's answers: how the VMM created the VM.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MachineSetup {
    /// The vCPU features of every vCPU.
    pub features: CpuFeatures,
    /// With SVE, the SVE_VLS value in force (it is read back from vCPU 0 when `None`).
    pub sve_vls: Option<Vec<u8>>,
    /// KVM_CAP_ARM_WRITABLE_IMP_ID_REGS was enabled.
    pub writable_imp_id_regs: bool,
    /// The value given to KVM_ARM_SET_COUNTER_OFFSET, if the VMM used it.
    pub counter_offset: Option<u64>,
}

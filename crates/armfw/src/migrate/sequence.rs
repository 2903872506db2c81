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

use crate::abi::{CpuFeatures, Errno, FwReg, OneRegId};
use crate::compat::{ApplyError, Baseline, CpuRecipe, PlanAction, Report};
use crate::firmware::MpState;
use crate::register::{self, is_cpreg};
use crate::snapshot::machine::is_vm_wide;
use crate::snapshot::{
    FilterRange, Machine, PendingStart, RegValue, SavedReg, Snapshot, Source, Step, VcpuState,
    VmState,
};

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

/// How a VMM writes a whole-VM state back, as today's VMMs do. armfw's own plan is
/// [`Writes::Plan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VmmPolicy {
    /// Firecracker, Cloud Hypervisor: every saved register in the saved list order on each
    /// vCPU; the first write KVM refuses ends the restore.
    FirstRefusal,
    /// Every saved register in the saved list order on each vCPU, every refusal reported;
    /// the restore fails if any write was refused.
    WriteAll,
    /// QEMU: the core and SVE registers travel apart; the other ids of each vCPU (its
    /// "cpreg" list, sorted) must be no more than the destination lists and each one listed
    /// there, else the load fails before any write; then the core and SVE registers are
    /// written, then the others in ascending id order, every refusal reported.
    Qemu,
}

impl VmmPolicy {
    /// Every policy, in the order reports show them.
    pub const ALL: [VmmPolicy; 3] = [
        VmmPolicy::FirstRefusal,
        VmmPolicy::WriteAll,
        VmmPolicy::Qemu,
    ];

    /// The name in reports and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            VmmPolicy::FirstRefusal => "first-refusal",
            VmmPolicy::WriteAll => "write-all",
            VmmPolicy::Qemu => "qemu",
        }
    }

    /// Who restores this way.
    pub const fn who(self) -> &'static str {
        match self {
            VmmPolicy::FirstRefusal => "Firecracker, Cloud Hypervisor",
            VmmPolicy::WriteAll => "a VMM that writes every register and reports each refusal",
            VmmPolicy::Qemu => {
                "QEMU's cpreg list rules, simplified (armfw check --policy qemu-X models each release)"
            }
        }
    }
}

/// Which registers a restore writes, in which order.
#[derive(Clone, Copy, Debug)]
pub enum Writes<'a> {
    /// As a VMM does it.
    Vmm(VmmPolicy),
    /// armfw's plan: the firmware registers as [`crate::compat::check`]'s plan says (the
    /// caller has checked its verdict); the other registers of a whole-VM state in list
    /// order, the VM-wide ones first, leaving out `skip` (the ids the guest cannot observe
    /// that the destination does not list, [`crate::compat::whole::plan`]); the first
    /// refused write ends it.
    Plan {
        /// The firmware check's report.
        report: &'a Report,
        /// Registers left out.
        skip: &'a [u64],
        /// Enable KVM_CAP_ARM_WRITABLE_IMP_ID_REGS before the vCPUs exist (a 6.15+
        /// destination), so that the saved MIDR_EL1, REVIDR_EL1 and AIDR_EL1 can be written.
        imp_ids: bool,
        /// Write every register and report every refusal (what the plan is made from)
        /// instead of stopping at the first.
        all: bool,
    },
}

impl<'a> Writes<'a> {
    /// The writes of a firmware-state restore: armfw's firmware plan (`Some(report)`), or
    /// every saved register as [`VmmPolicy::FirstRefusal`] writes it (`None`).
    pub fn firmware(plan: Option<&'a Report>) -> Writes<'a> {
        plan.map_or(Writes::Vmm(VmmPolicy::FirstRefusal), |report| {
            Writes::Plan {
                report,
                skip: &[],
                imp_ids: false,
                all: false,
            }
        })
    }
}

/// One refused operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Refusal {
    /// The operation.
    pub step: Step,
    /// KVM's answer.
    pub errno: Errno,
}

/// Why QEMU refuses an incoming vCPU before writing anything (`cpu_post_load()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QemuIdSet {
    /// More incoming cpreg ids than the destination lists ("Failed to load
    /// cpu:cpreg_vmstate_array_len").
    TooMany {
        /// The vCPU.
        vcpu: usize,
        /// Incoming ids.
        incoming: usize,
        /// Ids the destination lists.
        destination: usize,
    },
    /// An incoming id the destination does not list (the first, in ascending order).
    Missing {
        /// The vCPU.
        vcpu: usize,
        /// The id.
        id: u64,
    },
}

/// Why a restore stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreStop {
    /// KVM refused operations: the first one (set-up steps and [`VmmPolicy::FirstRefusal`]),
    /// or every refused register write of the register phase ([`VmmPolicy::WriteAll`],
    /// [`VmmPolicy::Qemu`]), in order.
    Refused(Vec<Refusal>),
    /// QEMU's id-set rule refused a vCPU before any register write.
    QemuIdSet(QemuIdSet),
}

impl RestoreStop {
    /// The first refused operation, if KVM refused one.
    pub fn first(&self) -> Option<Refusal> {
        match self {
            RestoreStop::Refused(list) => list.first().copied(),
            RestoreStop::QemuIdSet(_) => None,
        }
    }
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

/// Restore `snapshot` into `target` in KVM's order ([`restore_with`]): every saved register
/// in saved order (`plan` = `None`, [`VmmPolicy::FirstRefusal`], the strict policy of today's
/// VMMs) or the writes of armfw's plan (`Some(report)`, whose verdict the caller has checked).
/// The first refused operation ends it.
pub fn restore_into(
    target: &mut impl RestoreTarget,
    snapshot: &Snapshot,
    plan: Option<&Report>,
) -> Result<(), (Step, Errno)> {
    let writes = Writes::firmware(plan);
    restore_with(target, snapshot, writes).map_err(|stop| match stop.first() {
        Some(r) => (r.step, r.errno),
        // Only the QEMU policy stops on the id set, and it is not asked for here.
        None => (Step::InitVcpu { vcpu: 0 }, Errno::EINVAL),
    })
}

/// Restore `snapshot` into `target` in the order KVM requires: the capabilities (system
/// suspend; with the whole-vCPU part, writable implementation ids), the vCPUs (INIT with the
/// saved features, SVE_VLS, finalize, PMU), the counter offset, the SMCCC filter ranges,
/// every vCPU's registers as `writes` says, then each vCPU's stolen-time IPA, MP state and
/// pending start. A set-up step KVM refuses ends it; so does the register phase if any write
/// was refused (after the first one under [`VmmPolicy::FirstRefusal`] and the plan, after
/// all of them under the others).
pub fn restore_with(
    target: &mut impl RestoreTarget,
    snapshot: &Snapshot,
    writes: Writes<'_>,
) -> Result<(), RestoreStop> {
    let one = |step: Step| move |errno| RestoreStop::Refused(vec![Refusal { step, errno }]);
    let vm = &snapshot.vm;
    let machine = snapshot.machine.as_ref();
    if vm.system_suspend {
        target
            .enable_system_suspend()
            .map_err(one(Step::EnableSystemSuspend))?;
    }
    // A VMM enables the capability again where the source VM had it; armfw's plan where the
    // destination has it (without it, the saved ids restore only where they are the host's).
    let imp_ids = match writes {
        Writes::Plan { imp_ids, .. } => imp_ids,
        Writes::Vmm(_) => machine.is_some_and(|m| m.writable_imp_id_regs),
    };
    if imp_ids {
        target
            .enable_writable_imp_id_regs()
            .map_err(one(Step::EnableWritableImpIdRegs))?;
    }
    let init = VcpuInit {
        psci_0_2: vm.psci_0_2,
        features: machine.map_or(CpuFeatures::NONE, |m| m.features),
        sve_vls: machine.and_then(|m| m.sve_vls.clone()),
    };
    target
        .create_vcpus(snapshot.vcpus.len(), &init)
        .map_err(|(vcpu, errno)| one(Step::InitVcpu { vcpu })(errno))?;
    if let Some(offset) = machine.and_then(|m| m.counter_offset) {
        target
            .set_counter_offset(offset)
            .map_err(one(Step::SetCounterOffset))?;
    }
    for (range, r) in vm.smccc_filter.iter().enumerate() {
        target
            .set_smccc_filter(r)
            .map_err(one(Step::SetSmcccFilter { range }))?;
    }
    write_registers(target, snapshot, writes)?;
    for (vcpu, v) in snapshot.vcpus.iter().enumerate() {
        if let Some(ipa) = v.pv_time_ipa {
            target
                .set_pv_time_ipa(vcpu, ipa)
                .map_err(one(Step::SetPvTimeIpa { vcpu }))?;
        }
        target
            .set_mp_state(vcpu, v.mp_state)
            .map_err(one(Step::SetMpState { vcpu }))?;
        if let Some(p) = v.pending_start {
            target
                .start_vcpu(vcpu, p)
                .map_err(one(Step::StartVcpu { vcpu }))?;
        }
    }
    Ok(())
}

/// Where the saved value of each register-list position is.
#[derive(Clone, Copy)]
enum Src {
    /// `vm.registers[i]`.
    Firmware(usize),
    /// `machine.vm_registers[i]`.
    VmWide(usize),
    /// `machine.vcpus[vcpu][i]`.
    Own(usize),
}

/// One write of the register phase.
#[derive(Clone, Copy)]
enum Write {
    /// The saved value of register-list position `i`.
    Saved(usize),
    /// A firmware register with the plan's value.
    Planned { id: u64, value: u64 },
}

/// The saved-value location of every position of `list` (the snapshot's register list): a
/// validated snapshot holds the VM-wide and each vCPU's registers in list order.
fn sources(snapshot: &Snapshot, list: &[u64]) -> Vec<Src> {
    let (mut fw, mut wide, mut own) = (0, 0, 0);
    list.iter()
        .map(|&id| {
            let next = |n: &mut usize| {
                *n += 1;
                *n - 1
            };
            if OneRegId(id).is_firmware_class() {
                let i = snapshot
                    .vm
                    .registers
                    .iter()
                    .position(|r| r.id == id)
                    .unwrap_or_else(|| next(&mut fw));
                Src::Firmware(i)
            } else if is_vm_wide(id) {
                Src::VmWide(next(&mut wide))
            } else {
                Src::Own(next(&mut own))
            }
        })
        .collect()
}

/// The register phase of [`restore_with`].
fn write_registers(
    target: &mut impl RestoreTarget,
    snapshot: &Snapshot,
    writes: Writes<'_>,
) -> Result<(), RestoreStop> {
    let firmware_ids: Vec<u64> = snapshot.vm.registers.iter().map(|r| r.id).collect();
    let machine = snapshot.machine.as_ref();
    let list: &[u64] = machine.map_or(&firmware_ids, |m| &m.reg_list);
    let src = sources(snapshot, list);
    // The positions in the order the policy writes them (the same on every vCPU).
    let positions = 0..list.len();
    let order: Vec<Write> = match writes {
        Writes::Vmm(VmmPolicy::FirstRefusal | VmmPolicy::WriteAll) => {
            positions.map(Write::Saved).collect()
        }
        Writes::Vmm(VmmPolicy::Qemu) => {
            let mut cpregs: Vec<usize> = positions.clone().filter(|&i| is_cpreg(list[i])).collect();
            cpregs.sort_unstable_by_key(|&i| list[i]);
            positions
                .filter(|&i| !is_cpreg(list[i]))
                .chain(cpregs)
                .map(Write::Saved)
                .collect()
        }
        Writes::Plan { report, skip, .. } => {
            let kept = |i: &usize| !skip.contains(&list[*i]);
            let wide = positions
                .clone()
                .filter(|&i| is_vm_wide(list[i]))
                .filter(kept);
            let plan = report.plan().filter_map(|a| match *a {
                PlanAction::Write { id, value } => Some(Write::Planned { id, value }),
                _ => None,
            });
            let rest = positions
                .filter(|&i| !is_vm_wide(list[i]) && !OneRegId(list[i]).is_firmware_class())
                .filter(kept);
            wide.map(Write::Saved)
                .chain(plan)
                .chain(rest.map(Write::Saved))
                .collect()
        }
    };
    let stop_at_first = matches!(
        writes,
        Writes::Plan { all: false, .. } | Writes::Vmm(VmmPolicy::FirstRefusal)
    );
    if matches!(writes, Writes::Vmm(VmmPolicy::Qemu)) {
        // QEMU loads every vCPU's section before it writes any register.
        for vcpu in 0..snapshot.vcpus.len() {
            qemu_id_set(target, vcpu, list)?;
        }
    }
    let mut refused = Vec::new();
    for vcpu in 0..snapshot.vcpus.len() {
        for &w in &order {
            let (id, result) = match w {
                Write::Planned { id, value } => (id, target.set_one_reg(vcpu, id, value)),
                Write::Saved(i) => {
                    let id = list[i];
                    // SVE_VLS is written at the vCPUs' set-up, before finalizing, as Cloud
                    // Hypervisor and QEMU do (after it KVM answers EPERM).
                    if id == crate::abi::vcpu_reg::SVE_VLS {
                        continue;
                    }
                    let result = match (src[i], machine) {
                        (Src::Firmware(k), _) => match snapshot.vm.registers.get(k) {
                            Some(r) => target.set_one_reg(vcpu, id, r.value),
                            None => continue,
                        },
                        (Src::VmWide(k), Some(m)) => match m.vm_registers.get(k) {
                            Some(r) => target.set_reg(vcpu, id, &r.value),
                            None => continue,
                        },
                        (Src::Own(k), Some(m)) => {
                            match m.vcpus.get(vcpu).and_then(|regs| regs.get(k)) {
                                Some(r) => target.set_reg(vcpu, id, &r.value),
                                None => continue,
                            }
                        }
                        (_, None) => continue,
                    };
                    (id, result)
                }
            };
            if let Err(errno) = result {
                refused.push(Refusal {
                    step: Step::SetOneReg { vcpu, id },
                    errno,
                });
                if stop_at_first {
                    return Err(RestoreStop::Refused(refused));
                }
            }
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(RestoreStop::Refused(refused))
    }
}

/// QEMU's `cpu_post_load()` rule for `vcpu`: the incoming cpreg ids must be no more than the
/// destination lists, and each of them listed there.
fn qemu_id_set(target: &impl RestoreTarget, vcpu: usize, list: &[u64]) -> Result<(), RestoreStop> {
    let mut incoming: Vec<u64> = list.iter().copied().filter(|&id| is_cpreg(id)).collect();
    incoming.sort_unstable();
    let dest = target.listed_ids(vcpu).map_err(|errno| {
        RestoreStop::Refused(vec![Refusal {
            step: Step::InitVcpu { vcpu },
            errno,
        }])
    })?;
    let mut dest: Vec<u64> = dest.into_iter().filter(|&id| is_cpreg(id)).collect();
    dest.sort_unstable();
    if incoming.len() > dest.len() {
        return Err(RestoreStop::QemuIdSet(QemuIdSet::TooMany {
            vcpu,
            incoming: incoming.len(),
            destination: dest.len(),
        }));
    }
    if let Some(&id) = incoming.iter().find(|id| dest.binary_search(id).is_err()) {
        return Err(RestoreStop::QemuIdSet(QemuIdSet::Missing { vcpu, id }));
    }
    Ok(())
}

/// Write a pool baseline into a VM before it first runs, in KVM's order: the CPU recipe's
/// registers first (the ID registers, implementation ids, CTR_EL0 and cache geometry the
/// pool's CPU baseline gives, [`crate::compat::CpuBaseline::recipe`]; the VM-wide ones on
/// vCPU 0, the others on every vCPU), then the firmware baseline's PSCI_VERSION (on PSCI_0_2
/// VMs) and bitmaps on every vCPU. A firmware register the host does not list is left out
/// where the baseline's value means its absence (the register table's
/// [`register::RegDesc::absence`]). The recipe's set-up (features, SVE lengths, the
/// implementation-id capability) is the VM's creation, before this. It reads the vCPUs and
/// their register list ([`SaveSource`]) and writes registers ([`RegWriter`]), nothing else: a
/// VM whose vCPUs exist needs no [`RestoreTarget`] for it.
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

//! The restore: KVM's order of the set-up steps and the register phase, as a VMM's policy
//! or armfw's plan writes it, and why a restore stops.

use super::{RestoreTarget, VcpuInit};
use crate::abi::{CpuFeatures, Errno, OneRegId};
use crate::compat::{PlanAction, Report};
use crate::register::is_cpreg;
use crate::snapshot::machine::is_vm_wide;
use crate::snapshot::{Snapshot, Step};

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

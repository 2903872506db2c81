//! Firmware state on real vCPUs: save a VM's firmware state as an [`armfw::snapshot`]
//! [`Snapshot`], restore one into a new VM (under the strict policy of today's VMMs or under
//! armfw's plan), apply a pool baseline at VM creation, and read what the guest sees of its
//! firmware.
//!
//! A restore goes into a VM it creates, in the order of the model's
//! [`armfw::Firmware::restore`] (vCPUs, SMCCC filter ranges, every vCPU's registers, MP
//! states, pending CPU_ON starts), so that its first failing operation is the one
//! [`armfw::compat::check`] predicts. On failure that VM is dropped: nothing else changed.

use armfw::abi::{Errno as AbiErrno, FwReg, OneRegId};
use armfw::compat::{Baseline, PlanAction, Report};
use armfw::firmware::{Conduit, MpState};
use armfw::snapshot::{FilterRange, Snapshot, Source, Step, VcpuState, VmState};

use crate::error::sys;
use crate::{CallExit, Error, TestVm, VmSpec, filter_action_value};

/// How a restore on real KVM ended, when it did not succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreFailure {
    /// KVM refused an operation: the restore stops there.
    Refused {
        /// The operation.
        step: Step,
        /// KVM's errno.
        errno: AbiErrno,
    },
    /// armfw's plan refuses the move before touching KVM (the guest has seen what the
    /// destination cannot give).
    PlanRefuses(String),
    /// Something other than the restore itself failed (creating the VM, reading state).
    Other(String),
}

impl std::fmt::Display for RestoreFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestoreFailure::Refused { step, errno } => write!(f, "{step}: {errno}"),
            RestoreFailure::PlanRefuses(why) => write!(f, "armfw refuses: {why}"),
            RestoreFailure::Other(why) => f.write_str(why),
        }
    }
}

/// The firmware state of `vm` (which `spec` created), as a VMM saves it: every firmware
/// register of KVM_GET_REG_LIST with its value (through vCPU 0: the values are VM-wide), and
/// each vCPU's MP state and stolen-time IPA. KVM cannot read SMCCC filter ranges back: the
/// VMM passes the ranges it installed as `smccc_filter`. `source` names the host.
pub fn save(
    vm: &TestVm,
    spec: &VmSpec,
    source: Source,
    has_run: bool,
    smccc_filter: Vec<FilterRange>,
) -> Result<Snapshot, Error> {
    let mut registers = Vec::new();
    for id in vm.reg_list(0).map_err(sys("KVM_GET_REG_LIST"))? {
        if OneRegId(id).is_firmware_class() {
            let value = vm.get_u64(0, id).map_err(sys("KVM_GET_ONE_REG"))?;
            registers.push(armfw::snapshot::SavedReg { id, value });
        }
    }
    let mut vcpus = Vec::new();
    for v in 0..vm.vcpu_count() {
        let raw = vm.mp_state(v).map_err(sys("KVM_GET_MP_STATE"))?;
        let mp_state = MpState::from_kvm_value(raw).ok_or(Error::UnknownMpState {
            vcpu: v,
            state: raw,
        })?;
        let pv_time_ipa = vm
            .pv_time_ipa(v)
            .map_err(sys("KVM_GET_DEVICE_ATTR(KVM_ARM_VCPU_PVTIME_IPA)"))?;
        vcpus.push(VcpuState {
            mp_state,
            pending_start: None,
            pv_time_ipa,
        });
    }
    Ok(Snapshot {
        source,
        vm: VmState {
            psci_0_2: spec.psci_0_2,
            has_run,
            system_suspend: spec.system_suspend,
            smccc_filter,
            registers,
        },
        vcpus,
    })
}

/// Writes `baseline`'s registers on every vCPU of `vm`, before it first runs: PSCI_VERSION
/// (on PSCI_0_2 VMs) and the bitmaps. A register the host lacks is left out when the
/// baseline's value means its absence (0 for a bitmap), as [`Baseline::apply`] does.
pub fn apply_baseline(vm: &TestVm, spec: &VmSpec, baseline: &Baseline) -> Result<(), Error> {
    let present = vm.reg_list(0).map_err(sys("KVM_GET_REG_LIST"))?;
    for (reg, value) in baseline.registers() {
        if reg == FwReg::PsciVersion && !spec.psci_0_2 {
            continue;
        }
        if !present.contains(&reg.id()) {
            if reg.is_bitmap() && value == 0 {
                continue;
            }
            return Err(Error::MissingRegister(reg));
        }
        for v in 0..vm.vcpu_count() {
            vm.set_one_reg(v, reg.id(), &value.to_le_bytes())
                .map_err(sys("KVM_SET_ONE_REG (baseline)"))?;
        }
    }
    Ok(())
}

/// Restores `snapshot` into a new VM: every saved register on every vCPU in saved order
/// (`plan` = `None`, the strict policy of today's VMMs), or armfw's plan (`Some(report)`,
/// from [`armfw::compat::check`] against this host). Returns the VM, ready to run.
pub fn restore(snapshot: &Snapshot, plan: Option<&Report>) -> Result<TestVm, RestoreFailure> {
    if let Some(report) = plan {
        if let Some(f) = report.findings().find(|f| f.is_refused()) {
            return Err(RestoreFailure::PlanRefuses(format!(
                "{} ({})",
                f.subject,
                f.rule.name()
            )));
        }
    }
    let n = snapshot.vcpus.len();
    let spec = VmSpec {
        vcpus: n,
        psci_0_2: snapshot.vm.psci_0_2,
        power_off: Vec::new(),
        system_suspend: snapshot.vm.system_suspend,
    };
    let vm = TestVm::new(&spec).map_err(|e| match e.errno() {
        Some(errno) if snapshot.vm.system_suspend => RestoreFailure::Refused {
            step: Step::EnableSystemSuspend,
            errno,
        },
        _ => RestoreFailure::Other(e.to_string()),
    })?;
    let refused = |step| move |errno: AbiErrno| RestoreFailure::Refused { step, errno };
    for (range, r) in snapshot.vm.smccc_filter.iter().enumerate() {
        vm.set_smccc_filter(r.base, r.nr_functions, filter_action_value(r.action))
            .map_err(refused(Step::SetSmcccFilter { range }))?;
    }
    for vcpu in 0..n {
        let writes: Vec<(u64, u64)> = match plan {
            None => snapshot
                .vm
                .registers
                .iter()
                .map(|r| (r.id, r.value))
                .collect(),
            Some(report) => report
                .plan()
                .filter_map(|a| match *a {
                    PlanAction::Write { id, value } => Some((id, value)),
                    _ => None,
                })
                .collect(),
        };
        for (id, value) in writes {
            vm.set_one_reg(vcpu, id, &value.to_le_bytes())
                .map_err(refused(Step::SetOneReg { vcpu, id }))?;
        }
    }
    for (vcpu, v) in snapshot.vcpus.iter().enumerate() {
        if let Some(ipa) = v.pv_time_ipa {
            vm.set_pv_time_ipa(vcpu, ipa)
                .map_err(refused(Step::SetPvTimeIpa { vcpu }))?;
        }
        vm.set_mp_state(vcpu, v.mp_state.kvm_value())
            .map_err(refused(Step::SetMpState { vcpu }))?;
        if let Some(p) = v.pending_start {
            vm.start_vcpu(vcpu, p.entry, p.context_id)
                .map_err(|e| RestoreFailure::Other(e.to_string()))?;
        }
    }
    Ok(vm)
}

/// The calls that show what a guest sees of its firmware: PSCI_VERSION, PSCI_FEATURES of
/// every PSCI function, SMCCC_VERSION, ARCH_FEATURES of the three workarounds, TRNG_VERSION,
/// the KVM vendor UID and feature words, and PV_TIME_FEATURES.
pub const GUEST_VIEW_CALLS: [[u64; 2]; 24] = [
    [0x8400_0000, 0],           // PSCI_VERSION
    [0x8400_000a, 0x8400_0000], // PSCI_FEATURES(PSCI_VERSION)
    [0x8400_000a, 0xc400_0001], // ... CPU_SUSPEND
    [0x8400_000a, 0x8400_0002], // ... CPU_OFF
    [0x8400_000a, 0xc400_0003], // ... CPU_ON
    [0x8400_000a, 0xc400_0004], // ... AFFINITY_INFO
    [0x8400_000a, 0xc400_0005], // ... MIGRATE
    [0x8400_000a, 0x8400_0006], // ... MIGRATE_INFO_TYPE
    [0x8400_000a, 0x8400_0008], // ... SYSTEM_OFF
    [0x8400_000a, 0x8400_0009], // ... SYSTEM_RESET
    [0x8400_000a, 0x8400_000a], // ... PSCI_FEATURES
    [0x8400_000a, 0xc400_000e], // ... SYSTEM_SUSPEND
    [0x8400_000a, 0xc400_0012], // ... SYSTEM_RESET2
    [0x8400_000a, 0xc400_0015], // ... SYSTEM_OFF2
    [0x8400_000a, 0x8000_0000], // ... SMCCC_VERSION
    [0x8000_0000, 0],           // SMCCC_VERSION
    [0x8000_0001, 0x8000_8000], // ARCH_FEATURES(WORKAROUND_1)
    [0x8000_0001, 0x8000_7fff], // ARCH_FEATURES(WORKAROUND_2)
    [0x8000_0001, 0x8000_3fff], // ARCH_FEATURES(WORKAROUND_3)
    [0x8400_0050, 0],           // TRNG_VERSION
    [0x8600_ff01, 0],           // KVM CALL_UID
    [0x8600_0000, 0],           // KVM_FEATURES
    [0xc500_0020, 0xc500_0021], // PV_TIME_FEATURES(PV_TIME_ST)
    [0x8400_000a, 0x8400_0050], // PSCI_FEATURES(TRNG_VERSION): not a PSCI function
];

/// What the guest on vCPU 0 of `vm` sees: x0..x3 after each of [`GUEST_VIEW_CALLS`]. The
/// calls run the VM.
pub fn guest_view(vm: &mut TestVm) -> Result<Vec<[u64; 4]>, Error> {
    let mut out = Vec::new();
    for [x0, x1] in GUEST_VIEW_CALLS {
        match vm.call(0, Conduit::Hvc, [x0, x1, 0, 0])? {
            CallExit::Returned { x } => out.push(x),
            other => {
                return Err(Error::NotReturned {
                    function_id: x0,
                    exit: Box::new(other),
                });
            }
        }
    }
    Ok(out)
}

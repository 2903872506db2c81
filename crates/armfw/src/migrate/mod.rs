//! Moving a VM's firmware state: save it from a VM, restore it into one under a policy, apply
//! a pool baseline at creation.
//!
//! [`sequence`] is the one ordering of the KVM operations, over its traits
//! [`sequence::SaveSource`], [`sequence::RegWriter`] and [`sequence::RestoreTarget`]; the
//! model ([`crate::Firmware`]) implements them here, real vCPUs in `armfw_kvm::migrate`. The module sits above
//! [`crate::snapshot`] (the state as data) and [`crate::compat`] (what a destination
//! accepts), which do not depend on it.

mod model;
pub mod sequence;

pub use model::ModelVm;

use crate::abi::Errno;
use crate::compat::{Baseline, CpuBaseline, Finding};
use crate::firmware::{FilterAction, Firmware, KVM_MAX_VCPUS, MpState, VcpuFeatures, VcpuStart};
use crate::json::FieldError;
use crate::snapshot::{FilterRange, PendingStart, Snapshot, Source, Step, VcpuState};

/// How a snapshot's registers are written back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RestorePolicy {
    /// As today's VMMs do: every saved register, in saved order, on every vCPU; the first
    /// write KVM refuses ends the restore. [`compat::check`](crate::compat::check) predicts the outcome
    /// ([`compat::Report::strict`](crate::compat::Report::strict)).
    Strict,
    /// armfw's plan ([`compat::check`](crate::compat::check)): refuse up front if the destination cannot keep the
    /// guest's firmware, else write what the plan says and skip what it skips.
    Armfw,
}

/// What a successful restore leaves for the VMM to do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Restored {
    /// CPU_ON starts that were pending at save time: reset each vCPU to its entry point with
    /// the context id in x0 before it runs.
    pub starts: Vec<VcpuStart>,
}

/// Why a restore did not happen. The VM is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// The snapshot breaks an invariant.
    #[error("invalid snapshot: {0}")]
    Invalid(#[from] FieldError),
    /// The VM has run: its bitmaps and SMCCC filter are locked (EBUSY).
    #[error("the VM has already run; restore into a VM before its first KVM_RUN")]
    HasRun,
    /// The VM has vCPUs, but not as many as the snapshot.
    #[error("the snapshot has {snapshot} vCPUs, the VM {vm}")]
    VcpuCount {
        /// vCPUs in the snapshot.
        snapshot: usize,
        /// vCPUs in the VM.
        vm: usize,
    },
    /// A vCPU of the VM is uninitialised or has another PSCI family than the snapshot.
    #[error("vCPU {0} is not initialised with the snapshot's PSCI family")]
    VcpuFeatures(usize),
    /// armfw's policy: the destination cannot keep the guest's firmware.
    #[error("incompatible: {0}")]
    Incompatible(Finding),
    /// An operation failed (the strict policy's first refused write, for example).
    #[error("{step}: {errno}")]
    Failed {
        /// The operation.
        step: Step,
        /// KVM's answer.
        errno: Errno,
    },
}

/// Why a model VM could not be saved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SaveError {
    /// The VM has no vCPUs.
    #[error("the VM has no vCPUs")]
    NoVcpus,
    /// The host refuses the vCPU set-up (a feature it does not offer).
    #[error("{0}")]
    Setup(String),
    /// The host refused a write of the pool baseline.
    #[error("applying the baseline: {0}")]
    Baseline(crate::compat::ApplyError),
    /// A whole-VM save of a VM whose profile has no whole-vCPU part (profile format 1).
    #[error("the profile has no whole-vCPU part (profile format 1: re-probe the host)")]
    NoWholeVcpu,
    /// A vCPU is not initialised (KVM answers ONE_REG on it with ENOEXEC).
    #[error("vCPU {0} is not initialised")]
    NotInitialised(usize),
    /// vCPUs with and without PSCI_0_2 in one VM.
    #[error("vCPU {0} has another PSCI family than vCPU 0")]
    MixedPsciFamilies(usize),
    /// A pending start names a vCPU that does not exist or is not RUNNABLE.
    #[error("pending start for vCPU {0}, which is not a RUNNABLE vCPU")]
    BadPendingStart(usize),
    /// A register read failed.
    #[error("reading {id:#018x}: {errno}")]
    Register {
        /// The register.
        id: u64,
        /// KVM's answer.
        errno: Errno,
    },
}

impl Firmware {
    /// Save the VM's firmware state, as a VMM would through KVM: the register list and each
    /// register's value (through vCPU 0), the MP states, the stolen-time IPAs, the SMCCC filter
    /// ranges and the capabilities. No CPU_ON start is pending; see
    /// [`Firmware::save_with_pending`].
    pub fn save(&self) -> Result<Snapshot, SaveError> {
        self.save_with_pending(&[])
    }

    /// [`Firmware::save`], recording the CPU_ON starts the VMM received
    /// ([`crate::firmware::Action::StartVcpu`]) and has not applied yet. (Real KVM applies a
    /// pending reset before any register access, so a save through KVM passes none.)
    pub fn save_with_pending(&self, pending: &[VcpuStart]) -> Result<Snapshot, SaveError> {
        save_model(self, self, pending, None)
    }
}

impl ModelVm {
    /// A model VM of `fw`'s vCPUs (created and initialised) with their whole-vCPU registers,
    /// the vCPU features `features` and the host's default SVE lengths, before any run.
    pub fn with_registers(
        fw: Firmware,
        features: crate::abi::CpuFeatures,
    ) -> Result<ModelVm, SaveError> {
        let setup = sequence::MachineSetup {
            features,
            ..sequence::MachineSetup::default()
        };
        ModelVm::with_setup(fw, &setup)
    }

    /// A model VM of `fw`'s vCPUs (created and initialised) with their whole-vCPU registers,
    /// set up as `setup` says (features, SVE lengths, the implementation-id capability;
    /// a counter offset is not a set-up of the vCPUs and is ignored), before any run.
    pub fn with_setup(fw: Firmware, setup: &sequence::MachineSetup) -> Result<ModelVm, SaveError> {
        let vcpus = crate::vcpu::VcpuSetup {
            vcpus: fw.vcpu_count(),
            features: setup.features,
            sve_vls: setup.sve_vls.clone(),
            writable_imp_id_regs: setup.writable_imp_id_regs,
        };
        let registers = match crate::vcpu::VcpuModel::new(fw.profile(), &vcpus) {
            None => return Err(SaveError::NoWholeVcpu),
            Some(Err(e)) => return Err(SaveError::Setup(e)),
            Some(Ok(m)) => m,
        };
        let mut vm = ModelVm::new(fw);
        vm.vcpu = Some(registers);
        vm.imp_writable = setup.writable_imp_id_regs;
        Ok(vm)
    }

    /// Save the whole VM (format 2.0): the firmware state as [`Firmware::save`] does, and
    /// every register KVM_GET_REG_LIST names with the set-up `setup` records.
    pub fn save(&self, setup: sequence::MachineSetup) -> Result<Snapshot, SaveError> {
        if self.vcpu.is_none() {
            return Err(SaveError::NoWholeVcpu);
        }
        save_model(&self.fw, self, &[], Some(setup))
    }
}

/// The save of a model VM: `fw`'s firmware facts, the registers through `source`.
fn save_model(
    fw: &Firmware,
    source: &impl sequence::SaveSource,
    pending: &[VcpuStart],
    machine: Option<sequence::MachineSetup>,
) -> Result<Snapshot, SaveError> {
    let first = fw.vcpu_features(0).ok_or(if fw.vcpu_count() == 0 {
        SaveError::NoVcpus
    } else {
        SaveError::NotInitialised(0)
    })?;
    let mut vcpus = Vec::with_capacity(fw.vcpu_count());
    for i in 0..fw.vcpu_count() {
        let f = fw.vcpu_features(i).ok_or(SaveError::NotInitialised(i))?;
        if f.psci_0_2 != first.psci_0_2 {
            return Err(SaveError::MixedPsciFamilies(i));
        }
        let mp_state = fw.mp_state(i).map_err(|_| SaveError::NotInitialised(i))?;
        vcpus.push(VcpuState {
            mp_state,
            pending_start: None,
            pv_time_ipa: fw.pv_time_ipa(i),
        });
    }
    for s in pending {
        match vcpus.get_mut(s.vcpu) {
            Some(v) if v.mp_state == MpState::Runnable => {
                v.pending_start = Some(PendingStart {
                    entry: s.entry,
                    context_id: s.context_id,
                });
            }
            _ => return Err(SaveError::BadPendingStart(s.vcpu)),
        }
    }
    let reserved = crate::firmware::filter_reserved_ranges();
    let smccc_filter = fw
        .smccc_filter()
        .ranges()
        .iter()
        .filter(|&&(f, l, a)| !(a == FilterAction::Handle && reserved.contains(&(f, l))))
        .map(|&(first, last, action)| FilterRange {
            base: first,
            // `last >= first` holds for every range the filter accepted.
            nr_functions: last.wrapping_sub(first).wrapping_add(1),
            action,
        })
        .collect();
    let profile = fw.profile();
    let ctx = sequence::SaveContext {
        source: Source {
            profile: profile.name().to_string(),
            kernel: profile.kernel().to_string(),
        },
        psci_0_2: first.psci_0_2,
        has_run: fw.has_run(),
        system_suspend: fw.system_suspend_enabled(),
        smccc_filter,
        machine,
    };
    let mut snapshot = sequence::save_from(source, ctx).map_err(|f| SaveError::Register {
        id: f.id.unwrap_or(0),
        errno: f.errno,
    })?;
    for (state, saved) in snapshot.vcpus.iter_mut().zip(vcpus) {
        state.pending_start = saved.pending_start;
    }
    Ok(snapshot)
}

/// A VM created with the defaults of the host `profile` describes: `vcpus` vCPUs (clamped to
/// 1..=[`KVM_MAX_VCPUS`]) with PSCI_0_2 where the host has it, the ones after vCPU 0
/// powered off.
fn default_vm(profile: &crate::Profile, vcpus: usize) -> Result<Firmware, SaveError> {
    let mut fw = Firmware::new(profile);
    for i in 0..vcpus.clamp(1, KVM_MAX_VCPUS) {
        let reg = |errno| SaveError::Register { id: 0, errno };
        fw.add_vcpu().map_err(reg)?;
        let features = VcpuFeatures {
            psci_0_2: profile.capabilities().psci_0_2,
            power_off: i > 0,
        };
        fw.init_vcpu(i, features).map_err(reg)?;
    }
    Ok(fw)
}

impl Snapshot {
    /// The state of a VM created with the defaults of the host `profile` describes and then
    /// run: `vcpus` vCPUs (clamped to 1..=[`KVM_MAX_VCPUS`]) with PSCI_0_2 where the host has
    /// it, vCPU 0 RUNNABLE and the others powered off, nothing written. This is what
    /// `armfw check --from` checks.
    pub fn created_on(profile: &crate::Profile, vcpus: usize) -> Result<Snapshot, SaveError> {
        let mut fw = default_vm(profile, vcpus)?;
        fw.vcpu_run(0).map_err(|_| SaveError::NotInitialised(0))?;
        fw.save()
    }

    /// The whole state (format 2.0) of a VM created on the host `profile` describes with the
    /// vCPU features `features` (the host's default SVE lengths) and otherwise as
    /// [`Snapshot::created_on`]: every register at the value KVM gives it, after vCPU 0's
    /// first run when `run` is set, before any run otherwise.
    pub fn created_whole_on(
        profile: &crate::Profile,
        vcpus: usize,
        features: crate::abi::CpuFeatures,
        run: bool,
    ) -> Result<Snapshot, SaveError> {
        let mut vm = ModelVm::with_registers(default_vm(profile, vcpus)?, features)?;
        if run {
            vm.run(0).map_err(|_| SaveError::NotInitialised(0))?;
        }
        vm.save(sequence::MachineSetup {
            features,
            ..sequence::MachineSetup::default()
        })
    }

    /// The whole state (format 2.0) of a VM created on the host `profile` describes with a
    /// pool baseline, and otherwise as [`Snapshot::created_whole_on`]: the CPU baseline's
    /// recipe for this host ([`CpuBaseline::recipe`]: the vCPU set-up, then the register
    /// writes) and the firmware baseline, applied before the first run through the one
    /// sequence ([`sequence::apply_baseline`]), as armfw-kvm applies them to real vCPUs.
    pub fn created_with_baseline(
        profile: &crate::Profile,
        vcpus: usize,
        cpu: &CpuBaseline,
        firmware: Option<&Baseline>,
        run: bool,
    ) -> Result<Snapshot, SaveError> {
        let recipe = cpu.recipe(profile);
        let setup = recipe.setup();
        let fw = default_vm(profile, vcpus)?;
        let psci_0_2 = profile.capabilities().psci_0_2;
        let mut vm = ModelVm::with_setup(fw, &setup)?;
        sequence::apply_baseline(&mut vm, psci_0_2, firmware, Some(&recipe))
            .map_err(SaveError::Baseline)?;
        if run {
            vm.run(0).map_err(|_| SaveError::NotInitialised(0))?;
        }
        vm.save(setup)
    }
}

//! Firmware state on real vCPUs: save a VM's firmware state as an [`armfw::snapshot`]
//! [`Snapshot`], restore one into a new VM (under the strict policy of today's VMMs or under
//! armfw's plan), apply a pool baseline at VM creation, and read what the guest sees of its
//! firmware.
//!
//! Save, restore and baseline application are the core's one sequence
//! ([`armfw::migrate::sequence`]) over real vCPUs: the model runs the same code, so a real
//! restore's first failing operation is the one [`armfw::compat::check`] predicts. A restore
//! goes into a VM it creates; on failure that VM is dropped: nothing else changed. The same
//! sequence runs over a VMM's own vCPUs through [`VcpuSet`].

use armfw::abi::Errno as AbiErrno;
use armfw::compat::{Baseline, CpuRecipe, Report};
use armfw::firmware::{Conduit, MpState};
use armfw::migrate::sequence::{
    self, RegWriter, RestoreStop, RestoreTarget, SaveContext, SaveSource, VcpuInit, Writes,
};
use armfw::snapshot::{FilterRange, PendingStart, Snapshot, Source, Step};

use crate::{CallExit, Error, TestVm, VmSpec};

mod vcpu_set;

pub use vcpu_set::{VcpuSet, save_vcpus};

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

/// The firmware state of `vm` (which `spec` created), as a VMM saves it, through the core's
/// one save sequence ([`sequence::save_from`]): every firmware register of KVM_GET_REG_LIST
/// with its value (through vCPU 0: the values are VM-wide), and each vCPU's MP state and
/// stolen-time IPA. KVM cannot read SMCCC filter ranges back: the VMM passes the ranges it
/// installed as `smccc_filter`. `source` names the host.
pub fn save(
    vm: &TestVm,
    spec: &VmSpec,
    source: Source,
    has_run: bool,
    smccc_filter: Vec<FilterRange>,
) -> Result<Snapshot, Error> {
    save_from(vm, spec, source, has_run, smccc_filter, None)
}

/// The whole state of `vm` (snapshot format 2.0), as [`save`] and with every register
/// KVM_GET_REG_LIST names, and the set-up `spec` made (vCPU features, SVE_VLS, the
/// writable-implementation-id capability). The VMM here never calls
/// KVM_ARM_SET_COUNTER_OFFSET, so the counters travel as TIMER_CNT/PTIMER_CNT.
pub fn save_whole(
    vm: &TestVm,
    spec: &VmSpec,
    source: Source,
    has_run: bool,
    smccc_filter: Vec<FilterRange>,
) -> Result<Snapshot, Error> {
    let machine = sequence::MachineSetup {
        features: spec.features,
        sve_vls: spec.sve_vls.clone(),
        writable_imp_id_regs: spec.writable_imp_id_regs,
        counter_offset: None,
    };
    save_from(vm, spec, source, has_run, smccc_filter, Some(machine))
}

fn save_from(
    vm: &TestVm,
    spec: &VmSpec,
    source: Source,
    has_run: bool,
    smccc_filter: Vec<FilterRange>,
    machine: Option<sequence::MachineSetup>,
) -> Result<Snapshot, Error> {
    let ctx = SaveContext {
        source,
        psci_0_2: spec.psci_0_2,
        has_run,
        system_suspend: spec.system_suspend,
        smccc_filter,
        machine,
    };
    sequence::save_from(&Live(vm), ctx).map_err(|f| Error::Sys {
        op: f.op,
        errno: f.errno,
    })
}

/// Writes a pool baseline into `vm` before it first runs, through the core's one sequence
/// ([`sequence::apply_baseline`], the one the model runs for
/// [`armfw::Snapshot::created_with_baseline`] and [`armfw::compat::Baseline::apply`]): the CPU
/// recipe's registers (ID registers, implementation ids, CTR_EL0, cache geometry), then
/// PSCI_VERSION (on PSCI_0_2 VMs) and the bitmaps; a firmware register the host lacks is left
/// out where the baseline's value means its absence. The recipe's set-up (features, SVE
/// lengths, the implementation-id capability) must already be in `spec`, which created `vm`.
pub fn apply_baseline(
    vm: &TestVm,
    spec: &VmSpec,
    baseline: Option<&Baseline>,
    cpu: Option<&CpuRecipe>,
) -> Result<(), Error> {
    sequence::apply_baseline(&mut Live(vm), spec.psci_0_2, baseline, cpu).map_err(Error::from)
}

/// Restores `snapshot` into a new VM through the core's one restore sequence
/// ([`sequence::restore_into`], the one [`armfw::Firmware::restore`] runs on the model):
/// every saved register on every vCPU in saved order (`plan` = `None`, the strict policy of
/// today's VMMs), or armfw's plan (`Some(report)`, from [`armfw::compat::check`] against this
/// host). Returns the VM, ready to run.
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
    let writes = Writes::firmware(plan);
    restore_with(snapshot, writes).map_err(|e| match e {
        WholeFailure::Stopped(stop) => match stop.first() {
            Some(r) => RestoreFailure::Refused {
                step: r.step,
                errno: r.errno,
            },
            None => RestoreFailure::Other(format!("{stop:?}")),
        },
        WholeFailure::Other(e) => RestoreFailure::Other(e),
    })
}

/// Why [`restore_with`] gave no VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WholeFailure {
    /// The restore stopped where KVM (or QEMU's id-set rule) refused.
    Stopped(RestoreStop),
    /// Something other than the restore itself failed (creating the VM).
    Other(String),
}

/// Restore `snapshot` (firmware-only or whole) into a new VM on this host through the core's
/// one sequence ([`sequence::restore_with`], the one the model's prediction runs), writing
/// the registers as `writes` says: the VM, or where it stopped.
pub fn restore_with(snapshot: &Snapshot, writes: Writes<'_>) -> Result<TestVm, WholeFailure> {
    let mut target = NewVm {
        spec: VmSpec {
            vcpus: snapshot.vcpus().len(),
            psci_0_2: snapshot.vm().psci_0_2,
            power_off: Vec::new(),
            system_suspend: false,
            ..VmSpec::default()
        },
        vm: None,
        error: None,
    };
    let result = sequence::restore_with(&mut target, snapshot, writes);
    if let Some(e) = target.error {
        return Err(WholeFailure::Other(e.to_string()));
    }
    result.map_err(WholeFailure::Stopped)?;
    target
        .vm
        .ok_or_else(|| WholeFailure::Other("the restore created no VM".into()))
}

/// A test VM that exists, as the sequence saves it ([`SaveSource`]) and writes a baseline
/// into it ([`RegWriter`]). It is no [`RestoreTarget`]: a restore creates its VM ([`NewVm`]).
struct Live<'a>(&'a TestVm);

impl SaveSource for Live<'_> {
    fn vcpu_count(&self) -> usize {
        self.0.vcpu_count()
    }

    fn reg_list(&self, vcpu: usize) -> Result<Vec<u64>, AbiErrno> {
        self.0.reg_list(vcpu)
    }

    fn get_one_reg(&self, vcpu: usize, id: u64) -> Result<u64, AbiErrno> {
        self.0.get_u64(vcpu, id)
    }

    fn get_reg(&self, vcpu: usize, id: u64) -> Result<Vec<u8>, AbiErrno> {
        self.0.get_one_reg(vcpu, id)
    }

    fn mp_state(&self, vcpu: usize) -> Result<MpState, AbiErrno> {
        let raw = self.0.mp_state(vcpu)?;
        // arm64 KVM reports RUNNABLE, STOPPED and SUSPENDED only.
        MpState::from_kvm_value(raw).ok_or(AbiErrno::EINVAL)
    }

    fn pv_time_ipa(&self, vcpu: usize) -> Result<Option<u64>, AbiErrno> {
        self.0.pv_time_ipa(vcpu)
    }
}

impl RegWriter for Live<'_> {
    fn set_reg(&mut self, vcpu: usize, id: u64, data: &[u8]) -> Result<(), AbiErrno> {
        self.0.set_one_reg(vcpu, id, data)
    }

    fn set_one_reg(&mut self, vcpu: usize, id: u64, value: u64) -> Result<(), AbiErrno> {
        self.0.set_one_reg(vcpu, id, &value.to_le_bytes())
    }
}

/// The VM a restore creates: its spec grows with the sequence's first operations, the VM
/// itself is created with its vCPUs.
struct NewVm {
    spec: VmSpec,
    vm: Option<TestVm>,
    /// A failure that is not KVM refusing an operation (the restore reports it as such).
    error: Option<Error>,
}

impl NewVm {
    fn vm(&self) -> Result<&TestVm, AbiErrno> {
        // The sequence creates the vCPUs before any other vCPU or VM-attribute operation.
        self.vm.as_ref().ok_or(AbiErrno::ENOEXEC)
    }
}

impl RegWriter for NewVm {
    fn set_reg(&mut self, vcpu: usize, id: u64, data: &[u8]) -> Result<(), AbiErrno> {
        Live(self.vm()?).set_reg(vcpu, id, data)
    }

    fn set_one_reg(&mut self, vcpu: usize, id: u64, value: u64) -> Result<(), AbiErrno> {
        Live(self.vm()?).set_one_reg(vcpu, id, value)
    }
}

impl RestoreTarget for NewVm {
    fn enable_system_suspend(&mut self) -> Result<(), AbiErrno> {
        // TestVm::new enables it on the new VM before the vCPUs exist; KVM_ENABLE_CAP refuses
        // a capability the kernel does not have with EINVAL.
        let cap = kvm_bindings::KVM_CAP_ARM_SYSTEM_SUSPEND;
        if crate::check_extension(cap)? <= 0 {
            return Err(AbiErrno::EINVAL);
        }
        self.spec.system_suspend = true;
        Ok(())
    }

    fn enable_writable_imp_id_regs(&mut self) -> Result<(), AbiErrno> {
        let cap = kvm_bindings::KVM_CAP_ARM_WRITABLE_IMP_ID_REGS;
        if crate::check_extension(cap)? <= 0 {
            return Err(AbiErrno::EINVAL);
        }
        self.spec.writable_imp_id_regs = true;
        Ok(())
    }

    fn set_counter_offset(&mut self, offset: u64) -> Result<(), AbiErrno> {
        self.vm()?.set_counter_offset(offset)
    }

    fn listed_ids(&self, vcpu: usize) -> Result<Vec<u64>, AbiErrno> {
        self.vm()?.reg_list(vcpu)
    }

    fn create_vcpus(&mut self, count: usize, init: &VcpuInit) -> Result<(), (usize, AbiErrno)> {
        self.spec.vcpus = count;
        self.spec.psci_0_2 = init.psci_0_2;
        self.spec.features = init.features;
        self.spec.sve_vls.clone_from(&init.sve_vls);
        match TestVm::new(&self.spec) {
            Ok(vm) => {
                self.vm = Some(vm);
                Ok(())
            }
            Err(e) => {
                let errno = e.errno().unwrap_or(AbiErrno::EINVAL);
                self.error = e.errno().is_none().then_some(e);
                Err((0, errno))
            }
        }
    }

    fn set_smccc_filter(&mut self, r: &FilterRange) -> Result<(), AbiErrno> {
        self.vm()?
            .set_smccc_filter(r.base, r.nr_functions, r.action.kvm_value())
    }

    fn set_pv_time_ipa(&mut self, vcpu: usize, ipa: u64) -> Result<(), AbiErrno> {
        self.vm()?.set_pv_time_ipa(vcpu, ipa)
    }

    fn set_mp_state(&mut self, vcpu: usize, state: MpState) -> Result<(), AbiErrno> {
        self.vm()?.set_mp_state(vcpu, state.kvm_value())
    }

    fn start_vcpu(&mut self, vcpu: usize, start: PendingStart) -> Result<(), AbiErrno> {
        self.vm()?
            .start_vcpu(vcpu, start.entry, start.context_id)
            .map_err(|e| e.errno().unwrap_or(AbiErrno::EINVAL))
    }
}

/// The calls that show what a guest sees of its firmware: PSCI_VERSION, PSCI_FEATURES of
/// every PSCI function, SMCCC_VERSION, ARCH_FEATURES of the three workarounds, TRNG_VERSION,
/// the KVM vendor UID and feature words, and PV_TIME_FEATURES.
pub const GUEST_VIEW_CALLS: [[u64; 2]; 24] = {
    use armfw::abi::function::Function as F;
    /// x0 (and x1) of a call: the function's id, and an id as its argument.
    const fn id(f: F) -> u64 {
        f.raw() as u64
    }
    let features = id(F::PsciFeatures);
    let arch_features = id(F::SmcccArchFeatures);
    [
        [id(F::PsciVersion), 0],
        [features, id(F::PsciVersion)],
        [features, id(F::CpuSuspend64)],
        [features, id(F::CpuOff)],
        [features, id(F::CpuOn64)],
        [features, id(F::AffinityInfo64)],
        [features, id(F::Migrate64)],
        [features, id(F::MigrateInfoType)],
        [features, id(F::SystemOff)],
        [features, id(F::SystemReset)],
        [features, id(F::PsciFeatures)],
        [features, id(F::SystemSuspend64)],
        [features, id(F::SystemReset2_64)],
        [features, id(F::SystemOff2_64)],
        [features, id(F::SmcccVersion)],
        [id(F::SmcccVersion), 0],
        [arch_features, id(F::SmcccArchWorkaround1)],
        [arch_features, id(F::SmcccArchWorkaround2)],
        [arch_features, id(F::SmcccArchWorkaround3)],
        [id(F::TrngVersion), 0],
        [id(F::VendorHypCallUid), 0],
        [id(F::KvmFeatures), 0],
        [id(F::PvTimeFeatures), id(F::PvTimeSt)],
        // Not a PSCI function: PSCI_FEATURES answers NOT_SUPPORTED.
        [features, id(F::TrngVersion)],
    ]
};

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

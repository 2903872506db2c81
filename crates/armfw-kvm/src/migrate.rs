//! Firmware state on real vCPUs: save a VM's firmware state as an [`armfw::snapshot`]
//! [`Snapshot`], restore one into a new VM (under the strict policy of today's VMMs or under
//! armfw's plan), apply a pool baseline at VM creation, and read what the guest sees of its
//! firmware.
//!
//! Save, restore and baseline application are the core's one sequence
//! ([`armfw::migrate::sequence`]) over real vCPUs: the model runs the same code, so a real
//! restore's first failing operation is the one [`armfw::compat::check`] predicts. A restore
//! goes into a VM it creates; on failure that VM is dropped: nothing else changed.

use armfw::abi::Errno as AbiErrno;
use armfw::compat::{Baseline, CpuRecipe, Report};
use armfw::firmware::{Conduit, MpState};
use armfw::migrate::sequence::{
    self, RegWriter, RestoreStop, RestoreTarget, SaveContext, SaveSource, VcpuInit, Writes,
};
use armfw::snapshot::{FilterRange, PendingStart, Snapshot, Source, Step};

use crate::{CallExit, Error, TestVm, VmSpec};

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

/// The vCPUs of a VMM's own VM, as the core's one sequence saves and restores them: the same
/// operations [`restore_with`] makes on a test VM, on the VM a VMM runs a guest in.
///
/// For a save, [`VcpuSet::of`] the VM's paused vCPUs. For a restore, [`VcpuSet::new`] on a
/// new VM (its RAM registered, no vCPU yet): the sequence enables the capabilities, creates
/// and initialises the vCPUs and, with a vGIC layout, KVM's GICv3 right after them (as a VMM
/// must, before the registers are written), then writes every register.
#[derive(Debug)]
pub struct VcpuSet<'a> {
    vm: &'a kvm_ioctls::VmFd,
    vcpus: Vec<kvm_ioctls::VcpuFd>,
    inits: Vec<kvm_bindings::kvm_vcpu_init>,
    gic: Option<(u64, u64, u32)>,
    gic_fd: Option<kvm_ioctls::DeviceFd>,
    error: Option<Error>,
}

impl<'a> VcpuSet<'a> {
    /// The vCPUs `vcpus` of `vm`, created with `inits`, every one out of KVM_RUN.
    pub fn of(
        vm: &'a kvm_ioctls::VmFd,
        vcpus: Vec<kvm_ioctls::VcpuFd>,
        inits: Vec<kvm_bindings::kvm_vcpu_init>,
    ) -> VcpuSet<'a> {
        VcpuSet {
            vm,
            vcpus,
            inits,
            gic: None,
            gic_fd: None,
            error: None,
        }
    }

    /// A restore target on `vm`, which has no vCPU yet; with `gic` = (distributor base,
    /// redistributor base, interrupts), KVM's GICv3 is created with the vCPUs.
    pub fn new(vm: &'a kvm_ioctls::VmFd, gic: Option<(u64, u64, u32)>) -> VcpuSet<'a> {
        VcpuSet {
            gic,
            ..VcpuSet::of(vm, Vec::new(), Vec::new())
        }
    }

    /// The vCPUs, their KVM_ARM_VCPU_INIT arguments and the vGIC, for the VMM to run.
    pub fn into_parts(
        self,
    ) -> (
        Vec<kvm_ioctls::VcpuFd>,
        Vec<kvm_bindings::kvm_vcpu_init>,
        Option<kvm_ioctls::DeviceFd>,
    ) {
        (self.vcpus, self.inits, self.gic_fd)
    }

    /// A failure of the restore that is not KVM refusing an operation (creating the vGIC),
    /// if there was one.
    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }

    /// Each vCPU's MPIDR_EL1, by index.
    pub fn mpidrs(&self) -> Result<Vec<u64>, AbiErrno> {
        self.vcpus
            .iter()
            .map(|fd| crate::vm::get_u64(fd, crate::regs::MPIDR_EL1))
            .collect()
    }

    fn fd(&self, vcpu: usize) -> Result<&kvm_ioctls::VcpuFd, AbiErrno> {
        self.vcpus.get(vcpu).ok_or(AbiErrno::EINVAL)
    }

    fn enable_cap(&self, cap: u32) -> Result<(), AbiErrno> {
        if crate::check_extension(cap)? <= 0 {
            return Err(AbiErrno::EINVAL);
        }
        let cap = kvm_bindings::kvm_enable_cap {
            cap,
            ..Default::default()
        };
        self.vm.enable_cap(&cap).map_err(crate::sys::errno)
    }
}

impl SaveSource for VcpuSet<'_> {
    fn vcpu_count(&self) -> usize {
        self.vcpus.len()
    }

    fn reg_list(&self, vcpu: usize) -> Result<Vec<u64>, AbiErrno> {
        crate::sys::get_reg_list(self.fd(vcpu)?)
    }

    fn get_one_reg(&self, vcpu: usize, id: u64) -> Result<u64, AbiErrno> {
        crate::vm::get_u64(self.fd(vcpu)?, id)
    }

    fn get_reg(&self, vcpu: usize, id: u64) -> Result<Vec<u8>, AbiErrno> {
        let mut buf = vec![0; armfw::abi::OneRegId(id).size_bytes()];
        self.fd(vcpu)?
            .get_one_reg(id, &mut buf)
            .map_err(crate::sys::errno)?;
        Ok(buf)
    }

    fn mp_state(&self, vcpu: usize) -> Result<MpState, AbiErrno> {
        let raw = self
            .fd(vcpu)?
            .get_mp_state()
            .map_err(crate::sys::errno)?
            .mp_state;
        MpState::from_kvm_value(raw).ok_or(AbiErrno::EINVAL)
    }

    fn pv_time_ipa(&self, vcpu: usize) -> Result<Option<u64>, AbiErrno> {
        crate::vm::pv_time_ipa(self.fd(vcpu)?)
    }
}

impl RegWriter for VcpuSet<'_> {
    fn set_reg(&mut self, vcpu: usize, id: u64, data: &[u8]) -> Result<(), AbiErrno> {
        if data.len() != armfw::abi::OneRegId(id).size_bytes() {
            return Err(AbiErrno::EINVAL);
        }
        self.fd(vcpu)?
            .set_one_reg(id, data)
            .map(|_| ())
            .map_err(crate::sys::errno)
    }

    fn set_one_reg(&mut self, vcpu: usize, id: u64, value: u64) -> Result<(), AbiErrno> {
        self.set_reg(vcpu, id, &value.to_le_bytes())
    }
}

impl RestoreTarget for VcpuSet<'_> {
    fn enable_system_suspend(&mut self) -> Result<(), AbiErrno> {
        self.enable_cap(kvm_bindings::KVM_CAP_ARM_SYSTEM_SUSPEND)
    }

    fn enable_writable_imp_id_regs(&mut self) -> Result<(), AbiErrno> {
        self.enable_cap(kvm_bindings::KVM_CAP_ARM_WRITABLE_IMP_ID_REGS)
    }

    fn create_vcpus(&mut self, count: usize, init: &VcpuInit) -> Result<(), (usize, AbiErrno)> {
        if !self.vcpus.is_empty() {
            return if count == self.vcpus.len() {
                Ok(())
            } else {
                Err((count.min(self.vcpus.len()), AbiErrno::EINVAL))
            };
        }
        let mut base = kvm_bindings::kvm_vcpu_init::default();
        self.vm
            .get_preferred_target(&mut base)
            .map_err(|e| (0, crate::sys::errno(e)))?;
        if init.psci_0_2 {
            base.features[0] |= 1 << kvm_bindings::KVM_ARM_VCPU_PSCI_0_2;
        }
        base.features[0] |= init.features.kvm_bits();
        let spec = VmSpec {
            vcpus: count,
            features: init.features,
            sve_vls: init.sve_vls.clone(),
            ..VmSpec::default()
        };
        for i in 0..count {
            let fd = self
                .vm
                .create_vcpu(i as u64)
                .map_err(|e| (i, crate::sys::errno(e)))?;
            fd.vcpu_init(&base).map_err(|e| (i, crate::sys::errno(e)))?;
            crate::vm::finish_init(&fd, &spec)
                .map_err(|e| (i, e.errno().unwrap_or(AbiErrno::EINVAL)))?;
            self.vcpus.push(fd);
            self.inits.push(base);
        }
        if let Some((dist, redist, nr_irqs)) = self.gic {
            match crate::vgic::create(self.vm, dist, redist, nr_irqs) {
                Ok(fd) => self.gic_fd = Some(fd),
                Err(e) => {
                    let errno = e.errno().unwrap_or(AbiErrno::EINVAL);
                    self.error = Some(e);
                    return Err((count, errno));
                }
            }
        }
        Ok(())
    }

    fn set_counter_offset(&mut self, offset: u64) -> Result<(), AbiErrno> {
        crate::sys::set_counter_offset(self.vm, offset)
    }

    fn listed_ids(&self, vcpu: usize) -> Result<Vec<u64>, AbiErrno> {
        crate::sys::get_reg_list(self.fd(vcpu)?)
    }

    fn set_smccc_filter(&mut self, r: &FilterRange) -> Result<(), AbiErrno> {
        crate::vm::set_smccc_filter(self.vm, r.base, r.nr_functions, r.action.kvm_value())
    }

    fn set_pv_time_ipa(&mut self, vcpu: usize, ipa: u64) -> Result<(), AbiErrno> {
        crate::vm::set_pv_time_ipa(self.fd(vcpu)?, ipa)
    }

    fn set_mp_state(&mut self, vcpu: usize, state: MpState) -> Result<(), AbiErrno> {
        crate::vm::set_mp_state(self.fd(vcpu)?, state.kvm_value())
    }

    fn start_vcpu(&mut self, vcpu: usize, start: PendingStart) -> Result<(), AbiErrno> {
        let fd = self.fd(vcpu)?;
        let init = self.inits.get(vcpu).ok_or(AbiErrno::EINVAL)?;
        fd.vcpu_init(init).map_err(crate::sys::errno)?;
        crate::vm::set_mp_state(fd, kvm_bindings::KVM_MP_STATE_RUNNABLE)?;
        for (id, v) in [
            (crate::regs::PC, start.entry),
            (crate::regs::x(0), start.context_id),
        ] {
            fd.set_one_reg(id, &v.to_le_bytes())
                .map_err(crate::sys::errno)?;
        }
        Ok(())
    }
}

/// Saves the whole VM a VMM runs (snapshot format 2.0) through the core's one save sequence:
/// `vcpus` paused, created with PSCI_0_2 and `machine`'s set-up; `smccc_filter` the ranges
/// the VMM installed.
pub fn save_vcpus(
    vcpus: &VcpuSet<'_>,
    source: Source,
    machine: sequence::MachineSetup,
    smccc_filter: Vec<FilterRange>,
) -> Result<Snapshot, Error> {
    let ctx = SaveContext {
        source,
        psci_0_2: true,
        has_run: true,
        system_suspend: false,
        smccc_filter,
        machine: Some(machine),
    };
    sequence::save_from(vcpus, ctx).map_err(|f| Error::Sys {
        op: f.op,
        errno: f.errno,
    })
}

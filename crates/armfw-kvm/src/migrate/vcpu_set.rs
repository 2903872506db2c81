//! A VMM's own VM under the core's one sequence: its vCPU fds saved, restored into a new VM
//! (with KVM's GICv3 created right after the vCPUs), or given a pool baseline.

use armfw::abi::Errno as AbiErrno;
use armfw::firmware::MpState;
use armfw::migrate::sequence::{self, RegWriter, RestoreTarget, SaveContext, SaveSource, VcpuInit};
use armfw::snapshot::{FilterRange, PendingStart, Snapshot, Source};

use crate::{Error, VmSpec};

/// The vCPUs of a VMM's own VM, as the core's one sequence saves and restores them: the same
/// operations [`restore_with`](super::restore_with) makes on a test VM, on the VM a VMM runs
/// a guest in.
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

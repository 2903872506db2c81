//! The engine for a VMM that runs one thread per vCPU: [`SharedFirmware`] holds the VM, and
//! one [`VcpuHandle`] per vCPU makes that vCPU's guest calls.
//!
//! A VMM sets a VM up with [`Firmware`] (KVM_CREATE_VM, the capabilities, the vCPUs, a
//! snapshot restore), then hands it to [`SharedFirmware::new`], which gives back the shared
//! VM and the vCPU handles. Each handle is `Send` and moves to its vCPU's thread; the shared
//! VM is `Send + Sync + Clone` and serves the VMM's requests from any thread. The answers are
//! those of [`Firmware`]: both run the same dispatch and register code.
//!
//! # Locks
//!
//! The state is split as KVM splits it, and locked as KVM locks it:
//!
//! - **VM-wide** (profile, PSCI version, bitmaps, has-run flag, SMCCC filter, capabilities):
//!   one `RwLock`. Guest calls only read VM-wide state, so they hold it shared and calls of
//!   different vCPUs run in parallel. The VMM's changes (SET_ONE_REG, the filter, the first
//!   KVM_RUN) hold it exclusively, as KVM holds `kvm->arch.config_lock`.
//! - **Per vCPU** (features, MP state, stolen-time IPA): one `Mutex` per vCPU, as KVM's
//!   `mp_state_lock`. CPU_ON holds its target's lock while it checks STOPPED and sets
//!   RUNNABLE, so CPU_ONs racing for one STOPPED target give exactly one SUCCESS; the others
//!   get ALREADY_ON (INVALID_PARAMS under PSCI 0.1). KVM's CPU_ON never returns ON_PENDING,
//!   and neither does this one.
//! - **Order**: the VM lock before a vCPU lock, and at most one vCPU lock at a time, except in
//!   [`SharedFirmware::to_firmware`], which takes every vCPU lock in index order. No cycle
//!   is possible, so no deadlock.
//!
//! Operations that touch several vCPUs (SYSTEM_OFF, SYSTEM_RESET and SYSTEM_OFF2 stopping
//! every vCPU; AFFINITY_INFO reading the MP states) take the vCPU locks one at a time, as
//! KVM does: each vCPU's change is atomic, the operation as a whole is not. A call checks
//! its caller (initialised, RUNNABLE) when it starts, as KVM does on entry.
//!
//! No lock is held while the engine calls [`Services`], except the VM lock in shared mode,
//! which a panic does not poison. A lock poisoned by a panic elsewhere is used as it stands:
//! every change under a lock is a single store, so no state is ever half-written.
//!
//! [`Firmware`]: super::Firmware

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{
    Call, CallOutcome, Firmware, MpState, PowerStates, Services, SmcccFilter, TurnOn, Vcpu,
    VcpuError, VcpuFeatures, Vm, vcpu_index_of,
};
use crate::abi::{Errno, FwReg, Mpidr, PsciVersion};
use crate::migrate::SaveError;
use crate::snapshot::Snapshot;

/// One VM's firmware, shared by the VMM's threads. See the [module documentation](self).
///
/// Cloning gives another reference to the same VM. The methods are [`Firmware`]'s VMM
/// requests and getters, with the same answers; each takes `&self`.
///
/// # Example
///
/// ```
/// use armfw::firmware::shared::SharedFirmware;
/// use armfw::firmware::{Action, Call, Conduit, Firmware, MpState, VcpuFeatures};
/// use armfw::scenario::ModelServices;
///
/// let host = armfw::profile::builtin_named("linux-6.12.117-max").unwrap();
/// let mut fw = Firmware::new(&host);
/// for i in 0..2 {
///     fw.add_vcpu().unwrap();
///     fw.init_vcpu(i, VcpuFeatures { psci_0_2: true, power_off: i > 0 }).unwrap();
/// }
/// let (vm, mut vcpus) = SharedFirmware::new(fw);
/// let mut boot = vcpus.remove(0);
/// let cpu_on = Call::new(Conduit::Hvc, [0xc400_0003, 1, 0x4000_1000, 0]);
/// let out = std::thread::spawn(move || {
///     boot.vcpu_run().unwrap();
///     boot.handle_call(&cpu_on, &mut ModelServices::default()).unwrap()
/// })
/// .join()
/// .unwrap();
/// assert!(matches!(out.action, Action::StartVcpu(s) if s.vcpu == 1));
/// assert_eq!(vm.mp_state(1), Ok(MpState::Runnable));
/// ```
#[derive(Clone, Debug)]
pub struct SharedFirmware {
    inner: Arc<Inner>,
}

/// One vCPU's access to its VM: the handle its thread makes guest calls with. See the
/// [module documentation](self).
///
/// [`SharedFirmware::new`] gives one per vCPU; there is no other way to get one, so the
/// `&mut self` of [`VcpuHandle::handle_call`] means one call at a time per vCPU, as KVM's
/// per-vCPU ioctl lock does.
#[derive(Debug)]
pub struct VcpuHandle {
    vm: SharedFirmware,
    index: usize,
}

#[derive(Debug)]
struct Inner {
    vm: RwLock<Vm>,
    vcpus: Box<[Mutex<Vcpu>]>,
}

impl SharedFirmware {
    /// Share the VM `fw` describes: the shared VM and one handle per vCPU, by index. The
    /// vCPU count is fixed from here on (KVM_CREATE_VCPU happens before the vCPUs run).
    pub fn new(fw: Firmware) -> (SharedFirmware, Vec<VcpuHandle>) {
        let Firmware { vm, vcpus } = fw;
        let shared = SharedFirmware {
            inner: Arc::new(Inner {
                vm: RwLock::new(vm),
                vcpus: vcpus.into_iter().map(Mutex::new).collect(),
            }),
        };
        let handles = (0..shared.vcpu_count())
            .map(|index| VcpuHandle {
                vm: shared.clone(),
                index,
            })
            .collect();
        (shared, handles)
    }

    /// A copy of the whole VM as a [`Firmware`], taken atomically: the VM lock and every
    /// vCPU lock are held together while it is copied.
    pub fn to_firmware(&self) -> Firmware {
        let vm = read(&self.inner.vm);
        let guards: Vec<MutexGuard<'_, Vcpu>> = self.inner.vcpus.iter().map(lock).collect();
        Firmware {
            vm: vm.clone(),
            vcpus: guards.iter().map(|g| **g).collect(),
        }
    }

    /// [`Firmware::save`] of [`SharedFirmware::to_firmware`]. A VMM pauses its vCPUs before
    /// it saves, as it must for KVM; the copy is consistent either way.
    pub fn save(&self) -> Result<Snapshot, SaveError> {
        self.to_firmware().save()
    }

    /// The number of vCPUs.
    pub fn vcpu_count(&self) -> usize {
        self.inner.vcpus.len()
    }

    /// A vCPU's MPIDR affinity.
    pub fn mpidr(&self, vcpu: usize) -> Result<Mpidr, VcpuError> {
        self.slot(vcpu)?;
        Ok(Mpidr::for_vcpu_index(vcpu))
    }

    /// Whether any vCPU of the VM has run.
    pub fn has_run(&self) -> bool {
        read(&self.inner.vm).has_run
    }

    /// KVM_GET_MP_STATE.
    pub fn mp_state(&self, vcpu: usize) -> Result<MpState, VcpuError> {
        Ok(lock(self.slot(vcpu)?).mp_state)
    }

    /// KVM_SET_MP_STATE, as [`Firmware::set_mp_state`].
    pub fn set_mp_state(&self, vcpu: usize, state: u32) -> Result<(), Errno> {
        let slot = self.slot(vcpu).map_err(|_| Errno::EINVAL)?;
        lock(slot).set_mp_state(state)
    }

    /// The PSCI version `vcpu` sees, as [`Firmware::psci_version`].
    pub fn psci_version(&self, vcpu: usize) -> Result<PsciVersion, VcpuError> {
        let features = lock(self.slot(vcpu)?)
            .features
            .ok_or(VcpuError::NotInitialised(vcpu))?;
        Ok(read(&self.inner.vm).psci_version_for(features))
    }

    /// KVM_GET_REG_LIST, the firmware part, as [`Firmware::reg_list`].
    pub fn reg_list(&self, vcpu: usize) -> Result<Vec<u64>, Errno> {
        self.one_reg_vcpu(vcpu)?;
        Ok(read(&self.inner.vm).reg_list())
    }

    /// KVM_GET_ONE_REG, as [`Firmware::get_one_reg`].
    pub fn get_one_reg(&self, vcpu: usize, id: u64) -> Result<u64, Errno> {
        let features = self.one_reg_vcpu(vcpu)?;
        read(&self.inner.vm).get_one_reg(features, id)
    }

    /// KVM_SET_ONE_REG, as [`Firmware::set_one_reg`]. Holds the VM lock exclusively, so the
    /// has-run check and the write are one step against a first KVM_RUN.
    pub fn set_one_reg(&self, vcpu: usize, id: u64, value: u64) -> Result<(), Errno> {
        let mut vm = write(&self.inner.vm);
        let features = self.one_reg_vcpu(vcpu)?;
        vm.set_one_reg(features, id, value)
    }

    /// The value of a bitmap register, as [`Firmware::bitmap`].
    pub fn bitmap(&self, reg: FwReg) -> u64 {
        read(&self.inner.vm).bitmap(reg)
    }

    /// KVM_ARM_VCPU_PVTIME_IPA, as [`Firmware::set_pv_time_ipa`].
    pub fn set_pv_time_ipa(&self, vcpu: usize, ipa: u64) -> Result<(), Errno> {
        let slot = self.slot(vcpu).map_err(|_| Errno::EINVAL)?;
        lock(slot).set_pv_time_ipa(ipa)
    }

    /// A copy of the SMCCC filter as configured so far.
    pub fn smccc_filter(&self) -> SmcccFilter {
        read(&self.inner.vm).filter.clone()
    }

    /// Add one SMCCC filter range, as [`Firmware::set_smccc_filter`].
    pub fn set_smccc_filter(
        &self,
        base: u32,
        nr_functions: u32,
        action: u8,
        pad: [u8; 15],
    ) -> Result<(), Errno> {
        write(&self.inner.vm).set_smccc_filter(base, nr_functions, action, pad)
    }

    fn slot(&self, vcpu: usize) -> Result<&Mutex<Vcpu>, VcpuError> {
        self.inner
            .vcpus
            .get(vcpu)
            .ok_or(VcpuError::NoSuchVcpu(vcpu))
    }

    /// The checks every ONE_REG ioctl makes first: ENOEXEC unless initialised.
    fn one_reg_vcpu(&self, vcpu: usize) -> Result<VcpuFeatures, Errno> {
        self.inner
            .vcpus
            .get(vcpu)
            .and_then(|slot| lock(slot).features)
            .ok_or(Errno::ENOEXEC)
    }
}

impl VcpuHandle {
    /// The vCPU's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The VM this vCPU belongs to.
    pub fn vm(&self) -> &SharedFirmware {
        &self.vm
    }

    /// The vCPU enters KVM_RUN, as [`Firmware::vcpu_run`]: the first run of any vCPU locks
    /// the bitmaps and the SMCCC filter.
    pub fn vcpu_run(&mut self) -> Result<(), VcpuError> {
        lock(self.vm.slot(self.index)?)
            .features
            .ok_or(VcpuError::NotInitialised(self.index))?;
        if !read(&self.vm.inner.vm).has_run {
            write(&self.vm.inner.vm).has_run = true;
        }
        Ok(())
    }

    /// Answer one guest call from this vCPU, as [`Firmware::handle_call`]. Calls of other
    /// vCPUs run in parallel; a CPU_ON, CPU_OFF or system event changes MP states under the
    /// vCPU locks (see the [module documentation](self)).
    pub fn handle_call(
        &mut self,
        call: &Call,
        services: &mut dyn Services,
    ) -> Result<CallOutcome, VcpuError> {
        let caller = lock(self.vm.slot(self.index)?).caller(self.index)?;
        let inner = &*self.vm.inner;
        let vm = read(&inner.vm);
        Ok(vm.handle_call(caller, call, services, &mut Slots(&inner.vcpus)))
    }
}

/// The vCPUs' power states behind their locks.
struct Slots<'a>(&'a [Mutex<Vcpu>]);

impl PowerStates for Slots<'_> {
    fn stop(&mut self, vcpu: usize) {
        if let Some(slot) = self.0.get(vcpu) {
            lock(slot).mp_state = MpState::Stopped;
        }
    }

    fn turn_on(&mut self, affinity: u64) -> TurnOn {
        match vcpu_index_of(affinity).and_then(|i| Some((i, self.0.get(i)?))) {
            // The check and the change under one hold of the target's lock.
            Some((i, slot)) => lock(slot).turn_on(i),
            None => TurnOn::NoSuchVcpu,
        }
    }

    fn any_on(&self, target: u64, mask: u64) -> Option<bool> {
        // MPIDRs never change: only the matching vCPUs' locks are taken, one at a time.
        let matching = self
            .0
            .get(super::affinity_range(target, mask, self.0.len()))?;
        if matching.is_empty() {
            return None;
        }
        Some(
            matching
                .iter()
                .any(|slot| lock(slot).mp_state != MpState::Stopped),
        )
    }

    fn stop_all(&mut self) {
        for slot in self.0 {
            lock(slot).mp_state = MpState::Stopped;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// The types a VMM moves to or shares between threads are `Send` and `Sync`.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<SharedFirmware>();
    send_sync::<VcpuHandle>();
    send_sync::<Firmware>();
    send_sync::<Snapshot>();
};

// SPDX-License-Identifier: Apache-2.0 OR MIT
//! [`TestVm`]: one VM with N initialised vCPUs (creation, ONE_REG, the register list, MP
//! states, the SMCCC filter, stolen time). Running its vCPUs is in `run`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use armfw::abi::{CpuFeature, CpuFeatures, Errno, OneRegId};
use armfw::firmware::{KVM_MP_STATE_RUNNABLE, SystemEventType};
use kvm_bindings::{
    KVM_ARM_VCPU_PMU_V3_CTRL, KVM_ARM_VCPU_PMU_V3_INIT, KVM_ARM_VCPU_POWER_OFF,
    KVM_ARM_VCPU_PSCI_0_2, KVM_ARM_VCPU_PVTIME_CTRL, KVM_ARM_VCPU_PVTIME_IPA, KVM_ARM_VCPU_SVE,
    KVM_ARM_VM_SMCCC_CTRL, KVM_ARM_VM_SMCCC_FILTER, KVM_CAP_ARM_SYSTEM_SUSPEND,
    KVM_CAP_ARM_WRITABLE_IMP_ID_REGS, kvm_device_attr, kvm_enable_cap, kvm_mp_state,
    kvm_smccc_filter, kvm_userspace_memory_region, kvm_vcpu_init,
};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};

use crate::Error;
use crate::error::sys;
use crate::guest::{self, GuestMemory};
use crate::regs;
use crate::sys::{errno, get_reg_list, get_vcpu_attr_u64};

/// The default wait limit of a call; see [`TestVm::set_wait_limit`].
pub const DEFAULT_WAIT_LIMIT: Duration = Duration::from_secs(1);

/// `KVM_MP_STATE_RUNNABLE` (the core's [`armfw::firmware::KVM_MP_STATE_RUNNABLE`]).
pub const MP_STATE_RUNNABLE: u32 = armfw::firmware::KVM_MP_STATE_RUNNABLE;
/// `KVM_MP_STATE_STOPPED` (the core's [`armfw::firmware::KVM_MP_STATE_STOPPED`]).
pub const MP_STATE_STOPPED: u32 = armfw::firmware::KVM_MP_STATE_STOPPED;
/// `KVM_MP_STATE_SUSPENDED` (10; 6 is CHECK_STOP; the core's
/// [`armfw::firmware::KVM_MP_STATE_SUSPENDED`]).
pub const MP_STATE_SUSPENDED: u32 = armfw::firmware::KVM_MP_STATE_SUSPENDED;

/// The process-wide policy of [`set_leak_on_drop`].
static LEAK_ON_DROP: AtomicBool = AtomicBool::new(false);

/// Sets what dropping a [`TestVm`] does, for the whole process: with `true` its file
/// descriptors and memory are leaked instead of closed and freed (as [`TestVm::leak`]).
///
/// Closing a VM costs emulated time (about 10 to 40 ms under QEMU with the default IPA size
/// that [`TestVm::new`] uses, seconds with a 52-bit IPA space on Linux 7.2; see
/// docs/kvm-backend-notes.md). A program that runs as PID 1 and powers the machine off when
/// done loses nothing by leaking. Each leaked VM keeps 1 + vCPUs file descriptors open and
/// its 64 KiB of guest memory allocated.
pub fn set_leak_on_drop(leak: bool) {
    LEAK_ON_DROP.store(leak, Ordering::SeqCst);
}

/// How a VM is set up: the scenario format's `vm` object ([`armfw::scenario::VmSpec`])
/// without the choice of firmware, which is not KVM's; the defaults are the scenario
/// format's.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct VmSpec {
    /// Number of vCPUs (at least 1). vCPU i is created with id i, so KVM gives it MPIDR
    /// affinity Aff0 = i % 16, Aff1 = i / 16.
    pub vcpus: usize,
    /// Initialise every vCPU with `KVM_ARM_VCPU_PSCI_0_2`.
    pub psci_0_2: bool,
    /// vCPUs initialised with `KVM_ARM_VCPU_POWER_OFF`.
    pub power_off: Vec<usize>,
    /// Enable `KVM_CAP_ARM_SYSTEM_SUSPEND` on the VM before any vCPU exists.
    pub system_suspend: bool,
    /// The vCPU features every vCPU is initialised with besides PSCI_0_2 / POWER_OFF
    /// (scenario format version 2).
    pub features: CpuFeatures,
    /// With SVE: the KVM_REG_ARM64_SVE_VLS value written before finalizing.
    pub sve_vls: Option<Vec<u8>>,
    /// Enable `KVM_CAP_ARM_WRITABLE_IMP_ID_REGS` before any vCPU exists (after
    /// `system_suspend`'s capability).
    pub writable_imp_id_regs: bool,
}

impl Default for VmSpec {
    fn default() -> VmSpec {
        VmSpec::from(&armfw::scenario::VmSpec::default())
    }
}

impl From<&armfw::scenario::VmSpec> for VmSpec {
    fn from(vm: &armfw::scenario::VmSpec) -> VmSpec {
        VmSpec {
            vcpus: vm.vcpus,
            psci_0_2: vm.psci_0_2,
            power_off: vm.power_off.clone(),
            system_suspend: vm.system_suspend,
            features: vm.features,
            sve_vls: vm.sve_vls.clone(),
            writable_imp_id_regs: vm.writable_imp_id_regs,
        }
    }
}

pub use armfw::firmware::{mp_state_from_name, mp_state_name};

/// The `KVM_SYSTEM_EVENT_*` name of a system event type, without the prefix; the types an
/// arm64 VM can exit with ([`SystemEventType`]).
pub fn system_event_name(kind: u32) -> Option<&'static str> {
    SystemEventType::from_kvm_value(kind).map(SystemEventType::name)
}

/// One VM with N initialised vCPUs and a code page, for making single calls.
///
/// Register and state accessors (`get_one_reg`, `reg_list`, `mp_state`, ...) return
/// `Err(Errno)` with KVM's errno when KVM's ioctl failed, and EINVAL without making one for
/// a vCPU index out of range or a buffer whose size is not the id's, as kvm-ioctls answers
/// a short buffer. [`TestVm::call`] returns [`Error`] for everything that is not one of the
/// [`crate::CallExit`] outcomes.
///
/// Each call sets x0..x3, zeroes x4..x17, sets PSTATE (EL1h, DAIF masked), VBAR_EL1 and
/// PC, then runs the vCPU: a CPU_ON reset of the vCPU in between cannot undo the set-up.
#[derive(Debug)]
pub struct TestVm {
    inner: Option<Inner>,
    vcpu_count: usize,
    /// Each vCPU's KVM_ARM_VCPU_INIT argument, for the re-initialisation of a CPU_ON.
    inits: Vec<kvm_vcpu_init>,
    target: u32,
    wait_limit: Duration,
}

/// Field order is drop order: the fds close before the memory that backs the slot is freed.
#[derive(Debug)]
struct Inner {
    vm: VmFd,
    vcpus: Vec<VcpuFd>,
    memory: Box<GuestMemory>,
}

impl TestVm {
    /// Creates the VM: KVM_CREATE_VM (default IPA size), KVM_ENABLE_CAP
    /// KVM_CAP_ARM_SYSTEM_SUSPEND if asked, one memory slot, then for each vCPU
    /// KVM_CREATE_VCPU and KVM_ARM_VCPU_INIT with KVM's preferred target and the features
    /// of `spec`.
    pub fn new(spec: &VmSpec) -> Result<TestVm, Error> {
        if spec.vcpus == 0 {
            return Err(Error::NoVcpus);
        }
        if let Some(&index) = spec.power_off.iter().find(|&&i| i >= spec.vcpus) {
            return Err(Error::PowerOffOutOfRange {
                index,
                vcpus: spec.vcpus,
            });
        }
        let kvm = Kvm::new().map_err(sys("open /dev/kvm"))?;
        // Type 0: the default 40-bit IPA space. kvm-ioctls' `create_vm` asks for the host's
        // largest (52 bits on QEMU's `-cpu max`), which makes closing a VM that has run take
        // 2 s (QEMU 7.2, `max,pauth-impdef=on`) to 12 s (plain `max`) on Linux 7.2, against
        // 30 ms with 40 bits (docs/kvm-backend-notes.md).
        let vm = kvm.create_vm_with_type(0).map_err(sys("KVM_CREATE_VM"))?;
        let mut inner = Inner {
            vm,
            vcpus: Vec::new(),
            memory: GuestMemory::new(),
        };
        let mut inits = Vec::new();
        let target = match inner.set_up(spec, &mut inits) {
            Ok(target) => target,
            Err(e) => {
                // The same policy as dropping a TestVm.
                if LEAK_ON_DROP.load(Ordering::SeqCst) {
                    std::mem::forget(inner);
                }
                return Err(e);
            }
        };
        Ok(TestVm {
            inner: Some(inner),
            vcpu_count: inits.len(),
            inits,
            target,
            wait_limit: DEFAULT_WAIT_LIMIT,
        })
    }

    /// Number of vCPUs.
    pub fn vcpu_count(&self) -> usize {
        self.vcpu_count
    }

    /// The target KVM_ARM_PREFERRED_TARGET named (5 is GENERIC_V8).
    pub fn preferred_target(&self) -> u32 {
        self.target
    }

    /// How long a call may wait in KVM_RUN before it is reported as
    /// [`crate::CallExit::Blocked`] ([`DEFAULT_WAIT_LIMIT`] unless set).
    pub fn wait_limit(&self) -> Duration {
        self.wait_limit
    }

    /// Sets the wait limit of calls. Values below 1 s are raised to 1 s: a call that returns
    /// takes milliseconds even under emulation, but a busy emulated host can stall for
    /// a good part of a second.
    pub fn set_wait_limit(&mut self, limit: Duration) {
        self.wait_limit = limit.max(Duration::from_secs(1));
    }

    /// Leaks the VM: its file descriptors stay open and its memory allocated, so KVM never
    /// destroys it (see [`set_leak_on_drop`]).
    pub fn leak(mut self) {
        std::mem::forget(self.inner.take());
    }

    /// KVM_GET_ONE_REG `id` on vCPU `vcpu`, into a buffer of the size that the id's size
    /// field names ([`OneRegId::size_bytes`]); the value is returned as that buffer.
    pub fn get_one_reg(&self, vcpu: usize, id: u64) -> Result<Vec<u8>, Errno> {
        let fd = self.vcpu_or_einval(vcpu)?;
        let mut buf = vec![0; OneRegId(id).size_bytes()];
        fd.get_one_reg(id, &mut buf).map_err(errno)?;
        Ok(buf)
    }

    /// KVM_GET_ONE_REG of a 64-bit register, as a number; EINVAL if `id` does not name a
    /// 64-bit register.
    pub fn get_u64(&self, vcpu: usize, id: u64) -> Result<u64, Errno> {
        let fd = self.vcpu_or_einval(vcpu)?;
        get_u64(fd, id)
    }

    /// KVM_SET_ONE_REG `id` on vCPU `vcpu` from `data`, which must hold exactly the number
    /// of bytes that the id's size field names (else EINVAL).
    pub fn set_one_reg(&self, vcpu: usize, id: u64, data: &[u8]) -> Result<(), Errno> {
        let fd = self.vcpu_or_einval(vcpu)?;
        if data.len() != OneRegId(id).size_bytes() {
            return Err(Errno::EINVAL);
        }
        fd.set_one_reg(id, data).map_err(errno)?;
        Ok(())
    }

    /// KVM_GET_REG_LIST on vCPU `vcpu`: every register id, in KVM's order.
    pub fn reg_list(&self, vcpu: usize) -> Result<Vec<u64>, Errno> {
        get_reg_list(self.vcpu_or_einval(vcpu)?)
    }

    /// KVM_GET_MP_STATE on vCPU `vcpu`.
    pub fn mp_state(&self, vcpu: usize) -> Result<u32, Errno> {
        Ok(self
            .vcpu_or_einval(vcpu)?
            .get_mp_state()
            .map_err(errno)?
            .mp_state)
    }

    /// KVM_SET_MP_STATE on vCPU `vcpu`.
    pub fn set_mp_state(&self, vcpu: usize, state: u32) -> Result<(), Errno> {
        set_mp_state(self.vcpu_or_einval(vcpu)?, state)
    }

    /// KVM_SET_DEVICE_ATTR on the VM, group KVM_ARM_VM_SMCCC_CTRL, attribute
    /// KVM_ARM_VM_SMCCC_FILTER, with `{base, nr_functions, action}` and a zero pad
    /// (action 0 HANDLE, 1 DENY, 2 FWD_TO_USER; see [`armfw::firmware::FilterAction::kvm_value`]). Kernels before
    /// 6.4 answer EINVAL.
    pub fn set_smccc_filter(&self, base: u32, nr_functions: u32, action: u8) -> Result<(), Errno> {
        set_smccc_filter(self.vm_fd(), base, nr_functions, action)
    }

    /// KVM_ARM_SET_COUNTER_OFFSET on the VM (6.4; kernels without it answer EINVAL): both
    /// counters read the host's counter minus `offset`, and from then on TIMER_CNT and
    /// PTIMER_CNT writes succeed and are ignored.
    pub fn set_counter_offset(&self, offset: u64) -> Result<(), Errno> {
        crate::sys::set_counter_offset(self.vm_fd(), offset)
    }

    /// KVM_HAS_DEVICE_ATTR for the SMCCC filter on the VM: `Ok(())` iff the kernel has it.
    pub fn has_smccc_filter(&self) -> Result<(), Errno> {
        let attr = kvm_device_attr {
            group: KVM_ARM_VM_SMCCC_CTRL,
            attr: u64::from(KVM_ARM_VM_SMCCC_FILTER),
            addr: 0,
            flags: 0,
        };
        self.vm_fd().has_device_attr(&attr).map_err(errno)
    }

    /// KVM_CHECK_EXTENSION `cap` on the VM fd (some capabilities answer per VM).
    pub fn check_vm_extension(&self, cap: u32) -> i32 {
        self.vm_fd().check_extension_raw(libc::c_ulong::from(cap))
    }

    /// PC and x0 of vCPU `vcpu`, read with KVM_GET_ONE_REG without running it: after a
    /// CPU_ON, the entry point and context id it was given.
    pub fn entry(&self, vcpu: usize) -> Result<(u64, u64), Errno> {
        Ok((
            self.get_u64(vcpu, regs::PC)?,
            self.get_u64(vcpu, regs::x(0))?,
        ))
    }

    /// What KVM does to the target of a CPU_ON, done from userspace: KVM_ARM_VCPU_INIT
    /// again with the vCPU's features (a reset: EL1h, DAIF masked, MMU off), MP state
    /// RUNNABLE, PC = `entry`, x0 = `context_id`.
    pub fn start_vcpu(&self, vcpu: usize, entry: u64, context_id: u64) -> Result<(), Error> {
        let fd = self.vcpu_fd(vcpu)?;
        let init = self.inits.get(vcpu).ok_or(Error::NoSuchVcpu {
            index: vcpu,
            count: self.vcpu_count,
        })?;
        fd.vcpu_init(init)
            .map_err(sys("KVM_ARM_VCPU_INIT (CPU_ON reset)"))?;
        set_mp_state(fd, KVM_MP_STATE_RUNNABLE).map_err(sys("KVM_SET_MP_STATE"))?;
        set_u64(fd, regs::PC, entry)?;
        set_u64(fd, regs::x(0), context_id)
    }

    /// KVM_SET_DEVICE_ATTR(KVM_ARM_VCPU_PVTIME_CTRL, KVM_ARM_VCPU_PVTIME_IPA) on vCPU
    /// `vcpu`: the guest physical address of its stolen-time structure (64-byte aligned,
    /// inside guest memory; once per vCPU, EEXIST after).
    pub fn set_pv_time_ipa(&self, vcpu: usize, ipa: u64) -> Result<(), Errno> {
        set_pv_time_ipa(self.vcpu_or_einval(vcpu)?, ipa)
    }

    /// KVM_GET_DEVICE_ATTR of the stolen-time IPA of vCPU `vcpu`: `None` where the VMM has
    /// set none (KVM reads back INVALID_GPA) or the host has no PV time.
    pub fn pv_time_ipa(&self, vcpu: usize) -> Result<Option<u64>, Errno> {
        pv_time_ipa(self.vcpu_or_einval(vcpu)?)
    }

    /// The guest physical address range of the VM's memory (where a stolen-time structure
    /// can go).
    pub fn guest_memory_range(&self) -> std::ops::Range<u64> {
        guest::MEM_BASE..guest::MEM_BASE + guest::MEM_SIZE as u64
    }

    /// The VM's fd and vCPU `vcpu`'s, for code that drives KVM directly.
    pub fn fds(&self, vcpu: usize) -> Result<(&VmFd, &VcpuFd), Error> {
        Ok((self.vm_fd(), self.vcpu_fd(vcpu)?))
    }

    /// The VM's fd.
    pub fn vm_fd(&self) -> &VmFd {
        &self.inner().vm
    }

    /// vCPU `vcpu`'s fd.
    pub fn vcpu_fd(&self, vcpu: usize) -> Result<&VcpuFd, Error> {
        let count = self.vcpu_count;
        self.inner()
            .vcpus
            .get(vcpu)
            .ok_or(Error::NoSuchVcpu { index: vcpu, count })
    }

    /// vCPU `vcpu`'s fd, to run it.
    pub(crate) fn vcpu_fd_mut(&mut self, vcpu: usize) -> Result<&mut VcpuFd, Error> {
        let count = self.vcpu_count;
        self.inner
            .as_mut()
            .and_then(|inner| inner.vcpus.get_mut(vcpu))
            .ok_or(Error::NoSuchVcpu { index: vcpu, count })
    }

    fn vcpu_or_einval(&self, vcpu: usize) -> Result<&VcpuFd, Errno> {
        self.vcpu_fd(vcpu).map_err(|_| Errno::EINVAL)
    }

    fn inner(&self) -> &Inner {
        // `inner` is taken only by `leak` (which consumes the TestVm) and by `drop`.
        self.inner
            .as_ref()
            .expect("a TestVm has its VM until it is dropped")
    }
}

impl Drop for TestVm {
    fn drop(&mut self) {
        if LEAK_ON_DROP.load(Ordering::SeqCst) {
            std::mem::forget(self.inner.take());
        }
    }
}

impl Inner {
    /// KVM_ENABLE_CAP if asked, the memory slot, and the vCPUs (each one's init argument
    /// pushed to `inits`): the preferred target.
    fn set_up(&mut self, spec: &VmSpec, inits: &mut Vec<kvm_vcpu_init>) -> Result<u32, Error> {
        if spec.system_suspend {
            let cap = kvm_enable_cap {
                cap: KVM_CAP_ARM_SYSTEM_SUSPEND,
                ..Default::default()
            };
            self.vm
                .enable_cap(&cap)
                .map_err(sys("KVM_ENABLE_CAP(KVM_CAP_ARM_SYSTEM_SUSPEND)"))?;
        }
        if spec.writable_imp_id_regs {
            let cap = kvm_enable_cap {
                cap: KVM_CAP_ARM_WRITABLE_IMP_ID_REGS,
                ..Default::default()
            };
            self.vm
                .enable_cap(&cap)
                .map_err(sys("KVM_ENABLE_CAP(KVM_CAP_ARM_WRITABLE_IMP_ID_REGS)"))?;
        }
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: guest::MEM_BASE,
            memory_size: guest::MEM_SIZE as u64,
            userspace_addr: self.memory.0.as_ptr() as u64,
        };
        // SAFETY: one KVM_SET_USER_MEMORY_REGION ioctl. The region is `self.memory`, a heap
        // block of exactly MEM_SIZE bytes, aligned to 64 KiB, that stays allocated as long as
        // the VM exists: Inner drops its fds before it, and leaking leaks both. Only the guest
        // writes to it once it is mapped.
        unsafe { self.vm.set_user_memory_region(region) }
            .map_err(sys("KVM_SET_USER_MEMORY_REGION"))?;
        let mut init = kvm_vcpu_init::default();
        self.vm
            .get_preferred_target(&mut init)
            .map_err(sys("KVM_ARM_PREFERRED_TARGET"))?;
        for i in 0..spec.vcpus {
            let vcpu = self
                .vm
                .create_vcpu(i as u64)
                .map_err(sys("KVM_CREATE_VCPU"))?;
            let mut features = init;
            if spec.psci_0_2 {
                features.features[0] |= 1 << KVM_ARM_VCPU_PSCI_0_2;
            }
            if spec.power_off.contains(&i) {
                features.features[0] |= 1 << KVM_ARM_VCPU_POWER_OFF;
            }
            features.features[0] |= spec.features.kvm_bits();
            vcpu.vcpu_init(&features)
                .map_err(sys("KVM_ARM_VCPU_INIT"))?;
            finish_init(&vcpu, spec)?;
            self.vcpus.push(vcpu);
            inits.push(features);
        }
        Ok(init.target)
    }
}

/// KVM_SET_DEVICE_ATTR(KVM_ARM_VCPU_PVTIME_IPA) on `fd`.
pub(crate) fn set_pv_time_ipa(fd: &VcpuFd, ipa: u64) -> Result<(), Errno> {
    let attr = kvm_device_attr {
        group: KVM_ARM_VCPU_PVTIME_CTRL,
        attr: u64::from(KVM_ARM_VCPU_PVTIME_IPA),
        addr: &raw const ipa as u64,
        flags: 0,
    };
    fd.set_device_attr(&attr).map_err(errno)
}

/// The stolen-time IPA of `fd`: `None` where none is set or the host has no PV time.
pub(crate) fn pv_time_ipa(fd: &VcpuFd) -> Result<Option<u64>, Errno> {
    let (group, attr) = (KVM_ARM_VCPU_PVTIME_CTRL, u64::from(KVM_ARM_VCPU_PVTIME_IPA));
    let probe = kvm_device_attr {
        group,
        attr,
        addr: 0,
        flags: 0,
    };
    if fd.has_device_attr(&probe).is_err() {
        return Ok(None);
    }
    let ipa = get_vcpu_attr_u64(fd, group, attr)?;
    Ok((ipa != u64::MAX).then_some(ipa))
}

/// What the scenario format's set-up does after KVM_ARM_VCPU_INIT: with SVE, SVE_VLS if
/// given, then KVM_ARM_VCPU_FINALIZE(KVM_ARM_VCPU_SVE); with PMUv3, KVM_ARM_VCPU_PMU_V3_INIT
/// with no interrupt and no in-kernel vGIC (without it the first KVM_RUN fails).
pub(crate) fn finish_init(vcpu: &VcpuFd, spec: &VmSpec) -> Result<(), Error> {
    if spec.features.has(CpuFeature::Sve) {
        if let Some(vls) = &spec.sve_vls {
            vcpu.set_one_reg(armfw::abi::vcpu_reg::SVE_VLS, vls)
                .map_err(sys("KVM_SET_ONE_REG(SVE_VLS)"))?;
        }
        let feature = libc::c_int::try_from(KVM_ARM_VCPU_SVE).unwrap_or(4);
        vcpu.vcpu_finalize(&feature)
            .map_err(sys("KVM_ARM_VCPU_FINALIZE(KVM_ARM_VCPU_SVE)"))?;
    }
    if spec.features.has(CpuFeature::PmuV3) {
        let attr = kvm_device_attr {
            group: KVM_ARM_VCPU_PMU_V3_CTRL,
            attr: u64::from(KVM_ARM_VCPU_PMU_V3_INIT),
            addr: 0,
            flags: 0,
        };
        vcpu.set_device_attr(&attr)
            .map_err(sys("KVM_SET_DEVICE_ATTR(KVM_ARM_VCPU_PMU_V3_INIT)"))?;
    }
    Ok(())
}

/// KVM_SET_DEVICE_ATTR(KVM_ARM_VM_SMCCC_CTRL, KVM_ARM_VM_SMCCC_FILTER) on `vm`: one range
/// `{base, nr_functions, action}` with a zero pad.
pub(crate) fn set_smccc_filter(
    vm: &VmFd,
    base: u32,
    nr_functions: u32,
    action: u8,
) -> Result<(), Errno> {
    let filter = kvm_smccc_filter {
        base,
        nr_functions,
        action,
        pad: [0; 15],
    };
    let attr = kvm_device_attr {
        group: KVM_ARM_VM_SMCCC_CTRL,
        attr: u64::from(KVM_ARM_VM_SMCCC_FILTER),
        addr: &raw const filter as u64,
        flags: 0,
    };
    vm.set_device_attr(&attr).map_err(errno)
}

/// KVM_GET_ONE_REG of a 64-bit register on `fd`; EINVAL for an id of another size.
pub(crate) fn get_u64(fd: &VcpuFd, id: u64) -> Result<u64, Errno> {
    if OneRegId(id).size_bytes() != 8 {
        return Err(Errno::EINVAL);
    }
    let mut buf = [0u8; 8];
    fd.get_one_reg(id, &mut buf).map_err(errno)?;
    Ok(u64::from_le_bytes(buf))
}

/// KVM_SET_ONE_REG of a 64-bit register on `fd`.
pub(crate) fn set_u64(fd: &VcpuFd, id: u64, value: u64) -> Result<(), Error> {
    fd.set_one_reg(id, &value.to_le_bytes())
        .map_err(sys("KVM_SET_ONE_REG"))?;
    Ok(())
}

/// KVM_SET_MP_STATE on `fd`.
pub(crate) fn set_mp_state(fd: &VcpuFd, state: u32) -> Result<(), Errno> {
    fd.set_mp_state(kvm_mp_state { mp_state: state })
        .map_err(errno)
}

#[cfg(test)]
mod tests {
    use super::*;
    use armfw::firmware::FilterAction;

    #[test]
    fn mp_state_10_is_suspended() {
        assert_eq!(mp_state_name(10), Some("SUSPENDED"));
    }

    #[test]
    fn mp_state_6_is_check_stop() {
        assert_eq!(mp_state_name(6), Some("CHECK_STOP"));
    }

    #[test]
    fn mp_state_from_name_stopped_is_5() {
        assert_eq!(mp_state_from_name("STOPPED"), Some(5));
    }

    #[test]
    fn mp_state_from_unknown_name_is_none() {
        assert_eq!(mp_state_from_name("stopped"), None);
    }

    #[test]
    fn system_event_1_is_shutdown() {
        assert_eq!(system_event_name(1), Some("SHUTDOWN"));
    }

    #[test]
    fn filter_action_values_match_the_uapi_header() {
        // include/uapi/linux/kvm.h: KVM_SMCCC_FILTER_HANDLE 0, DENY 1, FWD_TO_USER 2.
        assert_eq!(
            [
                FilterAction::Handle.kvm_value(),
                FilterAction::Deny.kvm_value(),
                FilterAction::Forward.kvm_value(),
            ],
            [0, 1, 2]
        );
    }

    #[test]
    fn default_spec_is_one_psci_0_2_vcpu() {
        assert_eq!(
            VmSpec::default(),
            VmSpec {
                vcpus: 1,
                psci_0_2: true,
                power_off: vec![],
                system_suspend: false,
                features: CpuFeatures::NONE,
                sve_vls: None,
                writable_imp_id_regs: false,
            }
        );
    }
}

// SPDX-License-Identifier: Apache-2.0 OR MIT
//! [`TestVm`]: one VM whose vCPUs make single PSCI/SMCCC calls.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use armfw::firmware::Conduit;
use armfw::firmware::{KVM_MP_STATE_NAMES, SystemEventType};
use kvm_bindings::{
    KVM_ARM_VCPU_POWER_OFF, KVM_ARM_VCPU_PSCI_0_2, KVM_ARM_VCPU_PVTIME_CTRL,
    KVM_ARM_VCPU_PVTIME_IPA, KVM_ARM_VM_SMCCC_CTRL, KVM_ARM_VM_SMCCC_FILTER,
    KVM_CAP_ARM_SYSTEM_SUSPEND, kvm_device_attr, kvm_enable_cap, kvm_mp_state, kvm_smccc_filter,
    kvm_userspace_memory_region, kvm_vcpu_init,
};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};
use vmm_sys_util::ioctl::{ioctl_with_mut_ptr, ioctl_with_ref};

use crate::guest::{self, GuestMemory, MmioExit};
use crate::regs;
use crate::watchdog::Watchdog;
use crate::{Errno, Error};

// KVM_GET_REG_LIST is called directly: kvm-bindings' RegList holds at most 500 ids.
vmm_sys_util::ioctl_iowr_nr!(
    KVM_GET_REG_LIST,
    kvm_bindings::KVMIO,
    0xb0,
    kvm_bindings::kvm_reg_list
);

// KVM_GET_DEVICE_ATTR on a vCPU: kvm-ioctls has no vCPU getter (include/uapi/linux/kvm.h:
// _IOW(KVMIO, 0xe2, struct kvm_device_attr)).
vmm_sys_util::ioctl_iow_nr!(
    KVM_GET_DEVICE_ATTR,
    kvm_bindings::KVMIO,
    0xe2,
    kvm_bindings::kvm_device_attr
);

/// The default wait limit of a call; see [`TestVm::set_wait_limit`].
pub const DEFAULT_WAIT_LIMIT: Duration = Duration::from_secs(1);

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

/// How a VM is set up; the defaults are those of the scenario format.
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
}

impl Default for VmSpec {
    fn default() -> VmSpec {
        VmSpec {
            vcpus: 1,
            psci_0_2: true,
            power_off: Vec::new(),
            system_suspend: false,
        }
    }
}

/// How a call ended.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum CallExit {
    /// The call returned to the guest; `x` is x0..x3 as the guest sees them.
    Returned {
        /// x0..x3 after the call.
        x: [u64; 4],
    },
    /// KVM exited with `KVM_EXIT_SYSTEM_EVENT`.
    SystemEvent {
        /// `system_event.type` (1 SHUTDOWN, 2 RESET, 3 CRASH, 4 WAKEUP, 5 SUSPEND; see
        /// [`system_event_name`]).
        kind: u32,
        /// `system_event.data[..ndata]`.
        data: Vec<u64>,
        /// x0..x3 as they stand at the exit.
        x: [u64; 4],
    },
    /// KVM forwarded the call to userspace (`KVM_EXIT_HYPERCALL`, SMCCC filter action
    /// FWD_TO_USER). The PC is already past the HVC/SMC; [`TestVm::resume`] answers the
    /// call, and the next [`TestVm::call`] on the vCPU starts afresh.
    Hypercall {
        /// `hypercall.nr`: the function id.
        nr: u64,
        /// `hypercall.flags`: bit 0 `KVM_HYPERCALL_EXIT_SMC`, bit 1
        /// `KVM_HYPERCALL_EXIT_16BIT`.
        flags: u64,
        /// x0..x3 as the guest passed them.
        x: [u64; 4],
    },
    /// KVM_RUN did not return within the wait limit and was interrupted.
    Blocked {
        /// KVM_GET_MP_STATE afterwards (see [`mp_state_name`]).
        mp_state: u32,
        /// x0..x3 as KVM left them.
        x: [u64; 4],
    },
}

/// `KVM_MP_STATE_RUNNABLE`.
pub const MP_STATE_RUNNABLE: u32 = 0;
/// `KVM_MP_STATE_STOPPED`.
pub const MP_STATE_STOPPED: u32 = 5;
/// `KVM_MP_STATE_SUSPENDED` (10; 6 is CHECK_STOP).
pub const MP_STATE_SUSPENDED: u32 = 10;

/// The `KVM_MP_STATE_*` name of `state` without its prefix (`"RUNNABLE"`, `"STOPPED"`,
/// `"SUSPENDED"`, ...), from the core's table ([`armfw::firmware::KVM_MP_STATE_NAMES`]).
pub fn mp_state_name(state: u32) -> Option<&'static str> {
    KVM_MP_STATE_NAMES
        .iter()
        .find(|(_, v)| *v == state)
        .map(|(n, _)| *n)
}

/// The `KVM_MP_STATE_*` value named `name` (without the prefix): the inverse of
/// [`mp_state_name`].
pub fn mp_state_from_name(name: &str) -> Option<u32> {
    KVM_MP_STATE_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
}

/// The `KVM_SYSTEM_EVENT_*` name of a system event type, without the prefix; the types an
/// arm64 VM can exit with ([`SystemEventType`]).
pub fn system_event_name(kind: u32) -> Option<&'static str> {
    SystemEventType::from_kvm_value(kind).map(SystemEventType::name)
}

/// One VM with N initialised vCPUs and a code page, for making single calls.
///
/// Register and state accessors (`get_one_reg`, `reg_list`, `mp_state`, ...) return
/// `Err(Errno)` exactly when KVM's ioctl failed, with KVM's errno; they panic on a vCPU
/// index out of range (check against [`TestVm::vcpu_count`] first). [`TestVm::call`]
/// returns [`Error`] for everything that is not one of the [`CallExit`] outcomes.
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
            return Err(Error::InvalidSpec("a VM needs at least one vCPU".into()));
        }
        if let Some(i) = spec.power_off.iter().find(|&&i| i >= spec.vcpus) {
            return Err(Error::InvalidSpec(format!(
                "power_off names vCPU {i}, the VM has {}",
                spec.vcpus
            )));
        }
        let kvm = Kvm::new().map_err(sys("open /dev/kvm"))?;
        // Type 0: the default 40-bit IPA space. kvm-ioctls' `create_vm` asks for the host's
        // largest (52 bits on QEMU's `-cpu max`), which makes closing a VM that has run take
        // 2 s (QEMU 7.2, `max,pauth-impdef=on`) to 12 s (plain `max`) on Linux 7.2, against
        // 30 ms with 40 bits (docs/kvm-backend-notes.md).
        let vm = kvm.create_vm_with_type(0).map_err(sys("KVM_CREATE_VM"))?;
        // From here on, an early return drops `this`, which honours set_leak_on_drop.
        let mut this = TestVm {
            inner: Some(Inner {
                vm,
                vcpus: Vec::new(),
                memory: GuestMemory::new(),
            }),
            vcpu_count: 0,
            inits: Vec::new(),
            target: 0,
            wait_limit: DEFAULT_WAIT_LIMIT,
        };
        let inner = this.inner.as_mut().expect("just set");
        if spec.system_suspend {
            let cap = kvm_enable_cap {
                cap: KVM_CAP_ARM_SYSTEM_SUSPEND,
                ..Default::default()
            };
            inner
                .vm
                .enable_cap(&cap)
                .map_err(sys("KVM_ENABLE_CAP(KVM_CAP_ARM_SYSTEM_SUSPEND)"))?;
        }
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: guest::MEM_BASE,
            memory_size: guest::MEM_SIZE as u64,
            userspace_addr: inner.memory.0.as_ptr() as u64,
        };
        // SAFETY: one KVM_SET_USER_MEMORY_REGION ioctl. The region is `inner.memory`, a
        // heap block of exactly MEM_SIZE bytes, aligned to 64 KiB, that stays allocated as
        // long as the VM exists: Inner drops its fds before it, and leaking leaks both.
        // Only the guest writes to it once it is mapped.
        unsafe { inner.vm.set_user_memory_region(region) }
            .map_err(sys("KVM_SET_USER_MEMORY_REGION"))?;
        let mut init = kvm_vcpu_init::default();
        inner
            .vm
            .get_preferred_target(&mut init)
            .map_err(sys("KVM_ARM_PREFERRED_TARGET"))?;
        this.target = init.target;
        for i in 0..spec.vcpus {
            let vcpu = inner
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
            vcpu.vcpu_init(&features)
                .map_err(sys("KVM_ARM_VCPU_INIT"))?;
            inner.vcpus.push(vcpu);
            this.inits.push(features);
            this.vcpu_count = i + 1;
        }
        Ok(this)
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
    /// [`CallExit::Blocked`] ([`DEFAULT_WAIT_LIMIT`] unless set).
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
    /// field names ([`regs::one_reg_size`]); the value is returned as that buffer.
    ///
    /// # Panics
    ///
    /// If `vcpu` is out of range.
    pub fn get_one_reg(&self, vcpu: usize, id: u64) -> Result<Vec<u8>, Errno> {
        let mut buf = vec![0; regs::one_reg_size(id)];
        self.vcpu(vcpu).get_one_reg(id, &mut buf)?;
        Ok(buf)
    }

    /// KVM_GET_ONE_REG of a 64-bit register, as a number.
    ///
    /// # Panics
    ///
    /// If `vcpu` is out of range or `id` does not name a 64-bit register.
    pub fn get_u64(&self, vcpu: usize, id: u64) -> Result<u64, Errno> {
        assert_eq!(
            regs::one_reg_size(id),
            8,
            "get_u64 of a register that is not 64-bit"
        );
        let buf = self.get_one_reg(vcpu, id)?;
        Ok(u64::from_le_bytes(buf.try_into().expect("8 bytes")))
    }

    /// KVM_SET_ONE_REG `id` on vCPU `vcpu` from `data`, which holds exactly the number of
    /// bytes that the id's size field names.
    ///
    /// # Panics
    ///
    /// If `vcpu` is out of range or `data.len()` is not [`regs::one_reg_size`]`(id)`.
    pub fn set_one_reg(&self, vcpu: usize, id: u64, data: &[u8]) -> Result<(), Errno> {
        assert_eq!(
            data.len(),
            regs::one_reg_size(id),
            "set_one_reg: buffer size"
        );
        self.vcpu(vcpu).set_one_reg(id, data)?;
        Ok(())
    }

    /// KVM_GET_REG_LIST on vCPU `vcpu`: every register id, in KVM's order.
    ///
    /// # Panics
    ///
    /// If `vcpu` is out of range.
    pub fn reg_list(&self, vcpu: usize) -> Result<Vec<u64>, Errno> {
        get_reg_list(self.vcpu(vcpu))
    }

    /// KVM_GET_MP_STATE on vCPU `vcpu`.
    ///
    /// # Panics
    ///
    /// If `vcpu` is out of range.
    pub fn mp_state(&self, vcpu: usize) -> Result<u32, Errno> {
        Ok(self.vcpu(vcpu).get_mp_state()?.mp_state)
    }

    /// KVM_SET_MP_STATE on vCPU `vcpu`.
    ///
    /// # Panics
    ///
    /// If `vcpu` is out of range.
    pub fn set_mp_state(&self, vcpu: usize, state: u32) -> Result<(), Errno> {
        self.vcpu(vcpu)
            .set_mp_state(kvm_mp_state { mp_state: state })?;
        Ok(())
    }

    /// KVM_SET_DEVICE_ATTR on the VM, group KVM_ARM_VM_SMCCC_CTRL, attribute
    /// KVM_ARM_VM_SMCCC_FILTER, with `{base, nr_functions, action}` and a zero pad
    /// (action 0 HANDLE, 1 DENY, 2 FWD_TO_USER). Kernels before 6.4 answer EINVAL.
    pub fn set_smccc_filter(&self, base: u32, nr_functions: u32, action: u8) -> Result<(), Errno> {
        set_smccc_filter(&self.inner().vm, base, nr_functions, action)
    }

    /// KVM_HAS_DEVICE_ATTR for the SMCCC filter on the VM: `Ok(())` iff the kernel has it.
    pub fn has_smccc_filter(&self) -> Result<(), Errno> {
        let attr = kvm_device_attr {
            group: KVM_ARM_VM_SMCCC_CTRL,
            attr: u64::from(KVM_ARM_VM_SMCCC_FILTER),
            addr: 0,
            flags: 0,
        };
        self.inner().vm.has_device_attr(&attr)?;
        Ok(())
    }

    /// KVM_CHECK_EXTENSION `cap` on the VM fd (some capabilities answer per VM).
    pub fn check_vm_extension(&self, cap: u32) -> i32 {
        self.inner()
            .vm
            .check_extension_raw(libc::c_ulong::from(cap))
    }

    /// PC and x0 of vCPU `vcpu`, read with KVM_GET_ONE_REG without running it: after a
    /// CPU_ON, the entry point and context id it was given.
    ///
    /// # Panics
    ///
    /// If `vcpu` is out of range.
    pub fn entry(&self, vcpu: usize) -> Result<(u64, u64), Errno> {
        Ok((
            self.get_u64(vcpu, regs::PC)?,
            self.get_u64(vcpu, regs::x(0))?,
        ))
    }

    /// Makes vCPU `vcpu` execute `hvc #0` or `smc #0` with x0..x3 = `x` (x4..x17 = 0) and
    /// reports how that ended.
    pub fn call(&mut self, vcpu: usize, conduit: Conduit, x: [u64; 4]) -> Result<CallExit, Error> {
        self.check_vcpu(vcpu)?;
        let entry = match conduit {
            Conduit::Hvc => guest::HVC_ENTRY,
            Conduit::Smc => guest::SMC_ENTRY,
        };
        let fd = self.vcpu(vcpu);
        for (i, &value) in x.iter().enumerate() {
            set_u64(fd, regs::x(i), value)?;
        }
        for i in 4..=17 {
            set_u64(fd, regs::x(i), 0)?;
        }
        set_u64(fd, regs::PSTATE, guest::PSTATE_EL1H_MASKED)?;
        set_u64(fd, regs::VBAR_EL1, guest::VECTORS)?;
        set_u64(fd, regs::PC, entry)?;
        self.run_call(vcpu)
    }

    /// Answers a call that KVM forwarded to userspace ([`CallExit::Hypercall`]): writes
    /// x0..x3 = `x` and runs the vCPU on from where it stopped (after the HVC/SMC).
    pub fn resume(&mut self, vcpu: usize, x: [u64; 4]) -> Result<CallExit, Error> {
        self.check_vcpu(vcpu)?;
        let fd = self.vcpu(vcpu);
        for (i, &value) in x.iter().enumerate() {
            set_u64(fd, regs::x(i), value)?;
        }
        self.run_call(vcpu)
    }

    /// Runs vCPU `vcpu` on from where it stopped, its registers as they are (after a
    /// [`CallExit::Hypercall`] that userspace firmware answered in place).
    pub fn run_on(&mut self, vcpu: usize) -> Result<CallExit, Error> {
        self.check_vcpu(vcpu)?;
        self.run_call(vcpu)
    }

    /// Runs vCPU `vcpu` from a `wfi` that leaves as a returned call once an interrupt is
    /// pending: how userspace firmware completes CPU_SUSPEND exactly as KVM does.
    pub fn run_on_after_wfi(&mut self, vcpu: usize) -> Result<CallExit, Error> {
        self.check_vcpu(vcpu)?;
        set_u64(self.vcpu(vcpu), regs::PC, guest::WFI_ENTRY)?;
        self.run_call(vcpu)
    }

    /// What KVM does to the target of a CPU_ON, done from userspace: KVM_ARM_VCPU_INIT
    /// again with the vCPU's features (a reset: EL1h, DAIF masked, MMU off), MP state
    /// RUNNABLE, PC = `entry`, x0 = `context_id`.
    pub fn start_vcpu(&self, vcpu: usize, entry: u64, context_id: u64) -> Result<(), Error> {
        self.check_vcpu(vcpu)?;
        let fd = self.vcpu(vcpu);
        fd.vcpu_init(&self.inits[vcpu])
            .map_err(sys("KVM_ARM_VCPU_INIT (CPU_ON reset)"))?;
        fd.set_mp_state(kvm_mp_state {
            mp_state: MP_STATE_RUNNABLE,
        })
        .map_err(sys("KVM_SET_MP_STATE"))?;
        set_u64(fd, regs::PC, entry)?;
        set_u64(fd, regs::x(0), context_id)
    }

    /// KVM_SET_DEVICE_ATTR(KVM_ARM_VCPU_PVTIME_CTRL, KVM_ARM_VCPU_PVTIME_IPA) on vCPU
    /// `vcpu`: the guest physical address of its stolen-time structure (64-byte aligned,
    /// inside guest memory; once per vCPU, EEXIST after).
    pub fn set_pv_time_ipa(&self, vcpu: usize, ipa: u64) -> Result<(), Errno> {
        self.check_vcpu(vcpu).map_err(|_| Errno(libc::EINVAL))?;
        let attr = kvm_device_attr {
            group: KVM_ARM_VCPU_PVTIME_CTRL,
            attr: u64::from(KVM_ARM_VCPU_PVTIME_IPA),
            addr: &ipa as *const u64 as u64,
            flags: 0,
        };
        self.vcpu(vcpu).set_device_attr(&attr)?;
        Ok(())
    }

    /// KVM_GET_DEVICE_ATTR of the stolen-time IPA of vCPU `vcpu`: `None` where the VMM has
    /// set none (KVM reads back INVALID_GPA) or the host has no PV time.
    pub fn pv_time_ipa(&self, vcpu: usize) -> Result<Option<u64>, Errno> {
        self.check_vcpu(vcpu).map_err(|_| Errno(libc::EINVAL))?;
        let mut ipa = u64::MAX;
        let attr = kvm_device_attr {
            group: KVM_ARM_VCPU_PVTIME_CTRL,
            attr: u64::from(KVM_ARM_VCPU_PVTIME_IPA),
            addr: &mut ipa as *mut u64 as u64,
            flags: 0,
        };
        let fd = self.vcpu(vcpu);
        if fd.has_device_attr(&attr).is_err() {
            return Ok(None);
        }
        // SAFETY: one KVM_GET_DEVICE_ATTR ioctl on a vCPU fd; `attr.addr` points to `ipa`, a
        // u64 that outlives the call, which is what KVM writes for this attribute.
        let ret = unsafe { ioctl_with_ref(fd, KVM_GET_DEVICE_ATTR(), &attr) };
        if ret != 0 {
            return Err(Errno::last());
        }
        Ok((ipa != u64::MAX).then_some(ipa))
    }

    /// The guest physical address range of the VM's memory (where a stolen-time structure
    /// can go).
    pub fn guest_memory_range(&self) -> std::ops::Range<u64> {
        guest::MEM_BASE..guest::MEM_BASE + guest::MEM_SIZE as u64
    }

    /// The VM's fd and vCPU `vcpu`'s, for code that drives KVM directly.
    ///
    /// # Panics
    ///
    /// If `vcpu` is out of range.
    pub fn fds(&self, vcpu: usize) -> (&VmFd, &VcpuFd) {
        (&self.inner().vm, self.vcpu(vcpu))
    }

    fn run_call(&mut self, vcpu: usize) -> Result<CallExit, Error> {
        let exit = match self.run_watched(vcpu)? {
            None => {
                let mp_state = self.mp_state(vcpu).map_err(sys("KVM_GET_MP_STATE"))?;
                return Ok(CallExit::Blocked {
                    mp_state,
                    x: self.read_x(vcpu)?,
                });
            }
            Some(exit) => exit,
        };
        match exit {
            Exit::Mmio { addr, write: true } => {
                // Complete the exit whatever the outcome, then report the outcome.
                let result = self.mmio_outcome(vcpu, addr);
                self.complete_mmio(vcpu)?;
                result
            }
            Exit::Mmio { addr, write: false } => {
                self.complete_mmio(vcpu)?;
                Err(Error::UnexpectedExit {
                    vcpu,
                    exit: format!("MMIO read of {addr:#x}"),
                })
            }
            Exit::SystemEvent { kind, data } => Ok(CallExit::SystemEvent {
                kind,
                data,
                x: self.read_x(vcpu)?,
            }),
            Exit::Hypercall { nr, flags } => Ok(CallExit::Hypercall {
                nr,
                flags,
                x: self.read_x(vcpu)?,
            }),
            Exit::Other(exit) => Err(Error::UnexpectedExit { vcpu, exit }),
        }
    }

    /// What the guest's MMIO write to `addr` means: the call returned, or the guest took an
    /// exception, or something else wrote there.
    fn mmio_outcome(&self, vcpu: usize, addr: u64) -> Result<CallExit, Error> {
        let get = |id| self.get_u64(vcpu, id).map_err(sys("KVM_GET_ONE_REG"));
        match guest::classify_mmio(addr) {
            MmioExit::Returned => Ok(CallExit::Returned {
                x: self.read_x(vcpu)?,
            }),
            MmioExit::Vector(index) => Err(Error::GuestException {
                vcpu,
                vector: guest::vector_name(index),
                esr: get(regs::ESR_EL1)?,
                elr: get(regs::ELR_EL1)?,
                far: get(regs::FAR_EL1)?,
            }),
            MmioExit::Unknown => Err(Error::UnexpectedExit {
                vcpu,
                exit: format!("MMIO write to {addr:#x}"),
            }),
        }
    }

    /// KVM_RUN under the watchdog. `None`: the wait limit ran out.
    fn run_watched(&mut self, vcpu: usize) -> Result<Option<Exit>, Error> {
        let limit = self.wait_limit;
        let fd = self.vcpu_mut(vcpu);
        fd.set_kvm_immediate_exit(0);
        let immediate_exit: *mut u8 = &raw mut fd.get_kvm_run().immediate_exit;
        let watchdog = Watchdog::arm(limit, immediate_exit)?;
        let result = loop {
            match fd.run() {
                Ok(exit) => break Ok(Some(Exit::from(exit))),
                Err(e) if e.errno() == libc::EINTR && watchdog.fired() => break Ok(None),
                // Another signal: run on (only the watchdog sets immediate_exit).
                Err(e) if e.errno() == libc::EINTR => {}
                Err(e) => break Err(sys("KVM_RUN")(e)),
            }
        };
        watchdog.disarm()?;
        fd.set_kvm_immediate_exit(0);
        result
    }

    /// Completes an MMIO exit: KVM finishes the access and moves the PC past the store only
    /// on the next KVM_RUN, which `immediate_exit = 1` makes return (EINTR) before the guest
    /// runs. Without it, the next call's new PC would be advanced by 4 and skip its HVC.
    fn complete_mmio(&mut self, vcpu: usize) -> Result<(), Error> {
        let fd = self.vcpu_mut(vcpu);
        fd.set_kvm_immediate_exit(1);
        let result = fd.run().map(|exit| format!("{exit:?}"));
        fd.set_kvm_immediate_exit(0);
        match result {
            Err(e) if e.errno() == libc::EINTR => Ok(()),
            Err(e) => Err(sys("KVM_RUN (completing an MMIO exit)")(e)),
            Ok(exit) => Err(Error::UnexpectedExit {
                vcpu,
                exit: format!("{exit} while completing an MMIO exit"),
            }),
        }
    }

    fn read_x(&self, vcpu: usize) -> Result<[u64; 4], Error> {
        let mut x = [0; 4];
        for (i, value) in x.iter_mut().enumerate() {
            *value = self
                .get_u64(vcpu, regs::x(i))
                .map_err(sys("KVM_GET_ONE_REG"))?;
        }
        Ok(x)
    }

    fn check_vcpu(&self, vcpu: usize) -> Result<(), Error> {
        if vcpu < self.vcpu_count {
            Ok(())
        } else {
            Err(Error::NoSuchVcpu {
                index: vcpu,
                count: self.vcpu_count,
            })
        }
    }

    fn inner(&self) -> &Inner {
        self.inner
            .as_ref()
            .expect("a TestVm has its VM until it is dropped")
    }

    fn vcpu(&self, vcpu: usize) -> &VcpuFd {
        let count = self.vcpu_count;
        self.inner()
            .vcpus
            .get(vcpu)
            .unwrap_or_else(|| panic!("vCPU {vcpu} does not exist (the VM has {count})"))
    }

    fn vcpu_mut(&mut self, vcpu: usize) -> &mut VcpuFd {
        &mut self
            .inner
            .as_mut()
            .expect("a TestVm has its VM until it is dropped")
            .vcpus[vcpu]
    }
}

impl Drop for TestVm {
    fn drop(&mut self) {
        if LEAK_ON_DROP.load(Ordering::SeqCst) {
            std::mem::forget(self.inner.take());
        }
    }
}

/// A KVM_RUN exit, owned (kvm-ioctls' borrows the vCPU).
#[derive(Debug)]
enum Exit {
    Mmio { addr: u64, write: bool },
    SystemEvent { kind: u32, data: Vec<u64> },
    Hypercall { nr: u64, flags: u64 },
    Other(String),
}

impl From<VcpuExit<'_>> for Exit {
    fn from(exit: VcpuExit<'_>) -> Exit {
        match exit {
            VcpuExit::MmioWrite(addr, _) => Exit::Mmio { addr, write: true },
            VcpuExit::MmioRead(addr, _) => Exit::Mmio { addr, write: false },
            VcpuExit::SystemEvent(kind, data) => Exit::SystemEvent {
                kind,
                data: data.to_vec(),
            },
            // kvm-ioctls reads the x86 `longmode` member of the union that arm64 calls
            // `flags`: the low 32 bits, which hold every flag defined.
            VcpuExit::Hypercall(h) => Exit::Hypercall {
                nr: h.nr,
                flags: u64::from(h.longmode),
            },
            other => Exit::Other(format!("{other:?}")),
        }
    }
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
        addr: &filter as *const kvm_smccc_filter as u64,
        flags: 0,
    };
    vm.set_device_attr(&attr)?;
    Ok(())
}

fn set_u64(fd: &VcpuFd, id: u64, value: u64) -> Result<(), Error> {
    fd.set_one_reg(id, &value.to_le_bytes())
        .map_err(sys("KVM_SET_ONE_REG"))?;
    Ok(())
}

/// Maps a failed ioctl to [`Error::Sys`] named `op`.
fn sys<E: Into<Errno>>(op: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::Sys {
        op,
        errno: e.into(),
    }
}

/// KVM_GET_REG_LIST, called directly: first with room for the number of ids last reported
/// (0 at first), which fails with E2BIG and the number needed, then again.
fn get_reg_list(vcpu: &VcpuFd) -> Result<Vec<u64>, Errno> {
    let mut n = 0;
    for _ in 0..4 {
        // struct kvm_reg_list: the number of ids, then room for that many.
        let mut buf = vec![0u64; n + 1];
        buf[0] = n as u64;
        // SAFETY: one KVM_GET_REG_LIST ioctl on a vCPU fd. `buf` is a struct kvm_reg_list
        // whose count (buf[0]) is the number of u64 that follow it in `buf`; the kernel
        // writes at most that many ids, and the count.
        let ret = unsafe { ioctl_with_mut_ptr(vcpu, KVM_GET_REG_LIST(), buf.as_mut_ptr()) };
        if ret == 0 {
            let count = usize::try_from(buf[0]).unwrap_or(usize::MAX).min(n);
            buf.truncate(count + 1);
            buf.remove(0);
            return Ok(buf);
        }
        let errno = Errno::last();
        if errno.0 != libc::E2BIG {
            return Err(errno);
        }
        n = usize::try_from(buf[0]).map_err(|_| errno)?;
    }
    Err(Errno(libc::E2BIG))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn default_spec_is_one_psci_0_2_vcpu() {
        assert_eq!(
            VmSpec::default(),
            VmSpec {
                vcpus: 1,
                psci_0_2: true,
                power_off: vec![],
                system_suspend: false
            }
        );
    }
}

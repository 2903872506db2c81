//! armfw's firmware engine as the guest's firmware on real KVM: the SMCCC filter forwards
//! PSCI and the other services to userspace (`KVM_EXIT_HYPERCALL`), and [`FirmwareServer`]
//! answers them with [`armfw::Firmware`], as KVM's in-kernel firmware would.
//!
//! What stays in the kernel: the architecture calls (SMCCC_VERSION, ARCH_FEATURES, the
//! workaround calls), which the filter cannot forward (KVM reserves
//! 0x80000000–0x8000FFFF and 0xC0000000–0xC000FFFF), and the firmware pseudo-registers,
//! which the VMM keeps writing to KVM; it also tells the engine (see below), so that both
//! halves of the firmware agree.
//!
//! A VMM's vCPU loop, in a few lines:
//!
//! ```no_run
//! # fn demo(vm: &kvm_ioctls::VmFd, vcpu: &mut kvm_ioctls::VcpuFd) -> Result<(), armfw_kvm::Error> {
//! use armfw::firmware::{Action, VcpuFeatures};
//! use armfw_kvm::serve::{FirmwareServer, HostServices};
//!
//! let profile = armfw_kvm::probe::probe(None, None)?; // or a profile the VMM pins
//! let mut server = FirmwareServer::new(&profile);
//! server.firmware_mut().add_vcpu().ok();
//! server.firmware_mut().init_vcpu(0, VcpuFeatures { psci_0_2: true, power_off: false }).ok();
//! server.install(vm)?; // before the first KVM_RUN
//! server.firmware_mut().vcpu_run(0).ok();
//! loop {
//!     let (nr, flags) = match vcpu.run() {
//!         Ok(kvm_ioctls::VcpuExit::Hypercall(h)) => (h.nr, u64::from(h.longmode)),
//!         _ => break, // the VMM's other exits
//!     };
//!     let out = server.handle_hypercall(0, vcpu, nr, flags, &mut HostServices::new(vcpu))?;
//!     match out.action {
//!         Action::StartVcpu(_start) => { /* reset that vCPU: see TestVm::start_vcpu */ }
//!         Action::SystemEvent(_event) => break, // power off, reset, suspend
//!         _ => {} // registers written, CPU_OFF applied: run on
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! A VMM with one thread per vCPU sets the engine up the same way, then calls
//! [`FirmwareServer::share`] and moves each [`VcpuServer`] to its vCPU's thread: calls of
//! different vCPUs run in parallel under the engine's own per-vCPU locks.
//!
//! The VMM keeps the engine in step with what it does to KVM directly: every successful
//! KVM_SET_ONE_REG of a firmware register (`firmware_mut().set_one_reg`), KVM_SET_MP_STATE
//! (`set_mp_state`), the stolen-time IPA (`set_pv_time_ipa`), and `vcpu_run` before a vCPU
//! first runs.

use armfw::abi::FunctionId;
use armfw::abi::function::Service;
use armfw::abi::psci::KVM_PSCI_FN_CPU_SUSPEND;
use armfw::firmware::shared::{SharedFirmware, VcpuHandle};
use armfw::firmware::{
    Action, Call, CallOutcome, Conduit, Firmware, KVM_HYPERCALL_EXIT_SMC, PtpCounter, PtpTime,
    Services, VcpuError,
};
use armfw::profile::Profile;
use kvm_bindings::kvm_mp_state;
use kvm_ioctls::{VcpuFd, VmFd};

use crate::{Errno, Error, MP_STATE_STOPPED, regs};

/// The SMCCC filter's FWD_TO_USER action.
const FWD_TO_USER: u8 = 2;

/// The function-id ranges (base, count) that [`FirmwareServer::install`] forwards to
/// userspace: the whole owner range of every service the engine answers apart from the
/// architecture calls (the function table's [`Service`]s: PSCI and TRNG share the standard
/// secure service, then PV time and KVM's vendor service), each in its SMC32 and SMC64 form,
/// and KVM's PSCI 0.1 ids.
pub const FORWARDED_RANGES: [(u32, u32); 7] = [
    owner_range(Service::Psci, false),
    owner_range(Service::Psci, true),
    owner_range(Service::PvTime, false),
    owner_range(Service::PvTime, true),
    owner_range(Service::VendorHyp, false),
    owner_range(Service::VendorHyp, true),
    // KVM's own PSCI 0.1 ids do not follow SMCCC: four raw values from KVM_PSCI_FN_BASE.
    (KVM_PSCI_FN_CPU_SUSPEND, 4),
];

/// Every function id of `service`'s owner in one calling convention.
const fn owner_range(service: Service, is_64: bool) -> (u32, u32) {
    (
        FunctionId::fast(is_64, service.owner_number(), 0).0,
        0x1_0000,
    )
}

/// One VM's firmware, answered in userspace: set up here (single-threaded, as the scenario
/// backend runs it), or handed to one thread per vCPU with [`FirmwareServer::share`].
#[derive(Debug)]
pub struct FirmwareServer {
    fw: Firmware,
}

impl FirmwareServer {
    /// The firmware of a new VM on the host `profile` describes (usually the running host's,
    /// from [`crate::probe::probe`]: then the guest cannot tell the difference).
    pub fn new(profile: &Profile) -> FirmwareServer {
        FirmwareServer {
            fw: Firmware::new(profile),
        }
    }

    /// The engine.
    pub fn firmware(&self) -> &Firmware {
        &self.fw
    }

    /// The engine, to create and initialise vCPUs and mirror what the VMM does to KVM.
    pub fn firmware_mut(&mut self) -> &mut Firmware {
        &mut self.fw
    }

    /// Programs the SMCCC filter of `vm` to forward [`FORWARDED_RANGES`] to userspace. Must
    /// come before any vCPU runs (EBUSY after); kernels before 6.4 have no filter (EINVAL).
    pub fn install(&self, vm: &VmFd) -> Result<(), Error> {
        for (base, nr_functions) in FORWARDED_RANGES {
            crate::vm::set_smccc_filter(vm, base, nr_functions, FWD_TO_USER).map_err(|errno| {
                Error::Sys {
                    op: "KVM_SET_DEVICE_ATTR(KVM_ARM_VM_SMCCC_FILTER)",
                    errno,
                }
            })?;
        }
        Ok(())
    }

    /// Answers the call that made `fd` (vCPU `vcpu`) exit with `KVM_EXIT_HYPERCALL` (`nr`,
    /// `flags` as KVM gave them): reads x0..x17, runs the engine, writes x0..x3 back, and for
    /// CPU_OFF sets the vCPU's MP state to STOPPED. The rest is the VMM's, as
    /// [`Action`] says: reset and start another vCPU, wait for an interrupt (CPU_SUSPEND),
    /// handle a system event (and, as KVM does for SHUTDOWN and RESET, stop the other
    /// vCPUs: the engine's MP states say which).
    pub fn handle_hypercall(
        &mut self,
        vcpu: usize,
        fd: &VcpuFd,
        nr: u64,
        flags: u64,
        services: &mut dyn Services,
    ) -> Result<CallOutcome, Error> {
        serve(fd, nr, flags, |call| {
            self.fw.handle_call(vcpu, call, services)
        })
    }

    /// Hands the set-up engine (vCPUs created and initialised, filter installed) to a VMM
    /// with one thread per vCPU: the shared VM ([`SharedFirmware`], for the VMM's requests
    /// from any thread) and one [`VcpuServer`] per vCPU, by index, to move to its thread.
    /// Calls of different vCPUs then run in parallel, under the engine's per-vCPU locks
    /// ([`armfw::firmware::shared`]).
    pub fn share(self) -> (SharedFirmware, Vec<VcpuServer>) {
        let (vm, handles) = SharedFirmware::new(self.fw);
        (
            vm,
            handles
                .into_iter()
                .map(|handle| VcpuServer { handle })
                .collect(),
        )
    }
}

/// One vCPU's share of a [`FirmwareServer`]: its thread answers that vCPU's
/// `KVM_EXIT_HYPERCALL`s with it. [`FirmwareServer::share`] gives one per vCPU.
#[derive(Debug)]
pub struct VcpuServer {
    handle: VcpuHandle,
}

impl VcpuServer {
    /// The vCPU's index.
    pub fn index(&self) -> usize {
        self.handle.index()
    }

    /// The VM this vCPU belongs to.
    pub fn vm(&self) -> &SharedFirmware {
        self.handle.vm()
    }

    /// The vCPU enters KVM_RUN for the first time (see [`Firmware::vcpu_run`]).
    pub fn vcpu_run(&mut self) -> Result<(), Error> {
        self.handle.vcpu_run().map_err(Error::Engine)
    }

    /// [`FirmwareServer::handle_hypercall`] for this vCPU, whose fd is `fd`.
    pub fn handle_hypercall(
        &mut self,
        fd: &VcpuFd,
        nr: u64,
        flags: u64,
        services: &mut dyn Services,
    ) -> Result<CallOutcome, Error> {
        serve(fd, nr, flags, |call| {
            self.handle.handle_call(call, services)
        })
    }
}

/// One `KVM_EXIT_HYPERCALL`: x0..x17 from `fd`, the engine's answer (`engine`, either
/// front), x0..x3 back, and a CPU_OFF's STOPPED.
fn serve(
    fd: &VcpuFd,
    nr: u64,
    flags: u64,
    engine: impl FnOnce(&Call) -> Result<CallOutcome, VcpuError>,
) -> Result<CallOutcome, Error> {
    let mut x = [0u64; 18];
    for (i, v) in x.iter_mut().enumerate() {
        *v = get_u64(fd, regs::x(i))?;
    }
    // KVM's nr is w0; x0 is the register itself (its upper half can be anything).
    debug_assert_eq!(nr, x[0] & 0xffff_ffff);
    let conduit = if flags & KVM_HYPERCALL_EXIT_SMC != 0 {
        Conduit::Smc
    } else {
        Conduit::Hvc
    };
    let call = Call { conduit, imm: 0, x };
    let out = engine(&call).map_err(Error::Engine)?;
    for (i, &v) in out.x.iter().enumerate() {
        set_u64(fd, regs::x(i), v)?;
    }
    if out.action == Action::CpuOff {
        fd.set_mp_state(kvm_mp_state {
            mp_state: MP_STATE_STOPPED,
        })
        .map_err(|e| Error::Sys {
            op: "KVM_SET_MP_STATE",
            errno: crate::sys::errno(e),
        })?;
    }
    Ok(out)
}

/// [`Services`] from the running host: TRNG bits from getrandom(2), PTP time from
/// CLOCK_REALTIME and the vCPU's counters (`KVM_REG_ARM_TIMER_CNT` for the virtual counter,
/// `KVM_REG_ARM_PTIMER_CNT` for the physical one).
#[derive(Debug)]
pub struct HostServices<'a> {
    fd: &'a VcpuFd,
}

impl<'a> HostServices<'a> {
    /// Services for calls of the vCPU `fd`.
    pub fn new(fd: &'a VcpuFd) -> HostServices<'a> {
        HostServices { fd }
    }
}

impl Services for HostServices<'_> {
    fn random_u64(&mut self) -> u64 {
        let mut buf = [0u8; 8];
        let mut got = 0;
        while got < buf.len() {
            let rest = &mut buf[got..];
            // SAFETY: one getrandom system call writing at most `rest.len()` bytes into
            // `rest`, which is valid for writes of that length.
            let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
            match usize::try_from(n) {
                Ok(n) => got += n,
                Err(_) if crate::sys::last_errno() == Errno::EINTR => {}
                // No entropy source: KVM's TRNG never fails, so neither do we.
                Err(_) => break,
            }
        }
        u64::from_le_bytes(buf)
    }

    fn ptp_time(&mut self, counter: PtpCounter) -> Option<PtpTime> {
        let id = match counter {
            PtpCounter::Virtual => regs::TIMER_CNT,
            PtpCounter::Physical => regs::PTIMER_CNT,
        };
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: one clock_gettime system call filling the timespec it is given.
        if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) } != 0 {
            return None;
        }
        let realtime_ns = u64::try_from(ts.tv_sec)
            .ok()?
            .checked_mul(1_000_000_000)?
            .checked_add(u64::try_from(ts.tv_nsec).ok()?)?;
        let counter = get_u64(self.fd, id).ok()?;
        Some(PtpTime {
            realtime_ns,
            counter,
        })
    }
}

fn get_u64(fd: &VcpuFd, id: u64) -> Result<u64, Error> {
    let mut buf = [0u8; 8];
    fd.get_one_reg(id, &mut buf).map_err(|e| Error::Sys {
        op: "KVM_GET_ONE_REG",
        errno: crate::sys::errno(e),
    })?;
    Ok(u64::from_le_bytes(buf))
}

fn set_u64(fd: &VcpuFd, id: u64, value: u64) -> Result<(), Error> {
    fd.set_one_reg(id, &value.to_le_bytes())
        .map_err(|e| Error::Sys {
            op: "KVM_SET_ONE_REG",
            errno: crate::sys::errno(e),
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use armfw::abi::Function;

    #[test]
    fn forwarded_ranges_avoid_the_reserved_architecture_ranges_and_each_other() {
        let reserved = [(0x8000_0000u64, 0x1_0000u64), (0xc000_0000, 0x1_0000)];
        let ranges: Vec<(u64, u64)> = FORWARDED_RANGES
            .iter()
            .map(|&(b, n)| (u64::from(b), u64::from(n)))
            .collect();
        for (i, &(b, n)) in ranges.iter().enumerate() {
            assert!(n > 0 && b + n <= 1 << 32);
            for &(rb, rn) in reserved.iter().chain(&ranges[i + 1..]) {
                assert!(
                    b + n <= rb || rb + rn <= b,
                    "{b:#x}+{n:#x} overlaps {rb:#x}"
                );
            }
        }
    }

    #[test]
    fn forwarded_ranges_are_the_owner_ranges_of_the_kernel_literals() {
        assert_eq!(
            FORWARDED_RANGES,
            [
                (0x8400_0000, 0x1_0000),
                (0xc400_0000, 0x1_0000),
                (0x8500_0000, 0x1_0000),
                (0xc500_0000, 0x1_0000),
                (0x8600_0000, 0x1_0000),
                (0xc600_0000, 0x1_0000),
                (0x95c1_ba5e, 4),
            ]
        );
    }

    #[test]
    fn forwarded_ranges_cover_every_service_the_engine_answers() {
        let covered = |id: u32| {
            FORWARDED_RANGES
                .iter()
                .any(|&(b, n)| (u64::from(b)..u64::from(b) + u64::from(n)).contains(&u64::from(id)))
        };
        // Every function of the table but the architecture calls, which stay in the kernel.
        for f in Function::ALL {
            assert_eq!(covered(f.raw()), f.service() != Service::Arch, "{f}");
        }
        // KVM's PSCI 0.1 ids: CPU_SUSPEND, CPU_OFF, CPU_ON, MIGRATE.
        for id in 0x95c1_ba5e..=0x95c1_ba61 {
            assert!(covered(id), "{id:#x}");
        }
        assert!(!covered(Function::SmcccVersion.raw())); // stays in the kernel
    }
}
